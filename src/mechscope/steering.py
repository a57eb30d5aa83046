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

- :func:`steering_vector`: the difference of means ``[d_model]`` at one residual-sized hook.
- :func:`steer` / :func:`steering_hooks`: one forward pass (or a ``with`` block) with
  ``strength * vector`` added at the hook.
- :func:`steering_sweep`: many strengths in one batched forward pass; per strength, the
  probabilities of target tokens, the KL divergence from the unsteered distribution and the
  top tokens, in a :class:`SteeringSweepResult` with a plotly :meth:`~SteeringSweepResult.plot`.
- :func:`random_direction`: a control vector of the same norm in a random direction. A
  steering effect means something only if a random vector of the same size does much less.

Hooks are any hook point whose activation is ``[batch, pos, d_model]``: ``blocks.L.hook_resid_pre``
/ ``hook_resid_mid`` / ``hook_resid_post``, ``hook_attn_out``, ``hook_mlp_out``. Works on any
``HookedModel`` (mechscope's ``Transformer``, wrapped Hugging Face models, your own).
The model is left as it came (hooks, weights, mode), also when a call raises.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ._core import as_tokens, copies_per_chunk
from ._intervene import add_hook, check_hook, check_range, index_list

__all__ = [
    "SteeringSweepResult",
    "random_direction",
    "steer",
    "steering_hooks",
    "steering_sweep",
    "steering_vector",
]


# ---- checks -------------------------------------------------------------------------------


def _check_vector(vector) -> torch.Tensor:
    v = torch.as_tensor(vector)
    if v.dim() != 1 or not v.dtype.is_floating_point or v.numel() == 0:
        raise ValueError(
            f"vector must be a float tensor of shape [d_model], got dtype {v.dtype} and shape "
            f"{list(v.shape)}. Make one with steering_vector(model, positive, negative, hook)."
        )
    if not bool(torch.isfinite(v).all()):
        raise ValueError(
            "vector has non-finite entries (inf or nan); steering would fill the residual "
            "stream with them. Check how it was made (e.g. a mean over an empty set)."
        )
    return v.detach()


def _pos_mask(pos, n_pos: int) -> torch.Tensor | None:
    """``[1, n_pos]`` 0/1 where the vector is added; None = every position."""
    idx = index_list(pos, "pos")
    if idx is None:
        return None
    idx = check_range(idx, n_pos, "pos", f"the prompts ({n_pos} tokens)")
    mask = torch.zeros(1, n_pos)
    mask[0, idx] = 1.0
    return mask


def _steer_hook(hook: str, vector: torch.Tensor, strengths: torch.Tensor, rows: int | None, pos):
    """Adds ``strengths[i] * vector`` to copy ``i`` of a batched run of ``rows`` prompts each
    (``rows=None``: one strength for every row), at ``pos``."""
    delta = strengths[:, None] * vector  # [copy, d]

    def fn(act, hook_point):
        d = delta if rows is None else delta.repeat_interleave(rows, 0)
        mask = None if act.dim() != 3 else _pos_mask(pos, act.shape[1])
        return add_hook(hook, d, mask)(act, hook_point)

    return fn


# ---- the vector ---------------------------------------------------------------------------


def steering_vector(model, positive, negative, hook: str, *, pos: int | str = -1) -> torch.Tensor:
    """Difference of means at ``hook``: ``mean(act | positive) - mean(act | negative)``.

    positive, negative: texts or ids ``[batch, pos]`` (batch sizes and, with an int ``pos``,
        lengths may differ between the two sets).
    hook: a hook with ``[batch, pos, d_model]`` activations, e.g. ``"blocks.1.hook_resid_pre"``.
    pos: the position read from each prompt (default the last, where the next token is
        predicted), or ``"mean"`` for the mean over all positions.

    Returns ``[d_model]`` (Turner et al. 2023; Zou et al. 2023; Rimsky et al. 2024).
    """
    check_hook(model, hook)
    if not (pos == "mean" or (isinstance(pos, int) and not isinstance(pos, bool))):
        raise ValueError(f"pos={pos!r}; expected an int position (default -1) or 'mean'.")
    means = []
    for what, prompts in (("positive", positive), ("negative", negative)):
        toks = as_tokens(model, prompts, name=what)
        with torch.no_grad():
            _, cache = model.run_with_cache(toks, names=[hook])
        act = cache[hook]
        if act.dim() != 3:
            raise ValueError(
                f"hook {hook!r} has activations of shape {list(act.shape)}; a steering vector "
                "needs [batch, pos, d_model]. Use a residual-sized hook (blocks.L.hook_resid_pre"
                " / hook_resid_mid / hook_resid_post / hook_attn_out / hook_mlp_out)."
            )
        if pos == "mean":
            means.append(act.float().mean((0, 1)))
        else:
            check_range([pos], act.shape[1], "pos", f"{what} ({act.shape[1]} positions)")
            means.append(act[:, pos].float().mean(0))
    return means[0] - means[1]


def random_direction(vector: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """A random vector with the norm, shape and dtype of ``vector`` (a steering control)."""
    v = _check_vector(vector)
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(v.shape, generator=gen, dtype=torch.float64)
    return (r / r.norm() * v.double().norm()).to(v.dtype)


# ---- steering -----------------------------------------------------------------------------


def _check_strength(strength) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)):
        try:
            strength = float(torch.as_tensor(strength).item())
        except Exception:
            raise TypeError(f"strength must be a number, got {strength!r}.") from None
    if not math.isfinite(float(strength)):
        raise ValueError(f"strength={strength} is not finite; pass a finite number.")
    return float(strength)


@contextlib.contextmanager
def steering_hooks(model, vector, hook: str, *, strength: float = 1.0, pos=None) -> Iterator[None]:
    """Context manager: inside the block, ``strength * vector`` is added at ``hook``.

    vector: ``[d_model]``; hook: a residual-sized hook name; pos: an int, a list of ints, or
    None for every position. Removed on exit, also when the block raises.
    """
    check_hook(model, hook)
    v = _check_vector(vector)
    s = torch.tensor([_check_strength(strength)])
    index_list(pos, "pos")  # types now; the range at the forward pass (prompt length)
    with model.hooks([(hook, _steer_hook(hook, v, s, None, pos))]):
        yield


def steer(model, tokens, vector, hook: str, *, strength: float = 1.0, pos=None) -> torch.Tensor:
    """Logits ``[batch, pos, d_vocab]`` of ``tokens`` with ``strength * vector`` added at ``hook``.

    ``strength=0`` gives exactly the unsteered logits. Runs under ``torch.no_grad``.
    Example: ``steer(model, "a big red", v, "blocks.1.hook_resid_pre", strength=2)``.
    """
    toks = as_tokens(model, tokens)
    _pos_mask(pos, toks.shape[1])
    with torch.no_grad(), steering_hooks(model, vector, hook, strength=strength, pos=pos):
        return model(toks)


# ---- sweep --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SteeringSweepResult:
    """The next-token distribution at each steering strength (means over the prompts).

    values: ``[strength, answer]``, the mean next-token probabilities of ``answer_ids``
        (labels ``answer_labels``).
    strengths: ``[strength]``.
    probs: ``[strength, d_vocab]``, mean next-token probabilities.
    kl: ``[strength]``, mean over prompts of KL(steered || unsteered) in nats.
    top_tokens: per strength, the ``top_k`` most probable tokens as ``(token, prob)``.
    """

    values: torch.Tensor
    hook: str
    strengths: torch.Tensor
    answer_ids: list[int]
    answer_labels: list[str]
    probs: torch.Tensor
    kl: torch.Tensor
    top_tokens: list[list[tuple[str, float]]]

    def __repr__(self) -> str:
        strengths = [round(s, 3) for s in self.strengths.tolist()]
        return (
            f"SteeringSweepResult(hook={self.hook!r}, strengths={strengths}, "
            f"answers={self.answer_labels}, max_kl={self.kl.max().item():.3g})"
        )

    def plot(self, title: str | None = None):
        """Plotly figure: answer probabilities (left) and KL from unsteered (right) vs strength."""
        from plotly.subplots import make_subplots  # lazy: plotly only when a plot is wanted

        fig = make_subplots(
            rows=1,
            cols=2,
            subplot_titles=("P(answer) at the next token", "KL(steered || unsteered)"),
        )
        x = self.strengths.tolist()
        for j, label in enumerate(self.answer_labels):
            fig.add_scatter(x=x, y=self.values[:, j].tolist(), name=label, row=1, col=1)
        fig.add_scatter(x=x, y=self.kl.tolist(), name="KL (nats)", row=1, col=2)
        fig.update_xaxes(title_text="strength")
        fig.update_layout(title=title or f"steering at {self.hook}", height=360)
        return fig


def _answer_ids(model, answer_ids) -> list[int]:
    if answer_ids is None:
        return []
    if isinstance(answer_ids, (int, str)) or (
        isinstance(answer_ids, torch.Tensor) and answer_ids.dim() == 0
    ):
        answer_ids = [answer_ids]
    out = []
    for t in answer_ids:
        if isinstance(t, str):
            ids = as_tokens(model, model.to_tokens(t, prepend_bos=False))[0].tolist()
            if len(ids) != 1:
                raise ValueError(
                    f"answer_ids: {t!r} is {len(ids)} tokens ({ids}); each answer must be one "
                    "token. Pass its token id, or the first token's id."
                )
            t = ids[0]
        if isinstance(t, bool):
            raise TypeError(f"answer_ids holds a bool ({t}); pass token ids (ints).")
        t = int(t)
        if not 0 <= t < model.cfg.d_vocab:
            raise ValueError(
                f"answer_ids: id {t} is outside the vocabulary [0, {model.cfg.d_vocab})."
            )
        out.append(t)
    return out


def _label(model, i: int) -> str:
    try:
        return str(model.to_str_tokens(torch.tensor([i]), prepend_bos=False)[0])
    except Exception:  # no tokenizer
        return str(i)


def _start_layer(model, hook: str) -> int | None:
    """The block a steered run can restart at (the model can run from a block's input, and
    ``blocks.L.hook_resid_pre`` is cached), else None (full forward passes)."""
    m = re.match(r"blocks\.(\d+)\.", hook)
    if m is None or not callable(getattr(model, "forward_from", None)):
        return None
    return int(m.group(1)) if f"blocks.{m.group(1)}.hook_resid_pre" in model.hook_names() else None


def steering_sweep(
    model,
    tokens,
    vector,
    hook: str,
    *,
    strengths: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 4.0),
    answer_ids=None,
    pos=None,
    read_pos: int = -1,
    top_k: int = 5,
    batch_size: int | None = None,
    memory_mb: float | None = None,
) -> SteeringSweepResult:
    """Steer ``tokens`` at every strength and record the next-token distribution at ``read_pos``.

    tokens: texts or ids ``[batch, pos]``; vector ``[d_model]``; hook a residual-sized hook.
    strengths: the multipliers of ``vector`` (0 = unsteered).
    answer_ids: token ids or one-token strings whose probabilities are tracked (``values``).
    pos: where the vector is added (None = every position).
    batch_size, memory_mb: chunking as in :func:`mechscope.patching.activation_patch`; all
        strengths run as copies of the prompts in one batched forward pass per chunk. On a
        model that can restart at a block (``forward_from``) the layers before the hook are
        not recomputed.

    Returns a :class:`SteeringSweepResult`.
    """
    check_hook(model, hook)
    v = _check_vector(vector)
    try:
        s_all = torch.as_tensor(list(strengths), dtype=torch.float32)
    except (TypeError, ValueError):
        s_all = torch.zeros(0, 0)
    if s_all.dim() != 1 or s_all.numel() == 0 or not bool(torch.isfinite(s_all).all()):
        raise ValueError(
            f"strengths must be a non-empty list of finite numbers, got {strengths!r}."
        )
    answers = _answer_ids(model, answer_ids)
    toks = as_tokens(model, tokens)
    batch, n_pos = toks.shape
    _pos_mask(pos, n_pos)  # validate before any forward pass
    if (
        isinstance(read_pos, bool)
        or not isinstance(read_pos, int)
        or not -n_pos <= read_pos < n_pos
    ):
        raise ValueError(
            f"read_pos={read_pos!r}: the position whose next-token distribution is read must be "
            f"an int in [-{n_pos}, {n_pos}) for prompts of {n_pos} tokens (default -1, the last)."
        )
    layer = _start_layer(model, hook)
    resid_name = f"blocks.{layer}.hook_resid_pre" if layer is not None else None
    with torch.no_grad():
        if resid_name is not None:
            base_logits, cache = model.run_with_cache(toks, names=[resid_name])
        else:
            base_logits = model(toks)
        base_logp = base_logits[:, read_pos].double().log_softmax(-1)  # [batch, d_vocab]
        toks = toks.to(base_logits.device)
        if memory_mb is None:  # a model whose passes run elsewhere gives its own budget
            memory_mb = getattr(model, "request_memory_mb", None)
        per_chunk = copies_per_chunk(model, batch, n_pos, batch_size, memory_mb)
        logps = []
        for start in range(0, len(s_all), per_chunk):
            s = s_all[start : start + per_chunk]
            n = len(s)
            with model.hooks([(hook, _steer_hook(hook, v, s, batch, pos))]):
                if layer is not None:
                    logits = model.forward_from(layer, cache[resid_name].repeat(n, 1, 1))
                else:
                    logits = model(toks.repeat(n, 1))
            logps.append(logits[:, read_pos].double().log_softmax(-1).reshape(n, batch, -1))
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
    return SteeringSweepResult(
        values=probs[:, answers].float().cpu(),
        hook=hook,
        strengths=s_all,
        answer_ids=answers,
        answer_labels=[_label(model, t) for t in answers],
        probs=probs.float().cpu(),
        kl=kl.clamp(min=0).float().cpu(),
        top_tokens=top_tokens,
    )
