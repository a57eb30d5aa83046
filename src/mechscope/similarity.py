"""Representational similarity: centred kernel alignment (CKA).

Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited". Two
representations of the same ``n`` inputs, ``x [n, d1]`` and ``y [n, d2]`` (``d1`` and
``d2`` may differ: two layers, two seeds, two models), are compared through their ``n x n``
similarity structure: with Gram matrices ``K`` (of x) and ``L`` (of y) and ``H`` the
centring matrix,

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),   HSIC(K, L) = tr(K H L H) / (n-1)^2.

**Linear CKA** (``K = x x^T``) reduces to ``|y^T x|_F^2 / (|x^T x|_F |y^T y|_F)`` on
column-centred features. It is 1 for identical representations, invariant to orthogonal
transforms and isotropic scaling of either side (not to arbitrary invertible linear maps:
that is the point — those would make every pair of wide layers look identical), and near
0 for independent ones (the biased estimator used here has a small positive bias of order
``d / n``; keep ``n`` well above ``d``). **RBF CKA** uses ``K_ij = exp(-|x_i - x_j|^2 /
(2 sigma^2))`` with ``sigma = threshold * median distance`` (Kornblith et al.'s choice).

Shapes: ``x``, ``y`` ``[n, d]``; several representations as ``{label: [n, d]}`` or a list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ._probe_fit import as_acts

__all__ = ["CKAResult", "cka", "cka_matrix"]

KINDS = ("linear", "rbf")


def _centred_gram(x: torch.Tensor, kind: str, threshold: float) -> torch.Tensor:
    if kind == "linear":
        xc = x - x.mean(0)
        return xc @ xc.T
    sq = torch.cdist(x, x).pow(2)
    off = sq[~torch.eye(len(x), dtype=torch.bool)]
    median = off.median().sqrt() if off.numel() else torch.tensor(1.0, dtype=x.dtype)
    sigma = threshold * median.clamp_min(1e-12)
    k = torch.exp(-sq / (2 * sigma**2))
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def _check(x, y, kind: str, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected 'linear' or 'rbf'.")
    if not threshold > 0:
        raise ValueError(
            f"threshold={threshold}; expected a positive fraction of the median distance."
        )
    x, y = as_acts(x, "x").double(), as_acts(y, "y").double()
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x has {x.shape[0]} rows but y {y.shape[0]}; CKA compares two representations of "
            f"the SAME inputs: row i of each must be input i."
        )
    if x.shape[0] < 3:
        raise ValueError(f"x has {x.shape[0]} rows; CKA needs at least 3 inputs.")
    return x, y


def cka(x, y, *, kind: str = "linear", threshold: float = 1.0) -> float:
    """CKA between ``x [n, d1]`` and ``y [n, d2]`` (rows = the same inputs), in [0, 1].

    kind: ``"linear"`` (default) or ``"rbf"`` (bandwidth ``threshold`` x median distance).
    A representation with no variance has no similarity structure: CKA is 0 against it.
    """
    x, y = _check(x, y, kind, threshold)
    if kind == "linear" and x.shape[0] > max(x.shape[1], y.shape[1]):
        # feature-space form: d x d products instead of n x n Gram matrices
        xc, yc = x - x.mean(0), y - y.mean(0)
        hsic = (yc.T @ xc).pow(2).sum()
        norm = (xc.T @ xc).pow(2).sum().sqrt() * (yc.T @ yc).pow(2).sum().sqrt()
    else:
        k, l_ = _centred_gram(x, kind, threshold), _centred_gram(y, kind, threshold)
        hsic = (k * l_).sum()
        norm = (k * k).sum().sqrt() * (l_ * l_).sum().sqrt()
    if norm <= 1e-30:
        return 0.0
    return float((hsic / norm).clamp(0.0, 1.0))


@dataclass(frozen=True)
class CKAResult:
    """CKA between every representation of ``x`` (rows) and of ``y`` (columns).

    values ``[len(x), len(y)]``; row_labels / col_labels name them (dict keys, or "0", "1", ...).
    """

    values: torch.Tensor
    row_labels: list[str]
    col_labels: list[str]
    kind: str

    def as_dict(self) -> dict[tuple[str, str], float]:
        """``{(row_label, col_label): cka}``."""
        return {
            (r, c): float(self.values[i, j])
            for i, r in enumerate(self.row_labels)
            for j, c in enumerate(self.col_labels)
        }

    def to_widget(self, *, title: str = "", row_title: str = "", col_title: str = ""):
        """A :class:`mechscope.widgets.Heatmap` of the matrix (sequential colours over [0, 1])."""
        from .widgets import Heatmap

        return Heatmap(
            self.values,
            row_labels=self.row_labels,
            col_labels=self.col_labels,
            title=title or f"{self.kind} CKA",
            center=None,
            vmin=0.0,
            vmax=1.0,
            row_title=row_title,
            col_title=col_title,
            value_label=f"{self.kind} CKA",
        )


def _as_named(reps, what: str) -> tuple[list[str], list[torch.Tensor]]:
    if isinstance(reps, Mapping):
        return [str(k) for k in reps], list(reps.values())
    if isinstance(reps, torch.Tensor) or not isinstance(reps, Sequence) or not len(reps):
        raise TypeError(
            f"{what} must be a dict {{label: acts [n, d]}} or a non-empty list of [n, d] tensors, "
            f"got {type(reps).__name__}. For one pair of representations use cka(x, y)."
        )
    return [str(i) for i in range(len(reps))], list(reps)


def cka_matrix(x, y=None, *, kind: str = "linear", threshold: float = 1.0) -> CKAResult:
    """CKA between each representation in ``x`` and each in ``y`` (default: ``x`` itself).

    x, y: ``{label: [n, d]}`` (e.g. one entry per layer) or lists of ``[n, d]``; every
    entry holds the same ``n`` inputs in the same order. Returns a :class:`CKAResult`
    (``.values [len(x), len(y)]``, ``.to_widget()``).
    """
    rows, xs = _as_named(x, "x")
    cols, ys = (rows, xs) if y is None else _as_named(y, "y")
    values = torch.zeros(len(xs), len(ys))
    for i, a in enumerate(xs):
        for j, b in enumerate(ys):
            values[i, j] = cka(a, b, kind=kind, threshold=threshold)
    return CKAResult(values=values, row_labels=rows, col_labels=cols, kind=kind)
