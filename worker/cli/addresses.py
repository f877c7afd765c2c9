"""``leadmail addresses``: a lead's postal addresses (billing, shipping, office)."""

from __future__ import annotations

import click

from worker.cli.context import ROW_ID, Context, actor_name, by_option, pass_ctx, ready_app
from worker.cli.output import echo, emit, format_option, to_json

COLUMNS = ["id", "type", "line1", "line2", "city", "state", "postcode", "country"]


@click.group()
def addresses() -> None:
    """A lead's postal addresses."""


@addresses.command("add")
@click.argument("lead_id", type=ROW_ID, metavar="LEAD")
@click.option(
    "--type", "address_type", required=True, metavar="billing|shipping|office", help="Its use."
)
@click.option("--line1", required=True, help="First address line.")
@click.option("--line2", help="Second address line.")
@click.option("--city", required=True, help="City or town.")
@click.option("--state", help="State, county or region.")
@click.option("--postcode", help="Postal code.")
@click.option("--country", required=True, metavar="CC", help="ISO 3166 alpha-2 code (GB, DE).")
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the new address as JSON.")
@pass_ctx
def add_command(
    ctx: Context,
    lead_id: int,
    address_type: str,
    line1: str,
    line2: str | None,
    city: str,
    state: str | None,
    postcode: str | None,
    country: str,
    actor: str | None,
    as_json: bool,
) -> None:
    """Add a postal address to LEAD."""
    from worker.services.contacts import add_address

    row = add_address(
        ready_app(ctx),
        lead_id,
        address_type=address_type,
        line1=line1,
        line2=line2,
        city=city,
        state=state,
        postcode=postcode,
        country=country,
        actor=actor_name(actor),
    )
    if as_json:
        click.echo(to_json(row))
    else:
        echo(f"address {row['id']} added to lead {lead_id}")


@addresses.command("list")
@click.argument("lead_id", type=ROW_ID, metavar="LEAD")
@format_option
@pass_ctx
def list_command(ctx: Context, lead_id: int, fmt: str) -> None:
    """List LEAD's postal addresses."""
    from worker.services.contacts import list_addresses

    rows = list_addresses(ready_app(ctx), lead_id)
    emit(rows, COLUMNS, fmt, title=f"lead {lead_id}: {len(rows)} addresses")


@addresses.command("remove")
@click.argument("address_id", type=ROW_ID, metavar="ID")
@by_option
@pass_ctx
def remove_command(ctx: Context, address_id: int, actor: str | None) -> None:
    """Remove address ID from its lead (logged on the lead)."""
    from worker.services.contacts import remove_address

    row = remove_address(ready_app(ctx), address_id, actor_name(actor))
    echo(f"address {address_id} removed from lead {row['lead_id']}")
