"""CCS (Burns et al. 2023) on planted contrast pairs with a known truth direction."""

import pytest
import torch

from mechscope.ccs import ccs_loss, fit_ccs


def planted(n=200, d=12, offset=0.0, seed=0, noise=0.3):
    """Pairs whose members sit at +-2 along a truth axis u; x- also carries a constant offset."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    u = torch.zeros(d)
    u[0] = 1.0
    shared = torch.randn(n, d, generator=gen)  # what both members share (subject, city, ...)
    sign = (2 * labels - 1).float()[:, None]
    pos = shared + 2 * sign * u + noise * torch.randn(n, d, generator=gen)
    neg = shared - 2 * sign * u + noise * torch.randn(n, d, generator=gen)
    neg[:, 1] += offset  # a feature that only tells the two sets apart (the word "not")
    return pos, neg, labels


def test_finds_the_planted_direction_without_labels():
    pos, neg, labels = planted()
    res = fit_ccs(pos[:100], neg[:100], seed=0, steps=300)
    assert res.accuracy(pos[100:], neg[100:], labels[100:]) > 0.97
    assert abs(float(res.direction[0])) > 0.9  # along u, up to sign
    assert (
        res.loss < 0.2
        and res.values.shape == (10,)
        and res.loss == pytest.approx(float(res.values.min()), abs=1e-6)
    )


def test_sign_is_arbitrary_and_oriented_fixes_it():
    pos, neg, labels = planted()
    res = fit_ccs(pos, neg, seed=0, steps=300)
    flipped = type(res)(**{**res.__dict__, "weight": -res.weight, "bias": -res.bias})
    # a consistent probe (p- = 1 - p+) has the same loss as its flip, which swaps the roles
    p = torch.rand(50, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ccs_loss(p, 1 - p), ccs_loss(1 - p, p))
    # ... so accuracy is sign-free, and a few labels orient it
    assert res.accuracy(pos, neg, labels) == flipped.accuracy(pos, neg, labels)
    assert torch.allclose(flipped.credence(pos, neg), 1 - res.credence(pos, neg))
    for r in (res, flipped):
        o = r.oriented(pos[:8], neg[:8], labels[:8])
        assert float((o.predict(pos, neg) == labels).float().mean()) > 0.97


def test_without_normalisation_ccs_finds_the_set_difference_instead():
    pos, neg, labels = planted(offset=8.0)
    good = fit_ccs(pos, neg, seed=0, steps=300)
    bad = fit_ccs(pos, neg, seed=0, steps=300, normalize=False)
    assert good.accuracy(pos, neg, labels) > 0.97
    assert bad.accuracy(pos, neg, labels) < 0.7
    assert abs(float(bad.direction[1])) > abs(float(bad.direction[0]))  # the "not" feature


def test_random_direction_control_and_determinism():
    # members differ by more than truth (independent noise): a random direction reads it badly
    pos, neg, labels = planted(noise=1.0)
    a = fit_ccs(pos, neg, seed=3, steps=200)
    b = fit_ccs(pos, neg, seed=3, steps=200)
    assert torch.equal(a.weight, b.weight) and a.bias == b.bias
    gen = torch.Generator().manual_seed(1)
    rand = [
        type(a)(**{**a.__dict__, "weight": torch.randn(12, generator=gen).double()})
        for _ in range(20)
    ]
    chance = sum(r.accuracy(pos, neg, labels) for r in rand) / len(rand)
    assert a.accuracy(pos, neg, labels) > 0.95
    assert chance < a.accuracy(pos, neg, labels) - 0.15


def test_ccs_loss_known_values():
    p = torch.tensor([1.0, 0.5, 0.9])
    q = torch.tensor([0.0, 0.5, 0.9])
    # consistent & confident: 0; both 0.5: 0 + 0.25; both 0.9: 0.8^2 + 0.81
    assert torch.allclose(ccs_loss(p[:1], q[:1]), torch.tensor(0.0))
    assert torch.allclose(ccs_loss(p[1:2], q[1:2]), torch.tensor(0.25))
    assert torch.allclose(ccs_loss(p[2:], q[2:]), torch.tensor(0.64 + 0.81))


def test_errors_name_the_argument():
    pos, neg, labels = planted(n=20)
    with pytest.raises(ValueError, match="acts_neg"):
        fit_ccs(pos, neg[:10])
    with pytest.raises(ValueError, match="steps"):
        fit_ccs(pos, neg, steps=0)
    res = fit_ccs(pos, neg, steps=5)
    with pytest.raises(ValueError, match="same hook"):
        res.credence(pos[:, :3], neg[:, :3])
    with pytest.raises(ValueError, match="labels"):
        res.accuracy(pos, neg, labels[:3])
