"""``mechscope.wrap(bridge)``: TransformerLens 4 bridges as a provider, exact to the HF wrapper.

Each bridge is booted from a tiny random-init HF model built locally (hf_tiny.py; no download),
GPT-2 (learned positions, LayerNorm) and Llama (rotary, RMSNorm, grouped-query attention).
Every analysis on ``wrap(bridge)`` is compared with the same analysis on ``wrap(hf_model)``.
"""

import dataclasses
import sys

import pytest
import torch
import transformer_lens.patching as tl_patching
from hf_tiny import VOCAB, build_hf, make_tokenizer

import mechscope
from mechscope.ablation import ablate, ablation_sweep
from mechscope.attribution import direct_logit_attribution
from mechscope.lens import logit_lens
from mechscope.metrics import logit_diff
from mechscope.models import tl
from mechscope.patching import activation_patch
from mechscope.probes import fit_probe
from mechscope.steering import steer
from mechscope.widgets import AttentionPatterns
from mechscope.widgets._buffers import decode

torch.set_num_threads(1)
KINDS = ["gpt2", "llama"]
SITES = ["resid_pre", "attn_out", "mlp_out", "z"]
TOL = 1e-5


@pytest.fixture(scope="module", params=KINDS)
def pair(request):
    """(TransformerLensModel, HFModel, bridge) over the same weights."""
    hf = build_hf(request.param)
    bridge = tl.bridge(hf, make_tokenizer())
    with torch.no_grad():  # set-up TransformerLens / transformers do on a first run, once
        bridge.run_with_cache(torch.tensor([[4, 5]]))
    bridge.hooks_before = hook_state(bridge)
    return mechscope.wrap(bridge), mechscope.wrap(hf, make_tokenizer()), bridge


@pytest.fixture(scope="module")
def prompts():
    gen = torch.Generator().manual_seed(3)
    clean = torch.randint(4, VOCAB, (2, 7), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 2] = torch.randint(4, VOCAB, (2,), generator=gen)
    return clean, corrupted


def close(a, b, tol=TOL):
    return (torch.as_tensor(a) - torch.as_tensor(b)).abs().max().item() <= tol


def hook_state(module):
    """Every torch hook on ``module``'s tree, by id. (The bridge, and transformers' output
    capture, install a few hooks of their own on a first run, once: compare with the state
    after one plain ``bridge.run_with_cache``.)"""
    return [
        (
            name,
            tuple(m._forward_hooks),
            tuple(m._forward_pre_hooks),
            len(getattr(m, "fwd_hooks", ())),
        )
        for name, m in module.named_modules()
    ]


@torch.no_grad()
def test_logits_and_every_cached_activation_equal_hf(pair, tokens):
    model, ref, bridge = pair
    assert isinstance(model, mechscope.protocols.HookedModel)
    assert model.hook_names() == ref.hook_names()
    assert model.cfg == dataclasses.replace(ref.cfg, family=model.cfg.family)
    hf_logits = ref.hf_model(tokens).logits
    assert close(model(tokens), hf_logits)
    logits, cache = model.run_with_cache(tokens)
    ref_logits, ref_cache = ref.run_with_cache(tokens)
    assert close(logits, ref_logits)
    assert set(cache) == set(ref_cache) and len(cache) >= 29
    for name in ref.hook_names():
        assert cache[name].shape == ref_cache[name].shape, name
        assert close(cache[name], ref_cache[name]), name
    assert cache["pattern", 1].shape == (2, model.cfg.n_heads, 9, 9)
    assert hook_state(bridge) == bridge.hooks_before


@pytest.mark.parametrize("site", SITES)
def test_activation_patch_equals_hf_and_transformer_lens(pair, prompts, site):
    model, ref, bridge = pair
    clean, corrupted = prompts
    metric = logit_diff(torch.tensor([5, 6]), torch.tensor([7, 8]))
    ours = activation_patch(model, clean, corrupted, metric, site)
    theirs = activation_patch(ref, clean, corrupted, metric, site)
    assert ours.values.shape == theirs.values.shape
    assert close(ours.values, theirs.values)
    assert close(ours.clean_value, theirs.clean_value)
    # TransformerLens' own patching functions on the bridge (one prompt: their metric is
    # a scalar), denoising as ours.
    tl_fn = {
        "resid_pre": tl_patching.get_act_patch_resid_pre,
        "attn_out": tl_patching.get_act_patch_attn_out,
        "mlp_out": tl_patching.get_act_patch_mlp_out,
        "z": tl_patching.get_act_patch_attn_head_out_all_pos,
    }[site]
    one = logit_diff(5, 7)
    with torch.no_grad():
        _, clean_cache = bridge.run_with_cache(clean[:1])
    tl_values = tl_fn(bridge, corrupted[:1], clean_cache, lambda logits: one(logits).mean())
    single = activation_patch(model, clean[:1], corrupted[:1], one, site)
    assert tl_values.shape == single.values.shape
    assert close(tl_values, single.values)
    assert hook_state(bridge) == bridge.hooks_before


@torch.no_grad()
def test_ablation_steering_lens_attribution_probe_widget_equal_hf(pair, tokens):
    model, ref, _ = pair
    for kind in ("zero", "mean"):
        a = ablate(model, tokens, "blocks.1.attn.hook_z", kind=kind, head=[0, 2], pos=-1)
        b = ablate(ref, tokens, "blocks.1.attn.hook_z", kind=kind, head=[0, 2], pos=-1)
        assert close(a, b)
    metric = logit_diff(5, 6)
    sweep_a = ablation_sweep(model, tokens, metric, "z", kind="resample", seed=1)
    sweep_b = ablation_sweep(ref, tokens, metric, "z", kind="resample", seed=1)
    assert close(sweep_a.values, sweep_b.values)
    vector = torch.linspace(-1, 1, model.cfg.d_model)
    assert close(
        steer(model, tokens, vector, "blocks.1.hook_resid_pre", strength=3.0, pos=-1),
        steer(ref, tokens, vector, "blocks.1.hook_resid_pre", strength=3.0, pos=-1),
    )
    lens_a, lens_b = logit_lens(model, tokens), logit_lens(ref, tokens)
    assert lens_a.labels == lens_b.labels and close(lens_a.logits, lens_b.logits)
    _, cache = model.run_with_cache(tokens)
    _, ref_cache = ref.run_with_cache(tokens)
    for by in ("head", "component"):
        dla = direct_logit_attribution(cache, [5, 6], [7, 8], by=by)
        ref_dla = direct_logit_attribution(ref_cache, [5, 6], [7, 8], by=by)
        assert dla.labels == ref_dla.labels
        assert close(dla.values, ref_dla.values) and close(dla.offset, ref_dla.offset)
    # the attributions add up to the model's own logit difference
    full = model(tokens)[:, -1]
    diff = full[:, [5, 6]].diagonal() - full[:, [7, 8]].diagonal()
    assert close(dla.values.sum(0) + dla.offset, diff, 1e-4)
    # probes on cached activations: the same fit from the same data
    acts = cache["resid_post", 0].reshape(-1, model.cfg.d_model)
    ref_acts = ref_cache["resid_post", 0].reshape(-1, model.cfg.d_model)
    labels = (tokens.reshape(-1) % 2).long()
    pa, pb = fit_probe(acts, labels, seed=0), fit_probe(ref_acts, labels, seed=0)
    assert close(pa.predict(acts).float(), pb.predict(ref_acts).float())
    assert pa.test_accuracy == pb.test_accuracy
    # a widget built from the cache holds the same patterns
    words = [f"t{i}" for i in range(tokens.shape[1])]
    wa = AttentionPatterns.from_cache(cache, words, layer=1, dtype="float32")
    wb = AttentionPatterns.from_cache(ref_cache, words, layer=1, dtype="float32")
    shape = (1, model.cfg.n_heads, len(words), len(words))
    pa, pb = (torch.from_numpy(decode(w.attention, w.dtype, shape).copy()) for w in (wa, wb))
    assert close(pa, pb) and close(pa[0], cache["pattern", 1][0])


@pytest.fixture
def fresh():
    """A bridge in train mode (as boot leaves a hand-built model): the modes to restore."""
    bridge = tl.bridge(build_hf("gpt2").train(), make_tokenizer())
    bridge.train()
    with torch.no_grad():
        bridge.run_with_cache(torch.tensor([[4, 5]]))
    return bridge


def test_bridge_left_unmodified_even_when_a_hook_raises(fresh, tokens):
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    hooks = hook_state(fresh)
    modes = [m.training for m in fresh.modules()]
    model = mechscope.wrap(fresh)
    assert mechscope.wrap(model) is model

    def boom(act, hook):
        raise RuntimeError("student bug")

    with pytest.raises(RuntimeError, match="student bug"):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_z", boom)])
    clean, corrupted = tokens[:1], tokens[1:]
    activation_patch(model, clean, corrupted, logit_diff(5, 6), "z")
    model.run_with_cache(tokens, grad=True)
    assert hook_state(fresh) == hooks
    assert [m.training for m in fresh.modules()] == modes and fresh.training
    after = fresh.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_errors_name_the_fix(pair):
    model, _, bridge = pair
    with pytest.raises(TypeError, match="brings its own tokenizer"):
        mechscope.wrap(bridge, make_tokenizer())
    with pytest.raises(KeyError, match="hook_resid_pre"):
        model.run_with_cache(torch.tensor([[4, 5]]), names="blocks.0.hook_resid_pree")
    assert model.to_str_tokens(model.to_tokens("the cat")) == ["<bos>", "the", "cat"]
    with pytest.raises(ValueError, match="different lengths"):
        model.to_tokens(["the cat", "the cat sat"])


def test_without_transformer_lens_the_error_names_the_extra(monkeypatch, tokens):
    monkeypatch.setitem(sys.modules, "transformer_lens", None)  # any import of it now fails
    with pytest.raises(ImportError, match=r'pip install "mechscope\[tl\]"'):
        tl.bridge(build_hf("gpt2"), make_tokenizer())
    # wrapping and running an HF model never imports TransformerLens
    model = mechscope.wrap(build_hf("gpt2"), make_tokenizer())
    assert model.run_with_cache(tokens)[0].shape == (2, 9, VOCAB)
