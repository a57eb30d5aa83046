"""mechscope.identifiability: FastICA recovers independent non-Gaussian sources, MCC matching."""

from __future__ import annotations

import itertools

import pytest
import torch

from mechscope.identifiability import fast_ica, mean_correlation_coefficient


def _mixed(kind: str, n=8000, k=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    if kind == "laplace":  # super-Gaussian, like sparse features: sign * Exponential(1)
        s = -torch.rand(n, k, generator=gen).log() * torch.randn(n, k, generator=gen).sign()
    elif kind == "uniform":  # sub-Gaussian
        s = torch.rand(n, k, generator=gen)
    else:
        s = torch.randn(n, k, generator=gen)
    mixing = torch.randn(k, k, generator=gen)  # full rank (almost surely), not orthogonal
    return s, s @ mixing.T


@pytest.mark.parametrize("kind", ["laplace", "uniform"])
def test_ica_recovers_non_gaussian_sources_and_pca_does_not(kind):
    s, x = _mixed(kind)
    r = fast_ica(x, seed=1)
    assert r.converged and r.n_steps < 200
    assert mean_correlation_coefficient(r.sources, s).mcc > 0.99
    assert mean_correlation_coefficient(r.whitened, s).mcc < 0.95  # PCA leaves a rotation open
    # the unmixing reproduces the sources on the data it was fitted on and has unit variance
    assert torch.allclose(r.transform(x), r.sources, atol=1e-4)
    assert torch.allclose(r.sources.var(0, unbiased=False), torch.ones(4), atol=1e-3)
    assert torch.allclose(r.rotation @ r.rotation.T, torch.eye(4), atol=1e-5)


def test_gaussian_sources_are_not_identifiable_two_halves_disagree():
    s, x = _mixed("gaussian", n=20000)
    halves = [fast_ica(part).transform(x) for part in x.chunk(2)]
    assert mean_correlation_coefficient(halves[0], halves[1]).mcc < 0.9
    s2, x2 = _mixed("uniform", n=20000)
    halves2 = [fast_ica(part).transform(x2) for part in x2.chunk(2)]
    assert mean_correlation_coefficient(halves2[0], halves2[1]).mcc > 0.99


def test_fewer_components_than_dimensions_and_rank_deficient_data():
    s, x = _mixed("uniform", k=4)
    r = fast_ica(x, k=2)
    assert r.sources.shape == (8000, 2) and r.unmixing.shape == (2, 4)
    m = mean_correlation_coefficient(r.sources, s)
    assert m.mcc <= 0.5 + 1e-6 and int((m.match >= 0).sum()) == 2
    flat = torch.cat([x[:, :2], x[:, :2].sum(1, keepdim=True)], 1)  # rank 2 in 3 columns
    with pytest.raises(ValueError, match="fewer than k=3"):
        fast_ica(flat)


def test_mcc_is_invariant_to_permutation_sign_scale_and_offset():
    s, _ = _mixed("uniform")
    codes = -3.0 * s[:, [2, 0, 3, 1]] + 7.0
    r = mean_correlation_coefficient(codes, s)
    assert r.mcc == pytest.approx(1.0, abs=1e-6)
    assert r.match.tolist() == [1, 3, 0, 2]
    extra = torch.cat([torch.randn(8000, 3, generator=torch.Generator().manual_seed(2)), codes], 1)
    assert mean_correlation_coefficient(extra, s).match.tolist() == [4, 6, 3, 5]
    constant = mean_correlation_coefficient(torch.ones(8000, 4), s)
    assert constant.mcc == 0.0


def test_matching_is_the_best_one_to_one_assignment_brute_force():
    gen = torch.Generator().manual_seed(3)
    for trial in range(15):
        n_comp = 3 + trial % 5  # 3..7 components against 5 latents
        s = torch.randn(400, 5, generator=gen)
        codes = torch.randn(400, n_comp, generator=gen)
        r = mean_correlation_coefficient(codes, s)
        c = r.correlation.double()  # [component, latent]
        if n_comp >= 5:
            best = max(sum(c[p[j], j] for j in range(5))
                       for p in itertools.permutations(range(n_comp), 5))  # fmt: skip
        else:
            best = max(sum(c[i, p[i]] for i in range(n_comp))
                       for p in itertools.permutations(range(5), n_comp))  # fmt: skip
        assert r.mcc * 5 == pytest.approx(float(best), abs=1e-5)


def test_bad_arguments_are_named():
    s, x = _mixed("uniform")
    with pytest.raises(ValueError, match=r"k=5"):
        fast_ica(x, k=5)
    with pytest.raises(ValueError, match="steps=0"):
        fast_ica(x, steps=0)
    with pytest.raises(ValueError, match=r"acts has shape \[8000\]"):
        fast_ica(x[:, 0])
    x_nan = x.clone()
    x_nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="1 NaN"):
        fast_ica(x_nan)
    with pytest.raises(ValueError, match="acts has 10 rows and factors 8000"):
        mean_correlation_coefficient(x[:10], s)
