"""``circuitsvis.topk_samples``, returning a :class:`~mechscope.widgets.FeatureDashboard`.

CircuitsVis lists, for each (layer, neuron), its samples in descending order of their max
activation. Here each (layer, neuron) pair is a feature of a FeatureDashboard (named ``"Layer 0
Neuron 3"``, or by the labels), whose top contexts are exactly its own samples in that order,
tokens coloured by activation, with a histogram of its activations. Samples whose
activations are all <= 0 are not listed (the dashboard lists positive activations).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..feature_dashboard import FeatureDashboard
from . import _common

__all__ = ["topk_samples"]


def _nested(x: Any, name: str, depth: int) -> None:
    """A ValueError unless ``x`` is a list nested ``depth`` deep (the last level may vary)."""
    if depth == 0:
        return
    if isinstance(x, str) or not isinstance(x, (list, tuple)):
        raise ValueError(
            f"{name} must be nested lists [layers][neurons][samples][tokens], got "
            f"{type(x).__name__} at {name}."
        )
    for i, v in enumerate(x):
        _nested(v, f"{name}[{i}]", depth - 1)


def topk_samples(
    tokens: Any,
    activations: Any,
    zeroth_dimension_name: str | None = "Layer",
    first_dimension_name: str | None = "Neuron",
    *,
    zeroth_dimension_labels: Any = None,
    first_dimension_labels: Any = None,
) -> FeatureDashboard:
    """Top samples of each layer and neuron (CircuitsVis' ``topk_samples``).

    tokens: ``[layers][neurons][samples][tokens]`` str; activations: the same nesting of
    floats (each sample as long as its tokens). Returns a
    :class:`~mechscope.widgets.FeatureDashboard` with one feature per (layer, neuron).
    """
    _nested(tokens, "tokens", 3)
    _nested(activations, "activations", 3)
    n_layers = len(tokens)
    _common.check_len(len(activations), n_layers, "activations", "layers", f"tokens has {n_layers}")
    n_neurons = len(tokens[0]) if n_layers else 0
    contexts: list[list[str]] = []
    owner: list[tuple[int, list[float]]] = []  # (feature, activations) per context
    for layer in range(n_layers):
        for name, x in (("tokens", tokens), ("activations", activations)):
            _common.check_len(
                len(x[layer]),
                n_neurons,
                f"{name}[{layer}]",
                "neurons",
                f"tokens[0] has {n_neurons}",
            )
        for neuron in range(n_neurons):
            where = f"[{layer}][{neuron}]"
            toks, acts = tokens[layer][neuron], activations[layer][neuron]
            _common.check_len(
                len(acts),
                len(toks),
                "activations" + where,
                "samples",
                f"tokens{where} has {len(toks)}",
            )
            for s, (t, a) in enumerate(zip(toks, acts, strict=True)):
                t = _common.str_list(t, f"tokens{where}[{s}]")
                a = _common.array(a, f"activations{where}[{s}]", (1,), "[n_tokens]")
                _common.check_len(
                    len(a),
                    len(t),
                    f"activations{where}[{s}]",
                    "values",
                    f"tokens{where}[{s}] has {len(t)} tokens",
                )
                contexts.append(t)
                owner.append((layer * n_neurons + neuron, a))
    if not contexts:
        raise ValueError("tokens holds no samples; expected [layers][neurons][samples][tokens].")
    n_features = n_layers * n_neurons
    longest = max(len(c) for c in contexts)
    acts = np.zeros((len(contexts), longest, n_features))
    per_feature = np.zeros(n_features, dtype=int)
    for c, (f, a) in enumerate(owner):
        acts[c, : len(a), f] = a
        per_feature[f] += 1
    layers = [f"{zeroth_dimension_name} {i}" for i in range(n_layers)]
    if zeroth_dimension_labels is not None:
        layers = _common.str_list(zeroth_dimension_labels, "zeroth_dimension_labels")
        _common.check_len(
            len(layers),
            n_layers,
            "zeroth_dimension_labels",
            "labels",
            f"tokens has {n_layers} layers",
        )
    neurons = [f"{first_dimension_name} {i}" for i in range(n_neurons)]
    if first_dimension_labels is not None:
        neurons = _common.str_list(first_dimension_labels, "first_dimension_labels")
        _common.check_len(
            len(neurons),
            n_neurons,
            "first_dimension_labels",
            "labels",
            f"tokens has {n_neurons} neurons per layer",
        )
    names = [f"{a} {b}" for a in layers for b in neurons]
    return FeatureDashboard(acts, contexts, k=int(per_feature.max()), feature_names=names)
