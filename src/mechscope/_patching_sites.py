"""Internals of :mod:`mechscope.patching`: the sites and the patch masks.

A *site* is a kind of activation (``resid_pre``, ``z``, ...) at every layer; a *patch* is one
index into it (a position, a head, or a head at a position). Many patches of one layer run as
many copies of the target prompts in one batched forward pass: copy ``i`` gets patch ``i``.
Each patch is applied as a boolean mask, so patched values are copied bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Site:
    hook: str  # hook name under blocks.{layer}
    index: str  # what one patch indexes: "pos", "head" (all positions) or "head_pos"
    doc: str


SITES = {
    "resid_pre": Site("hook_resid_pre", "pos", "residual stream entering the block"),
    "resid_mid": Site("hook_resid_mid", "pos", "residual stream between attention and MLP"),
    "resid_post": Site("hook_resid_post", "pos", "residual stream leaving the block"),
    "attn_out": Site("hook_attn_out", "pos", "attention output (all heads, with bias)"),
    "mlp_out": Site("hook_mlp_out", "pos", "MLP output"),
    "z": Site("attn.hook_z", "head", "one head's output (z), at every position"),
    "z_by_pos": Site("attn.hook_z", "head_pos", "one head's output (z) at one position"),
    "pattern": Site("attn.hook_pattern", "head", "one head's attention pattern"),
}


def hook_name(site: str, layer: int) -> str:
    return f"blocks.{layer}.{SITES[site].hook}"


def patch_grid(site: str, n_pos: int, n_heads: int) -> list[tuple[int, ...]]:
    """The patches of one layer, in result order: ``(pos,)``, ``(head,)`` or ``(head, pos)``."""
    index = SITES[site].index
    if index == "pos":
        return [(p,) for p in range(n_pos)]
    if index == "head":
        return [(h,) for h in range(n_heads)]
    return [(h, p) for h in range(n_heads) for p in range(n_pos)]


def patch_mask(site: str, patches: list[tuple[int, ...]], act_shape: torch.Size) -> torch.Tensor:
    """Boolean mask, broadcastable to ``[copy, batch, *act_shape[1:]]``: True where copy i is patched.

    Activation layouts (DESIGN.md): resid/attn_out/mlp_out ``[batch, pos, d_model]``;
    z ``[batch, pos, head, d_head]``; pattern ``[batch, head, query_pos, key_pos]``.
    """
    n = len(patches)
    rest = act_shape[1:]
    idx = torch.arange(n)
    index = SITES[site].index
    if index == "pos":  # [copy, 1, pos, 1]
        mask = torch.zeros(n, rest[0], dtype=torch.bool)
        mask[idx, [p[0] for p in patches]] = True
        return mask[:, None, :, None]
    if site == "pattern":  # [copy, 1, head, 1, 1]
        mask = torch.zeros(n, rest[0], dtype=torch.bool)
        mask[idx, [p[0] for p in patches]] = True
        return mask[:, None, :, None, None]
    mask = torch.zeros(n, rest[0], rest[1], dtype=torch.bool)  # [copy, pos, head]
    if index == "head":
        mask[idx, :, [p[0] for p in patches]] = True
    else:
        mask[idx, [p[1] for p in patches], [p[0] for p in patches]] = True
    return mask[:, None, :, :, None]


def patch_position(site: str, patch: tuple[int, ...]) -> int | None:
    """The one position a patch writes to, or None if it writes to every position."""
    index = SITES[site].index
    return patch[0] if index == "pos" else patch[1] if index == "head_pos" else None


def patches_that_change(
    site: str, patches: list[tuple[int, ...]], source: torch.Tensor, target: torch.Tensor
) -> list[bool]:
    """For each patch: does writing ``source`` into ``target`` there change any value?"""
    differs = source != target
    index = SITES[site].index
    if site == "pattern":  # [batch, head, q, k] -> [head]
        by_head = differs.flatten(2).any(-1).any(0)
        return [bool(by_head[p[0]]) for p in patches]
    if index == "pos":  # [batch, pos, d_model] -> [pos]
        by_pos = differs.any(-1).any(0)
        return [bool(by_pos[p[0]]) for p in patches]
    by_pos_head = differs.any(-1).any(0)  # z: [batch, pos, head, d_head] -> [pos, head]
    if index == "head":
        by_head = by_pos_head.any(0)
        return [bool(by_head[p[0]]) for p in patches]
    return [bool(by_pos_head[p[1], p[0]]) for p in patches]


def from_position(
    site: str, patches: list[tuple[int, ...]], source: torch.Tensor, start: int
) -> tuple[list[tuple[int, ...]], torch.Tensor]:
    """Patches and source activations for a run that computes positions ``start..`` only.

    Positions are the second axis of every site's activation except ``pattern``, whose
    query positions are its third (its key positions stay whole: later queries still attend
    to every earlier key).
    """
    if not start:
        return patches, source
    index = SITES[site].index
    if index == "pos":
        patches = [(p[0] - start,) for p in patches]
    elif index == "head_pos":
        patches = [(p[0], p[1] - start) for p in patches]
    source = source[:, :, start:] if site == "pattern" else source[:, start:]
    return patches, source


def patch_hook(site: str, patches: list[tuple[int, ...]], source: torch.Tensor, offset: int = 0):
    """A hook that writes ``source`` ([batch, ...]) into copy ``offset + i`` at patch i of the
    batched run. Copies before ``offset`` and after the last patched one are left alone
    (a run may carry copies patched elsewhere)."""
    mask_cache: dict[str, torch.Tensor] = {}

    def hook(act, hook):
        n, batch = len(patches), source.shape[0]
        if "m" not in mask_cache:
            mask_cache["m"] = patch_mask(site, patches, source.shape).to(act.device)
        total = act.shape[0] // batch
        view = act.reshape(total, batch, *act.shape[1:])
        mine = view[offset : offset + n]
        out = torch.where(mask_cache["m"], source.to(act.dtype)[None], mine)
        if n == total:
            return out.reshape(act.shape)
        view = view.clone()
        view[offset : offset + n] = out
        return view.reshape(act.shape)

    return hook


def bytes_per_sequence(model, n_pos: int) -> int:
    """Rough peak activation memory of one sequence in a no-grad forward pass.

    A few residual-sized tensors, the MLP hidden layer, the scores and pattern of one
    layer, and the logits (which dominate for large vocabularies). Under no_grad only one
    layer's intermediates are alive at a time.
    """
    cfg = model.cfg
    d_mlp = getattr(cfg, "d_mlp", None) or 0
    floats = n_pos * (8 * cfg.d_model + 3 * d_mlp + 4 * cfg.n_heads * n_pos + 2 * cfg.d_vocab)
    return 4 * floats
