"""Two editions of the course from one source, without nbgrader.

The notebooks in ``notebooks/`` are the source: each exercise's solution sits in a code cell
between ``### BEGIN SOLUTION`` and ``### END SOLUTION``; a check cell may hold a block between
``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` (``assert result.passed,
result.message``) that only grading runs. ``python -m mechscope.course build`` writes:

- ``course/student/``: every solution region replaced by nbgrader's stub (``# YOUR CODE HERE``
  / ``raise NotImplementedError()``, at the region's indentation), the solved exercise cell in a
  collapsed ``<details>`` markdown cell right after the exercise and its hints (the markdown
  ``<details>`` cells that follow it), hidden tests removed, outputs, execution counts and
  widget state cleared;
- ``course/instructor/``: the source with nbgrader's cell metadata (solution cells, and the
  check cells as locked 1-point autograded tests), ready for nbgrader's
  ``generate_assignment`` and ``autograde``.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # nbformat comes with the lab / dev extras; check() does not need it
    from nbformat import NotebookNode

__all__ = ["build", "instructor_edition", "student_edition"]

BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")  # nbgrader's python code_stub


class MarkerError(ValueError):
    """A solution or hidden-test region that nbgrader would reject."""


def _regions(source: str, begin: str, end: str, where: str) -> list[tuple[int, int]]:
    """``[(begin_line, end_line)]`` of each marked region (line indices of the markers)."""
    out, start = [], None
    for i, line in enumerate(source.split("\n")):
        if begin in line:
            if start is not None:
                raise MarkerError(f"{where}: nested '{begin}' (line {i + 1})")
            start = i
        elif end in line:
            if start is None:
                raise MarkerError(f"{where}: '{end}' without '{begin}' (line {i + 1})")
            out.append((start, i))
            start = None
    if start is not None:
        raise MarkerError(f"{where}: '{begin}' (line {start + 1}) has no '{end}'")
    return out


def _stubbed(source: str, regions: list[tuple[int, int]]) -> str:
    lines = source.split("\n")
    out, prev = [], 0
    for a, b in regions:
        out += lines[prev:a]
        indent = re.match(r"\s*", lines[a]).group(0)
        out += [indent + s for s in STUB]
        prev = b + 1
    return "\n".join(out + lines[prev:])


def _without(source: str, regions: list[tuple[int, int]]) -> str:
    """``source`` with the marked regions (markers included) removed."""
    lines = source.split("\n")
    drop = {i for a, b in regions for i in range(a, b + 1)}
    kept = [line for i, line in enumerate(lines) if i not in drop]
    return "\n".join(kept).rstrip("\n")


def _solution_markdown(source: str, regions: list[tuple[int, int]]) -> NotebookNode:
    """The exercise cell as solved (markers dropped), collapsed in a ``<details>`` block."""
    lines = source.split("\n")
    markers = {i for r in regions for i in r}
    code = "\n".join(line for i, line in enumerate(lines) if i not in markers).strip("\n")
    from nbformat.v4 import new_markdown_cell

    fence = "````" if "```" in code else "```"
    text = f"<details><summary>Solution</summary>\n\n{fence}python\n{code}\n{fence}\n\n</details>"
    return new_markdown_cell(text)


def _is_hint(cell: NotebookNode) -> bool:
    return cell.cell_type == "markdown" and cell.source.lstrip().startswith("<details>")


def _where(label: str, index: int) -> str:
    return f"{label}cell {index}" if label else f"cell {index}"


def student_edition(notebook: NotebookNode, *, name: str = "") -> NotebookNode:
    """The student's copy of a source notebook (a new notebook; the source is not changed).

    name: the notebook's name, for error messages.
    """
    nb = copy.deepcopy(notebook)
    label = f"{name}: " if name else ""
    cells: list = []
    pending = None  # the last exercise's solution cell, placed after the hints that follow it
    for i, cell in enumerate(nb.cells):
        if pending is not None and not _is_hint(cell):
            cells.append(pending)
            pending = None
        cell.metadata.pop("nbgrader", None)
        cell.metadata.pop("widgets", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            if _regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, _where(label, i)):
                raise MarkerError(f"{_where(label, i)}: solution regions go in code cells")
            cells.append(cell)
            continue
        cell.outputs = []
        cell.execution_count = None
        hidden = _regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, _where(label, i))
        if hidden:
            cell.source = _without(cell.source, hidden)
        solutions = _regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, _where(label, i))
        if not solutions:
            cells.append(cell)
            continue
        original = cell.source
        cell.source = _stubbed(original, solutions)
        cells.append(cell)
        pending = _solution_markdown(original, solutions)
    nb.cells = cells + ([pending] if pending is not None else [])
    nb.metadata.pop("widgets", None)
    return nb


def _grade_id(prefix: str, cell: NotebookNode, index: int, taken: set[str]) -> str:
    """A stable id: the function the cell defines or the name its check gives, else its
    position among the cells of its kind."""
    named = re.search(r"^\s*def\s+([A-Za-z_]\w*)", cell.source, re.M)
    if prefix == "check":
        named = re.search(r"\bname\s*=\s*[\"']([^\"']+)[\"']", cell.source) or named
    base = f"{prefix}-{named.group(1)}" if named else f"{prefix}-{index}"
    base = re.sub(r"[^A-Za-z0-9_-]", "_", base)
    gid, n = base, 2
    while gid in taken:
        gid, n = f"{base}-{n}", n + 1
    taken.add(gid)
    return gid


def instructor_edition(notebook: NotebookNode, *, name: str = "") -> NotebookNode:
    """The source with nbgrader's cell metadata (a new notebook; the source is not changed).

    Cells with a solution region become solution cells; cells with a hidden-test block become
    locked autograded test cells worth 1 point, and must call ``check(...)`` and hold an
    ``assert`` in the hidden block (so a stub scores 0 without stopping the notebook).
    name: the notebook's name, for error messages.
    """
    nb = copy.deepcopy(notebook)
    label = f"{name}: " if name else ""
    taken: set[str] = set()
    n_solution = n_check = 0
    for i, cell in enumerate(nb.cells):
        cell.metadata.pop("nbgrader", None)
        where = _where(label, i)
        solutions = _regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, where)
        hidden = _regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, where)
        if cell.cell_type != "code":
            if solutions or hidden:
                raise MarkerError(f"{where}: solution and hidden-test regions go in code cells")
            continue
        if solutions and hidden:
            raise MarkerError(
                f"{where}: a cell holds either a solution or hidden tests, not both "
                "(put the check in the next cell)"
            )
        if solutions:
            n_solution += 1
            meta = {
                "solution": True,
                "grade": False,
                "locked": False,
                "grade_id": _grade_id("solution", cell, n_solution, taken),
            }
        elif hidden:
            lines = cell.source.split("\n")
            block = "\n".join(line for a, b in hidden for line in lines[a + 1 : b])
            if "check(" not in cell.source or "assert" not in block:
                raise MarkerError(
                    f"{where}: a check cell calls check(...) and its hidden block asserts "
                    "the result: `assert result.passed, result.message`"
                )
            n_check += 1
            meta = {
                "solution": False,
                "grade": True,
                "locked": True,
                "points": 1,
                "grade_id": _grade_id("check", cell, n_check, taken),
            }
        else:
            continue
        cell.metadata["nbgrader"] = {**meta, "task": False, "schema_version": 3}
    return nb


def _notebooks_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def build(notebooks: str | Path = "notebooks", out: str | Path = "course") -> list[Path]:
    """Write ``out/student/`` and ``out/instructor/`` from the source notebooks.

    notebooks: the folder of source notebooks (searched recursively; the layout is kept).
    out: the folder the two editions go in (created; files there are overwritten).
    Returns the paths written. Raises ``ValueError`` naming the notebook and cell for a
    malformed region (nested, unclosed, in a markdown cell, a check without its assert).
    """
    import nbformat

    root, dest = Path(notebooks), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"no notebooks folder at {root}")
    sources = _notebooks_under(root)
    if not sources:
        raise FileNotFoundError(f"no .ipynb files under {root}")
    written = []
    for src in sources:
        rel = src.relative_to(root)
        nb = nbformat.read(src, as_version=4)
        for edition, make in (("student", student_edition), ("instructor", instructor_edition)):
            target = dest / edition / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(make(nb, name=str(rel)), target)
            written.append(target)
    return written
