"""``mechscope.wrap(hf_model, tokenizer)``: DESIGN.md hook names on a Hugging Face model.

The user's model runs as Hugging Face runs it; nothing is converted or re-implemented.
The :class:`HookPoint` modules live on the wrapper (``model.blocks[0].attn.hook_pattern``),
and only while a call runs with hooks on some of them does the wrapper attach torch
hooks to the matching HF modules (and, for per-head q/k/v/scores/pattern, swap in the
hooked eager attention of :mod:`._hf_attention`). Everything is removed in a ``finally``:
the HF model leaves every call with exactly the hooks, weights and attention
implementation it entered with, also when a hook raises.

Where each hook reads (``L`` = a block of the HF model):

==========================  =====================================================
hook_embed / hook_pos_embed  token / learned position embedding output (pos: GPT-2, BERT)
blocks.L.hook_resid_pre      input of block L
blocks.L.attn.hook_q/k/v     inside attention, after rotary embeddings;
                             ``[batch, pos, head, d_head]``, k/v per *KV head* for GQA
                             (``[batch, pos, kv_head, d_head]``; query head h reads
                             KV head ``h // (n_heads // n_kv_heads)``)
attn.hook_attn_scores        ``[batch, head, q, k]``, scaled and masked; masked entries hold
                             the dtype's minimum, as in HF eager (pad rows stay finite)
attn.hook_pattern            softmax of the scores, ``[batch, head, q, k]``
attn.hook_z                  input of the attention output projection, per head
blocks.L.hook_attn_out       output of the attention output projection (with its bias)
blocks.L.hook_resid_mid      resid_pre + attn_out (pre-norm); BERT: after its first LayerNorm;
                             absent for parallel-residual models (Pythia)
mlp.hook_pre / hook_post     input of the activation / input of the MLP output projection
                             (gated MLPs: hook_post = act(gate) * up)
blocks.L.hook_mlp_out        output of the MLP output projection
blocks.L.hook_resid_post     output of block L
ln_final.hook_scale          ``[batch, pos, 1]``: the final norm's divisor sqrt(var + eps)
                             (RMSNorm: sqrt(mean(x^2) + eps)), as TransformerLens' hook_scale
ln_final.hook_normalized     the final norm's output before its weight and bias
==========================  =====================================================

Every call through the wrapper runs the HF model in eval mode (no dropout, so two identical
runs give identical numbers) and then gives each of its modules back the mode it had: a
freshly built HF model is in train mode, and stays so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..hooks import HookFn, HookPoint, locked_hooks, name_hook_points
from . import _hf_families
from ._hf_prefix import PrefixMixin
from ._hf_routing import RoutingMixin
from ._hf_tokens import TokenMixin
from ._tl_compat import TLConfig, TLModel, bind_config
from ._tl_weights import AttnWeights, HFEmbedWeights, MLPWeights


@dataclass(frozen=True)
class HFConfig(TLConfig):
    """The shape of a wrapped model, in mechscope's vocabulary."""

    n_layers: int
    n_heads: int
    n_kv_heads: int  # < n_heads for grouped-query attention (Llama-family)
    d_model: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_ctx: int  # longest sequence the model's positions cover
    family: str
    normalization: str  # "ln" or "rms"
    residual: str  # "pre", "parallel" or "post" (see _hf_families.Family)
    positional: str  # "learned" or "rotary"
    is_causal: bool  # decoders; False for BERT-family encoders
    output: str  # what forward returns: "logits" (an LM head) or "hidden" (last hidden state)
    act_fn: str = ""  # the HF config's activation name ("gelu_new", "silu", ...)


class _AttnPoints(AttnWeights, nn.Module):
    def __init__(self):
        super().__init__()
        self.hook_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_k = HookPoint()  # [batch, pos, kv_head, d_head]
        self.hook_v = HookPoint()  # [batch, pos, kv_head, d_head]
        self.hook_attn_scores = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_pattern = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_z = HookPoint()  # [batch, pos, head, d_head]


class _MLPPoints(MLPWeights, nn.Module):
    def __init__(self, has_pre: bool):
        super().__init__()
        if has_pre:
            self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]


class _BlockPoints(nn.Module):
    def __init__(self, has_mid: bool, has_mlp_pre: bool):
        super().__init__()
        self.hook_resid_pre = HookPoint()  # [batch, pos, d_model]
        self.attn = _AttnPoints()
        self.hook_attn_out = HookPoint()  # [batch, pos, d_model]
        if has_mid:
            self.hook_resid_mid = HookPoint()
        self.mlp = _MLPPoints(has_mlp_pre)
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()


class _NormPoints(nn.Module):
    def __init__(self):
        super().__init__()
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, d_model]


class HFModel(PrefixMixin, RoutingMixin, TokenMixin, TLModel, HFEmbedWeights, nn.Module):
    """A Hugging Face model with mechscope's hook names. Build with :func:`wrap`.

    ``forward(tokens, attention_mask=None)`` returns the HF model's own output: logits
    ``[batch, pos, d_vocab]`` for models with an LM head (``*ForCausalLM``,
    ``GPT2LMHeadModel``, ``BertForMaskedLM``), else the last hidden state
    ``[batch, pos, d_model]`` (``BertModel``, e.g. MiniLM); ``cfg.output`` says which.
    """

    def __init__(self, hf_model: nn.Module, tokenizer=None):
        super().__init__()
        self.family = _hf_families.detect(hf_model)
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        fam, config = self.family, hf_model.config
        base = hf_model.base_model
        self._base = base
        blocks = base.get_submodule(fam.layers)
        self._sites = [
            {
                "block": b,
                "attn": b.get_submodule(fam.attn),
                "out_proj": b.get_submodule(fam.out_proj),
                "mlp_act": b.get_submodule(fam.mlp_act)
                if isinstance(_get(b, fam.mlp_act), nn.Module)
                else None,
                "mlp_out": b.get_submodule(fam.mlp_out),
                "resid_mid": b.get_submodule(fam.resid_mid) if fam.resid_mid else None,
            }
            for b in blocks
        ]
        self._embed = base.get_submodule(fam.embed)
        self._pos_embed = base.get_submodule(fam.pos_embed) if fam.pos_embed else None
        self._ln_final = base.get_submodule(fam.ln_final) if fam.ln_final else None
        self.cfg = self._make_cfg(config)

        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        if self._pos_embed is not None:
            self.hook_pos_embed = HookPoint()  # [batch, pos, d_model]
        has_mid = fam.residual != "parallel"
        has_pre = all(s["mlp_act"] is not None for s in self._sites)
        self.blocks = nn.ModuleList(_BlockPoints(has_mid, has_pre) for _ in self._sites)
        if self._ln_final is not None:
            self.ln_final = _NormPoints()
        points = name_hook_points(self)
        self._hook_points = {n: p for n, p in points.items() if not n.startswith("hf_model.")}
        self._attn_points = {id(s["attn"]): self.blocks[i].attn for i, s in enumerate(self._sites)}
        for i, s in enumerate(self._sites):  # TransformerLens' blocks[l].attn.W_Q etc.
            self.blocks[i].attn._tl_source = self.blocks[i].mlp._tl_source = (s, self.cfg)
        bind_config(self)
        # Mirror the HF model's mode without calling .train()/.eval() on it (that would reset
        # the mode of each of its submodules).
        for name, m in self.named_modules():
            if not name.startswith("hf_model"):
                m.training = hf_model.training

    def _make_cfg(self, config) -> HFConfig:
        n_heads = config.num_attention_heads
        d_model = config.hidden_size
        attn0 = self._sites[0]["attn"]
        d_head = next(
            (
                int(getattr(attn0, a))
                for a in ("head_dim", "head_size", "attention_head_size")
                if getattr(attn0, a, None)
            ),
            d_model // n_heads,
        )
        d_mlp = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
        out = "logits" if self.hf_model.get_output_embeddings() is not None else "hidden"
        return HFConfig(
            n_layers=len(self._sites),
            n_heads=n_heads,
            n_kv_heads=getattr(config, "num_key_value_heads", None) or n_heads,
            d_model=d_model,
            d_head=d_head,
            d_mlp=int(d_mlp or 4 * d_model),
            d_vocab=config.vocab_size,
            n_ctx=int(getattr(config, "max_position_embeddings", None) or 0),
            family=self.family.name,
            normalization=self.family.norm,
            residual=self.family.residual,
            positional="learned" if self._pos_embed is not None else "rotary",
            is_causal=bool(getattr(self._sites[0]["attn"], "is_causal", True))
            and self.family.residual != "post",
            output=out,
            act_fn=str(
                getattr(config, "activation_function", None)
                or getattr(config, "hidden_act", None)
                or ""
            ),
        )

    def __repr__(self) -> str:
        c = self.cfg
        return (
            f"HFModel({type(self.hf_model).__name__}, family={c.family!r}, n_layers={c.n_layers}, "
            f"n_heads={c.n_heads}, n_kv_heads={c.n_kv_heads}, d_model={c.d_model})"
        )

    @property
    def device(self) -> torch.device:
        return self._embed.weight.device

    # ---- forward and hooks --------------------------------------------------

    def forward(self, tokens, attention_mask=None) -> torch.Tensor:
        ids, mask = self._prepare(tokens, attention_mask)
        kwargs = {}
        if mask is not None:
            kwargs["attention_mask"] = mask
            # Positions count real tokens only, so left-padded rows get the positions they
            # would have unpadded (HF's own default would be 0..pos-1 for every row).
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        if self.cfg.is_causal:
            kwargs["use_cache"] = False  # no KV cache: memory is the model plus what is cached
        with self._routing(batch=ids.shape[0]):
            out = self.hf_model(input_ids=ids, **kwargs)
        logits = getattr(out, "logits", None)
        return logits if logits is not None else out.last_hidden_state

    def hook_names(self) -> list[str]:
        """All hook point names, in forward order."""
        return list(self._hook_points)

    def hooks(self, fwd_hooks: Iterable[tuple[str | Callable[[str], bool], HookFn]]):
        """Context manager: ``with model.hooks([(name, fn), ...]): model(tokens)``.

        Holds the model's lock (:func:`mechscope.hooks.model_lock`) until it exits.
        """
        return locked_hooks(self, self._hook_points, fwd_hooks)

    # ---- weights, for the cache's analysis ----------------------------------

    def head_output_weights(self, layer: int) -> torch.Tensor:
        """Per-head output matrices ``W_O``: ``[head, d_head, d_model]`` (a view of the HF weight)."""
        w, _ = _hf_families.as_in_out(self._sites[layer]["out_proj"])  # [head*d_head, d_model]
        return w.reshape(self.cfg.n_heads, self.cfg.d_head, self.cfg.d_model)

    def attn_output_bias(self, layer: int) -> torch.Tensor:
        """Bias of the attention output projection ``[d_model]`` (zeros if it has none)."""
        w, b = _hf_families.as_in_out(self._sites[layer]["out_proj"])
        return b if b is not None else w.new_zeros(self.cfg.d_model)

    def _linear_head(self) -> nn.Module:
        head = self.hf_model.get_output_embeddings()
        if self.family.residual == "post" or head is None:
            raise NotImplementedError(
                f"{type(self.hf_model).__name__} has no linear unembedding from the residual "
                f"stream (BERT-family MLM heads apply dense + activation + LayerNorm first; "
                f"encoders without a head have none), so logit attributions are undefined."
            )
        return head

    def unembed_weights(self) -> torch.Tensor:
        """Unembedding ``W_U``: ``[d_model, d_vocab]`` (the LM head, tied or not)."""
        return self._linear_head().weight.T

    def unembed_bias(self) -> torch.Tensor:
        """LM-head bias ``[d_vocab]`` (zeros if it has none)."""
        head = self._linear_head()
        b = getattr(head, "bias", None)
        return b if b is not None else head.weight.new_zeros(head.weight.shape[0])

    def final_norm(self) -> dict | None:
        """The final norm as ``{"kind": "ln"|"rms", "eps", "weight", "bias"}``; None if absent."""
        ln = self._ln_final
        if ln is None:
            return None
        return {
            "kind": self.family.norm,
            "eps": _hf_families.norm_eps(ln),
            "weight": getattr(ln, "weight", None),
            "bias": getattr(ln, "bias", None),
        }


def _get(module: nn.Module, path: str):
    obj = module
    for part in path.split("."):
        obj = getattr(obj, part, None)
    return obj


_TL = "mechscope.models.tl"


def wrap(hf_model: nn.Module, tokenizer=None) -> HFModel:
    """Wrap a Hugging Face model (and its tokenizer) as a mechscope HookedModel.

    >>> model = mechscope.wrap(AutoModelForCausalLM.from_pretrained(path), tokenizer)
    >>> logits, cache = model.run_with_cache("The cat sat")

    Supported: GPT-2, GPT-NeoX (Pythia), Llama, Mistral, Qwen2, BERT. The HF model is
    not changed; see :mod:`mechscope.models.hf` for where each hook reads.

    Modes: every call through the wrapper (forward, ``run_with_cache``, ``run_with_hooks``,
    patching sweeps) runs the HF model in eval mode, so dropout never makes two identical runs
    differ, and afterwards restores each module's own ``training`` flag: a model built in train
    mode is still in train mode after every call, also when a hook raises. Runs of one model
    from several threads are serialised (:func:`mechscope.hooks.model_lock`).
    """
    mods = {c.__module__ for c in type(hf_model).__mro__}
    if any(m.split(".")[0] == "nnsight" for m in mods):
        from .nnsight import wrap_nnsight  # an nnsight model; no nnsight import otherwise

        return wrap_nnsight(hf_model, tokenizer)
    if _TL in mods or any(m.split(".")[0] == "transformer_lens" for m in mods):
        from .tl import wrap_transformer_lens  # a TransformerLens model; no TL import otherwise

        return wrap_transformer_lens(hf_model, tokenizer)
    if isinstance(hf_model, HFModel):
        return hf_model
    if not isinstance(hf_model, nn.Module) or not hasattr(hf_model, "config"):
        raise TypeError(
            f"wrap() takes a Hugging Face PreTrainedModel, got {type(hf_model).__name__}. "
            f"Zoo models are already hookable: use mechscope.load(name)."
        )
    if isinstance(tokenizer, Mapping):
        raise TypeError("wrap(model, tokenizer): the second argument is a tokenizer, not a dict.")
    return HFModel(hf_model, tokenizer)
