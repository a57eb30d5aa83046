"""Thumbnails of big attention patterns, computed in Python so the browser never gets them all.

An 8B model has 32 layers x 32 heads; a 512-token prompt gives 268 M attention weights (1 GiB
of float32). ``AttentionPatterns`` then sends each head as a max-pooled thumbnail and keeps the
full pattern in Python, serving one head at a time on request. The pooling here is exactly
what ``widgets/attention/index.ts`` does to a small pattern before drawing its thumbnails, so
the two paths draw the same picture:

- blocks of ``stride`` x ``stride`` weights (the last block of a row or column may be
  narrower), ``side = ceil(n / stride)`` blocks a side;
- each block's value is its maximum, so sparse, sharp attention (one hot key) stays visible;
- a block holding any NaN/Inf is NaN (drawn as a marked cell, never silently dropped).

Everything works one layer at a time, so the peak extra memory is one layer's worth.
"""

from __future__ import annotations

import math

import numpy as np

# Thumbnails are drawn at most this many pixels a side (THUMB_MAX_PX in the TypeScript).
MAX_SIDE = 64


def choose_stride(n_heads_total: int, n_tokens: int, itemsize: int, budget_bytes: int) -> int:
    """The smallest block stride whose thumbnails of every head fit ``budget_bytes``.

    Never finer than ``ceil(n_tokens / MAX_SIDE)`` (what the browser would pool to anyway).
    """
    stride = max(1, math.ceil(n_tokens / MAX_SIDE))
    while n_heads_total * math.ceil(n_tokens / stride) ** 2 * itemsize > budget_bytes:
        stride += 1
    return stride


def max_pool(pattern: np.ndarray, stride: int) -> np.ndarray:
    """``[layer, head, q, k]`` -> ``[layer, head, side, side]`` float32 block maxima (see the
    module docstring); ``side = ceil(n / stride)``."""
    n_layers, n_heads, n_q, n_k = pattern.shape
    starts_q, starts_k = np.arange(0, n_q, stride), np.arange(0, n_k, stride)
    out = np.empty((n_layers, n_heads, len(starts_q), len(starts_k)), np.float32)
    for layer in range(n_layers):
        x = np.asarray(pattern[layer], np.float32)
        # reduceat takes each block from its start to the next one's (the last to the end)
        pooled = np.maximum.reduceat(np.maximum.reduceat(x, starts_k, axis=-1), starts_q, axis=-2)
        bad = ~np.isfinite(x)
        if bad.any():  # -inf would lose a max and +inf is not a weight: mark the block
            hit = np.logical_or.reduceat(np.logical_or.reduceat(bad, starts_k, -1), starts_q, -2)
            pooled[hit] = np.nan
        out[layer] = pooled
    return out


def finite_range(pattern: np.ndarray) -> tuple[float, float] | None:
    """``(min, max)`` over the finite values, layer by layer; ``None`` if there are none."""
    lo, hi = math.inf, -math.inf
    for layer in range(pattern.shape[0]):
        x = np.asarray(pattern[layer])
        finite = np.isfinite(x)
        if finite.all():
            lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
        elif finite.any():
            vals = x[finite]
            lo, hi = min(lo, float(vals.min())), max(hi, float(vals.max()))
    return None if lo > hi else (lo, hi)
