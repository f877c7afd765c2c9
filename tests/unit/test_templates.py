"""Mail templates: Jinja2 in a sandbox, a missing variable is one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import ValidationError
from worker.services.templates import render_template


def write(root: Path, name: str, text: str) -> None:
    (root / name).write_text(text, encoding="utf-8")


def test_renders_with_filters_and_keeps_the_last_newline(tmp_path: Path) -> None:
    write(tmp_path, "t.txt", "สวัสดี {{ name | upper }}{% if company %} ({{ company }}){% endif %}\n")
    assert render_template(tmp_path, "t.txt", {"name": "jane", "company": "Acme"}) == (
        "สวัสดี JANE (Acme)\n"
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Dear {{ name }}", "template t.txt: 'name' is undefined"),
        ("{{ lead.phone }}", "has no attribute 'phone'"),
        ("{% if %}", "template t.txt, line 1:"),
        ("ok\n{{ name ", "line 2"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "template t.txt"),
        ("{{ lead.__class__ }}", "template t.txt"),
    ],
)
def test_problems_are_one_line(tmp_path: Path, text: str, needle: str) -> None:
    write(tmp_path, "t.txt", text)
    with pytest.raises(ValidationError) as info:
        render_template(tmp_path, "t.txt", {"lead": {}})
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["missing.txt", "../outside.txt", "/etc/passwd", ""])
def test_only_templates_inside_the_folder(tmp_path: Path, name: str) -> None:
    root = tmp_path / "templates"
    root.mkdir()
    write(tmp_path, "outside.txt", "secret")
    with pytest.raises(ValidationError):
        render_template(root, name, {})


def test_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_bytes(b"caf\xe9")
    with pytest.raises(ValidationError, match="not UTF-8"):
        render_template(tmp_path, "t.txt", {})
