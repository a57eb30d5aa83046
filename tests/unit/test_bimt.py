"""Brain-inspired modular training (mechscope.bimt): layout, swaps, pruning."""

import pytest
import torch

from mechscope import bimt


def test_data_and_layout():
    x, y = bimt.two_task_data(512, seed=3)
    assert x.shape == (512, 4) and y.shape == (512, 2)
    assert 0.3 < float(y.mean(0)[0]) < 0.7 and 0.2 < float(y.mean(0)[1]) < 0.6
    d = bimt.LayeredMLP().distances()
    assert [tuple(t.shape) for t in d] == [(16, 4), (16, 16), (2, 16)]
    assert float(d[1].min()) == pytest.approx(bimt.LAYER_GAP)


def test_swaps_keep_the_function_and_shorten_wiring():
    torch.manual_seed(0)
    model = bimt.LayeredMLP(seed=5)
    x, _ = bimt.two_task_data(64)
    before_out, before_cost = model(x).detach(), bimt.connection_cost(model)
    assert bimt._swap_pass(model) > 0
    assert torch.allclose(model(x).detach(), before_out, atol=1e-6)
    assert bimt.connection_cost(model) < before_cost


def test_pruning_meets_target_and_is_minimal_on_a_hand_built_net():
    model = bimt.LayeredMLP(seed=0)
    full = bimt.prune_to_faithfulness(model, 1.0, n=256)
    half = bimt.prune_to_faithfulness(model, 0.9, n=256)
    assert min(half.agreement) >= 0.9 and min(full.agreement) == 1.0
    assert half.n_edges <= full.n_edges <= full.n_total == 352
    assert sum(int(m.sum()) for m in half.masks) == half.n_edges
    # a network with two separate modules: zero every weight that crosses between halves
    with torch.no_grad():
        model.weights[0][:8, 2:] = 0
        model.weights[0][8:, :2] = 0
        model.weights[1][:8, 8:] = 0
        model.weights[1][8:, :8] = 0
        model.weights[2][0, 8:] = 0
        model.weights[2][1, :8] = 0
    c = bimt.prune_to_faithfulness(model, 1.0, n=256)
    assert c.shared_fraction == 0.0 and c.cross_inputs == 0


def test_training_bimt_shortens_wires_and_errors():
    short = dict(steps=60, seed=0)
    none, local = bimt.train_bimt("none", **short), bimt.train_bimt("bimt", **short)
    assert bimt.connection_cost(local) < bimt.connection_cost(none)
    with pytest.raises(ValueError, match="kind='bimtt'"):
        bimt.train_bimt("bimtt")
    with pytest.raises(ValueError, match="target=1.5"):
        bimt.prune_to_faithfulness(none, 1.5)
