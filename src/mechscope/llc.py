"""The local learning coefficient (LLC), estimated by SGLD (Lau et al. 2023).

Singular learning theory (Watanabe 2009) measures a model's effective complexity at a
solution ``w*`` by the *learning coefficient* lambda: how fast the volume of near-optimal
parameters shrinks, ``vol{w : L(w) - L(w*) < eps} ~ eps^lambda``. A regular model with
``d`` parameters has ``lambda = d / 2``; a singular one (every neural network) has less.

Lau et al. (2023), "Quantifying degeneracy in singular models via the learning
coefficient", estimate the *local* coefficient by sampling the tempered posterior
localised at ``w*``,

    p(w) ~ exp(-n beta L_n(w) - gamma / 2 |w - w*|^2),    beta = 1 / log n (Watanabe's WBIC),

with stochastic-gradient Langevin dynamics (SGLD, Welling & Teh 2011), one step

    w <- w - lr / 2 (n beta grad L_batch(w) + gamma (w - w*)) + N(0, lr),

and report ``llc = n beta (E_w[L_n(w)] - L_n(w*))``. For a quadratic loss the posterior is
Gaussian and the estimate is exactly ``d / 2`` (as ``gamma / (n beta) -> 0``);
:func:`reduced_rank_rlct` gives the known answer for a singular model, the two-layer linear
network (Aoyagi & Watanabe 2005). Developmental interpretability (review §5.2) tracks the
LLC over training checkpoints (Hoogland et al. 2024).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LLCResult", "estimate_llc", "next_token_loss", "reduced_rank_rlct"]


@dataclass(frozen=True)
class LLCResult:
    """One LLC estimate and the SGLD chains behind it.

    values: ``[chain, step]`` float64, the minibatch loss at each SGLD step (step 0 is
        ``w*`` itself); the estimate averages ``values[:, burn_in:]``.
    llc: ``nbeta * (mean loss - init_loss)``, averaged over chains.
    llc_per_chain: ``[chain]``, the same per chain; ``llc_std`` is their standard deviation
        (0.0 for one chain): the spread to quote beside ``llc``.
    init_loss: ``L_n(w*)``, the mean loss over all ``n`` rows of the data at ``w*``.
    nbeta: ``n * beta``, the posterior's inverse temperature times ``n``.
    """

    values: Tensor
    llc: float
    llc_per_chain: Tensor
    llc_std: float
    init_loss: float
    nbeta: float
    n: int
    n_params: int
    steps: int
    burn_in: int
    lr: float
    gamma: float
    batch_size: int

    def running_llc(self) -> Tensor:
        """``[chain, step]``: each chain's estimate from the steps up to each step (burn-in
        included): flat at the end when the chain has converged."""
        counts = torch.arange(1, self.values.shape[1] + 1, dtype=torch.float64)
        return self.nbeta * (self.values.cumsum(1) / counts - self.init_loss)

    def plot(self):
        """Plotly figure: every chain's loss trace and the loss at ``w*``."""
        import plotly.graph_objects as go

        fig = go.Figure()
        x = list(range(self.values.shape[1]))
        for c, trace in enumerate(self.values.tolist()):
            fig.add_trace(go.Scatter(x=x, y=trace, name=f"chain {c}", mode="lines"))
        fig.add_hline(y=self.init_loss, line_dash="dash", annotation_text="L_n(w*)")
        if self.burn_in:
            fig.add_vline(x=self.burn_in, line_dash="dot", annotation_text="burn-in")
        fig.update_layout(
            title=f"SGLD loss traces: LLC {self.llc:.2f} ± {self.llc_std:.2f}",
            xaxis_title="SGLD step",
            yaxis_title="minibatch loss",
            height=350,
        )
        return fig


def next_token_loss(model, tokens: Tensor) -> Tensor:
    """Mean next-token cross-entropy of ``model`` on ``tokens [batch, pos]``: a ``loss_fn``
    for :func:`estimate_llc` on a language model."""
    logits = model(tokens)[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def _int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name}={value!r}: must be {bound}.")
    return int(value)


def _positive(name: str, value, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and math.isfinite(value)):
        raise ValueError(f"{name}={value!r}: must be finite and {'>= 0' if allow_zero else '> 0'}.")
    return float(value)


def _as_rows(data) -> tuple[Tensor, ...]:
    """``data`` as a tuple of tensors sharing their first dimension (the ``n`` rows)."""
    parts = (data,) if isinstance(data, Tensor) else data
    if (
        not isinstance(parts, (tuple, list))
        or not parts
        or not all(isinstance(t, Tensor) for t in parts)
    ):
        raise TypeError(
            "data must be a tensor [n, ...] or a tuple of tensors sharing their first "
            f"dimension, e.g. (inputs, targets); got {type(data).__name__}."
        )
    sizes = [t.shape[0] if t.dim() else None for t in parts]
    if None in sizes or len(set(sizes)) != 1:
        raise ValueError(
            f"data: every tensor needs the same first dimension n (one row per sample), got "
            f"shapes {[tuple(t.shape) for t in parts]}."
        )
    return tuple(parts)


def _batch(rows: tuple[Tensor, ...], idx, single: bool):
    picked = tuple(t[idx] for t in rows)
    return picked[0] if single else picked


def _loss(loss_fn: Callable, model, batch) -> Tensor:
    loss = loss_fn(model, batch)
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise TypeError(
            "loss_fn(model, batch) must return the batch's mean loss as a one-element tensor, "
            f"got {type(loss).__name__}{'' if not isinstance(loss, Tensor) else tuple(loss.shape)}."
        )
    return loss.reshape(())


def _full_loss(loss_fn, model, rows, single, batch_size) -> float:
    """``L_n(w)`` over all rows, in chunks of ``batch_size`` weighted by their size."""
    n = rows[0].shape[0]
    total = 0.0
    with torch.no_grad():
        for start in range(0, n, batch_size):
            idx = slice(start, min(start + batch_size, n))
            total += float(_loss(loss_fn, model, _batch(rows, idx, single))) * (
                idx.stop - idx.start
            )
    return total / n


def estimate_llc(
    model: torch.nn.Module,
    loss_fn: Callable,
    data,
    *,
    steps: int = 200,
    lr: float = 1e-4,
    gamma: float = 100.0,
    beta: float | None = None,
    batch_size: int = 64,
    n_chains: int = 4,
    burn_in: int = 0,
    seed: int = 0,
) -> LLCResult:
    """Estimate the local learning coefficient of ``model`` at its current weights ``w*``.

    model: any ``torch.nn.Module``; SGLD runs on a deep copy, so the model's weights, grads
        and mode are untouched. Parameters with ``requires_grad=False`` stay fixed.
    loss_fn: ``loss_fn(model, batch) -> one-element tensor``, the batch's *mean* loss
        (negative log-likelihood per sample). :func:`next_token_loss` for language models.
    data: a tensor ``[n, ...]`` or a tuple of tensors sharing ``n`` (e.g. ``(inputs,
        targets)``); a batch is the same structure indexed by row. ``n`` sets ``beta``.
    steps: SGLD steps per chain; burn_in: the first steps left out of the mean.
    lr: the SGLD step size epsilon (devinterp's ``lr``, the same update).
    gamma: localisation strength (Lau et al.'s gamma): a Gaussian prior of precision
        ``gamma`` centred at ``w*`` keeps the chain near this solution.
    beta: inverse temperature; ``None`` is Watanabe's ``1 / log n``.
    batch_size: rows per SGLD minibatch (drawn without replacement each step); ``n`` gives
        full-batch Langevin dynamics.
    n_chains, seed: independent chains, each seeded from ``seed`` (chain ``c`` is the same
        whatever ``n_chains``); nothing touches the global RNG.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be callable as loss_fn(model, batch) -> mean loss, got {loss_fn!r}."
        )
    rows = _as_rows(data)
    single = isinstance(data, Tensor)
    n = rows[0].shape[0]
    steps = _int("steps", steps, 1)
    burn_in = _int("burn_in", burn_in, 0, steps - 1)
    n_chains = _int("n_chains", n_chains, 1)
    batch_size = _int("batch_size", batch_size, 1, n)
    seed = _int("seed", seed, -(2**63))
    lr = _positive("lr", lr)
    gamma = _positive("gamma", gamma, allow_zero=True)
    if beta is None:
        if n < 2:
            raise ValueError(f"data has n={n} rows: beta = 1 / log n needs n >= 2, or pass beta=.")
        beta = 1.0 / math.log(n)
    beta = _positive("beta", beta)
    nbeta = n * beta
    try:
        work = copy.deepcopy(model)
    except Exception as err:  # e.g. a model holding a remote connection
        raise TypeError(
            f"model of type {type(model).__name__} cannot be deep-copied ({err}); "
            "estimate_llc samples on a copy so that your weights stay untouched."
        ) from err
    params = [p for p in work.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no parameter with requires_grad=True: nothing to sample.")
    anchor = [p.detach().clone() for p in params]
    init_loss = _full_loss(loss_fn, work, rows, single, batch_size)
    # One generator per chain, its seed drawn from `seed`: chain c is the same for any n_chains.
    chain_seeds = torch.randint(
        -(2**62), 2**62, (n_chains,), generator=torch.Generator().manual_seed(seed)
    ).tolist()
    traces = torch.empty(n_chains, steps, dtype=torch.float64)
    for c, chain_seed in enumerate(chain_seeds):
        gen = torch.Generator().manual_seed(chain_seed)
        with torch.no_grad():
            for p, a in zip(params, anchor, strict=True):
                p.copy_(a)
        for t in range(steps):
            idx = slice(None) if batch_size == n else torch.randperm(n, generator=gen)[:batch_size]
            loss = _loss(loss_fn, work, _batch(rows, idx, single))
            traces[c, t] = value = loss.item()
            if not math.isfinite(value):
                raise ValueError(
                    f"SGLD chain {c} diverged at step {t} (loss {value}): lower lr={lr} "
                    f"or raise gamma={gamma}."
                )
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            with torch.no_grad():
                for p, g, a in zip(params, grads, anchor, strict=True):
                    drift = gamma * (p - a)
                    if g is not None:
                        drift += nbeta * g
                    noise = torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)
                    p.add_(drift, alpha=-lr / 2).add_(noise, alpha=math.sqrt(lr))
    per_chain = nbeta * (traces[:, burn_in:].mean(1) - init_loss)
    return LLCResult(
        values=traces,
        llc=float(per_chain.mean()),
        llc_per_chain=per_chain,
        llc_std=float(per_chain.std()) if n_chains > 1 else 0.0,
        init_loss=init_loss,
        nbeta=nbeta,
        n=n,
        n_params=sum(p.numel() for p in params),
        steps=steps,
        burn_in=burn_in,
        lr=lr,
        gamma=gamma,
        batch_size=batch_size,
    )


def reduced_rank_rlct(d_in: int, d_hidden: int, d_out: int, rank: int) -> float:
    """The learning coefficient of a two-layer linear network ``x -> B A x`` (``A [d_hidden,
    d_in]``, ``B [d_out, d_hidden]``) at a true map of rank ``rank``: reduced-rank regression,
    Aoyagi & Watanabe (2005), Theorem 1 (Aoyagi 2024 extends it to deeper linear networks).

    A regular model with the same ``d_hidden * (d_in + d_out)`` parameters would have half
    that; the rank-``rank`` solution set makes this smaller.
    """
    m = _int("d_in", d_in, 1)
    h = _int("d_hidden", d_hidden, 1)
    n = _int("d_out", d_out, 1)
    r = _int("rank", rank, 0, min(m, h, n))
    if m + n < h + r:
        return m * n / 2
    if m + h < n + r:
        return (h * m - h * r + n * r) / 2
    if n + h < m + r:
        return (h * n - h * r + m * r) / 2
    # All three "triangle" inequalities hold.
    odd = (m + h + n + r) % 2
    return (2 * (h + r) * (m + n) - (m - n) ** 2 - (h + r) ** 2 + odd) / 8
