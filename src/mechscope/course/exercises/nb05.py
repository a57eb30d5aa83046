"""Exercises of notebook 05 (grokking): the Fourier basis of Z_p, key frequencies, the
cosine logits and the share of attention and MLP activity at the key frequencies.

Nanda et al. (2023), "Progress measures for grokking via mechanistic interpretability".
"""

from __future__ import annotations

import math
from functools import cache

import torch

from . import exercise

NB = "05_grokking_and_modular_addition"


def _basis(p: int, *, normalise: bool = True, sin_first: bool = False, two_pi: bool = True):
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.ones(p, dtype=torch.float64)]
    for k in range(1, p // 2 + 1):
        w = (2 * math.pi if two_pi else 1.0) * k / p
        pair = [torch.cos(w * x), torch.sin(w * x)]
        rows += pair[::-1] if sin_first else pair
    basis = torch.stack(rows)
    if normalise:
        basis = basis / basis.norm(dim=1, keepdim=True)
    return basis.float()


@exercise(
    "05.fourier_basis",
    notebook=NB,
    title="The Fourier basis of Z_p",
    difficulty=1,
    minutes=8,
    cases=lambda: {"p = 7": (7,), "p = 113": (113,)},
    mistakes=[
        (
            "rows not normalised: divide each row by its norm so that the basis is orthonormal",
            lambda p: _basis(p, normalise=False),
        ),
        (
            "sin before cos in each pair: the order is constant, cos 1, sin 1, cos 2, ...",
            lambda p: _basis(p, sin_first=True),
        ),
        ("angles k x / p without the 2π: use 2π k x / p", lambda p: _basis(p, two_pi=False)),
    ],
)
def fourier_basis(p: int) -> torch.Tensor:
    """``[p, p]`` for odd ``p``: rows constant, cos(2π·1·x/p), sin(2π·1·x/p), ..., cos and sin
    of frequency ``p // 2``, each divided by its norm (orthonormal rows), float32."""
    return _basis(p)


@cache
def _modadd():
    import mechscope

    return mechscope.load("modadd-1l")


def _embedding(p: int = 113) -> torch.Tensor:
    return _modadd().W_E.detach()[1 : p + 1]


def _norms_cases():
    gen = torch.Generator().manual_seed(0)
    return {
        "a random embedding [13, 8] (p = 13)": (torch.randn(13, 8, generator=gen),),
        "modadd-1l's number embeddings [113, 128]": (_embedding(),),
    }


def _coefs(W_E):
    p = W_E.shape[0]
    return _basis(p).double() @ W_E.double()  # [p, d_model] in the Fourier basis


@exercise(
    "05.frequency_norms",
    notebook=NB,
    title="The embedding's norm in each frequency",
    difficulty=2,
    minutes=10,
    cases=_norms_cases,
    mistakes=[
        ("squared norms: take the square root", lambda W_E: frequency_norms(W_E).pow(2)),
        (
            "the cos component only: a frequency's norm counts its cos and sin rows together",
            lambda W_E: _coefs(W_E)[1::2].norm(dim=1).float(),
        ),
        (
            "off by one: paired the constant row with cos 1 (skip row 0, then pair rows 1-2, 3-4, ...)",
            lambda W_E: _coefs(W_E)[:-1].reshape(W_E.shape[0] // 2, -1).norm(dim=1).float(),
        ),
    ],
)
def frequency_norms(W_E: torch.Tensor) -> torch.Tensor:
    """``W_E [p, d_model]`` (one row per number 0..p-1) -> ``[p // 2]``: for k = 1..p//2, the
    norm of the embedding's components along cos k and sin k together,
    ``sqrt(|c_cos k|^2 + |c_sin k|^2)`` where ``c = fourier_basis(p) @ W_E``."""
    p = W_E.shape[0]
    coef = _coefs(W_E)
    return coef[1:].reshape(p // 2, 2, -1).pow(2).sum((1, 2)).sqrt().float()


def _cos(p: int, freqs, sign_c: float = -1.0, two_pi: bool = True) -> torch.Tensor:
    a = torch.arange(p).repeat_interleave(p)[:, None].double()
    b = torch.arange(p).repeat(p)[:, None].double()
    c = torch.arange(p)[None].double()
    out = torch.zeros(p * p, p, dtype=torch.float64)
    for k in freqs:
        w = (2 * math.pi if two_pi else 1.0) * k / p
        out += torch.cos(w * (a + b + sign_c * c))
    return out.float()


@exercise(
    "05.cos_logits",
    notebook=NB,
    title="The logits as cosines of w(a + b - c)",
    difficulty=2,
    minutes=10,
    cases=lambda: {
        "p = 7, frequencies [1, 3]": (7, [1, 3]),
        "p = 113, modadd-1l's key frequencies": (113, [1, 2, 15, 19, 22, 30, 38]),
    },
    mistakes=[
        (
            "a + b + c: the answer c enters with a minus sign, cos(w (a + b - c))",
            lambda p, freqs: _cos(p, freqs, sign_c=1.0),
        ),
        (
            "w = k / p: the angular frequency is w = 2π k / p",
            lambda p, freqs: _cos(p, freqs, two_pi=False),
        ),
        (
            "rows ordered (b, a) and columns mixed up: return [p * p, p], row a * p + b, column c",
            lambda p, freqs: _cos(p, freqs).reshape(p, p, p).transpose(0, 2).reshape(p * p, p),
        ),
    ],
    atol=1e-4,
)
def cos_logits(p: int, freqs: list[int]) -> torch.Tensor:
    """``[p * p, p]``: row ``a * p + b`` (as ``modadd.all_pairs``), column ``c``:
    ``sum_k cos(w_k (a + b - c))`` with ``w_k = 2π k / p`` over ``k`` in ``freqs``
    (Nanda et al. 2023)."""
    # cos(w_k (a + b - c)) depends on (a + b - c) mod p only: tabulate it once, then index.
    d = torch.arange(p, dtype=torch.float64)
    table = sum(torch.cos(2 * math.pi * k / p * d) for k in freqs) + 0 * d
    a = torch.arange(p).repeat_interleave(p)[:, None]
    b = torch.arange(p).repeat(p)[:, None]
    return table[(a + b - torch.arange(p)[None]) % p].float()


def _share(
    acts: torch.Tensor, freqs, *, keep_const: bool = False, power: int = 2, cos_only: bool = False
) -> torch.Tensor:
    p = acts.shape[0]
    basis = _basis(p).double()
    x = acts.double()  # [a, b, n]
    coef = torch.einsum("ia,abn->ibn", basis, x)
    coef = torch.einsum("jb,ibn->ijn", basis, coef)  # [freq_a, freq_b, n]
    energy = coef.abs().pow(power)
    if not keep_const:
        energy[0, 0] = 0
    keep = torch.zeros(p, dtype=torch.bool)
    keep[0] = True
    for k in freqs:
        keep[2 * k - 1] = True
        keep[2 * k] = not cos_only
    mask = keep[:, None] & keep[None, :]
    return (energy[mask].sum(0) / energy.sum((0, 1))).float()


def _embedding_sums(p: int = 113) -> torch.Tensor:
    """modadd-1l's ``W_E[a] + W_E[b]`` for every pair: ``[p, p, d_model]`` (no forward pass)."""
    W_E = _embedding(p)
    return W_E[:, None, :] + W_E[None, :, :]


def _share_cases():
    gen = torch.Generator().manual_seed(3)
    return {
        "random activations [7, 7, 3], frequencies [2]": (torch.randn(7, 7, 3, generator=gen), [2]),
        "modadd-1l: W_E[a] + W_E[b] [113, 113, 128], key frequencies": (
            _embedding_sums(),
            [1, 2, 15, 19, 22, 30, 38],
        ),
    }


@exercise(
    "05.key_frequency_share",
    notebook=NB,
    title="The share of an activation's variance at the key frequencies",
    difficulty=3,
    minutes=15,
    cases=_share_cases,
    mistakes=[
        (
            "kept the constant term (the mean) in the variance: zero coefficient (0, 0) first",
            lambda acts, freqs: _share(acts, freqs, keep_const=True),
        ),
        (
            "summed |coefficients|, not squared coefficients (variance is a sum of squares)",
            lambda acts, freqs: _share(acts, freqs, power=1),
        ),
        (
            "kept the cos rows of the key frequencies only: each frequency is its cos and sin rows",
            lambda acts, freqs: _share(acts, freqs, cos_only=True),
        ),
    ],
)
def key_frequency_share(acts: torch.Tensor, freqs: list[int]) -> torch.Tensor:
    """``acts [p, p, n]`` (a function of the inputs ``a``, ``b`` for each of ``n`` heads or
    neurons) -> ``[n]``: the fraction of each one's variance (its squared 2-D Fourier
    coefficients, the constant term left out) in the terms whose ``a``- and ``b``-frequencies
    are both the constant or one of ``freqs`` (cos and sin)."""
    return _share(acts, freqs)
