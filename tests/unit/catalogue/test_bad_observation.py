"""Bad inputs to the observation tools (attribution, probes, SAEs, lenses, head scores,
circuits, widgets): each case asserts the error type, that the message names the argument,
and (with a model) that the model is left exactly as it came."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from mechscope import circuits
from mechscope.attribution import (
    direct_logit_attribution,
    gradient_x_input,
    integrated_gradients,
    saliency,
)
from mechscope.heads import head_scores
from mechscope.lens import TunedLens, logit_lens, train_tuned_lens, tuned_lens
from mechscope.metrics import logit_diff
from mechscope.probes import control_task, fit_probe, selectivity, sparse_probe
from mechscope.sae import SAE, SAEConfig, ce_loss_recovered, evaluate
from mechscope.sae_train import collect_activations, synthetic_superposition
from mechscope.widgets import AttentionPatterns, Heatmap, LogitLens, TokenActivations
from mechscope.widgets.feature_dashboard import FeatureDashboard

MODELS = {"induction": "induction_model", "facts": "facts_model", "gpt2": "hf_gpt2"}


def _toks(model, n=6):
    g = torch.Generator().manual_seed(0)
    return torch.randint(1, min(model.cfg.d_vocab, 50), (2, n), generator=g)


def _metric(model):
    return logit_diff(1, 2)


def _scalar_metric(logits):
    return logits[:, -1, 1].mean()


def _cache(model):
    _, cache = model.run_with_cache(_toks(model))
    return cache


def _probe_data(n=40, d=5):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.arange(n) % 2


def _sae(d_in=8, d_sae=16, site=None):
    return SAE(SAEConfig(d_in=d_in, d_sae=d_sae, site=site))


def _pickle_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(pickle.dumps({"W_enc": [1.0, 2.0]}))
    return path


def _lens(model):
    return logit_lens(model, _toks(model))


def _probs(n_layers=2, n_pos=3, k=2):
    return np.full((n_layers, n_pos, k), 0.25, np.float32)


def _top_tokens(n_layers=2, n_pos=3, k=2):
    return [[[f"t{j}" for j in range(k)] for _ in range(n_pos)] for _ in range(n_layers)]


def _pattern(layers=1, heads=2, n=3):
    p = torch.tril(torch.ones(n, n))
    return (p / p.sum(-1, keepdim=True)).expand(layers, heads, n, n).clone()


X, Y = _probe_data()
STR_LABELS = ["cat", "dog"] * 20

# id: (model key or None, builder(model, tmp_path) -> (fn, args, kwargs), exc, names)
# One case a row, so the table reads as a table: the formatter leaves it alone.
# fmt: off
CASES = {
    # ---- attribution ----------------------------------------------------------------------
    "dla-float-answer": ("induction", lambda m, t: (
        direct_logit_attribution, (_cache(m), 1.5), {}), ValueError, ["answer_ids", "float"]),
    "dla-answer-outside-vocab": ("induction", lambda m, t: (
        direct_logit_attribution, (_cache(m), 10**6), {}), ValueError, ["answer_ids", "vocab"]),
    "dla-answer-wrong-shape": ("induction", lambda m, t: (
        direct_logit_attribution, (_cache(m), [1, 2, 3]), {}), ValueError,
        ["answer_ids has shape [3]"]),
    "dla-wrong-ids-str": ("facts", lambda m, t: (
        direct_logit_attribution, (_cache(m), 1), {"wrong_ids": "Mary"}), TypeError,
        ["wrong_ids"]),
    "dla-negative-wrong-id": ("facts", lambda m, t: (
        direct_logit_attribution, (_cache(m), 1), {"wrong_ids": -3}), ValueError,
        ["wrong_ids", "vocab"]),
    "dla-bad-by": ("induction", lambda m, t: (
        direct_logit_attribution, (_cache(m), 1), {"by": "neuron"}), ValueError, ["by='neuron'"]),
    "ig-steps-zero": ("induction", lambda m, t: (
        integrated_gradients, (m, _toks(m), _metric(m)), {"steps": 0}), ValueError, ["steps=0"]),
    "ig-steps-float": ("facts", lambda m, t: (
        integrated_gradients, (m, _toks(m), _metric(m)), {"steps": 2.5}), ValueError, ["steps"]),
    "ig-unknown-hook": ("induction", lambda m, t: (
        integrated_gradients, (m, _toks(m), _metric(m)), {"hook": "hook_embd"}), KeyError,
        ["hook_embd"]),
    "ig-batch-size-zero": ("induction", lambda m, t: (
        integrated_gradients, (m, _toks(m), _metric(m)), {"steps": 4, "batch_size": 0}),
        ValueError, ["batch_size=0"]),
    "ig-bad-method": ("induction", lambda m, t: (
        integrated_gradients, (m, _toks(m), _metric(m)), {"method": "simpson"}), ValueError,
        ["method='simpson'"]),
    "ig-bad-baseline": ("facts", lambda m, t: (
        integrated_gradients, (m, _toks(m), _metric(m)), {"baseline": "mean"}), ValueError,
        ["baseline='mean'"]),
    "ig-metric-scalar": ("induction", lambda m, t: (
        integrated_gradients, (m, _toks(m), _scalar_metric), {"steps": 2}), ValueError,
        ["metric", "[batch]"]),
    "saliency-metric-scalar": ("facts", lambda m, t: (
        saliency, (m, _toks(m), _scalar_metric), {}), ValueError, ["metric", "[batch]"]),
    "gxi-metric-wrong-shape": ("induction", lambda m, t: (
        gradient_x_input, (m, _toks(m), lambda lg: lg[:, -1, :3]), {}), ValueError,
        ["metric", "[batch]"]),
    "saliency-unknown-hook": ("induction", lambda m, t: (
        saliency, (m, _toks(m), _metric(m)), {"hook": "blocks.9.hook_resid_pre"}), KeyError,
        ["blocks.9.hook_resid_pre"]),
    "saliency-float-tokens": ("induction", lambda m, t: (
        saliency, (m, _toks(m).float(), _metric(m)), {}), TypeError, ["tokens", "float"]),
    "ig-hf-unknown-hook": ("gpt2", lambda m, t: (
        integrated_gradients, (m, _toks(m), _metric(m)), {"hook": "hook_embd"}), KeyError,
        ["hook_embd"]),
    "saliency-hf-metric-scalar": ("gpt2", lambda m, t: (
        saliency, (m, _toks(m), _scalar_metric), {}), ValueError, ["metric"]),
    # ---- probes ---------------------------------------------------------------------------
    "probe-string-labels": (None, lambda m, t: (
        fit_probe, (X, STR_LABELS), {}), TypeError, ["labels", "integer classes", "index"]),
    "selectivity-string-labels": (None, lambda m, t: (
        selectivity, (X, STR_LABELS, torch.arange(40) % 4), {}), TypeError, ["labels"]),
    "sparse-probe-string-labels": (None, lambda m, t: (
        sparse_probe, (X, np.array(STR_LABELS), 2), {}), TypeError, ["labels"]),
    "control-task-string-types": (None, lambda m, t: (
        control_task, (["a", "b"] * 20,), {"n_classes": 2}), TypeError, ["types"]),
    "probe-labels-wrong-length": (None, lambda m, t: (
        fit_probe, (X, Y[:10]), {}), ValueError, ["labels has shape [10]", "40 rows"]),
    "probe-acts-3d": (None, lambda m, t: (
        fit_probe, (X[None], Y), {}), ValueError, ["acts has shape", "[n, d]"]),
    "probe-acts-nan": (None, lambda m, t: (
        fit_probe, (torch.where(X > 2, float("nan"), X), Y), {}), ValueError, ["acts", "NaN"]),
    "probe-bad-kind": (None, lambda m, t: (
        fit_probe, (X, Y), {"kind": "svm"}), ValueError, ["kind='svm'"]),
    "probe-one-class": (None, lambda m, t: (
        fit_probe, (X, torch.zeros(40, dtype=torch.long)), {}), ValueError, ["one class"]),
    "probe-negative-l2": (None, lambda m, t: (
        fit_probe, (X, Y), {"l2": -1.0}), ValueError, ["l2=-1"]),
    "probe-float-labels-logistic": (None, lambda m, t: (
        fit_probe, (X, Y.float()), {}), ValueError, ["kind='logistic'", "labels.long()"]),
    "sparse-probe-k-zero": (None, lambda m, t: (
        sparse_probe, (X, Y, 0), {}), ValueError, ["k=0"]),
    "selectivity-types-wrong-length": (None, lambda m, t: (
        selectivity, (X, Y, torch.arange(5)), {}), ValueError, ["types has shape [5]"]),
    "probe-predict-wrong-width": (None, lambda m, t: (
        fit_probe(X, Y).predict, (torch.zeros(3, 7),), {}), ValueError, ["d=7", "d=5"]),
    # ---- SAEs -----------------------------------------------------------------------------
    "sae-decode-wrong-features": (None, lambda m, t: (
        _sae().decode, (torch.zeros(3, 8),), {}), ValueError, ["f (feature", "d_sae=16"]),
    "sae-decode-int": (None, lambda m, t: (
        _sae().decode, (torch.zeros(3, 16, dtype=torch.long),), {}), TypeError, ["f (feature"]),
    "sae-encode-wrong-width": (None, lambda m, t: (
        _sae(site="blocks.0.hook_resid_post").encode, (torch.zeros(3, 5),), {}), ValueError,
        ["acts has width 5", "d_in=8", "blocks.0.hook_resid_post"]),
    "sae-encode-int": (None, lambda m, t: (
        _sae().encode, (torch.zeros(3, 8, dtype=torch.long),), {}), TypeError,
        ["dtype torch.int64"]),
    "sae-load-pickle": (None, lambda m, t: (
        SAE.load, (_pickle_file(t, "sae.pt"),), {}), ValueError,
        ["not a safetensors file", "pickle"]),
    "sae-load-pickle-named-safetensors": (None, lambda m, t: (
        _sae().save(t / "s") and (t / "s.safetensors").write_bytes(pickle.dumps([1])) and SAE.load,
        (t / "s",), {}), ValueError, ["not a safetensors file"]),
    "sae-evaluate-batch-size": (None, lambda m, t: (
        evaluate, (_sae(), torch.zeros(4, 8)), {"batch_size": 0}), ValueError, ["batch_size=0"]),
    "sae-evaluate-nan": (None, lambda m, t: (
        evaluate, (_sae(site="blocks.0.mlp.hook_post"), torch.full((4, 8), float("nan"))), {}),
        ValueError, ["32 NaN", "blocks.0.mlp.hook_post"]),
    "sae-config-d-sae": (None, lambda m, t: (
        SAEConfig, (8, 0), {}), ValueError, ["d_sae=0"]),
    "sae-config-k-without-topk": (None, lambda m, t: (
        SAEConfig, (8, 16), {"k": 4}), ValueError, ["k=4", "topk"]),
    "superposition-p-active": (None, lambda m, t: (
        synthetic_superposition, (8, 4, 10), {"p_active": 2.0}), ValueError, ["p_active=2.0"]),
    "collect-unknown-hook": ("induction", lambda m, t: (
        collect_activations, (m, _toks(m), "blocks.0.hook_resid_postt"), {}), KeyError,
        ["blocks.0.hook_resid_postt"]),
    "collect-batch-size-zero": ("facts", lambda m, t: (
        collect_activations, (m, _toks(m), "blocks.0.hook_resid_post"), {"batch_size": 0}),
        ValueError, ["batch_size=0"]),
    "ce-recovered-no-hook": ("induction", lambda m, t: (
        ce_loss_recovered, (m, _sae(d_in=m.cfg.d_model), _toks(m)), {}), ValueError, ["hook"]),
    "ce-recovered-unknown-hook": ("induction", lambda m, t: (
        ce_loss_recovered, (m, _sae(d_in=m.cfg.d_model), _toks(m), "hook_embd"), {}), KeyError,
        ["hook_embd"]),
    "ce-recovered-bad-mask": ("facts", lambda m, t: (
        ce_loss_recovered, (m, _sae(d_in=m.cfg.d_model), _toks(m), "hook_embed"),
        {"loss_mask": torch.ones(2, 2, dtype=torch.bool)}), ValueError, ["loss_mask"]),
    "dashboard-unknown-hook": ("induction", lambda m, t: (
        FeatureDashboard.from_sae, (_sae(d_in=m.cfg.d_model), m, _toks(m), "hook_embd"), {}),
        KeyError, ["hook_embd"]),
    # ---- lenses ---------------------------------------------------------------------------
    "tuned-lens-wrong-size": ("induction", lambda m, t: (
        tuned_lens, (m, _toks(m), TunedLens(m.cfg.n_layers, m.cfg.d_model + 1)), {}),
        ValueError, ["d_model=", "train_tuned_lens"]),
    "tuned-lens-wrong-layers-hf": ("gpt2", lambda m, t: (
        tuned_lens, (m, _toks(m), TunedLens(m.cfg.n_layers + 3, m.cfg.d_model)), {}),
        ValueError, ["translators", "n_layers="]),
    "tuned-lens-not-a-lens": ("facts", lambda m, t: (
        tuned_lens, (m, _toks(m), "lens.safetensors"), {}), TypeError, ["lens must be"]),
    "tuned-lens-load-pickle": (None, lambda m, t: (
        TunedLens.load, (_pickle_file(t, "lens.safetensors"),), {}), ValueError,
        ["not a safetensors file"]),
    "train-lens-float-tokens": ("induction", lambda m, t: (
        train_tuned_lens, (m, torch.zeros(2, 5)), {"steps": 1}), ValueError, ["tokens"]),
    "train-lens-batch-size-zero": ("induction", lambda m, t: (
        train_tuned_lens, (m, _toks(m)), {"steps": 1, "batch_size": 0}), ValueError,
        ["batch_size=0"]),
    "lens-top-k-zero": ("induction", lambda m, t: (
        _lens(m).top_k, (0,), {}), ValueError, ["k=0"]),
    "lens-widget-batch-index": ("facts", lambda m, t: (
        _lens(m).to_widget, (5,), {}), ValueError, ["batch_index=5"]),
    "logit-lens-float-tokens-hf": ("gpt2", lambda m, t: (
        logit_lens, (m, torch.zeros(1, 4)), {}), TypeError, ["tokens"]),
    # ---- heads and circuits ---------------------------------------------------------------
    "head-scores-period-short": ("induction", lambda m, t: (
        head_scores, (m,), {"period": 1}), ValueError, ["period=1", "minimum is 2"]),
    "head-scores-period-long": ("induction", lambda m, t: (
        head_scores, (m,), {"period": 1000}), ValueError, ["period=1000", "context"]),
    "head-scores-n-samples": ("facts", lambda m, t: (
        head_scores, (m,), {"period": 4, "n_samples": 0}), ValueError, ["n_samples=0"]),
    "head-scores-period-short-hf": ("gpt2", lambda m, t: (
        head_scores, (m,), {"period": 0}), ValueError, ["period=0"]),
    "composition-bad-kind": ("induction", lambda m, t: (
        circuits.composition_scores, (m, "X", 0, 1), {}), ValueError, ["kind='X'"]),
    "composition-layer-order": ("induction", lambda m, t: (
        circuits.composition_scores, (m, "K", 1, 0), {}), ValueError, ["early_layer < late_layer"]),
    "qk-circuit-layer-range": ("facts", lambda m, t: (
        circuits.qk_circuit, (m, 7), {}), ValueError, ["layer=7"]),
    "composition-baseline-n-samples": (None, lambda m, t: (
        circuits.composition_baseline, (16, 4), {"n_samples": 0}), ValueError, ["n_samples=0"]),
    "factored-matrix-shapes": (None, lambda m, t: (
        circuits.FactoredMatrix, (torch.zeros(3, 2), torch.zeros(3, 4)), {}), ValueError,
        ["do not chain"]),
    # ---- widgets --------------------------------------------------------------------------
    "attention-2d": (None, lambda m, t: (
        AttentionPatterns, (torch.eye(3), ["a", "b", "c"]), {}), ValueError, ["attention"]),
    "attention-not-square": (None, lambda m, t: (
        AttentionPatterns, (torch.ones(1, 2, 3, 4) / 4, ["a"] * 4), {}), ValueError,
        ["attention has shape", "square"]),
    "attention-tokens-length": (None, lambda m, t: (
        AttentionPatterns, (_pattern(), ["a", "b"]), {}), ValueError,
        ["3 key positions", "2 tokens"]),
    "attention-from-cache-layer-missing": (None, lambda m, t: (
        AttentionPatterns.from_cache, ({"blocks.0.attn.hook_pattern": _pattern()[0][None]},
                                       ["a", "b", "c"]), {"layer": [4]}), ValueError,
        ["layer=[4]"]),
    "attention-from-cache-layer-str": (None, lambda m, t: (
        AttentionPatterns.from_cache, ({"blocks.0.attn.hook_pattern": _pattern()[0][None]},
                                       ["a", "b", "c"]), {"layer": "0"}), ValueError,
        ["layer='0'"]),
    "heatmap-beyond-float32": (None, lambda m, t: (
        Heatmap, ([[1e300, 1.0]],), {}), ValueError, ["values", "float32"]),
    "heatmap-float64-tensor-beyond-float32": (None, lambda m, t: (
        Heatmap, (torch.tensor([[1e200, -1.0]], dtype=torch.float64),), {}), ValueError,
        ["values"]),
    "heatmap-4d": (None, lambda m, t: (
        Heatmap, (np.zeros((1, 2, 3, 4)),), {}), ValueError, ["values has shape"]),
    "heatmap-row-labels-length": (None, lambda m, t: (
        Heatmap, (np.zeros((2, 3)),), {"row_labels": ["a"]}), ValueError,
        ["row_labels has 1 labels", "2 rows"]),
    "heatmap-col-labels-length": (None, lambda m, t: (
        Heatmap, (np.zeros((2, 3)),), {"col_labels": ["a", "b"]}), ValueError,
        ["col_labels has 2 labels"]),
    "heatmap-strings": (None, lambda m, t: (
        Heatmap, ([["a", None]],), {}), TypeError, ["values"]),
    "token-acts-length-mismatch": (None, lambda m, t: (
        TokenActivations, ([["a", "b", "c"]], np.zeros((1, 2))), {}), ValueError,
        ["values has shape (1, 2, 1)", "texts"]),
    "token-acts-texts-str": (None, lambda m, t: (
        TokenActivations, ("a b", np.zeros((1, 2))), {}), ValueError, ["texts must be"]),
    "token-acts-float16-overflow": (None, lambda m, t: (
        TokenActivations, ([["a", "b"]], np.array([[1e5, 1.0]])), {"dtype": "float16"}),
        ValueError, ["dtype='float16'", "float32"]),
    "token-acts-from-cache-unknown-hook": (None, lambda m, t: (
        TokenActivations.from_cache, ({"blocks.0.mlp.hook_post": torch.zeros(1, 2, 3)},
                                      "blocks.0.mlp.hook_pre", [["a", "b"]]), {}), KeyError,
        ["hook='blocks.0.mlp.hook_pre'"]),
    "logit-lens-raw-logits": (None, lambda m, t: (
        LogitLens, (_probs() * 40 - 3, _top_tokens(), ["a", "b", "c"]), {}), ValueError,
        ["top_probs", "logits"]),
    "logit-lens-rows-sum-above-one": (None, lambda m, t: (
        LogitLens, (_probs() + 0.5, _top_tokens(), ["a", "b", "c"]), {}), ValueError,
        ["top_probs rows sum"]),
    "logit-lens-tokens-length": (None, lambda m, t: (
        LogitLens, (_probs(), _top_tokens(), ["a", "b"]), {}), ValueError,
        ["tokens has 2 entries", "3 positions"]),
    "logit-lens-top-tokens-shape": (None, lambda m, t: (
        LogitLens, (_probs(), _top_tokens(k=3), ["a", "b", "c"]), {}), ValueError,
        ["top_tokens must be"]),
}
# fmt: on


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_observation_input(case, bad, request, tmp_path):
    key, build, exc, names = CASES[case]
    model = request.getfixturevalue(MODELS[key]) if key else None
    fn, args, kwargs = build(model, tmp_path)
    bad(model, fn, exc, names, *args, **kwargs)


def test_enough_cases():
    assert len(CASES) >= 45
