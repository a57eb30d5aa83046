"""PNG output of a static widget picture: the same ``_svg_figure.Figure`` drawn with Pillow.

Pillow is optional (``pip install pillow``); it is imported here, only when a PNG is asked
for. Text uses DejaVu Sans Mono when the system has it (the SVG's first font), else Pillow's
bundled default font; a label that still comes out wider than its estimate is cut further so
that it never overlaps its neighbour.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from mechscope.widgets import _svg_figure

SCALE = 2  # PNG pixels per figure px: sharp text on high-density screens and in slides


def _pil() -> Any:
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as err:
        raise ImportError(
            "saving a widget as .png needs Pillow, which is not installed. Fix: "
            "pip install pillow (or save as .svg, which needs nothing)."
        ) from err
    return Image, ImageDraw, ImageFont


@functools.cache
def _font(size: int, bold: bool) -> Any:
    _, _, image_font = _pil()
    name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
    for path in (name, f"/usr/share/fonts/truetype/dejavu/{name}"):
        try:
            return image_font.truetype(path, size)
        except OSError:
            continue
    return image_font.load_default(size=size)


def _fitted(text: str, font: Any, limit: float) -> str:
    """``text`` cut (ellipsis) until the real font's width is within ``limit`` px."""
    if text and font.getlength(text) > limit and limit > 0:
        while text and font.getlength(text + "\u2026") > limit:
            text = text[:-1]
        text += "\u2026"
    return text


def figure_to_png(fig: _svg_figure.Figure, path: Path) -> None:
    """Draw ``fig`` at ``SCALE`` x its px size and write a PNG to ``path``."""
    image, image_draw, _ = _pil()
    s = SCALE
    canvas = image.new("RGB", (round(fig.width * s), round(fig.height * s)), (255, 255, 255))
    draw = image_draw.Draw(canvas)
    for item in fig.items:
        if isinstance(item, _svg_figure.Rect):
            box = [item.x * s, item.y * s, (item.x + item.w) * s - 1, (item.y + item.h) * s - 1]
            width = max(1, round(item.stroke_width * s)) if item.stroke is not None else 0
            draw.rectangle(box, fill=item.fill, outline=item.stroke, width=width)
        elif isinstance(item, _svg_figure.Line):
            draw.line(
                [item.x1 * s, item.y1 * s, item.x2 * s, item.y2 * s],
                fill=item.stroke,
                width=max(1, round(item.width * s)),
            )
        elif isinstance(item, _svg_figure.Raster):
            rows, cols, _ = item.rgb.shape
            size = (max(1, round(cols * item.cell_w * s)), max(1, round(rows * item.cell_h * s)))
            block = image.fromarray(np.ascontiguousarray(item.rgb), "RGB").resize(
                size, image.Resampling.NEAREST
            )
            canvas.paste(block, (round(item.x * s), round(item.y * s)))
        elif isinstance(item, _svg_figure.Text):
            _draw_text(canvas, draw, item, s)
    canvas.save(path, format="PNG")


def _draw_text(canvas: Any, draw: Any, item: _svg_figure.Text, s: int) -> None:
    font = _font(round(item.size * s), item.bold)
    # The layout's estimate is the space the text may take: never draw past it.
    limit = _svg_figure.text_width(item.text, item.size) * s
    text = _fitted(item.text, font, limit + 0.5 * item.size * s)
    if not item.rotate:
        anchor = {"start": "ls", "middle": "ms", "end": "rs"}[item.anchor]
        draw.text((item.x * s, item.y * s), text, fill=item.fill, font=font, anchor=anchor)
        if item.underline:
            x0, _, x1, _ = draw.textbbox((item.x * s, item.y * s), text, font=font, anchor=anchor)
            y = item.y * s + 2 * s
            draw.line([x0, y, x1, y], fill=item.fill, width=s)
        return
    # Rotated (reads bottom to top from (x, y)): draw flat on a transparent tile, turn it a
    # quarter counter-clockwise, paste it so that the baseline start lands on (x, y).
    image, image_draw, _ = _pil()
    ascent, descent = font.getmetrics()
    width = max(1, round(font.getlength(text)))
    tile = image.new("RGBA", (width, ascent + descent), (255, 255, 255, 0))
    image_draw.Draw(tile).text((0, ascent), text, fill=(*item.fill, 255), font=font, anchor="ls")
    tile = tile.rotate(90, expand=True)
    canvas.paste(tile, (round(item.x * s - ascent), round(item.y * s - width)), tile)
