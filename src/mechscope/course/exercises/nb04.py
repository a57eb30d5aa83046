"""Exercises of notebook 04 (induction heads): OV circuits, copying and composition scores.

Elhage et al. (2021), "A Mathematical Framework for Transformer Circuits"; Olsson et al. (2022).
"""

from __future__ import annotations

from functools import cache

import torch

from . import exercise

NB = "04_induction_heads"


@cache
def _random_model():
    """A random-init 2-layer model: d_model 16, 3 heads of d_head 4, 11 words."""
    from mechscope.models import Transformer, TransformerConfig

    cfg = TransformerConfig(
        n_layers=2,
        d_model=16,
        n_heads=3,
        d_head=4,
        d_vocab=11,
        n_ctx=8,
        d_mlp=None,
        init_std=0.3,
        seed=1,
    )
    return Transformer(cfg).requires_grad_(False)


@cache
def _zoo():
    import mechscope

    return mechscope.load("induction-2l")


def _model_cases():
    return {
        "a random 2-layer model (d_model 16, 3 heads, 11 words), layer 1": (_random_model(), 1),
        "induction-2l, layer 1": (_zoo(), 1),
    }


def _ov_parts(model, layer):
    attn = model.blocks[layer].attn
    return model.W_E.detach(), attn.W_V.detach(), attn.W_O.detach(), model.W_U.detach()


@exercise(
    "04.full_ov_circuit",
    notebook=NB,
    title="The full OV circuit W_E W_V W_O W_U",
    difficulty=1,
    minutes=8,
    cases=_model_cases,
    mistakes=[
        (
            "transposed: [logit of, attended word] instead of [attended word, logit of]",
            lambda model, layer: full_ov_circuit(model, layer).transpose(-1, -2),
        ),
        (
            "forgot the unembedding W_U (that is W_E W_OV, [head, d_vocab, d_model])",
            lambda model, layer: (lambda e, v, o, u: e @ v @ o)(*_ov_parts(model, layer)),
        ),
        (
            "used the keys W_K instead of the values W_V",
            lambda model, layer: (
                lambda e, v, o, u: e @ model.blocks[layer].attn.W_K.detach() @ o @ u
            )(*_ov_parts(model, layer)),
        ),
    ],
)
def full_ov_circuit(model, layer: int) -> torch.Tensor:
    """``W_E W_V^h W_O^h W_U`` for every head ``h`` of ``layer``: ``[head, d_vocab, d_vocab]``.

    W_E ``[d_vocab, d_model]``, W_V ``[head, d_model, d_head]``, W_O ``[head, d_head, d_model]``,
    W_U ``[d_model, d_vocab]``; row = the attended word, column = the logit it changes.
    """
    W_E, W_V, W_O, W_U = _ov_parts(model, layer)
    return W_E @ W_V @ W_O @ W_U


def _low_rank(seed: int, shape=(3, 12, 12), rank: int = 4) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    *lead, m, n = shape
    return torch.randn(*lead, m, rank, generator=gen) @ torch.randn(*lead, rank, n, generator=gen)


def _copying_cases():
    return {
        "random rank-4 matrices [3, 12, 12]": (_low_rank(0),),
        "induction-2l's full OV circuits, layer 1 [4, 49, 49]": (full_ov_circuit(_zoo(), 1),),
    }


def _eig(ov):
    return torch.linalg.eigvals(ov.double())


@exercise(
    "04.copying_score",
    notebook=NB,
    title="The copying score from eigenvalues",
    difficulty=2,
    minutes=8,
    cases=_copying_cases,
    mistakes=[
        (
            "the fraction of eigenvalues with a positive real part (the zero eigenvalues of a "
            "low-rank matrix count too): use sum(λ) / sum(|λ|)",
            lambda ov: (_eig(ov).real > 0).double().mean(-1),
        ),
        (
            "divided by the sum of |Re λ| instead of the sum of |λ|",
            lambda ov: _eig(ov).sum(-1).real / _eig(ov).real.abs().sum(-1),
        ),
        (
            "used singular values (always positive, so the score is always 1), not eigenvalues",
            lambda ov: (lambda s: s.sum(-1) / s.abs().sum(-1))(torch.linalg.svdvals(ov.double())),
        ),
    ],
)
def copying_score(ov: torch.Tensor) -> torch.Tensor:
    """``ov [..., d_vocab, d_vocab]`` (square) -> ``[...]``: ``Re(sum λ) / sum |λ|`` over the
    eigenvalues λ of each matrix, in [-1, 1]; near 1 for a copying head (Elhage et al. 2021)."""
    eig = torch.linalg.eigvals(ov.double())
    return (eig.sum(-1) / eig.abs().sum(-1)).real


def _pair(seed: int, shape=(2, 10, 10)):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)


def _composition_cases():
    model = _zoo()
    attn0, attn1 = model.blocks[0].attn, model.blocks[1].attn
    ov = (attn0.W_V @ attn0.W_O).detach()[2]  # the previous-token head L0H2
    qk = (attn1.W_Q @ attn1.W_K.transpose(-1, -2)).detach()[2]  # the induction head L1H2
    return {
        "random matrices [2, 10, 10] and [2, 10, 10]": _pair(0),
        "random non-square matrices [6, 4] and [4, 5]": (_pair(1, (6, 4))[0], _pair(1, (4, 5))[1]),
        "induction-2l: L0H2's W_OV and L1H2's W_QK^T [64, 64]": (ov, qk.T),
    }


def _fro(x):
    return x.pow(2).sum((-2, -1)).sqrt()


@exercise(
    "04.composition_score",
    notebook=NB,
    title="The composition score",
    difficulty=1,
    minutes=5,
    cases=_composition_cases,
    mistakes=[
        (
            "multiplied in the wrong order: right @ left is not what the reader sees",
            lambda left, right: _fro(right @ left) / (_fro(left) * _fro(right)),
        ),
        (
            "forgot to divide by the norms of the two factors",
            lambda left, right: _fro(left @ right),
        ),
        (
            "used the largest singular value (spectral norm), not the Frobenius norm",
            lambda left, right: (
                torch.linalg.matrix_norm(left @ right, 2)
                / (torch.linalg.matrix_norm(left, 2) * torch.linalg.matrix_norm(right, 2))
            ),
        ),
    ],
)
def composition_score(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``left [..., m, r]``, ``right [..., r, n]`` -> ``[...]``:
    ``||left @ right||_F / (||left||_F ||right||_F)`` (Elhage et al. 2021), in [0, 1]."""
    return _fro(left @ right) / (_fro(left) * _fro(right))


def _k_cases():
    return {
        "a random 2-layer model (3 heads), layers 0 -> 1": (_random_model(), 0, 1),
        "induction-2l, layers 0 -> 1": (_zoo(), 0, 1),
    }


def _circuits(model, early_layer, late_layer):
    a0, a1 = model.blocks[early_layer].attn, model.blocks[late_layer].attn
    ov = (a0.W_V @ a0.W_O).detach()  # [early_head, d_model, d_model]
    qk = (a1.W_Q @ a1.W_K.transpose(-1, -2)).detach()  # [late_head, d_model, d_model]
    ov_late = (a1.W_V @ a1.W_O).detach()
    return ov, qk, ov_late


def _scores(ov, late):
    return composition_score(ov[:, None], late[None])


@exercise(
    "04.k_composition",
    notebook=NB,
    title="K-composition between two layers' heads",
    difficulty=2,
    minutes=12,
    cases=_k_cases,
    mistakes=[
        (
            "Q-composition: the reader's W_QK, not its transpose (the keys read through W_QK^T)",
            lambda model, e, la: (lambda ov, qk, v: _scores(ov, qk))(*_circuits(model, e, la)),
        ),
        (
            "V-composition: the reader's W_OV instead of its W_QK^T",
            lambda model, e, la: (lambda ov, qk, v: _scores(ov, v))(*_circuits(model, e, la)),
        ),
        (
            "axes swapped: [late_head, early_head]",
            lambda model, e, la: k_composition(model, e, la).T,
        ),
    ],
)
def k_composition(model, early_layer: int, late_layer: int) -> torch.Tensor:
    """``[early_head, late_head]``: the composition score of each early head's
    ``W_OV = W_V W_O`` with each late head's ``W_QK^T = (W_Q W_K^T)^T`` (K-composition:
    the late head's keys read what the early head wrote). Elhage et al. (2021)."""
    a0, a1 = model.blocks[early_layer].attn, model.blocks[late_layer].attn
    ov = (a0.W_V @ a0.W_O).detach()
    qk = (a1.W_Q @ a1.W_K.transpose(-1, -2)).detach()
    return composition_score(ov[:, None], qk.transpose(-1, -2)[None])
