"""Mail templates: files in ``[smtp] templates_path``, rendered in a Jinja2 sandbox.

A template is text a person wrote, and the values come from leads (from strangers' mail):
the sandbox keeps a template from reaching Python internals, and StrictUndefined makes a
variable the lead does not have an error naming it, never a mail with a hole in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from worker.errors import ValidationError

MAX_OUTPUT = 1024 * 1024  # a template that renders more than 1 MiB of text is a mistake


def _environment(root: Path) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(str(root)),
        undefined=StrictUndefined,
        autoescape=False,  # plain text (Markdown is escaped and sanitised when rendered)
        keep_trailing_newline=True,
        auto_reload=False,
    )


def render_template(root: Path, name: str, context: Mapping[str, Any]) -> str:
    """The rendered text, or ValidationError in one line naming the template and the
    problem (missing, syntax error with its line, undefined variable, unsafe access)."""
    clean = name.strip()
    if not clean or any(c in clean for c in "\r\n\0"):
        raise ValidationError(f"--template {name!r} is not a template name", name)
    try:
        template = _environment(root).get_template(clean)
        text = template.render(**context)
    except TemplateNotFound:
        raise ValidationError(f"no template {clean!r} in {root}", clean) from None
    except TemplateSyntaxError as exc:
        raise ValidationError(
            f"template {clean}, line {exc.lineno}: {_line(exc.message or 'syntax error')}", clean
        ) from None
    except UndefinedError as exc:
        raise ValidationError(
            f"template {clean}: {_line(exc.message or 'undefined variable')} "
            "(the lead has no such field: give it with --var NAME=VALUE)",
            clean,
        ) from None
    except SecurityError as exc:
        raise ValidationError(f"template {clean}: refused: {_line(str(exc))}", clean) from None
    except UnicodeDecodeError:
        raise ValidationError(f"template {clean} is not UTF-8 text", clean) from None
    if len(text) > MAX_OUTPUT:
        raise ValidationError(f"template {clean} renders over {MAX_OUTPUT} characters", clean)
    return text


def _line(text: str) -> str:
    return " ".join(text.split())
