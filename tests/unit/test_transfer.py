"""The pure parts of leads export/import: formula cells defused and restored, CSV text."""

from __future__ import annotations

import csv
import io

import pytest

from worker.services.transfer import csv_text, defuse, undefuse


@pytest.mark.parametrize("cell", ["=1+2", "+44 20", "-5", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_get_an_apostrophe_and_lose_it_again(cell: str) -> None:
    assert defuse(cell) == "'" + cell
    assert undefuse(defuse(cell)) == cell


@pytest.mark.parametrize("cell", ["", "Acme", "'quoted'", "a=b", "'plain", "1+1"])
def test_other_cells_pass_unchanged_both_ways(cell: str) -> None:
    assert defuse(cell) == cell
    assert undefuse(cell) == cell


def test_csv_text_quotes_commas_quotes_and_line_breaks_and_reads_back() -> None:
    rows = [["Acme, Ltd.", 'say "hi"', "two\nlines", "=cmd"]]
    text = csv_text(["a", "b", "c", "d"], rows)
    assert text.endswith("\r\n")
    back = list(csv.reader(io.StringIO(text, newline="")))
    assert back == [["a", "b", "c", "d"], ["Acme, Ltd.", 'say "hi"', "two\nlines", "'=cmd"]]
