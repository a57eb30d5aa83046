"""Tutorial notebooks stay light: no dead widget state, a size cap per notebook and per output.

Caps (why these numbers):

- NOTEBOOK_CAP, 100 KB: clean tutorials weigh 17-55 KB (2026-12); saved widget state adds
  ~27 KB per widget, so the largest tutorial fails with two stale widgets, and every one
  still leaves room for prose and a few small outputs. GitHub and nbviewer render 100 KB fast.
- OUTPUT_CAP, 50 KB: outputs today are under 2 KB (text); 50 KB still fits one static PNG
  fallback of a widget, not a dumped tensor, a long training log or a base64 blob.

Fix for a failure: ``python tools/clean_notebooks.py`` (strips ``metadata.widgets`` and
widget-view outputs, keeps everything else); for a size failure, shorten the output.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
NOTEBOOK_CAP = 100_000  # bytes
OUTPUT_CAP = 50_000  # bytes of one output's JSON
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
FIX = "Fix: python tools/clean_notebooks.py (then commit the notebooks)."


def _tool():
    spec = importlib.util.spec_from_file_location(
        "clean_notebooks", REPO / "tools" / "clean_notebooks.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_there_are_tutorials():
    assert len(NOTEBOOKS) >= 10, f"expected the tutorials in {REPO / 'notebooks'}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_light(path):
    size = path.stat().st_size
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    if "widgets" in nb.get("metadata", {}):
        problems.append("metadata.widgets holds saved widget state (dead once the kernel is gone)")
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if WIDGET_VIEW in out.get("data", {}):
                model = out["data"][WIDGET_VIEW].get("model_id")
                problems.append(f"cell {i}: widget-view output of model {model} (stale model id)")
            n = len(json.dumps(out))
            if n > OUTPUT_CAP:
                problems.append(f"cell {i}: an output of {n:,} bytes > cap {OUTPUT_CAP:,}")
    if size > NOTEBOOK_CAP:
        problems.append(f"{size:,} bytes > cap {NOTEBOOK_CAP:,}")
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems) + "\n" + FIX


def _dirty_notebook() -> dict:
    widget_out = {
        "data": {
            WIDGET_VIEW: {"model_id": "abc123", "version_major": 2, "version_minor": 1},
            "text/plain": ["Heatmap(n_panels=1)"],
        },
        "execution_count": 3,
        "metadata": {},
        "output_type": "execute_result",
    }
    view_only = {
        "data": {WIDGET_VIEW: {"model_id": "def456"}},
        "metadata": {},
        "output_type": "display_data",
    }
    stream = {"name": "stdout", "output_type": "stream", "text": ["loss 0.31\n"]}
    return {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# t"]},
            {
                "cell_type": "code",
                "execution_count": 3,
                "metadata": {"tags": ["keep"]},
                "outputs": [stream, widget_out, view_only],
                "source": ["w"],
            },
        ],
        "metadata": {
            "kernelspec": {"name": "python3"},
            "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {"abc123": {}}}},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_clean_tool_strips_widget_state_only(tmp_path):
    tool = _tool()
    path = tmp_path / "nb.ipynb"
    path.write_text(tool.dumps(_dirty_notebook()), encoding="utf-8")

    assert tool.main(["--check", str(path)]) == 1
    assert json.loads(path.read_text()) == _dirty_notebook(), "--check must not write"

    assert tool.main([str(path)]) == 0
    nb = json.loads(path.read_text())
    assert "widgets" not in nb["metadata"] and nb["metadata"]["kernelspec"] == {"name": "python3"}
    cell = nb["cells"][1]
    assert cell["execution_count"] == 3 and cell["metadata"] == {"tags": ["keep"]}
    # the stream stays; the widget output keeps its text repr; a view-only output goes
    assert [o["output_type"] for o in cell["outputs"]] == ["stream", "execute_result"]
    assert cell["outputs"][1]["data"] == {"text/plain": ["Heatmap(n_panels=1)"]}
    assert cell["outputs"][1]["execution_count"] == 3

    # idempotent: a clean file is neither reported nor rewritten
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    assert tool.main(["--check", str(path)]) == 0
    assert tool.main([str(path)]) == 0
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    assert tool.clean(copy.deepcopy(json.loads(before))) == []


def test_clean_tool_keeps_committed_formatting():
    # The tool writes what Jupyter writes, so cleaning a notebook changes only what it removes.
    tool = _tool()
    for path in NOTEBOOKS:
        raw = path.read_text(encoding="utf-8")
        assert tool.dumps(json.loads(raw)) == raw, f"{path.name} would be reformatted"
