"""Causal tracing (Meng et al. 2022): restoring the corrupted position at layer 0 is a full
restore; noise nowhere near the answer's path changes nothing; the model is unchanged."""

import pytest
import torch

from mechscope.causal_tracing import causal_trace


@pytest.fixture(scope="module")
def model(small_transformer):
    return small_transformer(1, d_mlp=64)


def last_logit(answer):
    return lambda logits: logits[:, -1, answer]


def test_layer0_restore_of_the_subject_is_the_clean_run(model):
    tokens = torch.tensor([[1, 5, 7, 3, 2], [4, 9, 6, 3, 2]])
    r = causal_trace(model, tokens, last_logit(3), pos=1, n_samples=4, seed=0)
    assert r.values.shape == (2, 5)
    assert r.values[0, 1] == pytest.approx(r.clean_value, abs=1e-4)
    # restoring a position the noise never touched, before the last, changes nothing
    assert r.values[0, 0] == pytest.approx(r.corrupted_value, abs=1e-5)
    # the last position's final residual carries everything the logits see
    post = causal_trace(model, tokens, last_logit(3), "resid_post", pos=1, n_samples=4, seed=0)
    assert post.values[-1, -1] == pytest.approx(r.clean_value, abs=1e-4)
    assert post.corrupted_value == pytest.approx(r.corrupted_value, abs=1e-6)
    assert r.corrupted_value != pytest.approx(r.clean_value, abs=1e-3)
    assert torch.allclose(r.indirect_effect, r.values - r.corrupted_value)


def test_noise_zero_changes_nothing_and_seed_reproduces(model):
    tokens = torch.tensor([[1, 5, 7, 3, 2]])
    r0 = causal_trace(model, tokens, last_logit(3), pos=[1, 2], noise=0.0, n_samples=2)
    assert r0.corrupted_value == pytest.approx(r0.clean_value, abs=1e-5)
    a = causal_trace(model, tokens, last_logit(3), "mlp_out", pos=1, n_samples=3, seed=7)
    b = causal_trace(model, tokens, last_logit(3), "mlp_out", pos=1, n_samples=3, seed=7)
    c = causal_trace(model, tokens, last_logit(3), "mlp_out", pos=1, n_samples=3, seed=8)
    assert torch.equal(a.values, b.values) and not torch.equal(a.values, c.values)


def test_model_unchanged_and_errors_name_the_argument(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tokens = torch.tensor([[1, 5, 7, 3, 2]])

    def bad_metric(logits):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        causal_trace(model, tokens, bad_metric, pos=1, n_samples=2)
    assert all(not m._forward_hooks for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="pos="):
        causal_trace(model, tokens, last_logit(3), pos=9)
    with pytest.raises(ValueError, match="n_samples="):
        causal_trace(model, tokens, last_logit(3), pos=1, n_samples=0)
    with pytest.raises(ValueError, match="site="):
        causal_trace(model, tokens, last_logit(3), "z", pos=1)
    with pytest.raises(ValueError, match="noise="):
        causal_trace(model, tokens, last_logit(3), pos=1, noise=-1.0)
