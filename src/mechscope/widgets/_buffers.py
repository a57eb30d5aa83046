"""Array <-> bytes encoding shared by the widgets.

Widgets send arrays to the browser as raw binary buffers (a synced ``traitlets.Bytes``
trait, which ipywidgets ships as a binary websocket frame), never as JSON lists of
floats. The JS side decodes them with ``widgets/shared/buffers.ts``; keep the two in step.

Encodings (all C order, little-endian):

- ``float32``: 4 bytes a value, exact.
- ``float16``: 2 bytes a value; about 3 significant digits (|error| <= 5e-4 on [0, 1]).
- ``uint8``: 1 byte a value, for data in [0, 1]: ``round(clip(x, 0, 1) * 254)``; the
  reserved code 255 marks NaN/Inf, so non-finite cells survive quantisation and are drawn
  as marked cells rather than as silent zeros. |error| <= 1/508 on [0, 1].
- ``int32``: 4 bytes a value, for integers (histogram counts, indices); not a choice for
  float data, so not in ``DTYPES``. :func:`decode` gives it back as int32.

Signed float data (activations, logit effects) uses ``float32`` or ``float16``; see
:func:`resolve_signed_dtype`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

DTYPES = ("float32", "float16", "uint8")
_ITEMSIZE = {"float32": 4, "float16": 2, "uint8": 1, "int32": 4}
_NUMPY_DTYPE = {"float32": "<f4", "float16": "<f2", "uint8": "u1", "int32": "<i4"}
SIGNED_DTYPES = ("float32", "float16")
# Largest finite float16; bigger values would overflow to Inf and be drawn as "marked".
_FLOAT16_MAX = 65504.0
_FLOAT32_MAX = float(np.finfo(np.float32).max)

# dtype="auto" keeps the widget payload small enough to save in a notebook and to send
# over the Jupyter websocket quickly: the widest encoding whose payload fits this budget.
AUTO_BUDGET_BYTES = 4 * 2**20

UINT8_SCALE = 254
UINT8_NONFINITE = 255


def to_numpy(x: Any, *, name: str = "array") -> np.ndarray:
    """A float32 numpy copy of a torch Tensor, numpy array or nested sequence."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":
            x = x.float()  # bfloat16 has no numpy dtype
        x = x.numpy()
    try:
        wide = np.asarray(x)
        if wide.dtype.kind not in "fiub":  # strings, objects: let numpy try (and fail)
            wide = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy array of numbers, got {type(x).__name__}"
        ) from err
    if wide.dtype.itemsize > 4 or wide.dtype.kind in "iu":
        _check_float32_range(wide, name)
    return np.asarray(wide, dtype=np.float32)


def _check_float32_range(arr: np.ndarray, name: str) -> None:
    """A ValueError naming ``name`` if a finite value would become Inf in float32 (the
    widgets send float32 at most; an Inf would be drawn as a marked, "broken" cell)."""
    finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
    if finite.size and float(np.abs(finite).max()) > _FLOAT32_MAX:
        raise ValueError(
            f"{name} holds finite values up to {float(np.abs(finite).max()):.3g}, beyond the "
            f"float32 range (+-{_FLOAT32_MAX:.3g}) that widgets send; they would show as Inf. "
            f"Fix: rescale {name} (e.g. divide by its max) or show log values."
        )


def choose_dtype(n_values: int, budget_bytes: int = AUTO_BUDGET_BYTES) -> str:
    """The widest dtype whose payload for ``n_values`` values fits ``budget_bytes``.

    Falls back to uint8 when even float16 is over budget.
    """
    for dtype in ("float32", "float16"):
        if n_values * _ITEMSIZE[dtype] <= budget_bytes:
            return dtype
    return "uint8"


def resolve_dtype(dtype: str, n_values: int) -> str:
    """Validate a user's dtype argument and resolve ``"auto"``."""
    if dtype == "auto":
        return choose_dtype(n_values)
    if dtype not in DTYPES:
        raise ValueError(
            f"dtype={dtype!r} is not supported; expected 'auto' or one of {list(DTYPES)}"
        )
    return dtype


def resolve_signed_dtype(dtype: str, arr: np.ndarray) -> str:
    """Like :func:`resolve_dtype`, for data of any sign and magnitude (no uint8).

    ``"auto"`` picks float32 when the payload fits the budget, else float16 unless a finite
    value would overflow float16 (then float32 anyway: correct beats small).
    """
    if dtype == "auto":
        if arr.size * _ITEMSIZE["float32"] <= AUTO_BUDGET_BYTES:
            return "float32"
        finite = arr[np.isfinite(arr)]
        too_big = finite.size and float(np.abs(finite).max()) > _FLOAT16_MAX
        return "float32" if too_big else "float16"
    if dtype not in SIGNED_DTYPES:
        raise ValueError(
            f"dtype={dtype!r} is not supported for activations; expected 'auto' or one of "
            f"{list(SIGNED_DTYPES)} (uint8 only holds values in [0, 1])."
        )
    if dtype == "float16":
        check_float16(arr)
    return dtype


def check_float16(arr: np.ndarray) -> None:
    """A ValueError naming ``dtype`` if a finite value of ``arr`` overflows float16 (it would be
    sent as Inf and drawn as a marked cell): an explicit ``dtype="float16"`` is an error
    there, ``dtype="auto"`` picks float32 instead."""
    a = np.asarray(arr)
    finite = a[np.isfinite(a)]
    if finite.size and float(np.abs(finite).max()) > _FLOAT16_MAX:
        raise ValueError(
            f"dtype='float16' cannot hold these values: the largest |value| is "
            f"{float(np.abs(finite).max()):.4g}, beyond float16's {_FLOAT16_MAX:g} (it would be "
            f"sent as Inf). Fix: dtype='float32' or dtype='auto' (which picks float32 here)."
        )


def payload_nbytes(n_values: int, dtype: str) -> int:
    """Length in bytes of the encoded payload of ``n_values`` values."""
    return n_values * _ITEMSIZE[dtype]


def encode(arr: np.ndarray, dtype: str) -> bytes:
    """Encode ``arr`` (any shape) as ``dtype`` bytes; see the module docstring."""
    if dtype == "uint8":
        a = np.asarray(arr, dtype=np.float32)
        finite = np.isfinite(a)
        q = np.rint(np.clip(np.where(finite, a, 0.0), 0.0, 1.0) * UINT8_SCALE).astype(np.uint8)
        q[~finite] = UINT8_NONFINITE
        return q.tobytes(order="C")
    if dtype not in _NUMPY_DTYPE:
        raise ValueError(f"dtype={dtype!r} is not supported; expected one of {list(DTYPES)}")
    if dtype == "int32":
        return np.ascontiguousarray(arr).astype("<i4", casting="same_kind").tobytes(order="C")
    if dtype == "float16":
        check_float16(arr)
    return np.ascontiguousarray(arr, dtype=_NUMPY_DTYPE[dtype]).tobytes(order="C")


def decode(buf: bytes | memoryview, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`encode`, as float32 (the same decoding the browser does)."""
    raw = np.frombuffer(buf, dtype=_NUMPY_DTYPE[dtype])
    if dtype == "uint8":
        out = raw.astype(np.float32) / UINT8_SCALE
        out[raw == UINT8_NONFINITE] = np.nan
    elif dtype == "int32":
        out = raw.astype(np.int32)
    else:
        out = raw.astype(np.float32)
    return out.reshape(shape)


def check_center(center: Any) -> float | None:
    """A colour map's centre: a finite number (diverging map, its white point) or None
    (sequential map). Shared by the widgets that take ``center=``."""
    if center is None:
        return None
    if isinstance(center, bool) or not isinstance(center, (int, float, np.number)):
        raise ValueError(
            f"center must be a number (white point of the diverging map) or None (sequential "
            f"map), got {type(center).__name__} ({center!r})."
        )
    if not math.isfinite(float(center)):
        raise ValueError(f"center={center!r} is not finite; expected a finite number or None.")
    return float(center)
