"""AttentionPatterns: every head of every layer at a glance, one head up close.

The widget shows

- a thumbnail grid, layers as rows and heads as columns (labelled ``L{l}H{h}``);
- the focused head as a heatmap, query positions as rows and key positions as columns,
  with the tokens on both axes;
- a token strip: hovering a token colours every token by the attention the hovered token
  (as query) pays to it in the focused head.

Clicking a thumbnail focuses that head and sets ``selected = [layer, head]``, which Python
can observe; setting ``selected`` from Python refocuses the view. ``layer`` indexes the
widget's own layers (``from_cache(..., layer=[3, 5])`` has layers 0 and 1, labelled L3, L5).

The pattern travels as one binary buffer (see ``_buffers``), never as JSON floats.
A pattern too big to send whole (over 4 Mi weights, e.g. 32 layers x 32 heads x 512 tokens =
268 M) is sent as max-pooled thumbnails (``_pooling``) plus the initially focused head; the
full pattern stays in Python (not a synced trait, so not saved into the notebook), and the
view fetches each head it focuses over the widget's comm (a ``{"type": "head"}`` custom
message, answered with that head's float32 ``[query_pos, key_pos]`` pattern as a buffer).
TypeScript side: ``widgets/attention/index.ts``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from mechscope.widgets import _buffers, _pooling, _static, _svg_grids

_STATIC = Path(__file__).parent / "static"
_PATTERN_HOOK = re.compile(r"^blocks\.(\d+)\.attn\.hook_pattern$")

# Attention weights are probabilities; anything far outside [0, 1] is probably scores.
_RANGE_TOLERANCE = 1e-3
# Patterns of more weights than this are sent as thumbnails + one head (at uint8, 4 MiB:
# GPT-2 small on 128 tokens, 2.4 M weights, is still sent whole, as before).
_FULL_MAX_VALUES = _buffers.AUTO_BUDGET_BYTES
# Thumbnails of every head, and the initially focused head at full resolution: together with
# base64 in a saved notebook, under 5 MB.
_THUMB_BUDGET_BYTES = 2 * 2**20
_FOCUS_BUDGET_BYTES = 2**20


class AttentionPatterns(_static.StaticFallback, anywidget.AnyWidget):
    """Attention patterns of a model on one prompt, as an interactive widget.

    Args:
        attention: ``[layer, head, query_pos, key_pos]`` attention probabilities (torch
            Tensor or numpy array); ``[head, query_pos, key_pos]`` is taken as one layer.
            A pattern of over 4 Mi weights is shown as thumbnails plus one head at a time,
            read from this array on request: it is kept by reference, not copied, so change
            it in place and the heads shown afterwards change too.
        tokens: one string per position (``len(tokens) == key_pos``).
        dtype: encoding of the payload: ``"auto"`` (float32 if it fits 4 MiB, else float16
            if that fits, else uint8; thumbnails of a big pattern: uint8), ``"float32"``,
            ``"float16"`` or ``"uint8"``.
        selected: ``[layer, head]`` to focus first; default ``[0, 0]``.
        title: shown above the widget.
        layer_labels: one label per layer (default ``L0``, ``L1``, ...).

    Example::

        _, cache = model.run_with_cache(tokens, names=lambda n: n.endswith("hook_pattern"))
        w = AttentionPatterns.from_cache(cache, model.to_str_tokens(tokens))
        w.observe(lambda change: print(change["new"]), names="selected")
    """

    _esm = _STATIC / "attention.js"
    _css = _STATIC / "attention.css"

    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    n_layers = traitlets.Int(0).tag(sync=True)
    n_heads = traitlets.Int(0).tag(sync=True)
    n_tokens = traitlets.Int(0).tag(sync=True)
    # [layer, head, query, key] little-endian, C order, encoded as `dtype` (see _buffers).
    attention = traitlets.Bytes(b"").tag(sync=True)
    dtype = traitlets.Unicode("float32").tag(sync=True)
    # 0: `attention` is the whole pattern. s > 0: it is [layer, head, side, side] thumbnails,
    # maxima of s x s blocks (side = ceil(n_tokens / s)); heads come on request (see above).
    thumb_stride = traitlets.Int(0).tag(sync=True)
    # With thumbnails: the full [query, key] pattern of head `focus_head` as `focus_dtype`
    # (b"" and [] when one head is over budget).
    focus = traitlets.Bytes(b"").tag(sync=True)
    focus_head = traitlets.List(traitlets.Int()).tag(sync=True)
    focus_dtype = traitlets.Unicode("float32").tag(sync=True)
    layer_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    selected = traitlets.List(traitlets.Int(), default_value=[0, 0]).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    # position (strip token) highlighted across linked views, -1 none; two-way (hover sets it).
    highlight_token = traitlets.Int(-1).tag(sync=True)

    def __init__(
        self,
        attention: Any,
        tokens: Sequence[str],
        *,
        dtype: str = "auto",
        selected: Sequence[int] | None = None,
        title: str = "",
        layer_labels: Sequence[str] | None = None,
    ) -> None:
        pattern = _as_pattern(attention)
        n_layers, n_heads, n_q, n_k = pattern.shape
        tokens = _check_tokens(tokens, pattern.shape)
        _check_range(pattern)
        labels = _check_layer_labels(layer_labels, n_layers)
        chosen = _check_selected([0, 0] if selected is None else selected, n_layers, n_heads)
        traits: dict[str, Any] = {}
        if pattern.size <= _FULL_MAX_VALUES:
            encoding = _buffers.resolve_dtype(dtype, pattern.size)
            traits["attention"] = _buffers.encode(pattern, encoding)
            self._full = None
        else:
            encoding = "uint8" if dtype == "auto" else _buffers.resolve_dtype(dtype, 0)
            itemsize = _buffers.payload_nbytes(1, encoding)
            stride = _pooling.choose_stride(n_layers * n_heads, n_k, itemsize, _THUMB_BUDGET_BYTES)
            traits["attention"] = _buffers.encode(_pooling.max_pool(pattern, stride), encoding)
            traits["thumb_stride"] = stride
            focus_dtype = _buffers.choose_dtype(n_k * n_k, _FOCUS_BUDGET_BYTES)
            if _buffers.payload_nbytes(n_k * n_k, focus_dtype) <= _FOCUS_BUDGET_BYTES:
                head = pattern[chosen[0], chosen[1]]
                traits.update(focus=_buffers.encode(head, focus_dtype), focus_head=chosen)
                traits["focus_dtype"] = focus_dtype
            # Kept by reference (a copy of 1 GiB costs seconds), through a read-only view.
            self._full = pattern.view()
            self._full.flags.writeable = False
        super().__init__(
            tokens=tokens,
            n_layers=n_layers,
            n_heads=n_heads,
            n_tokens=n_k,
            dtype=encoding,
            layer_labels=labels,
            title=title,
            selected=chosen,
            **traits,
        )
        self.on_msg(self._on_request)

    @classmethod
    def from_cache(
        cls,
        cache: Mapping[str, Any],
        tokens: Sequence[str],
        *,
        layer: int | Sequence[int] | None = None,
        batch_index: int = 0,
        **kwargs: Any,
    ) -> AttentionPatterns:
        """Build the widget from ``blocks.{l}.attn.hook_pattern`` entries of a cache.

        Args:
            cache: mapping from hook name to tensor; patterns are ``[batch, head, query_pos,
                key_pos]`` (or ``[head, query_pos, key_pos]`` when the batch dim was dropped).
            tokens: one string per position.
            layer: which layer (int) or layers (list) to show (default: every layer with a
                pattern in the cache).
            batch_index: which prompt of the batch to show.
            **kwargs: passed on to the constructor (dtype, selected, title, layer_labels).
        """
        found = {}
        for name in cache.keys():
            match = _PATTERN_HOOK.match(str(name))
            if match:
                found[int(match.group(1))] = name
        if not found:
            shown = sorted(map(str, cache.keys()))
            raise ValueError(
                "the cache holds no attention patterns (no 'blocks.{l}.attn.hook_pattern' "
                f"entries; it has {_preview(shown)}). Fix: cache them with "
                "model.run_with_cache(tokens, names=lambda n: n.endswith('hook_pattern'))."
            )
        if layer is None:
            layers = sorted(found)
        else:
            many = isinstance(layer, Sequence) and not isinstance(layer, str)
            given = list(layer) if many else [layer]
            bad = [x for x in given if isinstance(x, bool) or not isinstance(x, (int, np.integer))]
            if bad or not given:
                raise ValueError(
                    f"layer={layer!r}; expected an int, a list of ints or None (every layer)."
                )
            layers = [int(x) for x in given]
            missing = [x for x in layers if x not in found]
            if missing:
                raise ValueError(
                    f"layer={layer} asks for layer(s) {missing} but the cache only has "
                    f"patterns for layers {sorted(found)}. Fix: pick from those, or re-run "
                    "run_with_cache with those layers' hook_pattern names included."
                )
        per_layer = []
        for layer in layers:
            pattern = _buffers.to_numpy(cache[found[layer]], name=found[layer])
            if pattern.ndim == 4:
                if not -pattern.shape[0] <= batch_index < pattern.shape[0]:
                    raise ValueError(
                        f"batch_index={batch_index} but {found[layer]} has batch size "
                        f"{pattern.shape[0]} (shape {tuple(pattern.shape)}). "
                        f"Fix: pass batch_index in 0..{pattern.shape[0] - 1}."
                    )
                pattern = pattern[batch_index]
            elif pattern.ndim != 3:
                raise ValueError(
                    f"{found[layer]} has shape {tuple(pattern.shape)}; expected "
                    "[batch, head, query_pos, key_pos] or [head, query_pos, key_pos]."
                )
            per_layer.append(pattern)
        shapes = {p.shape for p in per_layer}
        if len(shapes) > 1:
            raise ValueError(
                f"the cached patterns differ in shape across layers {layers}: "
                f"{[tuple(p.shape) for p in per_layer]}; expected one [head, query_pos, "
                "key_pos] shape for all. Fix: pass layer= with layers of one model and run."
            )
        kwargs.setdefault("layer_labels", [f"L{layer}" for layer in layers])
        return cls(np.stack(per_layer), tokens, **kwargs)

    @traitlets.validate("selected")
    def _validate_selected(self, proposal: Any) -> list[int]:
        try:
            return _check_selected(proposal["value"], self.n_layers, self.n_heads)
        except ValueError as err:
            raise traitlets.TraitError(str(err)) from None

    def _static_figure(self) -> _static.Figure:
        return _svg_grids.attention_figure(self)

    def pattern(self) -> np.ndarray:
        """The whole pattern, ``[layer, head, q, k]``: as the browser sees it (decoded payload)
        when it is sent whole, else the float32 copy kept in Python (read-only)."""
        if self._full is not None:
            return self._full
        n = self.n_tokens
        return _buffers.decode(self.attention, self.dtype, (self.n_layers, self.n_heads, n, n))

    def thumbnails(self) -> np.ndarray:
        """What the thumbnail grid is drawn from, ``[layer, head, side, side]`` (decoded): the
        whole pattern when it is sent whole, else the max-pooled thumbnails."""
        side = self.n_tokens
        if self.thumb_stride:
            side = -(-self.n_tokens // self.thumb_stride)
        shape = (self.n_layers, self.n_heads, side, side)
        return _buffers.decode(self.attention, self.dtype, shape)

    def head_pattern(self, layer: int, head: int) -> np.ndarray:
        """One head's ``[query_pos, key_pos]`` pattern, as the focused view shows it: float32
        as given when the pattern is sent as thumbnails (this is what the view fetches over
        the comm), else the decoded payload."""
        ok = all(
            isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in (layer, head)
        )
        if not ok or not (0 <= layer < self.n_layers and 0 <= head < self.n_heads):
            raise ValueError(
                f"layer={layer!r}, head={head!r} is not a head of this widget: it has "
                f"{self.n_layers} layers and {self.n_heads} heads, so layer must be an int in "
                f"0..{self.n_layers - 1} and head an int in 0..{self.n_heads - 1}."
            )
        if self._full is not None:
            return np.array(self._full[layer, head], np.float32)
        return self.pattern()[layer, head]

    def _on_request(self, _widget: Any, content: Any, _received: Any) -> None:
        """Answer the view's ``{"type": "head", "layer": l, "head": h}`` message with that
        head's float32 pattern (one buffer), or ``{"type": "error", "message": ...}``."""
        if not isinstance(content, dict) or content.get("type") != "head":
            return
        layer, head = content.get("layer"), content.get("head")
        try:
            data = self.head_pattern(layer, head)
        except ValueError as err:
            self.send({"type": "error", "layer": layer, "head": head, "message": str(err)})
            return
        reply = {"type": "head", "layer": layer, "head": head, "dtype": "float32"}
        self.send(reply, [_buffers.encode(data, "float32")])

    def __repr__(self) -> str:
        thumbs = f", thumb_stride={self.thumb_stride}" if self.thumb_stride else ""
        return (
            f"AttentionPatterns(n_layers={self.n_layers}, n_heads={self.n_heads}, "
            f"n_tokens={self.n_tokens}, dtype={self.dtype!r}{thumbs}, "
            f"selected={list(self.selected)})"
        )


def _as_pattern(attention: Any) -> np.ndarray:
    """``attention`` as a float32 ``[layer, head, query_pos, key_pos]`` array, validated."""
    pattern = _buffers.to_numpy(attention, name="attention")
    if pattern.ndim == 3:
        pattern = pattern[None]
    if pattern.ndim != 4:
        raise ValueError(
            f"attention has shape {tuple(pattern.shape)} ({pattern.ndim} dims); expected "
            "[layer, head, query_pos, key_pos] or [head, query_pos, key_pos]. Fix: for a "
            "cached [batch, head, q, k] pattern pass pattern[0], or use "
            "AttentionPatterns.from_cache(cache, tokens)."
        )
    _, _, n_q, n_k = pattern.shape
    if n_q != n_k:
        raise ValueError(
            f"attention has shape {tuple(pattern.shape)} with {n_q} query positions but "
            f"{n_k} key positions; expected a square [query_pos, key_pos] pattern of one "
            "prompt attending to itself (hook_pattern)."
        )
    if pattern.size == 0:
        raise ValueError(f"attention has shape {tuple(pattern.shape)}, which holds no values.")
    return pattern


def _check_tokens(tokens: Sequence[str], shape: tuple[int, ...]) -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise ValueError(
            f"tokens must be a list of str, one per position, got {type(tokens).__name__}. "
            "Fix: pass model.to_str_tokens(prompt)."
        )
    bad = [(i, t) for i, t in enumerate(tokens) if not isinstance(t, str)]
    if bad:
        i, t = bad[0]
        raise ValueError(
            f"tokens must all be str, but tokens[{i}] is {type(t).__name__} ({t!r}) and "
            f"{len(bad)} of {len(tokens)} are not str. Fix: pass model.to_str_tokens(prompt), "
            "not token ids."
        )
    n_k = shape[-1]
    if len(tokens) != n_k:
        raise ValueError(
            f"attention has {n_k} key positions but {len(tokens)} tokens were given "
            f"(attention shape {tuple(shape)}, tokens shape ({len(tokens)},)); expected one "
            "token per position. Fix: pass the str tokens of the same prompt the pattern "
            "was computed on (including any BOS token)."
        )
    return list(tokens)


def _check_range(pattern: np.ndarray) -> None:
    found = _pooling.finite_range(pattern)  # layer by layer: no second 1 GiB copy
    if found is None:
        return
    lo, hi = found
    if lo < -_RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
        raise ValueError(
            f"attention values range over [{lo:.3g}, {hi:.3g}]; expected probabilities in "
            "[0, 1]. Fix: pass the post-softmax pattern (blocks.{l}.attn.hook_pattern), not "
            "the scores (hook_attn_scores)."
        )


def _check_selected(selected: Sequence[int], n_layers: int, n_heads: int) -> list[int]:
    value = list(selected)
    if len(value) != 2 or not all(isinstance(v, (int, np.integer)) for v in value):
        raise ValueError(
            f"selected must be [layer, head] (two ints), got {value!r}. Fix: e.g. [0, 0]."
        )
    layer, head = (int(v) for v in value)
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise ValueError(
            f"selected={value!r} is out of range: this widget has {n_layers} layers and "
            f"{n_heads} heads, so layer must be in 0..{n_layers - 1} and head in 0..{n_heads - 1}."
        )
    return [layer, head]


def _check_layer_labels(labels: Sequence[str] | None, n_layers: int) -> list[str]:
    if labels is None:
        return [f"L{layer}" for layer in range(n_layers)]
    labels = [str(label) for label in labels]
    if len(labels) != n_layers:
        raise ValueError(
            f"layer_labels has {len(labels)} labels but attention has {n_layers} layers; "
            "expected one label per layer."
        )
    return labels


def _preview(names: list[str], limit: int = 6) -> str:
    if not names:
        return "no entries"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(repr(n) for n in names[:limit]) + more
