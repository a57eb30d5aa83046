"""The course's exercises: one registry, one module per notebook (``nbNN.py``).

Each exercise is the reference solution (a plain function, usually a few lines of torch on
mechscope's hook/cache API), registered with its notebook, title, difficulty, time budget,
the cases it is checked on and the plausible mistakes the check recognises. A notebook's
check cell is one line and the cell after it lets a stuck student go on::

    result = exercises.check("00.induction_score", induction_score)
    ### BEGIN HIDDEN TESTS
    assert result.passed, result.message
    ### END HIDDEN TESTS

    induction_score = exercises.use("00.induction_score", induction_score, result)

Authors: add ``@exercise(...)`` to a reference function in ``nbNN.py`` (see ``nb00.py``);
``tests/unit/test_course_exercises.py`` then checks that the reference passes, a stub reports
"not implemented yet", and every listed mistake is recognised by name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..check import CheckResult
from ..check import check as run_check
from ..check import use as use_fn

__all__ = ["Exercise", "all_exercises", "check", "exercise", "get", "use"]

_REGISTRY: dict[str, Exercise] = {}


@dataclass(frozen=True)
class Exercise:
    """One exercise.

    name: ``"NN.function_name"`` (NN = the notebook's number); the student writes
        ``function_name``.
    notebook: the notebook's file stem, e.g. ``"00_quickstart"``.
    title, difficulty (1 easy - 3 hard), minutes (a time budget).
    reference: the reference solution.
    cases: a function returning ``{label: args}`` (built lazily: it may load a zoo model).
    mistakes: ``[(label, wrong_fn)]``: plausible wrong versions the check recognises.
    """

    name: str
    notebook: str
    title: str
    difficulty: int
    minutes: int
    reference: Callable
    cases: Callable[[], Any]
    mistakes: tuple[tuple[str, Callable], ...]
    rtol: float = 1e-4
    atol: float = 1e-5

    @property
    def function(self) -> str:
        return self.name.split(".", 1)[1]

    def check(self, student_fn: Callable) -> CheckResult:
        return run_check(
            student_fn,
            self.reference,
            self.cases(),
            name=self.function,
            rtol=self.rtol,
            atol=self.atol,
            mistakes=self.mistakes,
        )


def exercise(
    name: str,
    *,
    notebook: str,
    title: str,
    difficulty: int,
    minutes: int,
    cases: Callable[[], Any],
    mistakes: Sequence[tuple[str, Callable]] = (),
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> Callable[[Callable], Callable]:
    """Decorator: register the decorated reference function as exercise ``name``."""
    if "." not in name or not name.split(".", 1)[0].isdigit():
        raise ValueError(f"name={name!r}: expected 'NN.function_name', e.g. '00.induction_score'.")
    if difficulty not in (1, 2, 3):
        raise ValueError(f"difficulty={difficulty!r}: expected 1, 2 or 3.")

    def register(fn: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].reference.__qualname__ != fn.__qualname__:
            raise ValueError(f"exercise {name!r} is registered twice.")
        _REGISTRY[name] = Exercise(
            name, notebook, title, difficulty, minutes, fn, cases, tuple(mistakes), rtol, atol
        )
        return fn

    return register


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("nb"):
            importlib.import_module(f"{__name__}.{info.name}")


def get(name: str) -> Exercise:
    """The exercise registered as ``name`` (``"NN.function_name"``)."""
    if name not in _REGISTRY:
        number = name.split(".", 1)[0]
        try:
            importlib.import_module(f"{__name__}.nb{number}")
        except ModuleNotFoundError:
            pass
    if name not in _REGISTRY:
        _load_all()
    if name not in _REGISTRY:
        from difflib import get_close_matches

        close = get_close_matches(name, list(_REGISTRY), n=3)
        raise KeyError(
            f"name={name!r}: no such exercise. "
            + (f"Did you mean {', '.join(map(repr, close))}? " if close else "")
            + "See mechscope.course.exercises.all_exercises()."
        )
    return _REGISTRY[name]


def all_exercises() -> list[Exercise]:
    """Every exercise, in notebook order."""
    _load_all()
    return sorted(_REGISTRY.values(), key=lambda e: e.name)


def check(name: str, student_fn: Callable) -> CheckResult:
    """Check the student's function for exercise ``name``; prints a verdict, never raises."""
    return get(name).check(student_fn)


def use(name: str, student_fn: Callable, result: CheckResult) -> Callable:
    """The student's function if ``result`` passed, else the reference, saying which."""
    return use_fn(student_fn, get(name).reference, result)
