"""Universality of neurons across training runs (review §3.3).

Gurnee et al. 2024, "Universal Neurons in GPT2 Language Models", call a neuron *universal*
when some neuron of another model, trained the same way from a different seed, has
activations that correlate with it (Pearson ρ > 0.5 over the same tokens). Two controls say
what such a number means: the same measure between two *untrained* models (correlation that
comes from the inputs alone), and between one model and a *rotated* copy of the other's
neuron space (:func:`rotate_basis`: the same information in a random basis). If the fraction
drops under rotation, the neuron basis itself is shared, not just the subspace.
"""

from __future__ import annotations

import torch


def _check(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
        raise ValueError(
            f"{name} must be float activations [n, neuron] (tokens flattened), got "
            f"{getattr(x, 'shape', type(x).__name__)}. Fix: acts.reshape(-1, acts.shape[-1])."
        )
    return x.double()


def neuron_correlations(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of every neuron of ``x`` ``[n, d_x]`` with every neuron of ``y``
    ``[n, d_y]`` over the same ``n`` inputs: ``[d_x, d_y]``. A neuron that never varies
    correlates 0 with everything (not NaN)."""
    x, y = _check(x, "x"), _check(y, "y")
    if len(x) != len(y):
        raise ValueError(
            f"x has {len(x)} rows and y {len(y)}: correlations need the activations of both "
            f"models on the same inputs, row for row."
        )
    xc, yc = x - x.mean(0), y - y.mean(0)
    xs, ys = xc.norm(dim=0), yc.norm(dim=0)
    corr = (xc.T @ yc) / (xs[:, None] * ys[None, :])
    return corr.nan_to_num(0.0).clamp(-1, 1).float()


def max_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """For each neuron of ``x`` ``[n, d_x]``, its highest correlation with any neuron of ``y``
    ``[n, d_y]``: ``[d_x]`` (Gurnee et al. 2024's universality score; > 0.5 = universal)."""
    return neuron_correlations(x, y).max(1).values


def rotate_basis(x: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """``x`` ``[n, d]`` in a random orthonormal basis of the same space (``x @ Q``, ``Q`` Haar
    random, seeded): the control that keeps a layer's information and loses its neurons."""
    x = _check(x, "x")
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(x.shape[1], x.shape[1], generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # sign fix: Haar-uniform, not biased by QR's convention
    return (x @ q).float()
