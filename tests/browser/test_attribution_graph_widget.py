"""AttributionGraph, run for real in JupyterLab + Chromium.

Opens ``tests/browser/notebooks/attribution_graph.ipynb`` (served as
``browser-tests/attribution_graph.ipynb``): the attribution graph of the shipped
``facts-ioi-2l`` model and transcoders on "The Colosseum is in", with the model and transcoders
given. Checks:

- render: one element per node Python's pruning kept, and the browser's own pruning at the
  result's thresholds shows exactly Python's edges; the tokens under the columns as text;
- hover: the details panel shows the node's label, its logit effects and top contexts;
- sliders: a lower node threshold shows the nodes ``result.prune(...)`` keeps, a higher one
  more; the kernel sees the slider's threshold;
- click: sets ``selected`` in the kernel, which ablates the feature and sends the new top
  next tokens, shown in the widget (round trip); setting ``selected`` in Python highlights;
- no text under 11 px; a screenshot; the page never tried to leave 127.0.0.1.

Artifacts (gitignored): tests/browser/artifacts/attribution_graph.png
"""

from __future__ import annotations

import ast

import pytest

pytestmark = pytest.mark.browser

GRAPH = '.ms-attr-graph[data-rendered="true"]'


def test_attribution_graph_renders_prunes_hovers_and_ablates(lab_page, artifacts_dir):
    lab = lab_page
    name = lab.run_test_notebook("attribution_graph.ipynb")

    def kernel(expr: str):
        return ast.literal_eval(lab.kernel_eval(name, f"repr(({expr}))"))

    w = lab.widget(GRAPH, ".ms-ag-title", what="AttributionGraph", title="Attribution graph test")
    nodes = w.locator(".ms-ag-node")

    # ---- render: Python's pruning, reproduced in the browser ---------------------------------
    kept, n_edges = kernel("int(g.kept.sum()), int((g.values != 0).sum())")
    assert nodes.count() == kept == int(w.get_attribute("data-visible-nodes"))
    assert int(w.get_attribute("data-visible-edges")) == n_edges
    kept_ids = kernel("g.kept.nonzero().flatten().tolist()")
    shown = nodes.evaluate_all("els => els.map(e => Number(e.dataset.node))")
    assert sorted(shown) == kept_ids
    tokens = w.locator(".ms-ag-token").evaluate_all("els => els.map(e => e.textContent)")
    assert tokens == kernel("g.str_tokens")

    # ---- hover: label, logit effects, contexts -----------------------------------------------
    top = kernel(
        "max(g.nodes_of('feature').tolist(), key=lambda i: float(g.influence[i]))"
    )  # the most influential feature
    node = w.locator(f'.ms-ag-node[data-node="{top}"]')
    node.hover()
    info = w.locator(".ms-ag-info")
    lab.wait_attr(info, "data-node", str(top), "hovering a node did not show its details")
    assert info.locator(".ms-ag-info-label").text_content() == kernel(f"g.labels[{top}]")
    chips = info.locator(".ms-ag-chip").evaluate_all("els => els.map(e => e.textContent)")
    assert chips == kernel(f"w.effect_tokens[{top}]")
    assert info.locator(".ms-ag-context").count() >= 1
    assert info.locator(".ms-ag-in .ms-ag-edge-row").count() >= 1
    lab.assert_readable(w)

    # ---- sliders: re-pruned in the browser; the kernel sees the threshold --------------------
    slider = w.locator(".ms-ag-node-slider")
    slider.fill("0.5")
    want = kernel("int(g.prune(node_threshold=0.5, edge_threshold=0.98).kept.sum())")
    lab.wait_attr(w, "data-visible-nodes", str(want), "the node slider did not re-prune")
    assert want < kept and nodes.count() == want
    lab.wait_until(
        "the kernel to see node_threshold=0.5",
        lambda: ((t := kernel("w.node_threshold")) == 0.5, t),
        timeout=30,
    )
    slider.fill("1")
    assert int(w.get_attribute("data-visible-nodes")) > kept
    slider.fill("0.8")
    lab.wait_attr(w, "data-visible-nodes", str(kept), "back at 0.8: Python's pruning")

    # ---- click: Python ablates the feature and sends the new top tokens ----------------------
    node.click()
    lab.wait_attr(w, "data-selected", str(top), "the clicked node is not selected")
    lab.wait_attr(w.locator(".ms-ag-iv"), "data-node", str(top), "no ablation came back")
    assert kernel("w.selected") == top
    toks, probs = kernel("w.intervention_tokens, w.intervention_array().tolist()")
    rows = w.locator(".ms-ag-iv-row")
    assert rows.count() == 5
    clean = rows.locator(".ms-ag-iv-clean-tok").evaluate_all("els => els.map(e => e.textContent)")
    ablated = rows.locator(".ms-ag-iv-ablated-tok").evaluate_all(
        "els => els.map(e => e.textContent)"
    )
    assert clean + ablated == toks
    shown_p = rows.locator(".ms-ag-iv-ablated-p").evaluate_all(
        "els => els.map(e => Number(e.textContent))"
    )
    assert shown_p == pytest.approx(probs[1], rel=1e-3)
    status = w.locator(".ms-ag-status").text_content()
    assert status == f"zeroed {kernel(f'g.labels[{top}]')} in the spliced model"
    assert "ms-ag-selected" in (node.get_attribute("class") or "")

    # ---- Python sets `selected`: the widget highlights that node -----------------------------
    err = kernel("int(g.nodes_of('error')[-1])")
    lab.kernel_eval(name, f"setattr(w, 'selected', {err})")
    lab.wait_attr(w, "data-selected", str(err), "setting w.selected in Python")
    assert "ms-ag-selected" in (
        w.locator(f'.ms-ag-node[data-node="{err}"]').get_attribute("class") or ""
    )
    lab.wait_attr(w.locator(".ms-ag-iv"), "data-node", str(err), "no ablation of the error node")
    w.screenshot(path=str(artifacts_dir / "attribution_graph.png"))

    lab.assert_stayed_local()
