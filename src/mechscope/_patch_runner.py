"""Internals of :mod:`mechscope.patching`: run patched copies without recomputing what they share.

A patch at block ``L`` and position ``p`` of a causal model changes nothing before block
``L`` and nothing at positions before ``p``. :class:`TargetRun` keeps the target run's
residual entering every block and its attention keys / values, so a batch of patched
copies starts at ``(L, S)``: blocks before ``L`` are skipped, positions before ``S`` are
not recomputed (their keys and values come from the target run, their logits are the
target run's). Patches at positions before the first token where the two prompts differ
need no run at all: there the source and target activations are the same.

The restart is the :class:`mechscope.protocols.PrefixReuse` capability (``prefix_state`` /
``forward_suffix``), tested by ``isinstance``, never by the model's class. Models without it
(bidirectional encoders, other HookedModels) run the full forward pass of each copy.
"""

from __future__ import annotations

import os

import torch

from ._patching_sites import from_position, patch_hook, patch_mask, patch_position
from .protocols import PrefixReuse

# Fixed cost of one group of copies, in "rows" (sequence positions): a pass over few rows
# is bound by reading the weights, not by arithmetic. Used to decide how to group patches
# at different positions (on GPT-2-small sizes, one CPU thread, 4-8 measured best).
PASS_OVERHEAD_ROWS = 8


def first_difference(a: torch.Tensor, b: torch.Tensor) -> int:
    """First position at which any prompt of ``a`` and ``b`` (``[batch, pos]``) differs; pos if none."""
    differs = (a != b).any(dim=0).nonzero()
    return int(differs[0]) if len(differs) else a.shape[1]


class TargetRun:
    """The unpatched target run, kept so that patched copies can start at ``(layer, start)``.

    ``logits``: ``[batch, pos, d_vocab]``. ``cache``: the hook points ``names`` of this run.
    ``causal``: whether patches before a position leave it unchanged (so copies may start
    later than position 0 and block 0): models with the
    :class:`~mechscope.protocols.PrefixReuse` capability that are causal and return logits.
    """

    def __init__(self, model, tokens: torch.Tensor, names: list[str]):
        self.model = model
        cfg = model.cfg
        self.causal = (
            isinstance(model, PrefixReuse)
            and getattr(cfg, "is_causal", True)
            and getattr(cfg, "output", "logits") == "logits"
        )
        if self.causal:
            self.logits, self.resid, self.kv, self.cache = model.prefix_state(tokens, names)
        else:
            self.logits, cache = model.run_with_cache(tokens, names=names)
            self.cache = {n: cache[n] for n in names}
        self.tokens = torch.as_tensor(tokens).to(self.logits.device)

    def run_full(self, n: int, keep: list[int] | None = None) -> torch.Tensor:
        """Logits of ``n`` full copies of the target prompts (models without a fast path)."""
        logits = self.model(self.tokens.repeat(n, 1))
        return logits if keep is None else logits[:, keep]

    def copy_metric(self, n: int, metric) -> torch.Tensor | None:
        """``[n]``: the mean ``metric`` of each of ``n`` full copies, computed where the model
        runs (a model with ``copy_metric``, e.g. nnsight: only n numbers come back), or None."""
        in_pass = getattr(self.model, "copy_metric", None)
        return None if in_pass is None else in_pass(self.tokens.repeat(n, 1), metric, n)

    def run(
        self,
        start: int,
        entries: list[tuple[int, torch.Tensor]],
        keep: list[int] | None = None,
        trim_last_mlp: bool = False,
    ) -> torch.Tensor:
        """Logits of patched copies of the target run, computed from position ``start`` on.

        entries: ``[(block, resid), ...]`` sorted by block: copies that enter at the input
        of ``block`` with residual ``resid`` ``[copies * batch, pos - start, d_model]``
        (copy-major); blocks before the first entry are skipped. Hooks see positions
        ``start..`` only, and at block ``b`` the rows of every entry up to ``b``, in order.
        keep: return only these positions, ``[rows, len(keep), d_vocab]`` (positions
        before ``start`` are the target run's); None for all, ``[rows, pos, d_vocab]``.
        Rows follow the entries' order.
        trim_last_mlp: with ``keep``, run the last block's MLP on the kept positions only
        (the other rows of the last block's output are never read). Only for runs whose
        hooks do not read or write inside or after that MLP.
        """
        rows = sum(x.shape[0] for _, x in entries)
        n = rows // self.tokens.shape[0]
        before = [p for p in keep if p < start] if keep is not None else list(range(start))
        after = None if keep is None else [p for p in keep if p >= start]
        suffix = None  # None when every kept position is before the patch
        if after is None or after:
            suffix = self.model.forward_suffix(
                entries, start, self.tokens, self.kv, pos=after, trim_last_mlp=trim_last_mlp
            )
        parts = [self.logits[:, before].repeat(n, 1, 1)] if before else []
        if suffix is not None:
            parts.append(suffix.to(self.logits.dtype))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def read_positions(metric, logits: torch.Tensor) -> list[int] | None:
    """The positions of ``logits`` ``[batch, pos, d_vocab]`` that ``metric`` reads, or None.

    A position counts as unread when the metric returns bit-identical values with that
    position's logits replaced by NaN *and* by their negation (two probes, so a metric
    that thresholds or takes an argmax is still caught reading). The unread set is then
    checked all at once. None (read everything) when in doubt.
    """
    base = metric(logits)
    probe = logits.clone()
    read = []
    for p in range(logits.shape[1]):
        for fill in (float("nan"), None):
            probe[:, p] = fill if fill is not None else -logits[:, p]
            same = _same(_probe(metric, probe), base)
            probe[:, p] = logits[:, p]
            if not same:
                read.append(p)
                break
    unread = [p for p in range(logits.shape[1]) if p not in read]
    if not read or not unread:
        return None
    probe[:, unread] = float("nan")
    return read if _same(_probe(metric, probe), base) else None


def _same(a, b) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))


def _probe(metric, logits):
    """The metric on probed logits; a metric that refuses them (e.g. checks for NaN) reads."""
    try:
        return metric(logits)
    except Exception:  # noqa: BLE001
        return None


def group_by_start(
    starts: list[int], n_pos: int, batch: int, max_copies: int
) -> list[tuple[int, list[int]]]:
    """Split patches into forward passes: ``[(start, [patch index, ...]), ...]``.

    starts: each patch's first position to compute. A pass computes its copies from the
    smallest start among them; grouping nearby starts trades recomputed positions against
    fewer, larger passes. Minimises ``sum(copies * (n_pos - start) * batch + overhead)``
    over groups of consecutive starts (dynamic programming; greedy for very many patches).
    """
    order = sorted(range(len(starts)), key=lambda i: starts[i])
    s = [starts[i] for i in order]
    m = len(s)
    if m == 0:
        return []
    if m > 600:  # O(m^2) below; for huge sweeps plain chunks are good enough
        return [(s[i], order[i : i + max_copies]) for i in range(0, m, max_copies)]
    best = [0.0] + [float("inf")] * m  # best[j]: cost of grouping the first j patches
    cut = [0] * (m + 1)
    for j in range(1, m + 1):
        for i in range(max(0, j - max_copies), j):
            cost = best[i] + (j - i) * (n_pos - s[i]) * batch + PASS_OVERHEAD_ROWS
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], m
    while j:
        i = cut[j]
        groups.append((s[i], order[i:j]))
        j = i
    return groups[::-1]


# On a CPU, rows (sequence positions) per batched pass beyond which it pays to split:
# larger passes push the MLP's elementwise work out of the caches (GPT-2-small sizes, one
# thread: 512 beat 256 and 1024). Accelerators take passes as large as memory allows.
CPU_ROWS_PER_PASS = int(os.environ.get("MECHSCOPE_CPU_ROWS_PER_PASS", 512))


def pass_device(model, device):
    """Where ``model``'s forward passes compute: ``device`` (where its logits land), or None
    when they run on another machine. A model says so with a truthy ``request_memory_mb``
    attribute (the activation memory of one pass there, in MB; a remote nnsight model sets
    it): its logits land on this CPU, but the CPU's rows-per-pass cap does not apply."""
    return None if getattr(model, "request_memory_mb", None) else device


def fill(items: list[tuple[int, list[int]]], per_chunk: int, rows_per_copy: int, device):
    """Consecutive ``(layer, patch indices)`` items, packed into passes of <= per_chunk copies
    (on a CPU also about CPU_ROWS_PER_PASS rows; device None: passes run elsewhere)."""
    cap = per_chunk
    if device is not None and torch.device(device).type == "cpu":
        cap = min(per_chunk, max(1, CPU_ROWS_PER_PASS // max(1, rows_per_copy)))
    part, size = [], 0
    for layer, idx in items:
        if part and size + len(idx) > cap:
            yield part
            part, size = [], 0
        part.append((layer, idx))
        size += len(idx)
    if part:
        yield part


def entries_for(site, items, patches, start, source_cache, target, site_names):
    """The entries, hooks and copy order of one pass over ``items`` = ``[(layer, idx)]``.

    A copy patched inside block L enters at L (the target run's residual) and is patched
    by a hook that touches its rows only; a copy patched at a block's output enters the
    next block with the patched residual and needs no hook.
    """
    n_layers = len(site_names)
    spec = []  # (entry block, resid, hook or None, (layer, idx))
    for layer, idx in items:
        name = site_names[layer]
        chunk, src = from_position(site, [patches[i] for i in idx], source_cache[name], start)
        if site in _BLOCK_OUTPUT and layer + 1 < n_layers:
            _, tgt = from_position(site, chunk, target.cache[name], start)
            resid = _next_block_input(site, chunk, src, tgt, target.resid[layer + 1][:, start:])
            spec.append((layer + 1, resid, None, (layer, idx)))
        else:
            resid = target.resid[layer][:, start:].repeat(len(idx), 1, 1)
            spec.append((layer, resid, (name, chunk, src), (layer, idx)))
    spec.sort(key=lambda e: e[0])  # stable: copies join in block order
    hooks, offset = [], 0
    for _, _, hook, (_, idx) in spec:
        if hook is not None:
            name, chunk, src = hook
            hooks.append((name, patch_hook(site, chunk, src, offset=offset)))
        offset += len(idx)
    return [(b, r) for b, r, _, _ in spec], hooks, [item for *_, item in spec]


_BLOCK_OUTPUT = ("resid_post", "mlp_out")  # sites whose patch is known at the block's output


def _next_block_input(site, patches, source, target, target_next) -> torch.Tensor:
    """``[copies * batch, pos, d_model]``: the next block's input with each copy's patch.

    resid_post *is* the next block's input; mlp_out is added to it, so a patch adds the
    difference source - target there (the same sum as the block's, up to float rounding).
    """
    mask = patch_mask(site, patches, source.shape)  # [copy, 1, pos, 1]
    base = target_next[None]
    if site == "resid_post":
        out = torch.where(mask, source[None], base)
    else:
        out = base + torch.where(mask, (source - target)[None], source.new_zeros(()))
    return out.reshape(-1, *out.shape[2:])


def start_position(
    site: str, patch: tuple[int, ...], first: int, n_pos: int, causal: bool
) -> int | None:
    """First position a patched copy must compute; None when the patch changes nothing."""
    if not causal:
        return 0
    pos = patch_position(site, patch)
    if pos is None:  # every position: those before the first difference are unchanged
        pos = first
    return pos if first <= pos < n_pos else None
