"""mechscope.widgets.circuitsvis: the same call as real CircuitsVis gives a widget holding the
data CircuitsVis would render (read from the props JSON in CircuitsVis' HTML)."""

import json
import re
import warnings

import circuitsvis as real  # required (dev extra): the comparison needs it
import numpy as np
import pytest
import torch

from mechscope.widgets import AttentionPatterns, FeatureDashboard, Heatmap, TokenActivations
from mechscope.widgets import circuitsvis as cv
from mechscope.widgets._buffers import decode

TOKENS = ["<bos>", "The", " cat", " sat", " on"]
TOL = 1e-6


def props(rendered) -> dict:
    """The props object CircuitsVis passes to its React component: the JSON after the
    component name in ``render("circuits-vis-...", Name, {...})`` of the CDN source."""
    m = re.search(
        r'render\(\s*"circuits-vis-[^"]+",\s*\w+,\s*(\{.*\})\s*\)\s*</script>', str(rendered), re.S
    )
    assert m, str(rendered)[:300]
    return json.loads(m.group(1))


def pattern(n_heads=3, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n_heads, n, n, generator=g)
    return scores.masked_fill(torch.ones(n, n).triu(1).bool(), -torch.inf).softmax(-1)


def heatmap_values(w: Heatmap) -> np.ndarray:
    return decode(w.values, "float32", (w.n_panels, w.n_rows, w.n_cols))


def token_values(w: TokenActivations) -> np.ndarray:  # [feature, text, pos]
    return decode(w.values, w.dtype, (w.n_features, w.n_texts, w.n_pos))


def test_attention_patterns_holds_circuitsvis_data():
    attn = pattern()
    ref = props(real.attention.attention_patterns(tokens=TOKENS, attention=attn))
    for given in (attn, attn.numpy(), attn.tolist()):  # tensor, array, nested list
        w = cv.attention.attention_patterns(tokens=TOKENS, attention=given)
        assert isinstance(w, AttentionPatterns) and w.tokens == ref["tokens"]
        got = decode(w.attention, w.dtype, (1, w.n_heads, w.n_tokens, w.n_tokens))[0]
        assert np.abs(got - np.array(ref["attention"])).max() <= TOL


def test_attention_heads_holds_values_names_and_limits():
    attn = pattern(4)
    kw = dict(attention_head_names=["a", "b", "c", "d"], max_value=0.8, min_value=0.1)
    ref = props(real.attention.attention_heads(attn, TOKENS, **kw))
    w = cv.attention.attention_heads(attn, TOKENS, **kw)
    assert isinstance(w, Heatmap)
    assert np.abs(heatmap_values(w) - np.array(ref["attention"])).max() <= TOL
    assert w.panel_titles == ref["attentionHeadNames"]
    assert (w.vmin, w.vmax) == (ref["minValue"], ref["maxValue"]) == (0.1, 0.8)
    assert w.row_labels == w.col_labels == ref["tokens"]
    # defaults: probabilities on [0, 1], heads named as CircuitsVis' component does
    d = cv.attention.attention_heads(attn, TOKENS)
    assert (d.vmin, d.vmax, d.center) == (0.0, 1.0, None) and d.panel_titles[0] == "Head 0"


def test_attention_pattern_holds_values_and_limits():
    attn = pattern(1)[0] - 0.2  # any values, e.g. a difference of patterns
    ref = props(real.attention.attention_pattern(TOKENS, attn, max_value=0.5, min_value=-0.5))
    w = cv.attention.attention_pattern(TOKENS, attn, max_value=0.5, min_value=-0.5)
    assert np.abs(heatmap_values(w)[0] - np.array(ref["attention"])).max() <= TOL
    assert (w.vmin, w.vmax) == (ref["minValue"], ref["maxValue"])
    assert w.col_labels == ref["tokens"]
    assert cv.attention.attention_pattern(TOKENS, attn).center == 0.0  # signed: diverging


def test_ignored_options_warn_once_naming_them():
    attn = pattern(2)
    with pytest.warns(UserWarning) as rec:
        cv.attention.attention_heads(
            attn, TOKENS, negative_color="red", positive_color="blue", mask_upper_tri=True
        )
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert all(n in msg for n in ("negative_color", "positive_color", "mask_upper_tri"))
    with pytest.warns(UserWarning, match="max_value"):
        cv.tokens.colored_tokens(TOKENS, torch.arange(5.0), max_value=3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # defaults, and options that do act: no warning
        cv.attention.attention_heads(attn, TOKENS, max_value=1.0)
        cv.topk_tokens.topk_tokens([TOKENS], [np.zeros((1, 5, 2))], max_k=10)


def test_colored_tokens_holds_tokens_and_values():
    values = torch.tensor([0.5, -1.25, 2.0, 0.0, 3.5])
    ref = props(real.tokens.colored_tokens(TOKENS, values))
    w = cv.tokens.colored_tokens(TOKENS, values)
    assert isinstance(w, TokenActivations) and w.tokens == [ref["tokens"]]
    assert np.abs(token_values(w)[0, 0] - np.array(ref["values"])).max() <= TOL


def test_colored_tokens_multi_holds_values_and_labels():
    values = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    ref = props(real.tokens.colored_tokens_multi(TOKENS, values, labels=["x", "y", "z"]))
    w = cv.tokens.colored_tokens_multi(TOKENS, values, labels=["x", "y", "z"])
    assert w.feature_names == ref["labels"] and w.tokens == [ref["tokens"]]
    got = token_values(w)[:, 0, :].T  # [pos, K]
    assert np.abs(got - np.array(ref["values"])).max() <= TOL


def test_topk_tokens_holds_every_topk_and_bottomk_value():
    rng = np.random.default_rng(0)
    texts = [TOKENS, TOKENS[:3]]
    acts = [rng.normal(size=(2, len(t), 4)).astype(np.float32) for t in texts]
    kw = dict(max_k=2, first_dimension_labels=["early", "late"])
    ref = props(real.topk_tokens.topk_tokens(texts, acts, **kw))
    with pytest.warns(UserWarning, match="max_k"):
        w = cv.topk_tokens.topk_tokens(texts, acts, **kw)
    assert w.tokens == ref["tokens"] and w.feature_names[5] == "late Neuron 1"
    vals = token_values(w)  # [layer * 4 + neuron, sample, pos]
    for i, t in enumerate(texts):
        for layer in range(2):
            for n in range(4):
                row = np.sort(vals[layer * 4 + n, i, : len(t)])
                top = np.array(ref["topkVals"][i][layer])[:, n]
                bottom = np.array(ref["bottomkVals"][i][layer])[:, n]
                assert np.abs(row[::-1][: len(top)] - top).max() <= TOL
                assert np.abs(row[: len(bottom)][::-1] - bottom).max() <= TOL


def test_topk_samples_lists_each_neurons_samples_in_circuitsvis_order():
    rng = np.random.default_rng(1)
    shape = (2, 3, 4)  # layers, neurons, samples
    toks = [[[TOKENS[: 2 + (s % 4)] for s in range(shape[2])] for _ in range(3)] for _ in range(2)]
    acts = [
        [[rng.uniform(0.1, 2, len(t)).tolist() for t in toks[i][n]] for n in range(3)]
        for i in range(2)
    ]
    ref = props(real.topk_samples.topk_samples(toks, acts, first_dimension_labels=list("abc")))
    w = cv.topk_samples.topk_samples(toks, acts, first_dimension_labels=list("abc"))
    assert isinstance(w, FeatureDashboard) and w.feature_names[4] == "Layer 1 b"
    n_f = shape[0] * shape[1]
    top_ctx = decode(w.top_context, "int32", (n_f, w.k))
    top_acts = decode(w.top_acts, w.dtype, (n_f, w.k, w.ctx_len))
    for layer in range(2):
        for n in range(3):
            f = layer * 3 + n
            samples = list(zip(ref["tokens"][layer][n], ref["activations"][layer][n], strict=True))
            samples.sort(key=lambda s: -max(s[1]))  # CircuitsVis' order: max activation, desc
            for j, (t, a) in enumerate(samples):
                assert w.contexts[top_ctx[f, j]] == t
                assert np.abs(top_acts[f, j, : len(a)] - np.array(a)).max() <= TOL


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match=r"attention is a ragged nested list"):
        cv.attention.attention_patterns(TOKENS, [[[1.0, 0.0]], [[1.0]]])
    with pytest.raises(ValueError, match=r"attention has shape \[3, 5, 5\].*tokens has 4"):
        cv.attention.attention_patterns(TOKENS[:4], pattern())
    with pytest.raises(ValueError, match=r"attention has shape \[5, 5\]; expected \[n_heads"):
        cv.attention.attention_heads(pattern(1)[0], TOKENS)
    with pytest.raises(ValueError, match=r"attention_head_names has 2 names"):
        cv.attention.attention_heads(pattern(3), TOKENS, attention_head_names=["a", "b"])
    with pytest.raises(ValueError, match=r"values has 4 entries but tokens has 5"):
        cv.tokens.colored_tokens(TOKENS, [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match=r"labels has 1 names but values has 2 columns"):
        cv.tokens.colored_tokens_multi(TOKENS, np.zeros((5, 2)), labels=["x"])
    with pytest.raises(ValueError, match=r"tokens\[1\] is int"):
        cv.tokens.colored_tokens(["a", 3], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"activations\[1\] has shape \[2, 5, 4\]"):
        cv.topk_tokens.topk_tokens([TOKENS, TOKENS[:3]], [np.zeros((2, 5, 4))] * 2)
    with pytest.raises(ValueError, match=r"activations\[0\]\[0\]\[0\] has 1 values"):
        cv.topk_samples.topk_samples([[[["a", "b"]]]], [[[[1.0]]]])
    with pytest.raises(TypeError, match=r"attention must be numbers"):
        cv.attention.attention_patterns(TOKENS, "not a pattern")
