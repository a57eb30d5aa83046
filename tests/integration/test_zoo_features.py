"""Re-measure grammar-2l and its shipped SAE from the shipped weights (the cards' claims)."""

import hashlib

import pytest
import torch

import mechscope
from mechscope.sae import evaluate, load_zoo_sae, zoo_sae_dir, zoo_saes
from mechscope.zoo.recipes_features import GRAMMAR_EVAL, grammar_metrics, sae_eval_data, sae_metrics


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return mechscope.load("grammar-2l")


@pytest.fixture(scope="module")
def sae():
    return load_zoo_sae("grammar-2l-mlp0")


def test_model_card_metrics_reproduce(model):
    measured = grammar_metrics(model, **GRAMMAR_EVAL)
    card = model.card["metrics"]
    assert measured["grammatical_accuracy"] >= 0.99
    assert measured["noun_agreement_accuracy"] >= 0.99  # needs attention back to the determiner
    for key, value in card.items():
        assert measured[key] == pytest.approx(value, abs=2e-3), key


def test_model_has_mlps_and_words(model):
    assert model.cfg.d_mlp == 256 and model.cfg.n_layers == 2
    assert model.to_str_tokens("two big red foxes run .")[1:] == "two big red foxes run .".split()


def test_sae_card_metrics_reproduce(model, sae):
    card = sae.card
    assert "grammar-2l-mlp0" in zoo_saes()
    assert card["model_sha256"] == model.card["sha256"]  # trained on exactly these weights
    blob = (zoo_sae_dir() / "grammar-2l-mlp0.safetensors").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == card["sha256"]
    d = card["data"]
    measured = sae_metrics(model, sae, card["site"], d["n_eval_seqs"], d["eval_seed"])
    for key, value in card["metrics"].items():
        assert measured[key] == pytest.approx(value, abs=2e-3), key


def test_sae_quality_floor(model, sae):
    """The claims notebook 03 teaches: a good reconstruction that keeps the model working."""
    m = sae.card["metrics"]
    assert m["explained_variance"] >= 0.9
    assert m["l0"] <= sae.cfg.k
    assert m["ce_loss_score"] >= 0.9
    assert m["dead_fraction"] <= 0.4  # 0.30 shipped: this small language needs fewer than 256


def test_sae_features_are_more_monosemantic_than_neurons(model, sae):
    """Fraction of activation mass on the single most common current-word class, averaged over
    units that fire: SAE features should beat the raw MLP neurons they decompose."""
    from mechscope.toy.grammar import word_classes

    tokens, acts = sae_eval_data(model, sae.cfg.site, 128, 4242)
    words = model.tokenizer.words
    classes = sorted({c for row in tokens.tolist() for c in word_classes([words[t] for t in row])})
    cls_id = torch.tensor(
        [classes.index(c) for row in tokens.tolist() for c in word_classes([words[t] for t in row])]
    )
    onehot = torch.nn.functional.one_hot(cls_id, len(classes)).float()  # [tokens, class]

    def purity(a):  # a: [tokens, units], non-negative
        a = a.clamp(min=0)
        mass = onehot.T @ a  # [class, units]
        live = mass.sum(0) > 0
        return float((mass.max(0).values[live] / mass.sum(0)[live]).mean())

    with torch.no_grad():
        feats = sae.encode(acts)
    assert evaluate(sae, acts).explained_variance > 0.9
    assert purity(feats) > purity(acts) + 0.1
