"""Are first-layer filters edge detectors? A number, against oriented Sobel and Gabor filters.

Olah et al. (2020, "An Overview of Early Vision in InceptionV1") find that a conv net's first
layer is mostly oriented edge (Gabor-like) detectors. For a 3x3 filter ``w`` we measure how
much of it is an oriented edge:

- ``kind="sobel"``: the share of ``w``'s norm (after removing its mean: a constant offset
  responds to brightness, not to edges) that lies in the plane of the Sobel filters ``Gx`` and
  ``Gy``. Every oriented first-derivative filter ``cos(a) Gx + sin(a) Gy`` lies in that plane,
  so this is the best cosine similarity with a Sobel edge detector of *any* orientation ``a``,
  found exactly by projection: 1 for a pure edge detector. A random filter (8 free dimensions
  after the mean) has ``sqrt(2/8) = 0.5`` on average.
- ``kind="gabor"``: the largest ``|cosine|`` with a bank of mean-free 3x3 Gabor filters,
  ``n`` orientations by two phases (odd: an edge; even: a bar).

The score is scale-free (a filter times 10 scores the same), so a random-initialised network's
filters are a fair control.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

KINDS = ("sobel", "gabor")


@dataclass(frozen=True)
class EdgeScoreResult:
    """``values [...]``: the edge score of each filter, in [0, 1]; ``angle [...]``: the edge's
    orientation in degrees (the gradient direction for Sobel, the best Gabor's orientation),
    ``kind``: which bank."""

    values: torch.Tensor
    angle: torch.Tensor
    kind: str

    def mean(self) -> float:
        return float(self.values.mean())


def sobel_filters() -> torch.Tensor:
    """``[2, 3, 3]``: Sobel ``Gx`` (responds to a left-to-right rise) and ``Gy`` (top-to-bottom)."""
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    return torch.stack([gx, gx.T.contiguous()])


def gabor_filters(n: int = 8) -> torch.Tensor:
    """``[2 n, 3, 3]`` unit-norm, mean-free Gabor filters: ``n`` orientations in [0, 180)
    degrees, first the odd (edge) phase of each, then the even (bar) phase."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}; expected a number of orientations >= 1, e.g. 8.")
    y, x = torch.meshgrid(torch.arange(-1.0, 2.0), torch.arange(-1.0, 2.0), indexing="ij")
    bank = []
    for phase in (math.pi / 2, 0.0):
        for i in range(n):
            a = math.pi * i / n
            u = x * math.cos(a) + y * math.sin(a)  # distance across the edge
            g = torch.exp(-(x**2 + y**2) / 2.0) * torch.cos(2 * math.pi * u / 4.0 - phase)
            g = g - g.mean()
            bank.append(g / g.norm())
    return torch.stack(bank)


def edge_score(weights: torch.Tensor, *, kind: str = "sobel") -> EdgeScoreResult:
    """How edge-like each 3x3 filter in ``weights`` ``[..., 3, 3]`` is (e.g. a conv layer's
    ``weight [out, in, 3, 3]`` -> values ``[out, in]``). See the module docstring."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected 'sobel' or 'gabor'.")
    w = torch.as_tensor(weights).detach().float()
    if w.ndim < 2 or tuple(w.shape[-2:]) != (3, 3):
        raise ValueError(
            f"weights has shape {tuple(w.shape)}; expected 3x3 filters [..., 3, 3], e.g. "
            "model.conv1.conv.weight ([out, in, 3, 3])."
        )
    flat = w.reshape(-1, 9)
    flat = flat - flat.mean(-1, keepdim=True)
    norm = flat.norm(dim=-1).clamp_min(1e-12)
    if kind == "sobel":
        basis = sobel_filters().reshape(2, 9)
        basis = basis / basis.norm(dim=-1, keepdim=True)  # orthonormal: Gx . Gy = 0
        proj = flat @ basis.T  # [filters, 2]
        values = proj.norm(dim=-1) / norm
        angle = torch.rad2deg(torch.atan2(proj[:, 1], proj[:, 0]))
    else:
        bank = gabor_filters()
        cos = (flat @ bank.reshape(len(bank), 9).T).abs() / norm[:, None]  # [filters, 2n]
        values, best = cos.max(-1)
        n = len(bank) // 2
        angle = (best % n).float() * 180.0 / n
    shape = w.shape[:-2]
    return EdgeScoreResult(values.reshape(shape), angle.reshape(shape), kind)
