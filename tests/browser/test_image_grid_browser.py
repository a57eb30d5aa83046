"""ImageGrid run for real in JupyterLab + Chromium.

Opens ``tests/browser/notebooks/image_grid.ipynb`` (served as ``browser-tests/image_grid.ipynb``),
runs every cell, and checks:

- twelve held-out digits render as twelve canvases with their labels, each pixel in the
  viridis colour Python computes for its value;
- hovering a pixel shows its exact value (as Python decodes it) and its place;
- clicking an image sets ``selected``, which the kernel sees; setting it in Python moves the mark;
- a small diverging grid: zero is RdBu's centre colour, NaN is magenta, the label
  ``<img src=x onerror=alert(1)>`` shows as text;
- no text under 11 px, screenshots, and the page never tried to leave 127.0.0.1.

Run:  .venv/bin/python -m pytest tests/browser/test_image_grid_browser.py -q -p no:cacheprovider
Artifacts (gitignored): tests/browser/artifacts/image_grid_{digits,small}.png
"""

from __future__ import annotations

import ast

import numpy as np
import pytest

pytestmark = pytest.mark.browser

GRID = '.ms-image-grid[data-rendered="true"]'
IMG = "<img src=x onerror=alert(1)>"

# The RGB the canvas holds at pixel (row, col): what was drawn, not what CSS scaled.
PIXEL_JS = """([canvas, r, c]) => Array.from(canvas.getContext("2d").getImageData(c, r, 1, 1).data).slice(0, 3)"""


def _hover_pixel(page, canvas, row: int, col: int, zoom: float) -> None:
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + (col + 0.5) * zoom, box["y"] + (row + 0.5) * zoom)


def test_image_grid_hovers_selects_and_renders(lab_page, artifacts_dir):
    lab, page = lab_page, lab_page.page
    lab.watch_dialogs()
    name = lab.run_test_notebook("image_grid.ipynb")

    # ---- twelve digits: canvases, labels, colours as Python computes them --------------------
    grid = lab.widget(GRID, ".ms-ig-title", what="ImageGrid", title="Digits test")
    cells = grid.locator(".ms-ig-cell")
    assert cells.count() == 12 and grid.locator("canvas.ms-ig-canvas").count() == 12
    labels = grid.locator(".ms-ig-label").evaluate_all("els => els.map(e => e.textContent)")
    assert labels == ast.literal_eval(lab.kernel_eval(name, "grid.labels"))
    canvas = cells.nth(2).locator("canvas")
    assert (canvas.evaluate("c => [c.width, c.height]")) == [8, 8]
    zoom = canvas.bounding_box()["width"] / 8
    assert zoom >= 8, zoom
    row, col = 3, 4
    expected_rgb = ast.literal_eval(
        lab.kernel_eval(
            name,
            "__import__('mechscope.widgets._static', fromlist=['x'])"
            f".viridis_rgb(grid.values_array()[2, {row}, {col}, 0]).tolist()",
        )
    )
    assert page.evaluate(PIXEL_JS, [canvas.element_handle(), row, col]) == expected_rgb

    # ---- hover a pixel: its exact value and place -------------------------------------------
    readout = grid.locator(".ms-ig-readout")
    _hover_pixel(page, canvas, row, col, zoom)
    lab.wait_attr(grid, "data-hover", f"2,{row},{col}", "hovering a pixel did not register it")
    exact = float(lab.kernel_eval(name, f"repr(float(grid.values_array()[2, {row}, {col}, 0]))"))
    shown = readout.get_attribute("data-value")
    assert np.float32(float(shown)) == np.float32(exact), (shown, exact)
    assert readout.text_content() == f"{labels[2]} \u00b7 row {row}, col {col}: pixel = {shown}"

    # ---- click selects (Python sees it); Python sets it back --------------------------------
    cells.nth(4).click()
    lab.wait_attr(grid, "data-selected", "4", "the clicked image is not selected")
    lab.wait_kernel(name, "grid.selected", "4")
    assert "ms-ig-selected" in (cells.nth(4).get_attribute("class") or "")
    lab.kernel_eval(name, "setattr(grid, 'selected', 1)")
    lab.wait_attr(grid, "data-selected", "1", "setting grid.selected in Python")
    assert "ms-ig-selected" not in (cells.nth(4).get_attribute("class") or "")
    lab.assert_readable(grid)
    grid.screenshot(path=str(artifacts_dir / "image_grid_digits.png"))

    # ---- small diverging grid: centre colour, NaN marked, <img> label as text ---------------
    small = lab.widget(GRID, ".ms-ig-title", what="ImageGrid", title="Small grid test")
    assert small.locator(".ms-ig-label").nth(1).text_content() == IMG
    assert small.locator("img").count() == 0, "a label was parsed as HTML"
    canvases = small.locator("canvas.ms-ig-canvas")
    assert page.evaluate(PIXEL_JS, [canvases.nth(1).element_handle(), 0, 0]) == [255, 0, 255]
    assert page.evaluate(PIXEL_JS, [canvases.nth(2).element_handle(), 1, 1]) == [247, 247, 247]
    assert page.evaluate(PIXEL_JS, [canvases.nth(0).element_handle(), 0, 0]) == [5, 48, 97]
    _hover_pixel(page, canvases.nth(1), 0, 0, canvases.nth(1).bounding_box()["width"] / 4)
    lab.wait_attr(small, "data-hover", "1,0,0", "hovering the NaN pixel did not register it")
    assert small.locator(".ms-ig-readout").get_attribute("data-value") == "NaN"
    lab.assert_readable(small)
    small.screenshot(path=str(artifacts_dir / "image_grid_small.png"))

    # ---- nothing executed, nothing left 127.0.0.1 -------------------------------------------
    lab.assert_no_code_ran("a label")
    lab.assert_stayed_local()
