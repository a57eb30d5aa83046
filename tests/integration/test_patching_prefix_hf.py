"""Starting a wrapped HF model at block L and position S (the patching fast path) is exact.

``HFModel.forward_suffix`` (the PrefixReuse capability) skips the blocks before L and the positions before S, taking
the target run's keys / values from HF's cache (a ``transformers.DynamicCache``, passed
under the keyword the installed transformers wants, with no deprecation warning). It must give the same logits as a full
forward pass for every decoder family (learned and rotary positions, GQA, parallel
residual, sliding windows), and leave the model exactly as it came, also when a hook raises.
"""

import warnings

import pytest
import torch
from hf_tiny import DECODERS, VOCAB, build_hf, hook_count, make_tokenizer
from test_patching_hf import naive_patch

import mechscope
from mechscope.metrics import logit_diff
from mechscope.patching import activation_patch


def _prompt(n_pos=9, seed=3):
    return torch.randint(4, VOCAB, (2, n_pos), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", DECODERS)
def test_suffix_equals_full_forward(kind, impl):
    model = mechscope.wrap(build_hf(kind, impl=impl), make_tokenizer())
    tokens = _prompt()
    with torch.no_grad():
        full = model(tokens)
        logits, resid, kv, _ = model.prefix_state(tokens)
        torch.testing.assert_close(logits, full, atol=1e-5, rtol=0)
        for layer in range(model.cfg.n_layers):
            for start in (0, 1, 5, 8):  # 8 > mistral's sliding window of 4
                n = 3  # copies: the cache is repeated per copy
                entries = [(layer, resid[layer][:, start:].repeat(n, 1, 1))]
                out = model.forward_suffix(entries, start, tokens, kv)
                torch.testing.assert_close(out, full[:, start:].repeat(n, 1, 1), atol=1e-5, rtol=0)
        # Copies entering at different blocks share one pass; rows follow the entries.
        entries = [(0, resid[0][:, 4:]), (1, resid[1][:, 4:].repeat(2, 1, 1))]
        out = model.forward_suffix(entries, 4, tokens, kv)
        torch.testing.assert_close(out, full[:, 4:].repeat(3, 1, 1), atol=1e-5, rtol=0)
        kept = model.forward_suffix([(1, resid[1][:, 4:])], 4, tokens, kv, pos=[4, 8])
        torch.testing.assert_close(kept, full[:, [4, 8]], atol=1e-5, rtol=0)


def test_suffix_restores_blocks_and_hooks_when_a_hook_raises():
    hf_model = build_hf("llama")
    model = mechscope.wrap(hf_model, make_tokenizer())
    tokens = _prompt()
    with torch.no_grad():
        logits, resid, kv, _ = model.prefix_state(tokens)
    blocks, n_hooks = hf_model.model.layers, hook_count(hf_model)

    def boom(act, hook):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), model.hooks([("blocks.1.hook_mlp_out", boom)]):
        model.forward_suffix([(1, resid[1][:, 3:])], 3, tokens, kv)
    assert hf_model.model.layers is blocks and len(blocks) == 2
    assert hook_count(hf_model) == n_hooks
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), logits, atol=1e-6, rtol=0)


@pytest.mark.parametrize("site", ["resid_pre", "resid_post", "mlp_out", "z", "pattern"])
@pytest.mark.parametrize("kind", ["neox", "mistral", "qwen2"])
def test_patching_exact_on_more_families(kind, site):
    model = mechscope.wrap(build_hf(kind), make_tokenizer())
    clean = _prompt(7, seed=5)
    corrupted = clean.clone()
    corrupted[:, 2] = (clean[:, 2] + 1 - 4) % (VOCAB - 4) + 4
    corrupted[1, 5] = (clean[1, 5] + 3 - 4) % (VOCAB - 4) + 4
    metric = logit_diff([5, 6], [7, 8])
    got = activation_patch(model, clean, corrupted, metric, site, batch_size=6)
    want = naive_patch(model, clean, corrupted, metric, site)
    torch.testing.assert_close(got.values.reshape(want.shape), want, atol=1e-5, rtol=0)
    assert got.values.std() > 1e-5


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_prefix_reuse_sweep_raises_no_deprecation_warning(kind):
    # transformers 5.x deprecates the ``past_key_values`` keyword (removed in 5.40): the
    # fast path passes its DynamicCache under the keyword the installed version wants.
    model = mechscope.wrap(build_hf(kind), make_tokenizer())
    clean = _prompt(6, seed=7)
    corrupted = clean.clone()
    corrupted[:, 3] = (clean[:, 3] + 1 - 4) % (VOCAB - 4) + 4
    metric = logit_diff([5, 6], [7, 8])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = activation_patch(model, clean, corrupted, metric, "resid_pre", batch_size=4)
    want = naive_patch(model, clean, corrupted, metric, "resid_pre")
    torch.testing.assert_close(got.values, want, atol=1e-5, rtol=0)
    assert got.values[:, 4:].std() > 1e-5  # later positions ran the suffix path
