"""Heatmap, linked to AttentionPatterns, run for real in JupyterLab + Chromium.

Opens ``tests/browser/notebooks/heatmap.ipynb`` (served as ``browser-tests/heatmap.ipynb``),
runs every cell, and checks:

- the induction-score heatmap of the shipped ``induction-2l`` model is linked to the attention
  widget: clicking the induction head's cell focuses that head in the attention widget (and
  Python sees it), and clicking a thumbnail in the attention widget selects its cell;
- hovering a cell shows its exact value in the readout and ``data-value``;
- a small two-panel heatmap shares one scale, marks NaN/Inf, and shows the column label
  ``<img src=x onerror=alert(1)>`` as text;
- a wide 3 x 12 x 128 heatmap renders every cell with readable (rotated, thinned) labels;
- readability: no text under 11 px in any of them, grid lines around the cells (so cells at the
  centre colour read as cells), a truncated label keeps its full text in its title;
- screenshots, and the page never tried to leave 127.0.0.1.

Run:  .venv/bin/python -m pytest tests/browser -q
Artifacts (gitignored): tests/browser/artifacts/heatmap_{widget,small,panels}.png
"""

from __future__ import annotations

import re

import numpy as np
import pytest

pytestmark = pytest.mark.browser

HEATMAP = '.ms-heatmap[data-rendered="true"]'
ATTENTION = '.ms-attention[data-rendered="true"]'
IMG = "<img src=x onerror=alert(1)>"


def _rgb(css: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", css)[:3])


def test_heatmap_links_hovers_and_renders(lab_page, artifacts_dir):
    lab = lab_page
    lab.watch_dialogs()
    name = lab.run_test_notebook("heatmap.ipynb")

    # ---- head-score heatmap linked to the attention widget ----------------------------------
    heads = lab.widget(HEATMAP, ".ms-hm-title", what="Heatmap", title="Induction score per head")
    attn = lab.last_widget(ATTENTION, "AttentionPatterns widget")
    n_layers, n_heads = (int(x) for x in lab.kernel_eval(name, "*scores.shape").split())
    cells = heads.locator(".ms-hm-cell")
    assert cells.count() == n_layers * n_heads
    rows = heads.locator(".ms-hm-rowlabel").evaluate_all("els => els.map(e => e.textContent)")
    cols = heads.locator(".ms-hm-collabel").evaluate_all("els => els.map(e => e.textContent)")
    assert rows == [f"L{i}" for i in range(n_layers)]
    assert cols == [f"H{i}" for i in range(n_heads)]
    # link_heads showed the attention widget's focus (L0H0) in the heatmap
    assert attn.get_attribute("data-selected") == "0,0"
    assert heads.get_attribute("data-selected") == "0,0,0"

    layer, head = (int(x) for x in lab.kernel_eval(name, "*best").split())
    assert (layer, head) != (0, 0), "the induction head should not be the attention focus yet"
    target = heads.locator(f'.ms-hm-cell[data-panel="0"][data-row="{layer}"][data-col="{head}"]')
    target.click()
    lab.wait_attr(heads, "data-selected", f"0,{layer},{head}", "the clicked cell is not selected")
    lab.wait_attr(
        attn,
        "data-selected",
        f"{layer},{head}",
        "clicking the heatmap cell did not focus that head in the attention widget",
    )
    assert "ms-hm-cell-selected" in (target.get_attribute("class") or "")
    lab.wait_kernel(
        name, "attn.selected, heads.selected", f"[{layer}, {head}] [0, {layer}, {head}]"
    )
    assert attn.locator(".ms-attn-focus-label").text_content() == f"L{layer}H{head}"

    # and the other way: a thumbnail click in the attention widget selects the heatmap cell
    attn.locator('.ms-attn-thumb[data-layer="0"][data-head="1"]').click()
    lab.wait_attr(
        heads,
        "data-selected",
        "0,0,1",
        "clicking a head in the attention widget did not select its heatmap cell",
    )

    # hover: the exact value (float32, shortest repr) in data-value and the readout
    target.hover()
    value = target.get_attribute("data-value")
    readout = heads.locator(".ms-hm-readout").text_content()
    assert readout == f"layer L{layer} \u00b7 head H{head}: score = {value}", readout
    exact = float(lab.kernel_eval(name, f"repr(float(heads.values_array()[0, {layer}, {head}]))"))
    assert np.float32(float(value)) == np.float32(exact), (value, exact)
    assert float(value) > 0.5, "the induction head's score should be high"
    legend = heads.locator(".ms-hm-legend").text_content()
    assert "score" in legend and "NaN / Inf" in legend
    lab.assert_readable(heads)
    heads.screenshot(path=str(artifacts_dir / "heatmap_widget.png"))

    # ---- small two-panel heatmap: shared scale, NaN/Inf marked, <img> label as text ----------
    small = lab.widget(HEATMAP, ".ms-hm-title", what="Heatmap", title="Small patching test")
    assert small.locator(".ms-hm-panel").count() == 2
    titles = small.locator(".ms-hm-panel-title").evaluate_all("els => els.map(e => e.textContent)")
    assert titles == ["resid", "attn"]
    assert small.locator(".ms-hm-legend-lo").text_content() == "-4"
    assert small.locator(".ms-hm-legend-hi").text_content() == "4"
    assert small.locator(".ms-hm-legend-mid").text_content() == "0"
    assert "one scale for all 2 panels" in small.locator(".ms-hm-legend").text_content()
    labels = small.locator('.ms-hm-panel[data-panel="0"] .ms-hm-collabel')
    assert labels.evaluate_all("els => els.map(e => e.textContent)") == [
        "<bos>",
        IMG,
        " cat",
        "\u21b5",
    ]
    assert small.locator("img").count() == 0, "a label was parsed as HTML: <img> element created"

    def cell(p: int, r: int, c: int):
        return small.locator(f'.ms-hm-cell[data-panel="{p}"][data-row="{r}"][data-col="{c}"]')

    colours = {
        (p, r, c): _rgb(cell(p, r, c).evaluate("e => e.style.backgroundColor"))
        for p, r, c in [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 1), (1, 0, 0), (1, 1, 3)]
    }
    # RdBu (colormaps.json): its centre #f7f7f7 at the centre, its darkest blue at the minimum
    assert colours[(0, 0, 2)] == (247, 247, 247), "zero is not RdBu's centre colour"
    assert colours[(0, 0, 0)][0] > colours[(0, 0, 0)][2], "a positive value is not red-ish"
    assert colours[(0, 0, 1)][2] > colours[(0, 0, 1)][0], "a negative value is not blue-ish"
    assert colours[(1, 0, 0)] == (5, 48, 97), "-4 (the scale minimum) is not RdBu's end"
    assert colours[(0, 1, 1)] == colours[(1, 1, 3)] == (255, 0, 255), "NaN/Inf not magenta"
    for key in [(0, 1, 1), (1, 1, 3)]:
        assert "ms-hm-nonfinite" in (cell(*key).get_attribute("class") or "")
    assert cell(0, 1, 1).get_attribute("data-value") == "NaN"
    assert cell(1, 1, 3).get_attribute("data-value") == "Inf"
    cell(0, 0, 1).hover()
    assert small.locator(".ms-hm-readout").text_content() == (
        f"resid \u00b7 layer L0 \u00b7 pos {IMG}: logit diff = -2"
    )
    cell(1, 0, 2).click()
    lab.wait_attr(small, "data-selected", "1,0,2", "clicking a cell did not select it")
    lab.wait_kernel(name, "small.selected", "[1, 0, 2]")
    lab.kernel_eval(name, "setattr(small, 'selected', [0, 1, 3])")
    lab.wait_attr(small, "data-selected", "0,1,3", "setting small.selected in Python")
    assert "ms-hm-cell-selected" in (cell(0, 1, 3).get_attribute("class") or "")
    assert "ms-hm-cell-selected" not in (cell(1, 0, 2).get_attribute("class") or "")
    # readability: grid lines around every cell (a zero cell is a cell, not page), in a colour
    # that differs from both the page and the near-white centre colour
    borders = small.locator(".ms-hm-cell").evaluate_all(
        "els => els.map(e => { const s = getComputedStyle(e);"
        " return [s.borderRightWidth, s.borderBottomWidth, s.borderRightColor]; })"
    )
    assert len(borders) == 2 * 2 * 4
    for right, bottom, colour in borders:
        assert float(right[:-2]) >= 1 and float(bottom[:-2]) >= 1, borders[:3]
        rgba = re.findall(r"[\d.]+", colour)
        assert len(rgba) == 3 or float(rgba[3]) > 0, f"transparent cell border {colour}"
        assert _rgb(colour) not in {(255, 255, 255), (247, 247, 247)}, colour
    # the <img> label is longer than its rotated slot: cut with an ellipsis, full text on hover
    img_label = labels.nth(1)
    assert img_label.evaluate("e => e.scrollHeight > e.clientHeight"), "label was not truncated"
    assert img_label.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
    assert IMG in img_label.get_attribute("title")
    lab.assert_readable(small)
    small.screenshot(path=str(artifacts_dir / "heatmap_small.png"))

    # ---- wide heatmap: 3 x 12 x 128 cells, column labels rotated and thinned ----------------
    wide = lab.widget(HEATMAP, ".ms-hm-title", what="Heatmap", title="Wide patching test")
    assert wide.locator(".ms-hm-cell").count() == 3 * 12 * 128
    grid = wide.locator(".ms-hm-grid").first
    assert "ms-hm-rotated" in (grid.get_attribute("class") or "")
    step = int(grid.get_attribute("data-label-step"))
    assert step > 1
    shown = grid.locator(".ms-hm-collabel:not(.ms-hm-collabel-skip)")
    assert shown.count() == len(range(0, 128, step))
    assert shown.nth(1).text_content() == f"tok{step}"
    boxes = shown.evaluate_all(
        "els => els.slice(0, 12).map(e => { const b = e.getBoundingClientRect();"
        " return [b.left, b.right, b.width, b.height]; })"
    )
    for (_, right, width, height), (left, *_rest) in zip(boxes, boxes[1:], strict=False):
        assert width > 0 and height > width, "column labels are not rotated"
        assert left >= right - 0.5, f"column labels overlap: {boxes[:4]}"
    lab.assert_readable(wide)
    wide.screenshot(path=str(artifacts_dir / "heatmap_panels.png"))

    # ---- nothing executed, nothing left 127.0.0.1 -------------------------------------------
    lab.assert_no_code_ran("a label")
    lab.assert_stayed_local()
