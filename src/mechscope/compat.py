"""TransformerLens 3's ``HookedTransformer`` entry points, for course code moving to mechscope.

TransformerLens 4 removed ``HookedTransformer``; course material still opens with::

    from mechscope.compat import HookedTransformer, HookedTransformerConfig   # was transformer_lens
    model = HookedTransformer.from_pretrained("induction-2l")   # a zoo model, offline
    model = HookedTransformer(HookedTransformerConfig(n_layers=2, d_model=64, n_ctx=32,
                                                      d_head=16, d_vocab=50, attn_only=True))

What comes back is an ordinary mechscope model (``Transformer`` or a wrapped HF model) with
TransformerLens' idioms (``run_with_hooks``, ``W_Q``, ...). Weights are never folded or centred:
``from_pretrained`` here equals TransformerLens' ``from_pretrained_no_processing`` (same
logits; per-head weights without LayerNorm folded in). Offline, only zoo models, local
directories and models you build can load; a hub name says what to do instead.
"""

from __future__ import annotations

from ._load import ModelUnavailableError, load, zoo_models
from .models import Transformer, TransformerConfig
from .models._tl_compat import TLModel

__all__ = ["HookedTransformer", "HookedTransformerConfig"]

# TransformerLens' short names for hub models.
_TL_NAMES = {
    "gpt2-small": "gpt2",
    "pythia-14m": "EleutherAI/pythia-14m",
    "pythia-70m": "EleutherAI/pythia-70m",
    "pythia-160m": "EleutherAI/pythia-160m",
}
# Weight processing TransformerLens does by default; mechscope never does it (see above).
_PROCESSING = {
    "fold_ln",
    "center_writing_weights",
    "center_unembed",
    "refactor_factored_attn_matrices",
    "fold_value_biases",
    "default_prepend_bos",
    "default_padding_side",
    "move_to_device",
    "n_devices",
}


class _HookedTransformerType(type):
    def __instancecheck__(cls, obj) -> bool:  # every mechscope model with TL idioms
        return isinstance(obj, TLModel)


class HookedTransformer(metaclass=_HookedTransformerType):
    """``HookedTransformer(cfg)`` builds a mechscope ``Transformer``; ``from_pretrained``
    loads one. ``isinstance(model, HookedTransformer)`` holds for every mechscope model."""

    def __new__(cls, cfg, tokenizer=None):
        if isinstance(cfg, dict):
            cfg = HookedTransformerConfig(**cfg)
        if not isinstance(cfg, TransformerConfig):
            raise TypeError(
                f"HookedTransformer(cfg): cfg is {type(cfg).__name__}; build it with "
                f"mechscope.compat.HookedTransformerConfig(...) (TransformerLens' field names)."
            )
        return Transformer(cfg, tokenizer=tokenizer)

    @classmethod
    def from_pretrained(
        cls, model_name: str, *, device=None, dtype=None, hf_model=None, tokenizer=None, **kwargs
    ):
        """A zoo name (offline), ``"minilm"``, a local directory or a hub id (online); or,
        with ``hf_model=``, that model wrapped. TransformerLens' weight-processing options
        (``fold_ln``, ``center_writing_weights``, ...) are accepted and ignored."""
        unknown = sorted(set(kwargs) - _PROCESSING)
        if unknown:
            raise TypeError(
                f"HookedTransformer.from_pretrained got {unknown}, which mechscope does not "
                f"offer. It takes model_name, device=, dtype=, hf_model=, tokenizer=."
            )
        if hf_model is not None:
            from .models.hf import wrap

            model = wrap(hf_model, tokenizer)
        else:
            name = _TL_NAMES.get(model_name, model_name)
            try:
                model = load(name, device=device or "cpu")
            except ModelUnavailableError as err:
                raise ModelUnavailableError(
                    f"HookedTransformer.from_pretrained({model_name!r}): {err} Models shipped "
                    f"with mechscope (offline): {', '.join(zoo_models())}; e.g. "
                    f"HookedTransformer.from_pretrained('induction-2l'), or build the HF model "
                    f"yourself and pass hf_model=..., tokenizer=... ."
                ) from err
        if device is not None or dtype is not None:
            model = model.to(device=device, dtype=dtype)
        return model

    from_pretrained_no_processing = from_pretrained


_IGNORED = {
    "model_name",
    "tokenizer_name",
    "device",
    "dtype",
    "use_attn_result",
    "use_split_qkv_input",
    "use_hook_tokens",
    "use_attn_scale",
    "original_architecture",
    "default_prepend_bos",
}


def _act_fn(name: str) -> str:
    """TransformerLens' ``"solu_ln"`` (SoLU then a LayerNorm) is mechscope's ``"solu"``; its
    bare ``"solu"`` (no LayerNorm) has no mechscope equivalent."""
    if name == "solu":
        raise ValueError(
            "act_fn='solu': TransformerLens' SoLU without a LayerNorm is not supported; "
            "act_fn='solu_ln' (SoLU + LayerNorm, Elhage et al. 2022) is mechscope's 'solu'."
        )
    if name == "bilinear":
        raise ValueError(
            "act_fn='bilinear': TransformerLens has no bilinear MLP; build mechscope's own with "
            "mechscope.models.TransformerConfig(act_fn='bilinear', ...) instead."
        )
    return {"solu_ln": "solu"}.get(name, name)


def HookedTransformerConfig(**kwargs) -> TransformerConfig:  # noqa: N802 (TransformerLens' name)
    """TransformerLens' config fields -> a mechscope :class:`TransformerConfig`.

    Supported: n_layers, d_model, n_ctx, d_head, n_heads (default d_model // d_head), d_vocab,
    d_mlp (default 4 * d_model), attn_only, act_fn ("gelu" / "relu" / "solu_ln"), normalization_type
    ("LN" / None), positional_embedding_type ("standard"), seed, initializer_range. Options
    that change nothing here (device, use_attn_result, ...) are ignored; anything else is an
    error naming the field.
    """
    kw = {k: v for k, v in kwargs.items() if k not in _IGNORED}
    if kw.pop("attention_dir", "causal") != "causal":
        raise ValueError("attention_dir: mechscope's Transformer is causal only.")
    d_model, d_head = kw.pop("d_model"), kw.pop("d_head")
    attn_only = kw.pop("attn_only", False)
    d_mlp = None if attn_only else kw.pop("d_mlp", None) or 4 * d_model
    kw.pop("d_mlp", None)
    norm = kw.pop("normalization_type", "LN")
    pos = kw.pop("positional_embedding_type", "standard")
    if norm not in ("LN", None) or pos != "standard":
        raise ValueError(
            f"normalization_type={norm!r}, positional_embedding_type={pos!r}: mechscope's "
            f"Transformer has LayerNorm ('LN') or none (None), and learned positions "
            f"('standard'). For other architectures wrap a Hugging Face model (mechscope.wrap)."
        )
    cfg = dict(
        n_layers=kw.pop("n_layers"),
        d_model=d_model,
        n_heads=kw.pop("n_heads", d_model // d_head),
        d_head=d_head,
        d_vocab=kw.pop("d_vocab"),
        n_ctx=kw.pop("n_ctx"),
        d_mlp=d_mlp,
        act_fn=_act_fn(kw.pop("act_fn", "gelu")),
        normalization="ln" if norm == "LN" else None,
        init_std=kw.pop("initializer_range", 0.02),
        seed=kw.pop("seed", None) or 0,
    )
    if kw:
        raise ValueError(
            f"HookedTransformerConfig: {sorted(kw)} not supported by mechscope's Transformer "
            f"(supported: n_layers, d_model, n_ctx, d_head, n_heads, d_vocab, d_mlp, attn_only, "
            f"act_fn, normalization_type, positional_embedding_type, seed, initializer_range)."
        )
    return TransformerConfig(**cfg)
