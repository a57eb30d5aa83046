"""modadd-1l from its shipped weights: it grokked, its key frequencies match its card, and its
checkpoints re-measure as the card says (Nanda et al. 2023)."""

import hashlib

import pytest

import mechscope
from mechscope.models import zoo
from mechscope.toy import modadd
from mechscope.zoo.recipes_circuits import modadd_progress


@pytest.fixture(scope="module")
def model():
    return mechscope.load("modadd-1l")


def split(card):
    return modadd.train_test_split(
        card["data"]["p"], card["data"]["train_frac"], card["data"]["split_seed"]
    )


def test_recipe_is_nanda_et_al(model):
    cfg, t = model.cfg, model.card["training"]
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_mlp, cfg.act_fn, cfg.normalization) == (
        1,
        128,
        4,
        512,
        "relu",
        None,
    )
    assert model.card["data"]["p"] == 113 and model.card["data"]["train_frac"] == 0.3
    assert t["optimizer"]["weight_decay"] == 1.0 and t["optimizer"]["betas"] == [0.9, 0.98]


def test_grokked(model):
    train_idx, test_idx = split(model.card)
    p = model.card["data"]["p"]
    assert modadd.accuracy(model, p, test_idx) >= 0.99
    assert modadd.accuracy(model, p, train_idx) >= 0.999
    assert modadd.accuracy(model, p, test_idx) == pytest.approx(
        model.card["metrics"]["test_accuracy"], abs=2e-3
    )


def test_key_frequencies_match_card(model):
    W_E = model.W_E.detach()[1 : model.card["data"]["p"] + 1]
    freqs = modadd.key_frequencies(W_E)
    assert freqs == model.card["metrics"]["key_frequencies"]
    assert 1 <= len(freqs) <= 8  # a few frequencies, not a lookup table over all 56


def test_embeddings_are_circles(model):
    p = model.card["data"]["p"]
    W_E = model.W_E.detach()[1 : p + 1]
    norms = modadd.embedding_frequency_norms(W_E)
    strong = [
        k for k in model.card["metrics"]["key_frequencies"] if norms[k - 1] >= 0.5 * norms.max()
    ]
    assert len(strong) >= 3
    for k in strong:  # the dominant frequencies are clean circles, number a at angle w_k a
        fit = modadd.circle_fit(modadd.frequency_plane(W_E, k), k)
        assert fit["angle_error"] < 0.1 and fit["radius_cv"] < 0.1, k


def test_checkpoints_match_card(model):
    card = model.card
    blob = (zoo.zoo_dir() / "modadd-1l.checkpoints.safetensors").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == card["checkpoints"]["sha256"]
    steps = zoo.checkpoint_steps("modadd-1l")
    train_idx, _ = split(card)
    for step in (steps[0], steps[len(steps) // 2], steps[-1]):
        got = modadd_progress(
            zoo.load_checkpoint("modadd-1l", step),
            card["data"]["p"],
            train_idx,
            card["metrics"]["key_frequencies"],
        )
        for key, want in card["checkpoints"]["metrics"][str(step)].items():
            assert got[key] == pytest.approx(want, abs=2e-3, rel=1e-3), (step, key)
