"""``leadmail contacts``: the people at a lead's organisation, added by hand or from its mail."""

from __future__ import annotations

import click

from worker.cli.context import ROW_ID, Context, actor_name, by_option, pass_ctx, ready_app
from worker.cli.output import echo, emit, format_option, to_json

COLUMNS = ["id", "name", "email", "phone", "designation", "is_primary", "created_at"]
SUGGEST_COLUMNS = ["email", "name", "messages"]


@click.group()
def contacts() -> None:
    """A lead's contacts: a contact's mail threads onto the lead."""


@contacts.command("add", short_help="Add a contact to LEAD.")
@click.argument("lead_id", type=ROW_ID, metavar="LEAD")
@click.option("--email", required=True, help="The contact's address (name@domain).")
@click.option("--name", help="Full name.")
@click.option("--phone", help="Phone number.")
@click.option("--designation", help="Job title.")
@click.option("--primary", is_flag=True, help="The lead's primary contact (others stop being).")
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the new contact as JSON.")
@pass_ctx
def add_command(
    ctx: Context,
    lead_id: int,
    email: str,
    name: str | None,
    phone: str | None,
    designation: str | None,
    primary: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    """Add a contact to LEAD (refused if the address is one of its contacts already)."""
    from worker.services.contacts import add_contact

    row = add_contact(
        ready_app(ctx),
        lead_id,
        email=email,
        name=name,
        phone=phone,
        designation=designation,
        primary=primary,
        actor=actor_name(actor),
    )
    if as_json:
        click.echo(to_json(row))
    else:
        echo(f"contact {row['id']} added to lead {lead_id}: {row['email']}")


@contacts.command("list")
@click.argument("lead_id", type=ROW_ID, metavar="LEAD")
@format_option
@pass_ctx
def list_command(ctx: Context, lead_id: int, fmt: str) -> None:
    """List LEAD's contacts."""
    from worker.services.contacts import list_contacts

    rows = list_contacts(ready_app(ctx), lead_id)
    emit(rows, COLUMNS, fmt, title=f"lead {lead_id}: {len(rows)} contacts")


@contacts.command("remove")
@click.argument("contact_id", type=ROW_ID, metavar="ID")
@by_option
@pass_ctx
def remove_command(ctx: Context, contact_id: int, actor: str | None) -> None:
    """Remove contact ID from its lead (logged on the lead)."""
    from worker.services.contacts import remove_contact

    row = remove_contact(ready_app(ctx), contact_id, actor_name(actor))
    echo(f"contact {contact_id} removed from lead {row['lead_id']}: {row['email']}")


@contacts.command("suggest", short_help="People on LEAD's mail who are not contacts yet.")
@click.argument("lead_id", type=ROW_ID, metavar="LEAD")
@format_option
@pass_ctx
def suggest_command(ctx: Context, lead_id: int, fmt: str) -> None:
    """People on LEAD's mail (From, To, Cc) who are not its contacts yet.

    Leaves out the lead's own address and ours; MESSAGES is how many of the lead's
    messages each appeared in.
    """
    from worker.services.contacts import suggest_contacts

    rows = suggest_contacts(ready_app(ctx), lead_id)
    emit(rows, SUGGEST_COLUMNS, fmt, title=f"lead {lead_id}: {len(rows)} suggested contacts")


@contacts.command("accept", short_help="Make suggested people LEAD's contacts.")
@click.argument("lead_id", type=ROW_ID, metavar="LEAD")
@click.argument("addresses", nargs=-1, metavar="[ADDR]...")
@click.option("--all", "accept_all", is_flag=True, help="Accept every suggested contact.")
@by_option
@format_option
@pass_ctx
def accept_command(
    ctx: Context,
    lead_id: int,
    addresses: tuple[str, ...],
    accept_all: bool,
    actor: str | None,
    fmt: str,
) -> None:
    """Add suggested people (see 'contacts suggest') as LEAD's contacts, names from the mail."""
    from worker.services.contacts import accept_contacts

    rows = accept_contacts(
        ready_app(ctx), lead_id, list(addresses), accept_all=accept_all, actor=actor_name(actor)
    )
    emit(rows, COLUMNS, fmt, title=f"lead {lead_id}: {len(rows)} contacts accepted")
