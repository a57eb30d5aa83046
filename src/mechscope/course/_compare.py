"""Compare a student's output with the reference's, and say the first difference in words."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["describe", "difference", "fresh"]


def fresh(value: Any) -> Any:
    """A copy of ``value`` whose tensors are clones (models and other objects are shared).

    Each call of a student's, the reference's or a mistake's function gets its own copy, so a
    function that writes into its inputs in place cannot change what the next one sees.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(fresh(v) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(fresh(v) for v in value)
    if isinstance(value, dict):
        return {k: fresh(v) for k, v in value.items()}
    return value


def describe(value: Any) -> str:
    """A short description of a value's type (and a tensor's shape and dtype)."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {_shape(value)} ({_dtype(value)})"
    if value is None:
        return "None"
    return f"a {type(value).__name__}"


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _kind(t: torch.Tensor) -> str:
    if t.dtype == torch.bool:
        return "bool"
    if t.is_complex():
        return "complex"
    return "float" if t.is_floating_point() else "int"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _tensor_difference(
    expected: torch.Tensor, got: Any, where: str, rtol: float, atol: float
) -> str | None:
    if not isinstance(got, torch.Tensor):
        if isinstance(got, (int, float)) and expected.numel() == 1 and not isinstance(got, bool):
            got = torch.tensor(got, dtype=expected.dtype)
            if expected.dim() != 0:
                got = got.reshape(expected.shape)
        else:
            return f"{where}expected {describe(expected)}, got {describe(got)}"
    if got.shape != expected.shape:
        return f"{where}expected shape {_shape(expected)}, got shape {_shape(got)}"
    if _kind(got) != _kind(expected):
        return f"{where}expected dtype {_dtype(expected)}, got dtype {_dtype(got)}"
    exp = expected.detach().cpu()
    act = got.detach().cpu()
    if exp.numel() == 0:
        return None
    if _kind(exp) in ("bool", "int"):
        bad = exp != act
    else:
        wide = torch.complex128 if exp.is_complex() else torch.float64
        exp, act = exp.to(wide), act.to(wide)
        bad = ~torch.isclose(act, exp, rtol=rtol, atol=atol, equal_nan=True)
    if not bool(bad.any()):
        return None
    first = int(bad.flatten().nonzero()[0])
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(first), exp.shape))
    e, a = exp.flatten()[first].item(), act.flatten()[first].item()
    # bools cannot be subtracted: compare them as 0/1
    diff = (exp.long() - act.long() if exp.dtype == torch.bool else exp - act).abs()[bad]
    finite = diff[torch.isfinite(diff)] if diff.is_floating_point() else diff
    err = float(finite.max()) if finite.numel() else math.inf
    n_bad, n = int(bad.sum()), exp.numel()
    at = f"index {index}" if index else "the value"
    return (
        f"{where}values differ at {n_bad} of {n} entries; first at {at}: expected "
        f"{_fmt(e) if isinstance(e, float) else e}, got {_fmt(a) if isinstance(a, float) else a} "
        f"(max abs error {_fmt(err)})"
    )


def difference(
    expected: Any, got: Any, *, rtol: float = 1e-4, atol: float = 1e-5, where: str = ""
) -> str | None:
    """``None`` when ``got`` matches ``expected`` (tensors within ``rtol`` / ``atol``, the same
    shape and kind of dtype; numbers, tuples, lists and dicts element by element), else the
    first difference in words.
    """
    prefix = f"{where}: " if where else ""
    if isinstance(expected, torch.Tensor):
        return _tensor_difference(expected, got, prefix, rtol, atol)
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        if got == expected and type(got) is type(expected):
            return None
        return f"{prefix}expected {expected!r}, got {got!r}"
    if isinstance(expected, (int, float)):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return f"{prefix}expected a number ({_fmt(expected)}), got {describe(got)}"
        if math.isclose(got, expected, rel_tol=rtol, abs_tol=atol) or (
            math.isnan(got) and math.isnan(expected)
        ):
            return None
        return (
            f"{prefix}expected {_fmt(expected)}, got {_fmt(got)} "
            f"(abs error {_fmt(abs(got - expected))})"
        )
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)):
            return f"{prefix}expected a {type(expected).__name__} of {len(expected)}, got {describe(got)}"
        if len(got) != len(expected):
            return f"{prefix}expected {len(expected)} items, got {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            d = difference(e, g, rtol=rtol, atol=atol, where=f"{where or 'output'}[{i}]")
            if d:
                return d
        return None
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            return f"{prefix}expected a dict, got {describe(got)}"
        if set(got) != set(expected):
            missing = sorted(map(str, set(expected) - set(got)))
            extra = sorted(map(str, set(got) - set(expected)))
            return f"{prefix}keys differ (missing {missing}, unexpected {extra})"
        for k in expected:
            d = difference(
                expected[k], got[k], rtol=rtol, atol=atol, where=f"{where or 'output'}[{k!r}]"
            )
            if d:
                return d
        return None
    try:
        same = bool(got == expected)
    except Exception:  # noqa: BLE001 - an odd __eq__ is a difference, not a crash
        same = False
    return None if same else f"{prefix}expected {expected!r}, got {got!r}"
