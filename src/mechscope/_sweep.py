"""Private: the batched activation-patching sweep and its labelled result, shared by
activation patching and ablation sweeps (``mechscope.patching``, ``mechscope.ablation``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._core import copies_per_chunk, metric_values, str_tokens_of
from ._patch_runner import (
    entries_for,
    fill,
    group_by_start,
    pass_device,
    read_positions,
    start_position,
)
from ._patching_sites import SITES, hook_name, patch_grid, patch_hook, patches_that_change


class SiteGrid:
    """What results over a site's ``[layer, pos]`` / ``[layer, head]`` / ``[layer, head, pos]``
    grid share (activation patching, ablation sweeps): the 2-D view and its heatmap."""

    def grid(self) -> torch.Tensor:
        """``values`` as a 2-D ``[rows, cols]`` grid; ``[layer, head, pos]`` -> ``[layer*head, pos]``."""
        v = self.values
        return v.reshape(-1, v.shape[-1]) if v.dim() == 3 else v

    def heatmap(self, title: str, kwargs: dict):
        """A labelled :class:`mechscope.widgets.Heatmap` of :meth:`grid`; ``kwargs`` override."""
        from .widgets.heatmap import Heatmap  # lazy: anywidget only when a widget is wanted

        opts = dict(
            row_labels=self.row_labels,
            col_labels=self.col_labels,
            row_title="layer, head" if len(self.dims) == 3 else "layer",
            col_title=self.dims[-1],
            title=title,
            value_label="metric",
        )
        opts.update(kwargs)
        return Heatmap(self.grid(), **opts)


@dataclass(frozen=True)
class PatchResult(SiteGrid):
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

    def to_widget(self, **kwargs):
        """A :class:`mechscope.widgets.Heatmap` of :meth:`grid`, labelled; kwargs go to it."""
        return self.heatmap(f"{self.direction}: {self.site}", kwargs)


def sweep(model, site, target, sources, metric, first, target_v, batch_size, memory_mb):
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
    if memory_mb is None:  # a model whose passes run elsewhere gives its own budget
        memory_mb = getattr(model, "request_memory_mb", None)
    per_chunk = copies_per_chunk(model, batch, n_pos, batch_size, memory_mb)
    device = pass_device(model, target.logits.device)
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
                values[layer, i] = metric_values(metric, copy, batch).mean()
                c += 1

    for start, items in sorted(by_start.items()):
        if not target.causal:  # full forward passes; copies of several layers share one
            for part in fill(items, per_chunk, batch * n_pos, device):
                hooks, n = [], 0
                for layer, idx in part:  # each hook writes its own rows (copies n..)
                    src = source_cache[site_names[layer]]
                    chunk = [patches[i] for i in idx]
                    hooks.append((site_names[layer], patch_hook(site, chunk, src, offset=n)))
                    n += len(idx)
                with model.hooks(hooks):
                    per_copy = target.copy_metric(n, metric)  # None: the logits come back
                    if per_copy is None:
                        record(target.run_full(n, keep), part)
                if per_copy is not None:
                    at = [(layer, i) for layer, idx in part for i in idx]
                    values[tuple(torch.tensor(at).T)] = per_copy.to(values.dtype)
            continue
        # Causal: the copies of every layer share one pass, each entering at its block.
        rows = batch * (n_pos - start)
        for part in fill(items, per_chunk, rows, device):
            entries, hooks, order = entries_for(
                site, part, patches, start, source_cache, target, site_names
            )
            # mlp_out hooks sit inside the last block's MLP: it must see every row.
            with model.hooks(hooks):
                logits = target.run(start, entries, keep, trim_last_mlp=site != "mlp_out")
            record(logits, order)
    return values


def check_direction(direction) -> None:
    if direction not in ("denoising", "noising"):
        raise ValueError(
            f"direction={direction!r}; expected 'denoising' (clean activations into the "
            "corrupted run, the default) or 'noising' (corrupted into clean)."
        )


def labelled(model, site, values, clean_t, n_heads, direction, clean_v, corrupted_v):
    n_layers, n_pos = values.shape[0], clean_t.shape[1]
    str_tokens = str_tokens_of(model, clean_t)
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
