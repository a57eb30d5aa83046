"""ActivationCache analysis on our own Transformer: the residual-stream identities."""

import pytest
import torch

from mechscope.models import Transformer


@pytest.fixture
def run(tiny, tokens):
    with torch.no_grad():
        # Non-trivial LayerNorm gains and biases, so folding them is actually tested.
        gen = torch.Generator().manual_seed(7)
        for name, p in tiny.named_parameters():
            if p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5 + (1.0 if ".w" in name else 0.0))
        return tiny.run_with_cache(tokens)


def test_decomposition_sums_to_the_residual(tiny, run):
    _, cache = run
    stack, labels = cache.decompose_resid()
    assert labels == ["embed", "pos_embed", "0_attn_out", "0_mlp_out", "1_attn_out", "1_mlp_out"]
    assert stack.shape == (6, 2, 9, 16)
    assert torch.allclose(stack.sum(0), cache["resid_post", 1], atol=1e-5)
    part, part_labels = cache.decompose_resid(layer=1, mode="attn")
    assert part_labels == ["embed", "pos_embed", "0_attn_out"]
    assert torch.allclose(part.sum(0), cache["resid_mid", 0], atol=1e-5)


def test_heads_plus_bias_sum_to_attn_out(tiny, run):
    _, cache = run
    stack, labels = cache.stack_head_results()
    assert stack.shape == (4, 2, 9, 16) and labels == ["L0H0", "L0H1", "L1H0", "L1H1"]
    for layer in range(2):
        total = stack[2 * layer : 2 * layer + 2].sum(0) + tiny.attn_output_bias(layer)
        assert torch.allclose(total, cache["attn_out", layer], atol=1e-5)


def test_logit_attrs_of_full_decomposition_give_the_logits(tiny, run, tokens):
    logits, cache = run
    stack, _ = cache.decompose_resid(apply_ln=True)
    attrs = cache.logit_attrs(stack, tokens)
    assert attrs.shape == (6, 2, 9)
    expected = logits.gather(-1, tokens[..., None])[..., 0]
    assert torch.allclose(attrs.sum(0) + cache.unembed_offset()[tokens], expected, atol=1e-4)
    # Logit differences against token 3.
    offset = cache.unembed_offset()
    diff = cache.logit_attrs(stack, tokens, incorrect_tokens=3).sum(0) + offset[tokens] - offset[3]
    assert torch.allclose(diff, expected - logits[..., 3], atol=1e-4)
    # Heads: applying the final norm to head outputs uses the real residual's scale.
    heads, _ = cache.stack_head_results(apply_ln=True)
    assert cache.logit_attrs(heads, 5).shape == (4, 2, 9)


def test_accumulated_resid_is_the_logit_lens(tiny, run, tokens):
    logits, cache = run
    acc, labels = cache.accumulated_resid(incl_mid=True)
    assert labels == ["0_pre", "0_mid", "1_pre", "1_mid", "final_post"]
    assert torch.equal(acc[2], cache["resid_pre", 1])
    lens, _ = cache.accumulated_resid(apply_ln=True, pos_slice=-1)
    assert lens.shape == (3, 2, 16)
    last = cache.logit_attrs(lens, tokens[:, -1])[-1] + cache.unembed_offset()[tokens[:, -1]]
    assert torch.allclose(last, logits[:, -1].gather(-1, tokens[:, -1:])[:, 0], atol=1e-4)
    early, early_labels = cache.accumulated_resid(layer=1)
    assert early_labels == ["0_pre"] and early.shape == (1, 2, 9, 16)


def test_apply_ln_uses_the_final_scale(tiny, run):
    _, cache = run
    final = cache["resid_post", 1]
    normed = cache.apply_ln_to_stack(final[None])[0]
    assert torch.allclose(normed, torch.nn.functional.layer_norm(final, (16,), eps=1e-5), atol=1e-5)
    own = cache.apply_ln_to_stack(final[None], recompute_scale=True)[0]
    assert torch.allclose(own, normed, atol=1e-6)


def test_works_without_batch_dim(tiny, tokens):
    logits, cache = tiny.run_with_cache(tokens[:1], remove_batch_dim=True)
    stack, _ = cache.decompose_resid(apply_ln=True)
    assert stack.shape == (6, 9, 16)
    attrs = cache.logit_attrs(stack, tokens[0])
    expected = logits[0].gather(-1, tokens[0][:, None])[:, 0]
    assert torch.allclose(attrs.sum(0) + cache.unembed_offset()[tokens[0]], expected, atol=1e-4)


def test_missing_hooks_are_named_with_the_fix(tiny, tokens):
    _, cache = tiny.run_with_cache(tokens, names=["hook_embed"])
    with pytest.raises(KeyError, match=r"'hook_pos_embed'.*names=\["):
        cache.decompose_resid()
    with pytest.raises(KeyError, match="blocks.0.attn.hook_z"):
        cache.stack_head_results()
    _, cache = tiny.run_with_cache(tokens, names=lambda n: "resid" not in n)
    with pytest.raises(KeyError, match="'blocks.1.hook_resid_post'"):
        cache.decompose_resid(apply_ln=True)
    with pytest.raises(KeyError, match="'blocks.0.hook_resid_pre'"):
        cache.decompose_resid(layer=0, apply_ln=True)
    with pytest.raises(ValueError, match="mode="):
        cache.decompose_resid(mode="heads")
    with pytest.raises(ValueError, match="out of range"):
        cache.decompose_resid(layer=7)
    with pytest.raises(ValueError, match="broadcast"):
        _, full = tiny.run_with_cache(tokens)
        full.logit_attrs(full.decompose_resid(apply_ln=True)[0], tokens[:, :3])


def test_model_without_norm_or_mlp(attn_only):
    tokens = torch.tensor([[0, 1, 2, 3]])
    logits, cache = attn_only.run_with_cache(tokens)
    stack, labels = cache.decompose_resid(apply_ln=True)  # no norm: unchanged
    assert labels == ["embed", "pos_embed", "0_attn_out"]
    attrs = cache.logit_attrs(stack, tokens).sum(0) + cache.unembed_offset()[tokens]
    assert torch.allclose(attrs, logits.gather(-1, tokens[..., None])[..., 0], atol=1e-5)


def test_the_folded_unembedding_is_cached_and_follows_weight_edits(tiny, run, tokens):
    """The lens reads W_U with the final norm folded in on every call; it is cached, but an
    in-place edit of either weight (version counter) recomputes it, and a new model never
    gets another model's matrix."""
    from mechscope import lens

    _, cache = run
    first = cache._unembed()
    assert cache._unembed() is first  # cached
    norm = tiny.final_norm()["weight"]
    torch.testing.assert_close(first, norm[:, None] * tiny.unembed_weights())
    before = lens.logit_lens(tiny, tokens).logits.clone()
    with torch.no_grad():
        norm.mul_(2.0)  # an in-place edit: the cached product is stale
    try:
        second = cache._unembed()
        assert second is not first
        torch.testing.assert_close(second, norm[:, None] * tiny.unembed_weights())
        assert not torch.allclose(lens.logit_lens(tiny, tokens).logits, before)
    finally:
        with torch.no_grad():
            norm.div_(2.0)
    other = Transformer(tiny.cfg)
    _, other_cache = other.run_with_cache(tokens)
    o = other_cache._unembed()
    torch.testing.assert_close(o, other.final_norm()["weight"][:, None] * other.unembed_weights())
