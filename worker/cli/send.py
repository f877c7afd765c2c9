"""``leadmail send``: queue one mail to a lead; the dispatcher sends it (services/outbound.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, BinaryIO

import click

from worker.cli.context import ROW_ID, Context, actor_name, by_option, pass_ctx, ready_app
from worker.cli.output import echo, to_json
from worker.errors import ValidationError

# What the editor opens with, like ``git commit``: lines starting with # are dropped.
EDITOR_HELP = """
# Write the mail above. Lines starting with '#' are left out.
# An empty body, or quitting without saving, queues nothing.
"""


@click.command()
@click.option("--lead", "lead_id", type=ROW_ID, help="The lead to write to (its address).")
@click.option("--to", "to", metavar="ADDR", help="An address; a new one makes a lead (Outbound).")
@click.option("--subject", required=True, help="The subject line.")
@click.option("--body", help="The text of the mail.")
@click.option(
    "--body-file",
    type=click.File("rb"),
    help="Read the text from this file ('-': standard input).",
)
@click.option("--template", metavar="NAME", help="A template in [smtp] templates_path.")
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="KEY=VALUE",
    help="A template variable (beside the lead's fields); repeat for more.",
)
@click.option("--cc", multiple=True, metavar="ADDR", help="A copy to this address; repeatable.")
@click.option(
    "--attach",
    "attachments",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=True),
    metavar="FILE",
    help="Attach this file; repeatable.",
)
@click.option(
    "--as",
    "executive",
    metavar="EXECUTIVE",
    help="Send as this executive of the rule file (default: the lead's executive).",
)
@click.option("--markdown", is_flag=True, help="The body is Markdown: add an HTML version.")
@click.option(
    "--force",
    is_flag=True,
    help="Send to a bouncing address; with --reason, to a Do Not Contact lead.",
)
@click.option("--reason", metavar="TEXT", help="Why a Do Not Contact lead is written to.")
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the queued mail as one JSON object.")
@pass_ctx
def send(
    ctx: Context,
    lead_id: int | None,
    to: str | None,
    subject: str,
    body: str | None,
    body_file: BinaryIO | None,
    template: str | None,
    variables: tuple[str, ...],
    cc: tuple[str, ...],
    attachments: tuple[Path, ...],
    executive: str | None,
    markdown: bool,
    force: bool,
    reason: str | None,
    actor: str | None,
    as_json: bool,
) -> None:
    """Queue a mail to a lead (--lead ID) or an address (--to ADDR).

    The body comes from --body, --body-file or --template; with none of them on a
    terminal, $EDITOR opens (as for 'git commit'). The mail gets its final Message-ID and
    is stored now; 'leadmail run' or 'leadmail dispatch --once' sends it. A Do Not Contact
    lead, a bouncing address, an unknown lead or executive and a missing attachment are
    refused, and nothing is queued.
    """
    from worker.services.outbound import SendRequest, queue_mail

    if (lead_id is None) == (to is None):
        raise ValidationError("give exactly one of --lead ID and --to ADDRESS", None)
    options = (("--body", body), ("--body-file", body_file), ("--template", template))
    chosen = [option for option, value in options if value is not None]
    if len(chosen) > 1:
        raise ValidationError(f"give one of {', '.join(chosen)}", None)
    if variables and template is None:
        raise ValidationError("--var goes with --template", None)
    app = ready_app(ctx)
    if body_file is not None:
        body = _decoded(body_file.read(), body_file.name)
    elif body is None and template is None:
        body = _from_editor(markdown) if stdin_is_terminal() else _from_stdin()
    request = SendRequest(
        subject=subject,
        body=body,
        template=template,
        variables=tuple(_pair(v) for v in variables),
        lead_id=lead_id,
        to=to,
        cc=cc,
        attachments=attachments,
        executive=executive,
        markdown=markdown,
        force=force,
        reason=reason,
        actor=actor_name(actor),
    )
    queued = queue_mail(app, request)
    if as_json:
        click.echo(to_json(queued.to_json()))
        return
    new = ", a new lead" if queued.lead_created else ""
    echo(
        f"queued outbox {queued.outbox_id} on lead {queued.lead_id}{new}: "
        f"<{queued.message_id}> ({queued.status})"
    )


def stdin_is_terminal() -> bool:
    """Whether a person sits at the keyboard (then $EDITOR opens), not a pipe."""
    return sys.stdin.isatty()


def _pair(value: str) -> tuple[str, str]:
    key, eq, rest = value.partition("=")
    if not eq or not key.strip():
        raise ValidationError(f"--var {value!r}: give KEY=VALUE", value)
    return key.strip(), rest


def _decoded(data: bytes, name: Any) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(f"{name}: the body is not UTF-8 text", str(name)) from None


def _from_stdin() -> str:
    text = _decoded(sys.stdin.buffer.read(), "standard input")
    if not text.strip():
        raise ValidationError(
            "no body: give --body, --body-file or --template (or pipe the text in)", None
        )
    return text


def _from_editor(markdown: bool) -> str:
    edited = click.edit(EDITOR_HELP, extension=".md" if markdown else ".txt", require_save=True)
    if edited is None:
        raise ValidationError("the editor was closed without saving: nothing queued", None)
    lines = [line for line in edited.splitlines(keepends=True) if not line.startswith("#")]
    text = "".join(lines).strip("\n")
    if not text.strip():
        raise ValidationError("the body is empty: nothing queued", None)
    return text + "\n"
