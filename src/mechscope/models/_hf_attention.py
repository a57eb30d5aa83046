"""An eager attention function whose q, k, v, scores and pattern are mechscope hook points.

transformers 5 looks up each attention module's implementation by name in its
attention-interface registry (``ALL_ATTENTION_FUNCTIONS[config._attn_implementation]``)
and the matching mask builder in ``ALL_MASK_ATTENTION_FUNCTIONS``. We register one
more name, ``"mechscope"``, with the eager mask (so causal, padding and sliding-window
masks arrive fully built), and :func:`mechscope_attention` swaps it into the model's
configs only for the duration of one call. Outside such a call the model runs its own
implementation (``sdpa``, ``eager``, ...) untouched.

The arithmetic follows HF's eager attention (scores = q k^T * scaling + additive mask,
softmax in float32, dropout only in training), so with no hook editing anything the
result equals HF's eager output.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
from torch import nn

IMPL = "mechscope"

# id(attention module) -> the HookPoint holder (with hook_q, ..., hook_pattern) of that layer,
# set only while a wrapped model is running with per-head hooks.
_ACTIVE: contextvars.ContextVar[dict[int, nn.Module] | None] = contextvars.ContextVar(
    "mechscope_attention_points", default=None
)
_registered = False


def _register() -> None:
    """Add ``"mechscope"`` to transformers' attention and mask registries (once, lazily)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(IMPL, attention_forward)
    AttentionMaskInterface.register(IMPL, eager_mask)
    _registered = True


def _fire(point: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """Run ``x`` through a hook point (identity unless a hook replaces it)."""
    if point is None or not point._forward_hooks:
        return x
    return point(x)


def _fire_heads(point: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """Hook a ``[batch, head, pos, d_head]`` tensor as ``[batch, pos, head, d_head]``."""
    if point is None or not point._forward_hooks:
        return x
    xt = x.transpose(1, 2)
    out = point(xt)
    return x if out is xt else out.transpose(1, 2)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    # [batch, kv_head, pos, d_head] -> [batch, kv_head * n_rep, pos, d_head]; query head h
    # reads KV head h // n_rep, as in every HF GQA model.
    if n_rep == 1:
        return x
    b, h, p, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, p, d).reshape(b, h * n_rep, p, d)


def masked(module: nn.Module, scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Attention ``scores [batch, head, q, k]`` with HF's ``mask`` applied (a bool mask, or an
    additive one cut to ``k`` keys); without one, the causal mask when ``module.is_causal``."""
    q_len, k_len = scores.shape[-2:]
    if mask is not None:
        if mask.dtype == torch.bool:
            return scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        return scores + mask[..., :k_len]
    if getattr(module, "is_causal", False) and q_len > 1:
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=scores.device).tril(
            k_len - q_len
        )
        return scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
    return scores


def attention_forward(
    module: nn.Module,
    query: torch.Tensor,  # [batch, head, q, d_head]
    key: torch.Tensor,  # [batch, kv_head, k, d_head]
    value: torch.Tensor,  # [batch, kv_head, k, d_head]
    attention_mask: torch.Tensor | None,  # additive [batch, 1, q, k] or boolean, or None
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """HF-interface attention with hook points; returns ``(z [batch, q, head, d_head], pattern)``."""
    for unsupported in ("softcap", "s_aux", "sinks"):
        if kwargs.get(unsupported) is not None:
            raise NotImplementedError(
                f"mechscope's attention hooks do not support {unsupported!r} "
                f"({type(module).__name__}); hook only the residual-stream names for this model."
            )
    active = _ACTIVE.get()
    pts = active.get(id(module)) if active else None  # None: e.g. a cross-attention module
    get = (lambda n: getattr(pts, n, None)) if pts is not None else (lambda n: None)

    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    query = _fire_heads(get("hook_q"), query)
    key = _fire_heads(get("hook_k"), key)  # per KV head: [batch, pos, kv_head, d_head]
    value = _fire_heads(get("hook_v"), value)
    n_rep = query.shape[1] // key.shape[1]
    k, v = repeat_kv(key, n_rep), repeat_kv(value, n_rep)

    scores = torch.matmul(query, k.transpose(2, 3)) * scaling  # [batch, head, q, k]
    scores = _fire(get("hook_attn_scores"), masked(module, scores, attention_mask))
    pattern = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    pattern = nn.functional.dropout(pattern, p=dropout, training=module.training)
    pattern = _fire(get("hook_pattern"), pattern)
    z = torch.matmul(pattern, v).transpose(1, 2).contiguous()  # [batch, q, head, d_head]
    return z, pattern


def _configs(hf_model: nn.Module) -> list:
    """Every distinct config object the model's modules read ``_attn_implementation`` from."""
    seen: dict[int, object] = {}
    for m in hf_model.modules():
        cfg = getattr(m, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation_internal"):
            seen.setdefault(id(cfg), cfg)
            for key in getattr(cfg, "sub_configs", {}) or {}:
                sub = getattr(cfg, key, None)
                if sub is not None and hasattr(sub, "_attn_implementation_internal"):
                    seen.setdefault(id(sub), sub)
    return list(seen.values())


@contextlib.contextmanager
def mechscope_attention(hf_model: nn.Module, points: dict[int, nn.Module]) -> Iterator[None]:
    """Run ``hf_model`` with the hooked attention inside the block; restore its own after.

    points: ``id(attention module) -> module holding hook_q/k/v/attn_scores/pattern``.
    """
    _register()
    saved = [(cfg, cfg._attn_implementation_internal) for cfg in _configs(hf_model)]
    token = _ACTIVE.set(points)
    try:
        for cfg, _ in saved:
            cfg._attn_implementation_internal = IMPL
        yield
    finally:
        for cfg, impl in saved:
            cfg._attn_implementation_internal = impl
        _ACTIVE.reset(token)
