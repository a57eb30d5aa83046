"""Start a wrapped causal HF model at block L and position S, for fast patching sweeps.

A patch at block ``L``, position ``p`` changes nothing before ``L`` and (causal attention)
nothing before ``p``. So a patched copy need not recompute either: the blocks before ``L``
are skipped (their output, the target run's residual at ``L``, is fed in) and only
positions ``S..`` are computed, attending to the target run's own keys and values for the
positions before ``S`` through HF's key/value cache (a ``DynamicCache``). Rotary positions, masks and
sliding windows are then HF's own, computed as for generation with a cache.

Both are done without changing the model: the block list is swapped for its tail only
for the duration of the call and the residual is fed in by a forward pre-hook, all undone
in a ``finally``.
"""

from __future__ import annotations

import contextlib
import inspect

import torch
from torch import nn

from ._hf_routing import with_first_arg
from ._transformer_prefix import mlp_on_rows


def _cache_kwarg(hf_model) -> str:
    """The keyword HF's forward takes a :class:`transformers.Cache` under: ``cache`` from
    transformers 5.x (``past_key_values`` is deprecated there), ``past_key_values`` before."""
    params = inspect.signature(hf_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _layers_kv(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer ``(keys, values)`` of a DynamicCache (``.layers`` from transformers 4.56 on,
    ``key_cache`` / ``value_cache`` lists before)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


class PrefixMixin:
    """The :class:`mechscope.protocols.PrefixReuse` capability of a wrapped causal HF model."""

    def prefix_state(self, tokens: torch.Tensor, names=()):
        """One run of ``tokens`` that keeps what a later :meth:`forward_suffix` needs.

        Returns ``(logits, resid, kv, cache)``: logits ``[batch, pos, d_vocab]``;
        ``resid[l]`` the residual entering block ``l``, ``[batch, pos, d_model]``;
        ``kv[l]`` block ``l``'s cached ``(keys, values)`` in HF's layout
        ``[batch, kv_head, pos, d_head]``; ``cache`` the hook points ``names`` (a dict).
        """
        from transformers import DynamicCache

        ids, _ = self._prepare(tokens, None)
        resid_names = [f"blocks.{i}.hook_resid_pre" for i in range(self.cfg.n_layers)]
        store: dict[str, torch.Tensor] = {}

        def keep(act, hook):
            store[hook.name] = act.detach()

        # A cache without the config: plain layers that keep every position (a sliding-window
        # layer would keep only the last window's keys, and a later start needs all of them).
        cache = DynamicCache()
        hooks = [(n, keep) for n in dict.fromkeys([*resid_names, *names])]
        with self.hooks(hooks), self._routing(batch=ids.shape[0]):
            out = self.hf_model(
                input_ids=ids, use_cache=True, **{_cache_kwarg(self.hf_model): cache}
            )
        resid = [store[n] for n in resid_names]
        return out.logits, resid, _layers_kv(cache), {n: store[n] for n in names}

    @contextlib.contextmanager
    def _blocks_from(self, entries: list[tuple[int, torch.Tensor]]):
        """Within the block: the HF model runs from the first entry's block on, and each
        entry's residual joins the batch (concatenated after the rows already there) at the
        input of its block. The first block's input is replaced by its entries."""
        parent_path, _, attr = self.family.layers.rpartition(".")
        parent = self._base.get_submodule(parent_path) if parent_path else self._base
        blocks = getattr(parent, attr)
        first = entries[0][0]
        joining: dict[int, list[torch.Tensor]] = {}
        for b, x in entries:
            joining.setdefault(b, []).append(x)

        def join(b):
            def hook(module, args, kwargs):
                x = args[0] if args else kwargs["hidden_states"]
                parts = joining[b] if b == first else [x, *joining[b]]
                return with_first_arg(
                    args, kwargs, torch.cat(parts) if len(parts) > 1 else parts[0]
                )

            return hook

        handles = []
        try:
            for b in joining:
                handles.append(
                    self._sites[b]["block"].register_forward_pre_hook(
                        join(b), with_kwargs=True, prepend=True
                    )
                )
            if first:
                setattr(parent, attr, nn.ModuleList(list(blocks)[first:]))
            yield
        finally:
            if getattr(parent, attr) is not blocks:
                setattr(parent, attr, blocks)
            for h in handles:
                h.remove()

    def _last_mlp(self):
        parent = self.family.mlp_out.rpartition(".")[0]
        return self._sites[-1]["block"].get_submodule(parent) if parent else None

    def forward_suffix(
        self,
        entries: list[tuple[int, torch.Tensor]],
        start: int,
        tokens: torch.Tensor,
        kv: list,
        *,
        pos=None,
        trim_last_mlp: bool = False,
    ) -> torch.Tensor:
        """Logits at positions ``start..`` of copies of a run whose state :meth:`prefix_state`
        kept (see :class:`mechscope.protocols.PrefixReuse`).

        entries: ``[(block, resid), ...]`` in block order: copies (``resid``
            ``[copies * batch, pos - start, d_model]``, copy-major, at positions ``start..``)
            that enter the run at the input of ``block``; blocks before the first are
            skipped. The output rows follow the entries' order.
        start: the first position computed.
        tokens: ``[batch, pos]``, the prompts (HF embeds their suffix and builds masks and
            positions from it; the embedding is then replaced).
        kv: the kept ``(keys, values)`` per block (all positions; cut to ``start`` here).
        pos: optionally, logits at these absolute positions (each ``>= start``) only.
        trim_last_mlp: with ``pos``, run the last block's MLP at ``pos`` only (hooks inside
            or after it then see zeros at the other positions).
        """
        from transformers import DynamicCache

        S, first = start, entries[0][0]
        suffix_ids = torch.as_tensor(tokens)[:, S:]
        rel = None if pos is None else torch.as_tensor(pos).long() - S
        past = None
        if S:
            past, rows, e = DynamicCache(), 0, 0
            for i, (k, v) in enumerate(kv):
                while e < len(entries) and entries[e][0] == i:
                    rows += entries[e][1].shape[0]
                    e += 1
                if i < first:  # never read: only its length S matters (masks, positions), and
                    # HF counts an empty cache as length 0, hence width 1 rather than 0
                    k, v = k.new_zeros(1, k.shape[1], S, 1), v.new_zeros(1, v.shape[1], S, 1)
                else:
                    reps = rows // k.shape[0]
                    k, v = k[:, :, :S].repeat(reps, 1, 1, 1), v[:, :, :S].repeat(reps, 1, 1, 1)
                # Plain (full) layers: sliding windows are applied by the model's masks, which
                # count absolute positions, so they hold with every key present.
                past.update(k, v, i)
        kwargs = {} if past is None else {_cache_kwarg(self.hf_model): past}
        if rel is not None:
            kwargs["logits_to_keep"] = rel
        mlp = self._last_mlp() if trim_last_mlp and rel is not None else None
        # One prompt's ids: masks and positions are the same for every row (no padding), and
        # a batch of 1 broadcasts to a batch that grows from block to block.
        with self._blocks_from(entries), self._routing(batch=1), mlp_on_rows(mlp, rel):
            out = self.hf_model(input_ids=suffix_ids[:1], use_cache=past is not None, **kwargs)
        return out.logits
