"""Exercises of notebook 03 (sparse dictionary learning): the SAE encoder (ReLU, TopK and
Gated), the SAE loss and the dead-feature count.

Bricken et al. (2023), "Towards Monosemanticity"; Gao et al. (2024), "Scaling and evaluating
sparse autoencoders"; Rajamanoharan et al. (2024), "Improving Dictionary Learning with
Gated Sparse Autoencoders"; Anthropic (2024), "Circuits Updates - April 2024" (the L1 penalty
weighted by decoder norms).
"""

from __future__ import annotations

from functools import cache

import torch

from . import exercise

NB = "03_sparse_dictionary_learning"


@cache
def _grammar() -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """grammar-2l's first-MLP neurons on 4 sentences ``[4 * n_ctx, d_mlp]`` and the shipped
    SAE's weights ``(W_enc, b_enc, W_dec, b_dec)``."""
    import mechscope
    from mechscope.sae import load_zoo_sae
    from mechscope.toy.grammar import grammar_batch

    model = mechscope.load("grammar-2l")
    tokens, _ = grammar_batch(4, model.cfg.n_ctx, seed=7, vocab=model.tokenizer.words[1:])
    _, cache_ = model.run_with_cache(tokens, names="blocks.0.mlp.hook_post")
    neurons = cache_["post", 0].reshape(-1, model.cfg.d_mlp)
    sae = load_zoo_sae("grammar-2l-mlp0")
    weights = tuple(p.detach() for p in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec))
    return neurons.detach(), weights


def _random_sae(seed: int, d_in: int = 8, d_sae: int = 32, n: int = 10):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=gen)
    W_enc = torch.randn(d_in, d_sae, generator=gen) / d_in**0.5
    b_enc = torch.randn(d_sae, generator=gen) * 0.1
    b_dec = torch.randn(d_in, generator=gen) * 0.5
    return x, W_enc, b_enc, b_dec


def _pre(x, W_enc, b_enc, b_dec):
    return (x - b_dec) @ W_enc + b_enc


# ---- 03.sae_encode ---------------------------------------------------------------------


def _encode_cases():
    neurons, (W_enc, b_enc, _, b_dec) = _grammar()
    return {
        "random SAE, x [10, 8], d_sae 32": _random_sae(0),
        "the shipped grammar-2l-mlp0 weights on 64 tokens of neurons [64, 256]": (
            neurons,
            W_enc,
            b_enc,
            b_dec,
        ),
    }


@exercise(
    "03.sae_encode",
    notebook=NB,
    title="The SAE encoder (ReLU)",
    difficulty=1,
    minutes=5,
    cases=_encode_cases,
    mistakes=[
        (
            "forgot to subtract b_dec before the encoder",
            lambda x, We, be, bd: torch.relu(x @ We + be),
        ),
        (
            "added b_dec instead of subtracting it",
            lambda x, We, be, bd: torch.relu((x + bd) @ We + be),
        ),
        ("forgot the ReLU", lambda x, We, be, bd: _pre(x, We, be, bd)),
    ],
)
def sae_encode(
    x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor
) -> torch.Tensor:
    """``f = ReLU((x - b_dec) @ W_enc + b_enc)``: ``x [batch, d_in]``, ``W_enc [d_in, d_sae]``,
    ``b_enc [d_sae]``, ``b_dec [d_in]`` -> ``[batch, d_sae]``."""
    return torch.relu((x - b_dec) @ W_enc + b_enc)


# ---- 03.topk_encode -------------------------------------------------------------------


def _topk_cases():
    neurons, (W_enc, b_enc, _, b_dec) = _grammar()
    return {
        "random SAE, x [10, 8], d_sae 32, k 4": (*_random_sae(1), 4),
        "the shipped grammar-2l-mlp0 (k 8) on neurons [64, 256]": (
            neurons,
            W_enc,
            b_enc,
            b_dec,
            8,
        ),
    }


def _keep(pre: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(pre).scatter(-1, idx, torch.relu(pre.gather(-1, idx)))


@exercise(
    "03.topk_encode",
    notebook=NB,
    title="The TopK encoder",
    difficulty=2,
    minutes=10,
    cases=_topk_cases,
    mistakes=[
        (
            "kept the k largest |pre-activations| (a large negative one is not a feature)",
            lambda x, We, be, bd, k: _keep(p := _pre(x, We, be, bd), p.abs().topk(k, -1).indices),
        ),
        (
            "forgot to subtract b_dec before the encoder",
            lambda x, We, be, bd, k: _keep(p := x @ We + be, p.topk(k, -1).indices),
        ),
        (
            "the k largest over the batch (dim 0), not over features",
            lambda x, We, be, bd, k: _keep(p := _pre(x, We, be, bd).T, p.topk(k, -1).indices).T,
        ),
    ],
)
def topk_encode(
    x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor, k: int
) -> torch.Tensor:
    """TopK SAE features (Gao et al. 2024): the ``k`` largest pre-activations
    ``(x - b_dec) @ W_enc + b_enc`` of each row, ReLU'd, the rest 0. Shapes as
    ``sae_encode``; returns ``[batch, d_sae]``."""
    pre = (x - b_dec) @ W_enc + b_enc  # [batch, d_sae]
    values, idx = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, idx, torch.relu(values))


# ---- 03.sae_loss ----------------------------------------------------------------------


def _loss_cases():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(12, 8, generator=gen)
    f = torch.relu(torch.randn(12, 32, generator=gen) - 0.8)
    W_dec = torch.randn(32, 8, generator=gen) * 0.5  # rows of different norms
    neurons, (W_enc, b_enc, W_dec_zoo, b_dec_zoo) = _grammar()
    f_zoo = torch.relu(_pre(neurons, W_enc, b_enc, b_dec_zoo))
    return {
        "random x [12, 8], f [12, 32], W_dec [32, 8] (rows of any norm), l1 0.1": (
            x,
            f,
            W_dec,
            torch.randn(8, generator=gen),
            0.1,
        ),
        "the shipped SAE's weights on neurons [64, 256], ReLU features, l1 0.003": (
            neurons,
            f_zoo,
            W_dec_zoo,
            b_dec_zoo,
            3e-3,
        ),
    }


def _mse(x, f, W_dec, b_dec):
    return (f @ W_dec + b_dec - x).pow(2).sum(-1).mean()


@exercise(
    "03.sae_loss",
    notebook=NB,
    title="The SAE loss",
    difficulty=2,
    minutes=10,
    cases=_loss_cases,
    mistakes=[
        (
            "averaged the squared error over d_in too (torch.mean of everything)",
            lambda x, f, W, b, l1: (
                (f @ W + b - x).pow(2).mean() + l1 * (f * W.norm(dim=1)).sum(-1).mean()
            ),
        ),
        (
            "an L1 penalty on f alone, not weighted by the decoder rows' norms",
            lambda x, f, W, b, l1: _mse(x, f, W, b) + l1 * f.sum(-1).mean(),
        ),
        ("forgot the sparsity penalty", lambda x, f, W, b, l1: _mse(x, f, W, b)),
    ],
)
def sae_loss(
    x: torch.Tensor,
    f: torch.Tensor,
    W_dec: torch.Tensor,
    b_dec: torch.Tensor,
    l1_coefficient: float,
) -> torch.Tensor:
    """``x [batch, d_in]``, features ``f [batch, d_sae]``, ``W_dec [d_sae, d_in]``,
    ``b_dec [d_in]`` -> a scalar: ``mean_batch ||x - x_hat||^2 + l1_coefficient * mean_batch
    sum_j f_j ||W_dec[j]||``, with ``x_hat = f @ W_dec + b_dec``."""
    x_hat = f @ W_dec + b_dec
    mse = (x - x_hat).pow(2).sum(-1).mean()
    l1 = (f * W_dec.norm(dim=1)).sum(-1).mean()
    return mse + l1_coefficient * l1


# ---- 03.dead_features -----------------------------------------------------------------


def _dead_cases():
    gen = torch.Generator().manual_seed(3)
    f = torch.relu(torch.randn(50, 40, generator=gen) - 2.0)  # some columns never fire
    neurons, (W_enc, b_enc, _, b_dec) = _grammar()
    return {
        "random features [50, 40]": (f,),
        "the shipped SAE's TopK features on neurons [64, 256]": (
            topk_encode(neurons, W_enc, b_enc, b_dec, 8),
        ),
    }


@exercise(
    "03.dead_features",
    notebook=NB,
    title="Counting dead features",
    difficulty=1,
    minutes=5,
    cases=_dead_cases,
    mistakes=[
        (
            "counted the live features (that fire at least once), not the dead ones",
            lambda f: int((f > 0).any(0).sum()),
        ),
        (
            "counted inputs on which nothing fires (dim 1), not features",
            lambda f: int((f <= 0).all(1).sum()),
        ),
        (
            "returned the fraction of dead features, not their number",
            lambda f: float((f <= 0).all(0).float().mean()),
        ),
    ],
)
def dead_features(f: torch.Tensor) -> int:
    """Feature activations ``f [batch, d_sae]`` -> the number of features that fire (> 0)
    on none of the inputs."""
    return int((f <= 0).all(dim=0).sum())


# ---- 03.gated_encode ------------------------------------------------------------------


def _gated_cases():
    gen = torch.Generator().manual_seed(4)
    x, W_enc, b_gate, b_dec = _random_sae(5)
    r_mag = torch.randn(32, generator=gen) * 0.5
    b_mag = torch.randn(32, generator=gen) * 0.3
    neurons, (W_zoo, b_zoo, _, b_dec_zoo) = _grammar()
    r_zoo = torch.randn(W_zoo.shape[1], generator=gen) * 0.3
    b_mag_zoo = torch.randn(W_zoo.shape[1], generator=gen) * 0.2 - 0.1
    return {
        "random gated SAE, x [10, 8], d_sae 32": (x, W_enc, b_gate, r_mag, b_mag, b_dec),
        "grammar-2l-mlp0's encoder, random r_mag / b_mag, on neurons [64, 256]": (
            neurons,
            W_zoo,
            b_zoo,
            r_zoo,
            b_mag_zoo,
            b_dec_zoo,
        ),
    }


@exercise(
    "03.gated_encode",
    notebook=NB,
    title="The Gated SAE encoder",
    difficulty=2,
    minutes=10,
    cases=_gated_cases,
    mistakes=[
        (
            "gated on the magnitude path (pi_mag > 0) instead of the gate path",
            lambda x, We, bg, r, bm, bd: torch.relu((x - bd) @ We * r.exp() + bm),
        ),
        (
            "multiplied by ReLU(pi_gate) instead of the 0/1 gate: the sizes shrink again",
            lambda x, We, bg, r, bm, bd: (
                torch.relu(_pre(x, We, bg, bd)) * torch.relu((x - bd) @ We * r.exp() + bm)
            ),
        ),
        (
            "scaled W_enc by r_mag, not exp(r_mag)",
            lambda x, We, bg, r, bm, bd: (
                (_pre(x, We, bg, bd) > 0) * torch.relu((x - bd) @ We * r + bm)
            ),
        ),
    ],
)
def gated_encode(
    x: torch.Tensor,
    W_enc: torch.Tensor,
    b_gate: torch.Tensor,
    r_mag: torch.Tensor,
    b_mag: torch.Tensor,
    b_dec: torch.Tensor,
) -> torch.Tensor:
    """Gated SAE features (Rajamanoharan et al. 2024): ``1[pi_gate > 0] * ReLU(pi_mag)`` with
    ``pi_gate = (x - b_dec) @ W_enc + b_gate`` and ``pi_mag = (x - b_dec) @ (W_enc *
    exp(r_mag)) + b_mag``. ``x [batch, d_in]``, ``W_enc [d_in, d_sae]``, ``b_gate``, ``r_mag``,
    ``b_mag`` ``[d_sae]``, ``b_dec [d_in]`` -> ``[batch, d_sae]``."""
    centred = x - b_dec
    gate = centred @ W_enc + b_gate > 0
    mag = torch.relu(centred @ (W_enc * r_mag.exp()) + b_mag)
    return gate * mag
