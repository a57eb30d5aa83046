"""`mechscope export`: one offline HTML page whose widgets render and respond (issue 16).

Builds a notebook with one of each widget (synthetic data, no model), exports it with
``--execute`` through the CLI, and opens the ``file://`` page in Chromium with every request
that is not ``file:`` aborted and recorded. Each widget must render (its root element and its
cell count), respond (hover fills a readout / click or select changes its state in the DOM),
and the page must attempt 0 non-file requests (no CDN, no require.js).

Run:  .venv/bin/python -m pytest tests/browser/test_export.py -q
Artifacts (gitignored): tests/browser/artifacts/export_page.png
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.browser

CELLS = [
    """\
import numpy as np
from mechscope.widgets import (
    AttentionPatterns, FeatureDashboard, Heatmap, LogitLens, TokenActivations,
)
rng = np.random.default_rng(0)""",
    """\
# 2 layers x 3 heads over 5 tokens: causal, rows sum to 1
att = np.tril(rng.uniform(0.1, 1.0, size=(2, 3, 5, 5))).astype(np.float32)
att /= att.sum(-1, keepdims=True)
AttentionPatterns(att, ["a", " b", " c", " a", " b"], title="Export attention")""",
    """\
Heatmap(np.arange(12, dtype=np.float32).reshape(3, 4) - 5, row_labels=["L0", "L1", "L2"],
        col_labels=["p0", "p1", "p2", "p3"], title="Export heatmap")""",
    """\
# [layer, pos, k]: 2 layers x 3 positions, top-2 tokens per cell
probs = np.array([[[0.9, 0.05], [0.2, 0.1], [0.5, 0.3]], [[0.2, 0.1], [0.6, 0.3], [0.7, 0.2]]],
                 np.float32)
top = [[["a", "b"], ["c", "a"], ["b", "c"]], [["b", "a"], ["c", "b"], ["a", "c"]]]
LogitLens(probs, top, ["x", "y", "z"], row_labels=["0_pre", "final_post"],
          title="Export lens")""",
    """\
values = np.arange(2 * 4 * 2, dtype=np.float32).reshape(2, 4, 2) / 10
TokenActivations([["The", " cat", " sat", " on"], ["A", " dog", " ran", " off"]], values,
                 feature_names=["first", "second"], title="Export tokens")""",
    """\
words = [" the", " cat", " sat", " on", " mat", " dog"]
contexts = [[words[(c + p) % 6] for p in range(4)] for c in range(5)]
acts = rng.uniform(0, 1, size=(5, 4, 3)).astype(np.float32)
FeatureDashboard(acts, contexts, rng.normal(size=(3, 6)).astype(np.float32), words, k=3,
                 bins=8, title="Export dashboard")""",
]

# root selector -> (cell selector, expected count)
RENDERED = {
    ".ms-attention": (".ms-attn-thumb", 2 * 3),
    ".ms-heatmap": (".ms-hm-cell", 3 * 4),
    ".ms-logit-lens": (".ms-ll-cell", 2 * 3),
    ".ms-token-acts": (".ms-tok", 2 * 4),
    ".ms-feature-dash": (".ms-fd-context", 3),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, run_module) -> Path:
    """The test notebook, exported by `mechscope export --execute` (the CLI, as a user runs it)."""
    work = tmp_path_factory.mktemp("export")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Export test")]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in CELLS]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    source = work / "widgets.ipynb"
    nbformat.write(nb, source)
    page = work / "page.html"
    out = run_module(
        "mechscope export",
        "mechscope.cli",
        "export",
        str(source),
        "-o",
        str(page),
        "--execute",
        timeout=300,
    )
    assert page.is_file() and f"wrote {page}" in out
    return page


def test_page_is_self_contained(exported):
    html = exported.read_text(encoding="utf-8")
    size = exported.stat().st_size
    assert "<script src=" not in html and "require.js" not in html
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html and "cdnjs" not in html
    assert html.count('type="application/vnd.jupyter.widget-view+json"') == len(RENDERED)
    assert size < 2_000_000, f"the page is {size} bytes; the inlined manager grew?"


def test_exported_widgets_render_and_respond_offline(exported, offline_page, artifacts_dir):
    page, attempted, errors = offline_page
    page.goto(exported.as_uri())
    page.wait_for_function(
        "() => document.documentElement.dataset.mechscopeWidgets !== undefined", timeout=30_000
    )
    assert page.evaluate("document.documentElement.dataset.mechscopeWidgets") == str(len(RENDERED))

    for root, (cell, n) in RENDERED.items():
        w = page.locator(f'{root}[data-rendered="true"]')
        w.wait_for(state="attached", timeout=10_000)
        assert w.count() == 1, f"{root}: {w.count()} rendered"
        assert w.locator(cell).count() == n, f"{root}: {w.locator(cell).count()} {cell}, not {n}"

    # AttentionPatterns: clicking a head's thumbnail focuses it
    attn = page.locator(".ms-attention")
    attn.locator('.ms-attn-thumb[data-layer="1"][data-head="2"]').click()
    page.wait_for_function(
        "() => document.querySelector('.ms-attention').getAttribute('data-selected') === '1,2'"
    )
    # Heatmap: hover shows the value, click selects the cell
    hm = page.locator(".ms-heatmap")
    target = hm.locator('.ms-hm-cell[data-row="2"][data-col="3"]')
    target.hover()
    assert "= 6" in hm.locator(".ms-hm-readout").text_content()
    target.click()
    page.wait_for_function(
        "() => document.querySelector('.ms-heatmap').getAttribute('data-selected') === '0,2,3'"
    )
    # LogitLens: hover fills the top-k list, click selects
    lens = page.locator(".ms-logit-lens")
    cell = lens.locator('.ms-ll-cell[data-layer="1"][data-pos="2"]')
    cell.hover()
    page.wait_for_function(
        "() => document.querySelector('.ms-ll-topk').getAttribute('data-source') === 'hover'"
    )
    assert lens.locator(".ms-ll-topk-tok").first.text_content() == "a"
    cell.click()
    page.wait_for_function(
        "() => document.querySelector('.ms-logit-lens').getAttribute('data-selected') === '1,2'"
    )
    # TokenActivations: hover reads a value out, the feature list switches features
    ta = page.locator(".ms-token-acts")
    ta.locator(".ms-tok").nth(5).hover()  # text 1, token 1: feature 0 = values[1, 1, 0] = 1.0
    assert ta.locator(".ms-ta-readout").text_content().endswith("first = 1")
    ta.locator(".ms-ta-select").select_option("1")
    page.wait_for_function(
        "() => document.querySelector('.ms-token-acts').getAttribute('data-feature') === '1'"
    )
    # FeatureDashboard: next moves to feature 1
    dash = page.locator(".ms-feature-dash")
    dash.locator(".ms-fd-next").click()
    page.wait_for_function(
        "() => document.querySelector('.ms-feature-dash').getAttribute('data-feature') === '1'"
    )
    page.screenshot(path=str(artifacts_dir / "export_page.png"), full_page=True)

    assert not errors, f"uncaught page errors: {errors}"
    assert attempted == [], f"the offline page attempted {len(attempted)} request(s): {attempted}"
