"""``leadmail opportunities`` and ``leadmail quotations``: move a record's status; the
lead's status follows (services/records.py)."""

from __future__ import annotations

from typing import Any

import click

from worker.cli.context import ROW_ID, Context, actor_name, by_option, pass_ctx, ready_app
from worker.cli.output import echo, to_json


def _report(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(to_json(row))
        return
    if not row["changed"]:
        echo(f"{row['kind']} {row['id']}: already {row['status']}")
        return
    echo(
        f"{row['kind']} {row['id']}: {row['status']} (lead {row['lead_id']}: {row['lead_status']})"
    )


@click.group()
def opportunities() -> None:
    """Opportunities made from leads ('leadmail leads make opportunity ID')."""


@opportunities.command("set")
@click.argument("record_id", type=ROW_ID, metavar="ID")
@click.option("--status", required=True, metavar="open|lost|won", help="The new status.")
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the opportunity as one JSON object.")
@pass_ctx
def set_opportunity(
    ctx: Context, record_id: int, status: str, actor: str | None, as_json: bool
) -> None:
    """Set an opportunity's status; the lead's status follows, logged with this as cause.

    An open opportunity makes its lead Opportunity (below an open quotation or a customer).
    """
    from worker.services.records import set_opportunity_status

    _report(set_opportunity_status(ready_app(ctx), record_id, status, actor_name(actor)), as_json)


@click.group()
def quotations() -> None:
    """Quotations made from leads ('leadmail leads make quotation ID')."""


@quotations.command("set")
@click.argument("record_id", type=ROW_ID, metavar="ID")
@click.option("--status", required=True, metavar="open|lost|ordered", help="The new status.")
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the quotation as one JSON object.")
@pass_ctx
def set_quotation(
    ctx: Context, record_id: int, status: str, actor: str | None, as_json: bool
) -> None:
    """Set a quotation's status; the lead's status follows, logged with this as cause.

    ordered: the lead is Converted. lost: when every quotation is lost and no opportunity
    is open, the lead is Lost Quotation.
    """
    from worker.services.records import set_quotation_status

    _report(set_quotation_status(ready_app(ctx), record_id, status, actor_name(actor)), as_json)
