"""Shared input handling of the CircuitsVis-compatible functions: arrays from what CircuitsVis
accepts (torch tensors, numpy arrays, nested lists), token lists, and the one warning about
options that have no effect here."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np


def array(x: Any, name: str, ndim: tuple[int, ...], shape_doc: str) -> np.ndarray:
    """``x`` as a float64 numpy array of one of the ranks in ``ndim``, or a ValueError /
    TypeError naming the argument ``name`` and the expected shape ``shape_doc``."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().float().numpy()
    if isinstance(x, (list, tuple)):
        ragged = _ragged(x, name)
        if ragged:
            raise ValueError(
                f"{name} is a ragged nested list ({ragged}); expected {shape_doc} with equal "
                f"lengths along each axis. Pad the shorter rows, or pass a tensor."
            )
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be numbers ({shape_doc}) as a torch.Tensor, numpy array or nested "
            f"list, got {type(x).__name__} ({err})."
        ) from err
    if arr.ndim not in ndim:
        raise ValueError(f"{name} has shape {list(arr.shape)}; expected {shape_doc}.")
    return arr


def _ragged(x: Any, path: str = "") -> str:
    """Where a nested list is ragged ("" if it is not): sibling entries of different shapes."""
    try:
        _shape(x, path)
    except _Ragged as err:
        return str(err)
    return ""


class _Ragged(Exception):
    pass


def _shape(x: Any, path: str) -> tuple[int, ...]:
    if not isinstance(x, (list, tuple)):
        return ()
    shapes = [_shape(v, f"{path}[{i}]") for i, v in enumerate(x)]
    if len(set(shapes)) > 1:
        first = next(i for i, sh in enumerate(shapes) if sh != shapes[0])
        raise _Ragged(
            f"{path}[0] has shape {list(shapes[0])} but {path}[{first}] has {list(shapes[first])}"
        )
    return (len(x), *(shapes[0] if shapes else ()))


def str_list(tokens: Any, name: str = "tokens") -> list[str]:
    """``tokens`` as a list of str, or a ValueError naming the argument."""
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise ValueError(
            f"{name} must be a list of str, one per token (e.g. model.to_str_tokens(text)), got "
            f"{type(tokens).__name__}."
        )
    bad = [i for i, t in enumerate(tokens) if not isinstance(t, str)]
    if bad:
        raise ValueError(
            f"{name}[{bad[0]}] is {type(tokens[bad[0]]).__name__} ({tokens[bad[0]]!r}), not str; "
            f"pass token strings (model.to_str_tokens), not ids."
        )
    return list(tokens)


def check_len(n: int, expected: int, name: str, what: str, other: str) -> None:
    """A ValueError unless ``name`` has ``expected`` ``what`` (as ``other`` says)."""
    if n != expected:
        raise ValueError(f"{name} has {n} {what} but {other}; they must match.")


def warn_ignored(function: str, **given: Any) -> None:
    """One warning naming every option of ``function`` given with a non-default value that
    has no effect here (``given``: name -> (value, default))."""
    names = [k for k, (value, default) in given.items() if value is not None and value != default]
    if names:
        warnings.warn(
            f"{function}: {', '.join(names)} {'has' if len(names) == 1 else 'have'} no effect in "
            f"mechscope's widgets (ignored; see mechscope.widgets.circuitsvis for the table).",
            UserWarning,
            stacklevel=3,
        )


def limits(arr: np.ndarray, min_value, max_value) -> dict:
    """Heatmap colour options from CircuitsVis' ``min_value`` / ``max_value``: fixed limits
    (sequential map) when either is given; [0, 1] for probabilities; else diverging at 0."""
    finite = arr[np.isfinite(arr)]
    if min_value is not None or max_value is not None:
        lo = float(min_value) if min_value is not None else float(finite.min(initial=0.0))
        hi = float(max_value) if max_value is not None else float(finite.max(initial=1.0))
        return {"center": None, "vmin": lo, "vmax": hi}
    if finite.size and finite.min() >= 0 and finite.max() <= 1:
        return {"center": None, "vmin": 0.0, "vmax": 1.0}
    return {"center": 0.0}
