"""TokenActivations: validation, binary payload, feature trait, from_cache, shipped bundle."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import traitlets

from mechscope.widgets import TokenActivations, _buffers

STATIC = Path(__file__).resolve().parents[2] / "src" / "mechscope" / "widgets" / "static"


# The bundle's source code is not data: its numeric literals (e.g. sRGB 1.055) are not floats
# sent as JSON.
_CODE = ("_esm", "_css")


def ragged_texts() -> list[list[str]]:
    return [
        ["The", " cat", " sat"],
        ["<img src=x onerror=alert(1)>", " dog"],
        [" a", " b", " c", " d"],
    ]


def signed_values(seed: int = 0) -> np.ndarray:
    """[3 texts, 4 pos, 5 features], padding filled with junk the widget must drop."""
    return np.random.default_rng(seed).normal(size=(3, 4, 5)).astype(np.float32) * 3


# ---- validation -------------------------------------------------------------------------


def test_wrong_number_of_texts_names_both_shapes():
    with pytest.raises(ValueError) as err:
        TokenActivations(ragged_texts()[:2], signed_values())
    msg = str(err.value)
    assert "values has shape (3, 4, 5)" in msg and "2 texts of up to 3 tokens" in msg
    assert "[3, 2]" in msg and "Fix" in msg


def test_too_few_positions_rejected():
    with pytest.raises(
        ValueError, match=r"shape \(3, 3, 5\) .* up to 4 tokens .*\(3, >= 4, n_features\)"
    ):
        TokenActivations(ragged_texts(), signed_values()[:, :3])


@pytest.mark.parametrize("shape", [(3,), (3, 4, 5, 1)])
def test_wrong_ndim_rejected(shape):
    with pytest.raises(ValueError, match=r"expected \[n_texts, max_tokens, n_features\]"):
        TokenActivations(ragged_texts(), np.zeros(shape))


def test_texts_must_be_lists_of_str():
    with pytest.raises(ValueError, match=r"list of token lists"):
        TokenActivations("abc", np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"texts\[1\] must be a list of str"):
        TokenActivations([["a"], "b"], np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"texts\[0\]\[1\] is int .*not token ids"):
        TokenActivations([["a", 3]], np.zeros((1, 2)))


def test_feature_index_validated_with_range():
    with pytest.raises(
        ValueError,
        match=r"feature=5 is out of range: there are 5 features, so it must be in 0\.\.4",
    ):
        TokenActivations(ragged_texts(), signed_values(), feature=5)
    with pytest.raises(ValueError, match=r"feature=-1 is out of range"):
        TokenActivations(ragged_texts(), signed_values(), feature=-1)
    with pytest.raises(ValueError, match=r"feature_names has 2 names but there are 5 features"):
        TokenActivations(ragged_texts(), signed_values(), feature_names=["a", "b"])
    with pytest.raises(ValueError, match=r"dtype='uint8' is not supported for activations"):
        TokenActivations(ragged_texts(), signed_values(), dtype="uint8")


def test_feature_trait_is_observable_and_validated():
    w = TokenActivations(ragged_texts(), signed_values())
    seen = []
    w.observe(lambda change: seen.append(change["new"]), names="feature")
    w.feature = 3
    assert seen == [3]
    with pytest.raises(traitlets.TraitError, match=r"must be in 0\.\.4"):
        w.feature = 7
    assert w.feature == 3


# ---- payload ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "itemsize", "tol"), [("float32", 4, 0.0), ("float16", 2, 5e-3)])
def test_payload_layout_length_and_round_trip(dtype, itemsize, tol):
    v = signed_values(1)
    w = TokenActivations(ragged_texts(), torch.from_numpy(v), dtype=dtype)
    assert isinstance(w.values, bytes)
    assert len(w.values) == 5 * 3 * 4 * itemsize
    # [feature, text, pos] layout: feature 2 is one contiguous slice
    raw = _buffers.decode(w.values, dtype, (5, 3, 4))
    assert np.allclose(raw[2, 0, :3], v[0, :3, 2], atol=tol, rtol=1e-3)
    back = w.values_array()
    assert back.shape == (3, 4, 5)
    lengths = [3, 2, 4]
    for i, n in enumerate(lengths):
        assert np.allclose(back[i, :n], v[i, :n], atol=tol, rtol=1e-3)
        assert (back[i, n:] == 0).all()  # padding zeroed, so it never sets the colour scale


def test_one_feature_and_nonfinite_values():
    v = np.array([[0.0, 1.5, np.nan], [np.inf, -2.0, 0.0]], dtype=np.float32)
    w = TokenActivations([["a", "b", "c"], ["d", "e"]], v)
    assert (w.n_texts, w.n_pos, w.n_features) == (2, 3, 1)
    assert w.feature_names == ["feature 0"]
    back = w.values_array()[..., 0]
    assert np.isnan(back[0, 2]) and np.isposinf(back[1, 0]) and back[1, 1] == -2.0
    assert back[1, 2] == 0.0  # padding


def test_auto_dtype_is_float32_when_small_and_float16_when_big():
    assert TokenActivations(ragged_texts(), signed_values()).dtype == "float32"
    big = np.ones((8, 512, 300), np.float32)  # 4.9 MB of float32
    assert _buffers.resolve_signed_dtype("auto", big) == "float16"
    big[0, 0, 0] = 1e6  # would overflow float16
    assert _buffers.resolve_signed_dtype("auto", big) == "float32"


def test_state_has_no_json_list_of_floats():
    w = TokenActivations(ragged_texts(), signed_values())
    state = w.get_state()
    assert isinstance(state["values"], (bytes, memoryview))
    json_part = json.dumps(
        {
            k: v
            for k, v in state.items()
            if not isinstance(v, (bytes, memoryview)) and k not in _CODE
        }
    )
    assert re.search(r"\d\.\d{3,}", json_part) is None
    assert "<img src=x onerror=alert(1)>" in state["tokens"][1]  # tokens travel as given


def test_repr_is_deterministic():
    a = TokenActivations(ragged_texts(), signed_values(), feature=2)
    b = TokenActivations(ragged_texts(), signed_values(), feature=2)
    expected = "TokenActivations(n_texts=3, n_pos=4, n_features=5, dtype='float32', feature=2)"
    assert repr(a) == repr(b) == expected


# ---- from_cache ----------------------------------------------------------------------------


def test_from_cache_picks_units_and_names_them():
    acts = torch.randn(2, 5, 16)
    cache = {"blocks.0.mlp.hook_post": acts, "blocks.0.hook_resid_pre": torch.zeros(2, 5, 8)}
    texts = [[f"t{i}" for i in range(5)], [f"u{i}" for i in range(4)]]
    w = TokenActivations.from_cache(
        cache, "blocks.0.mlp.hook_post", texts, features=[3, 9], feature=1
    )
    assert w.feature_names == ["blocks.0.mlp.hook_post[3]", "blocks.0.mlp.hook_post[9]"]
    assert w.feature == 1
    back = w.values_array()
    assert np.allclose(back[0, :, 1], acts[0, :, 9].numpy())
    assert np.allclose(back[1, :4, 0], acts[1, :4, 3].numpy())


def test_from_cache_errors():
    cache = {"blocks.0.mlp.hook_post": torch.zeros(1, 3, 4)}
    with pytest.raises(KeyError, match=r"Did you mean 'blocks.0.mlp.hook_post'"):
        TokenActivations.from_cache(cache, "blocks.0.mlp.hook_pst", [["a", "b", "c"]])
    with pytest.raises(
        ValueError, match=r"features entry of blocks.0.mlp.hook_post=4 is out of range.*0\.\.3"
    ):
        TokenActivations.from_cache(
            cache, "blocks.0.mlp.hook_post", [["a", "b", "c"]], features=[4]
        )
    heads = {"blocks.0.attn.hook_z": torch.zeros(1, 3, 2, 4)}
    with pytest.raises(ValueError, match=r"expected \[batch, pos, d\].*pick one head"):
        TokenActivations.from_cache(heads, "blocks.0.attn.hook_z", [["a", "b", "c"]])


# ---- bundle ----------------------------------------------------------------------------------


def test_bundle_exists_and_is_offline_and_safe():
    js = (STATIC / "token_activations.js").read_text(encoding="utf-8")
    css = (STATIC / "token_activations.css").read_text(encoding="utf-8")
    assert str(TokenActivations._esm) == js  # anywidget reads the file we ship
    assert "ms-token-acts" in js and "ms-tok" in js and "data-rendered" in js
    for text in (js, css):
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text
        assert re.search(r"https?://", text) is None
        assert "@import" not in text
