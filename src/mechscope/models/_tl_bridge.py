"""Private machinery of :mod:`mechscope.models.tl`: which TransformerLens hook each mechscope
name reads, the hook-point tree on the wrapper, the relay hook, the config."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch
from torch import nn

from ..hooks import HookPoint
from .hf import HFConfig

# mechscope's names per block, in forward order (as mechscope.wrap of an HF model).
_ATTN = ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern", "hook_z")
_MLP = ("hook_pre", "hook_post")


def tl_names(tl, n_layers: int) -> dict[str, str]:
    """mechscope name -> the TransformerLens hook name it reads, for the hooks ``tl`` has."""
    cfg = tl.cfg
    available = set(tl.hook_dict)
    rotary = getattr(cfg, "positional_embedding_type", "standard") == "rotary"
    parallel = bool(getattr(cfg, "parallel_attn_mlp", False))
    learned = getattr(cfg, "positional_embedding_type", "standard") == "standard"
    plan = [("hook_embed", "hook_embed")]
    if learned:
        plan.append(("hook_pos_embed", "hook_pos_embed"))
    for i in range(n_layers):
        p = f"blocks.{i}."
        plan.append((p + "hook_resid_pre", p + "hook_resid_pre"))
        for h in _ATTN:
            src = h.replace("hook_", "hook_rot_") if rotary and h in ("hook_q", "hook_k") else h
            plan.append((p + "attn." + h, p + "attn." + src))
        plan.append((p + "hook_attn_out", p + "hook_attn_out"))
        if not parallel:
            plan.append((p + "hook_resid_mid", p + "hook_resid_mid"))
        plan += [(p + "mlp." + h, p + "mlp." + h) for h in _MLP]
        plan += [(p + "hook_mlp_out", p + "hook_mlp_out"), (p + "hook_resid_post",) * 2]
    plan += [("ln_final.hook_scale",) * 2, ("ln_final.hook_normalized",) * 2]
    return {ours: theirs for ours, theirs in plan if theirs in available}


def points_tree(root: nn.Module, names: Iterable[str], n_layers: int) -> None:
    """Attach a :class:`HookPoint` at each dotted ``name`` under ``root`` (``blocks`` a
    ModuleList, so ``model.blocks[0].attn.hook_z`` works as on every mechscope model)."""
    for name in names:
        if name.startswith("blocks.") and not hasattr(root, "blocks"):
            root.blocks = nn.ModuleList(nn.Module() for _ in range(n_layers))
        *path, leaf = name.split(".")
        mod = root
        for part in path:
            if not hasattr(mod, part):
                mod.add_module(part, nn.Module())
            mod = getattr(mod, part)
        mod.add_module(leaf, HookPoint())


def relay(point: HookPoint, target: nn.Module):
    """A torch forward hook for TransformerLens hook point ``target`` that passes its
    activation through ``point`` (in TransformerLens' layout: its ``hook_conversion``)."""

    def hook(module, inputs, output):
        conv = getattr(target, "hook_conversion", None)
        x = conv.convert(output) if conv is not None else output
        y = point(x)
        if y is x:
            return None
        return conv.revert(y) if conv is not None else y

    return hook


def original_modules(tl) -> list[nn.Module]:
    orig = getattr(tl, "original_model", None)
    return list(orig.modules()) if isinstance(orig, nn.Module) else []


def or_zeros(get, n: int, model) -> torch.Tensor:
    try:
        b = get()
    except AttributeError:  # the bridge raises for a bias-free projection
        b = None
    return b if isinstance(b, torch.Tensor) else model.bridge.W_U.new_zeros(n)


def make_cfg(tl) -> HFConfig:
    c = tl.cfg
    norm = str(getattr(c, "normalization_type", "") or "LN")
    n_heads = int(c.n_heads)
    pos_type = getattr(c, "positional_embedding_type", "standard")
    fields = dict(
        n_layers=int(c.n_layers),
        n_heads=n_heads,
        n_kv_heads=int(getattr(c, "n_key_value_heads", None) or n_heads),
        d_model=int(c.d_model),
        d_head=int(c.d_head),
        d_mlp=int(getattr(c, "d_mlp", None) or 4 * c.d_model),
        d_vocab=int(c.d_vocab),
        n_ctx=int(c.n_ctx),
        family=str(getattr(c, "original_architecture", None) or getattr(c, "architecture", None)),
        normalization="rms" if norm.startswith("RMS") else "ln",
        residual="parallel" if getattr(c, "parallel_attn_mlp", False) else "pre",
        positional="learned" if pos_type == "standard" else str(pos_type),
        is_causal=getattr(c, "attention_dir", "causal") == "causal",
        output="logits",
        act_fn=str(getattr(c, "act_fn", "") or ""),
    )
    names = {f.name for f in dataclasses.fields(HFConfig)}
    return HFConfig(**{k: v for k, v in fields.items() if k in names})


_BIAS_SHAPE = {
    "b_Q": ("n_heads", "d_head"), "b_K": ("n_heads", "d_head"), "b_V": ("n_heads", "d_head"),
    "b_O": ("d_model",), "b_in": ("d_mlp",), "b_out": ("d_model",),
}  # fmt: skip


def weight(bridge, name: str, cfg) -> torch.Tensor:
    """TransformerLens 3's ``model.<name>`` from a bridge: a detached copy; grouped-query
    K/V heads repeated to ``n_heads``; a bias the architecture lacks as zeros."""
    try:
        w = getattr(bridge, name)
    except AttributeError:
        if name not in _BIAS_SHAPE:
            raise AttributeError(
                f"{name}: this {cfg.family} model has none (e.g. no W_pos with rotary "
                f"positions, no W_gate without a gated MLP)."
            ) from None
        dims = [getattr(cfg, d) for d in _BIAS_SHAPE[name]]
        return torch.zeros(cfg.n_layers, *dims, device=bridge.W_E.device)
    w = w.detach().clone()
    if name in ("W_K", "W_V", "b_K", "b_V") and w.shape[1] != cfg.n_heads:
        w = w.repeat_interleave(cfg.n_heads // w.shape[1], dim=1)
    return w


_LAYER_BIAS = {
    "b_Q": ("n_heads", "d_head"), "b_K": ("n_heads", "d_head"), "b_V": ("n_heads", "d_head"),
    "b_O": ("d_model",), "b_in": ("d_mlp",), "b_out": ("d_model",),
}  # fmt: skip


class WeightView(nn.Module):
    """A ``blocks[l].attn`` / ``blocks[l].mlp`` container of hook points that also reads the
    bridge's per-layer weights (``W_Q``, ... as detached copies, as :func:`weight` does), so
    weight-based analyses (``mechscope.circuits``) see TransformerLens 3's layout."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            src = self.__dict__.get("_bridge_part")
            if src is None or not (name.startswith("W_") or name.startswith("b_")):
                raise
        part, cfg = src
        try:
            w = getattr(part, name)
        except AttributeError:
            if name not in _LAYER_BIAS:
                raise AttributeError(f"{name}: this {cfg.family} model has none.") from None
            return torch.zeros(*[getattr(cfg, d) for d in _LAYER_BIAS[name]])
        w = w.detach().clone()
        if name in ("W_K", "W_V", "b_K", "b_V") and w.shape[0] != cfg.n_heads:
            w = w.repeat_interleave(cfg.n_heads // w.shape[0], dim=0)
        return w


def attach_weights(root: nn.Module, bridge, cfg) -> None:
    """Let ``root.blocks[l].attn`` / ``.mlp`` read the bridge's weights of layer ``l``."""
    for layer, block in enumerate(getattr(root, "blocks", [])):
        for part in ("attn", "mlp"):
            if part in block._modules and hasattr(bridge.blocks[layer], part):
                block._modules[part].__class__ = WeightView
                block._modules[part].__dict__["_bridge_part"] = (
                    getattr(bridge.blocks[layer], part),
                    cfg,
                )
