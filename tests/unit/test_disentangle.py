"""mechscope.disentangle: DCI disentanglement and held-out eta² on codes with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.disentangle import dci, eta_squared


def _factors(n=4000, k=4, seed=0):
    return torch.rand(n, k, generator=torch.Generator().manual_seed(seed))  # independent factors


def test_one_code_per_factor_scores_one_whatever_the_order_scale_and_offset():
    f = _factors()
    codes = 3.0 * f[:, [2, 0, 3, 1]] - 5.0
    r = dci(codes, f)
    assert r.disentanglement == pytest.approx(1, abs=5e-3)
    assert r.completeness == pytest.approx(1, abs=5e-3)
    assert torch.allclose(r.best_correlation, torch.ones(4), atol=1e-6)
    assert r.values.shape == (4, 4) and r.values[0, 2] == pytest.approx(1, abs=1e-6)


def test_a_code_reading_two_of_four_factors_equally_scores_one_half():
    f = _factors()
    f = (f - f.mean(0)) / f.std(0)
    r = dci((f[:, 0] + f[:, 1])[:, None], f)  # one code, equal weight on factors 0 and 1
    # corr² 1/2 with each of two factors, ~0 with the other two: 1 - log 2 / log 4
    assert float(r.per_code[0]) == pytest.approx(1 - math.log(2) / math.log(4), abs=0.02)
    rotated = dci(f @ torch.linalg.qr(torch.ones(4, 4) + torch.eye(4))[0], f)
    assert rotated.disentanglement < 0.6  # a rotation of the factors mixes every code


def test_a_45_degree_rotation_of_two_factors_is_fully_entangled():
    f = _factors(k=2)
    f = (f - f.mean(0)) / f.std(0)
    codes = torch.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1]], 1)
    r = dci(codes, f)
    assert r.disentanglement == pytest.approx(0, abs=0.02)
    assert r.completeness == pytest.approx(0, abs=0.02)


def test_completeness_drops_when_two_codes_copy_one_factor_and_dead_codes_weigh_nothing():
    f = _factors(k=3)
    codes = torch.stack([f[:, 0], f[:, 0], f[:, 1], f[:, 2], torch.zeros(len(f))], 1)
    r = dci(codes, f)
    assert r.disentanglement == pytest.approx(1, abs=5e-3)  # every live code reads one factor
    assert float(r.per_code[4]) == 0 and float(r.values[4].sum()) == 0  # the constant code
    assert float(r.per_factor[0]) == pytest.approx(1 - math.log(2) / math.log(5), abs=5e-3)
    assert float(r.per_factor[1]) == pytest.approx(1, abs=5e-3)
    assert r.completeness < 0.9


def test_dci_names_bad_arguments():
    f = _factors(n=100)
    with pytest.raises(ValueError, match="acts has 99 rows and factors 100"):
        dci(f[:99], f)
    with pytest.raises(ValueError, match=">= 2 factors"):
        dci(f, f[:, :1])
    with pytest.raises(ValueError, match="acts has shape"):
        dci(f[:, 0], f)
    bad = f.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="factors has 1 NaN"):
        dci(f, bad)
    with pytest.raises(ValueError, match="No code varies"):
        dci(torch.ones(100, 3), f)


def _labelled(n=6000, n_types=20, noise=0.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n_types, (n,), generator=gen)
    table = torch.randn(n_types, 3, generator=gen)
    return table[labels] + noise * torch.randn(n, 3, generator=gen), labels


def test_eta_squared_is_one_when_the_label_decides_the_activation():
    acts, labels = _labelled()
    r = eta_squared(acts, labels)
    assert torch.allclose(r.values, torch.ones(3), atol=1e-6)
    assert torch.allclose(r.in_sample, torch.ones(3), atol=1e-6)
    assert r.n_train + r.n_test == 6000 and r.n_types == 20
    assert r.input_pattern().all()


def test_eta_squared_measures_the_share_of_variance_held_out():
    acts, labels = _labelled(noise=1.0)
    signal = acts - _labelled(noise=0.0)[0]  # the noise alone (same seed, same draws)
    var_signal = (acts - signal).var(0)
    r = eta_squared(acts, labels)
    expected = var_signal / (var_signal + signal.var(0))  # the label's share of the variance
    assert (r.values - expected).abs().max() < 0.03
    assert (r.in_sample - expected).abs().max() < 0.03  # 20 types in 6,000 rows: little bias


def test_shuffled_activations_are_biased_in_sample_but_not_held_out():
    gen = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 500, (4000,), generator=gen)
    acts = torch.randn(4000, 8, generator=gen)  # no link to the labels
    r = eta_squared(acts, labels)
    bias = (500 - 1) / (4000 - 1)  # the expected in-sample eta² of noise
    assert float(r.in_sample.mean()) == pytest.approx(bias, rel=0.2)
    assert float(r.values.max()) < 0.0  # held out, free means only add error


def test_unseen_labels_use_the_overall_mean_and_constant_features_are_nan():
    gen = torch.Generator().manual_seed(2)
    labels = torch.arange(40) % 4
    labels[:10] = torch.arange(10, 20)  # ten labels seen once: half of them only when testing
    acts = torch.stack([torch.randn(40, generator=gen), torch.full((40,), 2.0)], 1)
    r = eta_squared(acts, labels, test_frac=0.5, seed=0)
    assert torch.isnan(r.values[1]) and torch.isnan(r.in_sample[1])  # a constant feature
    # the reference: the same seeded split, per-label means, the fitted overall mean if unseen
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    test, train = order[:20], order[20:]
    fit = {int(y): acts[train][labels[train] == y, 0].mean() for y in labels[train].unique()}
    pred = torch.stack([fit.get(int(y), acts[train, 0].mean()) for y in labels[test]])
    assert any(int(y) not in fit for y in labels[test])  # the case is exercised
    held = acts[test, 0]
    expected = 1 - ((held - pred) ** 2).sum() / ((held - held.mean()) ** 2).sum()
    assert float(r.values[0]) == pytest.approx(float(expected), abs=1e-5)


def test_eta_squared_is_seeded_and_leaves_the_global_rng_alone():
    acts, labels = _labelled(noise=1.0)
    state = torch.random.get_rng_state()
    a, b = eta_squared(acts, labels, seed=3), eta_squared(acts, labels, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.values, b.values)
    assert not torch.equal(a.values, eta_squared(acts, labels, seed=4).values)


def test_eta_squared_names_bad_arguments():
    acts, labels = _labelled(n=100)
    with pytest.raises(ValueError, match=r"labels has shape \[99\]; expected \[100\]"):
        eta_squared(acts, labels[:99])
    with pytest.raises(ValueError, match="non-negative integer ids"):
        eta_squared(acts, labels.float())
    with pytest.raises(ValueError, match="non-negative integer ids"):
        eta_squared(acts, labels - 5)
    with pytest.raises(ValueError, match="test_frac=1.5"):
        eta_squared(acts, labels, test_frac=1.5)
    with pytest.raises(ValueError, match="leaves"):
        eta_squared(acts[:2], labels[:2], test_frac=0.1)
