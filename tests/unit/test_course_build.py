"""The two course editions from one source (tests/fixtures/course_example.ipynb): the student
edition holds no solution and runs end to end with every check saying "not implemented yet";
the instructor edition passes every check; nbgrader's own generate_assignment and autograde
give the solution full marks and the stub zero, without crashing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mechscope.course import build, instructor_edition, student_edition
from mechscope.course.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "course_example.ipynb"
EXERCISES = ("my_softmax", "attention_pattern")
SOLUTION_LINES = (
    "shifted = scores - scores.max(dim=-1, keepdim=True).values",
    "allowed = torch.ones(n, n, dtype=torch.bool).tril()",
)


def source():
    return nbformat.read(FIXTURE, as_version=4)


def code_of(nb):
    return [c.source for c in nb.cells if c.cell_type == "code"]


def run_notebook(nb, tmp_path):
    """Execute ``nb`` (a copy) in the venv's python3 kernel; return all printed text."""
    nb = nbformat.from_dict(nb)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors, errors
    return "".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream"
    )


def test_fixture_is_a_course_notebook():
    nb = source()
    text = "\n".join(c.source for c in nb.cells)
    assert text.count("### BEGIN SOLUTION") == 2 and text.count("### BEGIN HIDDEN TESTS") == 2
    assert text.count("<details><summary>Hint") == 3


def test_student_edition_has_stubs_no_solutions_no_hidden_tests_no_outputs():
    src = source()
    src.cells[1].outputs = [nbformat.v4.new_output("stream", text="left over")]
    src.cells[1].execution_count = 3
    src.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb = student_edition(src)
    nbformat.validate(nb)
    code = "\n".join(code_of(nb))
    for line in SOLUTION_LINES:
        assert line not in code
    assert "HIDDEN TESTS" not in code and "assert result.passed" not in code
    assert "BEGIN SOLUTION" not in code and code.count("raise NotImplementedError()") == 2
    assert "    # YOUR CODE HERE\n    raise NotImplementedError()" in code  # indented as the region
    assert all(
        c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code"
    )
    assert "widgets" not in nb.metadata
    assert src.cells[1].outputs, "the source is not changed"
    # Each exercise cell is followed by its hints, then its solution, collapsed.
    for name, line in zip(EXERCISES, SOLUTION_LINES, strict=True):
        i = next(i for i, c in enumerate(nb.cells) if f"def {name}(" in c.source)
        assert nb.cells[i + 1].source.startswith("<details><summary>Hint")
        after = nb.cells[i + 2]
        assert nb.cells[i + 3].cell_type == "code" and "check(" in nb.cells[i + 3].source
        assert after.cell_type == "markdown"
        assert after.source.startswith("<details><summary>Solution</summary>")
        assert "```python\n" in after.source and after.source.endswith("</details>")
        assert line in after.source and "### " not in after.source
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert markdown.count("<details><summary>Hint") == 3


def test_instructor_edition_has_nbgrader_metadata():
    nb = instructor_edition(source())
    meta = [c.metadata.get("nbgrader") for c in nb.cells]
    solutions = [m for m in meta if m and m["solution"]]
    checks = [m for m in meta if m and m["grade"]]
    assert [m["grade_id"] for m in solutions] == [
        "solution-my_softmax",
        "solution-attention_pattern",
    ]
    assert [m["grade_id"] for m in checks] == ["check-my_softmax", "check-attention_pattern"]
    assert all(
        m["locked"] is False and m["grade"] is False and m["schema_version"] == 3 for m in solutions
    )
    assert all(m["locked"] is True and m["points"] == 1 and m["solution"] is False for m in checks)
    assert code_of(nb) == code_of(source())  # markers and hidden tests stay for nbgrader
    assert instructor_edition(source()) == nb  # stable ids


@pytest.mark.parametrize(
    "cell, error, editions",
    [
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "has no 'END SOLUTION'", "both"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested", "both"),
        ("### END HIDDEN TESTS", "without 'BEGIN HIDDEN TESTS'", "both"),
        (
            "result = check(f, g, c, name='f')\n### BEGIN HIDDEN TESTS\nprint(1)\n"
            "### END HIDDEN TESTS",
            "assert result.passed, result.message",
            "instructor",
        ),
        (
            "### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### BEGIN HIDDEN TESTS\n"
            "assert x\n### END HIDDEN TESTS",
            "not both",
            "instructor",
        ),
    ],
)
def test_malformed_regions_name_the_notebook_and_cell(cell, error, editions):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    makers = [instructor_edition] + ([student_edition] if editions == "both" else [])
    for make in makers:
        with pytest.raises(ValueError, match=f"ex.ipynb: cell 0: .*{error}"):
            make(nb, name="ex.ipynb")


def test_a_solution_region_in_markdown_is_refused():
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("### BEGIN SOLUTION\nx\n### END SOLUTION")]
    )
    for make in (student_edition, instructor_edition):
        with pytest.raises(ValueError, match="cell 0: .*go in code cells"):
            make(nb)


def test_build_and_the_command_line_write_both_editions(tmp_path, capsys):
    notebooks = tmp_path / "notebooks"
    (notebooks / "part").mkdir(parents=True)
    (notebooks / "part" / "course_example.ipynb").write_text(FIXTURE.read_text())
    written = build(notebooks, tmp_path / "course")
    assert sorted(p.relative_to(tmp_path) for p in written) == [
        Path("course/instructor/part/course_example.ipynb"),
        Path("course/student/part/course_example.ipynb"),
    ]
    assert main(["build", "--notebooks", str(notebooks), "--out", str(tmp_path / "c2")]) == 0
    assert "1 notebook ->" in capsys.readouterr().out
    assert (tmp_path / "c2" / "student" / "part" / "course_example.ipynb").exists()
    assert main(["build", "--notebooks", str(tmp_path / "missing")]) == 1
    assert "no notebooks folder" in capsys.readouterr().err
    makefile = (ROOT / "Makefile").read_text()
    assert "\ncourse:" in makefile and "-m mechscope.course build" in makefile


def test_student_edition_runs_end_to_end_saying_not_implemented(tmp_path):
    nb = student_edition(source())
    # Then the student tries once more, with an error: reported with the line of the cell.
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "def my_softmax(scores):\n    return scores.softmax(dim=5)\n\n"
            "result = check(my_softmax, lambda s: s.softmax(-1), softmax_cases, name='my_softmax')"
        )
    )
    printed = run_notebook(nb, tmp_path)
    for name in EXERCISES:
        assert f"{name}: not implemented yet — write your code in the cell above" in printed
        assert f"using mechscope's reference {name}: your version does not pass yet" in printed
    assert (
        "✗ my_softmax: case 'a vector of 5': your code raised IndexError: Dimension out of range"
    ) in printed
    assert "(line 2: `return scores.softmax(dim=5)`)" in printed
    assert "Traceback" not in printed


def test_instructor_edition_passes_every_check(tmp_path):
    printed = run_notebook(instructor_edition(source()), tmp_path)
    assert "✓ my_softmax: all 3 cases pass" in printed
    assert "✓ attention_pattern: all 2 cases pass" in printed
    assert "not implemented" not in printed and "✗" not in printed


def nbgrader(course: Path, *args: str) -> None:
    # nbgrader runs `alembic` from PATH: the venv's bin goes first.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_nbgrader_generates_and_autogrades_solution_full_and_stub_zero(tmp_path):
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    (course / "source" / "ps1").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.course_id = "example"\nc.CourseDirectory.root = "."\n'
    )
    nbformat.write(instructor_edition(source()), course / "source" / "ps1" / "course_example.ipynb")
    nbgrader(course, "generate_assignment", "ps1", "--force")
    release = nbformat.read(course / "release" / "ps1" / "course_example.ipynb", as_version=4)
    assert "HIDDEN TESTS" not in "\n".join(code_of(release))
    assert "\n".join(code_of(release)).count("raise NotImplementedError()") == 2
    submissions = {
        "solver": course / "source" / "ps1" / "course_example.ipynb",
        "stuck": course / "release" / "ps1" / "course_example.ipynb",
    }
    for student, notebook in submissions.items():
        (course / "submitted" / student / "ps1").mkdir(parents=True)
        (course / "submitted" / student / "ps1" / "course_example.ipynb").write_text(
            notebook.read_text()
        )
    nbgrader(course, "autograde", "ps1", "--create")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission("ps1", s).score for s in submissions}
        assert gb.find_submission("ps1", "solver").max_score == 2
    assert scores == {"solver": 2.0, "stuck": 0.0}
    graded = nbformat.read(course / "autograded" / "stuck" / "ps1" / "course_example.ipynb", 4)
    errors = [
        o
        for c in graded.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert [e.ename for e in errors] == ["AssertionError", "AssertionError"]
    assert all("not implemented yet" in e.evalue for e in errors)
