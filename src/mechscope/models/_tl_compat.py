"""TransformerLens 3's model idioms, once, for every mechscope model (a mixin).

Course code (ARENA, the TransformerLens demos) calls ``model.run_with_hooks(tokens,
fwd_hooks=[...])``, ``model.run_with_cache(tokens, names_filter=...)``, ``model.W_Q[l, h]``,
``model.to_single_token(" Mary")``, ``model.cfg.n_layers``. :class:`TLModel` gives those
names to mechscope's ``Transformer`` and to ``mechscope.wrap(hf_model, tok)``;
:class:`TLConfig` gives a config TransformerLens' field names. docs/from_transformerlens.md
lists each idiom beside its mechscope spelling.

Weights (``model.W_Q`` and the rest): TransformerLens' shapes, ``[n_layers, n_heads,
d_model, d_head]`` and so on. The stacked ones are *detached copies*: editing one in place
never changes the model. On a wrapped Hugging Face model every weight here is a detached
copy read off the HF weights (GPT-2's fused Conv1D ``c_attn``, GPT-NeoX's per-head fused
``query_key_value``, Llama-family ``q_proj`` / ``k_proj`` / ``v_proj``; grouped-query K / V
heads repeated so query head ``h`` gets KV head ``h // (n_heads // n_kv_heads)``, as
TransformerLens does). On mechscope's ``Transformer``, ``model.W_E`` / ``W_pos`` / ``W_U`` /
``b_U`` and ``model.blocks[l].attn.W_Q`` are the parameters themselves, as in TransformerLens.
Weights are never folded or centred (TransformerLens' ``from_pretrained_no_processing``).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping

import torch

from .._core import as_tokens
from ..cache import cached_run
from ..hooks import backward_as_forward, resolve_names
from ..utils import lm_cross_entropy_loss

# TransformerLens keyword arguments that have no mechscope counterpart, and what to do instead.
_NOT_OFFERED = {
    "incl_bwd": "gradients: model.add_hook(name, fn, dir='bwd'), run, loss.backward()",
    "pos_slice": "slice the cached tensors afterwards, e.g. cache['resid_post', 0][:, -1]",
    "return_cache_object": "the cache is always an ActivationCache (a Mapping: dict(cache))",
    "padding_side": "pad with model.tokenize(texts, padding_side=...) and pass its dict",
    "start_at_layer": "model.forward_from(layer, resid) (mechscope's Transformer)",
    "stop_at_layer": "cache the residual you need: run_with_cache(tokens, names=...)",
    "past_kv_cache": "nothing: mechscope runs whole sequences",
    "shortformer_pos_embed": "nothing: only standard learned or rotary positions",
}


def _refuse(what: str, kwargs: dict) -> None:
    for key in kwargs:
        if key in _NOT_OFFERED:
            raise TypeError(
                f"{what}({key}=...) is a TransformerLens option mechscope does not offer; "
                f"instead: {_NOT_OFFERED[key]}."
            )


def _check_return_type(return_type) -> None:
    if return_type not in ("logits", "loss", "both", None):
        raise ValueError(f"return_type={return_type!r}; expected 'logits', 'loss', 'both' or None.")


class TLConfig:
    """TransformerLens' config field names, read off mechscope's own (a dataclass mixin)."""

    @property
    def normalization_type(self) -> str | None:
        return {"ln": "LN", "rms": "RMS"}.get(getattr(self, "normalization", None))

    @property
    def positional_embedding_type(self) -> str:
        return "standard" if getattr(self, "positional", "learned") == "learned" else "rotary"

    @property
    def n_key_value_heads(self) -> int | None:
        n_kv = getattr(self, "n_kv_heads", None)
        return n_kv if n_kv is not None and n_kv != self.n_heads else None

    @property
    def attn_only(self) -> bool:
        return getattr(self, "d_mlp", None) is None

    @property
    def d_vocab_out(self) -> int:
        return self.d_vocab

    @property
    def gated_mlp(self) -> bool:
        return getattr(self, "family", "") in ("Llama", "Mistral", "Qwen2")

    @property
    def parallel_attn_mlp(self) -> bool:
        return getattr(self, "residual", "pre") == "parallel"

    def __getstate__(self) -> dict:  # the weak reference to the model does not pickle
        return {k: v for k, v in self.__dict__.items() if k != "_owner"}

    @property
    def device(self) -> str:
        """The device of the model this config belongs to (``"cpu"`` before one is bound)."""
        owner = self.__dict__.get("_owner")
        model = owner() if owner is not None else None
        return str(model.device) if model is not None else "cpu"


def bind_config(model) -> None:
    """Let ``model.cfg.device`` report ``model``'s device (a weak reference; the frozen
    config's fields are untouched)."""
    object.__setattr__(model.cfg, "_owner", weakref.ref(model))


def _stacked(part: str, name: str, shape: str):
    def get(self) -> torch.Tensor:
        return torch.stack([getattr(getattr(b, part), name).detach() for b in self.blocks])

    return property(get, doc=f"``{shape}``, a detached copy (TransformerLens' ``{name}``).")


class TLModel:
    """TransformerLens 3's ``HookedTransformer`` methods on a mechscope model (a mixin).

    Needs from the model: ``cfg``, ``blocks``, ``tokenizer``, ``_hook_points``, ``hooks``,
    ``hook_names``, ``to_tokens``, ``to_str_tokens`` and ``forward``.
    """

    W_Q = _stacked("attn", "W_Q", "[n_layers, n_heads, d_model, d_head]")
    W_K = _stacked("attn", "W_K", "[n_layers, n_heads, d_model, d_head]")
    W_V = _stacked("attn", "W_V", "[n_layers, n_heads, d_model, d_head]")
    W_O = _stacked("attn", "W_O", "[n_layers, n_heads, d_head, d_model]")
    b_Q = _stacked("attn", "b_Q", "[n_layers, n_heads, d_head]")
    b_K = _stacked("attn", "b_K", "[n_layers, n_heads, d_head]")
    b_V = _stacked("attn", "b_V", "[n_layers, n_heads, d_head]")
    b_O = _stacked("attn", "b_O", "[n_layers, d_model]")
    W_in = _stacked("mlp", "W_in", "[n_layers, d_model, d_mlp]")
    W_gate = _stacked("mlp", "W_gate", "[n_layers, d_model, d_mlp]")
    W_out = _stacked("mlp", "W_out", "[n_layers, d_mlp, d_model]")
    b_in = _stacked("mlp", "b_in", "[n_layers, d_mlp]")
    b_out = _stacked("mlp", "b_out", "[n_layers, d_model]")

    @property
    def QK(self):
        """``W_Q W_K^T`` per layer and head, factored: ``[n_layers, n_heads, d_model, d_model]``."""
        from ..circuits import FactoredMatrix

        return FactoredMatrix(self.W_Q, self.W_K.transpose(-1, -2))

    @property
    def OV(self):
        """``W_V W_O`` per layer and head, factored: ``[n_layers, n_heads, d_model, d_model]``."""
        from ..circuits import FactoredMatrix

        return FactoredMatrix(self.W_V, self.W_O)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def __setstate__(self, state) -> None:  # a copied / unpickled model: cfg.device is its own
        super().__setstate__(state)
        bind_config(self)

    @property
    def hook_dict(self) -> dict:
        """``{hook name: HookPoint}``, in forward order."""
        return dict(self._hook_points)

    @property
    def mod_dict(self) -> dict:
        """``{module path: module}`` for the model's own modules (hook points included)."""
        return {n: m for n, m in self.named_modules() if n and not n.startswith("hf_model")}

    # ---- hooks that stay, TransformerLens style ------------------------------

    def add_hook(self, name, hook, dir: str = "fwd", is_permanent: bool = False) -> None:
        """Install ``hook(act, hook_point)`` on ``name`` (a hook name or a predicate) until
        :meth:`reset_hooks`. ``dir="bwd"``: on the gradient instead. Prefer
        ``with model.hooks([...])``, which cleans up by itself."""
        points = self._hook_points
        for n in resolve_names(name, list(points), what="add_hook"):
            points[n].add_hook(hook, dir=dir, is_permanent=is_permanent)

    def reset_hooks(
        self, clear_contexts: bool = True, direction: str = "both", including_permanent=False
    ) -> None:
        """Remove every hook :meth:`add_hook` (or ``reset_hooks_end=False``) left behind."""
        for point in self._hook_points.values():
            point.remove_hooks(direction, including_permanent=including_permanent)

    # ---- runs ----------------------------------------------------------------

    def _tl_tokens(self, tokens, prepend_bos):
        text = isinstance(tokens, str) or (
            isinstance(tokens, list) and tokens and all(isinstance(t, str) for t in tokens)
        )
        if text and prepend_bos is not None:
            return self.to_tokens(tokens, prepend_bos=prepend_bos)
        return tokens

    def _tl_output(self, tokens, logits, return_type, loss_per_token):
        if return_type == "logits":
            return logits
        if return_type is None:
            return None
        ids = tokens["input_ids"] if isinstance(tokens, Mapping) else as_tokens(self, tokens)
        loss = lm_cross_entropy_loss(logits, ids.to(logits.device), per_token=loss_per_token)
        return loss if return_type == "loss" else (logits, loss)

    def run_with_hooks(
        self,
        tokens,
        fwd_hooks=(),
        bwd_hooks=(),
        *,
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
        return_type: str | None = "logits",
        loss_per_token: bool = False,
        prepend_bos: bool | None = None,
        **forward_kwargs,
    ):
        """One forward pass with hooks in; TransformerLens' ``run_with_hooks``.

        fwd_hooks: ``[(name or predicate, fn(act, hook))]``; a returned tensor replaces the
            activation. bwd_hooks: the same on gradients: they fire in a ``backward()``
            through this run's output (TransformerLens removes them before that can happen).
        reset_hooks_end: True (default) removes every hook when the run ends, also when a
            hook raises; False keeps them until ``model.reset_hooks()``.
        return_type: "logits" (default), "loss" (mean next-token cross-entropy), "both"
            (``(logits, loss)``) or None. Other keywords go to ``model(...)`` (e.g.
            ``attention_mask`` on a wrapped Hugging Face model).
        """
        _check_return_type(return_type)
        _refuse("run_with_hooks", forward_kwargs)
        tokens = self._tl_tokens(tokens, prepend_bos)
        pairs = [*fwd_hooks, *backward_as_forward(bwd_hooks)] if bwd_hooks else fwd_hooks
        if reset_hooks_end:
            with self.hooks(pairs):
                out = self(tokens, **forward_kwargs)
        else:
            with self.hooks(pairs):  # validates every name first: a typo installs nothing
                pass
            for names, fn in fwd_hooks:
                self.add_hook(names, fn, dir="fwd")
            for names, fn in bwd_hooks:
                self.add_hook(names, fn, dir="bwd")
            out = self(tokens, **forward_kwargs)
        return self._tl_output(tokens, out, return_type, loss_per_token)

    def run_with_cache(
        self,
        tokens,
        names=None,
        *,
        names_filter=None,
        device=None,
        dtype=None,
        remove_batch_dim: bool = False,
        grad: bool = False,
        return_type: str | None = "logits",
        loss_per_token: bool = False,
        prepend_bos: bool | None = None,
        **forward_kwargs,
    ):
        """Forward pass that records activations. Returns ``(logits, cache)``.

        names: a hook name, a list of names, a predicate ``fn(name) -> bool``, or None for
            every hook point. Only these are kept (memory = what you ask for).
            ``names_filter`` is the same, under TransformerLens' name.
        device, dtype: where and in which dtype to store cached tensors.
        remove_batch_dim: drop the batch axis (needs batch size 1).
        grad: keep autograd on, so the returned logits can be differentiated (cached
            activations are always detached).
        return_type: as in :meth:`run_with_hooks` (what comes back in place of the logits).
        Other keywords go to ``model(...)`` (``attention_mask`` on a wrapped HF model).
        """
        if names is not None and names_filter is not None:
            raise TypeError(
                "run_with_cache got both names= and names_filter= (the same thing under "
                "mechscope's and TransformerLens' name); pass one."
            )
        _check_return_type(return_type)
        _refuse("run_with_cache", forward_kwargs)
        tokens = self._tl_tokens(tokens, prepend_bos)
        logits, cache = cached_run(
            self,
            tokens,
            names if names_filter is None else names_filter,
            device=device,
            dtype=dtype,
            remove_batch_dim=remove_batch_dim,
            grad=grad,
            **forward_kwargs,
        )
        return self._tl_output(tokens, logits, return_type, loss_per_token), cache

    # ---- tokens ----------------------------------------------------------------

    def _one_sequence(self, tokens) -> torch.Tensor:
        """``to_str_tokens``' ids: ``[pos]`` / ``[1, pos]`` (or one 0-d id, e.g. an argmax) ->
        checked ``[1, pos]`` ids; a ValueError for a batch of several rows."""
        t = tokens if isinstance(tokens, torch.Tensor) else torch.as_tensor(tokens)
        ids = as_tokens(self, t.reshape(1) if t.dim() == 0 else t, check_ctx=False)
        if ids.shape[0] != 1:
            raise ValueError(
                f"to_str_tokens takes one sequence (tokens [pos] or [1, pos]), got a batch of "
                f"{ids.shape[0]}; call it once per row, e.g. model.to_str_tokens(tokens[0])."
            )
        return ids

    def to_single_token(self, string: str) -> int:
        """The id of ``string``, which must be exactly one token (no BOS added)."""
        if not isinstance(string, str):
            raise TypeError(f"to_single_token takes a str, got {type(string).__name__}.")
        ids = self.to_tokens(string, prepend_bos=False)
        if ids.numel() != 1:
            pieces = self.to_str_tokens(ids) if ids.numel() else []
            raise ValueError(
                f"to_single_token({string!r}): it is {ids.numel()} tokens {pieces}, not one. "
                f"Use model.to_tokens({string!r}, prepend_bos=False) for several, or check the "
                f"spelling (GPT-2-style tokenizers count a leading space: ' Mary')."
            )
        return int(ids.reshape(-1)[0])

    def to_string(self, tokens):
        """Ids -> text: ``[pos]`` gives a str, ``[batch, pos]`` a list of str."""
        tok = self.tokenizer
        if tok is None:
            raise ValueError("This model has no tokenizer, so ids cannot be turned into text.")
        t = torch.as_tensor(tokens)
        if t.dim() == 2:
            return [self.to_string(row) for row in t]
        if hasattr(tok, "decode"):
            return tok.decode(t.reshape(-1).tolist())
        return " ".join(tok.decode_list(t.reshape(-1)))
