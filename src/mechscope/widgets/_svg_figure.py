"""The drawing list of a static widget picture, and its SVG serialisation.

A :class:`Figure` is a flat list of rectangles, texts, lines and rasters in px units, drawn in
order over a white background. ``figure_to_svg`` writes it as SVG; ``_svg_png.figure_to_png``
draws the same list with Pillow. Every string is user data: ``Figure.text`` makes control
characters visible, cuts it to fit (full text in a ``<title>``), and the serialiser
XML-escapes every string it writes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

MIN_FONT = 11  # px; nothing smaller is legible on a laptop screen or in a PDF
FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
CHAR_EM = 0.6  # advance of one monospace character, in em (DejaVu Sans Mono: 0.602)
INK = (17, 17, 17)  # the widgets' dark text, #111
MUTED = (90, 90, 90)
GRID = (200, 200, 200)

RGB = tuple[int, int, int]


def hex_color(rgb: Any) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


# ---- text ------------------------------------------------------------------------------------


def display_text(s: Any) -> str:
    """A string as drawn: newline and tab made visible (as the widgets' ``displayToken``),
    other control characters and lone surrogates (invalid in XML) spelled out."""
    out = []
    for ch in str(s):
        if ch == "\n":
            out.append("\u21b5")
        elif ch == "\t":
            out.append("\u2192")
        elif ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF or ch in "\ufffe\uffff":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else "\ufffd")
        else:
            out.append(ch)
    return "".join(out)


def text_width(s: str, size: float) -> float:
    """Estimated width in px of ``s`` in the monospace font (wide East Asian characters
    count twice)."""
    cols = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)
    return cols * CHAR_EM * size


def fit(s: str, max_width: float | None, size: float) -> str:
    """``s`` cut (with an ellipsis) to fit ``max_width`` px; unchanged when it fits."""
    if max_width is None or text_width(s, size) <= max_width:
        return s
    keep = s
    while keep and text_width(keep + "\u2026", size) > max_width:
        keep = keep[:-1]
    return keep + "\u2026"


def fixed_decimals(values: Any, digits: int = 3) -> list[str]:
    """Numbers printed with ONE number of decimals (``digits`` significant digits of the
    largest), so a column of them lines up: ``0.253, 0.234, -0.420``; NaN/Inf spelled out."""
    v = np.asarray(values, np.float64).ravel()
    finite = v[np.isfinite(v)]
    top = float(np.abs(finite).max()) if finite.size else 0.0
    if top and not 1e-3 <= top < 1e5:
        fmt = "{:.2e}"
    else:
        decimals = 0 if top == 0 else int(np.clip(digits - 1 - np.floor(np.log10(top)), 0, 6))
        fmt = "{:." + str(decimals) + "f}"
    out = []
    for x in v:
        if np.isnan(x):
            out.append("NaN")
        elif not np.isfinite(x):
            out.append("Inf" if x > 0 else "-Inf")
        else:
            out.append(fmt.format(0.0 if x == 0 else x).replace("-", "\u2212"))
    return out


def value_text(v: float) -> str:
    """A value as the widgets' readouts print it (``formatValue``): 4 significant digits,
    exponent notation below 1e-3 or from 1e4, NaN/Inf spelled out."""
    v = float(v)
    if not np.isfinite(v):
        return "NaN" if np.isnan(v) else ("Inf" if v > 0 else "-Inf")
    if v == 0:
        return "0"
    if not 1e-3 <= abs(v) < 1e4:
        return f"{v:.2e}"
    return repr(float(f"{v:.4g}")).removesuffix(".0")


# ---- the figure ------------------------------------------------------------------------------


@dataclass
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: RGB | None = None
    stroke: RGB | None = None
    stroke_width: float = 1.0
    cls: str | None = None
    title: str | None = None


@dataclass
class Text:
    x: float
    y: float  # baseline
    text: str  # as drawn (display_text applied, cut to fit)
    size: float
    fill: RGB = INK
    anchor: str = "start"  # start | middle | end
    bold: bool = False
    rotate: bool = False  # read bottom to top, starting at (x, y)
    title: str | None = None
    underline: bool = False


@dataclass
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: RGB = INK
    width: float = 1.0


@dataclass
class Raster:
    """A block of ``[rows, cols]`` cells of ``cell_w`` x ``cell_h`` px (thumbnails)."""

    x: float
    y: float
    rgb: np.ndarray  # [rows, cols, 3] uint8
    cell_w: float
    cell_h: float
    cls: str | None = None
    title: str | None = None


@dataclass
class Figure:
    """A picture in px: items drawn in order over a white background."""

    width: float
    height: float
    label: str = ""
    items: list[Any] = field(default_factory=list)

    def rect(self, x: float, y: float, w: float, h: float, **kw: Any) -> None:
        self.items.append(Rect(x, y, w, h, **kw))

    def text(
        self,
        x: float,
        y: float,
        s: Any,
        *,
        size: float = 12,
        max_width: float | None = None,
        title: str | None = None,
        **kw: Any,
    ) -> float:
        """Add ``s`` (user data: shown via ``display_text``, cut to ``max_width``); returns
        the estimated width drawn."""
        if size < MIN_FONT:
            raise ValueError(f"size={size} px is below the {MIN_FONT} px minimum for text.")
        full = display_text(s)
        shown = fit(full, max_width, size)
        if shown != full and title is None:
            title = full
        self.items.append(Text(x, y, shown, size, title=title, **kw))
        return text_width(shown, size)

    def line(self, x1: float, y1: float, x2: float, y2: float, **kw: Any) -> None:
        self.items.append(Line(x1, y1, x2, y2, **kw))

    def raster(
        self, x: float, y: float, rgb: np.ndarray, cell_w: float, cell_h: float, **kw: Any
    ) -> None:
        self.items.append(Raster(x, y, np.asarray(rgb, np.uint8), cell_w, cell_h, **kw))


def _n(x: float) -> str:
    """A coordinate, compactly: at most one decimal, no trailing zeros."""
    s = f"{x:.1f}"
    return s[:-2] if s.endswith(".0") else s


def _attr(s: str) -> str:
    return escape(s, {'"': "&quot;"})


def _title(title: str | None) -> str:
    return f"<title>{escape(title)}</title>" if title else ""


def _svg_item(item: Any) -> str:
    if isinstance(item, Rect):
        paint = f' fill="{hex_color(item.fill)}"' if item.fill is not None else ' fill="none"'
        if item.stroke is not None:
            paint += f' stroke="{hex_color(item.stroke)}" stroke-width="{_n(item.stroke_width)}"'
        cls = f' class="{_attr(item.cls)}"' if item.cls else ""
        head = f'<rect{cls} x="{_n(item.x)}" y="{_n(item.y)}" width="{_n(item.w)}" height="{_n(item.h)}"{paint}'
        return f"{head}>{_title(item.title)}</rect>" if item.title else head + "/>"
    if isinstance(item, Text):
        attrs = f'x="{_n(item.x)}" y="{_n(item.y)}" font-size="{_n(item.size)}"'
        if item.fill != INK:
            attrs += f' fill="{hex_color(item.fill)}"'
        if item.anchor != "start":
            attrs += f' text-anchor="{item.anchor}"'
        if item.bold:
            attrs += ' font-weight="bold"'
        if item.underline:
            attrs += ' text-decoration="underline"'
        if item.rotate:
            attrs += f' transform="rotate(-90 {_n(item.x)} {_n(item.y)})"'
        return f"<text {attrs}>{escape(item.text)}{_title(item.title)}</text>"
    if isinstance(item, Line):
        return (
            f'<line x1="{_n(item.x1)}" y1="{_n(item.y1)}" x2="{_n(item.x2)}" y2="{_n(item.y2)}" '
            f'stroke="{hex_color(item.stroke)}" stroke-width="{_n(item.width)}"/>'
        )
    if isinstance(item, Raster):
        return _svg_raster(item)
    raise TypeError(f"unknown figure item {type(item).__name__}")


def _svg_raster(item: Raster) -> str:
    """One background rect in the commonest colour, then one path per other colour, in cell
    units under a scale transform: a few bytes a run of equal cells."""
    rows, cols, _ = item.rgb.shape
    packed = (item.rgb.astype(np.int64) * np.array([65536, 256, 1])).sum(-1)  # [rows, cols]
    colours, counts = np.unique(packed, return_counts=True)
    bg = int(colours[np.argmax(counts)])
    paths: dict[int, list[str]] = {}
    for r in range(rows):
        row = packed[r]
        c = 0
        while c < cols:
            end = c + 1
            while end < cols and row[end] == row[c]:
                end += 1
            if row[c] != bg:
                paths.setdefault(int(row[c]), []).append(f"M{c} {r}h{end - c}v1h{c - end}z")
            c = end
    cls = f' class="{_attr(item.cls)}"' if item.cls else ""
    out = [
        f'<g{cls} transform="translate({_n(item.x)} {_n(item.y)}) scale({item.cell_w:g} {item.cell_h:g})"'
        f' shape-rendering="crispEdges">{_title(item.title)}',
        f'<rect width="{cols}" height="{rows}" fill="#{bg:06x}"/>',
    ]
    out += [f'<path fill="#{col:06x}" d="{"".join(d)}"/>' for col, d in sorted(paths.items())]
    return "".join(out) + "</g>"


def figure_to_svg(fig: Figure) -> str:
    """The figure as a standalone SVG document (UTF-8 text, no XML declaration, so it can also
    be inlined in HTML)."""
    w, h = _n(fig.width), _n(fig.height)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'font-family="{_attr(FONT)}" fill="{hex_color(INK)}" xml:space="preserve">',
        _title(fig.label),
        f'<rect width="{w}" height="{h}" fill="#ffffff"/>',
    ]
    parts += [_svg_item(item) for item in fig.items]
    parts.append("</svg>")
    return "\n".join(p for p in parts if p)
