"""Static pictures of the widgets, for every place where the widget's JavaScript cannot run.

GitHub, nbviewer, a PDF or markdown export and ``nbconvert --to html`` without widget state
show a notebook's outputs without the widget manager; without a static rendering they show
nothing where the figure was. :class:`StaticFallback` (mixed into every widget class) adds an
``image/svg+xml`` rendering of the widget's initial state to its mimebundle, next to the
widget view and the text repr, and gives the widgets ``save(path)`` (``.svg``, ``.png``,
``.html``).

A picture is first laid out as a :class:`Figure`, a flat list of rectangles, texts, lines and
rasters in pixel units; ``figure_to_svg`` serialises it and ``_svg_png.figure_to_png`` draws
the same list with Pillow, so the two files show one layout. The per-widget layouts live in
``_svg_grids`` (Heatmap, AttentionPatterns, LogitLens) and ``_svg_tokens`` (TokenActivations,
FeatureDashboard).

Rules every picture keeps: each string is user data and is XML-escaped (tokens such as
``"<b>"`` stay text); text is at least 11 px; a label cut to fit ends in an ellipsis and
carries its full text in an SVG ``<title>`` (the hover tooltip of SVG viewers); colours come
from ``static/colormaps.json``, the one table the TypeScript side reads too.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from mechscope.widgets._svg_figure import INK, RGB, Figure, figure_to_svg

COLORMAPS = Path(__file__).parent / "static" / "colormaps.json"
SVG_MIME = "image/svg+xml"
SUFFIXES = (".svg", ".png", ".html")
NONFINITE_RGB = (255, 0, 255)  # NaN/Inf: magenta, far from every colour of both maps


# ---- colours ---------------------------------------------------------------------------------


@functools.cache
def _float_tables() -> dict[str, np.ndarray]:
    raw = json.loads(COLORMAPS.read_text())
    return {name: np.asarray(raw[name], np.float64) for name in ("viridis", "rdbu")}


def _byte(x: np.ndarray) -> np.ndarray:
    """Channel floats in [0, 1] to bytes as JavaScript's ``Math.round(x * 255)``."""
    return np.floor(np.asarray(x) * 255 + 0.5).clip(0, 255).astype(np.uint8)


@functools.cache
def colormaps() -> dict[str, np.ndarray]:
    """The shared tables as uint8 ``[n, 3]``: ``viridis`` (256 entries, matplotlib's table)
    and ``rdbu`` (ColorBrewer's 11-class RdBu, blue = negative first, red = positive last)."""
    return {name: _byte(table) for name, table in _float_tables().items()}


def viridis_rgb(t: Any) -> np.ndarray:
    """``[..., 3]`` uint8 viridis colours of ``t`` in [0, 1] (clipped): entry
    ``floor(t * 255 + 0.5)`` of the table; NaN/Inf magenta."""
    t = np.asarray(t, np.float64)
    finite = np.isfinite(t)
    idx = np.floor(np.clip(np.where(finite, t, 0.0), 0.0, 1.0) * 255 + 0.5).astype(np.int64)
    out = colormaps()["viridis"][idx]
    out[~finite] = NONFINITE_RGB
    return out


def diverging_rgb(t: Any) -> np.ndarray:
    """``[..., 3]`` uint8 RdBu colours of ``t`` in [-1, 1] (clipped): -1 darkest blue, 0 the
    middle anchor (near white), +1 darkest red; linear between the 11 anchors; NaN/Inf magenta."""
    t = np.asarray(t, np.float64)
    finite = np.isfinite(t)
    table = _float_tables()["rdbu"]  # interpolated as floats, then rounded: as the widgets
    p = (np.clip(np.where(finite, t, 0.0), -1.0, 1.0) + 1.0) * 0.5 * (len(table) - 1)
    k = np.minimum(np.floor(p).astype(np.int64), len(table) - 2)
    f = (p - k)[..., None]
    out = _byte(table[k] + (table[k + 1] - table[k]) * f)
    out[~finite] = NONFINITE_RGB
    return out


def activation_rgb(values: Any, scale_max: float, signed: bool) -> np.ndarray:
    """Colours of activations: ``value / scale_max`` on the diverging map (signed data) or on
    its white-to-red half (non-negative data), white at zero either way."""
    v = np.asarray(values, np.float64)
    t = v / scale_max if scale_max > 0 else np.where(np.isfinite(v), 0.0, v)
    return diverging_rgb(t if signed else np.clip(t, 0.0, 1.0))


def activation_scale(values: Any) -> tuple[float, bool]:
    """``(max |value|, any value < 0)`` over the finite values."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return (float(np.abs(v).max()) if v.size else 0.0), bool((v < 0).any())


def text_on(rgb: Any) -> RGB:
    """Ink for text on a cell of colour ``rgb``: white or near-black, whichever has the higher
    WCAG contrast (the widgets' ``lightTextOn``)."""
    s = np.asarray(rgb, np.float64) / 255
    lin = np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)
    lum = float(lin @ [0.2126, 0.7152, 0.0722])
    dark = 0.0056  # luminance of #111
    return (255, 255, 255) if 1.05 / (lum + 0.05) > (lum + 0.05) / (dark + 0.05) else INK


# ---- the mixin -------------------------------------------------------------------------------


class StaticFallback:
    """Adds a static SVG picture to a widget's mimebundle, and ``save(path)``.

    A widget class lists this before ``anywidget.AnyWidget`` and implements
    ``_static_figure() -> Figure``: the picture of what its view shows in its current state.
    """

    def _static_figure(self) -> Figure:  # pragma: no cover - every widget overrides it
        raise NotImplementedError

    def _render_svg(self) -> str:
        return figure_to_svg(self._static_figure())

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data) if data else {"text/plain": repr(self)}
        include, exclude = kwargs.get("include"), kwargs.get("exclude") or ()
        if SVG_MIME in exclude or (include and SVG_MIME not in include):
            return data, meta
        try:
            data[SVG_MIME] = self._render_svg()
        except Exception as err:  # a broken picture must not hide the live widget
            warnings.warn(
                f"{type(self).__name__}: the static SVG fallback failed ({type(err).__name__}: "
                f"{err}); the notebook will show nothing for it where widgets do not run.",
                stacklevel=2,
            )
        return data, meta

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the widget's static picture to ``path``: ``.svg``, ``.png`` (needs Pillow)
        or ``.html`` (a standalone page with the SVG inline). Returns the path written.

        Example::

            Heatmap(results).save("patching.svg")
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"path must be a str or pathlib.Path, got {type(path).__name__} ({path!r}). "
                "Fix: e.g. widget.save('figure.svg')."
            )
        out = Path(path)
        suffix = out.suffix.lower()
        if suffix not in SUFFIXES:
            raise ValueError(
                f"path={str(path)!r} has suffix {out.suffix or '(none)'!r}; expected one of "
                f"{', '.join(SUFFIXES)}. Fix: e.g. widget.save({str(out.with_suffix('.svg'))!r})."
            )
        fig = self._static_figure()
        if suffix == ".png":
            from mechscope.widgets import _svg_png

            _svg_png.figure_to_png(fig, out)
        elif suffix == ".svg":
            out.write_text(figure_to_svg(fig), encoding="utf-8")
        else:
            name = escape(fig.label or type(self).__name__)
            out.write_text(
                f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{name}</title></head>'
                f"<body>\n{figure_to_svg(fig)}\n</body></html>\n",
                encoding="utf-8",
            )
        return out
