"""The body of one nnsight trace: mechscope's hook points, fired in forward order.

nnsight (>= 0.5) runs the code inside ``with lm.trace(...)`` interleaved with the model's
forward pass: reading ``envoy.input`` / ``envoy.output`` waits until that module runs and
gives the real tensor; assigning to it replaces what the module passes on. Values must be
read in the order the forward pass produces them, so :func:`fire_points` walks the hook
points in forward order and touches only the modules whose points have hooks. Where each
name reads is the table of :mod:`mechscope.models.hf` (the same module paths,
``_hf_families``), so the numbers are those of ``mechscope.wrap(hf_model)``.

Per-head ``hook_q / k / v / attn_scores / pattern`` read the arguments of the attention
call inside the attention module's ``forward`` (nnsight's ``.source``: the call site of
``attention_interface(self, query, key, value, attention_mask, ...)``, after rotary
embeddings) and, for scores / pattern, replace that call's result by the eager attention
computed here with the hooks in place (the fused SDPA kernel never materialises a pattern).

Remote traces (``remote=True``, and its dry run ``"local"``) run this body on NDIF's server,
on copies of every Python object it uses: a hook that stores into a dict here would fill the
server's copy. So hooks marked read-only (``fn.mechscope_read_only``, as ``run_with_cache``'s
are; :mod:`mechscope.hooks`) do not run in the trace: :func:`read_only_plan` lists them before
the trace, :func:`fire_points` puts the value each would have seen into the dict it returns
(saved with ``nnsight.save``, so it comes back), and :func:`replay` calls them here after the
trace, in forward order. Hooks without the mark (patching, steering, ablation) run in the trace.
"""

from __future__ import annotations

import torch
from torch import nn

from ._hf_attention import masked, repeat_kv

_ATTN_INTERNAL = ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern")


def read_only_plan(model, active: set[str]) -> dict[str, tuple[bool, ...]]:
    """``{hook point name: (read-only?, ...) per installed hook}`` for the active points with at
    least one hook marked ``mechscope_read_only`` (see :mod:`mechscope.hooks`)."""
    plan = {}
    for name in active:
        marks = tuple(
            getattr(h, "mechscope_read_only", False) is True
            for h in model._hook_points[name]._forward_hooks.values()
        )
        if any(marks):
            plan[name] = marks
    return plan


def _call(point: nn.Module, hook_id, hook, x: torch.Tensor):
    """One forward hook of ``point`` on ``x``, as ``point(x)`` would call it."""
    if hook_id in point._forward_hooks_with_kwargs:
        return hook(point, (x,), {}, x)
    return hook(point, (x,), x)


class Firing:
    """Passes values through hook points inside a trace. ``plan`` None: every hook runs here
    (``point(x)``). Else (a remote trace) the hooks ``plan`` marks read-only do not run: the
    value each would have seen goes into ``saved[(name, hook index)]``, in forward order.
    ``grads``: points whose value (after their hooks) gets a zero leaf added, so that a
    backward pass inside the trace gives the gradient at them (``leaves``; values in ``acts``).
    ``keep``: points whose value (after their hooks) goes into ``acts`` (read in the trace)."""

    def __init__(self, plan: dict[str, tuple[bool, ...]] | None, grads=(), keep=()):
        self.plan = plan
        self.saved: dict[tuple[str, int], torch.Tensor] = {}
        self.grads = set(grads)
        self.keep = set(keep)
        self.acts: dict[str, torch.Tensor] = {}
        self.leaves: dict[str, torch.Tensor] = {}

    def __call__(self, point: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if point._forward_hooks:
            x = self._hooks(point, x)
        if point.name in self.keep:
            self.acts[point.name] = x
        if point.name in self.grads:
            leaf = torch.zeros_like(x, requires_grad=True)
            self.acts[point.name], self.leaves[point.name] = x.detach(), leaf
            x = x + leaf
        return x

    def _hooks(self, point: nn.Module, x: torch.Tensor) -> torch.Tensor:
        marks = self.plan.get(point.name) if self.plan else None
        if not marks:
            return point(x)
        for k, (hook_id, hook) in enumerate(point._forward_hooks.items()):
            if marks[k]:
                self.saved[(point.name, k)] = x
                continue
            out = _call(point, hook_id, hook, x)
            if out is not None:
                x = out
        return x

    def heads(self, point: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Hook a ``[batch, head, pos, d_head]`` tensor as ``[batch, pos, head, d_head]``."""
        if not point._forward_hooks and point.name not in self.grads | self.keep:
            return x
        xt = x.transpose(1, 2)
        out = self(point, xt)
        return x if out is xt else out.transpose(1, 2)


def replay(model, saved: dict[tuple[str, int], torch.Tensor]) -> None:
    """After a remote trace: call each read-only hook here on the value it would have seen
    (``saved``, from :class:`Firing`), in forward order."""
    for (name, k), x in saved.items():
        point = model._hook_points[name]
        hook_id, hook = list(point._forward_hooks.items())[k]
        if _call(point, hook_id, hook, x) is not None:
            raise ValueError(
                f"A hook on {name!r} is marked read-only (mechscope_read_only = True) but "
                f"returned a tensor; a remote run cannot apply that edit after the pass. "
                f"Remove the mark from a hook that edits activations, or return None."
            )


def nnsight_save(value):
    """``nnsight.save(value)``: bring ``value`` back from the trace it was computed in."""
    import nnsight

    return nnsight.save(value)


def envoy_at(root, path: str):
    """The envoy at a dotted module path (``"h.0.attn"``; digits index a ModuleList)."""
    env = root
    for part in path.split("."):
        env = env[int(part)] if part.isdigit() else getattr(env, part)
    return env


def attention_call(attn_envoy, hook: str):
    """The ``attention_interface(...)`` call site inside an attention module's forward."""
    try:
        source = attn_envoy.source
        names = [n for n in source.names if n.startswith("attention_interface_")]
    except Exception as err:  # noqa: BLE001  (nnsight's SourceNotAvailable and kin)
        names, why = [], f"nnsight cannot read its forward's source ({err})"
    else:
        why = "its forward has no attention_interface(...) call"
    if not names:
        raise NotImplementedError(
            f"{hook} cannot be reached through nnsight on "
            f"{type(attn_envoy._module).__name__}: {why}, so q, k, v and the attention "
            f"pattern are never separate tensors nnsight can see. Hook attn.hook_z or "
            f"hook_attn_out instead, or use mechscope.wrap(hf_model, tokenizer) locally."
        )
    return getattr(source, max(names, key=lambda n: int(n.rsplit("_", 1)[1])))


def eager_attention(pts, module, q, k, v, mask, scaling, fire=None):
    """HF's eager attention with ``hook_attn_scores`` / ``hook_pattern`` in place:
    ``(z [batch, q, head, d_head], pattern [batch, head, q, k])``. fire: a :class:`Firing`."""
    fire = fire or Firing(None)
    if scaling is None:
        scaling = q.shape[-1] ** -0.5
    n_rep = q.shape[1] // k.shape[1]
    scores = torch.matmul(q, repeat_kv(k, n_rep).transpose(2, 3)) * scaling
    scores = fire(pts.hook_attn_scores, masked(module, scores, mask))
    pattern = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    pattern = fire(pts.hook_pattern, pattern)
    z = torch.matmul(pattern, repeat_kv(v, n_rep)).transpose(1, 2).contiguous()
    return z, pattern


def _attention(model, layer: int, attn_envoy, on, fire: Firing) -> None:
    pts = model.blocks[layer].attn
    p = f"blocks.{layer}.attn."
    call = attention_call(attn_envoy, p + next(h for h in _ATTN_INTERNAL if on(p + h)))
    args, kwargs = call.inputs
    module, q, k, v, mask = args[:5]
    new_q = fire.heads(pts.hook_q, q)
    new_k = fire.heads(pts.hook_k, k)
    new_v = fire.heads(pts.hook_v, v)
    if on(p + "hook_attn_scores") or on(p + "hook_pattern"):
        scaling = kwargs.get("scaling")
        z, pattern = eager_attention(pts, module, new_q, new_k, new_v, mask, scaling, fire)
        call.output = (z, pattern)
    elif any(a is not b for a, b in ((new_q, q), (new_k, k), (new_v, v))):
        call.inputs = ((module, new_q, new_k, new_v, *args[4:]), kwargs)


def _norm(model, ln_envoy, fire: Firing) -> None:
    """ln_final.hook_scale / hook_normalized: TransformerLens' split of the final norm."""
    pts, kind = model.ln_final, model.family.norm
    x = ln_envoy.input
    eps = model.final_norm()["eps"]
    xf = x.float()
    centred = xf - xf.mean(-1, keepdim=True) if kind == "ln" else xf
    scale = fire(pts.hook_scale, (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt().to(x.dtype))
    normalized = (centred / scale).to(x.dtype)
    new = fire(pts.hook_normalized, normalized)
    if new is not normalized:
        module = ln_envoy._module
        w, b = getattr(module, "weight", None), getattr(module, "bias", None)
        y = new * w if w is not None else new
        ln_envoy.output = y + b if b is not None else y


def fire_points(model, base, active: set[str], batch: int, fire: Firing) -> None:
    """Inside a trace: pass each active hook point's value through it, in forward order.

    model: the :class:`mechscope.models.nnsight.NNsightModel`; base: the envoy of the HF
    base model (``lm.transformer``, ``lm.model``, ...); active: names of points with hooks
    (or a gradient to take); fire: the :class:`Firing` that passes values through them (it
    keeps what read-only hooks would have seen, and the gradient leaves).
    """
    fam = model.family

    def on(name: str) -> bool:
        return name in active

    if on("hook_embed"):
        env = envoy_at(base, fam.embed)
        x = env.output
        new = fire(model.hook_embed, x)
        if new is not x:
            env.output = new
    if fam.pos_embed and on("hook_pos_embed"):
        env = envoy_at(base, fam.pos_embed)
        x = env.output  # [1 or batch, pos, d_model]; one row per prompt for the hook
        env.output = fire(model.hook_pos_embed, x.expand(batch, *x.shape[1:]).clone())
    pre_norm = fam.residual == "pre"
    for i in range(model.cfg.n_layers):
        pts, p = model.blocks[i], f"blocks.{i}."
        block = envoy_at(base, f"{fam.layers}.{i}")
        need_mid = pre_norm and on(p + "hook_resid_mid")
        resid_pre = None
        if on(p + "hook_resid_pre") or need_mid:
            x = block.input
            resid_pre = fire(pts.hook_resid_pre, x)
            if resid_pre is not x:
                block.input = resid_pre
        if any(on(p + "attn." + h) for h in _ATTN_INTERNAL):
            _attention(model, i, envoy_at(block, fam.attn), on, fire)
        out_proj = envoy_at(block, fam.out_proj)
        if on(p + "attn.hook_z"):
            flat = out_proj.input  # [batch, pos, head * d_head]
            z = flat.view(*flat.shape[:-1], model.cfg.n_heads, model.cfg.d_head)
            new = fire(pts.attn.hook_z, z)
            if new is not z:
                out_proj.input = new.reshape(flat.shape)
        if on(p + "hook_attn_out") or need_mid:
            out = out_proj.output
            new = fire(pts.hook_attn_out, out)
            if need_mid:  # resid_mid = resid_pre + attn_out; an edit goes back as attn_out's
                mid = resid_pre + new
                new_mid = fire(pts.hook_resid_mid, mid)
                if new_mid is not mid:
                    new = new_mid - resid_pre
            if new is not out:
                out_proj.output = new
        if on(p + "mlp.hook_pre"):
            env = envoy_at(block, fam.mlp_act)
            x = env.input
            new = fire(pts.mlp.hook_pre, x)
            if new is not x:
                env.input = new
        mlp_out = envoy_at(block, fam.mlp_out)
        if on(p + "mlp.hook_post"):
            x = mlp_out.input
            new = fire(pts.mlp.hook_post, x)
            if new is not x:
                mlp_out.input = new
        if on(p + "hook_mlp_out"):
            x = mlp_out.output
            new = fire(pts.hook_mlp_out, x)
            if new is not x:
                mlp_out.output = new
        if on(p + "hook_resid_post"):
            out = block.output  # a tensor, or a tuple whose first entry is the residual
            x = out[0] if isinstance(out, tuple) else out
            new = fire(pts.hook_resid_post, x)
            if new is not x:
                block.output = (new, *out[1:]) if isinstance(out, tuple) else new
    if fam.ln_final and (on("ln_final.hook_scale") or on("ln_final.hook_normalized")):
        _norm(model, envoy_at(base, fam.ln_final), fire)
