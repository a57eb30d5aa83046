"""AttentionPatterns: validation, binary payload encoding, from_cache, and the shipped bundle."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mechscope.widgets import AttentionPatterns, _buffers

STATIC = Path(__file__).resolve().parents[2] / "src" / "mechscope" / "widgets" / "static"


# The bundle's source code is not data: its numeric literals (e.g. sRGB 1.055) are not floats
# sent as JSON.
_CODE = ("_esm", "_css")


def causal_pattern(n_layers: int, n_heads: int, n_tokens: int, seed: int = 0) -> torch.Tensor:
    """[layer, head, q, k] causal softmax attention."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n_layers, n_heads, n_tokens, n_tokens, generator=g)
    mask = torch.ones(n_tokens, n_tokens, dtype=torch.bool).triu(1)
    return scores.masked_fill(mask, float("-inf")).softmax(-1)


def toks(n: int) -> list[str]:
    return [f" t{i}" for i in range(n)]


# ---- validation ---------------------------------------------------------------------------


def test_tokens_length_mismatch_names_both_shapes():
    with pytest.raises(ValueError) as err:
        AttentionPatterns(causal_pattern(1, 2, 12), toks(10))
    msg = str(err.value)
    assert "12 key positions but 10 tokens" in msg
    assert "(1, 2, 12, 12)" in msg and "(10,)" in msg
    assert "Fix" in msg


def test_non_square_pattern_rejected():
    with pytest.raises(ValueError, match=r"5 query positions but 7 key positions"):
        AttentionPatterns(np.full((2, 3, 5, 7), 0.1), toks(7))


@pytest.mark.parametrize("shape", [(4, 4), (1, 2, 3, 4, 4), (4,)])
def test_wrong_ndim_rejected(shape):
    with pytest.raises(ValueError, match=r"expected \[layer, head, query_pos, key_pos\]"):
        AttentionPatterns(np.full(shape, 0.25), toks(4))


def test_tokens_must_be_strings():
    with pytest.raises(ValueError, match=r"tokens\[1\] is int .*to_str_tokens"):
        AttentionPatterns(causal_pattern(1, 1, 3), ["a", 5, "c"])
    with pytest.raises(ValueError, match=r"list of str"):
        AttentionPatterns(causal_pattern(1, 1, 3), "abc")


def test_scores_instead_of_pattern_rejected():
    with pytest.raises(ValueError, match=r"expected probabilities in \[0, 1\].*hook_attn_scores"):
        AttentionPatterns(torch.randn(1, 2, 4, 4) * 5, toks(4))


def test_bad_dtype_and_selected_and_labels():
    a = causal_pattern(2, 3, 4)
    with pytest.raises(ValueError, match=r"dtype='bfloat16'.*'float32', 'float16', 'uint8'"):
        AttentionPatterns(a, toks(4), dtype="bfloat16")
    with pytest.raises(
        ValueError, match=r"selected=\[2, 0\] is out of range: .*2 layers and 3 heads"
    ):
        AttentionPatterns(a, toks(4), selected=[2, 0])
    with pytest.raises(ValueError, match=r"layer_labels has 1 labels but attention has 2 layers"):
        AttentionPatterns(a, toks(4), layer_labels=["only"])


def test_three_dim_input_is_one_layer():
    w = AttentionPatterns(causal_pattern(1, 4, 6)[0], toks(6))
    assert (w.n_layers, w.n_heads, w.n_tokens) == (1, 4, 6)
    assert w.layer_labels == ["L0"]


# ---- payload encoding ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "itemsize", "tol"), [("float32", 4, 0.0), ("float16", 2, 1e-3), ("uint8", 1, 1 / 255)]
)
def test_payload_length_and_round_trip(dtype, itemsize, tol):
    a = causal_pattern(2, 3, 9, seed=1)
    w = AttentionPatterns(a, toks(9), dtype=dtype)
    assert w.dtype == dtype
    assert isinstance(w.attention, bytes)
    assert len(w.attention) == 2 * 3 * 9 * 9 * itemsize
    back = w.pattern()
    assert back.shape == (2, 3, 9, 9)
    err = np.abs(back - a.numpy()).max()
    if tol == 0.0:
        assert np.array_equal(back, a.numpy())
    else:
        assert err <= tol, err


def test_uint8_codes_are_value_times_254_with_255_reserved():
    a = np.array([[[[0.0, 1.0], [0.5, np.nan]]]], dtype=np.float32)
    w = AttentionPatterns(a, ["a", "b"], dtype="uint8")
    assert list(w.attention) == [0, 254, 127, 255]


def test_auto_dtype_choice():
    # 2 x 4 x 21 x 21 float32 is tiny: keep it exact.
    assert AttentionPatterns(causal_pattern(2, 4, 21), toks(21)).dtype == "float32"
    assert _buffers.choose_dtype(2**20) == "float32"  # exactly 4 MiB of float32
    assert _buffers.choose_dtype(2**20 + 1) == "float16"
    assert _buffers.choose_dtype(2**21 + 1) == "uint8"


def test_real_model_size_payload_under_5mb():
    # GPT-2 small on a 128-token prompt: 12 layers x 12 heads x 128^2.
    w = AttentionPatterns(causal_pattern(12, 12, 128), toks(128))
    assert w.dtype == "uint8"  # float16 would be 4.7 MB > the 4 MiB auto budget
    state = w.get_state()
    buffers = len(state["attention"])
    json_part = len(_state_json(state))
    assert buffers == 12 * 12 * 128 * 128
    assert buffers + json_part <= 5_000_000, (buffers, json_part)


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_nonfinite_values_survive_encoding(dtype):
    a = causal_pattern(1, 2, 5).numpy()
    a[0, 1, 3, 2] = np.nan
    a[0, 0, 4, 0] = np.inf
    back = AttentionPatterns(a, toks(5), dtype=dtype).pattern()
    assert np.isnan(back[0, 1, 3, 2])
    # uint8 has one non-finite code, so Inf comes back as NaN; floats keep Inf.
    assert not np.isfinite(back[0, 0, 4, 0])
    finite = np.isfinite(a)
    assert np.isfinite(back[finite]).all()


def test_state_has_no_json_list_of_floats():
    w = AttentionPatterns(causal_pattern(2, 2, 8), toks(8))
    state = w.get_state()
    assert isinstance(state["attention"], (bytes, memoryview))

    def float_lists(x, path="state"):
        if isinstance(x, (list, tuple)):
            if any(isinstance(v, float) for v in x):
                yield path
            for i, v in enumerate(x):
                yield from float_lists(v, f"{path}[{i}]")
        elif isinstance(x, dict):
            for k, v in x.items():
                yield from float_lists(v, f"{path}.{k}")

    assert list(float_lists(state)) == []
    assert re.search(r"\d\.\d{3,}", _state_json(state)) is None


# ---- repr, selection, from_cache -------------------------------------------------------------


def test_repr_is_deterministic():
    a = causal_pattern(2, 4, 21)
    w1 = AttentionPatterns(a, toks(21), selected=[1, 2])
    w2 = AttentionPatterns(a, toks(21), selected=[1, 2])
    expected = (
        "AttentionPatterns(n_layers=2, n_heads=4, n_tokens=21, dtype='float32', selected=[1, 2])"
    )
    assert repr(w1) == repr(w2) == expected


def test_selected_is_observable_and_validated():
    import traitlets

    w = AttentionPatterns(causal_pattern(2, 4, 5), toks(5))
    seen = []
    w.observe(lambda change: seen.append(change["new"]), names="selected")
    w.selected = [1, 3]
    assert seen == [[1, 3]]
    with pytest.raises(traitlets.TraitError, match=r"out of range"):
        w.selected = [2, 0]
    assert w.selected == [1, 3]


def test_from_cache_dict_of_tensors():
    a = causal_pattern(3, 2, 6, seed=3)
    cache = {
        f"blocks.{layer}.attn.hook_pattern": a[layer][None].repeat(2, 1, 1, 1) for layer in range(3)
    }
    cache["blocks.0.hook_resid_pre"] = torch.zeros(2, 6, 8)
    w = AttentionPatterns.from_cache(cache, toks(6), dtype="float32")
    assert (w.n_layers, w.n_heads, w.n_tokens) == (3, 2, 6)
    assert np.array_equal(w.pattern(), a.numpy())

    sub = AttentionPatterns.from_cache(cache, toks(6), layer=[2, 0], batch_index=1, title="t")
    assert sub.layer_labels == ["L2", "L0"]
    assert np.allclose(sub.pattern()[0], a[2].numpy(), atol=1e-6)
    assert sub.title == "t"

    # Batch dim already dropped: [head, q, k].
    flat = {f"blocks.{layer}.attn.hook_pattern": a[layer] for layer in range(3)}
    assert AttentionPatterns.from_cache(flat, toks(6)).n_layers == 3


def test_from_cache_errors():
    with pytest.raises(
        ValueError,
        match=r"no attention patterns.*run_with_cache\(tokens, names=lambda n: n.endswith\('hook_pattern'\)\)",
    ):
        AttentionPatterns.from_cache({"blocks.0.hook_resid_pre": torch.zeros(1, 3, 4)}, toks(3))
    cache = {"blocks.0.attn.hook_pattern": causal_pattern(1, 2, 3)}
    with pytest.raises(ValueError, match=r"layer\(s\) \[4\].*layers \[0\]"):
        AttentionPatterns.from_cache(cache, toks(3), layer=[4])
    with pytest.raises(ValueError, match=r"batch_index=3 but .* batch size 1"):
        AttentionPatterns.from_cache(cache, toks(3), batch_index=3)
    with pytest.raises(ValueError, match=r"3 key positions but 2 tokens"):
        AttentionPatterns.from_cache(cache, toks(2))


# ---- the shipped bundle ------------------------------------------------------------------


def test_bundle_exists_and_is_offline_and_safe():
    js = (STATIC / "attention.js").read_text(encoding="utf-8")
    css = (STATIC / "attention.css").read_text(encoding="utf-8")
    assert AttentionPatterns._esm is not None and "ms-attention" in js
    assert "export" in js and "render" in js
    for text in (js, css):
        assert "innerHTML" not in text
        assert re.search(r"https?://", text) is None
        assert "@import" not in text
    assert "insertAdjacentHTML" not in js


def test_typescript_sources_never_use_innerhtml():
    src = Path(__file__).resolve().parents[2] / "widgets"
    sources = [p for p in src.rglob("*.ts") if "node_modules" not in p.parts]
    assert any(p.name == "index.ts" for p in sources)
    offenders = [
        str(p)
        for p in sources
        if re.search(r"innerHTML|insertAdjacentHTML|outerHTML", p.read_text())
    ]
    assert offenders == []


def _state_json(state: dict) -> str:
    import json

    return json.dumps(
        {
            k: v
            for k, v in state.items()
            if not isinstance(v, (bytes, memoryview)) and k not in _CODE
        }
    )
