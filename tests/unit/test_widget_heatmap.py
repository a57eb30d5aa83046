"""Heatmap: binary payload, one shared colour scale, validation, head scores, link_heads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import traitlets

from mechscope.widgets import AttentionPatterns, Heatmap, _buffers, link_heads
from mechscope.widgets.heatmap import color_scale

STATIC = Path(__file__).resolve().parents[2] / "src" / "mechscope" / "widgets" / "static"
IMG = "<img src=x onerror=alert(1)>"


def panels(seed: int = 0) -> np.ndarray:
    """[3 panels, 4 rows, 5 cols] signed values."""
    return np.random.default_rng(seed).normal(size=(3, 4, 5)).astype(np.float32)


def attention_widget(n_layers: int = 2, n_heads: int = 4, **kw) -> AttentionPatterns:
    pattern = np.tril(np.ones((3, 3), np.float32))
    pattern /= pattern.sum(-1, keepdims=True)
    return AttentionPatterns(
        np.broadcast_to(pattern, (n_layers, n_heads, 3, 3)), ["a", "b", "c"], **kw
    )


# ---- payload ----------------------------------------------------------------------------------


def test_payload_is_float32_bytes_and_round_trips():
    v = panels()
    w = Heatmap(torch.from_numpy(v))
    assert isinstance(w.values, bytes)
    assert len(w.values) == 3 * 4 * 5 * 4
    assert (w.n_panels, w.n_rows, w.n_cols) == (3, 4, 5)
    assert np.array_equal(_buffers.decode(w.values, "float32", (3, 4, 5)), v)
    assert np.array_equal(w.values_array(), v)


def test_two_dims_is_one_panel_and_nonfinite_values_survive():
    v = np.array([[0.0, np.nan, 1.0], [np.inf, -np.inf, -3.0]], np.float32)
    w = Heatmap(v)
    assert (w.n_panels, w.n_rows, w.n_cols) == (1, 2, 3)
    back = w.values_array()[0]
    assert np.isnan(back[0, 1]) and np.isposinf(back[1, 0]) and np.isneginf(back[1, 1])
    # NaN/Inf never set the scale (and never become zeros)
    assert (w.vmin, w.vmax) == (-3.0, 3.0)
    assert w.row_labels == ["0", "1"] and w.col_labels == ["0", "1", "2"]
    assert w.panel_titles == [""]


def test_state_has_no_json_list_of_floats():
    w = Heatmap(panels(), col_labels=["a", IMG, "c", "d", "e"])
    state = w.get_state()
    assert isinstance(state["values"], (bytes, memoryview))
    for key, value in state.items():
        if isinstance(value, list):
            assert not any(isinstance(x, float) for x in value), key
    ours = set(Heatmap.class_own_traits(sync=True))
    json_part = json.dumps(
        {k: v for k, v in state.items() if k in ours and not isinstance(v, (bytes, memoryview))}
    )
    # only the two scale limits and the centre are floats in the JSON part
    floats = re.findall(r"-?\d+\.\d+", json_part)
    assert len(floats) <= 3, floats
    assert IMG in state["col_labels"]  # labels travel as given; the browser shows them as text


# ---- colour scale ------------------------------------------------------------------------------


def test_diverging_scale_is_shared_by_all_panels_and_symmetric():
    v = np.zeros((3, 2, 2), np.float32)
    v[0, 0, 0] = 0.5  # resid: small
    v[1, 1, 1] = -4.0  # attn: the largest |value| sets the scale for every panel
    v[2, 0, 1] = 2.0
    w = Heatmap(v, panel_titles=["resid", "attn", "mlp"])
    assert (w.vmin, w.vmax) == (-4.0, 4.0)
    # each panel alone would have had its own, different scale
    assert color_scale(v[0:1], 0.0) == (-0.5, 0.5)
    assert w.panel_titles == ["resid", "attn", "mlp"]


def test_diverging_scale_around_a_non_zero_center():
    w = Heatmap(np.array([[0.2, 0.9]]), center=0.5)
    assert w.center == 0.5
    assert w.vmin == pytest.approx(0.1) and w.vmax == pytest.approx(0.9)


def test_sequential_scale_is_min_to_max_over_all_panels():
    v = np.array([[[0.2, 0.3]], [[0.1, np.nan]]], np.float32)
    w = Heatmap(v, center=None)
    assert w.center is None
    assert w.vmin == pytest.approx(0.1) and w.vmax == pytest.approx(0.3)
    assert color_scale(np.full((1, 1, 1), np.nan, np.float32), None) == (0.0, 0.0)


# ---- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (1, 2, 3, 4)])
def test_wrong_ndim_names_shape_and_expected_dims(shape):
    with pytest.raises(ValueError) as err:
        Heatmap(np.zeros(shape))
    msg = str(err.value)
    assert f"values has shape {shape}" in msg
    assert "expected [rows, cols] or [panels, rows, cols]" in msg and "Fix" in msg


def test_empty_values_rejected():
    with pytest.raises(ValueError, match=r"holds no values"):
        Heatmap(np.zeros((0, 3)))


def test_label_count_mismatch_names_both_numbers():
    with pytest.raises(
        ValueError,
        match=r"row_labels has 3 labels but values has 4 rows \(values shape \(3, 4, 5\)\).*Fix",
    ):
        Heatmap(panels(), row_labels=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"col_labels has 6 labels but values has 5 cols"):
        Heatmap(panels(), col_labels=list("abcdef"))
    with pytest.raises(ValueError, match=r"col_labels must be a list of str"):
        Heatmap(panels(), col_labels="abcde")


def test_labels_may_be_numbers_and_are_stored_as_str():
    w = Heatmap(np.zeros((2, 3)), row_labels=[3, 5], col_labels=np.arange(3))
    assert w.row_labels == ["3", "5"] and w.col_labels == ["0", "1", "2"]


def test_panel_titles_count_mismatch():
    with pytest.raises(
        ValueError,
        match=r"panel_titles has 2 titles but values has 3 panel\(s\).*shape \(3, 4, 5\)",
    ):
        Heatmap(panels(), panel_titles=["resid", "attn"])


def test_selected_out_of_range_gives_valid_ranges():
    with pytest.raises(
        ValueError,
        match=r"selected=\[3, 0, 0\] is out of range: this heatmap has 3 panel\(s\) of 4 rows x "
        r"5 cols, so panel must be in 0\.\.2, row in 0\.\.3 and col in 0\.\.4",
    ):
        Heatmap(panels(), selected=[3, 0, 0])
    with pytest.raises(ValueError, match=r"selected must be \[panel, row, col\]"):
        Heatmap(panels(), selected=[1, 2])  # [row, col] only for one panel
    with pytest.raises(ValueError, match=r"center must be a number"):
        Heatmap(panels(), center="zero")


def test_selected_trait_is_observable_and_validated():
    w = Heatmap(panels(), selected=[1, 2, 3])
    assert w.selected == [1, 2, 3]
    seen = []
    w.observe(lambda change: seen.append(change["new"]), names="selected")
    w.selected = [2, 0, 4]
    assert seen == [[2, 0, 4]]
    with pytest.raises(traitlets.TraitError, match=r"row in 0\.\.3"):
        w.selected = [0, 9, 0]
    assert w.selected == [2, 0, 4]
    w.selected = []  # clears
    assert Heatmap(np.zeros((2, 3)), selected=[1, 2]).selected == [0, 1, 2]


def test_repr_is_deterministic():
    a = Heatmap(panels(), selected=[0, 1, 2])
    b = Heatmap(panels(), selected=[0, 1, 2])
    assert repr(a) == repr(b)
    assert re.fullmatch(
        r"Heatmap\(n_panels=3, n_rows=4, n_cols=5, center=0, scale=\[-\S+, \S+\], "
        r"selected=\[0, 1, 2\]\)",
        repr(a),
    ), repr(a)


# ---- head scores -------------------------------------------------------------------------------


def test_from_head_scores_labels_and_sequential_map():
    scores = torch.rand(2, 4)
    w = Heatmap.from_head_scores(scores, title="induction")
    assert w.row_labels == ["L0", "L1"] and w.col_labels == ["H0", "H1", "H2", "H3"]
    assert (w.row_title, w.col_title) == ("layer", "head")
    assert w.center is None and w.title == "induction"
    assert (w.vmin, w.vmax) == (0.0, 1.0)  # scores are in [0, 1]: a fixed scale
    assert Heatmap.from_head_scores(scores, col_labels=list("abcd")).col_labels == list("abcd")
    with pytest.raises(
        ValueError, match=r"scores has shape \(2, 4, 1, 1\).*expected \[layer, head\]"
    ):
        Heatmap.from_head_scores(torch.rand(2, 4, 1, 1))


# ---- link_heads --------------------------------------------------------------------------------


def test_link_heads_propagates_both_ways_and_unlinks():
    hm = Heatmap.from_head_scores(np.random.rand(2, 4))
    attn = attention_widget(selected=[1, 2])
    unlink = link_heads(hm, attn)
    assert hm.selected == [0, 1, 2]  # linking shows the attention widget's head
    hm.selected = [0, 0, 3]  # a click in the heatmap ...
    assert attn.selected == [0, 3]  # ... focuses that head
    attn.selected = [1, 1]  # a click on a thumbnail ...
    assert hm.selected == [0, 1, 1]  # ... selects its cell
    unlink()
    hm.selected = [0, 0, 0]
    assert attn.selected == [1, 1]
    attn.selected = [1, 3]
    assert hm.selected == [0, 0, 0]
    unlink()  # harmless twice


def test_link_heads_keeps_the_panel_and_pushes_an_existing_selection():
    hm = Heatmap(np.random.rand(2, 2, 4), selected=[1, 0, 2])
    attn = attention_widget()
    link_heads(hm, attn)
    assert attn.selected == [0, 2]  # the heatmap already had a selection: it wins
    attn.selected = [1, 3]
    assert hm.selected == [1, 1, 3]  # stays in panel 1


def test_link_heads_validates_shapes_and_types():
    attn = attention_widget(n_layers=2, n_heads=4)
    with pytest.raises(
        ValueError,
        match=r"heatmap is 2 rows x 3 cols but the attention widget has 2 layers x 4 heads",
    ):
        link_heads(Heatmap.from_head_scores(np.random.rand(2, 3)), attn)
    with pytest.raises(TypeError, match=r"attention must be an AttentionPatterns widget"):
        link_heads(Heatmap.from_head_scores(np.random.rand(2, 4)), Heatmap(np.zeros((2, 4))))
    with pytest.raises(TypeError, match=r"heatmap must be a Heatmap"):
        link_heads(attn, attn)


# ---- bundle ------------------------------------------------------------------------------------


def test_bundle_exists_and_is_offline_and_safe():
    js = (STATIC / "heatmap.js").read_text(encoding="utf-8")
    css = (STATIC / "heatmap.css").read_text(encoding="utf-8")
    assert str(Heatmap._esm) == js  # anywidget reads the file we ship
    assert "ms-heatmap" in js and "ms-hm-cell" in js and "data-rendered" in js
    for text in (js, css):
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text
        assert "outerHTML" not in text
        assert re.search(r"https?://", text) is None
        assert "@import" not in text


def test_fixed_limits_for_sequential_scores():
    import numpy as np

    from mechscope.widgets import Heatmap

    hm = Heatmap.from_head_scores(np.array([[0.1, 0.3], [0.2, 0.25]]))
    assert (hm.vmin, hm.vmax) == (0.0, 1.0)  # scores keep their meaning: 0.3 is not "bright"
    auto = Heatmap(np.array([[0.1, 0.3]]), center=None)
    assert (auto.vmin, auto.vmax) == pytest.approx((0.1, 0.3))
    with pytest.raises(ValueError, match="center=None"):
        Heatmap(np.array([[0.1, 0.3]]), vmin=0.0)
    with pytest.raises(ValueError, match="vmin must be below vmax"):
        Heatmap(np.array([[0.1, 0.3]]), center=None, vmin=1.0, vmax=0.5)


def test_values_beyond_float32_are_refused_and_nan_still_marked():
    # 1e300 would silently become Inf in the float32 payload: an error naming values instead
    with pytest.raises(ValueError, match=r"values holds finite values up to 1e\+300"):
        Heatmap([[1e300, 1.0]])
    # a float64 tensor within range is sent exactly as float32; NaN stays a marked cell
    w = Heatmap(torch.tensor([[1e30, float("nan")]], dtype=torch.float64))
    back = w.values_array()
    assert back[0, 0, 0] == np.float32(1e30) and np.isnan(back[0, 0, 1])


def test_float16_encoding_never_turns_finite_values_into_inf():
    arr = np.array([1e5, -2.0], np.float32)
    with pytest.raises(ValueError, match=r"dtype='float16' cannot hold.*1e\+05"):
        _buffers.encode(arr, "float16")
    with pytest.raises(ValueError, match=r"dtype='float16'"):
        _buffers.resolve_signed_dtype("float16", arr)
    # "auto" falls back to float32 for a big payload that float16 cannot hold
    big = np.full(2**21, 1e5, np.float32)
    assert _buffers.resolve_signed_dtype("auto", big) == "float32"
    assert _buffers.resolve_signed_dtype("auto", big / 1e5) == "float16"
    ok = _buffers.encode(np.array([65504.0, np.nan], np.float32), "float16")
    assert np.isnan(_buffers.decode(ok, "float16", (2,))[1])


def test_head_scores_result_to_widget_one_panel_per_score():
    from mechscope.heads import HeadScoresResult

    t = torch.tensor([[0.1, 0.9], [0.3, 0.2]])
    res = HeadScoresResult(t, t * 0.5, t * 0.25, period=4, n_samples=2, seed=0)
    assert res.values.shape == (3, 2, 2) and torch.equal(res.values[1], t * 0.5)
    w = res.to_widget(title="scores")
    assert (w.n_panels, w.n_rows, w.n_cols) == (3, 2, 2)
    assert w.panel_titles == ["previous_token", "induction", "duplicate_token"]
    assert np.allclose(w.values_array()[1], (t * 0.5).numpy())
    assert (w.vmin, w.vmax) == (0.0, 1.0) and w.title == "scores"
