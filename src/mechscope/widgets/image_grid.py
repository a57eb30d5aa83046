"""ImageGrid: small images side by side (conv filters, feature visualisations, dataset examples).

``images`` ``[n, h, w]`` (or ``[n, 1, h, w]``) go through one colour scale shared by every
image: with ``center`` a number the diverging RdBu map, white at ``center`` and symmetric
(weights, signed activations); with ``center=None`` (default) the sequential viridis map over
``[min, max]`` (pixels, activations >= 0). ``[n, 3, h, w]`` images are RGB in [0, 1], shown as
they are. NaN/Inf pixels are magenta, never a silent colour.

Hovering a pixel shows its exact value; clicking an image sets ``selected`` (its index; -1 for
none), which Python can observe. The pixels travel as one float32 binary buffer (see
``_buffers``). TypeScript side: ``widgets/image_grid/index.ts``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from mechscope.widgets import _buffers, _static
from mechscope.widgets._svg_figure import MUTED, Figure
from mechscope.widgets._svg_grids import heat_rgb, legend
from mechscope.widgets.heatmap import color_scale

_STATIC = Path(__file__).parent / "static"
MAX_IMAGES = 1024  # a grid is for looking at; more than this is a dataset, not a figure
SVG_MAX_IMAGES = 256  # the static picture shows the first 256 (it is saved in the notebook)


class ImageGrid(_static.StaticFallback, anywidget.AnyWidget):
    """A grid of ``n`` small images sharing one colour scale.

    Args:
        images: ``[n, h, w]``, ``[n, 1, h, w]`` (values through the colour map) or
            ``[n, 3, h, w]`` (RGB in [0, 1]); torch Tensor or numpy array.
        labels: one caption per image (default ``"0"``, ``"1"``, ...); shown as text.
        title: shown above the grid.
        center: white point of the diverging map (e.g. 0.0 for filters); ``None`` (default)
            for the sequential map over ``[min, max]`` (or ``[vmin, vmax]``).
        vmin, vmax: fixed limits of the sequential map (e.g. 0 and 1 for pixels).
        selected: index of the image to highlight first (default -1: none).
        value_label: what a pixel value is, e.g. ``"weight"``; in the legend and readout.

    Example::

        w = ImageGrid(model.conv1.conv.weight[:, 0], center=0.0, value_label="weight",
                      labels=[f"ch {i}" for i in range(16)])
        w.observe(lambda change: print(change["new"]), names="selected")
    """

    _esm = _STATIC / "image_grid.js"
    _css = _STATIC / "image_grid.css"

    n_images = traitlets.Int(0).tag(sync=True)
    height = traitlets.Int(0).tag(sync=True)
    width = traitlets.Int(0).tag(sync=True)
    channels = traitlets.Int(1).tag(sync=True)
    # [image, row, col, channel] float32, little-endian, C order (see _buffers).
    values = traitlets.Bytes(b"").tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    value_label = traitlets.Unicode("").tag(sync=True)
    center = traitlets.Float(None, allow_none=True).tag(sync=True)
    vmin = traitlets.Float(0.0).tag(sync=True)
    vmax = traitlets.Float(1.0).tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)

    def __init__(
        self,
        images: Any,
        *,
        labels: Sequence[Any] | None = None,
        title: str = "",
        center: float | None = None,
        vmin: float | None = None,
        vmax: float | None = None,
        selected: int = -1,
        value_label: str = "",
    ) -> None:
        arr = _as_images(images)  # [n, h, w, c]
        n, h, w, c = arr.shape
        center = _buffers.check_center(center)
        lo, hi = color_scale(arr, center) if c == 1 else (0.0, 1.0)
        if vmin is not None or vmax is not None:
            if center is not None:
                raise ValueError(
                    "vmin/vmax fix the limits of the sequential map; pass center=None with them "
                    f"(got center={center}). A diverging map is symmetric about its center."
                )
            lo = lo if vmin is None else float(vmin)
            hi = hi if vmax is None else float(vmax)
            if not lo < hi:
                raise ValueError(f"vmin must be below vmax, got vmin={lo}, vmax={hi}.")
        super().__init__(
            n_images=n,
            height=h,
            width=w,
            channels=c,
            values=_buffers.encode(arr, "float32"),
            labels=_check_labels(labels, n),
            title=str(title),
            value_label=str(value_label),
            center=center,
            vmin=lo,
            vmax=hi,
            selected=_check_selected(selected, n),
        )

    @traitlets.validate("selected")
    def _validate_selected(self, proposal: Any) -> int:
        try:
            return _check_selected(proposal["value"], self.n_images)
        except ValueError as err:
            raise traitlets.TraitError(str(err)) from None

    def values_array(self) -> np.ndarray:
        """The pixels as the browser sees them (decoded payload), ``[n, h, w, channels]``."""
        shape = (self.n_images, self.height, self.width, self.channels)
        return _buffers.decode(self.values, "float32", shape)

    def _static_figure(self) -> Figure:
        return _figure(self)

    def __repr__(self) -> str:
        center = "None" if self.center is None else f"{self.center:g}"
        return (
            f"ImageGrid(n_images={self.n_images}, height={self.height}, width={self.width}, "
            f"channels={self.channels}, center={center}, scale=[{self.vmin:.4g}, "
            f"{self.vmax:.4g}], selected={self.selected})"
        )


def _as_images(images: Any) -> np.ndarray:
    """``images`` as float32 ``[n, h, w, c]`` (c = 1 or 3), validated."""
    arr = _buffers.to_numpy(images, name="images")
    given = tuple(arr.shape)
    if arr.ndim == 3:
        arr = arr[..., None]
    elif arr.ndim == 4 and arr.shape[1] in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    else:
        raise ValueError(
            f"images has shape {given}; expected [n, h, w], [n, 1, h, w] or [n, 3, h, w] (RGB). "
            "Fix: e.g. conv weights [out, in, k, k] -> weight[:, 0] or weight.flatten(0, 1); "
            "one image -> image[None]."
        )
    if arr.size == 0:
        raise ValueError(f"images has shape {given}, which holds no pixels.")
    if arr.shape[0] > MAX_IMAGES:
        raise ValueError(
            f"images holds {arr.shape[0]} images; an ImageGrid shows at most {MAX_IMAGES}. "
            "Fix: pick the ones to look at, e.g. images[top_k_indices]."
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check_labels(labels: Sequence[Any] | None, n: int) -> list[str]:
    if labels is None:
        return [str(i) for i in range(n)]
    if isinstance(labels, str) or not isinstance(labels, (Sequence, np.ndarray)):
        raise ValueError(
            f"labels must be a list with one caption per image, got {type(labels).__name__}. "
            f"Fix: e.g. labels=[str(y) for y in classes]."
        )
    out = [str(x.item()) if isinstance(x, np.generic) else str(x) for x in labels]
    if len(out) != n:
        raise ValueError(
            f"labels has {len(out)} entries but images has {n} images; expected one caption "
            "per image. Fix: pass n labels, or leave labels out for index captions."
        )
    return out


def _check_selected(selected: Any, n: int) -> int:
    if isinstance(selected, bool) or not isinstance(selected, (int, np.integer)):
        raise ValueError(f"selected={selected!r}; expected an image index (int) or -1 for none.")
    if not -1 <= int(selected) < n:
        raise ValueError(
            f"selected={int(selected)} is out of range: this grid has {n} images, so use "
            f"0..{n - 1}, or -1 for none."
        )
    return int(selected)


def _figure(w: ImageGrid) -> Figure:
    """The static picture: title, legend (colour-mapped images), then the images in rows."""
    arr = w.values_array()
    n_shown = min(w.n_images, SVG_MAX_IMAGES)
    zoom = max(1, min(24, 80 // max(w.height, w.width)))
    cw, ch = w.width * zoom, w.height * zoom
    cell_w, cell_h = max(cw, 72) + 10, ch + 24  # room for a short caption under a small image
    cols = max(1, min(n_shown, 640 // cell_w))
    rows = math.ceil(n_shown / cols)
    pad, y = 8, 8
    fig = Figure(width=max(cols * cell_w + 2 * pad, 420), height=0, label=w.title or "ImageGrid")
    if w.title:
        fig.text(pad, y + 14, w.title, size=14, bold=True, max_width=fig.width - 2 * pad)
        y += 22
    if w.channels == 1:
        y += legend(
            fig, pad, y, w.vmin, w.vmax, diverging=w.center is not None, label=w.value_label
        )
        y += 4
    for i in range(n_shown):
        r, c = divmod(i, cols)
        x0, y0 = pad + c * cell_w, y + r * cell_h
        img = arr[i]
        if w.channels == 1:
            rgb = heat_rgb(img[..., 0], w.vmin, w.vmax, w.center)
        else:
            finite = np.isfinite(img).all(-1, keepdims=True)
            rgb = np.where(finite, np.floor(np.clip(np.nan_to_num(img), 0, 1) * 255 + 0.5), 0)
            rgb = rgb.astype(np.uint8)
            rgb[~finite[..., 0]] = _static.NONFINITE_RGB
        fig.raster(x0, y0, rgb, zoom, zoom, cls="image", title=f"image {i}: {w.labels[i]}")
        if i == w.selected:
            fig.rect(x0 - 2, y0 - 2, cw + 4, ch + 4, stroke=(232, 89, 12), stroke_width=2)
        fig.text(x0 + cw / 2, y0 + ch + 14, w.labels[i], size=11, fill=MUTED, anchor="middle",
                 max_width=cell_w - 4)  # fmt: skip
    y += rows * cell_h
    if n_shown < w.n_images:
        fig.text(pad, y + 12, f"... and {w.n_images - n_shown} more images", size=11, fill=MUTED)
        y += 18
    fig.height = y + pad
    return fig
