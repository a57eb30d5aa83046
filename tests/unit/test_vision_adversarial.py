"""mechscope.vision.adversarial: FGSM / PGD / random-noise control, adversarial training,
input gradients and saliency alignment; the model is never changed."""

import pytest
import torch

from mechscope.vision import CNNConfig, DigitsCNN, accuracy, load_digits, load_zoo_cnn
from mechscope.vision.adversarial import (
    adversarial_training,
    fgsm,
    input_gradient,
    pgd,
    random_noise,
    saliency_alignment,
)


@pytest.fixture(scope="module")
def data():
    x, y = load_digits("test")
    return load_zoo_cnn("digits-cnn"), x[:120], y[:120]


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_attacks_stay_in_the_box_beat_noise_and_leave_the_model_alone(data):
    model, x, y = data
    model.train()  # the mode must come back as it was
    before = _state(model)
    f = fgsm(model, x, y, eps=0.2)
    p = pgd(model, x, y, eps=0.2, steps=10, seed=0)
    r = random_noise(model, x, y, eps=0.2, seed=0)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(q.grad is None for q in model.parameters())
    model.eval()
    for res in (f, p, r):
        assert res.values.shape == x.shape and res.delta.abs().max() <= 0.2 + 1e-6
        assert res.values.min() >= 0 and res.values.max() <= 1
        assert torch.allclose(res.values, x + res.delta)
    # the success rate of the gradient's direction, vs a random one of the same size
    assert p.success_rate() >= f.success_rate() - 0.05 and p.success_rate() > 0.8
    assert r.success_rate() < 0.2
    # success is recomputed from the model's answers
    assert torch.equal(p.success, model(p.values).argmax(-1) != y)
    # seeded
    assert torch.equal(pgd(model, x, y, eps=0.2, seed=0).values, p.values)
    assert not torch.equal(random_noise(model, x, y, eps=0.2, seed=1).values, r.values)
    # eps = 0 changes nothing
    assert fgsm(model, x, y, eps=0.0).success_rate() == pytest.approx(1 - accuracy(model, x, y))


def test_targeted_pgd_reaches_the_target(data):
    model, x, y = data
    t = (y + 1) % 10
    res = pgd(model, x, y, eps=0.3, steps=20, targets=t)
    assert torch.equal(res.success, model(res.values).argmax(-1) == t)
    assert res.success_rate() > 0.8
    assert random_noise(model, x, y, eps=0.3, targets=t).success_rate() < 0.1


def test_adversarial_training_is_seeded_robust_and_saliency_aligned(data):
    model, x, y = data
    xtr, ytr = load_digits("train")
    state = torch.random.get_rng_state()
    robust = adversarial_training(xtr, ytr, eps=0.1, steps=200, seed=0)
    standard = adversarial_training(xtr, ytr, eps=0.0, steps=200, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    one, two = (adversarial_training(xtr, ytr, eps=0.1, steps=10, seed=3) for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(one.parameters(), two.parameters(), strict=True))
    assert not robust.training and accuracy(robust, x, y) > 0.85 and accuracy(standard, x, y) > 0.85
    attack = dict(eps=0.1, steps=10, seed=0)
    assert pgd(robust, x, y, **attack).success_rate() < pgd(standard, x, y, **attack).success_rate()
    assert saliency_alignment(robust, x, y).mean() > saliency_alignment(standard, x, y).mean() + 0.1


def test_input_gradient_and_alignment_values():
    # the input gradient agrees with a central finite difference of the label logit
    model = DigitsCNN(CNNConfig(seed=0))
    x, y = load_digits("test")
    g = input_gradient(model, x[:5], y[:5])
    eps = 1e-3
    bump = torch.zeros_like(x[:1])
    bump[0, 0, 3, 4] = eps
    with torch.no_grad():
        fd = (model(x[:1] + bump) - model(x[:1] - bump))[0, y[0]] / (2 * eps)
    assert g.shape == (5, 1, 8, 8) and float(fd) == pytest.approx(float(g[0, 0, 3, 4]), abs=1e-3)
    a = saliency_alignment(model, x[:5], y[:5], kind="signed")
    assert a.shape == (5,) and (a.abs() <= 1 + 1e-6).all()


def test_errors_name_the_argument(data):
    model, x, y = data
    with pytest.raises(ValueError, match="eps="):
        fgsm(model, x, y, eps=2.0)
    with pytest.raises(ValueError, match="labels"):
        pgd(model, x, y[:3])
    with pytest.raises(ValueError, match="targets"):
        pgd(model, x, y, targets=y.float())
    with pytest.raises(ValueError, match="steps="):
        pgd(model, x, y, steps=0)
    with pytest.raises(ValueError, match="images has shape"):
        fgsm(model, torch.zeros(3, 5, 5), y[:3])
    with pytest.raises(ValueError, match="kind="):
        saliency_alignment(model, x, y, kind="squared")
