"""Path patching: the effect of one head's output along chosen paths only.

Activation patching a head's output ``z`` measures its *total* effect, through every later
component. Path patching (Wang et al. 2022, "Interpretability in the Wild", section 3.1;
Goldowsky-Dill et al. 2023, "Localizing Model Behavior with Path Patching") asks how much
of it travels along particular paths: from a *sender* head to chosen *receivers* (the hook
points ``hooks``), e.g. the keys of the induction head (K-composition) or the final residual
stream (the direct path).

Given a *source* run and a *target* run (``direction`` picks which prompt is which, as in
:func:`mechscope.patching.activation_patch`):

1. Run the target prompts with the sender's ``hook_z`` taken from the source run and every
   other head's ``hook_z`` frozen to its target value (MLPs and LayerNorms recompute, as in
   Wang et al. 2022). Record the receivers' activations: they now differ from the target
   run only by what the sender sent them along paths that avoid other heads.
2. Run the target prompts again, normally, except that the receivers' activations are
   replaced by the ones recorded in step 1. Score ``metric``.

Receivers (``hooks``) are hook names, optionally with a head index for per-head activations:

- ``"blocks.1.attn.hook_k"``: the keys of every layer-1 head; ``("blocks.1.attn.hook_k", 2)``:
  head 2's keys only (also ``hook_q``, ``hook_v``, ``hook_z``, ``hook_attn_scores``,
  ``hook_pattern``);
- ``"ln_final.hook_normalized"`` or ``"blocks.{last}.hook_resid_post"``: the direct path to
  the logits.

Every receiver must come after the sender in the forward pass. The sweep
:func:`path_patch_all` batches all senders (one patched copy each) into two forward passes
per chunk.

Example::

    prev = path_patch(model, clean, corrupted, metric, sender=(0, 3),
                      hooks=[("blocks.1.attn.hook_k", 1)], direction="noising")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from ._core import as_tokens, check_pair, copies_per_chunk, metric_values, str_tokens_of
from ._sweep import PatchResult, check_direction, labelled
from .hooks import resolve_names, unknown_name_error
from .metrics import Metric

__all__ = ["path_patch", "path_patch_all"]

# Per-head hook points and the axis of their head index.
_HEAD_AXIS = {
    "attn.hook_q": 2,
    "attn.hook_k": 2,
    "attn.hook_v": 2,
    "attn.hook_z": 2,
    "attn.hook_attn_scores": 1,
    "attn.hook_pattern": 1,
}


def path_patch(
    model,
    clean,
    corrupted,
    metric: Metric,
    *,
    sender: tuple[int, int],
    hooks: Sequence,
    direction: str = "denoising",
) -> float:
    """Metric of the target run when only ``hooks`` see the sender head's patched output.

    model: a HookedModel (``mechscope.Transformer`` or ``mechscope.wrap(...)``).
    clean, corrupted: text, a list of texts, or token ids ``[pos]`` / ``[batch, pos]`` of
        the same shape.
    metric: ``fn(logits [batch, pos, d_vocab]) -> [batch]``; the result is its mean over
        the prompts.
    sender: ``(layer, head)``; its ``blocks.{layer}.attn.hook_z`` is patched.
    hooks: the receivers: hook names, or ``(hook name, head)`` pairs for per-head hook
        points.
    direction: ``"denoising"`` (default: the clean sender output into the corrupted run, so
        a large rise means the path suffices) or ``"noising"`` (as in Wang et al.: the
        corrupted sender output into the clean run, so a large drop means it matters).

    The model is left as it came (hooks, weights, mode).
    """
    run = _Runs(model, clean, corrupted, metric, hooks, direction)
    layer, head = _check_sender(model, sender)
    run.check_after(layer)
    return float(run.values([(layer, head)])[0])


def path_patch_all(
    model,
    clean,
    corrupted,
    metric: Metric,
    *,
    hooks: Sequence,
    direction: str = "denoising",
    batch_size: int | None = None,
    memory_mb: float | None = None,
) -> PatchResult:
    """:func:`path_patch` for every sender head: a :class:`PatchResult` ``[layer, head]``.

    A sender whose ``hook_z`` comes after every receiver has no path to them: its value is
    the unpatched target metric. batch_size / memory_mb bound the sequences per forward pass
    (patched copies x prompts), as in ``activation_patch``.
    """
    run = _Runs(model, clean, corrupted, metric, hooks, direction)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    senders = [(la, h) for la in range(n_layers) for h in range(n_heads)]
    batch, n_pos = run.target_t.shape
    if memory_mb is None:  # a model whose passes run elsewhere gives its own budget
        memory_mb = getattr(model, "request_memory_mb", None)
    per_chunk = copies_per_chunk(model, batch, n_pos, batch_size, memory_mb)
    out = []
    for start in range(0, len(senders), per_chunk):
        out.append(run.values(senders[start : start + per_chunk]))
    values = torch.cat(out).reshape(n_layers, n_heads)
    result = labelled(
        model, "z", values, run.clean_t, n_heads, direction, run.clean_v, run.corrupted_v
    )
    names = ", ".join(n if h is None else f"{n}[{h}]" for n, h in run.receivers)
    return replace(result, site=f"path z -> {names}")


def _check_sender(model, sender) -> tuple[int, int]:
    try:
        layer, head = (int(x) for x in sender)
    except (TypeError, ValueError):
        raise TypeError(f"sender={sender!r}; expected a (layer, head) pair of ints.") from None
    if any(isinstance(x, bool) for x in sender):
        raise TypeError(f"sender={sender!r}; expected a (layer, head) pair of ints, not bools.")
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise ValueError(
            f"sender={sender!r} is out of range: layers 0..{n_layers - 1}, heads 0..{n_heads - 1}."
        )
    return layer, head


def _parse_receivers(model, hooks) -> list[tuple[str, int | None]]:
    names = model.hook_names()
    if callable(hooks):
        hooks = resolve_names(hooks, names, what="hooks")
    if isinstance(hooks, (str, tuple)):
        hooks = [hooks]
    out = []
    for r in hooks:
        if isinstance(r, str):
            name, head = r, None
        elif isinstance(r, (tuple, list)) and len(r) == 2 and isinstance(r[0], str):
            name, head = r
        else:
            raise TypeError(
                f"hooks entry {r!r}; expected a hook name or a (hook name, head) pair, e.g. "
                "('blocks.1.attn.hook_k', 2)."
            )
        if name not in names:
            raise unknown_name_error(name, names, what="hooks entry (hook point)")
        if head is not None:
            suffix = name.split(".", 2)[-1] if name.startswith("blocks.") else name
            if suffix not in _HEAD_AXIS:
                raise ValueError(
                    f"hooks entry ({name!r}, {head}) has a head index, but {name!r} has no head "
                    f"axis; per-head receivers are blocks.L.{{{', '.join(_HEAD_AXIS)}}}. Pass "
                    "the name alone to patch the whole activation."
                )
            if isinstance(head, bool) or not isinstance(head, int):
                raise TypeError(f"hooks entry ({name!r}, {head!r}): the head must be an int.")
            if not 0 <= head < model.cfg.n_heads:
                raise ValueError(
                    f"hooks entry ({name!r}, {head}): head out of range 0..{model.cfg.n_heads - 1}."
                )
        out.append((name, head))
    if not out:
        raise ValueError(
            "hooks is empty; name at least one receiver hook point, e.g. "
            "'ln_final.hook_normalized'."
        )
    return out


class _Runs:
    """The clean and corrupted runs, cached once; :meth:`values` path-patches a batch of senders."""

    def __init__(self, model, clean, corrupted, metric, hooks, direction):
        check_direction(direction)
        self.model, self.metric = model, metric
        self.z_names = [f"blocks.{la}.attn.hook_z" for la in range(model.cfg.n_layers)]
        missing = [z for z in self.z_names if z not in model.hook_names()]
        if missing or not model.cfg.n_heads:
            raise KeyError(
                f"path patching sends a head's output ({missing[:1] or 'attn.hook_z'}), but "
                f"{type(model).__name__} has no per-head hook_z at every layer. Use "
                "activation_patch for models without attention heads."
            )
        self.receivers = _parse_receivers(model, hooks)
        clean_t = as_tokens(model, clean, name="clean")
        corrupted_t = as_tokens(model, corrupted, name="corrupted")
        check_pair(model, clean_t, corrupted_t)
        self.clean_t = clean_t
        source_t, self.target_t = (
            (clean_t, corrupted_t) if direction == "denoising" else (corrupted_t, clean_t)
        )
        self.batch = clean_t.shape[0]
        with torch.no_grad():
            src_logits, self.src = model.run_with_cache(source_t, names=self.z_names)
            tgt_logits, self.tgt = model.run_with_cache(self.target_t, names=self.z_names)
            source_v = metric_values(metric, src_logits, self.batch).mean().item()
            target_v = metric_values(metric, tgt_logits, self.batch).mean().item()
        self.target_t = self.target_t.to(tgt_logits.device)
        self.clean_v, self.corrupted_v = (
            (source_v, target_v) if direction == "denoising" else (target_v, source_v)
        )
        self.str_tokens = str_tokens_of(model, clean_t)

    def check_after(self, layer: int) -> None:
        order = self.model.hook_names()
        z_at = order.index(self.z_names[layer])
        early = [n for n, _ in self.receivers if order.index(n) <= z_at]
        if early:
            raise ValueError(
                f"hooks {early} come before the sender's {self.z_names[layer]!r} in the "
                "forward pass, so no path leads from the sender to them. Pick receivers in "
                f"later layers (e.g. blocks.{layer + 1}.attn.hook_k) or ln_final.hook_normalized."
            )

    def values(self, senders: list[tuple[int, int]]) -> torch.Tensor:
        """``[len(senders)]``: the metric (mean over prompts) with copy i path-patching sender i."""
        model, batch, n = self.model, self.batch, len(senders)
        tokens = self.target_t.repeat(n, 1)
        recorded: dict[str, torch.Tensor] = {}

        def record(act, hook):
            recorded[hook.name] = act.detach().clone()

        record.mechscope_read_only = True  # a remote model calls it here, after the pass

        def freeze(act, hook):  # every head's z from the target run, sender i's from the source
            layer = self.z_names.index(hook.name)
            tgt, src = self.tgt[hook.name], self.src[hook.name]  # [batch, pos, head, d_head]
            mask = torch.zeros(n, 1, 1, tgt.shape[2], 1, dtype=torch.bool, device=act.device)
            for i, (la, h) in enumerate(senders):
                if la == layer:
                    mask[i, ..., h, :] = True
            out = torch.where(mask, src.to(act.dtype)[None], tgt.to(act.dtype)[None])
            return out.reshape(act.shape)

        def put(act, hook):
            new = recorded[hook.name]
            heads = [h for name, h in self.receivers if name == hook.name]
            if None in heads:
                return new
            axis = _HEAD_AXIS[hook.name.split(".", 2)[-1]]
            keep = torch.zeros(act.shape[axis], dtype=torch.bool, device=act.device)
            keep[heads] = True
            shape = [1] * act.dim()
            shape[axis] = act.shape[axis]
            return torch.where(keep.reshape(shape), new, act)

        rec_names = list(dict.fromkeys(n for n, _ in self.receivers))
        with torch.no_grad():
            # Receivers record before the freeze on the same hook point (hooks run in order),
            # so a z receiver keeps the value its own head computed.
            step1 = [(r, record) for r in rec_names] + [(z, freeze) for z in self.z_names]
            with model.hooks(step1):
                model(tokens)
            in_pass = getattr(model, "copy_metric", None)  # nnsight: computed where it runs
            with model.hooks([(r, put) for r in rec_names]):
                if in_pass is not None:
                    return in_pass(tokens, self.metric, n).float().cpu()
                logits = model(tokens)
            out = torch.empty(n)
            for i in range(n):
                copy = logits[i * batch : (i + 1) * batch]
                out[i] = metric_values(self.metric, copy, batch).mean()
        return out
