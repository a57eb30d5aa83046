"""Information-flow routes (Ferrando & Voita 2024, "Information Flow Routes: Automatically
Interpreting Language Models at Scale").

One forward pass, no corrupted prompt: every residual-stream update is a sum of parts, and
each part's share of the sum is measured by how much closer it is to the total than nothing
(the *proportion of contribution*). At layer ``l`` and query position ``p``, attention writes
``resid_mid[p] = resid_pre[p] + sum_{h, j} A[h, p, j] v[h, j] W_O[h] + b_O``: the parts are the
residual and one edge per (head ``h``, key position ``j``). The MLP writes
``resid_post[p] = resid_mid[p] + mlp_out[p]``. A part ``c`` of a sum ``y`` gets
``max(0, |y|_1 - |y - c|_1)``, normalised over the parts of ``y``. Edges above a threshold,
followed back from the last position, form the *route* of a prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._core import as_tokens, str_tokens_of

__all__ = ["InformationFlowResult", "information_flow"]


def _proportions(total: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
    """total ``[..., d]``, parts ``[..., k, d]`` -> ``[..., k]`` shares (sum to 1 or 0)."""
    closer = total.abs().sum(-1, keepdim=True) - (total.unsqueeze(-2) - parts).abs().sum(-1)
    closer = closer.clamp(min=0)
    return closer / closer.sum(-1, keepdim=True).clamp(min=1e-12)


@dataclass(frozen=True)
class InformationFlowResult:
    """Proportions of contribution on one prompt.

    values: ``[layer, head, query_pos, key_pos]``, the share of attention edge
        (head, key -> query) in ``resid_mid`` at the query position (0 above the diagonal).
    resid_attn: ``[layer, pos]``, the residual's own share in that sum.
    mlp: ``[layer, pos]``, the MLP output's share in ``resid_post`` (0 without MLPs).
    """

    values: torch.Tensor
    resid_attn: torch.Tensor
    mlp: torch.Tensor
    str_tokens: list[str]

    def route(self, threshold: float, pos: int = -1) -> list[tuple[int, int, int, int, float]]:
        """Attention edges of the route to position ``pos`` at the last layer: ``(layer, head,
        query_pos, key_pos, share)`` with share > ``threshold``, followed back layer by layer
        from ``pos`` (a position joins the route when a kept edge reads from it; the
        residual keeps every position on the route). Latest layer first."""
        n_layers, _, n_pos, _ = self.values.shape
        if isinstance(threshold, bool) or not 0 <= float(threshold) < 1:
            raise ValueError(f"threshold={threshold!r}; give a share in [0, 1), e.g. 0.04.")
        if isinstance(pos, bool) or not isinstance(pos, int) or not -n_pos <= pos < n_pos:
            raise ValueError(f"pos={pos!r}; give an int in [{-n_pos}, {n_pos}).")
        live = {pos % n_pos}
        edges = []
        for layer in reversed(range(n_layers)):
            reached = set(live)
            for q in sorted(live):
                share = self.values[layer, :, q]  # [head, key_pos]
                for h, k in (share > threshold).nonzero().tolist():
                    edges.append((layer, h, q, k, float(share[h, k])))
                    reached.add(k)
            live = reached
        return edges

    def heads_on_route(self, threshold: float, pos: int = -1) -> list[str]:
        """``["L0H3", ...]``: heads with at least one edge on :meth:`route`, sorted."""
        heads = {(layer, h) for layer, h, *_ in self.route(threshold, pos)}
        return [f"L{layer}H{h}" for layer, h in sorted(heads)]

    def __repr__(self) -> str:
        return f"InformationFlowResult(values[layer, head, query_pos, key_pos]={list(self.values.shape)})"


def information_flow(model, tokens) -> InformationFlowResult:
    """Ferrando & Voita's per-edge contributions on one prompt (``tokens``: one text or
    ``[1, pos]`` ids). Needs a model with per-head output weights (``head_output_weights``)
    and ``attn.hook_v`` / ``attn.hook_pattern``; one ``run_with_cache``, the model unchanged."""
    toks = as_tokens(model, tokens)
    if toks.shape[0] != 1:
        raise ValueError(
            f"tokens has {toks.shape[0]} prompts; information_flow reads one prompt's routes. "
            f"Pass one, e.g. tokens[:1]."
        )
    if not hasattr(model, "head_output_weights"):
        raise TypeError(
            f"information_flow needs per-head output weights (model.head_output_weights(layer)); "
            f"{type(model).__name__} has none. Use mechscope.load(...) or mechscope.wrap(...)."
        )
    n_layers = model.cfg.n_layers
    has_mlp = "blocks.0.hook_mlp_out" in set(model.hook_names())  # attention-only models: no MLP
    mid = "hook_resid_mid" if has_mlp else "hook_resid_post"
    names = []
    for i in range(n_layers):
        names += [f"blocks.{i}.hook_resid_pre", f"blocks.{i}.{mid}", f"blocks.{i}.attn.hook_v",
                  f"blocks.{i}.attn.hook_pattern"] + [f"blocks.{i}.hook_mlp_out"] * has_mlp  # fmt: skip
    with torch.no_grad():
        _, cache = model.run_with_cache(toks, names=names)
        attn, resid_share, mlp_share = [], [], []
        for i in range(n_layers):
            v = cache[f"blocks.{i}.attn.hook_v"][0].float()  # [key_pos, head, d_head]
            pattern = cache[f"blocks.{i}.attn.hook_pattern"][0].float()  # [head, q, k]
            w_o = model.head_output_weights(i).detach().float()  # [head, d_head, d_model]
            if v.shape[1] != pattern.shape[0]:
                raise ValueError(
                    f"layer {i}: {v.shape[1]} value heads for {pattern.shape[0]} query heads "
                    "(grouped-query attention); information_flow needs one value per head."
                )
            v_out = torch.einsum("khd,hdm->hkm", v, w_o)  # [head, key_pos, d_model]
            edge = pattern[..., None] * v_out[:, None]  # [head, q, k, d_model]
            n_heads, n_pos = pattern.shape[0], pattern.shape[1]
            resid = cache[f"blocks.{i}.hook_resid_pre"][0].float()  # [pos, d_model]
            total = cache[f"blocks.{i}.{mid}"][0].float()
            parts = torch.cat(
                [resid[:, None], edge.permute(1, 0, 2, 3).reshape(n_pos, n_heads * n_pos, -1)], 1
            )  # [q, 1 + head * k, d_model]
            share = _proportions(total, parts)
            resid_share.append(share[:, 0])
            attn.append(share[:, 1:].reshape(n_pos, n_heads, n_pos).permute(1, 0, 2))
            if not has_mlp:
                mlp_share.append(torch.zeros(n_pos))
                continue
            mlp_out = cache[f"blocks.{i}.hook_mlp_out"][0].float()
            mlp_share.append(_proportions(total + mlp_out, torch.stack([total, mlp_out], 1))[:, 1])
    return InformationFlowResult(
        values=torch.stack(attn),
        resid_attn=torch.stack(resid_share),
        mlp=torch.stack(mlp_share),
        str_tokens=str_tokens_of(model, toks),
    )
