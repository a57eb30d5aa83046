"""Course mode in a real JupyterLab: a student opens the student edition, writes an exercise,
runs it, and sees the check pass (issue 13).

The student edition of ``tests/fixtures/course_example.ipynb`` (built with
``mechscope.course.student_edition``, as ``make course`` does) is written into the lab's root
under ``course-tests/``. The test runs every cell and sees both checks say "not implemented
yet" on the page; then it types a solution into the ``my_softmax`` stub cell through the
editor, runs the cells again and sees "✓ my_softmax: all 3 cases pass" (the other exercise
still not implemented), and checks the page never left 127.0.0.1.

Run:  .venv/bin/python -m pytest tests/browser/test_course.py -q
Artifacts (gitignored): tests/browser/artifacts/course_{stub,solved}.png
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from mechscope.course import student_edition

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "course_example.ipynb"
NOTEBOOK = "course-tests/course_example.ipynb"

# What the student types into the stub cell (replacing the stub, def line included).
SOLUTION = (
    "def my_softmax(scores: torch.Tensor) -> torch.Tensor:\n"
    "    e = (scores - scores.max(dim=-1, keepdim=True).values).exp()\n"
    "    return e / e.sum(dim=-1, keepdim=True)"
)
NOT_IMPLEMENTED = "my_softmax: not implemented yet — write your code in the cell above"
PASSED = "✓ my_softmax: all 3 cases pass"


@pytest.fixture
def student_notebook(lab_server) -> str:
    """The student edition, written into the running lab's root; its path there."""
    target = Path(lab_server.root_dir) / NOTEBOOK
    target.parent.mkdir(parents=True, exist_ok=True)
    nb = student_edition(nbformat.read(FIXTURE, as_version=4), name=FIXTURE.name)
    nbformat.write(nb, target)
    return NOTEBOOK


def _run_and_report(lab, name: str, timeout: float) -> list[dict]:
    """Run all cells; fail with the tracebacks if any raised; the cells' report."""
    lab.run_all_cells(name, timeout=timeout)
    return lab.checked_cells(name, all_run=False)


def _printed(cell: dict) -> str:
    return "".join(
        "".join(o.get("text", "")) for o in cell["outputs"] if o.get("output_type") == "stream"
    )


def _cell(cells: list[dict], needle: str) -> dict:
    found = [c for c in cells if needle in c["source"]]
    assert len(found) == 1, f"expected one code cell containing {needle!r}, found {len(found)}"
    return found[0]


def _output_text(lab, panel_id: str, index: int) -> str:
    """What the page shows in the output area of cell ``index`` (the rendered DOM)."""
    return (
        lab.page.locator(f"#{panel_id} .jp-Notebook .jp-Cell")
        .nth(index)
        .locator(".jp-OutputArea")
        .inner_text()
    )


def test_student_types_a_solution_and_sees_the_check_pass(
    lab_page, student_notebook, artifacts_dir
):
    lab, page, name = lab_page, lab_page.page, student_notebook
    lab.open_notebook(name)
    lab.wait_kernel_idle(name, timeout=60)
    panel_id = page.evaluate("(n) => window.__ms.panel(n).id", name)

    # 1. the student edition as handed out: stubs, both checks "not implemented yet"
    cells = _run_and_report(lab, name, timeout=120)
    stub = _cell(cells, "def my_softmax(")
    assert "raise NotImplementedError()" in stub["source"]
    assert "BEGIN SOLUTION" not in stub["source"]
    check = _cell(cells, 'name="my_softmax"')
    assert NOT_IMPLEMENTED in _printed(check), _printed(check)
    assert "attention_pattern: not implemented yet" in _printed(
        _cell(cells, 'name="attention_pattern"')
    )
    assert "using mechscope's reference my_softmax" in _printed(_cell(cells, "use(my_softmax"))
    shown = _output_text(lab, panel_id, check["index"])
    assert NOT_IMPLEMENTED in shown, f"the page shows {shown!r}"
    check_cell = page.locator(f"#{panel_id} .jp-Notebook .jp-Cell").nth(check["index"])
    check_cell.scroll_into_view_if_needed()
    check_cell.screenshot(path=str(artifacts_dir / "course_stub.png"))

    # 2. the student types a solution into the stub cell, through the editor
    editor = (
        page.locator(f"#{panel_id} .jp-Notebook .jp-Cell").nth(stub["index"]).locator(".cm-content")
    )
    editor.scroll_into_view_if_needed()
    editor.click()
    page.keyboard.press("Control+A")  # inside the editor: the whole cell
    page.keyboard.insert_text(SOLUTION)  # no auto-indent or auto-closed brackets on the way
    page.keyboard.press("Escape")  # back to command mode
    # the editor updates the cell's model as it goes: poll the model, do not read it once
    lab.wait_until(
        "the stub cell to hold the typed solution",
        lambda: (
            (typed := _cell(lab.cell_report(name), "def my_softmax(")["source"]) == SOLUTION,
            typed,
        ),
        timeout=10,
    )

    # 3. run the cells again: the check passes, later cells use the student's function
    cells = _run_and_report(lab, name, timeout=120)
    check = _cell(cells, 'name="my_softmax"')
    printed = _printed(check)
    assert PASSED in printed, printed
    assert "not implemented" not in printed and "✗" not in printed
    assert "using your my_softmax" in _printed(_cell(cells, "use(my_softmax"))
    # the other exercise is still a stub, and still says so without stopping the notebook
    assert "attention_pattern: not implemented yet" in _printed(
        _cell(cells, 'name="attention_pattern"')
    )
    try:
        page.locator(f"#{panel_id} .jp-Notebook .jp-Cell").nth(check["index"]).locator(
            ".jp-OutputArea", has_text=PASSED
        ).wait_for(state="visible", timeout=10_000)
    except Exception:  # noqa: BLE001
        lab.fail(
            f"the pass message {PASSED!r} is not shown on the page; the output area reads "
            f"{_output_text(lab, panel_id, check['index'])!r}"
        )
    page.locator(f"#{panel_id} .jp-Notebook .jp-Cell").nth(check["index"]).screenshot(
        path=str(artifacts_dir / "course_solved.png")
    )

    # 4. nothing left 127.0.0.1
    lab.guard.assert_clean()
    assert any(u.startswith("ws") for u in lab.guard.requests), "network recorder saw no websocket"
