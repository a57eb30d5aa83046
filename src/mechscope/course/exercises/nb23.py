"""Exercises of notebook 23 (concepts without labels): CCS normalisation, the CCS loss, linear
CKA, and a linear map that carries one model's probe to another's representation.

Burns et al. (2023), "Discovering Latent Knowledge in Language Models Without Supervision";
Kornblith et al. (2019), "Similarity of Neural Network Representations Revisited";
Huh et al. (2024), "The Platonic Representation Hypothesis".
"""

from __future__ import annotations

import torch

from . import exercise

NB = "23_concepts_without_labels"


def _norm_cases():
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(12, 5, generator=gen) * torch.tensor([1.0, 2, 3, 4, 5]) + 2.0
    neg = torch.randn(12, 5, generator=gen) * 0.5 - 7.0  # the other set sits elsewhere
    return {"two sets with different means and scales": (pos, neg)}


def _pooled(pos, neg):
    both = torch.cat([pos, neg])
    m, s = both.mean(0), both.std(0, unbiased=False)
    return torch.stack([(pos - m) / s, (neg - m) / s])


@exercise(
    "23.normalize_pairs",
    notebook=NB,
    title="Normalise each half of the contrast pairs",
    difficulty=1,
    minutes=5,
    cases=_norm_cases,
    mistakes=[
        ("one mean and std for both sets: normalise x+ and x- each by its own", _pooled),
        (
            "the mean was subtracted but nothing divided by the standard deviation",
            lambda p, n: torch.stack([p - p.mean(0), n - n.mean(0)]),
        ),
        (
            "the unbiased std (divide by n, not n - 1, as fit_ccs does)",
            lambda p, n: torch.stack([(p - p.mean(0)) / p.std(0), (n - n.mean(0)) / n.std(0)]),
        ),
        (
            "normalised over the feature axis (dim=-1) instead of over the examples (dim=0)",
            lambda p, n: torch.stack(
                [
                    (p - p.mean(-1, keepdim=True)) / p.std(-1, unbiased=False, keepdim=True),
                    (n - n.mean(-1, keepdim=True)) / n.std(-1, unbiased=False, keepdim=True),
                ]
            ),
        ),
    ],  # fmt: skip
)
def normalize_pairs(acts_pos, acts_neg) -> torch.Tensor:
    """``acts_pos``, ``acts_neg`` ``[n, d]`` -> ``[2, n, d]``: each set minus its own mean over
    the examples, divided by its own (biased) standard deviation per dimension."""
    out = []
    for x in (acts_pos, acts_neg):
        out.append((x - x.mean(0)) / x.std(0, unbiased=False))
    return torch.stack(out)


def _loss_cases():
    gen = torch.Generator().manual_seed(1)
    return {
        "random probabilities": (torch.rand(20, generator=gen), torch.rand(20, generator=gen)),
        "a consistent, confident probe": (torch.tensor([0.9, 0.1, 0.8]),
                                          torch.tensor([0.1, 0.9, 0.2])),
    }  # fmt: skip


@exercise(
    "23.ccs_loss",
    notebook=NB,
    title="The CCS loss: consistency plus confidence",
    difficulty=1,
    minutes=6,
    cases=_loss_cases,
    mistakes=[
        (
            "consistency compares p(x+) with p(x-); it should compare p(x+) with 1 - p(x-)",
            lambda p, q: ((p - q).pow(2) + torch.minimum(p, q).pow(2)).mean(),
        ),
        (
            "the confidence term uses max; it is min(p(x+), p(x-))^2 (both low is the failure)",
            lambda p, q: ((p - (1 - q)).pow(2) + torch.maximum(p, q).pow(2)).mean(),
        ),
        ("the confidence term is missing", lambda p, q: (p - (1 - q)).pow(2).mean()),
        (
            "summed over pairs instead of averaged",
            lambda p, q: ((p - (1 - q)).pow(2) + torch.minimum(p, q).pow(2)).sum(),
        ),
    ],  # fmt: skip
)
def ccs_loss(p_pos, p_neg) -> torch.Tensor:
    """``p_pos``, ``p_neg`` ``[n]`` -> scalar: mean over pairs of
    ``(p_pos - (1 - p_neg))^2 + min(p_pos, p_neg)^2`` (Burns et al. 2023)."""
    consistency = (p_pos - (1 - p_neg)).pow(2)
    confidence = torch.minimum(p_pos, p_neg).pow(2)
    return (consistency + confidence).mean()


def _cka_cases():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(30, 4, generator=gen, dtype=torch.float64) + 3.0
    y = torch.tanh(x @ torch.randn(4, 6, generator=gen, dtype=torch.float64))
    return {"two representations of 30 inputs (not centred)": (x, y),
            "a representation and itself, rotated": (x, x @ torch.linalg.qr(
                torch.randn(4, 4, generator=gen, dtype=torch.float64))[0])}  # fmt: skip


def _cka_uncentred(x, y):
    return (y.T @ x).pow(2).sum() / ((x.T @ x).pow(2).sum().sqrt() * (y.T @ y).pow(2).sum().sqrt())


@exercise(
    "23.linear_cka",
    notebook=NB,
    title="Linear CKA (Kornblith et al. 2019)",
    difficulty=2,
    minutes=8,
    cases=_cka_cases,
    mistakes=[
        ("the features were not centred first (subtract each column's mean)", _cka_uncentred),
        (
            "the numerator is not squared: |Y^T X|_F^2, the squared Frobenius norm",
            lambda x, y: _no_square(x - x.mean(0), y - y.mean(0)),
        ),
    ],  # fmt: skip
)
def linear_cka(x, y) -> torch.Tensor:
    """``x [n, d1]``, ``y [n, d2]`` -> scalar: ``|Yc^T Xc|_F^2 / (|Xc^T Xc|_F |Yc^T Yc|_F)``
    with ``Xc``, ``Yc`` the column-centred features."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    hsic = (yc.T @ xc).pow(2).sum()
    return hsic / ((xc.T @ xc).pow(2).sum().sqrt() * (yc.T @ yc).pow(2).sum().sqrt())


def _no_square(xc, yc):
    return (yc.T @ xc).pow(2).sum().sqrt() / (
        (xc.T @ xc).pow(2).sum().sqrt() * (yc.T @ yc).pow(2).sum().sqrt()
    )


def _stitch_cases():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64) + 2.0
    y = x @ torch.randn(3, 5, generator=gen, dtype=torch.float64) + 1.5
    y = y + 0.1 * torch.randn(40, 5, generator=gen, dtype=torch.float64)
    return {"40 inputs, 3 dimensions -> 5 (not centred, with noise)": (x, y)}


def _with_ones(x):
    return torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)


def _ones_first(x):
    return torch.cat([torch.ones(len(x), 1, dtype=x.dtype), x], 1)


@exercise(
    "23.fit_stitch",
    notebook=NB,
    title="An affine map from one model's representation to another's",
    difficulty=1,
    minutes=6,
    cases=_stitch_cases,
    mistakes=[
        (
            "no bias: append a column of ones to x_from so the map can shift the mean",
            lambda x, y: torch.linalg.lstsq(x, y).solution,
        ),
        (
            "the ones column went first; the bias is the LAST row of the map",
            lambda x, y: torch.linalg.lstsq(_ones_first(x), y).solution,
        ),
        (
            "the map goes the wrong way: it must predict x_to from x_from",
            lambda x, y: torch.linalg.lstsq(_with_ones(y), x).solution,
        ),
    ],  # fmt: skip
)
def fit_stitch(x_from, x_to) -> torch.Tensor:
    """``x_from [n, d1]``, ``x_to [n, d2]`` (rows: the same inputs) -> ``W [d1 + 1, d2]``, the
    least-squares affine map: ``[x_from, 1] @ W`` approximates ``x_to`` (bias: the last row)."""
    return torch.linalg.lstsq(_with_ones(x_from), x_to).solution
