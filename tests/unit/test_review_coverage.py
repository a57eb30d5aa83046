"""docs/review_coverage.md: every item of the review, and the notebook that shows it.

The table's totals are recounted from its rows (a row edited without its totals fails), each
NUM row names at least one notebook that exists, and each notebook a NUM row names is one the
README's notebook map lists.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "review_coverage.md"
ROW = re.compile(r"^\| (\d(?:\.\d)?) \| (.+?) \| (NUM|PROSE|MISSING) \| (.*) \|$")
STATUSES = ("NUM", "PROSE", "MISSING")


def _rows():
    return [m.groups() for line in DOC.read_text().splitlines() if (m := ROW.match(line))]


def test_totals_are_recounted_from_the_rows():
    rows = _rows()
    counts = Counter(status for _, _, status, _ in rows)
    text = DOC.read_text()
    stated = re.search(r"Totals over (\d+) items: NUM (\d+), PROSE (\d+), MISSING (\d+)\.", text)
    assert stated, "the doc must state 'Totals over N items: NUM a, PROSE b, MISSING c.'"
    assert [int(g) for g in stated.groups()] == [len(rows), *(counts[s] for s in STATUSES)]
    assert len(rows) == 142  # the review's items, one row each
    per_section = Counter((sec, status) for sec, _, status, _ in rows)
    for sec in sorted({sec for sec, *_ in rows}):
        line = re.search(rf"^\| {re.escape(sec)} \| (\d+) \| (\d+) \| (\d+) \|$", text, re.M)
        assert line, f"no per-section totals row for §{sec}"
        assert [int(g) for g in line.groups()] == [per_section[(sec, s)] for s in STATUSES], sec


def test_num_rows_name_existing_notebooks_from_the_readme_map():
    notebooks = {p.name[:2]: p for p in (ROOT / "notebooks").glob("*.ipynb")}
    readme = (ROOT / "README.md").read_text()
    for sec, item, status, evidence in _rows():
        if status != "NUM":
            continue
        lead = re.match(r"^\d\d(?:(?:, |/)\d\d)*\b", evidence)
        assert lead, (
            f"§{sec} {item!r}: a NUM row's evidence must start with its notebooks ({evidence!r})"
        )
        named = re.findall(r"\d\d", lead.group(0))
        for nb in named:
            assert nb in notebooks, f"§{sec} {item!r} names notebook {nb}, which does not exist"
            assert f"[{notebooks[nb].stem}]" in readme, f"README's map lacks {notebooks[nb].stem}"
