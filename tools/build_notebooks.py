"""Execute notebooks and keep only the outputs nbval checks.

    python tools/build_notebooks.py notebooks/00_quickstart.ipynb

Cells tagged with ``# NBVAL_CHECK_OUTPUT`` keep their executed outputs (nbval
compares them on every test run); all other outputs and the saved widget state
are dropped, so notebooks stay small and a student sees fresh results.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def build(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "NBVAL_CHECK_OUTPUT" not in cell.source:
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        build(Path(arg))
        print("built", arg)
