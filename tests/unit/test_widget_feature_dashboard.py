"""FeatureDashboard: validation, precomputed per-feature data, binary payloads, from_sae."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import traitlets

from mechscope.widgets import FeatureDashboard, _buffers

STATIC = Path(__file__).resolve().parents[2] / "src" / "mechscope" / "widgets" / "static"
VOCAB = ["<bos>", " the", " cat", " dog", " sat", "<img src=x onerror=alert(1)>", " on", " mat"]


# The bundle's source code is not data: its numeric literals (e.g. sRGB 1.055) are not floats
# sent as JSON.
_CODE = ("_esm", "_css")


def sparse_acts(n_contexts=6, ctx_len=5, n_features=3, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_contexts, ctx_len, n_features)).astype(np.float32)
    return np.maximum(x, 0)  # ReLU-like: mostly sparse, non-negative


def contexts(n_contexts=6, ctx_len=5) -> list[list[str]]:
    return [[VOCAB[(i + p) % len(VOCAB)] for p in range(ctx_len)] for i in range(n_contexts)]


def top_k_by_hand(
    acts: np.ndarray, ctxs: list[list[str]], f: int, k: int
) -> list[tuple[int, int, float]]:
    """(context, argmax pos, max) of the k contexts with the largest positive max, ties by index."""
    rows = []
    for c, toks in enumerate(ctxs):
        vals = [float(acts[c, p, f]) for p in range(len(toks))]
        best = max(vals)
        if best > 0:
            rows.append((-best, c, vals.index(best)))
    rows.sort()
    return [(c, p, -neg) for neg, c, p in rows[:k]]


# ---- validation ---------------------------------------------------------------------------


def test_shape_mismatch_names_both_shapes_and_fix():
    with pytest.raises(ValueError) as err:
        FeatureDashboard(sparse_acts(), contexts()[:4])
    msg = str(err.value)
    assert "feature_acts has shape (6, 5, 3)" in msg and "4 contexts of up to 5 tokens" in msg
    assert "[n_contexts, ctx_len, n_features]" in msg and "Fix" in msg
    with pytest.raises(ValueError, match=r"shape \(6, 5\)"):
        FeatureDashboard(sparse_acts()[..., 0], contexts())


def test_logit_weights_and_vocab_validated():
    w = np.zeros((3, len(VOCAB)))
    with pytest.raises(
        ValueError,
        match=r"logit_weights has shape \(2, 8\); expected \[n_features, d_vocab\] = \(3, d_vocab\)",
    ):
        FeatureDashboard(sparse_acts(), contexts(), w[:2], VOCAB)
    with pytest.raises(ValueError, match=r"vocab has 7 entries but logit_weights has d_vocab=8"):
        FeatureDashboard(sparse_acts(), contexts(), w, VOCAB[:7])
    with pytest.raises(ValueError, match=r"vocab has None"):
        FeatureDashboard(sparse_acts(), contexts(), w)
    bad = w.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN/Inf"):
        FeatureDashboard(sparse_acts(), contexts(), bad, VOCAB)


def test_feature_k_bins_ranges():
    with pytest.raises(
        ValueError,
        match=r"feature=3 is out of range: there are 3 features, so it must be in 0\.\.2",
    ):
        FeatureDashboard(sparse_acts(), contexts(), feature=3)
    with pytest.raises(ValueError, match=r"k=0 is out of range: expected an int in >= 1"):
        FeatureDashboard(sparse_acts(), contexts(), k=0)
    with pytest.raises(ValueError, match=r"bins=0 is out of range: expected an int in 1\.\.10000"):
        FeatureDashboard(sparse_acts(), contexts(), bins=0)
    d = FeatureDashboard(sparse_acts(), contexts(), k=50)
    assert d.k == 6  # capped at the number of contexts
    with pytest.raises(traitlets.TraitError, match=r"must be in 0\.\.2"):
        d.feature = 3
    seen = []
    d.observe(lambda ch: seen.append(ch["new"]), names="feature")
    d.feature = 2
    assert seen == [2]


# ---- precomputed data ------------------------------------------------------------------------


def test_top_contexts_match_a_by_hand_ranking_with_ragged_contexts():
    acts = sparse_acts(8, 6, 4, seed=3)
    ctxs = contexts(8, 6)
    ctxs[2] = ctxs[2][:2]  # padding positions of context 2 must be ignored...
    acts[2, 4, :] = 100.0  # ...even when they hold the largest values
    d = FeatureDashboard(acts, ctxs, k=3)
    for f in range(4):
        got = [(t["context"], t["max_pos"], t["max"]) for t in d.top_contexts(f)]
        want = top_k_by_hand(acts, ctxs, f, 3)
        assert [g[:2] for g in got] == [w[:2] for w in want]
        assert np.allclose([g[2] for g in got], [w[2] for w in want])
        for t in d.top_contexts(f):
            assert t["tokens"] == ctxs[t["context"]]
            assert np.array_equal(t["acts"], acts[t["context"], : len(t["tokens"]), f])
    assert (
        2 not in {t["context"] for f in range(4) for t in d.top_contexts(f)}
        or acts[2, :2].max() > 0
    )


def test_histogram_density_and_nonfinite_counts():
    acts = np.zeros((2, 3, 2), np.float32)
    acts[0, :, 0] = [1.0, 2.0, 3.0]
    acts[1, 0, 0] = np.nan
    acts[1, 1, 1] = -4.0
    d = FeatureDashboard(acts, [["a", "b", "c"], ["d", "e", "f"]], bins=4)
    counts, edges = d.histogram(0)
    assert counts.dtype == np.int32 and counts.tolist() == [1, 0, 1, 1]  # zeros and NaN excluded
    assert np.allclose(edges, [1.0, 1.5, 2.0, 2.5, 3.0])
    density = _buffers.decode(d.density, "float32", (2,))
    assert np.allclose(density, [3 / 6, 1 / 6])
    assert _buffers.decode(d.nonfinite, "int32", (2,)).tolist() == [1, 0]
    assert d.n_tokens == 6
    # a feature with one distinct non-zero value still gets a visible bin around it
    counts1, edges1 = d.histogram(1)
    assert counts1.sum() == 1 and edges1[0] < -4.0 < edges1[-1]
    # feature 1 never exceeds 0: no top contexts
    assert d.top_contexts(1) == []


def test_logit_lists_are_the_extremes_of_each_row():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(3, len(VOCAB))).astype(np.float32)
    d = FeatureDashboard(sparse_acts(), contexts(), torch.from_numpy(w), VOCAB, n_logits=3)
    assert d.has_logits and d.n_logits == 3
    for f in range(3):
        raised, lowered = d.logit_effects(f)
        order = np.argsort(w[f])
        assert [t for t, _ in raised] == [VOCAB[i] for i in order[::-1][:3]]
        assert [t for t, _ in lowered] == [VOCAB[i] for i in order[:3]]
        assert np.allclose([v for _, v in raised], np.sort(w[f])[::-1][:3])
    # only tokens some list uses travel to the browser
    assert len(d.logit_tokens) <= len(VOCAB)
    none = FeatureDashboard(sparse_acts(), contexts())
    assert not none.has_logits and none.logit_effects(0) == ([], [])


def test_payloads_have_exact_lengths_and_round_trip():
    F, C, L, k, bins, n = 3, 6, 5, 4, 7, 2
    acts = sparse_acts(C, L, F)
    d = FeatureDashboard(
        acts, contexts(C, L), np.ones((F, 8)) * np.arange(8), VOCAB, k=k, bins=bins, n_logits=n
    )
    assert len(d.hist_counts) == F * bins * 4
    assert len(d.hist_edges) == F * (bins + 1) * 4
    assert len(d.density) == F * 4 and len(d.nonfinite) == F * 4
    assert len(d.top_context) == F * k * 4 and len(d.top_pos) == F * k * 4
    assert d.dtype == "float32" and len(d.top_acts) == F * k * L * 4
    for name in ("logit_pos_ids", "logit_pos_vals", "logit_neg_ids", "logit_neg_vals"):
        assert len(getattr(d, name)) == F * n * 4
    refs = _buffers.decode(d.top_context, "int32", (F, k))
    assert refs.min() >= -1 and refs.max() < len(d.contexts)
    assert d.context_ids == sorted(set(d.context_ids))
    assert _buffers.decode(d.hist_counts, "int32", (F, bins)).sum(1).tolist() == [
        int((acts[..., f] != 0).sum()) for f in range(F)
    ]
    half = FeatureDashboard(acts, contexts(C, L), k=k, dtype="float16")
    assert half.dtype == "float16" and len(half.top_acts) == F * k * L * 2
    t = half.top_contexts(0)[0]
    assert abs(t["max"] - acts[t["context"], :, 0].max()) < 5e-3


def test_int32_encoding_round_trips_and_refuses_floats():
    x = np.array([[0, -1], [7, 2**30]], dtype=np.int64)
    buf = _buffers.encode(x, "int32")
    assert buf == np.array([0, -1, 7, 2**30], "<i4").tobytes()
    back = _buffers.decode(buf, "int32", (2, 2))
    assert back.dtype == np.int32 and back.tolist() == x.tolist()
    with pytest.raises(TypeError):
        _buffers.encode(np.array([0.5]), "int32")
    assert "int32" not in _buffers.DTYPES  # not a user choice for float data


def test_state_has_no_json_list_of_floats_and_repr_is_deterministic():
    d = FeatureDashboard(
        sparse_acts(), contexts(), np.linspace(-1, 1, 24).reshape(3, 8), VOCAB, k=3
    )
    state = d.get_state()
    for name in ("hist_counts", "hist_edges", "density", "top_acts", "logit_pos_vals"):
        assert isinstance(state[name], (bytes, memoryview)), name
    json_part = json.dumps(
        {
            k: v
            for k, v in state.items()
            if not isinstance(v, (bytes, memoryview)) and k not in _CODE
        }
    )
    assert re.search(r"\d\.\d{3,}", json_part) is None

    def floats(x):
        if isinstance(x, float):
            yield x
        elif isinstance(x, (list, tuple)):
            for v in x:
                yield from floats(v)

    assert list(floats([v for v in state.values() if isinstance(v, list)])) == []
    expected = (
        "FeatureDashboard(n_features=3, n_contexts=6, ctx_len=5, k=3, bins=30, "
        "has_logits=True, feature=1)"
    )
    a = FeatureDashboard(sparse_acts(), contexts(), np.zeros((3, 8)), VOCAB, k=3, feature=1)
    b = FeatureDashboard(sparse_acts(), contexts(), np.zeros((3, 8)), VOCAB, k=3, feature=1)
    assert repr(a) == repr(b) == expected


# ---- from_sae, against a fake SAE and a fake model (only the documented interface) -----------


class FakeSAE:
    """ReLU SAE: encode(x) = relu(x @ W_enc + b_enc); W_dec [n_features, d_in]."""

    def __init__(self, d_in: int, n_features: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.W_enc = torch.randn(d_in, n_features, generator=g)
        self.b_enc = torch.randn(n_features, generator=g) * 0.1
        self.W_dec = torch.randn(n_features, d_in, generator=g)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.W_enc + self.b_enc)


class FakeModel:
    """Embedding lookup as 'the model'; the site is the embedding, W_U maps d_model to vocab."""

    def __init__(self, d_model: int = 6, seed: int = 1):
        g = torch.Generator().manual_seed(seed)
        self.W_E = torch.randn(len(VOCAB), d_model, generator=g)
        self.W_U = torch.randn(d_model, len(VOCAB), generator=g)
        self.calls: list[list[str]] = []

    def run_with_cache(self, tokens, names=None):
        self.calls.append(list(names))
        resid = self.W_E[tokens]
        return resid @ self.W_U, {"hook_embed": resid, "blocks.0.hook_resid_post": resid * 2}

    def to_str_tokens(self, ids):
        return [VOCAB[i] for i in torch.as_tensor(ids).tolist()]


def test_from_sae_top_contexts_and_logits_match_an_independent_computation():
    model, sae = FakeModel(), FakeSAE(6, 5)
    tokens = torch.randint(0, len(VOCAB), (7, 4), generator=torch.Generator().manual_seed(2))
    d = FeatureDashboard.from_sae(sae, model, tokens, "hook_embed", features=[4, 0, 2], k=3)
    assert model.calls == [["hook_embed"]]
    assert d.feature_names == ["feature 4", "feature 0", "feature 2"]
    acts = torch.relu(model.W_E[tokens] @ sae.W_enc + sae.b_enc).numpy()  # [7, 4, 5]
    ctxs = [[VOCAB[i] for i in row] for row in tokens.tolist()]
    for j, f in enumerate([4, 0, 2]):
        got = [(t["context"], t["max_pos"]) for t in d.top_contexts(j)]
        want = [(c, p) for c, p, _ in top_k_by_hand(acts, ctxs, f, 3)]
        assert got == want, (f, got, want)
        assert [t["tokens"] for t in d.top_contexts(j)] == [ctxs[c] for c, _ in want]
        effect = (sae.W_dec[f] @ model.W_U).numpy()
        raised, lowered = d.logit_effects(j)
        assert raised[0][0] == VOCAB[int(effect.argmax())]
        assert lowered[0][0] == VOCAB[int(effect.argmin())]
        assert np.isclose(raised[0][1], effect.max(), atol=1e-5)


def test_from_sae_without_matching_unembed_warns_and_leaves_logits_out():
    class NoWU(FakeModel):  # only unembed_weights(), and of another width than the SAE's
        def __getattribute__(self, name):
            if name == "W_U":
                raise AttributeError(name)
            return super().__getattribute__(name)

        def run_with_cache(self, tokens, names=None):
            return None, {"hook_embed": self.W_E[tokens]}

        def unembed_weights(self):
            return torch.ones(5, len(VOCAB))  # d_model 5 != d_in 6

    model, sae = NoWU(), FakeSAE(6, 2)
    tokens = torch.zeros(2, 3, dtype=torch.long)
    with pytest.warns(UserWarning, match=r"\(d_in=6\) but W_U expects d_model=5"):
        d = FeatureDashboard.from_sae(sae, model, tokens, "hook_embed")
    assert not d.has_logits and d.n_features == 2
    with pytest.raises(KeyError, match=r"did you mean 'hook_embed'"):
        FeatureDashboard.from_sae(sae, FakeModel(), tokens, "hook_embd")
    with pytest.raises(ValueError, match=r"features entry=9 is out of range.*0\.\.1"):
        FeatureDashboard.from_sae(sae, FakeModel(), tokens, "hook_embed", features=[9])


def test_bundle_exists_and_is_offline_and_safe():
    js = (STATIC / "feature_dashboard.js").read_text(encoding="utf-8")
    css = (STATIC / "feature_dashboard.css").read_text(encoding="utf-8")
    assert str(FeatureDashboard._esm) == js
    for hook in (
        "ms-feature-dash",
        "ms-fd-next",
        "ms-fd-prev",
        "ms-fd-input",
        "ms-tok-max",
        "data-rendered",
    ):
        assert hook in js, hook
    for text in (js, css):
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text
        assert re.search(r"https?://", text) is None
        assert "@import" not in text


def test_raised_and_lowered_lists_never_share_a_token():
    w = np.random.default_rng(0).normal(size=(3, len(VOCAB)))
    d = FeatureDashboard(sparse_acts(), contexts(), w, VOCAB, n_logits=50)
    assert d.n_logits == len(VOCAB) // 2
    for f in range(3):
        raised, lowered = d.logit_effects(f)
        assert not {t for t, _ in raised} & {t for t, _ in lowered}
