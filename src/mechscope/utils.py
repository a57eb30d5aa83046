"""TransformerLens' ``utils`` helpers that course code calls, for every mechscope model.

``from mechscope import utils`` stands in for ``from transformer_lens import utils``::

    utils.get_act_name("pattern", 0)   # 'blocks.0.attn.hook_pattern'
    utils.get_act_name("resid_pre", 1) # 'blocks.1.hook_resid_pre'
    utils.get_act_name("embed")        # 'hook_embed'
    utils.to_numpy(cache["pattern", 0])
    utils.lm_cross_entropy_loss(logits, tokens)

The names are TransformerLens' (so ARENA and the TransformerLens demos run unchanged); the
hook names they produce are the ones DESIGN.md lists, which every mechscope model uses.
"""

from __future__ import annotations

import re

import numpy as np
import torch

__all__ = ["ACT_NAMES", "get_act_name", "lm_cross_entropy_loss", "to_numpy"]

# Spellings TransformerLens accepts for the same activation.
_ALIASES = {
    "attn": "pattern",
    "attn_logits": "attn_scores",
    "key": "k",
    "query": "q",
    "value": "v",
    "mlp_pre": "pre",
    "mlp_mid": "mid",
    "mlp_post": "post",
}
_LAYER_TYPES = {"a": "attn", "m": "mlp", "b": "", "block": "", "blocks": "", "attention": "attn"}
_IN_ATTN = ("k", "v", "q", "z", "rot_k", "rot_q", "result", "pattern", "attn_scores")
_IN_MLP = ("pre", "post", "mid", "pre_linear")

# Every short name get_act_name understands (after aliases), for "did you mean" messages.
ACT_NAMES = (
    *_IN_ATTN,
    *_IN_MLP,
    "resid_pre",
    "resid_mid",
    "resid_post",
    "attn_out",
    "mlp_out",
    "attn_in",
    "q_input",
    "k_input",
    "v_input",
    "mlp_in",
    "embed",
    "pos_embed",
    "scale",
    "normalized",
    *_ALIASES,
)


def get_act_name(name: str, layer: int | None = None, layer_type: str | None = None) -> str:
    """A TransformerLens short name -> the full hook name, as ``transformer_lens.utils``.

    ``("pattern", 0)`` -> ``"blocks.0.attn.hook_pattern"``; ``("resid_pre", 1)`` ->
    ``"blocks.1.hook_resid_pre"``; ``("embed")`` -> ``"hook_embed"``; ``("scale")`` ->
    ``"ln_final.hook_scale"``; ``("normalized", 0, "ln1")`` -> ``"blocks.0.ln1.hook_normalized"``;
    the compact ``"k6"`` / ``"scale4ln1"`` forms too. A full name (with a dot, or starting
    with ``hook_``) comes back unchanged. Whether the model has that hook is not checked here:
    ``model.hook_names()`` lists them.
    """
    if not isinstance(name, str):
        raise TypeError(f"get_act_name(name={name!r}): name must be a str like 'pattern'.")
    if isinstance(layer, bool):
        raise TypeError(f"get_act_name(layer={layer!r}): layer must be an int, not a bool.")
    if ("." in name or name.startswith("hook_")) and layer is None and layer_type is None:
        return name
    compact = re.fullmatch(r"([a-z_]+?)(\d+)([a-z]\w*)?", name)
    if compact is not None and layer is None:
        name, layer, layer_type = compact.group(1), int(compact.group(2)), compact.group(3)
    name = _ALIASES.get(name, name)
    if name in _IN_ATTN:
        layer_type = "attn"
    elif name in _IN_MLP:
        layer_type = "mlp"
    elif layer_type in _LAYER_TYPES:
        layer_type = _LAYER_TYPES[layer_type]
    parts = [] if layer is None else ["blocks", str(int(layer))]
    if layer_type:
        parts.append(layer_type)
    full = ".".join([*parts, f"hook_{name}"])
    if name in ("scale", "normalized") and layer is None:
        full = f"ln_final.{full}"
    return full


def to_numpy(x) -> np.ndarray:
    """A tensor (any device, with or without grad), array, list or number -> a numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def lm_cross_entropy_loss(logits: torch.Tensor, tokens: torch.Tensor, per_token: bool = False):
    """Next-token cross-entropy: ``logits [batch, pos, d_vocab]``, ``tokens [batch, pos]``.

    Position ``p``'s logits predict token ``p + 1``. Returns the mean over batch and positions
    (a scalar), or ``[batch, pos - 1]`` with ``per_token=True`` (TransformerLens' convention).
    """
    tokens = torch.as_tensor(tokens, device=logits.device)
    if tokens.dim() == 1:
        tokens = tokens[None]
    if logits.dim() != 3 or tuple(tokens.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"lm_cross_entropy_loss needs logits [batch, pos, d_vocab] and tokens [batch, pos] "
            f"of the same batch and pos; got logits {list(logits.shape)} and tokens "
            f"{list(tokens.shape)}."
        )
    log_probs = logits[:, :-1].float().log_softmax(-1)
    nll = -log_probs.gather(-1, tokens[:, 1:, None].long())[..., 0]
    return nll if per_token else nll.mean()
