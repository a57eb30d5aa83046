"""The quickstart notebook, run for real in JupyterLab + Chromium.

Opens ``00_quickstart.ipynb`` in an isolated JupyterLab, runs every cell,
checks there is no error output, finds the ``AttentionPatterns`` widget,
checks one thumbnail per (layer, head) of the shipped ``induction-2l`` model,
hovers two tokens and checks the displayed attention weights follow, checks no text
(thumbnail captions, tick labels) is under 11 px and captions never spill past their
thumbnail, takes screenshots, and checks the page never tried to leave 127.0.0.1.

Run:  .venv/bin/python -m pytest tests/browser -q
Artifacts (gitignored): tests/browser/artifacts/{attention_widget,quickstart_page}.png
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

WIDGET = '.ms-attention[data-rendered="true"]'


def _weights(widget) -> list[str | None]:
    return widget.locator(".ms-attn-token").evaluate_all(
        "els => els.map(e => e.getAttribute('data-weight'))"
    )


def test_quickstart_renders_and_responds(lab_page, quickstart_target, artifacts_dir):
    lab, page = lab_page, lab_page.page
    name = quickstart_target.notebook

    # 1. open the notebook in a fresh workspace, wait for its kernel, and
    # 2. run all cells; every code cell must have run, none may have errored (stderr is
    #    allowed, but printed so that it is visible in the test report)
    lab.run_notebook(name, quickstart_target.run_timeout, print_stderr=True)

    # 3. the attention widget rendered (anywidget + widget manager really loaded)
    # the last widget is focused on the induction head (selected=[layer, head] in the notebook)
    widget = page.locator(WIDGET).last
    try:
        widget.wait_for(state="attached", timeout=20_000)
    except Exception:  # noqa: BLE001
        outputs = page.locator(".jp-OutputArea-output").evaluate_all(
            "els => els.map(e => (e.getAttribute('data-mime-type') || '?') + ': '"
            " + e.innerText.slice(0, 200))"
        )
        lab.fail(
            f"no rendered AttentionPatterns widget ({WIDGET}) after running {name}. "
            f"`.ms-attention` elements present: {page.locator('.ms-attention').count()}. "
            "Outputs on the page:\n  " + "\n  ".join(outputs)
        )
    widget.scroll_into_view_if_needed()

    # one thumbnail per (layer, head) of the zoo model
    n_layers, n_heads = quickstart_target.expected_grid()
    thumbs = widget.locator(".ms-attn-thumb")
    grid = thumbs.evaluate_all(
        "els => els.map(e => [e.getAttribute('data-layer'), e.getAttribute('data-head')])"
    )
    assert len(grid) == n_layers * n_heads, (
        f"expected {n_layers} x {n_heads} = {n_layers * n_heads} head thumbnails "
        f"(from {quickstart_target.card.name}), found {len(grid)}"
    )
    expected = {(str(layer), str(head)) for layer in range(n_layers) for head in range(n_heads)}
    assert {tuple(g) for g in grid} == expected, f"thumbnails cover {sorted(map(tuple, grid))}"
    assert widget.locator(".ms-attn-focus").count() >= 1, "no focused-head canvas (.ms-attn-focus)"

    # 4. hovering a token changes the displayed weights
    tokens = widget.locator(".ms-attn-token")
    n_tokens = tokens.count()
    assert n_tokens >= 2, f"need at least 2 tokens to hover, found {n_tokens}"
    first, last = tokens.nth(0), tokens.nth(n_tokens - 1)

    last.hover()
    page.wait_for_timeout(100)  # let a rAF-batched repaint land
    before = _weights(widget)
    assert all(w is not None for w in before), f"tokens without data-weight: {before}"
    try:
        [float(w) for w in before]  # numbers (NaN allowed: shown as marked cells)
    except ValueError:
        pytest.fail(f"non-numeric data-weight among {before}")

    first.hover()
    lab.wait_js(
        """([sel, before]) => {
             const el = document.querySelector(sel);
             const now = [...el.querySelectorAll('.ms-attn-token')]
               .map(e => e.getAttribute('data-weight'));
             return JSON.stringify(now) !== JSON.stringify(before);
           }""",
        [WIDGET, before],
        f"data-weight did not change when hovering token 0 after token {n_tokens - 1}: "
        f"still {before}",
    )
    after = _weights(widget)
    assert after != before

    # readability: no text under 11 px; each thumbnail caption stays inside its thumbnail
    lab.assert_readable(widget)
    spill = widget.locator(".ms-attn-thumb").evaluate_all(
        "els => els.filter(t => { const c = t.querySelector('.ms-attn-thumb-label');"
        " const a = t.getBoundingClientRect(), b = c.getBoundingClientRect();"
        " return b.left < a.left - 0.5 || b.right > a.right + 0.5; }).length"
    )
    assert spill == 0, f"{spill} thumbnail captions spill past their thumbnail"

    # 5. screenshots (artifacts/, gitignored; docs/attention.png in the README is a copy):
    # hover a word of the second copy, so the induction head's look-back shows
    tokens.nth(n_tokens * 3 // 4).hover()
    page.wait_for_timeout(100)
    widget.screenshot(path=str(artifacts_dir / "attention_widget.png"))
    page.screenshot(path=str(artifacts_dir / "quickstart_page.png"), full_page=True)

    # 6. nothing left 127.0.0.1
    lab.assert_stayed_local()  # and the recorder saw the kernel websocket
    # the recorder itself works: it saw the page's HTTP requests too
    assert any(u.startswith("http") for u in lab.guard.requests), "network recorder saw no HTTP"
