"""LogitLens run for real in JupyterLab + Chromium.

Opens ``tests/browser/notebooks/logit_lens.ipynb`` (served as ``browser-tests/logit_lens.ipynb``),
runs every cell, and checks:

- the logit lens of the shipped ``grammar-2l`` model renders a layers x positions grid whose
  cells show the top-1 token Python computed, coloured by its probability;
- hovering a cell lists its top-k tokens and probabilities, as Python decodes them;
- clicking a cell sets ``selected``, which the kernel sees; setting it in Python moves the mark;
- the token ``<img src=x onerror=alert(1)>`` shows as text, a NaN probability is marked;
- screenshots, and the page never tried to leave 127.0.0.1.

Run:  .venv/bin/python -m pytest tests/browser/test_logit_lens.py -q -p no:cacheprovider
Artifacts (gitignored): tests/browser/artifacts/logit_lens_{widget,small}.png
"""

from __future__ import annotations

import ast
import re

import pytest

pytestmark = pytest.mark.browser

LENS = '.ms-logit-lens[data-rendered="true"]'
IMG = "<img src=x onerror=alert(1)>"


def _rgb(css: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", css)[:3])


def test_logit_lens_hovers_selects_and_renders(lab_page, artifacts_dir):
    lab, page = lab_page, lab_page.page
    lab.watch_dialogs()
    name = lab.run_test_notebook("logit_lens.ipynb")

    # ---- the grammar-2l lens: grid, labels, top-1 tokens as Python computed them ------------
    lens = lab.widget(LENS, ".ms-ll-title", what="LogitLens", title="Logit lens of grammar-2l")
    n_layers, n_pos = (int(x) for x in lab.kernel_eval(name, "lens.n_layers, lens.n_pos").split())
    assert (n_layers, n_pos) == (3, 10)
    cells = lens.locator(".ms-ll-cell")
    assert cells.count() == n_layers * n_pos
    rows = lens.locator(".ms-ll-rowlabel").evaluate_all("els => els.map(e => e.textContent)")
    assert rows == ["0_pre", "1_pre", "final_post"]
    cols = lens.locator(".ms-ll-collabel").evaluate_all("els => els.map(e => e.textContent)")
    assert cols == ast.literal_eval(lab.kernel_eval(name, "lens.tokens"))

    def cell(w, layer: int, pos: int):
        return w.locator(f'.ms-ll-cell[data-layer="{layer}"][data-pos="{pos}"]')

    layer, pos = 2, 6  # final row, after "fast": "." is the only grammatical next word
    expected = ast.literal_eval(lab.kernel_eval(name, f"lens.top_k_at({layer}, {pos})"))
    target = cell(lens, layer, pos)
    assert target.text_content() == expected[0][0]
    assert target.get_attribute("data-prob") == f"{expected[0][1]:.3f}"
    # colour: viridis, brighter (greener/yellower) for a higher probability
    low = min(range(n_pos), key=lambda p: float(cell(lens, 0, p).get_attribute("data-prob")))
    g_hi = _rgb(target.evaluate("e => e.style.backgroundColor"))[1]
    g_lo = _rgb(cell(lens, 0, low).evaluate("e => e.style.backgroundColor"))[1]
    assert g_hi > g_lo, (g_hi, g_lo)

    # ---- hover: the top-k list, as Python decodes it ------------------------------------------
    topk = lens.locator(".ms-ll-topk")
    target.hover()
    lab.wait_attr(topk, "data-source", "hover", "hovering a cell did not fill the top-k list")
    shown = topk.locator(".ms-ll-topk-row").evaluate_all(
        "els => els.map(e => [e.querySelector('.ms-ll-topk-tok').textContent,"
        " e.querySelector('.ms-ll-topk-prob').textContent])"
    )
    assert shown == [[tok, f"{p:.3f}"] for tok, p in expected], (shown, expected)
    assert (
        lens.locator(".ms-ll-readout")
        .text_content()
        .startswith(f"layer final_post \u00b7 pos {pos} ")
    )

    # ---- click selects (Python sees it); Python sets it back --------------------------------
    target.click()
    lab.wait_attr(lens, "data-selected", f"{layer},{pos}", "the clicked cell is not selected")
    lab.wait_kernel(name, "lens.selected", f"[{layer}, {pos}]")
    assert "ms-ll-selected" in (target.get_attribute("class") or "")
    lab.kernel_eval(name, "setattr(lens, 'selected', [0, 1])")
    lab.wait_attr(lens, "data-selected", "0,1", "setting lens.selected in Python")
    assert "ms-ll-selected" not in (target.get_attribute("class") or "")
    page.mouse.move(0, 0)
    lab.wait_attr(topk, "data-source", "selected", "the top-k list does not follow the selection")
    assert topk.get_attribute("data-layer") == "0" and topk.get_attribute("data-pos") == "1"
    lab.assert_readable(lens)
    lens.screenshot(path=str(artifacts_dir / "logit_lens_widget.png"))

    # ---- small lens: <img> token as text, NaN marked, hit underlined --------------------------
    small = lab.widget(LENS, ".ms-ll-title", what="LogitLens", title="Small lens test")
    assert cell(small, 0, 1).text_content() == IMG
    assert "ms-ll-nonfinite" in (cell(small, 0, 1).get_attribute("class") or "")
    assert _rgb(cell(small, 0, 1).evaluate("e => e.style.backgroundColor")) == (255, 0, 255)
    assert cell(small, 0, 1).get_attribute("data-prob") == "NaN"
    # pos 0's next token is "b": final_post predicts "b" (a hit), 0_pre predicts "a" (no hit)
    assert "ms-ll-hit" in (cell(small, 1, 0).get_attribute("class") or "")
    assert "ms-ll-hit" not in (cell(small, 0, 0).get_attribute("class") or "")
    cell(small, 1, 1).hover()
    toks = small.locator(".ms-ll-topk-tok").evaluate_all("els => els.map(e => e.textContent)")
    assert toks == ["c", IMG]
    # the <img> token is wider than a cell: cut with an ellipsis, the full text in its title
    long_cell = cell(small, 0, 1)
    assert long_cell.evaluate("e => e.scrollWidth > e.clientWidth"), "cell text was not truncated"
    assert long_cell.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
    assert IMG in long_cell.get_attribute("title")
    lab.assert_readable(small)
    small.screenshot(path=str(artifacts_dir / "logit_lens_small.png"))

    # ---- nothing executed, nothing left 127.0.0.1 -------------------------------------------
    lab.assert_no_code_ran("a token")
    lab.assert_stayed_local()
