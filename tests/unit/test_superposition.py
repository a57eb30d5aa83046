"""Toy models of superposition (Elhage et al. 2022): the pentagon, the sweep, the geometry."""

import math

import pytest
import torch

from mechscope import plots
from mechscope.toy.superposition import (
    ToyModel,
    ToyModelConfig,
    angle_gaps,
    dimensions_per_feature,
    feature_dimensionality,
    feature_norms,
    interference,
    log_spaced_probabilities,
    n_represented,
    neurons_per_feature,
    sweep_summary,
    train_toy_model,
)


@pytest.fixture(scope="module")
def sweep():
    """5 features in 2 dims: dense and very sparse, trained together (about 3 s).

    lr 5e-3 instead of the paper's 1e-3 so that 3000 steps converge (notebook 02 uses 1e-3).
    """
    torch.set_num_threads(1)
    cfg = ToyModelConfig(n_features=5, d_hidden=2, feature_probability=(1.0, 0.01), seed=0)
    return train_toy_model(cfg, steps=3000, lr=5e-3, progress=False)


def test_dense_keeps_the_two_most_important_features_orthogonally(sweep):
    norms = feature_norms(sweep)[0]
    assert norms[:2].min() > 0.9 and norms[2:].max() < 0.1  # 2 kept, 3 dropped
    w0, w1 = sweep.W[0, :, 0].detach(), sweep.W[0, :, 1].detach()
    assert abs(float(w0 @ w1)) < 0.05
    assert interference(sweep)[0, :2].max() < 0.01
    assert feature_dimensionality(sweep)[0, :2].tolist() == pytest.approx([1, 1], abs=0.02)


def test_sparse_features_make_a_pentagon(sweep):
    norms = feature_norms(sweep)[1]
    assert norms.min() > 0.9 and norms.max() < 1.3  # all five represented, norm ~1
    gaps = angle_gaps(sweep, instance=1)
    assert len(gaps) == 5
    assert gaps.tolist() == pytest.approx([72.0] * 5, abs=4.0)
    # A regular pentagon gives every feature 2/5 of a dimension.
    assert feature_dimensionality(sweep)[1].tolist() == pytest.approx([0.4] * 5, abs=0.03)
    assert float(dimensions_per_feature(sweep)[1]) < 0.35


def test_sweep_summary_counts_represented_features(sweep):
    rows = sweep_summary(sweep)
    assert [r["n_represented"] for r in rows] == [2, 5]
    assert rows[1]["sparsity"] == pytest.approx(0.99)
    assert n_represented(sweep).tolist() == [2, 5]


def test_geometry_of_hand_built_weights():
    # Two orthogonal unit features and an antipodal pair: D = 1, 1 and 1/2, 1/2.
    W = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0, 0, 1.0, -1.0]]])
    assert feature_dimensionality(W)[0].tolist() == pytest.approx([1, 1, 0.5, 0.5])
    assert interference(W)[0].tolist() == pytest.approx([0, 0, 1, 1])
    assert float(dimensions_per_feature(W)[0]) == pytest.approx(3 / 4)
    zero = torch.zeros(1, 2, 3)
    assert feature_dimensionality(zero).abs().max() == 0  # dropped features count as 0, not NaN


def test_training_is_seeded_and_batched_over_instances():
    cfg = ToyModelConfig(n_features=4, d_hidden=2, feature_probability=(1.0, 0.1, 0.01), seed=3)
    a = train_toy_model(cfg, steps=50, progress=False)
    b = train_toy_model(cfg, steps=50, progress=False)
    assert a.W.shape == (3, 2, 4) and torch.equal(a.W, b.W)
    assert a.losses.shape == (1, 3)
    c = train_toy_model(ToyModelConfig(4, 2, (1.0, 0.1, 0.01), seed=4), steps=50, progress=False)
    assert not torch.equal(a.W, c.W)


def test_data_has_the_requested_sparsity():
    model = ToyModel(ToyModelConfig(n_features=50, d_hidden=5, feature_probability=(1.0, 0.1)))
    x = model.generate_batch(4096, torch.Generator().manual_seed(0))
    present = (x > 0).float().mean(dim=(0, 2))
    assert present.tolist() == pytest.approx([1.0, 0.1], abs=0.01)
    assert x.max() < 1 and x.min() >= 0


def test_relu_hidden_layer_neurons_turn_polysemantic_when_sparse():
    """Privileged basis: dense -> each neuron reads ~one feature; sparse -> several."""
    cfg = ToyModelConfig(
        n_features=10,
        d_hidden=5,
        feature_probability=(1.0, 0.02),
        importance_decay=0.8,
        hidden_relu=True,
        seed=0,
    )
    model = train_toy_model(cfg, steps=3000, lr=5e-3, progress=False)
    per_neuron = neurons_per_feature(model, threshold=0.3).float().mean(-1)
    assert per_neuron[0] <= 2.0  # about one feature per neuron (1.0 once fully converged)
    assert per_neuron[1] >= 4.0
    assert n_represented(model)[1] > n_represented(model)[0]


def test_bad_configs_say_what_is_valid():
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        ToyModelConfig(feature_probability=(0.0,))
    with pytest.raises(ValueError, match=">= 1"):
        ToyModelConfig(n_features=0)
    with pytest.raises(ValueError, match="d_hidden = 2"):
        angle_gaps(torch.zeros(1, 3, 5))
    with pytest.raises(ValueError, match="instance"):
        feature_norms(torch.zeros(2, 2, 2, 2))


def test_log_spaced_probabilities():
    p = log_spaced_probabilities(4, p_min=1e-3)
    assert p[0] == 1.0 and p[-1] == pytest.approx(1e-3)
    assert [math.log10(x) for x in p] == pytest.approx([0, -1, -2, -3])


def test_figures_have_one_panel_per_instance(sweep):
    fig = plots.plot_features_2d(sweep)
    assert len(fig.data) == 2 * 5  # a line per feature per instance
    assert len(plots.plot_wtw(sweep).data) == 2
    assert len(plots.plot_feature_norms(sweep).data) == 2
    dim = plots.plot_dimensionality(sweep)
    assert list(dim.data[-1].x) == pytest.approx([1.0, 100.0])
    with pytest.raises(ValueError, match="out of range"):
        plots.plot_wtw(sweep, instances=[5])
