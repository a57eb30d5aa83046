"""Activation patching: which activations carry the difference between two prompts?

Run a *clean* prompt (``"The Colosseum is in"``) and a *corrupted* one of the same token
length (``"The Louvre is in"``). Then copy one activation from one run into the other and
measure how much of the behaviour moves with it (review section 4.3; Meng et al. 2022,
"Locating and Editing Factual Associations in GPT"; Wang et al. 2022, "Interpretability in
the Wild"; Heimersheim & Nanda 2024, "How to use and interpret activation patching").

- ``direction="denoising"``: clean activations into the corrupted run. A high value means
  the site is *sufficient* to restore the clean behaviour.
- ``direction="noising"``: corrupted activations into the clean run. A large drop means the
  site is *necessary* for it.

Sites (one value per layer and ...):

============  ==============================================  ====================
site          activation patched                              result axes
============  ==============================================  ====================
resid_pre     ``blocks.L.hook_resid_pre`` at one position     [layer, pos]
resid_mid     ``blocks.L.hook_resid_mid`` at one position     [layer, pos]
resid_post    ``blocks.L.hook_resid_post`` at one position    [layer, pos]
attn_out      ``blocks.L.hook_attn_out`` at one position      [layer, pos]
mlp_out       ``blocks.L.hook_mlp_out`` at one position       [layer, pos]
z             ``blocks.L.attn.hook_z``, one head, all pos     [layer, head]
z_by_pos      ``blocks.L.attn.hook_z``, one head, one pos     [layer, head, pos]
pattern       ``blocks.L.attn.hook_pattern``, one head        [layer, head]
============  ==============================================  ====================

Exact and fast. TransformerLens runs one full forward pass per patch; here the patched
copies run many at a time in batched passes (chunked to ``memory_mb`` or ``max_batch``), and
on causal models (mechscope's ``Transformer`` and wrapped HF decoders) no copy recomputes
what it shares with the target run (``mechscope._patch_runner``):

- a copy patched in block L enters the pass at block L, from the target run's residual;
  copies of every layer share one pass, each joining at its own block;
- a copy patched at position p computes positions p.. only, attending to the target run's
  keys and values before p (HF's ``past_key_values`` on wrapped models);
- patches before the first token where the prompts differ, or that write what is already
  there, change nothing and are not run;
- logits, and the last block's MLP, are computed only at the positions the metric reads
  (found by probing it), and resid_post / mlp_out patches start at the next block.

Results equal one forward pass per patch to float32 rounding (tests/unit/test_patching.py,
tests/integration/test_patching_hf.py, test_patching_prefix_hf.py); bench/patching.py
compares the speed with TransformerLens.

Example::

    metric = logit_diff(answer_ids, wrong_ids)  # one id per prompt, or one for all
    with torch.no_grad():
        clean_v, corrupted_v = metric(model(clean)), metric(model(corrupted))
    result = activation_patch(model, clean, corrupted,
                              normalized(metric, clean_v, corrupted_v), site="resid_pre")
    result.to_heatmap()  # layers x positions, token labels
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ._patch_runner import (
    TargetRun,
    entries_for,
    fill,
    first_difference,
    group_by_start,
    read_positions,
    start_position,
)
from ._patching_sites import (
    SITES,
    bytes_per_sequence,
    hook_name,
    patch_grid,
    patch_hook,
    patches_that_change,
)
from .hooks import unknown_name_error

Metric = Callable[[torch.Tensor], torch.Tensor]  # logits [batch, pos, d_vocab] -> [batch]

__all__ = ["SITES", "PatchResult", "activation_patch", "logit_diff", "normalized"]


# ---- metrics ------------------------------------------------------------------------------


def _ids(ids, what: str) -> torch.Tensor:
    t = torch.as_tensor(ids)
    if t.dtype.is_floating_point or t.dim() > 1:
        raise ValueError(
            f"{what} must be one token id per prompt (an int, or a list / [batch] tensor of "
            f"ints), got {'dtype ' + str(t.dtype) if t.dtype.is_floating_point else 'shape ' + str(list(t.shape))}."
        )
    return t.long()


def logit_diff(answer_ids, wrong_ids=None, pos: int = -1) -> Metric:
    """Metric: ``logits[b, pos, answer_b] - logits[b, pos, wrong_b]``, shape ``[batch]``.

    answer_ids, wrong_ids: one token id for all prompts, or one per prompt (``[batch]``).
        Without ``wrong_ids``, the answer's logit alone.
    pos: the position whose prediction is scored (default the last).
    """
    ans = _ids(answer_ids, "answer_ids")
    wrong = None if wrong_ids is None else _ids(wrong_ids, "wrong_ids")

    def metric(logits: torch.Tensor) -> torch.Tensor:
        last = logits[:, pos]  # [batch, d_vocab]
        b = torch.arange(last.shape[0], device=last.device)
        out = last[b, ans.to(last.device)]
        return out if wrong is None else out - last[b, wrong.to(last.device)]

    return metric


def normalized(metric: Metric, clean_value, corrupted_value) -> Metric:
    """``(metric - corrupted_value) / (clean_value - corrupted_value)``: 0 = corrupted, 1 = clean.

    clean_value, corrupted_value: the metric on the unpatched clean and corrupted runs,
    as numbers or ``[batch]`` tensors (per prompt). Equal values would divide by zero,
    so they raise.
    """
    clean = torch.as_tensor(clean_value, dtype=torch.float32).detach()
    corrupted = torch.as_tensor(corrupted_value, dtype=torch.float32).detach()
    gap = clean - corrupted
    if (gap == 0).any():
        raise ValueError(
            f"normalized: clean_value ({clean.tolist()}) equals corrupted_value "
            f"({corrupted.tolist()}) for some prompt, so there is no gap to normalise by. "
            "Pick prompts or a metric on which the clean and corrupted runs differ."
        )

    def metric_normalized(logits: torch.Tensor) -> torch.Tensor:
        v = metric(logits)
        return (v - corrupted.to(v.device, v.dtype)) / gap.to(v.device, v.dtype)

    return metric_normalized


# ---- result -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatchResult:
    """Activation-patching values with their labels.

    values: ``[layer, pos]``, ``[layer, head]`` or ``[layer, head, pos]`` (``dims`` says
        which): the metric, averaged over the prompts, of the target run with that one
        activation patched.
    clean_value, corrupted_value: the metric (averaged over prompts) of the unpatched runs.
    str_tokens: the first clean prompt's tokens.
    """

    values: torch.Tensor
    site: str
    dims: tuple[str, ...]
    row_labels: list[str]
    col_labels: list[str]
    str_tokens: list[str]
    direction: str
    clean_value: float
    corrupted_value: float

    def __repr__(self) -> str:
        return (
            f"PatchResult(site={self.site!r}, direction={self.direction!r}, "
            f"values[{', '.join(self.dims)}]={list(self.values.shape)}, "
            f"clean_value={self.clean_value:.4g}, corrupted_value={self.corrupted_value:.4g})"
        )

    def grid(self) -> torch.Tensor:
        """``values`` as a 2-D ``[rows, cols]`` grid; ``[layer, head, pos]`` -> ``[layer*head, pos]``."""
        v = self.values
        return v.reshape(-1, v.shape[-1]) if v.dim() == 3 else v

    def to_heatmap(self, **kwargs):
        """A :class:`mechscope.widgets.Heatmap` of :meth:`grid`, labelled; kwargs go to it."""
        from .widgets.heatmap import Heatmap  # lazy: anywidget only when a widget is wanted

        row_title = "layer, head" if len(self.dims) == 3 else "layer"
        opts = dict(
            row_labels=self.row_labels,
            col_labels=self.col_labels,
            row_title=row_title,
            col_title=self.dims[-1],
            title=f"{self.direction}: {self.site}",
            value_label="metric",
        )
        opts.update(kwargs)
        return Heatmap(self.grid(), **opts)


# ---- inputs -------------------------------------------------------------------------------


def _as_tokens(model, prompt) -> torch.Tensor:
    if isinstance(prompt, str) or (
        isinstance(prompt, Sequence) and prompt and isinstance(prompt[0], str)
    ):
        prompt = model.to_tokens(prompt)
    t = torch.as_tensor(prompt)
    return t[None] if t.dim() == 1 else t


def _str_tokens(model, tokens: torch.Tensor) -> list[str]:
    try:
        return [str(s) for s in model.to_str_tokens(tokens[0])]
    except Exception:  # no tokenizer: show ids
        return [str(i) for i in tokens[0].tolist()]


def _check_pair(model, clean: torch.Tensor, corrupted: torch.Tensor) -> None:
    if clean.shape == corrupted.shape:
        return
    raise ValueError(
        "Clean and corrupted prompts must have the same shape [batch, pos] so that positions "
        f"line up, got clean {list(clean.shape)} and corrupted {list(corrupted.shape)}.\n"
        f"  clean tokens:     {_str_tokens(model, clean)}\n"
        f"  corrupted tokens: {_str_tokens(model, corrupted)}\n"
        "Reword one prompt so both tokenise to the same number of tokens (and pass the same "
        "number of prompts)."
    )


def _check_site(model, site: str) -> None:
    names = set(model.hook_names())
    present = [s for s in SITES if hook_name(s, 0) in names]
    if site not in present:
        err = unknown_name_error(site, present, what="patching site")
        if site in SITES:
            err = KeyError(
                f"This model has no {hook_name(site, 0)!r} (e.g. an attention-only model has no "
                f"resid_mid / mlp_out), so site {site!r} cannot be patched. "
                f"Sites it has: {', '.join(present)}."
            )
        raise err


def _metric_values(metric: Metric, logits: torch.Tensor, batch: int) -> torch.Tensor:
    v = metric(logits)
    if not isinstance(v, torch.Tensor) or v.shape != (batch,):
        got = list(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(
            f"metric(logits) returned {got}; expected a tensor of shape [batch] = [{batch}], one "
            f"number per prompt (logits were {list(logits.shape)}). Reduce over positions and "
            "the vocabulary but not over the batch, e.g. logits[:, -1, answer] - "
            "logits[:, -1, wrong], or use mechscope.patching.logit_diff."
        )
    return v


def _copies_per_chunk(model, batch: int, n_pos: int, max_batch, memory_mb) -> int:
    if max_batch is not None:
        if int(max_batch) < batch:
            raise ValueError(
                f"max_batch={max_batch} is smaller than the {batch} prompts of one patched copy; "
                f"use max_batch >= {batch}."
            )
        return int(max_batch) // batch
    budget = (memory_mb if memory_mb is not None else 512) * 2**20
    return max(1, int(budget // (bytes_per_sequence(model, n_pos) * batch)))


# ---- patching -----------------------------------------------------------------------------


def activation_patch(
    model,
    clean,
    corrupted,
    metric: Metric,
    site: str = "resid_pre",
    *,
    direction: str = "denoising",
    max_batch: int | None = None,
    memory_mb: float | None = None,
) -> PatchResult:
    """Patch ``site`` at every layer (and position / head) and record ``metric``.

    model: a HookedModel (``mechscope.Transformer`` or ``mechscope.wrap(...)``).
    clean, corrupted: text, a list of texts, or token ids ``[pos]`` / ``[batch, pos]``, of
        the same shape.
    metric: ``fn(logits [batch, pos, d_vocab]) -> [batch]``, e.g. :func:`logit_diff`,
        optionally :func:`normalized`. Each value is its mean over the prompts.
    site: one of :data:`SITES` (see the module docstring).
    direction: ``"denoising"`` (clean activations into the corrupted run) or ``"noising"``
        (corrupted into clean).
    max_batch: at most this many sequences (patched copies x prompts) per forward pass.
    memory_mb: or a rough activation-memory budget per forward pass (default 512 MB).

    Returns a :class:`PatchResult`. The model is left as it came (hooks, weights, mode).
    """
    if direction not in ("denoising", "noising"):
        raise ValueError(f"direction={direction!r}; expected 'denoising' or 'noising'.")
    if site not in SITES:
        raise unknown_name_error(site, SITES, what="patching site")
    _check_site(model, site)
    clean_t, corrupted_t = _as_tokens(model, clean), _as_tokens(model, corrupted)
    _check_pair(model, clean_t, corrupted_t)
    batch, n_pos = clean_t.shape
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    source_t, target_t = (
        (clean_t, corrupted_t) if direction == "denoising" else (corrupted_t, clean_t)
    )

    site_names = [hook_name(site, layer) for layer in range(n_layers)]
    with torch.no_grad():
        source_logits, source_cache = model.run_with_cache(source_t, names=site_names)
        target = TargetRun(model, target_t, site_names)
        source_v = _metric_values(metric, source_logits, batch).mean().item()
        target_v = _metric_values(metric, target.logits, batch).mean().item()
        # Causal models: before the first differing token the two runs are identical, so a
        # patch there changes nothing (its value is the target run's) and a patch anywhere
        # needs positions from max(its position, that token) on only.
        first = first_difference(source_t, target_t.to(source_t.device)) if target.causal else 0
        values = _sweep(
            model, site, target, source_cache, metric, first, target_v, max_batch, memory_mb
        )

    clean_v, corrupted_v = (
        (source_v, target_v) if direction == "denoising" else (target_v, source_v)
    )
    return _labelled(model, site, values, clean_t, n_heads, direction, clean_v, corrupted_v)


def _sweep(model, site, target, sources, metric, first, target_v, max_batch, memory_mb):
    """``[layer, patch]`` metric values of ``target`` (a :class:`TargetRun`) with each patch of
    ``site`` written from ``sources`` (``{hook name: [batch, ...]}``), batched; patches
    before position ``first`` (causal models) are known to change nothing."""
    batch, n_pos = target.tokens.shape
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    site_names = [hook_name(site, layer) for layer in range(n_layers)]
    source_cache = sources
    # Logits only where the metric reads them (usually the last position): with a large
    # vocabulary the unembedding of every position would cost more than the blocks.
    keep = read_positions(metric, target.logits) if target.causal else None
    buffer = target.logits.clone()  # each copy's kept logits are written into this

    patches = patch_grid(site, n_pos, n_heads)
    starts = [start_position(site, p, first, n_pos, target.causal) for p in patches]
    per_chunk = _copies_per_chunk(model, batch, n_pos, max_batch, memory_mb)
    values = torch.full((n_layers, len(patches)), target_v)
    by_start: dict[int, list[tuple[int, list[int]]]] = {}
    for layer in range(n_layers):
        # A patch that writes what is already there changes nothing (e.g. resid_pre of
        # block 0 away from the changed token): its value is the target run's.
        changes = patches_that_change(
            site, patches, source_cache[site_names[layer]], target.cache[site_names[layer]]
        )
        todo = [i for i, st in enumerate(starts) if st is not None and changes[i]]
        for start, members in group_by_start([starts[i] for i in todo], n_pos, batch, per_chunk):
            by_start.setdefault(start, []).append((layer, [todo[m] for m in members]))

    def record(logits, items):
        c = 0
        for layer, idx in items:
            for i in idx:  # per copy: a metric may hold one answer per prompt
                copy = logits[c * batch : (c + 1) * batch]
                if keep is not None:
                    buffer[:, keep] = copy
                    copy = buffer
                values[layer, i] = _metric_values(metric, copy, batch).mean()
                c += 1

    for start, items in sorted(by_start.items()):
        if not target.causal:  # full forward passes, one layer's copies at a time
            for layer, idx in items:
                chunk = [patches[i] for i in idx]
                src = source_cache[site_names[layer]]
                with model.hooks([(site_names[layer], patch_hook(site, chunk, src))]):
                    record(target.run_full(len(idx), keep), [(layer, idx)])
            continue
        # Causal: the copies of every layer share one pass, each entering at its block.
        rows = batch * (n_pos - start)
        for part in fill(items, per_chunk, rows, target.logits.device):
            entries, hooks, order = entries_for(
                site, part, patches, start, source_cache, target, site_names
            )
            # mlp_out hooks sit inside the last block's MLP: it must see every row.
            with model.hooks(hooks):
                logits = target.run(start, entries, keep, trim_last_mlp=site != "mlp_out")
            record(logits, order)
    return values


def _labelled(model, site, values, clean_t, n_heads, direction, clean_v, corrupted_v):
    n_layers, n_pos = values.shape[0], clean_t.shape[1]
    str_tokens = _str_tokens(model, clean_t)
    pos_labels = [f"{p}: {tok}" for p, tok in enumerate(str_tokens)]
    head_labels = [f"H{h}" for h in range(n_heads)]
    index = SITES[site].index
    if index == "pos":
        dims, rows, cols = ("layer", "pos"), [f"L{la}" for la in range(n_layers)], pos_labels
    elif index == "head":
        dims, rows, cols = ("layer", "head"), [f"L{la}" for la in range(n_layers)], head_labels
    else:
        values = values.reshape(n_layers, n_heads, n_pos)
        dims = ("layer", "head", "pos")
        rows = [f"L{la}H{h}" for la in range(n_layers) for h in range(n_heads)]
        cols = pos_labels
    return PatchResult(
        values=values,
        site=site,
        dims=dims,
        row_labels=rows,
        col_labels=cols,
        str_tokens=str_tokens,
        direction=direction,
        clean_value=clean_v,
        corrupted_value=corrupted_v,
    )
