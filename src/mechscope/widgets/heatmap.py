"""Heatmap: labelled grids of numbers (head scores, patching results) with one colour scale.

The widget shows one or more panels, each a ``[rows, cols]`` grid with labelled axes:

- head scores, ``[layer, head]`` (:meth:`Heatmap.from_head_scores`), linked to an
  :class:`~mechscope.widgets.AttentionPatterns` widget by :func:`link_heads` so that a click
  on a head in one focuses it in the other;
- activation-patching results, ``[layer, pos]`` or ``[layer, head]``, several panels (e.g.
  resid / attn / mlp) side by side.

Colours: with ``center`` a number (default 0) a diverging map, white at ``center``, blue
below, red above, symmetric (``center +- m`` with ``m`` the largest ``|value - center|``);
with ``center=None`` the sequential viridis map over ``[min, max]``. Either way ONE scale is
computed over every panel, so colours compare across panels; the legend prints its limits.
NaN/Inf cells are magenta with a cross, never a silent zero.

Hovering a cell shows its exact value and labels; clicking it sets ``selected = [panel, row,
col]``, which Python can observe (setting it from Python highlights that cell).

The values travel as one float32 binary buffer (see ``_buffers``), never as JSON floats.
TypeScript side: ``widgets/heatmap/index.ts``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import numpy as np
import traitlets

from mechscope.widgets import _buffers, _static, _svg_grids

if TYPE_CHECKING:
    from mechscope.widgets.attention import AttentionPatterns

_STATIC = Path(__file__).parent / "static"


class Heatmap(_static.StaticFallback, anywidget.AnyWidget):
    """Labelled heatmap of ``[rows, cols]`` values, or several panels sharing one scale.

    Args:
        values: ``[rows, cols]`` or ``[panels, rows, cols]`` numbers (torch Tensor or numpy
            array). NaN/Inf are allowed and shown as marked cells.
        row_labels: one label per row (default ``"0"``, ``"1"``, ...).
        col_labels: one label per column (default ``"0"``, ``"1"``, ...); tokens are fine,
            they are shown as text.
        panel_titles: one title per panel (default: none for one panel, ``"panel 0"``, ...
            for several).
        title: shown above the widget.
        center: white point of the diverging map (default 0.0); ``None`` for the sequential
            map over ``[min, max]`` (for scores that are all non-negative, e.g. in [0, 1]).
        row_title, col_title: axis names, e.g. ``"layer"``, ``"pos"``.
        selected: ``[panel, row, col]`` (or ``[row, col]`` for one panel) to highlight first;
            default none.
        value_label: what a value is, e.g. ``"logit diff recovered"``; shown in the legend
            and the hover readout.

    Example::

        w = Heatmap(results, row_labels=[f"L{l}" for l in range(n_layers)],
                    col_labels=str_tokens, panel_titles=["resid", "attn", "mlp"],
                    row_title="layer", col_title="pos")
        w.observe(lambda change: print(change["new"]), names="selected")
    """

    _esm = _STATIC / "heatmap.js"
    _css = _STATIC / "heatmap.css"

    n_panels = traitlets.Int(0).tag(sync=True)
    n_rows = traitlets.Int(0).tag(sync=True)
    n_cols = traitlets.Int(0).tag(sync=True)
    # [panel, row, col] float32, little-endian, C order (see _buffers).
    values = traitlets.Bytes(b"").tag(sync=True)
    row_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    col_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    panel_titles = traitlets.List(traitlets.Unicode()).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    row_title = traitlets.Unicode("").tag(sync=True)
    col_title = traitlets.Unicode("").tag(sync=True)
    value_label = traitlets.Unicode("").tag(sync=True)
    center = traitlets.Float(0.0, allow_none=True).tag(sync=True)
    # Colour scale limits over every panel; computed here so that Python and the legend agree.
    vmin = traitlets.Float(0.0).tag(sync=True)
    vmax = traitlets.Float(1.0).tag(sync=True)
    selected = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    # column highlighted across linked views, -1 none; two-way (hover sets it).
    highlight_token = traitlets.Int(-1).tag(sync=True)

    def __init__(
        self,
        values: Any,
        *,
        row_labels: Sequence[Any] | None = None,
        col_labels: Sequence[Any] | None = None,
        panel_titles: Sequence[Any] | None = None,
        title: str = "",
        center: float | None = 0.0,
        row_title: str = "",
        col_title: str = "",
        selected: Sequence[int] | None = None,
        value_label: str = "",
        vmin: float | None = None,
        vmax: float | None = None,
    ) -> None:
        arr, given = _as_values(values)
        n_panels, n_rows, n_cols = arr.shape
        center = _buffers.check_center(center)
        vmin, vmax = _fixed_scale(color_scale(arr, center), vmin, vmax, center)
        super().__init__(
            n_panels=n_panels,
            n_rows=n_rows,
            n_cols=n_cols,
            values=_buffers.encode(arr, "float32"),
            row_labels=_check_labels(row_labels, n_rows, "row_labels", "rows", given),
            col_labels=_check_labels(col_labels, n_cols, "col_labels", "cols", given),
            panel_titles=_check_panel_titles(panel_titles, n_panels, given),
            title=str(title),
            center=center,
            vmin=vmin,
            vmax=vmax,
            row_title=str(row_title),
            col_title=str(col_title),
            value_label=str(value_label),
            selected=_check_selected(selected, arr.shape),
        )

    @classmethod
    def from_head_scores(cls, scores: Any, **kwargs: Any) -> Heatmap:
        """A ``[layer, head]`` heatmap of per-head scores (e.g. ``mechscope.head_scores``).

        ``scores``: a :class:`~mechscope.heads.HeadScoresResult` (one panel per score, titled
        by its labels), one ``[layer, head]`` table, or ``[panel, layer, head]`` tables.
        Rows are labelled ``L0``.., columns ``H0``.., axes ``layer`` / ``head``, and the map
        is sequential (``center=None``): scores lie in [0, 1], there is no meaningful zero to
        diverge from. Any keyword argument of the constructor overrides these defaults.

        Example::

            hm = Heatmap.from_head_scores(mechscope.head_scores(model).induction,
                                          title="induction score")
        """
        if hasattr(scores, "labels") and hasattr(scores, "values"):  # a HeadScoresResult
            kwargs.setdefault("panel_titles", list(scores.labels))
            scores = scores.values
        arr = _buffers.to_numpy(scores, name="scores")
        if arr.ndim not in (2, 3):
            raise ValueError(
                f"scores has shape {tuple(arr.shape)} ({arr.ndim} dims); expected [layer, head] "
                "(or [panel, layer, head]). Fix: pass mechscope.head_scores(model) or one table "
                "of it, e.g. mechscope.head_scores(model).induction."
            )
        n_layers, n_heads = arr.shape[-2:]
        kwargs.setdefault("row_labels", [f"L{layer}" for layer in range(n_layers)])
        kwargs.setdefault("col_labels", [f"H{head}" for head in range(n_heads)])
        kwargs.setdefault("row_title", "layer")
        kwargs.setdefault("col_title", "head")
        kwargs.setdefault("center", None)
        kwargs.setdefault("value_label", "score")
        if kwargs["center"] is None:  # a head scoring 0.3 should look like 0.3, not "bright"
            kwargs.setdefault("vmin", 0.0)
            kwargs.setdefault("vmax", 1.0)
        return cls(arr, **kwargs)

    @traitlets.validate("selected")
    def _validate_selected(self, proposal: Any) -> list[int]:
        try:
            return _check_selected(proposal["value"], (self.n_panels, self.n_rows, self.n_cols))
        except ValueError as err:
            raise traitlets.TraitError(str(err)) from None

    def _static_figure(self) -> _static.Figure:
        return _svg_grids.heatmap_figure(self)

    def values_array(self) -> np.ndarray:
        """The values as the browser sees them (decoded payload), ``[panel, row, col]``."""
        shape = (self.n_panels, self.n_rows, self.n_cols)
        return _buffers.decode(self.values, "float32", shape)

    def __repr__(self) -> str:
        center = "None" if self.center is None else f"{self.center:g}"
        return (
            f"Heatmap(n_panels={self.n_panels}, n_rows={self.n_rows}, n_cols={self.n_cols}, "
            f"center={center}, scale=[{self.vmin:.4g}, {self.vmax:.4g}], "
            f"selected={list(self.selected)})"
        )


def _fixed_scale(
    auto: tuple[float, float], vmin: float | None, vmax: float | None, center: float | None
) -> tuple[float, float]:
    """The data's scale with user limits applied. Fixed limits only make sense for the
    sequential map; a diverging map is always symmetric about ``center``."""
    if vmin is None and vmax is None:
        return auto
    if center is not None:
        raise ValueError(
            "vmin/vmax fix the limits of the sequential map; pass center=None with them "
            f"(got center={center}). A diverging map is always symmetric about its center."
        )
    lo = auto[0] if vmin is None else float(vmin)
    hi = auto[1] if vmax is None else float(vmax)
    if not lo < hi:
        raise ValueError(f"vmin must be below vmax, got vmin={lo}, vmax={hi}.")
    return lo, hi


def color_scale(arr: np.ndarray, center: float | None) -> tuple[float, float]:
    """``(vmin, vmax)`` of the one colour scale shared by every panel of ``arr``.

    Diverging (``center`` a number): ``center -+ m`` with ``m = max |value - center|`` over
    the finite values, so equal distances from the centre get equally strong colours.
    Sequential (``center=None``): finite ``(min, max)``. NaN/Inf never set the scale; with no
    finite value at all the scale is ``(center, center)`` or ``(0, 0)``.
    """
    finite = arr[np.isfinite(arr)].astype(np.float64)
    if center is None:
        if finite.size == 0:
            return 0.0, 0.0
        return float(finite.min()), float(finite.max())
    m = float(np.abs(finite - center).max()) if finite.size else 0.0
    return center - m, center + m


def link_heads(heatmap: Heatmap, attention: AttentionPatterns) -> Callable[[], None]:
    """Link a ``[layer, head]`` heatmap and an AttentionPatterns widget, both ways.

    Clicking cell ``(row=layer, col=head)`` of ``heatmap`` (any panel) focuses that head in
    ``attention`` (``attention.selected = [layer, head]``); clicking a head in ``attention``
    selects its cell in ``heatmap`` (in the panel selected last, else panel 0). On linking,
    a selection already made in the heatmap is shown in ``attention``; otherwise the head
    ``attention`` focuses is selected in the heatmap. Rows and columns index the attention
    widget's own layers and heads (``from_cache(..., layer=[...])`` renumbers them).

    The link lives in the kernel (traitlets observers), so it works in any frontend.

    Returns:
        a function that removes the link (calling it twice is harmless).

    Example::

        hm = Heatmap.from_head_scores(scores.induction)
        attn = AttentionPatterns.from_cache(cache, str_tokens)
        unlink = link_heads(hm, attn)
    """
    from mechscope.widgets.attention import AttentionPatterns

    if not isinstance(heatmap, Heatmap):
        raise TypeError(
            f"heatmap must be a Heatmap, got {type(heatmap).__name__}. Fix: "
            "link_heads(Heatmap.from_head_scores(scores), attention_widget)."
        )
    if not isinstance(attention, AttentionPatterns):
        raise TypeError(
            f"attention must be an AttentionPatterns widget, got {type(attention).__name__}. "
            "Fix: link_heads(heatmap, AttentionPatterns.from_cache(cache, str_tokens))."
        )
    grid = (heatmap.n_rows, heatmap.n_cols)
    heads = (attention.n_layers, attention.n_heads)
    if grid != heads:
        raise ValueError(
            f"the heatmap is {grid[0]} rows x {grid[1]} cols but the attention widget has "
            f"{heads[0]} layers x {heads[1]} heads; expected one row per layer and one column "
            "per head. Fix: build the heatmap from the same model's [layer, head] scores, and "
            "show the same layers in both (AttentionPatterns.from_cache(..., layer=...))."
        )

    def heatmap_changed(change: dict[str, Any]) -> None:
        sel = list(change["new"])
        if len(sel) == 3 and list(attention.selected) != sel[1:]:
            attention.selected = sel[1:]

    def attention_changed(change: dict[str, Any]) -> None:
        layer, head = change["new"]
        current = list(heatmap.selected)
        panel = current[0] if current else 0
        if current != [panel, layer, head]:
            heatmap.selected = [panel, layer, head]

    if heatmap.selected:
        heatmap_changed({"new": heatmap.selected})
    else:
        attention_changed({"new": attention.selected})
    heatmap.observe(heatmap_changed, names="selected")
    attention.observe(attention_changed, names="selected")
    linked = [True]

    def unlink() -> None:
        if linked[0]:
            linked[0] = False
            heatmap.unobserve(heatmap_changed, names="selected")
            attention.unobserve(attention_changed, names="selected")

    return unlink


def _as_values(values: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """``values`` as a float32 ``[panel, row, col]`` array, validated; and its given shape."""
    arr = _buffers.to_numpy(values, name="values")
    given = tuple(arr.shape)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(
            f"values has shape {tuple(arr.shape)} ({arr.ndim} dims); expected [rows, cols] "
            "or [panels, rows, cols]. Fix: index or reshape to 2 or 3 dims, e.g. "
            "values.reshape(n_layers, -1) or torch.stack([resid, attn, mlp])."
        )
    if arr.size == 0:
        raise ValueError(f"values has shape {tuple(arr.shape)}, which holds no values.")
    return np.ascontiguousarray(arr), given


def _check_labels(
    labels: Sequence[Any] | None, n: int, name: str, what: str, shape: tuple[int, ...]
) -> list[str]:
    if labels is None:
        return [str(i) for i in range(n)]
    if isinstance(labels, str) or not isinstance(labels, (Sequence, np.ndarray)):
        raise ValueError(
            f"{name} must be a list of str, one per {what[:-1]}, got {type(labels).__name__}"
            f"{f' ({labels!r})' if isinstance(labels, str) else ''}. Fix: e.g. {name}="
            f"{[str(i) for i in range(min(n, 3))]}{'...' if n > 3 else ''}."
        )
    out = [label if isinstance(label, str) else str(label) for label in labels]
    if len(out) != n:
        raise ValueError(
            f"{name} has {len(out)} labels but values has {n} {what} (values shape "
            f"{_shape_text(shape)}); expected one label per {what[:-1]}. Fix: pass {n} labels, "
            f"or leave {name} out for index labels."
        )
    return out


def _check_panel_titles(titles: Sequence[Any] | None, n: int, shape: tuple[int, ...]) -> list[str]:
    if titles is None:
        return [""] if n == 1 else [f"panel {p}" for p in range(n)]
    if isinstance(titles, str):
        titles = [titles]
    out = [str(t) for t in titles]
    if len(out) != n:
        raise ValueError(
            f"panel_titles has {len(out)} titles but values has {n} panel(s) (values shape "
            f"{_shape_text(shape)}); expected one title per panel. Fix: pass {n} titles, or "
            "stack one [rows, cols] array per title into values."
        )
    return out


def _check_selected(selected: Sequence[int] | None, shape: tuple[int, int, int]) -> list[int]:
    if selected is None:
        return []
    value = list(selected)
    n_panels, n_rows, n_cols = shape
    if not value:
        return []
    ok_type = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    if len(value) == 2 and ok_type and n_panels == 1:
        value = [0, *value]
    if len(value) != 3 or not ok_type:
        raise ValueError(
            f"selected must be [panel, row, col] (three ints; [row, col] for one panel) or "
            f"None, got {selected!r}. Fix: e.g. selected=[0, 0, 0]."
        )
    p, r, c = (int(v) for v in value)
    if not (0 <= p < n_panels and 0 <= r < n_rows and 0 <= c < n_cols):
        raise ValueError(
            f"selected={list(selected)!r} is out of range: this heatmap has {n_panels} panel(s) "
            f"of {n_rows} rows x {n_cols} cols, so panel must be in 0..{n_panels - 1}, row in "
            f"0..{n_rows - 1} and col in 0..{n_cols - 1}."
        )
    return [p, r, c]


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"
