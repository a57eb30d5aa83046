"""Steering: add a direction to the residual stream and watch the next-token distribution move.

If a concept is represented linearly (review section 3.2, the linear representation
hypothesis), then adding its direction to the residual stream should push the model's
behaviour toward the concept, with no training and no change to the weights (review sections
5.3 and 6). The direction is found by contrast:

    vector = mean(activation | prompts with the concept) - mean(activation | prompts without)

a *difference of means*: Turner et al. 2023, "Activation Addition: Steering Language Models
Without Optimization" (one prompt pair, "Love" - "Hate"), Zou et al. 2023, "Representation
Engineering" (reading vectors from contrasting stimuli), and Rimsky et al. 2024, "Steering
Llama 2 via Contrastive Activation Addition" (averaged over many pairs, as here).

- :func:`steering_vector`: the difference of means ``[d_model]`` at one residual-sized site.
- :func:`steer` / :func:`steering_hooks`: one forward pass (or a ``with`` block) with
  ``strength * vector`` added at the site.
- :func:`steering_sweep`: many strengths in one batched forward pass; per strength, the
  probabilities of target tokens, the KL divergence from the unsteered distribution and the
  top tokens, in a :class:`SteeringSweep` with a plotly :meth:`~SteeringSweep.plot`.
- :func:`random_direction`: a control vector of the same norm in a random direction. A
  steering effect means something only if a random vector of the same size does much less.

Sites are any hook whose activation is ``[batch, pos, d_model]``: ``blocks.L.hook_resid_pre``
/ ``hook_resid_mid`` / ``hook_resid_post``, ``hook_attn_out``, ``hook_mlp_out``. Works on
mechscope's ``Transformer`` and on wrapped Hugging Face models (``mechscope.load("gpt2")``).
The model is left as it came (hooks, weights, mode), also when a call raises.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ._core import as_tokens, copies_per_chunk
from .hooks import unknown_name_error

__all__ = [
    "SteeringSweep",
    "random_direction",
    "steer",
    "steering_hooks",
    "steering_sweep",
    "steering_vector",
]


# ---- checks -------------------------------------------------------------------------------


def check_site(model, site: str) -> None:
    if not isinstance(site, str):
        raise TypeError(
            f"site must be a hook name such as 'blocks.1.hook_resid_pre', got {site!r}."
        )
    names = model.hook_names()
    if site not in names:
        raise unknown_name_error(site, names, what="steering site")


def _check_act(site: str, act: torch.Tensor, d: int | None = None) -> None:
    if act.dim() != 3:
        raise ValueError(
            f"Steering site {site!r} has activations of shape {list(act.shape)}; expected "
            "[batch, pos, d_model]. Steer a residual-sized site (blocks.L.hook_resid_pre / "
            "hook_resid_mid / hook_resid_post / hook_attn_out / hook_mlp_out)."
        )
    if d is not None and act.shape[-1] != d:
        raise ValueError(
            f"The steering vector has {d} entries but site {site!r} has width "
            f"{act.shape[-1]} (activations {list(act.shape)}). Use a vector made by "
            "steering_vector at a site of the same model and width."
        )


def _check_vector(vector) -> torch.Tensor:
    v = torch.as_tensor(vector)
    if v.dim() != 1 or not v.dtype.is_floating_point:
        raise ValueError(
            f"vector must be a float tensor of shape [d_model], got dtype {v.dtype} and shape "
            f"{list(v.shape)}. Make one with steering_vector(model, pos_prompts, neg_prompts, site)."
        )
    return v.detach()


def _positions(positions, n_pos: int) -> list[int] | None:
    if positions is None:
        return None
    idx = [int(positions)] if isinstance(positions, int) else [int(p) for p in positions]
    bad = [p for p in idx if not -n_pos <= p < n_pos]
    if not idx or bad:
        raise IndexError(
            f"positions {bad or idx} out of range for sequences of {n_pos} tokens; valid: "
            f"0..{n_pos - 1} or negative from the end (None = every position)."
        )
    return [p % n_pos for p in idx]


# ---- the vector ---------------------------------------------------------------------------


def steering_vector(
    model, pos_tokens, neg_tokens, site: str, *, pos: int | str = -1
) -> torch.Tensor:
    """Difference of means at ``site``: ``mean(act | pos_tokens) - mean(act | neg_tokens)``.

    pos_tokens, neg_tokens: texts or ids ``[batch, pos]`` (batch sizes and, with an int
        ``pos``, lengths may differ between the two sets).
    site: a hook with ``[batch, pos, d_model]`` activations, e.g. ``"blocks.1.hook_resid_pre"``.
    pos: the position read from each prompt (default the last, where the next token is
        predicted), or ``"mean"`` for the mean over all positions.

    Returns ``[d_model]`` (Turner et al. 2023; Zou et al. 2023; Rimsky et al. 2024).
    """
    check_site(model, site)
    if not (pos == "mean" or isinstance(pos, int)):
        raise ValueError(f"pos={pos!r}; expected an int position (default -1) or 'mean'.")
    means = []
    for what, prompts in (("pos_tokens", pos_tokens), ("neg_tokens", neg_tokens)):
        toks = as_tokens(model, prompts)
        with torch.no_grad():
            _, cache = model.run_with_cache(toks, names=[site])
        act = cache[site]
        _check_act(site, act)
        if pos == "mean":
            means.append(act.float().mean((0, 1)))
        else:
            if not -act.shape[1] <= pos < act.shape[1]:
                raise IndexError(f"pos={pos} is outside the {act.shape[1]} positions of {what}.")
            means.append(act[:, pos].float().mean(0))
    return means[0] - means[1]


def random_direction(vector: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A random vector with the norm, shape and dtype of ``vector`` (a steering control)."""
    v = _check_vector(vector)
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(v.shape, generator=gen, dtype=torch.float64)
    return (r / r.norm() * v.double().norm()).to(v.dtype)


# ---- steering -----------------------------------------------------------------------------


def _add_hook(site, vector, strengths: torch.Tensor, positions):
    """Adds ``strengths[i] * vector`` to copy ``i`` of a batched run (at ``positions``)."""

    def hook(act, hook):
        _check_act(site, act, vector.shape[0])
        n = strengths.shape[0]
        b, n_pos, d = act.shape
        view = act.reshape(n, b // n, n_pos, d)
        delta = strengths.to(act.device, act.dtype)[:, None, None, None] * vector.to(
            act.device, act.dtype
        )
        idx = _positions(positions, n_pos)
        if idx is not None:
            mask = torch.zeros(n_pos, dtype=act.dtype, device=act.device)
            mask[idx] = 1
            delta = delta * mask[None, None, :, None]
        return (view + delta).reshape(act.shape)

    return hook


@contextlib.contextmanager
def steering_hooks(
    model, vector, site: str, strength: float = 1.0, positions=None
) -> Iterator[None]:
    """Context manager: inside the block, ``strength * vector`` is added at ``site``.

    vector: ``[d_model]``; site: a residual-sized hook name; positions: an int, a list of
    ints, or None for every position. Removed on exit, also when the block raises.
    """
    check_site(model, site)
    v = _check_vector(vector)
    s = torch.tensor([float(strength)])
    with model.hooks([(site, _add_hook(site, v, s, positions))]):
        yield


def steer(model, tokens, vector, site: str, strength: float = 1.0, positions=None) -> torch.Tensor:
    """Logits ``[batch, pos, d_vocab]`` of ``tokens`` with ``strength * vector`` added at ``site``.

    ``strength=0`` gives exactly the unsteered logits. Runs under ``torch.no_grad``.
    Example: ``steer(model, "a big red", v, "blocks.1.hook_resid_pre", strength=2)``.
    """
    toks = as_tokens(model, tokens)
    with torch.no_grad(), steering_hooks(model, vector, site, strength, positions):
        return model(toks)


# ---- sweep --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SteeringSweep:
    """The next-token distribution at each steering strength (means over the prompts).

    strengths: ``[strength]``.
    probs: ``[strength, d_vocab]``, mean next-token probabilities.
    target_probs: ``[strength, target]``, ``probs`` of ``target_ids`` (labels ``target_labels``).
    kl: ``[strength]``, mean over prompts of KL(steered || unsteered) in nats.
    top_tokens: per strength, the ``top_k`` most probable tokens as ``(token, prob)``.
    """

    site: str
    strengths: torch.Tensor
    probs: torch.Tensor
    target_ids: list[int]
    target_labels: list[str]
    target_probs: torch.Tensor
    kl: torch.Tensor
    top_tokens: list[list[tuple[str, float]]]

    def __repr__(self) -> str:
        return (
            f"SteeringSweep(site={self.site!r}, strengths={[round(s, 3) for s in self.strengths.tolist()]}, "
            f"targets={self.target_labels}, max_kl={self.kl.max().item():.3g})"
        )

    def plot(self, title: str | None = None):
        """Plotly figure: target probabilities (left) and KL from unsteered (right) vs strength."""
        from plotly.subplots import make_subplots  # lazy: plotly only when a plot is wanted

        fig = make_subplots(
            rows=1,
            cols=2,
            subplot_titles=("P(target) at the next token", "KL(steered || unsteered)"),
        )
        x = self.strengths.tolist()
        for j, label in enumerate(self.target_labels):
            fig.add_scatter(x=x, y=self.target_probs[:, j].tolist(), name=label, row=1, col=1)
        fig.add_scatter(x=x, y=self.kl.tolist(), name="KL (nats)", row=1, col=2)
        fig.update_xaxes(title_text="strength")
        fig.update_layout(title=title or f"steering at {self.site}", height=360)
        return fig


def _target_ids(model, target_ids) -> list[int]:
    if target_ids is None:
        return []
    if isinstance(target_ids, (int, str)):
        target_ids = [target_ids]
    out = []
    for t in target_ids:
        if isinstance(t, str):
            ids = as_tokens(model, model.to_tokens(t, prepend_bos=False))[0].tolist()
            if len(ids) != 1:
                raise ValueError(
                    f"target {t!r} is {len(ids)} tokens ({ids}); each target must be one token. "
                    "Pass its token id, or the first token's id."
                )
            t = ids[0]
        t = int(t)
        if not 0 <= t < model.cfg.d_vocab:
            raise ValueError(f"target id {t} is outside the vocabulary [0, {model.cfg.d_vocab}).")
        out.append(t)
    return out


def _label(model, i: int) -> str:
    try:
        return str(model.to_str_tokens(torch.tensor([i]), prepend_bos=False)[0])
    except Exception:  # no tokenizer
        return str(i)


def _start_layer(model, site: str) -> int | None:
    from .models.transformer import Transformer

    m = re.match(r"blocks\.(\d+)\.", site)
    return int(m.group(1)) if m and isinstance(model, Transformer) else None


def steering_sweep(
    model,
    tokens,
    vector,
    site: str,
    strengths: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 4.0),
    *,
    target_ids=None,
    positions=None,
    pos: int = -1,
    top_k: int = 5,
    max_batch: int | None = None,
    memory_mb: float | None = None,
) -> SteeringSweep:
    """Steer ``tokens`` at every strength and record the next-token distribution at ``pos``.

    tokens: texts or ids ``[batch, pos]``; vector ``[d_model]``; site a residual-sized hook.
    strengths: the multipliers of ``vector`` (0 = unsteered).
    target_ids: token ids or one-token strings whose probabilities are tracked.
    positions: where the vector is added (None = every position).
    max_batch, memory_mb: chunking as in :func:`mechscope.patching.activation_patch`; all
        strengths run as copies of the prompts in one batched forward pass per chunk. On a
        mechscope ``Transformer`` the layers before the site are not recomputed.

    Returns a :class:`SteeringSweep`.
    """
    check_site(model, site)
    v = _check_vector(vector)
    s_all = torch.as_tensor(list(strengths), dtype=torch.float32)
    if s_all.dim() != 1 or s_all.numel() == 0:
        raise ValueError(f"strengths must be a non-empty list of numbers, got {strengths!r}.")
    targets = _target_ids(model, target_ids)
    toks = as_tokens(model, tokens)
    batch, n_pos = toks.shape
    _positions(positions, n_pos)  # validate before any forward pass
    if not isinstance(pos, int) or not -n_pos <= pos < n_pos:
        raise IndexError(
            f"pos={pos!r}: the position whose next-token distribution is read must be an int "
            f"in [-{n_pos}, {n_pos}) for prompts of {n_pos} tokens (default -1, the last)."
        )
    layer = _start_layer(model, site)
    resid_name = f"blocks.{layer}.hook_resid_pre" if layer is not None else None
    with torch.no_grad():
        base_logits, cache = model.run_with_cache(toks, names=[resid_name] if resid_name else [])
        base_logp = base_logits[:, pos].double().log_softmax(-1)  # [batch, d_vocab]
        toks = toks.to(base_logits.device)
        per_chunk = copies_per_chunk(model, batch, n_pos, max_batch, memory_mb)
        logps = []
        for start in range(0, len(s_all), per_chunk):
            s = s_all[start : start + per_chunk]
            n = len(s)
            with model.hooks([(site, _add_hook(site, v, s, positions))]):
                if layer is not None:
                    logits = model.forward_from(layer, cache[resid_name].repeat(n, 1, 1))
                else:
                    logits = model(toks.repeat(n, 1))
            logps.append(logits[:, pos].double().log_softmax(-1).reshape(n, batch, -1))
        logp = torch.cat(logps)  # [strength, batch, d_vocab]
    p = logp.exp()
    kl = (p * (logp - base_logp[None])).sum(-1).mean(-1)  # [strength]
    probs = p.mean(1)  # [strength, d_vocab]
    k = min(top_k, probs.shape[-1])
    top = probs.topk(k, dim=-1)
    top_tokens = [
        [
            (_label(model, i), round(float(q), 4))
            for q, i in zip(vals.tolist(), ids.tolist(), strict=True)
        ]
        for vals, ids in zip(top.values, top.indices, strict=True)
    ]
    return SteeringSweep(
        site=site,
        strengths=s_all,
        probs=probs.float().cpu(),
        target_ids=targets,
        target_labels=[_label(model, t) for t in targets],
        target_probs=probs[:, targets].float().cpu(),
        kl=kl.clamp(min=0).float().cpu(),
        top_tokens=top_tokens,
    )
