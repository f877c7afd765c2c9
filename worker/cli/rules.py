"""``leadmail rules``: check a rule file, explain a lead's assignment, try a message."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from worker.cli.context import ROW_ID, Context, pass_ctx, ready_app
from worker.cli.output import console, echo, emit, format_option, text, to_json
from worker.errors import SourceError
from worker.mail.message import RawMessage
from worker.routing.loader import RuleFileError, load_rules_file
from worker.services.assignment import RuleAssigner, RuleBook, declared_fields, explain
from worker.services.intake import Intake


@click.group()
def rules() -> None:
    """Assignment rules: which executive gets each new lead."""


@rules.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@pass_ctx
def check(ctx: Context, file: Path | None) -> None:
    """Validate a rule file (default: [rules] path); every error as FILE:LINE:COL: message."""
    path = file or ctx.settings.rules.path
    try:
        ruleset = load_rules_file(path, declared_fields(ctx.settings.leads))
    except RuleFileError as exc:
        for problem in exc.problems:
            echo(problem)
        sys.exit(1)
    active = sum(1 for e in ruleset.executives.values() if e.active)
    echo(
        f"{path}: OK: {len(ruleset.executives)} executives ({active} active), "
        f"{len(ruleset.rules)} rules"
    )


@rules.command("explain")
@click.argument("lead_id", type=ROW_ID)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@pass_ctx
def explain_command(ctx: Context, lead_id: int, fmt: str) -> None:
    """Why a lead went to its executive: every rule tried, matched or not, and why."""
    found = explain(ready_app(ctx), lead_id)
    if fmt == "json":
        click.echo(to_json(found))
        return
    _print_decision(found)


def _print_decision(found: dict[str, Any]) -> None:
    out = console()
    who = found.get("executive") or "nobody"
    rule = found.get("rule") or "-"
    # Names and reasons can quote mail (a subject, a header): text(), never markup.
    out.print(
        Text.assemble(
            text("executive", "bold"), " ", text(who), "   ", text("rule", "bold"), " ", text(rule)
        )
    )
    if found.get("reason"):
        out.print(Text.assemble(text("reason", "bold"), " ", text(found["reason"])))
    rows = [
        {"rule": t["rule"], "matched": t["matched"], "reasons": "; ".join(t["reasons"])}
        for t in found.get("trace", [])
    ]
    if rows:
        emit(rows, ["rule", "matched", "reasons"], "table", title="rules tried")


@rules.command("test")
@click.argument("eml", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Rule file to try (default: [rules] path).",
)
@format_option
@pass_ctx
def test_command(ctx: Context, eml: Path, rules_path: Path | None, fmt: str) -> None:
    """Run one message through intake and routing as a dry run: nothing is stored."""
    app = ready_app(ctx)
    book = RuleBook(
        rules_path or app.settings.rules.path,
        reload_seconds=3600,
        custom_fields=declared_fields(app.settings.leads),
    )
    if book.load() is None:
        raise SourceError(f"rule file not found: {book.path}", str(book.path))
    assigner = RuleAssigner(book)
    try:
        data = eml.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {eml}: {exc.strerror}", str(eml)) from None
    raw = RawMessage(data=data, source=str(eml), account=app.settings.ingest.account)
    result = Intake(app, assigner=assigner, dry_run=True).process(raw)
    decision = assigner.last.decision.to_json() if assigner.last else None
    if decision is None:
        why = f"no new lead: the message is {result.outcome.value}" + (
            f" onto lead {result.lead_id}" if result.lead_id else ""
        )
        decision = {"executive": None, "rule": None, "reason": why, "trace": []}
    found = {
        **result.to_json(),
        **{k: decision[k] for k in ("executive", "rule", "reason", "trace")},
    }
    if fmt == "json":
        click.echo(to_json(found))
        return
    if fmt == "csv":
        emit([found], ["outcome", "kind", "executive", "rule", "reason"], "csv")
        return
    echo(f"dry run: {result.outcome.value} ({result.kind}) — nothing stored")
    _print_decision(found)
