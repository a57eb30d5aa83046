"""docs/teaching.md's exercise tables and the syllabus's exercise minutes match the registry.

Fix for a failure: ``python tools/exercise_table.py --update docs/teaching.md``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from mechscope.course.exercises import all_exercises

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "teaching.md"


@pytest.fixture(scope="module")
def table_tool():
    spec = importlib.util.spec_from_file_location(
        "exercise_table", REPO / "tools" / "exercise_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("exercise_table", module)
    spec.loader.exec_module(module)
    return module


def test_the_guide_matches_the_exercise_registry(table_tool):
    text = GUIDE.read_text()
    assert table_tool.updated_guide(text, all_exercises()) == text, (
        "docs/teaching.md is out of date with the exercise registry; run "
        "python tools/exercise_table.py --update docs/teaching.md"
    )


def test_the_check_sees_a_stale_count(table_tool):
    exercises = all_exercises()
    text = GUIDE.read_text()
    stale = table_tool.updated_guide(text, exercises[:-1])  # as if one exercise were missing
    assert stale != text
    n = len(exercises)
    assert f"**{n}**" in text and f"**{n - 1}**" in stale
