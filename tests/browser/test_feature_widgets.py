"""TokenActivations and FeatureDashboard, run for real in JupyterLab + Chromium.

Opens ``tests/browser/notebooks/feature_widgets.ipynb`` (synthetic data with known values;
served as ``browser-tests/feature_widgets.ipynb``), runs every cell, and for each widget
checks that it rendered, responds to one interaction, shows the token
``<img src=x onerror=alert(1)>`` as text (no ``<img>`` element, no alert), that no text is
under 11 px, and takes a screenshot; for the dashboard also the histogram's axes (count and
value ticks), one number of decimals per logit column, and that a token too long for its slot
is cut with an ellipsis and keeps its full text in its title; then checks the page never tried
to leave 127.0.0.1.

Run:  .venv/bin/python -m pytest tests/browser -q
Artifacts (gitignored): tests/browser/artifacts/{token_activations,feature_dashboard}_widget.png
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

TOKEN_ACTS = '.ms-token-acts[data-rendered="true"]'
DASH = '.ms-feature-dash[data-rendered="true"]'
IMG = "<img src=x onerror=alert(1)>"


def _attr(locator, name: str) -> list[str | None]:
    return locator.evaluate_all(f"els => els.map(e => e.getAttribute({name!r}))")


def test_feature_widgets_render_and_respond(lab_page, artifacts_dir):
    lab = lab_page
    lab.watch_dialogs()
    name = lab.run_test_notebook("feature_widgets.ipynb")

    # ---- TokenActivations ------------------------------------------------------------------
    ta = lab.last_widget(TOKEN_ACTS, "TokenActivations widget")
    tokens = ta.locator(".ms-tok")
    assert tokens.count() == 6 + 4 + 3, f"expected 13 tokens, found {tokens.count()}"
    texts = tokens.evaluate_all("els => els.map(e => e.textContent)")
    assert texts[6] == IMG, f"the <img> token is not shown literally: {texts[6]!r}"
    assert ta.locator("img").count() == 0, "a token was parsed as HTML: <img> element created"
    options = ta.locator(".ms-ta-select option").evaluate_all("els => els.map(e => e.textContent)")
    assert options == ["position code", "signed code"], options
    assert ta.get_attribute("data-feature") == "0"
    before = _attr(tokens, "data-value")
    # feature 0 is (10 * text + pos) / 10: text 0 -> 0 .. 0.5, text 1 -> 1 .. 1.3, text 2 -> 2 .. 2.2
    assert before == [
        "0",
        "0.1",
        "0.2",
        "0.3",
        "0.4",
        "0.5",
        "1",
        "1.1",
        "1.2",
        "1.3",
        "2",
        "2.1",
        "2.2",
    ]
    colours_before = tokens.evaluate_all("els => els.map(e => e.style.background)")
    assert colours_before[0] == "rgb(247, 247, 247)", "zero is not RdBu's centre colour"

    tokens.nth(7).hover()
    readout = ta.locator(".ms-ta-readout")
    assert "position code = 1.1" in readout.text_content(), readout.text_content()

    # one interaction: pick the other feature from the list
    ta.locator(".ms-ta-select").select_option("1")
    lab.wait_attr(
        ta, "data-feature", "1", "choosing 'signed code' in the list did not switch the feature"
    )
    # the comm delivers the choice to Python asynchronously: poll, do not read once
    lab.wait_kernel(name, "token_acts.feature", "1")
    after = _attr(tokens, "data-value")
    assert after == [
        "1",
        "0.9",
        "0.8",
        "0.7",
        "0.6",
        "0.5",
        "0",
        "-0.1",
        "-0.2",
        "-0.3",
        "-1",
        "-1.1",
        "NaN",
    ]
    colours_after = tokens.evaluate_all("els => els.map(e => e.style.background)")
    assert colours_after != colours_before
    # diverging: positive values red-ish, negative blue-ish, zero RdBu's centre, NaN magenta
    rgb = [tuple(map(int, re.findall(r"\d+", c))) for c in colours_after]
    assert rgb[0][0] > rgb[0][2] and rgb[11][2] > rgb[11][0], rgb
    assert rgb[6] == (247, 247, 247) and rgb[12] == (255, 0, 255), rgb
    assert ta.locator("img").count() == 0
    lab.assert_readable(ta)
    ta.screenshot(path=str(artifacts_dir / "token_activations_widget.png"))

    # ---- FeatureDashboard ------------------------------------------------------------------
    dash = lab.last_widget(DASH, "FeatureDashboard widget")
    rows = dash.locator(".ms-fd-context")
    assert rows.count() == 4, f"expected k=4 top contexts, found {rows.count()}"
    assert dash.get_attribute("data-feature") == "0"
    assert dash.locator(".ms-fd-input").input_value() == "0"
    # feature f peaks with value 5 + f on context 2 f at position f
    assert rows.first.get_attribute("data-context") == "0"
    top = rows.first.locator(".ms-tok-max")
    assert top.get_attribute("data-value") == "5" and top.get_attribute("data-pos") == "0"
    contexts_before = _attr(rows, "data-context")
    assert dash.locator(".ms-fd-logits-pos .ms-fd-logit").count() == 4  # capped at d_vocab // 2
    assert dash.locator(".ms-fd-hist-plot").get_attribute("data-total") == str(6 * 5)
    # histogram axes: count ticks (from 0) on the y axis, value ticks on the x axis
    yticks = dash.locator(".ms-fd-hist-ytick").evaluate_all("els => els.map(e => e.textContent)")
    assert len(yticks) >= 2 and yticks[0] == "0", yticks
    assert all(t.isdigit() for t in yticks), yticks
    ys = dash.locator(".ms-fd-hist-ytick").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect().top)"
    )
    assert ys == sorted(ys, reverse=True), f"count ticks do not go up the axis: {ys}"
    xticks = dash.locator(".ms-fd-hist-xtick").evaluate_all("els => els.map(e => e.textContent)")
    assert len(xticks) >= 2, xticks
    xs = [float(t) for t in xticks]
    assert xs == sorted(xs) and xs[-1] <= 5.0, xticks  # values up to the top activation, 5
    # logit values: one number of decimals for both columns
    vals = dash.locator(".ms-fd-logit-val").evaluate_all("els => els.map(e => e.textContent)")
    assert len(vals) == 8 and len({len(v.lstrip("-").split(".")[1]) for v in vals}) == 1, vals
    lab.assert_readable(dash)
    assert dash.locator(".ms-fd-prev").is_disabled()

    dash.locator(".ms-fd-next").click()
    lab.wait_attr(
        dash, "data-feature", "1", "clicking next did not move the dashboard to feature 1"
    )
    assert dash.locator(".ms-fd-input").input_value() == "1"
    lab.wait_kernel(name, "dash.feature", "1")
    assert dash.locator(".ms-fd-name").text_content() == "feature 1"
    assert rows.first.get_attribute("data-context") == "2"
    top = rows.first.locator(".ms-tok-max")
    assert top.get_attribute("data-value") == "6" and top.get_attribute("data-pos") == "1"
    assert _attr(rows, "data-context") != contexts_before
    shown = dash.locator(".ms-tok").evaluate_all("els => els.map(e => e.textContent)")
    assert IMG in shown, "context 2 holds the <img> token; it should show as text"
    assert dash.locator("img").count() == 0, "a token was parsed as HTML: <img> element created"
    # the <img> token is longer than a token's slot: cut with an ellipsis, full text on hover
    long_tok = dash.locator(".ms-fd-context .ms-tok").filter(has_text="<img").first
    assert long_tok.evaluate("e => e.scrollWidth > e.clientWidth"), "token was not truncated"
    assert long_tok.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
    assert IMG in long_tok.get_attribute("title")
    dash.screenshot(path=str(artifacts_dir / "feature_dashboard_widget.png"))

    # and the other way: Python sets the feature, the view follows
    lab.kernel_eval(name, "setattr(dash, 'feature', 2)")
    lab.wait_attr(
        dash, "data-feature", "2", "setting dash.feature = 2 in Python did not move the view"
    )
    assert rows.first.get_attribute("data-context") == "4"
    assert dash.locator(".ms-fd-next").is_disabled()

    # ---- nothing executed, nothing left 127.0.0.1 -------------------------------------------
    lab.assert_no_code_ran("a token")
    lab.assert_stayed_local()
