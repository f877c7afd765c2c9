"""Where the shared mail corpus lives: beside the repository (``../shared/corpus``).

Resolved at import so tests can parametrize over its files. ``LEADMAIL_TEST_CORPUS`` points
elsewhere (a clone in a temp folder has no ``../shared``); a missing corpus makes collection
fail (pyproject sets ``empty_parameter_set_mark = fail_at_collect``), never a silent skip.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def find_corpus() -> Path:
    named = os.environ.get("LEADMAIL_TEST_CORPUS")
    if named:
        return Path(named)
    return REPO.parent / "shared" / "corpus"


CORPUS = find_corpus()
