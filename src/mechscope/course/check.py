"""Checks that teach: run a student's function against the reference and say what differs.

An exercise's check cell::

    result = check(induction_score, mechscope.heads.induction_score, cases,
                   name="induction_score",
                   mistakes=[("off by one: compared with the token itself",
                              induction_score_same_pos)])

prints one paragraph (a pass, "not implemented yet" for a stub, or the first failing case with
the expected and actual shape or values and the likely mistake) and returns a
:class:`CheckResult`. It never raises for anything the student's code does. Later cells go on
with ``induction_score = use(induction_score, reference, result)``.
"""

from __future__ import annotations

import linecache
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._compare import describe, difference, fresh
from ._guard import untouched

__all__ = ["CheckResult", "check", "use"]


@dataclass(frozen=True)
class CheckResult:
    """What :func:`check` found.

    passed: every case matches the reference.
    message: the paragraph :func:`check` printed.
    name: the exercise's name (the function the student writes).
    """

    passed: bool
    message: str
    name: str

    def __repr__(self) -> str:  # short: the message was already printed
        return f"CheckResult(name={self.name!r}, passed={self.passed})"


def _as_cases(cases: Any) -> list[tuple[str, tuple, dict]]:
    """``[(label, args, kwargs)]`` from a mapping ``{label: args}`` or pairs ``(label, args)``.

    ``args``: a tuple of positional arguments, a dict of keyword arguments, or one argument.
    """
    items = cases.items() if isinstance(cases, Mapping) else cases
    out = []
    for i, item in enumerate(items):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(
                f"case {i}: expected a (label, args) pair, got {type(item).__name__}; "
                "args is a tuple of positional arguments, a dict of keyword arguments, or one "
                "argument"
            )
        label, args = item
        if isinstance(args, tuple) and not hasattr(args, "_fields"):
            out.append((str(label), args, {}))
        elif isinstance(args, dict):
            out.append((str(label), (), args))
        else:
            out.append((str(label), (args,), {}))
    if not out:
        raise ValueError("check needs at least one case")
    return out


def _call(fn: Callable, args: tuple, kwargs: dict) -> Any:
    args, kwargs = fresh(args), fresh(kwargs)
    with untouched((args, kwargs)):
        return fn(*args, **kwargs)


def _where_in_student_code(err: BaseException, student_fn: Callable) -> str:
    """`` (line 3: `x = y[5]`)`` for the deepest frame in the student's file, else ``""``."""
    code = getattr(student_fn, "__code__", None)
    if code is None:
        return ""
    found = ""
    for frame in traceback.extract_tb(err.__traceback__):
        if frame.filename == code.co_filename and frame.lineno is not None:
            text = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
            found = f" (line {frame.lineno}: `{text}`)" if text else f" (line {frame.lineno})"
    return found


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _likely_mistake(
    mistakes: Sequence[tuple[str, Callable]],
    got: Any,
    args: tuple,
    kwargs: dict,
    rtol: float,
    atol: float,
) -> str | None:
    for label, wrong in mistakes:
        try:
            theirs = _call(wrong, args, kwargs)
        except Exception:  # noqa: BLE001 - a mistake that does not apply to this case
            continue
        if difference(theirs, got, rtol=rtol, atol=atol) is None:
            return label
    return None


def _report(name: str, passed: bool, message: str) -> CheckResult:
    print(message, flush=True)
    return CheckResult(passed=passed, message=message, name=name)


def check(
    student_fn: Callable,
    reference_fn: Callable,
    cases: Mapping[str, Any] | Iterable[tuple[str, Any]],
    *,
    name: str,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    mistakes: Sequence[tuple[str, Callable]] = (),
) -> CheckResult:
    """Run ``student_fn`` on every case, compare with ``reference_fn``, print a verdict.

    cases: ``{label: args}`` or ``[(label, args)]``; ``args`` is a tuple of positional
        arguments, a dict of keyword arguments, or one argument (random tensors of the
        documented shapes, a zoo model and its tokens). Tensors are cloned for every call and
        every model is restored after it (hooks, mode, gradients, weights), so no call sees
        another's side effects. Each call runs with the random generator seeded to 0.
    name: the exercise, as the student knows it (the function they write).
    rtol, atol: tolerances for floating outputs (``torch.isclose``).
    mistakes: ``[(label, wrong_fn)]``: plausible wrong versions of the reference (transposed,
        softmax over the wrong dim, off by one position, no causal mask). When the student's
        output equals one of them on the failing case, the message says "This looks like:
        <label>".

    Returns a :class:`CheckResult` after printing its message: "✓ name: all N cases pass";
    "name: not implemented yet ..." for a stub (``NotImplementedError``); otherwise the first
    failing case in words. An exception from the student's code is reported in one line (its
    type, message and line), never as a traceback; one from ``reference_fn`` is a bug in the
    exercise and propagates.
    """
    if not callable(student_fn):
        return _report(
            name,
            False,
            f"✗ {name}: expected a function, got {describe(student_fn)}; define `{name}` "
            "in the cell above and run it first",
        )
    normalised = _as_cases(cases)
    for label, args, kwargs in normalised:
        expected = _call(reference_fn, args, kwargs)
        try:
            got = _call(student_fn, args, kwargs)
        except NotImplementedError:
            return _report(
                name, False, f"{name}: not implemented yet — write your code in the cell above"
            )
        except Exception as err:  # noqa: BLE001 - the student's error, reported in words
            return _report(
                name,
                False,
                f"✗ {name}: case '{label}': your code raised {_one_line(err)}"
                f"{_where_in_student_code(err, student_fn)}",
            )
        problem = difference(expected, got, rtol=rtol, atol=atol)
        if problem is None:
            continue
        message = f"✗ {name}: case '{label}' fails: {problem}."
        if got is None:
            message += " Your function returned None: did you forget `return`?"
        else:
            guess = _likely_mistake(mistakes, got, args, kwargs, rtol, atol)
            if guess:
                message += f" This looks like: {guess}."
        return _report(name, False, message)
    n = len(normalised)
    return _report(name, True, f"✓ {name}: all {n} case{'s' if n != 1 else ''} pass")


def use(student_fn: Callable, reference_fn: Callable, result: CheckResult) -> Callable:
    """The student's function when ``result`` passed, else the reference, saying which.

    A stuck student goes on: the cells after an exercise call what ``use`` returns.
    """
    if not isinstance(result, CheckResult):
        raise TypeError(
            f"use(...) needs the CheckResult that check(...) returned, got {describe(result)}"
        )
    if result.passed and callable(student_fn):
        print(f"using your {result.name}", flush=True)
        return student_fn
    print(
        f"using mechscope's reference {result.name}: your version does not pass yet",
        flush=True,
    )
    return reference_fn
