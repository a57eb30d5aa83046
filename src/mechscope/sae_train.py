"""Training sparse autoencoders on cached activations, and data to test them on.

``train_sae(acts, SAEConfig(...))`` fits an :class:`~mechscope.sae.SAE` to any
tensor of activations ``[..., d_in]`` (from ``model.run_with_cache`` or
:func:`collect_activations`), with a progress bar. Recipes:

- ReLU + L1 (Bricken et al. 2023): loss = ``||x - x̂||^2 + l1_coefficient * sum_i f_i``
  (decoder rows are unit norm, so ``f_i`` is the feature's size). The L1 coefficient
  ramps up linearly over ``l1_warmup_steps`` (Anthropic, "Circuits Updates", April 2024).
- Gated (Rajamanoharan et al. 2024): loss = ``||x - x̂||^2 + l1_coefficient * ||ReLU(π_gate)||_1
  + ||x - x̂_frozen(ReLU(π_gate))||^2``: the penalty and an auxiliary reconstruction through a
  frozen decoder train the gate; the magnitudes feel no penalty, so they do not shrink.
- TopK (Gao et al. 2024): loss = ``||x - x̂||^2 + aux_k_coefficient * AuxK``, where AuxK
  asks the ``k_aux`` largest *dead* latents to reconstruct the residual error, which
  revives dead features.

After each Adam step decoder rows are renormalised to unit norm, and the part of their
gradient along themselves is removed first (Bricken 2023), so the step only rotates them.

:func:`synthetic_superposition` makes data with *known* features in superposition
(Sharkey et al. 2022): an SAE should find them (mean max cosine similarity near 1).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import _sae_gated
from ._core import as_tokens
from .sae import SAE, SAEConfig, check_finite, check_hook_name, evaluate


def _synthetic(n_features: int, d: int, n_samples: int, p_active: float, seed: int):
    """``(acts [n_samples, d], features [n_features, d], coefficients [n_samples, n_features])``."""
    if n_features < 1 or d < 1 or n_samples < 1:
        raise ValueError(
            f"n_features={n_features}, d={d}, n_samples={n_samples}; all must be >= 1."
        )
    if not 0 < p_active <= 1:
        raise ValueError(f"p_active={p_active}; expected a probability in (0, 1].")
    # Offset so that this stream never equals an SAE's init stream (SAEConfig.seed), which
    # would start the SAE on the true features.
    gen = torch.Generator().manual_seed(0x5EED0000 + seed)
    features = F.normalize(torch.randn(n_features, d, generator=gen), dim=-1)
    coeff = torch.rand(n_samples, n_features, generator=gen)
    coeff = coeff * (torch.rand(n_samples, n_features, generator=gen) < p_active)
    return coeff @ features, features, coeff


def synthetic_superposition(
    n_features: int = 64,
    d: int = 32,
    n_samples: int = 50_000,
    *,
    p_active: float = 0.05,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations built from known sparse features: ``(acts [n_samples, d], features [n_features, d])``.

    Each sample is ``sum_i a_i * features_i`` with ``a_i`` uniform in [0, 1] with probability
    ``p_active`` (else 0); ``features`` are random unit vectors, more of them than dimensions,
    so they are in superposition. The ``a_i`` themselves: :func:`synthetic_coefficients`.
    """
    acts, features, _ = _synthetic(n_features, d, n_samples, p_active, seed)
    return acts, features


def synthetic_coefficients(
    n_features: int = 64,
    d: int = 32,
    n_samples: int = 50_000,
    *,
    p_active: float = 0.05,
    seed: int = 0,
) -> torch.Tensor:
    """The true feature activations ``a`` ``[n_samples, n_features]`` behind
    :func:`synthetic_superposition` with the same arguments (``acts = a @ features``): the
    ground truth to measure an SAE's feature magnitudes against (e.g. shrinkage)."""
    return _synthetic(n_features, d, n_samples, p_active, seed)[2]


@torch.no_grad()
def collect_activations(model, tokens, hook: str, *, batch_size: int = 256) -> torch.Tensor:
    """Activations of ``hook`` at every position: ``[batch * pos, d]`` (float32, CPU).

    tokens: text, list of texts or ``[batch, pos]`` ids. Raises if the activations hold
    NaN / Inf, naming the hook and the count.
    """
    check_hook_name(model, hook)
    tokens = as_tokens(model, tokens)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}; expected a positive number of prompts.")
    chunks = []
    for i in range(0, len(tokens), batch_size):
        _, cache = model.run_with_cache(tokens[i : i + batch_size], names=hook)
        chunks.append(cache[hook].reshape(-1, cache[hook].shape[-1]).float().cpu())
    acts = torch.cat(chunks)
    check_finite(acts, hook)
    return acts


def _topk_decode(values: torch.Tensor, idx: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """``sum_j values[b, j] * W_dec[idx[b, j]]``: ``[batch, d_in]`` at cost batch*k*d_in, not
    batch*d_sae*d_in (the sparse decode of Gao et al. 2024)."""
    return F.embedding_bag(idx, W_dec, per_sample_weights=values, mode="sum")


def _train_pre_activations(sae: SAE, x: torch.Tensor) -> torch.Tensor:
    """``(x - b_dec) @ W_enc + b_enc`` ``[batch, d_sae]``, computed as ``x @ W_enc + (b_enc -
    b_dec @ W_enc)``: the same value, but b_dec's gradient is then a vector-matrix product
    instead of a ``[batch, d_in]`` matmul, which saves one of the step's three big matmuls."""
    return torch.addmm(sae.b_enc - sae.b_dec @ sae.W_enc, x, sae.W_enc)


def _aux_k_recon(
    pre: torch.Tensor, W_dec: torch.Tensor, dead_idx: torch.Tensor, k_aux: int
) -> torch.Tensor:
    """AuxK reconstruction ``[batch, d_in]`` from the ``k_aux`` largest (ReLU'd) pre-activations
    ``pre`` ``[batch, d_sae]`` among the dead latents ``dead_idx`` ``[n_dead]`` (Gao 2024)."""
    n_dead = len(dead_idx)
    dead_pre = pre.index_select(1, dead_idx)  # [batch, n_dead]
    W = W_dec.index_select(0, dead_idx)  # [n_dead, d_in]
    if n_dead <= k_aux:
        # The top k_aux of at most k_aux latents is all of them: a dense matmul, no top-k.
        return F.relu(dead_pre) @ W
    values, idx = dead_pre.topk(k_aux, dim=-1, sorted=False)
    if 4 * k_aux >= n_dead:
        # Dense enough that a matmul beats embedding_bag, whose backward is slow on CPU.
        return torch.zeros_like(dead_pre).scatter_(1, idx, F.relu(values)) @ W
    return _topk_decode(F.relu(values), idx, W)


def train_sae(
    acts: torch.Tensor,
    cfg: SAEConfig,
    *,
    steps: int = 2000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    l1_coefficient: float = 1e-3,
    l1_warmup_steps: int = 0,
    aux_k_coefficient: float = 1 / 32,
    dead_window: int = 100_000,
    progress: bool = True,
) -> SAE:
    """Train an SAE on ``acts`` ``[..., d_in]`` for ``steps`` Adam steps of ``batch_size`` rows.

    Rows are shuffled once per pass (seeded by ``cfg.seed``); ``b_dec`` starts at the mean
    activation. ``l1_coefficient`` applies to ``"relu"`` and ``"gated"`` SAEs; ``aux_k_coefficient`` (1/32 as
    in Gao 2024) and ``dead_window`` (inputs without firing before a latent counts as dead)
    to ``"topk"``. Returns the SAE in eval mode; ``sae.card["training"]`` records the run.
    """
    if acts.shape[-1] != cfg.d_in:
        raise ValueError(
            f"Activations have width {acts.shape[-1]} (shape {list(acts.shape)}), but "
            f"cfg.d_in={cfg.d_in}. Use SAEConfig(d_in={acts.shape[-1]}, ...)."
        )
    check_finite(acts, cfg.site)
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps={steps}, batch_size={batch_size}; both must be >= 1.")
    x_all = acts.reshape(-1, cfg.d_in).float().contiguous()
    n = len(x_all)
    sae = SAE(cfg)
    with torch.no_grad():
        sae.b_dec.copy_(x_all.mean(0))
    # fused: one kernel per parameter for the whole Adam update (same math as the default).
    opt = torch.optim.Adam(sae.parameters(), lr=lr, fused=True)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    order, pos = torch.randperm(n, generator=gen), 0
    topk, gated = cfg.activation == "topk", cfg.activation == "gated"
    k_aux = max(1, cfg.d_in // 2)
    # Inputs since each latent last fired, plus one sink slot (index d_sae) that absorbs the
    # top-k picks that did not fire (value <= 0), so the update uses a fixed-size index.
    since_fired = torch.zeros(cfg.d_sae + 1, dtype=torch.long)
    x = torch.empty(min(batch_size, n), cfg.d_in)  # reused batch buffer
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=f"SAE {cfg.activation} d_sae={cfg.d_sae}", disable=not progress)
    for step in bar:
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        torch.index_select(x_all, 0, order[pos : pos + batch_size], out=x)
        pos += batch_size
        pre = _train_pre_activations(sae, x)
        if topk:
            values, idx = pre.topk(cfg.k, dim=-1, sorted=False)
            values = F.relu(values)
            err = _topk_decode(values, idx, sae.W_dec) + (sae.b_dec - x)  # x̂ - x
            fired_idx = idx.masked_fill(values.detach() <= 0, cfg.d_sae).flatten()
        else:
            if gated:
                f = _sae_gated.gated_features(sae.r_mag, sae.b_mag, sae.b_enc, pre)
            else:
                f = F.relu(pre)
            err = torch.addmm(sae.b_dec - x, f, sae.W_dec)  # x̂ - x
        mse = err.pow(2).sum(-1).mean()
        loss = mse
        if topk:
            # Tensors live on the CPU, so reading the dead count is no device sync.
            dead_idx = (since_fired[: cfg.d_sae] >= dead_window).nonzero().squeeze(1)
            n_dead = len(dead_idx)
            if n_dead and aux_k_coefficient > 0:
                aux_recon = _aux_k_recon(pre, sae.W_dec, dead_idx, k_aux)
                scale = min(n_dead / k_aux, 1.0)
                # residual x - x̂ (detached); aux_recon - residual = aux_recon + err.
                aux = (aux_recon + err.detach()).pow(2).sum(-1).mean()
                loss = loss + aux_k_coefficient * scale * aux
        else:
            ramp = min(1.0, (step + 1) / l1_warmup_steps) if l1_warmup_steps else 1.0
            if gated:
                loss = loss + _sae_gated.gate_loss(sae, x, pre, ramp * l1_coefficient)
            else:
                loss = loss + ramp * l1_coefficient * f.sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            # Keep only the part of each decoder row's gradient that rotates it (Bricken 2023).
            g, w = sae.W_dec.grad, sae.W_dec
            g.addcmul_(torch.linalg.vecdot(g, w).unsqueeze(1), w, value=-1)
        opt.step()
        sae.normalize_decoder()
        if topk:  # only AuxK reads it
            since_fired.add_(batch_size).index_fill_(0, fired_idx, 0)
        if progress and step % 100 == 0:
            bar.set_postfix(mse=f"{mse.item():.4g}")
    wall = time.perf_counter() - start
    sae.card = {
        "training": {
            "steps": steps,
            "batch_size": batch_size,
            "inputs_seen": steps * batch_size,
            "optimizer": {"name": "Adam", "lr": lr, "betas": [0.9, 0.999]},
            "l1_coefficient": l1_coefficient if not topk else None,
            "l1_warmup_steps": l1_warmup_steps if not topk else None,
            "aux_k_coefficient": aux_k_coefficient if topk else None,
            "dead_window": dead_window if topk else None,
            "wall_time_s": round(wall, 2),
            "inputs_per_s": round(steps * batch_size / wall),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        }
    }
    return sae.eval()


__all__ = [
    "collect_activations",
    "evaluate",
    "synthetic_coefficients",
    "synthetic_superposition",
    "train_sae",
]
