"""The shipped digits-cnn: its card's numbers re-measured from the weights, with controls."""

from __future__ import annotations

import hashlib

import pytest
import torch

from mechscope.vision import (
    CNNConfig,
    DigitsCNN,
    accuracy,
    edge_score,
    load_digits,
    load_zoo_cnn,
)
from mechscope.vision.cnn import zoo_vision_dir
from mechscope.vision.featvis import high_frequency_energy, visualize
from mechscope.zoo.recipes_vision import train_digits_cnn


@pytest.fixture(scope="module")
def model():
    return load_zoo_cnn("digits-cnn")


def test_weights_are_the_cards_and_small(model):
    path = zoo_vision_dir() / "digits-cnn.safetensors"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == model.card["sha256"]
    assert path.stat().st_size < 30_000 and sum(p.numel() for p in model.parameters()) == 5050
    with pytest.raises(ValueError, match=r"name='mnist'.*available: \[.*'digits-cnn'.*\]"):
        load_zoo_cnn("mnist")


def test_test_accuracy_is_the_cards_and_far_above_chance(model):
    x, y = load_digits("test")
    acc = accuracy(model, x, y)
    assert round(acc, 4) == model.card["metrics"]["test_accuracy"]
    assert len(y) == model.card["metrics"]["n_test"] == 359
    assert acc > 0.97
    assert accuracy(DigitsCNN(CNNConfig(seed=1)), x, y) < 0.25  # random init: near chance 0.1
    assert (
        accuracy(model, x, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))])
        < 0.2
    )


def test_conv1_filters_are_more_edge_like_than_random_init(model):
    score = edge_score(model.conv1.conv.weight).values.mean()
    assert round(float(score), 4) == model.card["metrics"]["conv1_edge_score"]
    controls = torch.tensor(
        [edge_score(DigitsCNN(CNNConfig(seed=s)).conv1.conv.weight).mean() for s in range(1, 51)]
    )
    assert float(score) > float(controls.mean() + 3 * controls.std())
    assert float(score) > float(controls.max())


def test_class_visualisations_are_classified_and_regularisers_smooth_them(model):
    plain = visualize(model, "hook_logits", 3, n=2, steps=60, seed=0)
    reg = visualize(
        model, "hook_logits", 3, n=2, steps=60, seed=0, l2=0.1, tv=0.1, jitter=1, blur=0.1
    )
    for r in (plain, reg):
        assert (r.final > r.start + 5).all()
        assert (model(r.values).argmax(-1) == 3).all()
    assert float(high_frequency_energy(reg.values).mean()) < float(
        high_frequency_energy(plain.values).mean()
    )


def test_recipe_is_seeded():
    a, card = train_digits_cnn(steps=5)
    b, _ = train_digits_cnn(steps=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert card["name"] == "digits-cnn" and card["training"]["steps"] == 5
