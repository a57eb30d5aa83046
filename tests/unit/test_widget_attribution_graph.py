"""AttributionGraph widget: payload agrees with the result, TS/Python traits agree, static SVG,
bad input, and the two-way ablation (checked against a manual ablation in the spliced model)."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
import traitlets

import mechscope
from mechscope.attribution_graph import attribution_graph
from mechscope.splice import splice
from mechscope.transcoder import load_zoo_transcoder
from mechscope.widgets import AttributionGraph, _buffers
from mechscope.widgets import attribution_graph as ag_module

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "mechscope" / "widgets" / "static"
PROMPT = "The Colosseum is in"
CONTEXTS = [PROMPT, "When Mary and John went to the store , John gave a drink to"]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def model():
    return mechscope.load("facts-ioi-2l")


@pytest.fixture(scope="module")
def tcs():
    return [load_zoo_transcoder(f"facts-ioi-2l-tc{layer}") for layer in range(2)]


@pytest.fixture(scope="module")
def graph(model, tcs):
    return attribution_graph(model, tcs, PROMPT)


@pytest.fixture
def widget(graph, model, tcs):
    return AttributionGraph(graph, model=model, transcoders=tcs, contexts=CONTEXTS)


def decode(w, name, dtype, n):
    return _buffers.decode(getattr(w, name), dtype, (n,))


def nodes(svg_root) -> list[ET.Element]:
    return [e for e in svg_root.iter() if e.get("class") == "node"]


# ---- payload ----------------------------------------------------------------------------------


def test_node_and_edge_buffers_agree_with_the_result(graph):
    w = graph.to_widget()
    n = len(graph.kind)
    assert (w.n_nodes, w.n_layers, w.n_pos) == (n, 2, 5)
    codes = decode(w, "kind", "int32", n)
    assert [ag_module.KIND_CODES[k] for k in graph.kind] == codes.tolist()
    for name in ("layer", "pos", "index"):
        assert decode(w, name, "int32", n).tolist() == getattr(graph, name).tolist(), name
    for name in ("activation", "influence"):
        np.testing.assert_array_equal(decode(w, name, "float32", n), getattr(graph, name).numpy())
    # the edges are exactly the full adjacency's nonzero entries (more than the pruned graph)
    src = decode(w, "edge_src", "int32", w.n_edges)
    dst = decode(w, "edge_dst", "int32", w.n_edges)
    weight = decode(w, "edge_weight", "float32", w.n_edges)
    dense = np.zeros((n, n), np.float32)
    dense[dst, src] = weight
    np.testing.assert_array_equal(dense, graph.adjacency.numpy())
    assert w.n_edges == int((graph.adjacency != 0).sum()) > int((graph.values != 0).sum())
    assert w.labels == graph.labels and w.tokens == graph.str_tokens
    assert (w.node_threshold, w.edge_threshold) == (0.8, 0.98)
    # no logit effects, contexts or clicks without a model
    assert not w.interactive and w.n_effects == 0 and w.n_contexts == 0
    assert w.effect_tokens == [[]] * n and w.context_values == b""


def test_typescript_model_type_lists_exactly_the_synced_traits():
    ts = (ROOT / "widgets" / "attribution_graph" / "index.ts").read_text()
    body = re.search(r"export interface Model \{(.*?)\n\}", ts, re.S).group(1)
    ts_keys = set(re.findall(r"^\s+(\w+): ", body, re.M))
    py_keys = set(AttributionGraph.class_own_traits(sync=True))
    assert ts_keys == py_keys


def test_edge_cap_keeps_the_highest_scoring_edges(graph, monkeypatch):
    monkeypatch.setattr(ag_module, "MAX_EDGES", 300)
    src, dst, weight = ag_module._graph_edges(graph)
    assert len(src) == 300 and len(set(zip(src.tolist(), dst.tolist(), strict=True))) == 300
    np.testing.assert_array_equal(weight, graph.adjacency.numpy()[dst, src])
    pruned = {(int(s), int(d)) for d, s in zip(*np.nonzero(graph.values.numpy()), strict=True)}
    assert pruned <= set(zip(src.tolist(), dst.tolist(), strict=True))  # pruning's top edges stay


def test_logit_effects_and_contexts(widget, graph, model, tcs):
    feats = graph.nodes_of("feature").tolist()
    i = max(feats, key=lambda f: float(graph.influence[f]))
    layer, j = int(graph.layer[i]), int(graph.index[i])
    eff = tcs[layer].W_dec[j].detach() @ model.W_U.detach()
    values = _buffers.decode(widget.effect_values, "float32", (len(graph.kind), 10))
    np.testing.assert_allclose(values[i, :5], eff.topk(5).values.numpy(), rtol=1e-5)
    np.testing.assert_allclose(values[i, 5:], eff.topk(5, largest=False).values.numpy(), rtol=1e-5)
    assert widget.effect_tokens[i][:5] == model.to_str_tokens(eff.topk(5).indices.tolist())
    assert np.isnan(values[graph.nodes_of("error")[0]]).all()
    # top context: the largest activation of feature j over the contexts, at its token
    spliced = splice(model, tcs)
    best = []
    for c, text in enumerate(CONTEXTS):
        toks = model.to_tokens(text)
        _, cache = spliced.run_with_cache(toks, names=[f"{tcs[layer].cfg.site}.hook_sae_acts"])
        a = cache[f"{tcs[layer].cfg.site}.hook_sae_acts"][0, :, j]
        best += [(float(a[p]), c, p) for p in range(len(a))]
    v, c, p = max(best)
    ctx_values = _buffers.decode(widget.context_values, "float32", (len(graph.kind), 3))
    assert ctx_values[i, 0] == pytest.approx(v, rel=1e-6)
    assert widget.context_text[i][1] == model.to_str_tokens(model.to_tokens(CONTEXTS[c]))[p]


# ---- static fallback --------------------------------------------------------------------------


def test_fallback_svg_has_one_rect_per_kept_node_and_escapes_tokens(graph):
    tokens = ["<bos>", "<b>", "Colosseum", "is", "in"]
    w = AttributionGraph(dataclasses.replace(graph, str_tokens=tokens), title="a & b")
    data, _ = w._repr_mimebundle_()
    root = ET.fromstring(data["image/svg+xml"])
    assert len(nodes(root)) == int(graph.kept.sum())
    assert "&lt;b&gt;" in data["image/svg+xml"] and "<b>" not in data["image/svg+xml"]
    assert not [e for e in root.iter() if e.tag == f"{SVG}b"]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "<b>" in texts and "a & b" in texts
    assert min(float(t.get("font-size")) for t in root.iter(f"{SVG}text")) >= 11
    n_edges = int((graph.values != 0).sum())
    assert len(list(root.iter(f"{SVG}line"))) == n_edges
    # the sliders' thresholds (synced back) and the selection change the picture
    w.node_threshold = 0.5
    smaller = graph.prune(node_threshold=0.5, edge_threshold=0.98)
    assert len(nodes(ET.fromstring(w._render_svg()))) == int(smaller.kept.sum())
    hidden = int(torch.nonzero(~smaller.kept)[0])
    w.selected = hidden  # a selected node always shows, outlined
    drawn = nodes(ET.fromstring(w._render_svg()))
    assert len(drawn) == int(smaller.kept.sum()) + 1
    assert sum(e.get("stroke-width") == "2.5" for e in drawn) == 1


def test_repr_is_deterministic(graph):
    a, b = AttributionGraph(graph), AttributionGraph(graph)
    assert (
        repr(a)
        == repr(b)
        == (
            "AttributionGraph(160 features, 10 error nodes, 1 logits, 4667 edges; "
            "node_threshold=0.8, edge_threshold=0.98, selected=-1, interactive=False)"
        )
    )
    assert "object at" not in repr(a)


# ---- bad input --------------------------------------------------------------------------------


def test_bad_input_names_the_argument_and_the_fix(graph, model, tcs):
    with pytest.raises(TypeError, match="result must be an AttributionGraphResult, got dict"):
        AttributionGraph({"values": 1})
    with pytest.raises(ValueError, match="model= was given alone"):
        AttributionGraph(graph, model=model)
    with pytest.raises(ValueError, match="transcoders= was given alone"):
        AttributionGraph(graph, transcoders=tcs)
    with pytest.raises(ValueError, match="contexts= needs model= and transcoders="):
        AttributionGraph(graph, contexts=CONTEXTS)
    with pytest.raises(ValueError, match="2 layers but 1 transcoders"):
        AttributionGraph(graph, model=model, transcoders=tcs[:1])
    w = AttributionGraph(graph)
    with pytest.raises(traitlets.TraitError, match=r"selected=176 is not a node; expected -1"):
        w.selected = 176
    with pytest.raises(traitlets.TraitError, match=r"node_threshold=0.0; expected a fraction"):
        w.node_threshold = 0.0
    with pytest.raises(traitlets.TraitError, match=r"edge_threshold=1.5"):
        w.edge_threshold = 1.5


def test_bundle_exists_and_is_offline_and_safe():
    js = (STATIC / "attribution_graph.js").read_text(encoding="utf-8")
    css = (STATIC / "attribution_graph.css").read_text(encoding="utf-8")
    assert "ms-attr-graph" in js and "data-rendered" in js and "ms-ag-node" in css
    for text in (js, css):
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text
        assert re.search(r"https?://", text) is None and "@import" not in text


# ---- two-way: click a node, Python ablates it -------------------------------------------------


def manual_ablation(model, tcs, hook, p, j):
    """Top-5 probabilities, clean and with ``hook`` zeroed at ``[p, j]`` (j=None: all of pos p)."""
    spliced = splice(model, tcs)
    toks = model.to_tokens(PROMPT)

    def zero(act, hook):
        act = act.clone()
        act[0, p, slice(None) if j is None else j] = 0
        return act

    with torch.no_grad():
        clean = spliced(toks)[0, -1].softmax(-1)
        with spliced.hooks([(hook, zero)]):
            ablated = spliced(toks)[0, -1].softmax(-1)
    return clean, ablated


def test_selecting_a_feature_ablates_it_like_a_manual_splice_ablation(widget, graph, model, tcs):
    toks = model.to_tokens(PROMPT)
    with torch.no_grad():
        before = model(toks)
    i = max(graph.nodes_of("feature").tolist(), key=lambda f: float(graph.influence[f]))
    layer, p, j = int(graph.layer[i]), int(graph.pos[i]), int(graph.index[i])
    seen = []
    widget.observe(lambda c: seen.append(c["new"]), names="intervention_node")
    widget.selected = i
    assert seen == [i] and widget.intervention_node == i
    assert widget.intervention_status == f"zeroed {graph.labels[i]} in the spliced model"
    clean, ablated = manual_ablation(model, tcs, f"blocks.{layer}.hook_mlp_out.hook_sae_acts", p, j)
    top_clean, top_ablated = clean.topk(5).indices, ablated.topk(5).indices
    probs = widget.intervention_array()
    np.testing.assert_allclose(probs[0], clean[top_clean].numpy(), rtol=1e-5)
    np.testing.assert_allclose(probs[1], ablated[top_clean].numpy(), rtol=1e-5)
    np.testing.assert_allclose(probs[2], ablated[top_ablated].numpy(), rtol=1e-5)
    assert widget.intervention_tokens == model.to_str_tokens(
        top_clean.tolist() + top_ablated.tolist()
    )
    # 'Rome' sits at p = 0.9999: one feature moves it little, but it moves
    assert np.abs(probs[1] - probs[0]).max() > 1e-6, "the ablation changed nothing"
    # an error node: the layer's error vector zeroed at its position
    e = int(graph.nodes_of("error")[-1])
    widget.selected = e
    clean, ablated = manual_ablation(
        model, tcs, f"blocks.{int(graph.layer[e])}.hook_mlp_out.hook_sae_error",
        int(graph.pos[e]), None,
    )  # fmt: skip
    np.testing.assert_allclose(
        widget.intervention_array()[1], ablated[clean.topk(5).indices].numpy(), rtol=1e-5
    )
    # a node that cannot be ablated clears the intervention; the model is untouched
    widget.selected = 0
    assert widget.intervention_node == -1 and widget.intervention_tokens == []
    assert "feature or error node" in widget.intervention_status
    with torch.no_grad():
        assert torch.equal(model(toks), before)
