"""Static fallbacks: every widget's mimebundle carries an SVG picture (GitHub, nbviewer,
markdown / HTML exports without widget state show it), and ``widget.save`` writes it as SVG,
PNG or HTML. (A PDF export needs LaTeX, which this environment lacks; the markdown and HTML
exports below are the checked paths.)"""

from __future__ import annotations

import base64
import dataclasses
import functools
import re
import sys
import xml.etree.ElementTree as ET

import nbclient
import nbformat
import numpy as np
import pytest
from nbconvert import HTMLExporter, MarkdownExporter

from mechscope.widgets import (
    AttentionPatterns,
    AttributionGraph,
    FeatureDashboard,
    Heatmap,
    LogitLens,
    TokenActivations,
    _static,
)

SVG = "{http://www.w3.org/2000/svg}"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
TAG = "<b>"  # a token that must stay text, never become an element


def causal(n_layers: int, n_heads: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    p = np.tril(rng.random((n_layers, n_heads, n, n)) + 0.1)
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def build(name: str):
    """(widget, expected counts {css class: n}) for one small widget of each kind."""
    if name == "heatmap":
        labels = ["a", TAG, "c\x07&\n", "d", "e" * 40]
        return Heatmap(np.arange(10.0).reshape(2, 5), col_labels=labels, center=None), {"cell": 10}
    if name == "attention":
        return AttentionPatterns(causal(2, 3, 5), ["<bos>", TAG, "c", "d", "e"]), {"thumb": 6}
    if name == "logit_lens":
        probs = np.array([[[0.5, 0.2], [0.9, 0.05], [0.3, 0.3]], [[0.6, 0.1], [0.2, 0.1], [1, 0]]])
        top = [[["x", "y"], [TAG, "c"], ["c", "d"]], [["b", "y"], ["z", "c"], ["z", "d"]]]
        return LogitLens(probs, top, ["x", "b", "c"]), {"cell": 6}
    if name == "token_activations":
        texts = [[TAG, " the", " cat\n"], ["a"] * 25, ["x", "y"]]
        vals = np.random.default_rng(0).normal(size=(3, 25, 2))
        return TokenActivations(texts, vals, feature_names=["f0", "f1"]), {"token": 30}
    if name == "attribution_graph":  # the zoo graph, with a token that must stay text
        g = zoo_graph()
        g = dataclasses.replace(g, str_tokens=[TAG if t == "The" else t for t in g.str_tokens])
        return AttributionGraph(g), {"node": int(g.kept.sum())}
    vocab = ["<bos>", " the", TAG, " dog", " sat", "<img src=x onerror=alert(1)>", " on", " mat"]
    rng = np.random.default_rng(0)
    acts = np.maximum(rng.normal(size=(6, 5, 3)), 0)
    acts[:, 2, 0] = 5.0  # TAG (and others) in every context; each context's max is at pos 2
    ctx = [[vocab[(i + p) % len(vocab)] for p in range(5)] for i in range(6)]
    w = FeatureDashboard(acts, ctx, rng.normal(size=(3, 8)), vocab, k=4, n_logits=3)
    return w, {"token": 4 * 5, "logit": 6}


@functools.cache
def zoo_graph():
    import mechscope
    from mechscope.attribution_graph import attribution_graph
    from mechscope.transcoder import load_zoo_transcoder

    tcs = [load_zoo_transcoder(f"facts-ioi-2l-tc{layer}") for layer in range(2)]
    return attribution_graph(mechscope.load("facts-ioi-2l"), tcs, "The Colosseum is in")


NAMES = ["heatmap", "attention", "logit_lens", "token_activations", "feature_dashboard"]
NAMES += ["attribution_graph"]


def svg_of(widget) -> tuple[str, ET.Element]:
    data, _ = widget._repr_mimebundle_()
    return data["image/svg+xml"], ET.fromstring(data["image/svg+xml"])


def texts(root: ET.Element) -> list[str]:
    """The drawn strings (a text's own content, without its <title>)."""
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def by_class(root: ET.Element, cls: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.get("class") == cls]


@pytest.mark.parametrize("name", NAMES)
def test_bundle_keeps_the_widget_and_adds_an_svg(name):
    widget, counts = build(name)
    data, meta = widget._repr_mimebundle_()
    assert data["text/plain"] == repr(widget)
    assert data[WIDGET_MIME]["model_id"] == widget.model_id
    assert isinstance(meta, dict)
    root = ET.fromstring(data["image/svg+xml"])  # well-formed XML
    assert root.tag == f"{SVG}svg"
    for cls, n in counts.items():
        assert len(by_class(root, cls)) == n, cls
    # User strings stay text: escaped in the source, never parsed as elements.
    assert not [e for e in root.iter() if e.tag.split("}")[-1] in ("b", "img", "script")]
    assert TAG in texts(root)
    assert "<b>" not in data["image/svg+xml"] and "&lt;b&gt;" in data["image/svg+xml"]
    sizes = [float(t.get("font-size")) for t in root.iter(f"{SVG}text")]
    assert sizes and min(sizes) >= 11
    excluded, _ = widget._repr_mimebundle_(exclude=["image/svg+xml"])
    assert "image/svg+xml" not in excluded and WIDGET_MIME in excluded


def test_truncated_labels_keep_their_full_text():
    widget, _ = build("heatmap")
    _, root = svg_of(widget)
    cut = [t for t in root.iter(f"{SVG}text") if (t.text or "").endswith("\u2026")]
    assert [t.find(f"{SVG}title").text for t in cut] == ["e" * 40]
    assert "c\\x07&\u21b5" in texts(root)  # control character spelled out, newline visible


@pytest.mark.parametrize("name", NAMES)
def test_save_svg_png_html(name, tmp_path):
    widget, _ = build(name)
    svg, root = svg_of(widget)
    assert widget.save(tmp_path / "x.svg").read_text(encoding="utf-8") == svg
    html = widget.save(str(tmp_path / "x.html")).read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and svg in html
    png = widget.save(tmp_path / "x.PNG").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    image = Image.open(tmp_path / "x.PNG").convert("RGB")
    scale = 2
    assert image.size == (
        round(float(root.get("width")) * scale),
        round(float(root.get("height")) * scale),
    )
    # A known cell: the PNG pixel inside it has the SVG's fill, which is the map's colour.
    if name == "attention":  # thumbnail L0H0, query 0 puts all its weight on key 0
        thumb = by_class(root, "thumb")[0]
        tx, ty = map(
            float, re.search(r"translate\(([\d.]+) ([\d.]+)\)", thumb.get("transform")).groups()
        )
        assert image.getpixel((round(tx * scale) + 2, round(ty * scale) + 2)) == (0xFD, 0xE7, 0x25)
        return
    cls = {"heatmap": "cell", "logit_lens": "cell", "attribution_graph": "node"}.get(name, "token")
    first = by_class(root, cls)[0]
    x, y = float(first.get("x")), float(first.get("y"))
    fill = first.get("fill")
    pixel = image.getpixel((round((x + 3) * scale), round((y + 3) * scale)))
    assert "#{:02x}{:02x}{:02x}".format(*pixel) == fill
    if name == "heatmap":  # value 0 is the minimum of a sequential map: viridis(0)
        assert fill == "#440154"
    if name == "logit_lens":  # top-1 probability 0.5: viridis(0.5)
        assert fill == "#21918c"


def test_bad_suffix_names_path_and_the_choices(tmp_path):
    widget, _ = build("heatmap")
    with pytest.raises(ValueError) as err:
        widget.save(tmp_path / "figure.jpg")
    msg = str(err.value)
    assert (
        "figure.jpg" in msg and "'.jpg'" in msg and all(s in msg for s in (".svg", ".png", ".html"))
    )
    with pytest.raises(ValueError, match="none"):
        widget.save(tmp_path / "figure")
    with pytest.raises(TypeError, match="path must be"):
        widget.save(3)


def test_png_without_pillow_says_how_to_install(tmp_path, monkeypatch):
    widget, _ = build("heatmap")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        widget.save(tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_colormaps_are_the_published_tables():
    hexes = lambda a: ["#{:02x}{:02x}{:02x}".format(*c) for c in np.atleast_2d(a)]  # noqa: E731
    assert hexes(_static.viridis_rgb([0.0, 1.0])) == ["#440154", "#fde725"]
    mid = _static.viridis_rgb(0.5).astype(int)
    assert np.abs(mid - [0x21, 0x91, 0x8C]).max() <= 1
    assert len(_static.colormaps()["viridis"]) == 256
    rdbu = hexes(_static.colormaps()["rdbu"])
    assert rdbu == [
        "#053061",
        "#2166ac",
        "#4393c3",
        "#92c5de",
        "#d1e5f0",
        "#f7f7f7",
        "#fddbc7",
        "#f4a582",
        "#d6604d",
        "#b2182b",
        "#67001f",
    ]
    assert hexes(_static.diverging_rgb([-1.0, 0.0, 1.0, np.nan])) == [
        "#053061",
        "#f7f7f7",
        "#67001f",
        "#ff00ff",
    ]
    assert hexes(_static.diverging_rgb(0.1)) == ["#fae9df"]  # halfway to #fddbc7


def test_attention_grid_of_a_real_size_stays_small():
    # GPT-2 small's 12 x 12 heads on 64 tokens, random (worst case for run-length paths).
    widget = AttentionPatterns(causal(12, 12, 64), [f"t{i}" for i in range(64)])
    svg, root = svg_of(widget)
    assert len(svg.encode()) <= 300_000
    assert len(by_class(root, "thumb")) == 144 and len(by_class(root, "focus")) == 1


@pytest.fixture(scope="module")
def executed_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import numpy as np\nfrom mechscope.widgets import Heatmap\n"
            "Heatmap(np.arange(10.0).reshape(2, 5), col_labels=['a', '<b>', 'c', 'd', 'e'])"
        )
    ]
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    nb.metadata.pop("widgets", None)  # as GitHub / nbviewer see it: no widget state
    return nb


def test_markdown_export_extracts_the_svg(executed_notebook):
    body, resources = MarkdownExporter().from_notebook_node(executed_notebook)
    names = [n for n in resources["outputs"] if n.endswith(".svg")]
    assert len(names) == 1 and f"]({names[0]})" in body
    root = ET.fromstring(resources["outputs"][names[0]])
    assert len(by_class(root, "cell")) == 10 and TAG in texts(root)


def test_html_export_without_widget_state_shows_the_svg(executed_notebook):
    body, _ = HTMLExporter().from_notebook_node(executed_notebook)
    found = re.findall(
        r'data-mime-type="image/svg\+xml"[^>]*>\s*<img[^>]*src="data:image/svg\+xml;base64,([^"]+)"',
        body,
    )
    assert len(found) == 1
    root = ET.fromstring(base64.b64decode(found[0]))
    assert len(by_class(root, "cell")) == 10 and TAG in texts(root)
