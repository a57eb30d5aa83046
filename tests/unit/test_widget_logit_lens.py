"""LogitLens widget: binary payload, token table, targets, from a lens result, validation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import traitlets

import mechscope
from mechscope.lens import logit_lens
from mechscope.widgets import _buffers
from mechscope.widgets.logit_lens import LogitLens

STATIC = Path(__file__).resolve().parents[2] / "src" / "mechscope" / "widgets" / "static"
IMG = "<img src=x onerror=alert(1)>"


def small(**kw) -> LogitLens:
    """2 layers x 3 positions x k=2."""
    probs = np.array(
        [[[0.5, 0.2], [0.4, 0.3], [0.9, 0.1]], [[0.8, 0.1], [0.7, 0.2], [0.6, 0.3]]], np.float32
    )
    top = [
        [["a", "b"], ["b", IMG], ["c", "a"]],
        [["b", "a"], ["c", "a"], [IMG, "c"]],
    ]
    return LogitLens(probs, top, ["x", "b", "c"], row_labels=["0_pre", "final_post"], **kw)


def test_payload_is_binary_with_a_token_table():
    w = small()
    assert (w.n_layers, w.n_pos, w.k) == (2, 3, 2)
    assert w.token_table == ["a", "b", IMG, "c"]  # first-seen order, each string once
    assert len(w.top_ids) == 2 * 3 * 2 * 4 and len(w.top_probs) == 2 * 3 * 2 * 4
    ids = _buffers.decode(w.top_ids, "int32", (2, 3, 2))
    assert ids[1, 2].tolist() == [2, 3]
    assert w.top_k_at(0, 1) == [("b", pytest.approx(0.4)), (IMG, pytest.approx(0.3))]
    # targets default to the next input token: pos 0 -> "b", pos 1 -> "c", last -> none
    assert _buffers.decode(w.targets, "int32", (3,)).tolist() == [1, 3, -1]


def test_state_has_no_json_floats():
    state = small().get_state()
    ours = set(LogitLens.class_own_traits(sync=True))
    json_part = json.dumps(
        {k: v for k, v in state.items() if k in ours and not isinstance(v, (bytes, memoryview))}
    )
    assert re.findall(r"-?\d+\.\d+", json_part) == []
    assert IMG in state["token_table"]


def test_quantised_probabilities():
    w = small(dtype="uint8")
    assert w.dtype == "uint8" and len(w.top_probs) == 12
    assert abs(w.top_k_at(0, 0)[0][1] - 0.5) <= 1 / 508


def test_from_logit_lens_of_a_zoo_model():
    model = mechscope.load("grammar-2l")
    res = logit_lens(model, "two big red foxes run fast . a key")
    w = res.to_widget(k=4)
    assert (w.n_layers, w.n_pos, w.k) == (3, 10, 4)
    assert w.row_labels == ["0_pre", "1_pre", "final_post"]
    assert w.tokens == model.to_str_tokens("two big red foxes run fast . a key")
    assert w.title == "logit lens"
    # the final row's top-1 is the model's argmax, with its softmax probability
    probs = model(res.tokens)[0].softmax(-1)
    for pos in range(10):
        tok, p = w.top_k_at(2, pos)[0]
        assert tok == model.to_str_tokens(probs[pos].argmax())[0]
        assert p == pytest.approx(probs[pos].max().item(), abs=1e-6)
    # targets: the next input token where the table has it, -1 at the last position
    targets = _buffers.decode(w.targets, "int32", (10,))
    assert targets[-1] == -1
    hits = [w.token_table[t] == w.top_k_at(2, p)[0][0] for p, t in enumerate(targets) if t >= 0]
    assert any(hits)  # e.g. "." after "fast": the grammar allows only it


def test_selected_is_validated_two_way():
    w = small(selected=[1, 2])
    assert w.selected == [1, 2]
    w.selected = [0, 0]
    w.selected = []
    with pytest.raises(traitlets.TraitError, match=r"selected=\[2, 0\]; expected \[layer, pos\]"):
        w.selected = [2, 0]
    assert repr(small()) == "LogitLens(n_layers=2, n_pos=3, k=2, dtype='float32', selected=[])"


def test_bad_inputs_say_what_and_how_to_fix():
    probs = np.full((2, 3, 2), 0.5, np.float32)
    top = [[["a", "b"]] * 3] * 2
    with pytest.raises(
        ValueError, match=r"top_probs has shape \(3, 2\); expected \[layer, pos, k\]"
    ):
        LogitLens(probs[0], top, ["x", "y", "z"])
    with pytest.raises(ValueError, match=r"tokens has 2 entries but top_probs has 3 positions"):
        LogitLens(probs, top, ["x", "y"])
    with pytest.raises(ValueError, match=r"top_tokens must be nested lists \[layer\]\[pos\]\[k\]"):
        LogitLens(probs, top[:1], ["x", "y", "z"])
    with pytest.raises(ValueError, match=r"tokens\[1\] is int \(5\), not str"):
        LogitLens(probs, top, ["x", 5, "z"])
    with pytest.raises(ValueError, match=r"row_labels has 1 names for 2 layers"):
        LogitLens(probs, top, ["x", "y", "z"], row_labels=["a"])
    with pytest.raises(ValueError, match=r"batch_index=4 is out of range for 1 prompt"):
        LogitLens.from_result(logit_lens(mechscope.load("grammar-2l"), "a key"), batch_index=4)


def test_bundle_is_built_and_offline():
    js = (STATIC / "logit_lens.js").read_text()
    assert "innerHTML" not in js and "http://" not in js and "https://" not in js
    assert ".ms-logit-lens" in (STATIC / "logit_lens.css").read_text()
