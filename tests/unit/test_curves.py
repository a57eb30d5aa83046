"""Curve detectors and branch specialization (mechscope.vision.curves): stimuli, the shipped
curves-cnn and its dense control re-measured from their weights, with random-init controls."""

from __future__ import annotations

import hashlib

import pytest
import torch

from mechscope.vision import load_zoo_cnn
from mechscope.vision.cnn import accuracy, zoo_vision_dir
from mechscope.vision.curves import (
    CurveCNN,
    CurveConfig,
    branch_ablation,
    curve_dataset,
    load_curve_cnn,
    shape_images,
    tuning_curves,
)
from mechscope.zoo.recipes_curves import N_TEST, TEST_SEED, train_curves_cnn


@pytest.fixture(scope="module")
def model():
    return load_curve_cnn("curves-cnn")


@pytest.fixture(scope="module")
def test_set():
    return curve_dataset(N_TEST, seed=TEST_SEED)


def test_stimuli_are_what_they_say():
    curves, lines = shape_images("curve"), shape_images("line")
    assert curves.shape == (8, 3, 1, 16, 16) and 0 <= curves.min() and curves.max() <= 1
    assert torch.allclose(lines[:, 0], lines[:, 2])  # a line has no radius
    # a line's normal at 0 and 180 degrees is the same line; a curve's is its mirror image
    assert torch.allclose(lines[0], lines[4], atol=1e-5)
    assert torch.allclose(curves[0], curves[4].flip(-1), atol=1e-4)
    assert not torch.allclose(curves[0], curves[4], atol=0.1)
    x, y = curve_dataset(500, seed=3)
    assert x.shape == (500, 1, 16, 16) and set(y.tolist()) == set(range(10))
    assert torch.equal(curve_dataset(50, seed=3)[0], curve_dataset(50, seed=3)[0])


def test_bad_arguments_are_named(model):
    with pytest.raises(ValueError, match="kind='arc'.*'curve', 'line', 'blob'"):
        shape_images("arc")
    with pytest.raises(ValueError, match="n_angles=0"):
        shape_images("curve", n_angles=0)
    with pytest.raises(ValueError, match="n=-1"):
        curve_dataset(-1)
    with pytest.raises(ValueError, match=r"images has shape \(2, 1, 8, 8\)"):
        model(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="name='curve'.*'curves-cnn'"):
        load_curve_cnn("curve")
    with pytest.raises(ValueError, match="name='curves-cnn' is a CurveCNN.*load_curve_cnn"):
        load_zoo_cnn("curves-cnn")


def test_weights_are_the_cards_and_accuracy_is_remeasured(model, test_set):
    x, y = test_set
    for name in ("curves-cnn", "curves-cnn-dense"):
        path = zoo_vision_dir() / f"{name}.safetensors"
        m = load_curve_cnn(name)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == m.card["sha256"]
        assert path.stat().st_size < 10_000
        acc = accuracy(m, x, y)
        assert round(acc, 4) == m.card["metrics"]["test_accuracy"] and acc > 0.99
    assert accuracy(CurveCNN(CurveConfig(seed=1)), x, y) < 0.2  # random init: chance is 0.1


def test_curve_detectors_in_the_sparse_model_not_in_controls(model):
    tuning = tuning_curves(model, "hook_layer2")
    n = len(tuning.detectors())
    assert n == model.card["metrics"]["layer2_curve_detectors"] and n >= 10
    index = float(tuning.tuning_index.nanmean())
    assert round(index, 4) == model.card["metrics"]["layer2_mean_tuning_index"]
    # every detector fires for curves bulging one way: its preferred orientations cover >= 6 of 8
    assert len(set(tuning.preferred[tuning.detectors()].tolist())) >= 6
    dense = load_curve_cnn("curves-cnn-dense")
    dense_tuning = tuning_curves(dense, "hook_layer2")
    assert len(dense_tuning.detectors()) == dense.card["metrics"]["layer2_curve_detectors"] == 0
    randoms = [tuning_curves(CurveCNN(CurveConfig(seed=s)), "hook_layer2") for s in range(1, 11)]
    counts = torch.tensor([len(r.detectors()) for r in randoms], dtype=torch.float)
    assert counts.mean() < 3 and counts.max() < n / 2  # a few by chance, never half as many
    assert index > max(float(r.tuning_index.nanmean()) for r in randoms) + 0.25


def test_branch_b_carries_the_curves(model, test_set):
    x, y = test_set
    before = [p.detach().clone() for p in model.parameters()]
    result = branch_ablation(model, x, y)
    card = model.card["metrics"]["branch_ablation"]
    assert {k: {f: round(v, 4) for f, v in d.items()} for k, d in result.items()} == card
    assert result["branch_b"]["curve"] < 0.4 and result["branch_b"]["other"] > 0.99
    assert result["branch_a"]["curve"] > result["branch_b"]["curve"] + 0.3
    # the model leaves as it came: weights, no hooks left (also after an error inside)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters(), strict=True))
    with pytest.raises(ValueError):
        branch_ablation(model, torch.zeros(4, 1, 8, 8), torch.zeros(4))
    assert all(not p._forward_hooks for p in model.modules())
    assert torch.equal(model(x[:8]), load_curve_cnn("curves-cnn")(x[:8]))


def test_recipe_is_seeded():
    a, card = train_curves_cnn(steps=3)
    b, _ = train_curves_cnn(steps=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert card["name"] == "curves-cnn" and card["training"]["l1"] == 0.01
