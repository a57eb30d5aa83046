"""The student edition of every tutorial runs end to end (issue 13).

For each notebook in ``notebooks/``: build its student edition with
``mechscope.course.student_edition`` (solutions -> ``raise NotImplementedError()`` stubs,
hidden tests removed, outputs cleared), execute it top to bottom in the venv's ``python3``
kernel with ``cwd=notebooks/`` (relative paths work as in the source), and assert:

- no cell raised;
- every ``exercises.check("NN.name", ...)`` cell printed "not implemented yet" (a stub never
  crashes the notebook), and there is one such cell per exercise registered for the notebook
  in ``mechscope.course.exercises.all_exercises()``;
- every ``exercises.use(...)`` cell printed "using mechscope's reference" (a stuck student
  goes on with the library's implementation).

The notebooks run in subprocesses, ``MECHSCOPE_STUDENT_WORKERS`` at a time (default 2), each
kernel with ``OMP_NUM_THREADS=1``; they all start when the first test asks for its notebook,
so the parametrised tests mostly wait on work already under way. Each test prints its
notebook's wall time (``pytest -s``); ``MECHSCOPE_STUDENT_TIMEOUT`` bounds one notebook
(default 1200 s), cells have 300 s each.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from mechscope.course import student_edition
from mechscope.course.exercises import all_exercises

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(p for p in NOTEBOOKS.glob("*.ipynb"))
WORKERS = max(1, int(os.environ.get("MECHSCOPE_STUDENT_WORKERS", "2")))
NOTEBOOK_TIMEOUT = float(os.environ.get("MECHSCOPE_STUDENT_TIMEOUT", "1200"))
CELL_TIMEOUT = (
    600  # a hang detector, not a speed goal: a loaded 2-core CI machine once needed > 300 s
)

CHECK_CELL = re.compile(r"""\bexercises\.check\(\s*["'](\d\d\.\w+)["']""")
USE_CELL = re.compile(r"\bexercises\.use\(")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Run in a subprocess: execute IN (a student edition) with cwd CWD, write the executed notebook
# to OUT even when a cell raised (nbclient stops there), and the error, if any, to OUT.err.
_RUNNER = r"""
import sys, nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
src, out, cwd, timeout = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
nb = nbformat.read(src, as_version=4)
client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                        resources={"metadata": {"path": cwd}})
error = ""
try:
    client.execute()
except CellExecutionError as e:
    error = str(e)
except Exception as e:
    error = f"{type(e).__name__}: {e}"
nbformat.write(nb, out)
with open(out + ".err", "w") as f:
    f.write(error)
"""


@dataclass(frozen=True)
class Run:
    notebook: nbformat.NotebookNode  # the executed student edition (possibly partial)
    error: str  # nbclient's error ("" when every cell ran)
    seconds: float


def _execute(src: Path, workdir: Path) -> Run:
    student = workdir / f"{src.stem}.student.ipynb"
    executed = workdir / f"{src.stem}.executed.ipynb"
    nbformat.write(student_edition(nbformat.read(src, as_version=4), name=src.name), student)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _RUNNER,
                str(student),
                str(executed),
                str(NOTEBOOKS),
                str(CELL_TIMEOUT),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=NOTEBOOK_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return Run(
            nbformat.read(student, as_version=4),
            f"did not finish in {NOTEBOOK_TIMEOUT:.0f} s",
            NOTEBOOK_TIMEOUT,
        )
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or not executed.exists():
        return Run(
            nbformat.read(student, as_version=4),
            f"runner exited with {proc.returncode}:\n{proc.stderr[-3000:]}",
            seconds,
        )
    error = Path(str(executed) + ".err").read_text()
    return Run(nbformat.read(executed, as_version=4), error, seconds)


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """{notebook stem: Future[Run]}: the selected student editions, WORKERS at a time."""
    selected = {  # only the notebooks whose tests were selected (-k, node ids)
        item.callspec.params["stem"]
        for item in getattr(request.session, "items", [])
        if getattr(item, "module", None) is request.module  # nbval cells have no module
        and "stem" in getattr(getattr(item, "callspec", None), "params", {})
    } or {p.stem for p in SOURCES}
    workdir = tmp_path_factory.mktemp("student_edition")
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="student-nb")
    started = time.perf_counter()
    futures = {
        src.stem: pool.submit(_execute, src, workdir) for src in SOURCES if src.stem in selected
    }
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)
    total = time.perf_counter() - started
    each = {k: f.result().seconds for k, f in futures.items() if f.done() and not f.cancelled()}
    print(
        f"\nstudent editions: {len(each)} notebooks in {total:.0f} s wall with {WORKERS} "
        f"worker(s) (sum of notebook times {sum(each.values()):.0f} s)"
    )


def _text(cell) -> str:
    return "".join(
        o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"
    )


def test_every_notebook_is_found():
    assert len(SOURCES) >= 14, [p.name for p in SOURCES]


@pytest.mark.parametrize("stem", [p.stem for p in SOURCES])
def test_student_edition_runs_with_every_check_not_implemented(stem, runs):
    future: Future = runs[stem]
    run: Run = future.result()
    print(f"{stem}: student edition ran in {run.seconds:.1f} s")
    code = [c for c in run.notebook.cells if c.cell_type == "code"]
    errors = [
        f"cell {i}: {o.get('ename')}: {o.get('evalue')}\n"
        + _ANSI.sub("", "\n".join(o.get("traceback", [])))[-1500:]
        for i, c in enumerate(run.notebook.cells)
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors and not run.error, (
        f"{stem}: the student edition does not run end to end:\n\n"
        + "\n\n".join(errors or [_ANSI.sub("", run.error)[-3000:]])
    )
    assert all(c.get("execution_count") is not None for c in code if c.source.strip()), (
        f"{stem}: some code cells did not run"
    )

    registered = sorted(e.name for e in all_exercises() if e.notebook == stem)
    checked, problems = [], []
    for c in code:
        names = CHECK_CELL.findall(c.source)
        printed = _text(c)
        for name in names:
            checked.append(name)
            function = name.split(".", 1)[1]
            if f"{function}: not implemented yet" not in printed:
                problems.append(
                    f"check cell of {name} did not say 'not implemented yet'; it printed:\n"
                    f"{printed[-800:] or '(nothing)'}"
                )
        if USE_CELL.search(c.source) and "using mechscope's reference" not in printed:
            problems.append(
                "a use(...) cell did not fall back to the reference; it printed:\n"
                f"{printed[-800:] or '(nothing)'}\nsource:\n{c.source[:400]}"
            )
    assert not problems, f"{stem}:\n\n" + "\n\n".join(problems)
    assert sorted(checked) == registered, (
        f"{stem}: the check cells name {sorted(checked)}, but the exercises registered for "
        f"this notebook are {registered} (one exercises.check cell per exercise)"
    )


def test_the_runner_reports_a_failing_cell(tmp_path):
    """The harness itself: an error in a cell reaches the test (it is not swallowed)."""
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("print('ok')"),
            nbformat.v4.new_code_cell("1 / 0"),
            nbformat.v4.new_code_cell("print('never')"),
        ]
    )
    src = tmp_path / "broken.ipynb"
    nbformat.write(nb, src)
    run = _execute(src, tmp_path)
    assert "ZeroDivisionError" in run.error
    outputs = [o for c in run.notebook.cells for o in c.get("outputs", [])]
    assert [o.get("ename") for o in outputs if o.get("output_type") == "error"] == [
        "ZeroDivisionError"
    ]
    assert "never" not in json.dumps([_text(c) for c in run.notebook.cells])
