"""Universal neurons (Gurnee et al. 2024): mechscope.universality, and the card of
grammar-1l-gelu-seed1 re-measured from the shipped weights."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

import mechscope
from mechscope.models import zoo
from mechscope.universality import max_correlation, neuron_correlations, rotate_basis
from mechscope.zoo.recipes_universality import universality_metrics


def test_correlations_match_numpy_and_constant_neurons_are_zero():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 4, generator=gen), torch.randn(200, 3, generator=gen)
    y[:, 1] = 2 * x[:, 0] - 1 + 0.1 * y[:, 1]
    y[:, 2] = 5.0  # a dead neuron: no variance
    corr = neuron_correlations(x, y)
    ref = np.corrcoef(x.T.numpy(), y[:, :2].T.numpy())[:4, 4:]
    np.testing.assert_allclose(corr[:, :2].numpy(), ref, atol=1e-5)
    assert corr[:, 2].tolist() == [0.0] * 4
    assert max_correlation(x, y)[0] > 0.99 and max_correlation(x, y)[1:].max() < 0.3


def test_permuted_rescaled_copy_is_universal_and_rotation_is_not():
    gen = torch.Generator().manual_seed(1)
    x = torch.relu(torch.randn(2000, 16, generator=gen))  # a privileged, ReLU'd basis
    y = 3 * x[:, torch.randperm(16, generator=gen)] + 1
    assert (max_correlation(x, y) > 0.999).all()
    rotated = rotate_basis(y, seed=0)
    torch.testing.assert_close(rotated.norm(dim=1), y.norm(dim=1))  # orthogonal: lengths kept
    assert torch.equal(rotated, rotate_basis(y, seed=0))  # seeded
    assert (max_correlation(x, rotated) > 0.5).float().mean() < 0.5


def test_bad_inputs_name_the_fix():
    with pytest.raises(ValueError, match=r"x must be float activations \[n, neuron\]"):
        neuron_correlations(torch.randn(3, 4, 5), torch.randn(3, 4))
    with pytest.raises(ValueError, match="same inputs, row for row"):
        max_correlation(torch.randn(10, 2), torch.randn(11, 2))


def test_seed1_card_is_remeasured_from_the_weights():
    card = zoo.card("grammar-1l-gelu-seed1")
    blob = (zoo.zoo_dir() / "grammar-1l-gelu-seed1.safetensors").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == card["sha256"]
    assert card["training"]["seed"] == 1 and zoo.card("grammar-1l-gelu")["training"]["seed"] == 0
    measured = universality_metrics(
        mechscope.load("grammar-1l-gelu-seed1"), mechscope.load("grammar-1l-gelu")
    )
    stored = card["metrics"]["universality_vs_grammar-1l-gelu"]
    for pair in ("trained", "untrained", "rotated"):
        for key, value in stored[pair].items():
            assert measured[pair][key] == pytest.approx(value, abs=2e-3), (pair, key)
    frac = {pair: measured[pair]["universal_fraction"] for pair in measured}
    assert frac["trained"] > 0.7 and frac["untrained"] < 0.1
    assert frac["trained"] > frac["rotated"] + 0.2  # the basis itself recurs, not just the span
