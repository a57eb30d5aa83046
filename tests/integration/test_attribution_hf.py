"""Attribution on wrapped tiny HF models: DLA sums to the logits, IG is complete, and the
HF model leaves every call as it came."""

import pytest
import torch
from hf_tiny import build_hf, hook_count, make_tokenizer

import mechscope
from mechscope.attribution import (
    direct_logit_attribution,
    gradient_x_input,
    integrated_gradients,
    logit_metric,
    saliency,
)

KINDS = ["gpt2", "neox", "llama"]  # learned positions + LayerNorm; parallel residual; RMSNorm


@pytest.fixture(scope="module", params=KINDS)
def wrapped(request):
    return mechscope.wrap(build_hf(request.param), make_tokenizer())


def test_dla_components_sum_to_hf_logits(wrapped, tokens):
    logits, cache = wrapped.run_with_cache(tokens)
    ans, wrong = torch.tensor([5, 9]), torch.tensor([6, 4])
    res = direct_logit_attribution(cache, ans, wrong, by="component")
    expected = logits[[0, 1], -1, ans] - logits[[0, 1], -1, wrong]
    assert torch.allclose(res.values.sum(0) + res.offset, expected, atol=1e-3)
    heads = direct_logit_attribution(cache, ans, wrong, by="head")
    assert heads.values.shape == (wrapped.cfg.n_layers * wrapped.cfg.n_heads, 2)


def test_ig_completeness_on_hf(wrapped, tokens):
    metric = logit_metric(torch.tensor([5, 9]), torch.tensor([6, 4]))
    res = integrated_gradients(wrapped, tokens, metric, baseline="pad", steps=64)
    assert res.completeness_error.max() < 0.01
    with torch.no_grad():
        f_in = metric(wrapped(tokens))
        pad = torch.zeros_like(tokens)  # the tokenizer's pad id is 0, attended to as a token
        f_pad = metric(wrapped(pad, attention_mask=torch.ones_like(pad)))
    assert torch.allclose(res.f_input, f_in, atol=1e-4)
    assert torch.allclose(res.f_baseline, f_pad, atol=1e-4)
    # chunked = one pass
    chunked = integrated_gradients(
        wrapped, tokens, metric, baseline="pad", steps=64, batch_size=2 * 7
    )
    assert torch.allclose(chunked.per_dim, res.per_dim, atol=1e-5)


def test_hf_model_left_as_it_came(wrapped, tokens):
    hf = wrapped.hf_model
    hf.get_input_embeddings().weight.requires_grad_(False)
    try:
        before = (
            hook_count(hf),
            [(n, p.requires_grad) for n, p in hf.named_parameters()],
            hf.training,
            hf.config._attn_implementation,
        )
        metric = logit_metric(5)
        saliency(wrapped, tokens, metric)
        gradient_x_input(wrapped, tokens, metric)
        integrated_gradients(wrapped, tokens, metric, steps=8, tol=100)
        with pytest.raises(ValueError, match="one number per prompt"):
            integrated_gradients(wrapped, tokens, lambda lg: lg.sum(), steps=8)
        after = (
            hook_count(hf),
            [(n, p.requires_grad) for n, p in hf.named_parameters()],
            hf.training,
            hf.config._attn_implementation,
        )
        assert after == before
        assert all(p.grad is None for p in hf.parameters())
    finally:
        hf.get_input_embeddings().weight.requires_grad_(True)


def test_padded_input_fails_loudly_but_a_pad_baseline_works(wrapped, tokens):
    metric = logit_metric(5)
    padded = tokens.clone()
    padded[0, :2] = 0  # the tokenizer's dedicated pad id, and no attention mask
    with pytest.raises(ValueError, match="pad token"):
        integrated_gradients(wrapped, padded, metric, steps=4, tol=100)
    res = integrated_gradients(wrapped, tokens, metric, baseline=0, steps=4, tol=100)
    assert res.attributions.shape == tokens.shape
