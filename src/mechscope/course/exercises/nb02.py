"""Exercises of notebook 02 (superposition): the toy model's forward pass, its
importance-weighted loss, interference (overlap with the other features), feature
dimensionality, the DCI disentanglement of a basis and the MCC of recovered latents.

Elhage et al. (2022), "Toy Models of Superposition"; Eastwood & Williams (2018), "A framework
for the quantitative evaluation of disentangled representations".
"""

from __future__ import annotations

import itertools
import math

import torch

from . import exercise

NB = "02_superposition"


def _weights(seed: int, shape=(3, 2, 5)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _pentagon() -> torch.Tensor:
    """``[2, 2, 5]``: instance 0 a regular pentagon of unit vectors, instance 1 an antipodal
    pair plus one feature with a dimension to itself and two dropped features."""
    angles = torch.arange(5) * 2 * math.pi / 5
    pentagon = torch.stack([angles.cos(), angles.sin()])
    pair = torch.tensor([[1.0, -1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0]])
    return torch.stack([pentagon, pair])


# ---- 02.toy_forward -----------------------------------------------------------------


def _forward_cases():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(8, 3, 5, generator=gen) * (torch.rand(8, 3, 5, generator=gen) < 0.3)
    return {
        "W [3, 2, 5], b [3, 5], x [8, 3, 5]": (
            _weights(0),
            torch.randn(3, 5, generator=gen) * 0.3,
            x,
        ),
        "W [2, 4, 10], b [2, 10], x [16, 2, 10]": (
            _weights(1, (2, 4, 10)),
            torch.randn(2, 10, generator=gen) * 0.3,
            torch.rand(16, 2, 10, generator=gen),
        ),
    }


@exercise(
    "02.toy_forward",
    notebook=NB,
    title="The toy model's forward pass",
    difficulty=2,
    minutes=10,
    cases=_forward_cases,
    mistakes=[
        (
            "forgot the ReLU on the output",
            lambda W, b, x: torch.einsum("bim,imf->bif", torch.einsum("bif,imf->bim", x, W), W) + b,
        ),
        (
            "added the bias after the ReLU, not before",
            lambda W, b, x: (
                torch.relu(torch.einsum("bim,imf->bif", torch.einsum("bif,imf->bim", x, W), W)) + b
            ),
        ),
        (
            "mixed the instances: one W for every instance (W[0])",
            lambda W, b, x: torch.relu(x @ W[0].T @ W[0] + b),
        ),
    ],
)
def toy_forward(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x' = ReLU(W^T W x + b)`` for every instance: ``W [instance, d_hidden, feature]``,
    ``b [instance, feature]``, ``x [batch, instance, feature]`` -> ``[batch, instance,
    feature]``."""
    h = torch.einsum("bif,imf->bim", x, W)  # [batch, instance, d_hidden]
    return torch.relu(torch.einsum("bim,imf->bif", h, W) + b)


# ---- 02.importance_weighted_loss ----------------------------------------------------


def _loss_cases():
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(32, 3, 5, generator=gen) * (torch.rand(32, 3, 5, generator=gen) < 0.5)
    return {
        "x, x_hat [32, 3, 5], importance 0.9^i": (
            x,
            torch.rand(32, 3, 5, generator=gen),
            0.9 ** torch.arange(5.0),
        ),
        "x, x_hat [16, 2, 20], importance 0.7^i": (
            torch.rand(16, 2, 20, generator=gen),
            torch.rand(16, 2, 20, generator=gen),
            0.7 ** torch.arange(20.0),
        ),
    }


@exercise(
    "02.importance_weighted_loss",
    notebook=NB,
    title="The importance-weighted loss",
    difficulty=1,
    minutes=5,
    cases=_loss_cases,
    mistakes=[
        ("forgot the importance weights", lambda x, xh, imp: ((x - xh) ** 2).mean((0, 2))),
        (
            "summed over features instead of averaging",
            lambda x, xh, imp: (imp * (x - xh) ** 2).sum(-1).mean(0),
        ),
        (
            "weighted the error before squaring it (importance^2 in effect)",
            lambda x, xh, imp: ((imp * (x - xh)) ** 2).mean((0, 2)),
        ),
    ],
)
def importance_weighted_loss(
    x: torch.Tensor, x_hat: torch.Tensor, importance: torch.Tensor
) -> torch.Tensor:
    """``x``, ``x_hat [batch, instance, feature]``, ``importance [feature]`` -> ``[instance]``:
    ``mean over batch and features of importance_i * (x_i - x_hat_i)^2``."""
    return (importance * (x - x_hat) ** 2).mean(dim=(0, 2))


# ---- 02.overlap_with_others and 02.dimensionality --------------------------------------


def _geometry_cases():
    return {
        "random W [3, 2, 5]": (_weights(5),),
        "a pentagon and an antipodal pair, W [2, 2, 5]": (_pentagon(),),
        "random W [2, 5, 20]": (_weights(6, (2, 5, 20)),),
    }


def _unit(W: torch.Tensor) -> torch.Tensor:
    return W / W.norm(dim=1, keepdim=True).clamp_min(1e-8)


def _overlaps(W: torch.Tensor) -> torch.Tensor:
    """``[instance, i, j]`` = ``(Ŵ_i · W_j)^2``."""
    return torch.einsum("imf,img->ifg", _unit(W), W) ** 2


@exercise(
    "02.overlap_with_others",
    notebook=NB,
    title="How much a feature overlaps with the others",
    difficulty=2,
    minutes=10,
    cases=_geometry_cases,
    mistakes=[
        ("included j = i (that adds the feature's own norm^2)", lambda W: _overlaps(W).sum(-1)),
        (
            "did not normalise W_i (used (W_i · W_j)^2, not (Ŵ_i · W_j)^2)",
            lambda W: (torch.einsum("imf,img->ifg", W, W) ** 2).sum(-1) - W.norm(dim=1) ** 4,
        ),
        (
            "forgot to square the dot products",
            lambda W: torch.einsum("imf,img->ifg", _unit(W), W).sum(-1) - W.norm(dim=1),
        ),
    ],
)
def overlap_with_others(W: torch.Tensor) -> torch.Tensor:
    """``W [instance, d_hidden, feature]`` -> ``[instance, feature]``:
    ``sum_{j != i} (Ŵ_i · W_j)^2`` with ``Ŵ_i = W_i / ||W_i||`` (0 for a zero column)."""
    unit = W / W.norm(dim=1, keepdim=True).clamp_min(1e-8)
    sq = torch.einsum("imf,img->ifg", unit, W) ** 2  # [instance, i, j]
    return sq.sum(-1) - sq.diagonal(dim1=1, dim2=2)


@exercise(
    "02.dimensionality",
    notebook=NB,
    title="Feature dimensionality",
    difficulty=2,
    minutes=10,
    cases=_geometry_cases,
    mistakes=[
        (
            "did not normalise W_i in the denominator (used (W_i · W_j)^2)",
            lambda W: (
                W.norm(dim=1) ** 2
                / (torch.einsum("imf,img->ifg", W, W) ** 2).sum(-1).clamp_min(1e-8)
            ),
        ),
        (
            "left out j = i from the denominator",
            lambda W: (
                W.norm(dim=1) ** 2
                / (_overlaps(W).sum(-1) - _overlaps(W).diagonal(dim1=1, dim2=2)).clamp_min(1e-8)
            ),
        ),
        (
            "normalised over the wrong index: (Ŵ_j · W_i)^2, summed over j",
            lambda W: W.norm(dim=1) ** 2 / _overlaps(W).sum(-2).clamp_min(1e-8),
        ),
    ],
)
def dimensionality(W: torch.Tensor) -> torch.Tensor:
    """``W [instance, d_hidden, feature]`` -> ``D [instance, feature]``,
    ``D_i = ||W_i||^2 / sum_j (Ŵ_i · W_j)^2`` (Elhage et al. 2022); 0 for a zero column."""
    unit = W / W.norm(dim=1, keepdim=True).clamp_min(1e-8)
    denom = (torch.einsum("imf,img->ifg", unit, W) ** 2).sum(-1)  # [instance, feature]
    return W.norm(dim=1) ** 2 / denom.clamp_min(1e-8)


# ---- 02.disentanglement --------------------------------------------------------------


def _importance_cases():
    gen = torch.Generator().manual_seed(7)
    mixed = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.5, 0.5, 0]])
    sparse = torch.rand(20, 10, generator=gen) * (torch.rand(20, 10, generator=gen) < 0.3)
    sparse[3] = 0  # a dead code: no importance at all
    return {
        "three one-factor codes and one reading two, R [4, 3]": (mixed,),
        "random R [6, 4]": (torch.rand(6, 4, generator=gen),),
        "sparse R [20, 10] with a dead code": (sparse,),
    }


def _row_entropy(R: torch.Tensor) -> torch.Tensor:
    """``[code]``: the entropy in nats of each row of ``R`` normalised to sum to 1."""
    p = R / R.sum(1, keepdim=True).clamp_min(1e-12)
    return -(p * p.clamp_min(1e-12).log()).sum(1)


@exercise(
    "02.disentanglement",
    notebook=NB,
    title="DCI disentanglement from an importance matrix",
    difficulty=2,
    minutes=10,
    cases=_importance_cases,
    mistakes=[
        (
            "averaged the codes equally instead of weighting each by its share of the importance",
            lambda R: (1 - _row_entropy(R) / math.log(R.shape[1])).mean(),
        ),
        (
            "used the natural-log entropy without dividing by log(number of factors)",
            lambda R: (R.sum(1) / R.sum() * (1 - _row_entropy(R))).sum(),
        ),
        (
            "normalised each factor's column (that is completeness), not each code's row",
            lambda R: (R.sum(0) / R.sum() * (1 - _row_entropy(R.T) / math.log(R.shape[0]))).sum(),
        ),
    ],
)
def disentanglement(importance: torch.Tensor) -> torch.Tensor:
    """``importance [code, factor]`` (non-negative) -> a 0-d tensor: the DCI disentanglement
    of Eastwood & Williams (2018), ``sum_i rho_i (1 - H_K(P_i.))`` with ``P_ij = R_ij / sum_j
    R_ij``, ``H_K`` the entropy in base ``K`` = number of factors and ``rho_i = sum_j R_ij /
    sum R`` each code's share of the importance."""
    p = importance / importance.sum(1, keepdim=True).clamp_min(1e-12)  # [code, factor]
    entropy = -(p * p.clamp_min(1e-12).log()).sum(1) / math.log(importance.shape[1])
    share = importance.sum(1) / importance.sum()  # [code]
    return (share * (1 - entropy)).sum()


# ---- 02.mean_corr -----------------------------------------------------------------------


def _mcc_cases():
    gen = torch.Generator().manual_seed(8)
    s = torch.rand(500, 4, generator=gen)
    noise = 0.2 * torch.randn(500, 4, generator=gen)
    t = torch.rand(400, 3, generator=gen)
    shared = torch.stack(
        [t[:, 0] + t[:, 1], t[:, 2], t[:, 0] + 3 * torch.randn(400, generator=gen)], 1
    )
    return {
        "permuted, sign-flipped, rescaled sources + noise, [500, 4] vs [500, 4]": (
            -2.0 * s[:, [1, 3, 0, 2]] + noise,
            s,
        ),
        "one component reads two sources, [400, 3] vs [400, 3]": (shared, t),
        "unrelated codes, [300, 5] vs [300, 5]": (
            torch.randn(300, 5, generator=gen),
            torch.randn(300, 5, generator=gen),
        ),
    }


def _abs_corr(acts: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """``[component, latent]`` correlations (signed)."""
    a, t = acts - acts.mean(0), true - true.mean(0)
    return (a / a.norm(dim=0)).T @ (t / t.norm(dim=0))


def _best_matching(corr: torch.Tensor) -> torch.Tensor:
    """Mean of ``corr[perm[j], j]`` over latents j, best over one-to-one ``perm``."""
    n_lat = corr.shape[1]
    best = max(sum(float(corr[p[j], j]) for j in range(n_lat))
               for p in itertools.permutations(range(corr.shape[0]), n_lat))  # fmt: skip
    return torch.tensor(best / n_lat)


@exercise(
    "02.mean_corr",
    notebook=NB,
    title="The mean correlation coefficient (MCC)",
    difficulty=2,
    minutes=10,
    cases=_mcc_cases,
    mistakes=[
        (
            "let two latents share one component: each latent took its best component (no "
            "one-to-one matching)",
            lambda acts, true: _abs_corr(acts, true).abs().amax(0).mean(),
        ),
        (
            "forgot the absolute value: a sign-flipped component counts as -1, not 1",
            lambda acts, true: _best_matching(_abs_corr(acts, true)),
        ),
        (
            "matched component i to latent i (no search over permutations)",
            lambda acts, true: _abs_corr(acts, true).abs().diagonal().mean(),
        ),
    ],
)
def mean_corr(acts: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """``acts [n, component]``, ``true [n, latent]`` (component >= latent, a handful of each)
    -> a 0-d tensor: the mean over latents of ``|corr|`` with the component matched to it,
    under the one-to-one matching that makes this largest (Hyvärinen & Morioka 2016)."""
    return _best_matching(_abs_corr(acts, true).abs())
