"""``circuitsvis.tokens``' functions, returning :class:`~mechscope.widgets.TokenActivations`.

The widget's colour scale is its own (diverging at zero when a value is negative, one scale
per feature), so CircuitsVis' ``min_value`` / ``max_value`` and colours have no effect.
"""

from __future__ import annotations

from typing import Any

from ..token_activations import TokenActivations
from . import _common

__all__ = ["colored_tokens", "colored_tokens_multi"]


def colored_tokens(
    tokens: Any,
    values: Any,
    min_value: float | None = None,
    max_value: float | None = None,
    *,
    negative_color: str | None = None,
    positive_color: str | None = None,
) -> TokenActivations:
    """Tokens coloured by one value each (CircuitsVis' ``colored_tokens``).

    tokens: one str per token; values: ``[n_tokens]``. ``min_value``, ``max_value``,
    ``negative_color``, ``positive_color`` have no effect (one warning).
    Returns a :class:`~mechscope.widgets.TokenActivations` with one text and one feature.
    """
    _common.warn_ignored(
        "colored_tokens",
        min_value=(min_value, None),
        max_value=(max_value, None),
        negative_color=(negative_color, None),
        positive_color=(positive_color, None),
    )
    toks = _common.str_list(tokens)
    arr = _common.array(values, "values", (1,), "[n_tokens]")
    _common.check_len(arr.shape[0], len(toks), "values", "entries", f"tokens has {len(toks)}")
    return TokenActivations([toks], arr[None, :], feature_names=["value"])


def colored_tokens_multi(tokens: Any, values: Any, labels: Any = None) -> TokenActivations:
    """Tokens coloured by one of K values each (CircuitsVis' ``colored_tokens_multi``).

    tokens: one str per token; values: ``[n_tokens, K]``; labels: K names (default
    ``value 0``, ...). Returns a :class:`~mechscope.widgets.TokenActivations` with one text
    and K features; picking a feature recolours the tokens.
    """
    toks = _common.str_list(tokens)
    arr = _common.array(values, "values", (2,), "[n_tokens, K]")
    _common.check_len(arr.shape[0], len(toks), "values", "rows", f"tokens has {len(toks)}")
    names = [f"value {k}" for k in range(arr.shape[1])]
    if labels:  # CircuitsVis treats an empty list as none
        names = _common.str_list(labels, "labels")
        k = arr.shape[1]
        _common.check_len(len(names), k, "labels", "names", f"values has {k} columns")
    return TokenActivations([toks], arr[None], feature_names=names)
