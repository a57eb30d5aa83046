"""``mechscope.wrap(bridge)``: a TransformerLens model as a mechscope HookedModel.

TransformerLens 4 replaced ``HookedTransformer`` by ``TransformerBridge``, which runs a Hugging
Face model with TransformerLens' hook points around its modules. Wrapping one gives a
:class:`TransformerLensModel`: mechscope's hook names (the same set, shapes and order as
``mechscope.wrap`` of the underlying HF model), so every analysis, sweep and widget runs on it::

    bridge = TransformerBridge.boot_transformers("gpt2")      # or mechscope.models.tl.bridge(...)
    model = mechscope.wrap(bridge)
    logits, cache = model.run_with_cache("The cat sat")
    activation_patch(model, clean, corrupted, metric, "z")

The bridge runs the forward pass; nothing is converted or re-implemented. The hook points live
on the wrapper, and only while a call runs with hooks on some of them does the wrapper attach
torch hooks to the bridge's matching hook points (passing activations through each hook point's
``hook_conversion`` as TransformerLens does, so shapes are TransformerLens'). Everything is
removed in a ``finally``: the bridge leaves every call with exactly the hooks, weights and
module modes it entered with, also when a hook raises. It runs in eval mode (no dropout).

Where each mechscope name reads on the bridge: its TransformerLens hook of the same name, except
``attn.hook_q`` / ``attn.hook_k`` on rotary models, which read ``attn.hook_rot_q`` /
``hook_rot_k`` (after the rotation, as mechscope's HF wrapper; TransformerLens' own ``hook_q`` is
before it). ``hook_pos_embed`` exists for learned positions only; ``hook_resid_mid`` not for
parallel attention + MLP. Other TransformerLens hooks (``ln1.hook_scale``, ``hook_unembed``,
...) stay on ``model.bridge``.

Tokens follow TransformerLens: ``to_tokens(text)`` prepends BOS as the bridge does
(``cfg.default_prepend_bos``). TransformerLens 3's ``HookedTransformer`` has the same members
(``hook_dict``, ``cfg``, ``to_tokens``, ``W_U``, ``blocks[l].attn.W_O``), so it is wrapped by the
same code (duck typing; TransformerLens 3 is not installed in CI, so that path is untested).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn

from .._core import as_tokens
from ..hooks import HookFn, locked_hooks, model_lock, name_hook_points
from . import _hf_routing, _tl_bridge
from ._tl_compat import TLModel, bind_config

INSTALL = 'pip install "mechscope[tl]"'


def is_transformer_lens(model) -> bool:
    """Whether ``model`` is a TransformerLens model (a class in its MRO comes from the
    package); decided without importing transformer_lens."""
    return any(c.__module__.split(".")[0] == "transformer_lens" for c in type(model).__mro__)


def require_transformer_lens():
    """Import transformer_lens, or raise an ImportError that names the extra to install."""
    try:
        import transformer_lens
    except ImportError as err:
        raise ImportError(
            f"This needs TransformerLens, which is not installed. Install it with {INSTALL} "
            f"(TransformerLens >= 4.3)."
        ) from err
    return transformer_lens


def bridge(hf_model: nn.Module, tokenizer=None):
    """A TransformerLens ``TransformerBridge`` around a Hugging Face model, offline.

    ``TransformerBridge.boot_transformers(name, hf_model=...)`` replaces the HF model's modules
    with its own in place, so this boots on a deep copy: ``hf_model`` is left as it was. The
    tokenizer is re-loaded from a temporary copy with ``add_bos_token=True``, as the bridge
    requires. Raises ImportError naming ``mechscope[tl]`` without TransformerLens.
    """
    import copy
    import tempfile

    require_transformer_lens()
    from transformer_lens.model_bridge import TransformerBridge

    if not isinstance(hf_model, nn.Module) or not hasattr(hf_model, "config"):
        raise TypeError(
            f"bridge(hf_model, tokenizer): hf_model must be a Hugging Face PreTrainedModel, got "
            f"{type(hf_model).__name__}."
        )
    tok = None
    if tokenizer is not None:
        from transformers import AutoTokenizer

        with tempfile.TemporaryDirectory() as d:
            tokenizer.save_pretrained(d)
            tok = AutoTokenizer.from_pretrained(d, add_bos_token=True)
    own = copy.deepcopy(hf_model)
    name = getattr(hf_model.config, "_name_or_path", "") or hf_model.config.model_type
    device = next(hf_model.parameters()).device
    return TransformerBridge.boot_transformers(name, hf_model=own, tokenizer=tok, device=device)


def _bridge_weight(name: str, doc: str):
    def get(self) -> torch.Tensor:
        return _tl_bridge.weight(self.bridge, name, self.cfg)

    return property(get, doc=f"``{doc}``, a detached copy of the bridge's ``{name}``.")


class TransformerLensModel(TLModel, nn.Module):
    """A TransformerLens model with mechscope's hook names. Build with ``mechscope.wrap``.

    ``forward(tokens, attention_mask=None)`` returns the bridge's logits ``[batch, pos,
    d_vocab]``. ``model.bridge`` is the TransformerLens model itself. TransformerLens 3's
    idioms (``run_with_hooks(fwd_hooks=...)``, ``names_filter=``, ``model.W_Q``, ...) come
    from :class:`~mechscope.models._tl_compat.TLModel`, as on every mechscope model; the
    weights are detached copies of the bridge's, grouped-query K/V heads repeated and absent
    biases zero, as TransformerLens 3 gives them.
    """

    W_Q = _bridge_weight("W_Q", "[n_layers, n_heads, d_model, d_head]")
    W_K = _bridge_weight("W_K", "[n_layers, n_heads, d_model, d_head]")
    W_V = _bridge_weight("W_V", "[n_layers, n_heads, d_model, d_head]")
    W_O = _bridge_weight("W_O", "[n_layers, n_heads, d_head, d_model]")
    b_Q = _bridge_weight("b_Q", "[n_layers, n_heads, d_head]")
    b_K = _bridge_weight("b_K", "[n_layers, n_heads, d_head]")
    b_V = _bridge_weight("b_V", "[n_layers, n_heads, d_head]")
    b_O = _bridge_weight("b_O", "[n_layers, d_model]")
    W_in = _bridge_weight("W_in", "[n_layers, d_model, d_mlp]")
    W_gate = _bridge_weight("W_gate", "[n_layers, d_model, d_mlp]")
    W_out = _bridge_weight("W_out", "[n_layers, d_mlp, d_model]")
    b_in = _bridge_weight("b_in", "[n_layers, d_mlp]")
    b_out = _bridge_weight("b_out", "[n_layers, d_model]")
    W_E = _bridge_weight("W_E", "[d_vocab, d_model]")
    W_pos = _bridge_weight("W_pos", "[n_ctx, d_model]")
    W_U = _bridge_weight("W_U", "[d_model, d_vocab]")
    b_U = _bridge_weight("b_U", "[d_vocab]")

    def __init__(self, model: nn.Module):
        super().__init__()
        self.bridge = model
        self.cfg = _tl_bridge.make_cfg(model)
        bind_config(self)  # cfg.device follows the model
        self._tl_targets = _tl_bridge.tl_names(model, self.cfg.n_layers)
        hooks = model.hook_dict
        _tl_bridge.points_tree(self, self._tl_targets, self.cfg.n_layers)
        self._hook_points = {
            n: p for n, p in name_hook_points(self).items() if not n.startswith("bridge.")
        }
        self._targets = {n: hooks[t] for n, t in self._tl_targets.items()}
        _tl_bridge.attach_weights(self, model, self.cfg)
        self.tokenizer = getattr(model, "tokenizer", None)
        for name, m in self.named_modules():
            if not name.startswith("bridge"):
                m.training = model.training

    def __repr__(self) -> str:
        c = self.cfg
        return (
            f"TransformerLensModel({type(self.bridge).__name__}, family={c.family!r}, n_layers={c.n_layers}, "
            f"n_heads={c.n_heads}, n_kv_heads={c.n_kv_heads}, d_model={c.d_model})"
        )

    @property
    def device(self) -> torch.device:
        return self.bridge.W_E.device

    # ---- tokens (TransformerLens' conventions) ------------------------------

    def to_tokens(self, text: str | Sequence[str], prepend_bos: bool | None = None) -> torch.Tensor:
        """Text -> ``[1, pos]`` ids (the bridge's ``to_tokens``: BOS first unless
        ``prepend_bos=False``); texts of equal token length -> ``[batch, pos]``."""
        texts = [text] if isinstance(text, str) else list(text)
        rows = [self.bridge.to_tokens(t, prepend_bos=prepend_bos)[0] for t in texts]
        lengths = sorted({len(r) for r in rows})
        if len(lengths) > 1:
            raise ValueError(
                f"Texts tokenize to different lengths {lengths}; mechscope's analyses line "
                f"positions up, so pass texts of equal token length (or run the bridge itself: "
                f"model.bridge.to_tokens(texts) pads)."
            )
        return torch.stack(rows).long()

    def to_str_tokens(self, tokens, prepend_bos: bool | None = None) -> list[str]:
        """Text or ``[pos]`` / ``[1, pos]`` ids -> one string per token."""
        if isinstance(tokens, str):
            tokens = self.to_tokens(tokens, prepend_bos=prepend_bos)
        return [str(s) for s in self.bridge.to_str_tokens(self._one_sequence(tokens)[0])]

    # ---- forward and hooks --------------------------------------------------

    @contextlib.contextmanager
    def _routing(self) -> Iterator[None]:
        """Every run of the bridge goes through here: hold the lock, run in eval mode (each
        module's flag restored after), relay the hook points that have hooks."""
        mods = list(
            {
                id(m): m
                for m in [*self.bridge.modules(), *_tl_bridge.original_modules(self.bridge)]
            }.values()
        )
        with contextlib.ExitStack() as stack:
            stack.enter_context(model_lock(self))
            stack.enter_context(_hf_routing.eval_mode(mods))
            for name, point in self._hook_points.items():
                if point._forward_hooks:
                    target = self._targets[name]
                    handle = target.register_forward_hook(_tl_bridge.relay(point, target))
                    stack.callback(handle.remove)
            yield

    def forward(self, tokens, attention_mask=None) -> torch.Tensor:
        if isinstance(tokens, Mapping):
            if attention_mask is None:
                attention_mask = tokens.get("attention_mask")
            tokens = tokens["input_ids"]
        ids = as_tokens(self, tokens).to(self.device)
        kwargs = {}
        if attention_mask is not None:
            mask = torch.as_tensor(attention_mask).to(self.device)
            if tuple(mask.shape) != tuple(ids.shape):
                raise ValueError(
                    f"attention_mask has shape {list(mask.shape)} but tokens have "
                    f"{list(ids.shape)}; they must match ([batch, pos], 1 = real token, 0 = pad)."
                )
            kwargs["attention_mask"] = mask
        with self._routing():
            return self.bridge(ids, return_type="logits", **kwargs)

    def hook_names(self) -> list[str]:
        """All hook point names, in forward order."""
        return list(self._hook_points)

    def hooks(self, fwd_hooks: Iterable[tuple[str | Callable[[str], bool], HookFn]]):
        """Context manager: ``with model.hooks([(name, fn), ...]): model(tokens)``."""
        return locked_hooks(self, self._hook_points, fwd_hooks)

    # ---- weights, for the cache's analysis (mechscope.protocols.PerHeadWeights) ----

    def head_output_weights(self, layer: int) -> torch.Tensor:
        """Per-head output matrices ``W_O``: ``[head, d_head, d_model]``."""
        return self.bridge.blocks[layer].attn.W_O

    def attn_output_bias(self, layer: int) -> torch.Tensor:
        """Bias of the attention output projection ``[d_model]`` (zeros if it has none)."""
        return _tl_bridge.or_zeros(
            lambda: self.bridge.blocks[layer].attn.b_O, self.cfg.d_model, self
        )

    def unembed_weights(self) -> torch.Tensor:
        """Unembedding ``W_U``: ``[d_model, d_vocab]``."""
        return self.bridge.W_U

    def unembed_bias(self) -> torch.Tensor:
        """Unembedding bias ``[d_vocab]`` (zeros if it has none)."""
        return _tl_bridge.or_zeros(lambda: self.bridge.b_U, self.cfg.d_vocab, self)

    def final_norm(self) -> dict | None:
        """The final norm as ``{"kind": "ln"|"rms", "eps", "weight", "bias"}``; None if absent."""
        kind = str(getattr(self.bridge.cfg, "normalization_type", None) or "")
        ln = getattr(self.bridge, "ln_final", None)
        if not kind or ln is None:
            return None
        inner = getattr(ln, "_original_component", ln)  # the HF norm (bridge) or TL's own
        weight = getattr(inner, "weight", getattr(inner, "w", None))
        bias = getattr(inner, "bias", getattr(inner, "b", None))
        if kind.endswith("Pre"):  # folded into W_U (TransformerLens' fold_ln): no gain, no bias
            weight = bias = None
        return {
            "kind": "rms" if kind.startswith("RMS") else "ln",
            "eps": float(self.bridge.cfg.eps),
            "weight": weight,
            "bias": bias if isinstance(bias, torch.Tensor) else None,
        }


def wrap_transformer_lens(model, tokenizer=None) -> TransformerLensModel:
    """``mechscope.wrap`` for a TransformerLens model (``TransformerBridge``, or TL 3's
    ``HookedTransformer``): checks the members it needs and names what is missing."""
    if tokenizer is not None:
        raise TypeError(
            f"wrap({type(model).__name__}, tokenizer): a TransformerLens model brings its own "
            f"tokenizer (model.tokenizer); call mechscope.wrap(model) without one."
        )
    if isinstance(model, TransformerLensModel):
        return model
    need = ("cfg", "hook_dict", "to_tokens", "to_str_tokens", "W_U", "blocks")
    missing = [n for n in need if not _has(model, n)]
    if missing or not isinstance(model, nn.Module):
        raise TypeError(
            f"wrap() recognised {type(model).__name__} as a TransformerLens object, but it "
            f"lacks {', '.join(missing) or 'nn.Module'}: wrap a TransformerBridge "
            f"(TransformerBridge.boot_transformers(...), or mechscope.models.tl.bridge(hf_model, "
            f"tokenizer)) or a HookedTransformer."
        )
    return TransformerLensModel(model)


def _has(obj, name: str) -> bool:
    try:
        getattr(obj, name)
    except (AttributeError, ImportError):
        return False
    return True
