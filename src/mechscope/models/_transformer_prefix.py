"""The :class:`mechscope.protocols.PrefixReuse` capability of mechscope's ``Transformer``.

A patched copy of a causal run changes nothing before the block and the position it is
patched at. :meth:`PrefixMixin.prefix_state` keeps the residual entering every block and
every block's keys and values; :meth:`PrefixMixin.forward_suffix` then restarts copies at
their block, computing positions ``start..`` only (``Transformer.forward_from`` with the
kept keys / values as ``past``). Activation patching uses both (``mechscope._patch_runner``).
"""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def mlp_on_rows(mlp, rows: torch.Tensor | None):
    """Within the block: ``mlp`` (a module, or None for nothing) sees positions ``rows`` of
    its input only and returns zeros at the others. Used on the last block's MLP when only
    the logits at ``rows`` are read: its attention still sees every row, so the kept rows'
    outputs are exact; the others are never read."""
    if rows is None or mlp is None:
        yield
        return
    width: list[int] = []

    def narrow(module, args, kwargs):
        x = args[0] if args else kwargs["hidden_states"]
        width.append(x.shape[1])
        x = x[:, rows]
        return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})

    def widen(module, args, kwargs, out):
        full = out.new_zeros(out.shape[0], width.pop(), *out.shape[2:])
        full[:, rows] = out
        return full

    handles = [
        mlp.register_forward_pre_hook(narrow, with_kwargs=True),
        mlp.register_forward_hook(widen, with_kwargs=True),
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class PrefixMixin:
    """``prefix_state`` / ``forward_suffix`` for ``Transformer`` (see PrefixReuse)."""

    def prefix_state(self, tokens: torch.Tensor, names=()):
        """One run of ``tokens`` ``[batch, pos]`` keeping what :meth:`forward_suffix` needs.

        Returns ``(logits, resid, kv, cache)``: logits ``[batch, pos, d_vocab]``;
        ``resid[l]`` = ``blocks.l.hook_resid_pre`` ``[batch, pos, d_model]``; ``kv[l]`` =
        (``attn.hook_k``, ``attn.hook_v``) of block ``l``, ``[batch, pos, head, d_head]``
        each; ``cache`` the hook points ``names`` (a dict).
        """
        n_layers = self.cfg.n_layers
        keep = [
            f"blocks.{la}.{h}"
            for la in range(n_layers)
            for h in ("hook_resid_pre", "attn.hook_k", "attn.hook_v")
        ]
        logits, cache = self.run_with_cache(tokens, names=sorted({*keep, *names}))
        resid = [cache[f"blocks.{la}.hook_resid_pre"] for la in range(n_layers)]
        kv = [
            (cache[f"blocks.{la}.attn.hook_k"], cache[f"blocks.{la}.attn.hook_v"])
            for la in range(n_layers)
        ]
        return logits, resid, kv, {n: cache[n] for n in names}

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
        """Logits at positions ``start..`` of copies that enter at the blocks in ``entries``.

        entries: ``[(block, resid), ...]`` sorted by block, ``resid`` ``[copies * batch,
            pos - start, d_model]`` (copy-major); blocks before the first entry are skipped
            and rows follow the entries' order.
        start: the first position computed; earlier positions' keys / values come from kv.
        tokens: ``[batch, pos]``, the prompts (only their batch size is read here).
        kv: ``prefix_state``'s per-block ``(keys, values)``.
        pos: optionally, logits at these absolute positions (each ``>= start``) only.
        trim_last_mlp: with ``pos``, run the last block's MLP at ``pos`` only.
        """
        batch = torch.as_tensor(tokens).shape[0]
        first = entries[0][0]
        enter: dict[int, list[torch.Tensor]] = {}
        for b, x in entries:
            enter.setdefault(b, []).append(x)
        joined = {b: torch.cat(xs) if len(xs) > 1 else xs[0] for b, xs in enter.items()}
        past = None
        if start:
            past, seen = [], 0
            for b in range(first, self.cfg.n_layers):
                seen += joined[b].shape[0] if b in joined else 0
                reps = seen // batch  # the copies this block sees
                k, v = kv[b]
                past.append(
                    (k[:, :start].repeat(reps, 1, 1, 1), v[:, :start].repeat(reps, 1, 1, 1))
                )
        rel = None if pos is None else torch.as_tensor(pos).long() - start
        last = self.blocks[-1]
        mlp = last.mlp if trim_last_mlp and rel is not None and last.has_mlp else None
        with mlp_on_rows(mlp, rel):
            return self.forward_from(first, joined[first], past, pos=rel, enter=joined)
