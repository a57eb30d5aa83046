import math

import pytest
import torch

from mechscope.probes import (
    Probe,
    control_task,
    fit_probe,
    selectivity,
    sparse_probe,
)


def _planted(n=2000, d=32, seed=0, n_cls=2, scale=3.0):
    """Gaussian acts with class means along fixed random directions."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n_cls, d, generator=g)
    means = scale * means / means.norm(dim=-1, keepdim=True)
    y = torch.randint(0, n_cls, (n,), generator=g)
    x = torch.randn(n, d, generator=g) + means[y]
    return x, y, means


def test_logistic_probe_finds_a_planted_direction():
    x, y, means = _planted()
    p = fit_probe(x, y)
    assert isinstance(p, Probe) and p.kind == "logistic" and p.task == "classification"
    assert p.weight.shape == (2, 32) and p.bias.shape == (2,)
    # Bayes accuracy for separation 3 is Phi(1.5) ~ 0.93.
    assert p.test_accuracy > 0.9 and p.train_accuracy > 0.9
    truth = (means[1] - means[0]) / (means[1] - means[0]).norm()
    assert torch.dot(p.direction(1), truth) > 0.95
    assert torch.allclose(p.direction(0), -p.direction(1), atol=1e-6)
    assert p.direction(1).norm().item() == pytest.approx(1.0, abs=1e-6)


def test_probe_weights_act_on_raw_activations():
    x, y, _ = _planted(n=500, d=8)
    x = x * torch.linspace(0.1, 50, 8) + 7.0  # badly scaled, off-centre features
    p = fit_probe(x, y)
    assert torch.allclose(p.scores(x), x @ p.weight.T + p.bias, atol=1e-4)
    assert torch.equal(p.predict(x), p.scores(x).argmax(-1))
    test = p.test_index
    assert p.accuracy(x[test], y[test]) == pytest.approx(p.test_accuracy)
    assert p.test_accuracy > 0.85


def test_split_is_seeded_disjoint_and_sized():
    x, y, _ = _planted(n=1000)
    a, b = fit_probe(x, y, test_frac=0.25, seed=3), fit_probe(x, y, test_frac=0.25, seed=3)
    assert len(a.test_index) == 250 and len(a.train_index) == 750
    assert not set(a.train_index.tolist()) & set(a.test_index.tolist())
    assert torch.equal(a.weight, b.weight) and a.test_accuracy == b.test_accuracy
    c = fit_probe(x, y, test_frac=0.25, seed=4)
    assert not torch.equal(a.test_index, c.test_index)
    no_test = fit_probe(x, y, test_frac=0.0)
    assert math.isnan(no_test.test_accuracy) and len(no_test.train_index) == 1000


def test_multiclass_logistic_and_lstsq():
    x, y, _ = _planted(n=3000, d=16, n_cls=4, scale=6.0)
    for kind in ("logistic", "lstsq"):
        p = fit_probe(x, y, kind=kind)
        assert p.weight.shape == (4, 16) and p.n_classes == 4
        assert p.scores(x).shape == (3000, 4) and p.predict(x).dtype == torch.long
        assert p.test_accuracy > 0.9, kind


def test_lstsq_regression_recovers_a_linear_map():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(800, 10, generator=g)
    w = torch.randn(10, generator=g)
    t = x @ w + 0.5 + 0.01 * torch.randn(800, generator=g)
    p = fit_probe(x, t, kind="lstsq", l2=0.0)
    assert p.task == "regression" and p.test_accuracy > 0.999  # R^2
    assert torch.allclose(p.weight[0], w, atol=5e-3) and p.bias.item() == pytest.approx(
        0.5, abs=5e-3
    )
    assert p.predict(x).shape == (800,)
    assert torch.dot(p.direction(), w / w.norm()) > 0.999


def test_bad_inputs_say_what_and_how():
    x, y, _ = _planted(n=100)
    with pytest.raises(ValueError, match=r"labels has shape \[99\] but acts has 100 rows"):
        fit_probe(x, y[:99])
    with pytest.raises(ValueError, match="one class only"):
        fit_probe(x, torch.zeros(100, dtype=torch.long))
    with pytest.raises(ValueError, match="kind='lstsq'"):
        fit_probe(x, y.float())
    with pytest.raises(ValueError, match=r"expected \[n, d\]"):
        fit_probe(x[:, 0], y)
    with pytest.raises(ValueError, match="kind='svm'"):
        fit_probe(x, y, kind="svm")
    with pytest.raises(ValueError, match="NaN"):
        fit_probe(torch.full((100, 32), float("nan")), y)
    p = fit_probe(x, y)
    with pytest.raises(ValueError, match="fitted on d=32"):
        p.predict(x[:, :5])
    with pytest.raises(ValueError, match="cls=5"):
        p.direction(5)
    x3, y3, _ = _planted(n=300, n_cls=3)
    with pytest.raises(ValueError, match="name one"):
        fit_probe(x3, y3).direction()


def _typed_data(n_types, d, n=4000, seed=0, noise=0.3):
    """Each example is a token of a type; its activation is the type's embedding + noise.
    The real label is linear in the embedding (a concept); the control label is random per type."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n_types, d, generator=g)
    types = torch.randint(0, n_types, (n,), generator=g)
    acts = emb[types] + noise * torch.randn(n, d, generator=g)
    labels = (emb[:, 0] > 0).long()[types]
    return acts, labels, types


def test_control_task_is_a_function_of_type():
    _, labels, types = _typed_data(40, 4)
    ctrl = control_task(types, labels, seed=0)
    assert ctrl.shape == types.shape and ctrl.dtype == torch.long
    for t in types.unique():
        assert ctrl[types == t].unique().numel() == 1
    assert set(ctrl.unique().tolist()) == {0, 1}
    assert torch.equal(ctrl, control_task(types, labels, seed=0))
    uni = control_task(types, n_classes=5, seed=1)
    assert int(uni.max()) <= 4 and uni.unique().numel() >= 2
    with pytest.raises(ValueError, match="labels .* or n_classes"):
        control_task(types)


def test_selectivity_high_for_a_concept_low_when_the_probe_can_memorise():
    # Many types in few dimensions: the control task cannot be memorised linearly.
    acts, labels, types = _typed_data(n_types=300, d=6)
    s = selectivity(acts, labels, types)
    assert s.real.test_accuracy > 0.9
    assert s.control.test_accuracy < 0.7
    assert s.selectivity > 0.25
    assert s.selectivity == pytest.approx(s.real.test_accuracy - s.control.test_accuracy)
    # Few types in many dimensions: a linear probe memorises the control task too.
    acts, labels, types = _typed_data(n_types=20, d=64)
    s = selectivity(acts, labels, types)
    assert s.control.test_accuracy > 0.95 and s.selectivity < 0.05


def test_sparse_probe_finds_the_carrying_neurons():
    g = torch.Generator().manual_seed(2)
    n, d = 3000, 100
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, d, generator=g)
    x[:, 17] += 2.5 * y
    x[:, 3] -= 2.0 * y
    for method in ("f_stat", "mean_diff"):
        res = sparse_probe(x, y, 2, method=method)
        neurons, acc = res
        assert set(neurons.tolist()) == {3, 17}, method
        assert neurons[0].item() == 17  # the stronger one first
        assert acc == res.probe.test_accuracy and acc > 0.9
        assert res.ranking.shape == (d,)
    one = sparse_probe(x, y, 1)
    assert one.accuracy < res.accuracy  # the second neuron adds information
    with pytest.raises(ValueError, match="k=0"):
        sparse_probe(x, y, 0)


def test_logistic_fit_at_n_1e4_d_256():
    """The bench's problem size (speed lives in bench/probes.py, never in a timed test)."""
    torch.manual_seed(0)
    x, y, _ = _planted(n=10_000, d=256, n_cls=3)
    p = fit_probe(x, y, steps=100)
    assert p.test_accuracy > 0.85


def _newton_reference(x, y, n_cls, l2, iters=30):
    """Minimise fit_probe's objective (mean CE + l2 |W_std|^2 on features standardised over
    the rows given) by damped Newton with the exact Hessian, float64: the tight reference."""
    xs = (x - x.mean(0)) / x.std(0, unbiased=False)
    d = x.shape[1]

    def objective(theta):
        w, b = theta[: n_cls * d].view(n_cls, d), theta[n_cls * d :]
        return torch.nn.functional.cross_entropy(xs @ w.T + b, y) + l2 * w.pow(2).sum()

    theta = torch.zeros(n_cls * (d + 1), dtype=torch.float64)
    for _ in range(iters):
        g = torch.autograd.functional.jacobian(objective, theta)
        h = torch.autograd.functional.hessian(objective, theta)
        # the bias directions are flat (softmax shift): a tiny ridge keeps the solve defined
        step = torch.linalg.solve(h + 1e-12 * torch.eye(len(theta), dtype=h.dtype), g)
        t = 1.0
        while objective(theta - t * step) > objective(theta) and t > 1e-8:
            t /= 2
        theta = theta - t * step
    return float(objective(theta))


def test_logistic_fit_reaches_the_newton_optimum():
    # L-BFGS with the analytic gradient ends at the objective of a float64 Newton solve to
    # 1e-10 (an objective ~0.33; 5e-13 measured, 10 L-BFGS steps leave 9e-5).
    x, y, _ = _planted(n=300, d=6, n_cls=3, scale=2.0)
    x = x.double() * torch.linspace(0.5, 4.0, 6, dtype=torch.float64) + 3.0
    l2 = 1e-3
    p = fit_probe(x, y, test_frac=0.0, l2=l2)
    sd = x.std(0, unbiased=False)
    reached = (
        torch.nn.functional.cross_entropy(x @ p.weight.T + p.bias, y)
        + l2 * (p.weight * sd).pow(2).sum()
    )
    best = _newton_reference(x, y, 3, l2)
    assert 0.1 < best < 1.0
    assert float(reached) - best < 1e-10
    assert float(reached) - best > -1e-12  # Newton is the optimum: nothing beats it
