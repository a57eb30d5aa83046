"""Widgets at the scale of an 8B model (issue 17 item 4): a 32 x 32 x 512 AttentionPatterns
saves thumbnails (exact block maxima) and one head, and serves any other head on request."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from ipywidgets.widgets.widget import _remove_buffers

from mechscope.widgets import AttentionPatterns, Heatmap, LogitLens, _buffers


def notebook_bytes(widget) -> int:
    """What the widget state saves into a notebook: JSON state + base64 buffers."""
    state, _, buffers = _remove_buffers(widget.get_state())
    return len(json.dumps(state).encode()) + sum(len(base64.b64encode(b)) for b in buffers)


def causal(n_heads: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((n_heads, n, n)).astype(np.float32)
    s[:, np.triu(np.ones((n, n), bool), 1)] = -np.inf
    s = np.exp(s - s.max(-1, keepdims=True))
    return (s / s.sum(-1, keepdims=True)).astype(np.float32)


def toks(n: int) -> list[str]:
    return [f" t{i}" for i in range(n)]


@pytest.fixture(scope="module")
def big() -> AttentionPatterns:
    # 32 layers x 32 heads x 512 tokens: 268 M weights, as a broadcast view (no 1 GiB here)
    heads = causal(32, 512)
    return AttentionPatterns(np.broadcast_to(heads, (32, 32, 512, 512)), toks(512))


def test_8b_scale_state_is_under_5mb_and_thumbnails(big):
    assert big.thumb_stride == 12  # 43 x 43 thumbnails: 1024 of them fit the 2 MiB budget
    assert (big.dtype, big.focus_dtype, list(big.focus_head)) == ("uint8", "float32", [0, 0])
    assert len(big.attention) == 32 * 32 * 43 * 43
    assert len(big.focus) == 512 * 512 * 4
    assert notebook_bytes(big) <= 5_000_000, notebook_bytes(big)
    # the static fallback saved next to it stays small too
    assert len(big._render_svg().encode()) <= 600_000


def test_thumbnails_are_exact_block_maxima():
    rng = np.random.default_rng(1)
    # 1 x 17 x 500 x 500 = 4.25 M weights: just over the 4 Mi sent whole
    a = rng.uniform(0, 0.5, size=(1, 17, 500, 500)).astype(np.float32)
    a[0, 2, 499, 3] = 0.9  # in the last (4-row) block row
    a[0, 5, 10, 10] = np.nan
    w = AttentionPatterns(a, toks(500), dtype="float32")
    assert (w.thumb_stride, w.dtype) == (8, "float32")  # ceil(500 / 64) = 8: 63 x 63
    thumbs = w.thumbnails()
    assert thumbs.shape == (1, 17, 63, 63)
    assert thumbs[0, 2, 62, 0] == np.float32(0.9)
    assert np.isnan(thumbs[0, 5, 1, 1]) and np.isnan(thumbs).sum() == 1
    for head in (0, 2, 16):
        for qi, ki in ((0, 0), (62, 62), (31, 7), (62, 0)):
            block = a[0, head, qi * 8 : qi * 8 + 8, ki * 8 : ki * 8 + 8]
            assert thumbs[0, head, qi, ki] == block.max(), (head, qi, ki)
    # uint8 thumbnails: the same maxima, quantised
    q = AttentionPatterns(a, toks(500)).thumbnails()
    assert np.nanmax(np.abs(q - thumbs)) <= 1 / 508 + 1e-7


def test_request_handler_sends_the_exact_head_and_errors_on_a_bad_index(big):
    sent = []
    big.send = lambda content, buffers=None: sent.append((content, buffers))
    big._handle_custom_msg({"type": "head", "layer": 7, "head": 3}, [])
    ((content, buffers),) = sent
    assert content == {"type": "head", "layer": 7, "head": 3, "dtype": "float32"}
    got = _buffers.decode(buffers[0], "float32", (512, 512))
    want = causal(32, 512)[3]
    assert np.abs(got - want).max() <= 1e-6
    assert np.array_equal(big.head_pattern(7, 3), want)

    sent.clear()
    big._handle_custom_msg({"type": "head", "layer": 0, "head": 32}, [])
    ((content, buffers),) = sent
    assert content["type"] == "error" and buffers is None
    assert "head=32" in content["message"] and "0..31" in content["message"]
    with pytest.raises(ValueError, match=r"layer=32, head=0 .* 32 layers and 32 heads"):
        big.head_pattern(32, 0)
    with pytest.raises(ValueError, match=r"layer=True"):
        big.head_pattern(True, 0)
    big._handle_custom_msg({"type": "something else"}, [])
    assert len(sent) == 1


def test_big_pattern_is_not_copied_and_read_only_through_the_widget():
    a = np.full((1, 17, 500, 500), 0.002, np.float32)
    w = AttentionPatterns(a, toks(500))
    assert np.shares_memory(w.pattern(), a)
    with pytest.raises(ValueError, match="read-only"):
        w.pattern()[0, 0, 0, 0] = 1.0
    assert a.flags.writeable  # the caller's array is untouched


def test_small_patterns_are_sent_whole_as_before():
    w = AttentionPatterns(causal(4, 32)[None], toks(32))
    assert (w.thumb_stride, w.focus, list(w.focus_head)) == (0, b"", [])
    assert len(w.attention) == 4 * 32 * 32 * 4  # float32, everything
    # exactly 4 Mi weights: still whole (uint8)
    edge = AttentionPatterns(np.zeros((1, 16, 512, 512), np.float32), toks(512))
    assert (edge.thumb_stride, edge.dtype, len(edge.attention)) == (0, "uint8", 2**22)


def test_logit_lens_and_heatmap_at_80_layers_stay_small():
    rng = np.random.default_rng(0)
    probs = -np.sort(-rng.dirichlet(np.ones(20), size=(80, 512)), -1)[..., :5]
    top = [
        [[f" w{(layer + p + j) % 900}" for j in range(5)] for p in range(512)]
        for layer in range(80)
    ]
    lens = LogitLens(probs.astype(np.float32), top, toks(512))
    assert notebook_bytes(lens) <= 3_000_000
    assert len(lens._render_svg().encode()) <= 1_000_000
    hm = Heatmap(rng.standard_normal((80, 512)).astype(np.float32), col_labels=toks(512))
    assert notebook_bytes(hm) <= 300_000
    assert len(hm._render_svg().encode()) <= 600_000
