"""TransformerLens' weights of a wrapped Hugging Face model, read off the HF modules.

Part of the TransformerLens idioms (:mod:`mechscope.models._tl_compat`): ``model.W_E``,
``model.blocks[l].attn.W_Q`` and the rest on ``mechscope.wrap(hf_model, tok)``, each a
detached copy in TransformerLens' shape (editing one never changes the model). Layouts:
GPT-2's fused Conv1D ``c_attn``, GPT-NeoX's per-head fused ``query_key_value``,
Llama-family ``q_proj`` / ``k_proj`` / ``v_proj``, BERT's ``query`` / ``key`` / ``value``;
grouped-query K / V heads are repeated so query head ``h`` gets KV head
``h // (n_heads // n_kv_heads)``, as TransformerLens does.
"""

from __future__ import annotations

import torch

from . import _hf_families


def _find(module, paths):
    for path in paths:
        obj = module
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            return obj
    return None


def _heads(w: torch.Tensor, b, n: int, d_head: int, d_model: int):
    """``[d_model, n * d_head]`` and its bias -> ``[n, d_model, d_head]``, ``[n, d_head]``."""
    w = w.detach().reshape(d_model, n, d_head).permute(1, 0, 2)
    b = w.new_zeros(n, d_head) if b is None else b.detach().reshape(n, d_head)
    return w, b


def hf_attn_weights(site: dict, cfg) -> dict:
    """W_Q / W_K / W_V ``[head, d_model, d_head]``, W_O ``[head, d_head, d_model]`` and the
    biases of one HF attention layer (copies; GQA K / V repeated to ``n_heads``)."""
    attn, H, KV, Dh, D = site["attn"], cfg.n_heads, cfg.n_kv_heads, cfg.d_head, cfg.d_model
    if hasattr(attn, "c_attn"):  # GPT-2: Conv1D [d_model, 3 * d_model], q | k | v
        w, b = _hf_families.as_in_out(attn.c_attn)
        ws, bs = w.split(H * Dh, dim=1), (None,) * 3 if b is None else b.split(H * Dh)
        (wq, bq), (wk, bk), (wv, bv) = (_heads(ws[i], bs[i], H, Dh, D) for i in range(3))
    elif hasattr(attn, "query_key_value"):  # GPT-NeoX: out features are [head, (q, k, v), d_head]
        w, b = _hf_families.as_in_out(attn.query_key_value)
        w = w.detach().reshape(D, H, 3, Dh).permute(2, 1, 0, 3)  # [3, head, d_model, d_head]
        b = w.new_zeros(3, H, Dh) if b is None else b.detach().reshape(H, 3, Dh).transpose(0, 1)
        (wq, wk, wv), (bq, bk, bv) = w, b
    else:  # Llama / Mistral / Qwen2 (q_proj, ...) and BERT (query, ...): one Linear each
        projs = [
            _find(attn, (f"{x}_proj", name))
            for x, name in zip("qkv", ("query", "key", "value"), strict=True)
        ]
        (wq, bq), (wk, bk), (wv, bv) = (
            _heads(*_hf_families.as_in_out(p), n, Dh, D)
            for p, n in zip(projs, (H, KV, KV), strict=True)
        )
    if KV != H:
        wk, bk, wv, bv = (x.repeat_interleave(H // KV, dim=0) for x in (wk, bk, wv, bv))
    w_o, b_o = _hf_families.as_in_out(site["out_proj"])
    return {
        "W_Q": wq.clone(), "W_K": wk.clone(), "W_V": wv.clone(),
        "b_Q": bq.clone(), "b_K": bk.clone(), "b_V": bv.clone(),
        "W_O": w_o.detach().reshape(H, Dh, D).clone(),
        "b_O": w_o.new_zeros(D) if b_o is None else b_o.detach().clone(),
    }  # fmt: skip


_MLP_IN = ("mlp.c_fc", "mlp.dense_h_to_4h", "mlp.up_proj", "intermediate.dense")


def hf_mlp_weights(site: dict, cfg) -> dict:
    """W_in ``[d_model, d_mlp]``, W_out ``[d_mlp, d_model]``, biases (and W_gate for gated
    MLPs, TransformerLens' convention: hook_pre = x @ W_gate) of one HF block (copies)."""
    block = site["block"]
    out = {}
    for key, module in (
        ("in", _find(block, _MLP_IN)),
        ("out", site["mlp_out"]),
        ("gate", _find(block, ("mlp.gate_proj",))),
    ):
        if module is None:
            continue
        w, b = _hf_families.as_in_out(module)
        out[f"W_{key}"] = w.detach().clone()
        out[f"b_{key}"] = w.new_zeros(w.shape[1]) if b is None else b.detach().clone()
    return out


def _layer_weight(kind: str, name: str):
    def get(self) -> torch.Tensor:
        site, cfg = self._tl_source
        weights = hf_attn_weights(site, cfg) if kind == "attn" else hf_mlp_weights(site, cfg)
        if name not in weights:
            raise AttributeError(f"{name} (this model's MLP has no such weight)")
        return weights[name]

    return property(get, doc=f"TransformerLens' ``{name}`` of this layer, a detached copy.")


class AttnWeights:
    """``blocks[l].attn.W_Q`` etc. on a wrapped HF model (the model sets ``_tl_source``)."""

    _tl_source: tuple
    W_Q, W_K, W_V, W_O = (_layer_weight("attn", n) for n in ("W_Q", "W_K", "W_V", "W_O"))
    b_Q, b_K, b_V, b_O = (_layer_weight("attn", n) for n in ("b_Q", "b_K", "b_V", "b_O"))


class MLPWeights:
    """``blocks[l].mlp.W_in`` etc. on a wrapped HF model (the model sets ``_tl_source``)."""

    _tl_source: tuple
    W_in, W_out, W_gate = (_layer_weight("mlp", n) for n in ("W_in", "W_out", "W_gate"))
    b_in, b_out = (_layer_weight("mlp", n) for n in ("b_in", "b_out"))


class HFEmbedWeights:
    """``W_E`` / ``W_pos`` / ``W_U`` / ``b_U`` of a wrapped HF model, as detached copies."""

    @property
    def W_E(self) -> torch.Tensor:
        """``[d_vocab, d_model]``."""
        return self._embed.weight.detach().clone()

    @property
    def W_pos(self) -> torch.Tensor:
        """``[n_ctx, d_model]``; rotary models have none (AttributeError, as TransformerLens)."""
        if self._pos_embed is None:
            raise AttributeError("W_pos: this model uses rotary positions, not learned ones")
        return self._pos_embed.weight.detach().clone()

    @property
    def W_U(self) -> torch.Tensor:
        """``[d_model, d_vocab]``."""
        return self.unembed_weights().detach().clone()

    @property
    def b_U(self) -> torch.Tensor:
        """``[d_vocab]`` (zeros when the LM head has no bias)."""
        return self.unembed_bias().detach().clone()
