"""Start a wrapped causal HF model at block L and position S, for fast patching sweeps.

A patch at block ``L``, position ``p`` changes nothing before ``L`` and (causal attention)
nothing before ``p``. So a patched copy need not recompute either: the blocks before ``L``
are skipped (their output, the target run's residual at ``L``, is fed in) and only
positions ``S..`` are computed, attending to the target run's own keys and values for the
positions before ``S`` through HF's ``past_key_values``. Rotary positions, masks and
sliding windows are then HF's own, computed as for generation with a cache.

Both are done without changing the model: the block list is swapped for its tail only
for the duration of the call and the residual is fed in by a forward pre-hook, all undone
in a ``finally``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ._hf_routing import _with_first_arg


class PrefixMixin:
    def _prefix_state(self, tokens: torch.Tensor, names=()):
        """One run of ``tokens`` that keeps what a later :meth:`_forward_suffix` needs.

        Returns ``(logits, resid_pre, kv, cache)``: logits ``[batch, pos, d_vocab]``;
        ``resid_pre[l]`` the residual entering block ``l``, ``[batch, pos, d_model]``;
        ``kv[l]`` block ``l``'s cached ``(keys, values)`` in HF's layout
        ``[batch, kv_head, pos, d_head]``; ``cache`` the hook points ``names`` (a dict).
        """
        store: dict[str, torch.Tensor] = {}

        def keep(act, hook):
            store[hook.name] = act.detach()

        from transformers import DynamicCache

        ids, _ = self._prepare(tokens, None)
        resid: list[torch.Tensor | None] = [None] * self.cfg.n_layers

        def save(i):
            def hook(module, args, kwargs):
                resid[i] = (args[0] if args else kwargs["hidden_states"]).detach()

            return hook

        handles = [
            s["block"].register_forward_pre_hook(save(i), with_kwargs=True)
            for i, s in enumerate(self._sites)
        ]
        try:
            # A cache without the config: plain layers that keep every position (a sliding-
            # window layer would keep only the last window's keys, and a later start needs all).
            cache = DynamicCache()
            with self.hooks([(n, keep) for n in names]), self._routing(batch=ids.shape[0]):
                out = self.hf_model(input_ids=ids, use_cache=True, past_key_values=cache)
        finally:
            for h in handles:
                h.remove()
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        return out.logits, resid, kv, store

    @contextlib.contextmanager
    def _blocks_from(self, layer: int, resid: torch.Tensor):
        """Within the block: the HF model runs blocks ``layer..`` only, and block ``layer``
        receives ``resid`` as its hidden states."""
        parent_path, _, attr = self.family.layers.rpartition(".")
        parent = self._base.get_submodule(parent_path) if parent_path else self._base
        blocks = getattr(parent, attr)

        def feed(module, args, kwargs):
            return _with_first_arg(args, kwargs, resid)

        handle = self._sites[layer]["block"].register_forward_pre_hook(
            feed, with_kwargs=True, prepend=True
        )
        try:
            if layer:
                setattr(parent, attr, nn.ModuleList(list(blocks)[layer:]))
            yield
        finally:
            if getattr(parent, attr) is not blocks:
                setattr(parent, attr, blocks)
            handle.remove()

    def _forward_suffix(
        self,
        layer: int,
        start: int,
        resid: torch.Tensor,
        suffix_ids: torch.Tensor,
        kv: list,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits at positions ``S..`` of copies of a run whose state :meth:`_prefix_state` kept.

        resid: ``[n, pos - S, d_model]``, the residual entering block ``layer`` at positions
            ``S..`` (``n`` = copies x prompts, copy-major).
        suffix_ids: ``[n, pos - S]``, the tokens at those positions (HF embeds them; the
            embedding is then replaced by ``resid``).
        start: ``S``, the first position computed.
        kv: the kept ``(keys, values)`` per block (all positions; cut to the first ``S`` here).
        positions: optionally, compute logits at these positions of the suffix only (HF's
            ``logits_to_keep``).
        """
        from transformers import DynamicCache

        n, S = suffix_ids.shape[0], start
        past = None
        if S:
            data = []
            for i, (k, v) in enumerate(kv):
                reps = n // k.shape[0]
                if i < layer:  # never read: only its length S matters (masks, positions), and
                    # HF counts an empty cache as length 0, hence width 1 rather than 0
                    data.append(
                        (k.new_zeros(n, k.shape[1], S, 1), v.new_zeros(n, v.shape[1], S, 1))
                    )
                else:
                    k, v = k[:, :, :S], v[:, :, :S]
                    data.append((k.repeat(reps, 1, 1, 1), v.repeat(reps, 1, 1, 1)))
            # Plain (full) layers: sliding windows are applied by the model's masks, which
            # count absolute positions, so they hold with every key present.
            past = DynamicCache(ddp_cache_data=data)
        with self._blocks_from(layer, resid), self._routing(batch=n):
            out = self.hf_model(
                input_ids=suffix_ids,
                past_key_values=past,
                use_cache=past is not None,
                **({} if positions is None else {"logits_to_keep": positions}),
            )
        return out.logits
