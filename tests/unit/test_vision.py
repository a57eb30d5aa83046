"""mechscope.vision on a random-init DigitsCNN: data, hook points, edge scores, feature
visualisation and purity, each against a hand computation. (The shipped model: tests/integration/
test_zoo_vision.py.)"""

from __future__ import annotations

import math

import pytest
import torch

from mechscope.protocols import HookedModel
from mechscope.vision import (
    CNNConfig,
    DigitsCNN,
    edge_score,
    gabor_filters,
    load_digits,
    sobel_filters,
    spatial_rows,
)
from mechscope.vision.examples import image_acts, purity
from mechscope.vision.featvis import high_frequency_energy, total_variation, visualize


@pytest.fixture(scope="module")
def digits():
    return load_digits("train"), load_digits("test"), load_digits("all")


@pytest.fixture(scope="module")
def model():
    return DigitsCNN(CNNConfig(seed=3))


def test_digits_split_is_fixed_disjoint_and_complete(digits):
    (x_tr, y_tr), (x_te, y_te), (x_all, y_all) = digits
    assert x_tr.shape == (1438, 1, 8, 8) and x_te.shape == (359, 1, 8, 8)
    assert x_all.shape == (1797, 1, 8, 8) and float(x_all.min()) == 0 and float(x_all.max()) == 1
    assert set(y_all.tolist()) == set(range(10))
    # every image of "all" is in exactly one split (compared as bytes)
    key = lambda x: {bytes(r.numpy().tobytes()) for r in x}  # noqa: E731
    assert key(x_tr) | key(x_te) == key(x_all) and not key(x_tr) & key(x_te)
    assert torch.equal(load_digits("test")[0], x_te)  # seeded: the same every call
    with pytest.raises(ValueError, match="split='val'.*'train', 'test', 'all'"):
        load_digits("val")


def test_cnn_is_a_hooked_model_with_named_points(model, digits):
    assert isinstance(model, HookedModel)
    assert model.hook_names() == [
        "hook_input", "conv1.hook_pre", "conv1.hook_post", "conv2.hook_pre", "conv2.hook_post",
        "hook_pooled", "hook_logits",
    ]  # fmt: skip
    x = digits[1][0][:5]
    logits, cache = model.run_with_cache(x)
    assert logits.shape == (5, 10) and torch.equal(cache["hook_logits"], logits)
    assert cache["conv1.hook_post"].shape == (5, 16, 8, 8)
    assert torch.equal(cache["conv1.hook_post"], cache["conv1.hook_pre"].relu())
    with torch.no_grad():
        by_hand = torch.nn.functional.conv2d(
            x, model.conv1.conv.weight, model.conv1.conv.bias, padding=1
        )
    torch.testing.assert_close(cache["conv1.hook_pre"], by_hand)
    torch.testing.assert_close(model(x[:, 0]), logits)
    torch.testing.assert_close(model(x[0, 0]), logits[:1])
    with pytest.raises(ValueError, match=r"images has shape \(5, 2, 8, 8\)"):
        model(torch.zeros(5, 2, 8, 8))
    with pytest.raises(TypeError, match="no tokens"):
        model.to_str_tokens(x)


def test_hooks_patch_and_are_removed_even_on_error(model, digits):
    x = digits[1][0][:4]
    with torch.no_grad(), model.hooks([("conv2.hook_post", lambda a, h: torch.zeros_like(a))]):
        zeroed = model(x)
    # conv2 zeroed: the logits are the readout's bias alone
    torch.testing.assert_close(zeroed, model.readout.bias.detach().expand(4, 10))
    with pytest.raises(RuntimeError, match="boom"), model.hooks([("hook_input", _boom)]):
        model(x)
    assert all(not p._forward_hooks for p in model.modules())
    with pytest.raises(KeyError, match="conv1.hook_post"):
        model.run_with_cache(x, names=["conv1.hook_pots"])


def _boom(act, hook):
    raise RuntimeError("boom")


def test_seeded_init_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = DigitsCNN(CNNConfig(seed=5)), DigitsCNN(CNNConfig(seed=5))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.conv1.conv.weight, DigitsCNN(CNNConfig(seed=6)).conv1.conv.weight)


def test_edge_score_of_sobel_gabor_and_random_filters():
    gx, gy = sobel_filters()
    r = edge_score(torch.stack([gx, gy, -3 * gx, gx + gy, torch.ones(3, 3)]))
    torch.testing.assert_close(r.values[:4], torch.ones(4))
    assert r.values[4] == 0  # a constant filter sees brightness, not edges
    torch.testing.assert_close(r.angle[:4], torch.tensor([0.0, 90.0, 180.0, 45.0]))
    # a filter half edge, half orthogonal to both Sobels (a centre-surround blob): 1/sqrt(2)
    blob = torch.tensor([[1.0, 0, 1], [0, -4, 0], [1, 0, 1]])
    mix = gx / gx.norm() + blob / blob.norm()
    assert math.isclose(float(edge_score(mix[None]).values), 2**-0.5, rel_tol=1e-5)
    # random 3x3 filters: E sqrt(chi2_2 / chi2_8) ~ 0.46 (< sqrt(2/8))
    rand = edge_score(torch.randn(4000, 1, 3, 3, generator=torch.Generator().manual_seed(0)))
    assert rand.values.shape == (4000, 1) and 0.43 < rand.mean() < 0.49
    bank = gabor_filters(8)
    assert bank.shape == (16, 3, 3)
    torch.testing.assert_close(edge_score(bank, kind="gabor").values, torch.ones(16))
    assert float(edge_score(bank[:8], kind="gabor").angle[2]) == 45.0
    with pytest.raises(ValueError, match=r"expected 3x3 filters"):
        edge_score(torch.zeros(4, 5, 5))
    with pytest.raises(ValueError, match="kind='canny'"):
        edge_score(bank, kind="canny")


def test_total_variation_and_high_frequency_energy_by_hand():
    img = torch.tensor([[0.0, 1.0], [3.0, 1.0]])
    assert float(total_variation(img)) == (3 + 0) + (1 + 2)
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 1.0
    ramp = torch.linspace(0, 1, 8)[None, :].expand(8, 8)
    smooth = torch.outer(torch.hann_window(8), torch.hann_window(8))
    hfe = high_frequency_energy(torch.stack([checker, ramp, smooth]))
    assert math.isclose(float(hfe[0]), 1.0, rel_tol=1e-6)
    assert float(hfe[2]) < 0.01 and float(hfe[2]) < float(hfe[1]) < float(hfe[0])


def test_visualize_raises_the_objective_and_leaves_the_model_alone(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    r = visualize(model, "conv2.hook_post", 4, n=2, steps=40, lr=0.1, seed=1)
    assert model.training  # mode restored
    model.eval()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert r.values.shape == (2, 1, 8, 8) and r.objective.shape == (41, 2)
    assert (r.final > 10 * r.start + 0.1).all()
    _, cache = model.run_with_cache(r.values, names=["conv2.hook_post"])
    torch.testing.assert_close(cache["conv2.hook_post"][:, 4].mean((-2, -1)), r.final)
    again = visualize(model, "conv2.hook_post", 4, n=2, steps=40, lr=0.1, seed=1)
    assert torch.equal(again.values, r.values)  # seeded
    jit = visualize(model, "hook_logits", 2, n=2, steps=30, jitter=1, blur=0.2, tv=0.1, l2=0.1)
    assert (jit.final > jit.start).all()
    with pytest.raises(ValueError, match=r"feature=16 is out of range for 'conv2.hook_post'"):
        visualize(model, "conv2.hook_post", 16, steps=2)
    with pytest.raises(ValueError, match="blur=2"):
        visualize(model, "conv2.hook_post", 0, steps=2, blur=2)


def test_purity_and_spatial_rows_by_hand(model, digits):
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    acts = torch.tensor(
        [[5.0, 0, 1], [4, 0, 2], [0, 0, 3], [0, 0, 4], [1, 0, 5], [2, 0, 6]]
    )  # unit 0: top-2 rows 0, 1 (class 0); unit 1 never fires; unit 2: rows 5, 4
    p = purity(acts, labels, k=2)
    assert p.values[0] == 1.0 and math.isnan(float(p.values[1])) and p.values[2] == 0.5
    assert p.top[0].tolist() == [0, 1] and p.classes[0] == 0
    with pytest.raises(ValueError, match="k=7"):
        purity(acts, labels, k=7)
    x = digits[1][0][:3]
    per_image = image_acts(model, x, "conv2.hook_post")
    _, cache = model.run_with_cache(x, names=["conv2.hook_post"])
    a = cache["conv2.hook_post"]
    assert torch.equal(per_image, a.amax((-2, -1)))
    rows = spatial_rows(a)
    assert rows.shape == (3 * 64, 16) and torch.equal(rows[64 + 8 * 2 + 5], a[1, :, 2, 5])
