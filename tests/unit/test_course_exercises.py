"""Every registered exercise checked both ways, and tied to its notebook.

For each exercise: the reference passes its own check; a stub reports "not implemented yet"
without raising; every listed wrong-but-plausible answer fails with a message that names the
failing case and the mistake. Each notebook 00-13 has 3-6 exercises (>= 50 in all), and each
exercise appears in its notebook as a solution region defining the function plus a check cell.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mechscope.course import exercises

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ALL = exercises.all_exercises()
MISTAKES = [(e, label, fn) for e in ALL for label, fn in e.mistakes]


def _stub(*args, **kwargs):
    raise NotImplementedError()


@pytest.mark.parametrize("ex", ALL, ids=lambda e: e.name)
def test_reference_passes_and_stub_is_not_implemented(ex, capsys):
    assert ex.check(ex.reference).passed
    result = ex.check(_stub)
    assert not result.passed and "not implemented yet" in result.message
    out = capsys.readouterr().out
    assert "Traceback" not in out
    assert ex.difficulty in (1, 2, 3) and 1 <= ex.minutes <= 45 and ex.title
    assert ex.mistakes, f"{ex.name} lists no plausible mistake for its check to recognise"


@pytest.mark.parametrize(
    "ex,label,wrong", MISTAKES, ids=[f"{e.name}:{i}" for i, (e, _, _) in enumerate(MISTAKES)]
)
def test_wrong_answer_gets_a_helpful_message(ex, label, wrong):
    result = ex.check(wrong)
    assert not result.passed
    assert "case '" in result.message, result.message
    assert f"This looks like: {label}" in result.message, result.message


def _cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_its_exercises(path):
    mine = [e for e in ALL if e.notebook == path.stem]
    assert 3 <= len(mine) <= 6, f"{path.stem}: {len(mine)} exercises registered (want 3-6)"
    cells = _cells(path)
    for e in mine:
        solution = [
            c for c in cells if "### BEGIN SOLUTION" in c and re.search(rf"def {e.function}\(", c)
        ]
        assert solution, f"{path.stem}: no solution cell defining {e.function}()"
        checks = [c for c in cells if f'exercises.check("{e.name}"' in c]
        assert checks and "### BEGIN HIDDEN TESTS" in checks[0], (
            f"{path.stem}: no check cell with hidden tests for {e.name}"
        )
        assert any(f'exercises.use("{e.name}"' in c for c in cells), (
            f"{path.stem}: the cells after {e.name} never call exercises.use (stuck students)"
        )


def test_enough_exercises():
    assert len(ALL) >= 50
    assert {e.notebook for e in ALL} == {p.stem for p in NOTEBOOKS}


def test_unknown_exercise_names_the_closest():
    with pytest.raises(KeyError, match="00.induction_score"):
        exercises.get("00.induction_scor")
