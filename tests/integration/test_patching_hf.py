"""Activation patching on wrapped tiny HF models equals one forward pass per patch."""

import pytest
import torch
from hf_tiny import VOCAB, build_hf, hook_count, make_tokenizer

import mechscope
from mechscope.metrics import logit_diff
from mechscope.patching import SITES, activation_patch

HOOK = {
    "resid_pre": "hook_resid_pre",
    "resid_mid": "hook_resid_mid",
    "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
    "z": "attn.hook_z",
    "z_by_pos": "attn.hook_z",
    "pattern": "attn.hook_pattern",
}


def naive_patch(model, source_t, target_t, metric, site):
    """One plain forward pass per patch; source activations written in by index."""
    n_layers, n_heads, n_pos = model.cfg.n_layers, model.cfg.n_heads, target_t.shape[1]
    names = [f"blocks.{la}.{HOOK[site]}" for la in range(n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(source_t, names=names)
    shape = {"z": (n_heads,), "pattern": (n_heads,), "z_by_pos": (n_heads, n_pos)}.get(
        site, (n_pos,)
    )
    out = torch.empty(n_layers, *shape)
    for layer in range(n_layers):
        src = cache[names[layer]]
        for rest in (
            torch.cartesian_prod(*[torch.arange(s) for s in shape]).reshape(-1, len(shape)).tolist()
        ):
            if site == "z":
                index = (slice(None), slice(None), rest[0])
            elif site == "z_by_pos":
                index = (slice(None), rest[1], rest[0])
            else:  # pattern: [batch, head, ...]; resid-like: [batch, pos, ...]
                index = (slice(None), rest[0])

            def fn(act, hook, index=index, src=src):
                act = act.clone()
                act[index] = src[index]
                return act

            with torch.no_grad(), model.hooks([(names[layer], fn)]):
                out[(layer, *rest)] = metric(model(target_t)).mean()
    return out


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def hf(request):
    hf_model = build_hf(request.param)
    return mechscope.wrap(hf_model, make_tokenizer()), hf_model


@pytest.fixture(scope="module")
def prompts():
    gen = torch.Generator().manual_seed(2)
    clean = torch.randint(4, VOCAB, (2, 5), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 1] = torch.randint(4, VOCAB, (2,), generator=gen)
    corrupted[:, 3] = torch.randint(4, VOCAB, (2,), generator=gen)
    return clean, corrupted


@pytest.mark.parametrize("direction", ["denoising", "noising"])
@pytest.mark.parametrize("site", list(SITES))
def test_exact_on_hf(hf, prompts, site, direction):
    model, hf_model = hf
    clean, corrupted = prompts
    metric = logit_diff([5, 6], [7, 8])
    got = activation_patch(model, clean, corrupted, metric, site, direction=direction, batch_size=8)
    src, tgt = (clean, corrupted) if direction == "denoising" else (corrupted, clean)
    want = naive_patch(model, src, tgt, metric, site)
    torch.testing.assert_close(got.values.reshape(want.shape), want, atol=1e-5, rtol=0)
    assert got.values.std() > 1e-5  # the patches change something (small for saturated patterns)
    assert hook_count(hf_model) == 0


def test_hf_text_length_mismatch_shows_tokens(hf):
    model, _ = hf
    with pytest.raises(ValueError) as e:
        activation_patch(model, "the cat sat", "the big cat sat", logit_diff(5, 6))
    msg = str(e.value)
    assert "clean tokens:" in msg and "'cat'" in msg and "'big'" in msg


def test_hf_model_left_unmodified_when_metric_raises(hf, prompts):
    model, hf_model = hf
    clean, corrupted = prompts
    before = {k: v.clone() for k, v in hf_model.state_dict().items()}
    impl = hf_model.config._attn_implementation
    calls = []

    def flaky(logits):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("metric failed")
        return logits[:, -1, 5]

    with pytest.raises(RuntimeError, match="metric failed"):
        activation_patch(model, clean, corrupted, flaky, "pattern", batch_size=4)
    assert hook_count(hf_model) == 0 and hook_count(model) == 0
    assert hf_model.config._attn_implementation == impl
    assert not hf_model.training
    for k, v in hf_model.state_dict().items():
        assert torch.equal(v, before[k]), k
