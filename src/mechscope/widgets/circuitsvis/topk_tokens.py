"""``circuitsvis.topk_tokens``, returning a :class:`~mechscope.widgets.TokenActivations`.

CircuitsVis sends the top and bottom ``max_k`` tokens of each sample, per layer and neuron,
to a table. Here every sample is a text and every (layer, neuron) pair a feature (named
``"Layer 0 Neuron 3"``, or by ``first_dimension_labels``), so picking a neuron colours
every token of every sample by it: the top-k tokens are the darkest, and nothing is cut off.
``max_k`` and ``sample_labels`` have no effect.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..token_activations import TokenActivations
from . import _common

__all__ = ["topk_tokens"]


def topk_tokens(
    tokens: Any,
    activations: Any,
    max_k: int = 10,
    first_dimension_name: str = "Layer",
    *,
    third_dimension_name: str = "Neuron",
    sample_labels: Any = None,
    first_dimension_labels: Any = None,
) -> TokenActivations:
    """Per-sample token activations of every layer and neuron (CircuitsVis' ``topk_tokens``).

    tokens: one list of str per sample; activations: one ``[n_layers, n_tokens, n_neurons]``
    array per sample (``n_tokens`` = that sample's length; ``n_layers`` and ``n_neurons`` the
    same for all). Returns a :class:`~mechscope.widgets.TokenActivations` with values
    ``[sample, pos, layer * n_neurons + neuron]``.
    """
    _common.warn_ignored("topk_tokens", max_k=(max_k, 10), sample_labels=(sample_labels, None))
    if isinstance(tokens, str) or not isinstance(tokens, (list, tuple)):
        raise ValueError(f"tokens must be a list of token lists, got {type(tokens).__name__}.")
    texts = [_common.str_list(t, f"tokens[{i}]") for i, t in enumerate(tokens)]
    if isinstance(activations, np.ndarray) or not isinstance(activations, (list, tuple)):
        raise ValueError(
            "activations must be a list with one [n_layers, n_tokens, n_neurons] array per "
            f"sample, got {type(activations).__name__}."
        )
    _common.check_len(
        len(activations), len(texts), "activations", "samples", f"tokens has {len(texts)}"
    )
    doc = "[n_layers, n_tokens, n_neurons] per sample"
    acts = [_common.array(a, f"activations[{i}]", (3,), doc) for i, a in enumerate(activations)]
    n_layers, _, n_neurons = acts[0].shape
    for i, (a, t) in enumerate(zip(acts, texts, strict=True)):
        if (a.shape[0], a.shape[2]) != (n_layers, n_neurons) or a.shape[1] != len(t):
            raise ValueError(
                f"activations[{i}] has shape {list(a.shape)}; expected [{n_layers}, "
                f"{len(t)}, {n_neurons}] ([n_layers, len(tokens[{i}]), n_neurons], the layers "
                f"and neurons of activations[0])."
            )
    layer_names = [f"{first_dimension_name} {layer}" for layer in range(n_layers)]
    if first_dimension_labels is not None:
        layer_names = _common.str_list(first_dimension_labels, "first_dimension_labels")
        _common.check_len(
            len(layer_names),
            n_layers,
            "first_dimension_labels",
            "labels",
            f"activations have {n_layers} {first_dimension_name.lower()}s",
        )
    longest = max(len(t) for t in texts)
    values = np.zeros((len(texts), longest, n_layers * n_neurons))
    for i, a in enumerate(acts):  # [layer, pos, neuron] -> [pos, layer * n_neurons + neuron]
        values[i, : a.shape[1]] = a.transpose(1, 0, 2).reshape(a.shape[1], -1)
    names = [f"{ln} {third_dimension_name} {n}" for ln in layer_names for n in range(n_neurons)]
    return TokenActivations(texts, values, feature_names=names)
