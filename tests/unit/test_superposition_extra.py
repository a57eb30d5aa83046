import pytest
import torch

from mechscope.toy.superposition import ToyModel, ToyModelConfig, neurons_per_feature
from mechscope.toy.superposition_extra import (
    activation_regions,
    align_to_basis,
    all_pairs,
    and_accuracy,
    neurons_per_feature_pr,
    random_rotation,
    rotate_hidden,
    sparse_boolean_batch,
    train_with_dropout,
    uand_layer,
)


def test_rotation_keeps_a_linear_model_and_changes_its_units():
    model = ToyModel(ToyModelConfig(n_features=4, d_hidden=4, seed=0))
    x = model.generate_batch(256, torch.Generator().manual_seed(0))
    rotated = rotate_hidden(model, random_rotation(4, seed=1))
    aligned = rotate_hidden(model, align_to_basis(model))
    with torch.no_grad():
        assert torch.allclose(rotated(x), model(x), atol=1e-5)
        assert not torch.allclose(rotated.W, model.W)
    W = aligned.W.detach()[0]
    assert torch.allclose(W, W.T, atol=1e-5)  # symmetric: the polar factor
    relu = ToyModel(ToyModelConfig(n_features=4, d_hidden=4, hidden_relu=True, seed=0))
    with torch.no_grad():
        assert not torch.allclose(rotate_hidden(relu, random_rotation(4, 1))(x), relu(x), atol=1e-3)
    with pytest.raises(ValueError, match="orthogonal"):
        rotate_hidden(model, 2 * torch.eye(4))


def test_participation_ratio_counts_neurons():
    model = ToyModel(ToyModelConfig(n_features=2, d_hidden=4, hidden_relu=True))
    with torch.no_grad():
        model.W.zero_()
        model.W[0, 0, 0] = 1.0  # feature 0 on one neuron
        model.W[0, :, 1] = 0.5  # feature 1 evenly on four
    assert neurons_per_feature_pr(model)[0].tolist() == pytest.approx([1.0, 4.0])


def test_dropout_spreads_features():
    cfg = ToyModelConfig(n_features=3, d_hidden=8, feature_probability=(0.3,), hidden_relu=True)
    plain = neurons_per_feature_pr(train_with_dropout(cfg, 0.0, steps=300, batch_size=256)).mean()
    dropped = neurons_per_feature_pr(train_with_dropout(cfg, 0.5, steps=300, batch_size=256)).mean()
    assert dropped > plain
    with pytest.raises(ValueError, match="hidden_relu"):
        train_with_dropout(ToyModelConfig(), 0.5)


def test_uand_computes_more_ands_than_neurons():
    pairs = all_pairs(20)
    W_in, W_out = uand_layer(20, d_mlp=80, connect_prob=0.3, seed=0)
    assert W_out.shape == (80, len(pairs)) and len(pairs) > 80
    x = sparse_boolean_batch(20, 2, 500, seed=1)
    assert (x.sum(1) == 2).all()
    truth = x[:, pairs[:, 0]] * x[:, pairs[:, 1]]
    read = torch.relu(x @ W_in.T - 1) @ W_out
    assert and_accuracy(read, truth)["balanced"] > 0.9
    assert and_accuracy(torch.zeros_like(truth), truth)["balanced"] == 0.5


def test_activation_regions_counts_patterns():
    model = ToyModel(ToyModelConfig(n_features=3, d_hidden=2, seed=0))
    with torch.no_grad():
        model.W.zero_()
        model.W[0, 0, 0] = model.W[0, 1, 1] = 1.0  # features 0, 1 on their own axes
        model.b.fill_(-0.5)  # each output switches on at x_i = 0.5: four quadrants
    n, ids = activation_regions(model, resolution=50)
    assert n == 4 and ids.shape == (50, 50)
    with pytest.raises(ValueError, match="features"):
        activation_regions(model, features=(0, 0))
    assert neurons_per_feature(model).shape == (1, 2)
