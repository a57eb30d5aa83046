"""docs/from_transformerlens.md: every ```python block runs, in order, in one namespace.

A block preceded by ``<!-- requires: NAME -->`` needs a component built elsewhere (``tl``:
``mechscope.wrap`` of a TransformerLens model; ``circuitsvis``: the CircuitsVis-compatible
module); it is still executed, and a failure names that component.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "from_transformerlens.md"
_BLOCK = re.compile(
    r"(?:<!--\s*requires:\s*(?P<req>[\w-]+)\s*-->\s*\n)?```python\n(?P<code>.*?)```", re.S
)


def _blocks() -> list[tuple[int, str | None, str]]:
    text = GUIDE.read_text()
    return [
        (text[: m.start("code")].count("\n") + 1, m.group("req"), m.group("code"))
        for m in _BLOCK.finditer(text)
    ]


BLOCKS = _blocks()
_state: dict = {"ns": {"__name__": "from_transformerlens"}, "done": 0, "errors": {}}


def _run_through(i: int) -> None:
    """Run blocks up to ``i`` once each, in order; a failed block does not stop later ones
    (each reports its own error)."""
    while _state["done"] <= i:
        k = _state["done"]
        line, req, code = BLOCKS[k]
        _state["done"] += 1
        try:
            exec(compile(code, f"{GUIDE.name}:{line}", "exec"), _state["ns"])
        except Exception:
            needs = f" (it needs the '{req}' component)" if req else ""
            _state["errors"][k] = f"{GUIDE.name}, block at line {line}{needs}:\n" + (
                traceback.format_exc()
            )
    if i in _state["errors"]:
        pytest.fail(_state["errors"][i])


def test_the_guide_covers_each_library():
    text = GUIDE.read_text()
    for heading in ("TransformerLens 3", "TransformerLens 4", "CircuitsVis", "nnsight"):
        assert heading in text
    assert len(BLOCKS) >= 12
    assert {req for _, req, _ in BLOCKS if req} == {"tl", "circuitsvis"}


@pytest.mark.parametrize("i", range(len(BLOCKS)), ids=[f"line{b[0]}" for b in BLOCKS])
def test_block_runs(i):
    _run_through(i)
