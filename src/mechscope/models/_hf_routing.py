"""Routing for ``HFModel``: torch hooks on the HF modules, installed only during a call.

For each hook point that has a hook, the matching HF module gets a forward (pre-)hook
that passes the activation through the point and hands back whatever the point's
hooks return. Per-head q/k/v/scores/pattern need the attention internals, so for
those the hooked eager attention of :mod:`._hf_attention` is swapped in. All of it is
undone in a ``finally`` (an ``ExitStack``), also when a hook raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from ..hooks import HookPoint, model_lock
from . import _hf_families
from ._hf_attention import mechscope_attention

_ATTN_INTERNAL = ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern")


def _first_arg(args, kwargs, key="hidden_states"):
    return args[0] if args else kwargs[key]


def with_first_arg(args, kwargs, value, key="hidden_states"):
    if args:
        return (value, *args[1:]), kwargs
    return args, {**kwargs, key: value}


def _fired(point: HookPoint, x: torch.Tensor) -> torch.Tensor:
    return point(x) if point._forward_hooks else x


@contextlib.contextmanager
def eval_mode(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Set ``training = False`` on each of ``modules`` (e.g. ``model.modules()``) for the block,
    then give each its own flag back (not ``.train()``, which would overwrite the submodules'
    flags). Shared by the HF, nnsight and TransformerLens wrappers."""
    mods = list(modules)
    saved = [m.training for m in mods]
    try:
        for m in mods:
            m.training = False
        yield
    finally:
        for m, flag in zip(mods, saved, strict=True):
            m.training = flag


class RoutingMixin:
    # ---- routing: torch hooks on HF modules, only during a call -------------

    @contextlib.contextmanager
    def _routing(self, batch: int) -> Iterator[None]:
        """Every run of the HF model goes through here: hold the model's lock, run in eval
        mode (restoring each module's flag after), and route the active hook points."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(model_lock(self))
            stack.enter_context(eval_mode(self.modules()))
            active = {n for n, p in self._hook_points.items() if p._forward_hooks}
            if not active:
                yield
                return
            handles: list = []
            stack.callback(lambda: [h.remove() for h in handles])
            self._install(active, batch, handles)
            if any(n.rsplit(".", 1)[-1] in _ATTN_INTERNAL for n in active):
                stack.enter_context(mechscope_attention(self.hf_model, self._attn_points))
            yield

    def _install(self, active: set[str], batch: int, handles: list) -> None:
        def on(name):
            return name in active

        if on("hook_embed"):
            handles.append(self._embed.register_forward_hook(self._out_hook(self.hook_embed)))
        if self._pos_embed is not None and on("hook_pos_embed"):
            handles.append(
                self._pos_embed.register_forward_hook(
                    self._out_hook(self.hook_pos_embed, expand_batch=batch)
                )
            )
        pre_norm = self.family.residual == "pre"
        for i, s in enumerate(self._sites):
            pts = self.blocks[i]
            p = f"blocks.{i}."
            need_mid = on(p + "hook_resid_mid")
            resid_pre: dict[str, torch.Tensor] = {}  # the residual entering block i (this call)
            if on(p + "hook_resid_pre") or (need_mid and pre_norm):
                handles.append(
                    s["block"].register_forward_pre_hook(
                        self._resid_pre_hook(pts.hook_resid_pre, resid_pre), with_kwargs=True
                    )
                )
            if on(p + "attn.hook_z"):
                handles.append(
                    s["out_proj"].register_forward_pre_hook(self._z_hook(pts.attn.hook_z))
                )
            if on(p + "hook_attn_out") or (need_mid and pre_norm):
                mid = pts.hook_resid_mid if (need_mid and pre_norm) else None
                handles.append(
                    s["out_proj"].register_forward_hook(
                        self._attn_out_hook(pts.hook_attn_out, mid, resid_pre)
                    )
                )
            if need_mid and not pre_norm:
                handles.append(
                    s["resid_mid"].register_forward_hook(self._out_hook(pts.hook_resid_mid))
                )
            if on(p + "mlp.hook_pre"):
                handles.append(
                    s["mlp_act"].register_forward_pre_hook(self._in_hook(pts.mlp.hook_pre))
                )
            if on(p + "mlp.hook_post"):
                handles.append(
                    s["mlp_out"].register_forward_pre_hook(self._in_hook(pts.mlp.hook_post))
                )
            if on(p + "hook_mlp_out"):
                handles.append(s["mlp_out"].register_forward_hook(self._out_hook(pts.hook_mlp_out)))
            if on(p + "hook_resid_post"):
                handles.append(
                    s["block"].register_forward_hook(self._out_hook(pts.hook_resid_post))
                )
        if self._ln_final is not None and (
            on("ln_final.hook_scale") or on("ln_final.hook_normalized")
        ):
            handles.append(self._ln_final.register_forward_hook(self._norm_hook()))

    @staticmethod
    def _out_hook(point: HookPoint, expand_batch: int | None = None):
        def hook(module, args, output):
            first = output[0] if isinstance(output, tuple) else output
            if expand_batch:
                # One row of positions per prompt; repeated, not expanded, so an in-place edit
                # in a hook is an ordinary write (and the edit is handed back below).
                x = first.expand(expand_batch, *first.shape[1:]).clone()
                new = point(x)
            else:
                x = first
                new = point(x)
                if new is x:
                    return None
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return hook

    @staticmethod
    def _in_hook(point: HookPoint):
        def hook(module, args):
            new = point(args[0])
            return None if new is args[0] else (new, *args[1:])

        return hook

    @staticmethod
    def _resid_pre_hook(point: HookPoint, record: dict):
        def hook(module, args, kwargs):
            x = _first_arg(args, kwargs)
            new = _fired(point, x)
            record["x"] = new
            return None if new is x else with_first_arg(args, kwargs, new)

        return hook

    def _z_hook(self, point: HookPoint):
        H, Dh = self.cfg.n_heads, self.cfg.d_head

        def hook(module, args):
            flat = args[0]  # [batch, pos, head * d_head]
            z = flat.view(*flat.shape[:-1], H, Dh)
            new = point(z)
            return None if new is z else (new.reshape(flat.shape), *args[1:])

        return hook

    @staticmethod
    def _attn_out_hook(point: HookPoint, mid: HookPoint | None, resid_pre: dict):
        def hook(module, args, output):
            out = _fired(point, output)
            if mid is not None:
                # resid_mid is never a tensor of the HF forward (it adds attn_out to the residual
                # inline), so we form it here; an edit to it is routed back as an edit of attn_out.
                before = resid_pre["x"]
                m = before + out
                new_m = mid(m)
                if new_m is not m:
                    out = new_m - before
            return None if out is output else out

        return hook

    def _norm_hook(self):
        pts, kind = self.ln_final, self.family.norm

        def hook(module, args, output):
            x = args[0]
            eps = _hf_families.norm_eps(module)
            xf = x.float()
            centred = xf - xf.mean(-1, keepdim=True) if kind == "ln" else xf
            scale = (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt()
            scale = _fired(pts.hook_scale, scale.to(x.dtype))
            normalized = (centred / scale).to(x.dtype)
            new = _fired(pts.hook_normalized, normalized)
            if new is normalized:
                return None
            w, b = getattr(module, "weight", None), getattr(module, "bias", None)
            y = new * w if w is not None else new
            return y + b if b is not None else y

        return hook
