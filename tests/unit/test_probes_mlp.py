"""MLP probes: what a linear probe cannot read, and what a control task says about it."""

import pytest
import torch

from mechscope.probes import fit_probe, selectivity
from mechscope.probes_mlp import MLPProbe, fit_mlp_probe, mlp_selectivity


def xor_data(n=400, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen)
    labels = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
    return torch.cat([x, 0.1 * torch.randn(n, 3, generator=gen)], 1), labels


def test_mlp_reads_xor_that_a_linear_probe_cannot():
    x, y = xor_data()
    lin = fit_probe(x, y, seed=0)
    mlp = fit_mlp_probe(x, y, seed=0)
    assert isinstance(mlp, MLPProbe) and mlp.n_classes == 2
    assert lin.test_accuracy < 0.65
    assert mlp.test_accuracy > 0.9
    assert torch.equal(mlp.test_index, lin.test_index)  # the same split as fit_probe
    assert mlp.accuracy(x[mlp.test_index], y[mlp.test_index]) == mlp.test_accuracy


def test_deterministic():
    x, y = xor_data(n=100)
    a, b = fit_mlp_probe(x, y, seed=4, steps=50), fit_mlp_probe(x, y, seed=4, steps=50)
    assert torch.equal(a.w1, b.w1) and torch.equal(a.w2, b.w2)


def test_mlp_memorises_a_control_task_more_than_a_linear_probe():
    # 40 types, each a random point; the real label is linear in the point, the control
    # label is a random label per type: only memorising the types solves it.
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(40, 6, generator=gen)
    types = torch.arange(40).repeat_interleave(10)
    x = centres[types] + 0.05 * torch.randn(400, 6, generator=gen)
    labels = (centres[types, 0] > 0).long()
    lin = selectivity(x, labels, types, seed=0)
    mlp = mlp_selectivity(x, labels, types, seed=0, d_mlp=128, steps=400)
    assert lin.real.test_accuracy > 0.95 and mlp.real.test_accuracy > 0.95
    assert mlp.control.test_accuracy > lin.control.test_accuracy + 0.1
    assert mlp.selectivity < lin.selectivity - 0.1
    assert torch.equal(mlp.control_labels, lin.control_labels)


def test_errors():
    x, y = xor_data(n=50)
    with pytest.raises(ValueError, match="d_mlp"):
        fit_mlp_probe(x, y, d_mlp=0)
    with pytest.raises(ValueError, match="labels"):
        fit_mlp_probe(x, y[:10])
    with pytest.raises(ValueError, match="same hook"):
        fit_mlp_probe(x, y, steps=5).predict(x[:, :2])
    with pytest.raises(ValueError, match="types"):
        mlp_selectivity(x, y, y[:10])
