"""What an analysis needs from a model: the ``HookedModel`` protocol and optional capabilities.

Every analysis in mechscope takes a :class:`HookedModel`: anything with a ``cfg``, named hook
points, ``hooks(...)`` and ``run_with_cache(...)``. Providers: mechscope's own
``Transformer``, ``mechscope.wrap(hf_model, tokenizer)``, or your own ``nn.Module`` with
:class:`mechscope.HookPoint` s (see ``tests/unit/test_third_party_model.py``). Faster paths and
weight-based analyses need more; they test for a capability protocol here, never for a
concrete class, and say which capability is missing when a model lacks one::

    from mechscope.protocols import HookedModel, PrefixReuse
    isinstance(model, HookedModel)   # runtime-checkable: has the methods and attributes
    isinstance(model, PrefixReuse)   # can restart a forward pass at a block and position

The checks are structural (``typing.runtime_checkable``): they test that the members exist,
not their signatures; the docstrings give those.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["HookedModel", "PerHeadWeights", "PrefixReuse", "ReadableBlocks", "require"]


@runtime_checkable
class HookedModel(Protocol):
    """The contract every analysis relies on.

    cfg: has ``n_layers``, ``n_heads``, ``d_model``, ``d_head``, ``d_vocab``, ``n_ctx``
        (``n_heads`` / ``d_head`` may be 0 for a model without attention).
    __call__(tokens) / forward(tokens): ``[batch, pos]`` ids -> logits ``[batch, pos, d_vocab]``
        (or ``[batch, d_out]`` outputs for a non-sequence model).
    to_tokens(text) -> ``[batch, pos]`` ids; to_str_tokens(ids) -> list of str.
    hook_names() -> every hook point name, in forward order.
    hooks(fwd_hooks) -> a context manager installing ``[(name or predicate, fn)]`` and
        removing them on exit, even on error.
    run_with_cache(tokens, names=...) -> ``(logits, ActivationCache)``.
    """

    cfg: Any

    def forward(self, tokens: torch.Tensor) -> torch.Tensor: ...

    def to_tokens(self, text) -> torch.Tensor: ...

    def to_str_tokens(self, tokens) -> list[str]: ...

    def hook_names(self) -> list[str]: ...

    def hooks(self, fwd_hooks): ...

    def run_with_cache(self, tokens, names=None, **kwargs): ...


@runtime_checkable
class PrefixReuse(Protocol):
    """Capability: restart a causal forward pass at a block and a position.

    prefix_state(tokens, names) -> ``(logits, resid, kv, cache)``: the run's logits
        ``[batch, pos, d_vocab]``, each block's input residual ``[batch, pos, d_model]``,
        each block's attention keys / values (in the provider's own layout), and the
        activations at hook points ``names`` (a dict).
    forward_suffix(entries, start, tokens, kv, *, pos=None, trim_last_mlp=False) -> logits
        ``[rows, pos - start, d_vocab]`` (or ``[rows, len(pos), d_vocab]``) of copies that
        enter at the blocks and residuals in ``entries`` (``[(block, [rows, pos - start,
        d_model])]``, block order) and compute positions ``start..`` of ``tokens`` only,
        attending to ``kv`` before ``start``. ``pos``: absolute positions to return logits
        at; ``trim_last_mlp``: then run the last block's MLP at ``pos`` only.

    Provided by mechscope's ``Transformer`` and by ``mechscope.wrap(...)`` of a causal HF
    decoder (``cfg.is_causal``). Activation patching uses it to skip what a patched copy
    shares with the target run; without it the sweep runs full forward passes (same
    numbers, slower).
    """

    def prefix_state(self, tokens: torch.Tensor, names=()): ...

    def forward_suffix(
        self, entries, start: int, tokens: torch.Tensor, kv, *, pos=None, trim_last_mlp=False
    ): ...


@runtime_checkable
class ReadableBlocks(Protocol):
    """Capability: every weight as plain tensors, laid out as mechscope's ``Transformer``
    (a pre-LayerNorm GPT with learned positions), so an analysis can recompute a head or an
    MLP from its inputs without a forward pass.

    W_E ``[d_vocab, d_model]``, W_pos ``[n_ctx, d_model]``, W_U ``[d_model, d_vocab]``, b_U;
    ln_final (with ``w``, ``b``, ``eps``; absent without final LayerNorm); ``blocks[l]`` with
    ``attn.W_Q / W_K / W_V`` ``[head, d_model, d_head]``, ``attn.W_O`` ``[head, d_head,
    d_model]``, biases ``b_Q / b_K / b_V / b_O``, ``attn.scale``, ``ln1`` / ``ln2`` and
    ``mlp`` (``W_in``, ``b_in``, ``act``, ``W_out``, ``b_out``); forward_from(layer, resid)
    -> logits, the rest of the forward pass from block ``layer``'s input. Causal scrubbing
    (``mechscope.scrubbing.scrub``) needs it. (A wrapped HF model has TransformerLens'
    ``W_E`` etc. as copies, but not these blocks: it lacks ``forward_from``.)
    """

    W_E: Any
    W_pos: Any
    W_U: Any
    b_U: Any
    blocks: Any

    def forward_from(self, layer: int, resid: torch.Tensor, past=None): ...


@runtime_checkable
class PerHeadWeights(Protocol):
    """Capability: the weights that weight-based and direct-logit analyses read.

    head_output_weights(layer) -> ``W_O`` per head ``[head, d_head, d_model]``;
    attn_output_bias(layer) -> ``[d_model]`` or None; unembed_weights() -> ``[d_model,
    d_vocab]``; unembed_bias() -> ``[d_vocab]`` or None; final_norm() -> the final
    normalisation as a callable on ``[..., d_model]``.
    """

    def head_output_weights(self, layer: int) -> torch.Tensor: ...

    def attn_output_bias(self, layer: int): ...

    def unembed_weights(self) -> torch.Tensor: ...

    def unembed_bias(self): ...

    def final_norm(self): ...


_ANY = "mechscope's Transformer or mechscope.wrap(...) of a Hugging Face model"
# Capabilities that not every provider has: who has them.
_PROVIDERS = {"ReadableBlocks": "mechscope's Transformer (e.g. mechscope.load('induction-2l'))"}


def require(model, capability: type, what: str) -> None:
    """Raise a TypeError naming the missing capability when ``model`` lacks it.

    what: the analysis that needs it, e.g. ``"scrub"``.
    """
    if isinstance(model, capability):
        return
    members = sorted({*dir(capability), *getattr(capability, "__annotations__", {})})
    missing = [n for n in members if not n.startswith("_") and not hasattr(model, n)]
    raise TypeError(
        f"{what} needs a model with the {capability.__name__} capability "
        f"(mechscope.protocols.{capability.__name__}); {type(model).__name__} lacks "
        f"{', '.join(missing) or 'it'}. Use {_PROVIDERS.get(capability.__name__, _ANY)}, "
        f"or implement {', '.join(missing) or 'those members'}."
    )
