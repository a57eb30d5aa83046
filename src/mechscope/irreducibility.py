"""Is a 2-D feature irreducible? Engels et al. (2024), "Not All Language Model Features Are
(One-Dimensionally) Linear", §3.

A multi-dimensional feature is *reducible* when it splits into lower-dimensional ones:
either it is a **mixture** (the points lie on one of several lower-dimensional pieces, which
are never active together, as a 2-D point cloud on two lines) or it is **separable** (two
coordinates that are statistically independent, so each is a feature of its own). A circle
is neither: its two coordinates depend on each other in every basis, and no line holds many
of its points. Two numbers measure that, for points ``[n, 2]``:

- :func:`separability_index`: the smallest mutual information (nats) between the two
  coordinates over rotations of the (whitened) cloud; ~0 = separable.
- :func:`mixture_index`: the largest share of points within a thin band around some line;
  high = a mixture of lower-dimensional pieces.

Both are plug-in estimates on histograms, so small samples bias the mutual information
upward: compare against a control with the same marginals (shuffle one coordinate).
"""

from __future__ import annotations

import math

import torch


def _check_points(points) -> torch.Tensor:
    pts = torch.as_tensor(points).double()
    if pts.dim() != 2 or pts.shape[1] != 2 or pts.shape[0] < 4:
        raise ValueError(
            f"points has shape {list(pts.shape)}; expected [n, 2] with n >= 4 "
            "(project onto a plane first, e.g. the top two principal components)."
        )
    return pts


def _whiten(pts: torch.Tensor) -> torch.Tensor:
    centred = pts - pts.mean(0)
    cov = centred.T @ centred / len(pts)
    evals, evecs = torch.linalg.eigh(cov)
    return centred @ evecs / evals.clamp_min(1e-12).sqrt()


def _mutual_information(a: torch.Tensor, b: torch.Tensor, n_bins: int) -> float:
    """Plug-in MI (nats) of two samples, each binned at its own quantiles (equal-count bins)."""

    def ranks_to_bins(v):
        return (v.argsort().argsort() * n_bins // len(v)).clamp_max(n_bins - 1)

    joint = torch.zeros(n_bins, n_bins, dtype=torch.float64)
    joint.index_put_(
        (ranks_to_bins(a), ranks_to_bins(b)),
        torch.ones(len(a), dtype=torch.float64),
        accumulate=True,
    )
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    nz = joint > 0
    return float((joint[nz] * (joint[nz] / (pa @ pb)[nz]).log()).sum())


def separability_index(points, n_bins: int = 6, n_angles: int = 36) -> float:
    """``min over rotations theta of I(u_theta; v_theta)`` (nats) for whitened ``points [n, 2]``.

    After whitening, every rotation gives uncorrelated coordinates ``(u, v)``; if some
    rotation also makes them *independent*, the feature is separable (Engels et al. 2024)
    and the index is ~0 (up to the estimator's small-sample bias). A circle's ``cos`` and
    ``sin`` stay dependent at every angle.
    """
    pts = _whiten(_check_points(points))
    if n_bins < 2 or n_angles < 1:
        raise ValueError(f"n_bins={n_bins}, n_angles={n_angles}; need n_bins >= 2, n_angles >= 1.")
    best = math.inf
    for t in torch.arange(n_angles, dtype=torch.float64) * (math.pi / 2) / n_angles:
        c, s = torch.cos(t), torch.sin(t)
        u, v = c * pts[:, 0] + s * pts[:, 1], -s * pts[:, 0] + c * pts[:, 1]
        best = min(best, _mutual_information(u, v, n_bins))
    return best


def mixture_index(points, epsilon: float = 0.1, n_angles: int = 180) -> float:
    """``max over lines (v, c) of P(|v . x + c| < epsilon * rms(v . x + c))`` for ``points [n, 2]``.

    The share of points inside a thin band around the best line (Engels et al. 2024's
    epsilon-mixture index, searched over ``n_angles`` directions and every point's offset).
    Points on two lines score >= 1/2; a circle scores low.
    """
    pts = _whiten(_check_points(points))
    if not epsilon > 0:
        raise ValueError(f"epsilon={epsilon}; expected a positive band width.")
    best = 0.0
    for t in torch.arange(n_angles, dtype=torch.float64) * math.pi / n_angles:
        proj = torch.cos(t) * pts[:, 0] + torch.sin(t) * pts[:, 1]  # [n]
        shifted = proj[None, :] - proj[:, None]  # [offset (one per point), n]
        rms = shifted.pow(2).mean(1, keepdim=True).sqrt()
        best = max(best, float((shifted.abs() < epsilon * rms).double().mean(1).max()))
    return best
