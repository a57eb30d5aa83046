"""ImageGrid: binary payload, shapes, one colour scale, validation, the TS Model type, the
static SVG fallback."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
import traitlets

from mechscope.widgets import ImageGrid, _buffers

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "mechscope" / "widgets" / "static"
TAG = "<b>"


def images(n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 8, 8)).astype(np.float32)


def test_payload_is_float32_bytes_in_every_layout():
    v = images()
    w = ImageGrid(torch.from_numpy(v))
    assert isinstance(w.values, bytes) and len(w.values) == 5 * 8 * 8 * 4
    assert (w.n_images, w.height, w.width, w.channels) == (5, 8, 8, 1)
    assert np.array_equal(w.values_array()[..., 0], v)
    assert np.array_equal(_buffers.decode(w.values, "float32", (5, 8, 8, 1))[..., 0], v)
    # [n, 1, h, w] (torch's layout) is the same grid
    assert ImageGrid(v[:, None]).values == w.values
    rgb = np.random.default_rng(1).random((2, 3, 4, 6)).astype(np.float32)  # [n, 3, h, w]
    g = ImageGrid(rgb)
    assert (g.channels, g.height, g.width) == (3, 4, 6)
    assert np.array_equal(g.values_array(), rgb.transpose(0, 2, 3, 1))
    state = g.get_state()
    assert not any(isinstance(x, float) for v in state.values() if isinstance(v, list) for x in v)


def test_one_scale_sequential_diverging_and_fixed():
    v = images()
    seq = ImageGrid(v)
    assert (seq.vmin, seq.vmax) == (float(v.min()), float(v.max())) and seq.center is None
    div = ImageGrid(v, center=0.0)
    m = float(np.abs(v).max())
    assert (div.vmin, div.vmax) == (-m, m) and div.center == 0.0
    fixed = ImageGrid(np.clip(v, 0, 1), vmin=0, vmax=1)
    assert (fixed.vmin, fixed.vmax) == (0.0, 1.0)
    v[0, 0, 0], v[1, 2, 3] = np.nan, np.inf  # NaN/Inf never set the scale, and survive
    w = ImageGrid(v)
    assert np.isnan(w.values_array()[0, 0, 0, 0]) and np.isposinf(w.values_array()[1, 2, 3, 0])
    assert np.isfinite([w.vmin, w.vmax]).all()
    with pytest.raises(ValueError, match="pass center=None with them"):
        ImageGrid(v, center=0.0, vmin=-1)
    with pytest.raises(ValueError, match="vmin must be below vmax"):
        ImageGrid(v, vmin=1, vmax=1)


def test_bad_inputs_name_the_argument_and_the_fix():
    with pytest.raises(ValueError, match=r"images has shape \(4, 2, 8, 8\).*weight\[:, 0\]"):
        ImageGrid(np.zeros((4, 2, 8, 8)))
    with pytest.raises(ValueError, match=r"images has shape \(8, 8\)"):
        ImageGrid(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="labels has 2 entries but images has 5"):
        ImageGrid(images(), labels=["a", "b"])
    with pytest.raises(ValueError, match="selected=5 is out of range.*0..4"):
        ImageGrid(images(), selected=5)
    with pytest.raises(ValueError, match="center must be a number"):
        ImageGrid(images(), center="zero")
    w = ImageGrid(images(), selected=2)
    with pytest.raises(traitlets.TraitError, match="out of range"):
        w.selected = 9
    w.selected = -1
    assert w.selected == -1


def test_repr_is_deterministic_and_labels_are_strings():
    w = ImageGrid(images(), labels=np.arange(5), center=0.0, selected=1)
    assert w.labels == ["0", "1", "2", "3", "4"]
    assert repr(w) == repr(ImageGrid(images(), labels=np.arange(5), center=0.0, selected=1))
    m = float(np.abs(images()).max())
    assert repr(w) == (
        f"ImageGrid(n_images=5, height=8, width=8, channels=1, center=0, "
        f"scale=[{-m:.4g}, {m:.4g}], selected=1)"
    )


def test_typescript_model_type_lists_exactly_the_synced_traits():
    ts = (ROOT / "widgets" / "image_grid" / "index.ts").read_text()
    body = re.search(r"export interface Model \{(.*?)\n\}", ts, re.S).group(1)
    ts_keys = set(re.findall(r"^\s+(\w+): ", body, re.M))
    assert ts_keys == set(ImageGrid.class_own_traits(sync=True))
    js = (STATIC / "image_grid.js").read_text(encoding="utf-8")
    assert "innerHTML" not in js and "http" not in js and "ms-ig-readout" in js


def _svg(w: ImageGrid) -> ET.Element:
    return ET.fromstring(w._repr_mimebundle_()[0]["image/svg+xml"])


def test_static_svg_has_one_raster_per_image_and_escapes_labels(tmp_path):
    labels = ["a", TAG, "c", "d" * 60, "e"]
    root = _svg(ImageGrid(images(), labels=labels, title="five", selected=3))
    rasters = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "image"]
    assert len(rasters) == 5
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert TAG in texts and "five" in texts  # a label is text, never an element
    assert not any(el.tag.endswith("}b") for el in root.iter())
    big = _svg(ImageGrid(np.zeros((300, 4, 4), np.float32)))
    n_big = sum(g.get("class") == "image" for g in big.iter("{http://www.w3.org/2000/svg}g"))
    assert n_big == 256
    assert "... and 44 more images" in [
        t.text for t in big.iter("{http://www.w3.org/2000/svg}text")
    ]
    rgb = _svg(ImageGrid(np.ones((2, 3, 2, 2), np.float32)))  # RGB: no colour legend
    assert (
        sum(r.get("class") == "legend" for r in rgb.iter("{http://www.w3.org/2000/svg}rect")) == 0
    )
    out = ImageGrid(images()).save(tmp_path / "grid.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
