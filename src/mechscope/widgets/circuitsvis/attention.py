"""``circuitsvis.attention``'s functions, returning mechscope widgets (offline, binary buffers).

``attention_patterns`` gives the interactive :class:`~mechscope.widgets.AttentionPatterns`
(head thumbnails, one head up close, a hover-able token strip). ``attention_heads`` and
``attention_pattern`` take colour limits and any values (attributions, differences), so they
give a :class:`~mechscope.widgets.Heatmap`: one panel per head, titled by
``attention_head_names``, query tokens as rows and key tokens as columns, one colour scale.
"""

from __future__ import annotations

from typing import Any

from ..attention import AttentionPatterns
from ..heatmap import Heatmap
from . import _common

__all__ = ["attention_heads", "attention_pattern", "attention_patterns"]


def _pattern(attention: Any, tokens: Any, heads: bool):
    toks = _common.str_list(tokens)
    shape_doc = "[n_heads, dest_tokens, src_tokens]" if heads else "[dest_tokens, src_tokens]"
    arr = _common.array(attention, "attention", (3,) if heads else (2,), shape_doc)
    if arr.shape[-1] != len(toks) or arr.shape[-2] != len(toks):
        raise ValueError(
            f"attention has shape {list(arr.shape)} ({shape_doc}) but tokens has {len(toks)} "
            f"tokens; dest_tokens and src_tokens must both be len(tokens)."
        )
    return arr, toks


def attention_patterns(tokens: Any, attention: Any) -> AttentionPatterns:
    """Attention patterns of several heads: ``attention`` ``[n_heads, dest_tokens,
    src_tokens]`` probabilities, ``tokens`` one str per token (CircuitsVis' signature).

    Returns an :class:`~mechscope.widgets.AttentionPatterns` with one layer (``L0``).
    """
    arr, toks = _pattern(attention, tokens, heads=True)
    return AttentionPatterns(arr[None], toks)


def attention_heads(
    attention: Any,
    tokens: Any,
    attention_head_names: Any = None,
    max_value: float | None = None,
    *,
    min_value: float | None = None,
    negative_color: str | None = None,
    positive_color: str | None = None,
    mask_upper_tri: bool | None = None,
) -> Heatmap:
    """Attention patterns of a group of heads (CircuitsVis' ``attention_heads``).

    attention: ``[n_heads, dest_tokens, src_tokens]``; tokens: one str per token;
    attention_head_names: one per head (default ``Head 0``, ...); min_value / max_value: the
    colour scale's limits (default: [0, 1] for probabilities, else symmetric about 0).
    ``negative_color``, ``positive_color``, ``mask_upper_tri`` have no effect (one warning).
    Returns a :class:`~mechscope.widgets.Heatmap` with one panel per head.
    """
    _common.warn_ignored(
        "attention_heads",
        negative_color=(negative_color, None),
        positive_color=(positive_color, None),
        mask_upper_tri=(mask_upper_tri, None),
    )
    arr, toks = _pattern(attention, tokens, heads=True)
    n_heads = arr.shape[0]
    if attention_head_names is None:
        names = [f"Head {h}" for h in range(n_heads)]
    else:
        names = _common.str_list(attention_head_names, "attention_head_names")
        _common.check_len(
            len(names), n_heads, "attention_head_names", "names", f"attention has {n_heads} heads"
        )
    return Heatmap(
        arr,
        row_labels=toks,
        col_labels=toks,
        panel_titles=names,
        row_title="destination",
        col_title="source",
        value_label="attention",
        **_common.limits(arr, min_value, max_value),
    )


def attention_pattern(
    tokens: Any,
    attention: Any,
    max_value: float | None = None,
    min_value: float | None = None,
    *,
    negative_color: str | None = None,
    show_axis_labels: bool | None = None,
    positive_color: str | None = None,
    mask_upper_tri: bool | None = None,
) -> Heatmap:
    """One head's attention pattern (CircuitsVis' ``attention_pattern``).

    attention: ``[dest_tokens, src_tokens]``; tokens: one str per token; min_value /
    max_value: the colour scale's limits. ``negative_color``, ``positive_color``,
    ``show_axis_labels``, ``mask_upper_tri`` have no effect (one warning).
    Returns a one-panel :class:`~mechscope.widgets.Heatmap`.
    """
    _common.warn_ignored(
        "attention_pattern",
        negative_color=(negative_color, None),
        positive_color=(positive_color, None),
        show_axis_labels=(show_axis_labels, None),
        mask_upper_tri=(mask_upper_tri, None),
    )
    arr, toks = _pattern(attention, tokens, heads=False)
    return Heatmap(
        arr,
        row_labels=toks,
        col_labels=toks,
        row_title="destination",
        col_title="source",
        value_label="attention",
        **_common.limits(arr, min_value, max_value),
    )
