"""Features as hook points (issue 14 item 1): an SAE spliced into a zoo model and into a wrapped
HF model exposes its features and error term as hook points; with nothing changed the logits
are bit-identical; every tool works on the new hooks; the user's model is left as it came."""

import hf_tiny
import pytest
import torch

import mechscope
from mechscope.ablation import ablate
from mechscope.metrics import logit_diff
from mechscope.patching import activation_patch
from mechscope.patching_attr import attribution_patch
from mechscope.sae import SAE, SAEConfig, load_zoo_sae
from mechscope.splice import SPLICE_POINTS, splice
from mechscope.steering import steer

PROMPTS = ["the cat sat on a mat", "the dog ran to a mat"]


@pytest.fixture(scope="module")
def zoo():
    """stdlib-lm with its shipped SAE on blocks.1.mlp.hook_post (a trained SAE)."""
    model = mechscope.load("stdlib-lm")
    sae = load_zoo_sae("stdlib-lm-mlp1")
    texts = ["def area(width, height):\n    return", "x = foo(a, b)\nprint"]
    tokens = torch.cat([model.to_tokens(t)[:, :10] for t in texts])
    return model, sae, tokens


@pytest.fixture(scope="module")
def hf():
    """A wrapped tiny GPT-2 (train mode on purpose: no call may change it) with a random SAE
    on blocks.0.hook_resid_post."""
    model = mechscope.wrap(hf_tiny.build_hf("gpt2").train(), hf_tiny.make_tokenizer())
    sae = SAE(SAEConfig(d_in=16, d_sae=48, site="blocks.0.hook_resid_post", seed=3))
    return model, sae, model.to_tokens(PROMPTS)


def _state(model):
    m = getattr(model, "hf_model", model)
    return {k: v.clone() for k, v in m.state_dict().items()}, m.training


def _hook_counts(model):
    m = getattr(model, "hf_model", model)
    return sum(len(x._forward_hooks) + len(x._forward_pre_hooks) for x in m.modules())


@pytest.mark.parametrize("which", ["zoo", "hf"])
def test_spliced_logits_are_bit_identical_and_the_model_is_untouched(which, request):
    model, sae, tokens = request.getfixturevalue(which)
    before, mode = _state(model)
    with torch.no_grad():
        want = model(tokens)
        spliced = splice(model, sae)
        got = spliced(tokens)
    assert torch.equal(got, want)
    after, mode_after = _state(model)
    assert mode_after == mode and all(torch.equal(before[k], after[k]) for k in before)
    assert _hook_counts(model) == 0
    site = sae.cfg.site
    names = spliced.hook_names()
    i = names.index(site)
    assert names[i + 1 : i + 6] == [f"{site}.{p}" for p in SPLICE_POINTS]
    assert set(model.hook_names()) < set(names)


@pytest.mark.parametrize("which", ["zoo", "hf"])
def test_cache_holds_features_error_and_reconstruction(which, request):
    model, sae, tokens = request.getfixturevalue(which)
    spliced = splice(model, sae)
    site = sae.cfg.site
    _, cache = spliced.run_with_cache(tokens, names=lambda n: n.startswith(site))
    x = cache[site]
    with torch.no_grad():
        acts = sae.encode(x)
        recons = sae.decode(acts)
    assert torch.equal(cache[f"{site}.hook_sae_acts"], acts)
    assert torch.equal(cache[f"{site}.hook_sae_recons"], recons)
    assert torch.equal(cache[f"{site}.hook_sae_error"], x - recons)
    assert torch.equal(cache[f"{site}.hook_sae_output"], x)
    assert cache[f"{site}.hook_sae_acts"].shape[-1] == sae.cfg.d_sae


@pytest.mark.parametrize("which", ["zoo", "hf"])
def test_zeroing_the_error_runs_the_model_on_the_reconstruction(which, request):
    model, sae, tokens = request.getfixturevalue(which)
    spliced = splice(model, sae)
    site = sae.cfg.site
    got = ablate(spliced, tokens, f"{site}.hook_sae_error", kind="zero")

    def reconstruct(act, hook):
        return sae.decode(sae.encode(act))

    with torch.no_grad(), model.hooks([(site, reconstruct)]):
        want = model(tokens)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, model(tokens).detach(), atol=1e-4)
    assert _hook_counts(model) == 0


@pytest.mark.parametrize("which", ["zoo", "hf"])
def test_steering_a_feature_adds_its_decoder_direction(which, request):
    model, sae, tokens = request.getfixturevalue(which)
    spliced = splice(model, sae)
    site, f = sae.cfg.site, 5
    one_hot = torch.zeros(sae.cfg.d_sae)
    one_hot[f] = 1.0
    got = steer(spliced, tokens, one_hot, f"{site}.hook_sae_acts", strength=2.0)
    # decoding is affine: adding 2 to feature f adds 2 * W_dec[f] to what the model reads
    direction = sae.W_dec[f]
    want = steer(model, tokens, direction.detach(), site, strength=2.0)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert _hook_counts(model) == 0


def test_patching_tools_run_on_the_spliced_model_unchanged(hf):
    model, sae, _ = hf
    spliced = splice(model, sae)
    clean, corrupted = model.to_tokens(PROMPTS[:1]), model.to_tokens(PROMPTS[1:])
    ids = model.to_tokens(["mat", "cat"], prepend_bos=False)[:, 0]
    metric = logit_diff(ids[:1], ids[1:])
    base = activation_patch(model, clean, corrupted, metric, site="resid_pre")
    got = activation_patch(spliced, clean, corrupted, metric, site="resid_pre")
    torch.testing.assert_close(got.values, base.values, atol=1e-5, rtol=1e-5)
    approx = attribution_patch(spliced, clean, corrupted, metric, site="resid_pre")
    torch.testing.assert_close(
        approx.values, attribution_patch(model, clean, corrupted, metric, site="resid_pre").values,
        atol=1e-5, rtol=1e-5,
    )  # fmt: skip
    assert _hook_counts(model) == 0


def test_gradients_through_the_splice_are_those_of_recons_plus_error(hf):
    """d metric / d features = (d metric / d output) @ W_dec, and d/dx passes through as 1."""
    model, sae, tokens = hf
    spliced = splice(model, sae)
    site = sae.cfg.site
    saved = {}

    def keep(act, hook):
        act.retain_grad()
        saved[hook.name] = act

    hooks = [(site, keep), (f"{site}.hook_sae_acts", keep), (f"{site}.hook_sae_output", keep)]
    with spliced.hooks(hooks):
        spliced(tokens)[:, -1, 3].sum().backward()
    g_out = saved[f"{site}.hook_sae_output"].grad
    g_acts = saved[f"{site}.hook_sae_acts"].grad
    torch.testing.assert_close(g_acts, g_out @ sae.W_dec.T, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(saved[site].grad, g_out, atol=1e-5, rtol=1e-4)
    for p in sae.parameters():
        p.grad = None
    for p in model.hf_model.parameters():
        p.grad = None


def test_a_failing_hook_leaves_nothing_behind(hf):
    model, sae, tokens = hf
    spliced = splice(model, sae)

    def boom(act, hook):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with spliced.hooks([(f"{sae.cfg.site}.hook_sae_acts", boom)]):
            spliced(tokens)
    assert _hook_counts(model) == 0
    with torch.no_grad():
        assert torch.equal(spliced(tokens), model(tokens))


def test_bad_input_names_the_argument(hf):
    model, sae, _ = hf
    wide = SAE(SAEConfig(d_in=32, d_sae=8, site="blocks.0.hook_resid_post"))
    with pytest.raises(ValueError, match=r"d_in=32.*width 16"):
        splice(model, wide)
    with pytest.raises(KeyError, match="blocks.0.hook_resid_post"):
        splice(model, {"blocks.0.hook_resid_pots": sae})
    with pytest.raises(ValueError, match=r"sae\.cfg\.site is None"):
        splice(model, SAE(SAEConfig(d_in=16, d_sae=8)))
    with pytest.raises(TypeError, match="sae must be a mechscope SAE"):
        splice(model, "blocks.0.hook_resid_post")
    assert _hook_counts(model) == 0


def test_transcoders_splice_exactly_and_their_error_is_the_mlps_residual():
    from mechscope.transcoder import load_zoo_transcoder

    model = mechscope.load("facts-ioi-2l")
    tcs = [load_zoo_transcoder(f"facts-ioi-2l-tc{layer}") for layer in range(2)]
    tokens = model.to_tokens("The Colosseum is in")
    spliced = splice(model, tcs)
    with torch.no_grad():
        assert torch.equal(spliced(tokens), model(tokens))
    _, cache = spliced.run_with_cache(tokens)
    for layer, tc in enumerate(tcs):
        site = f"blocks.{layer}.hook_mlp_out"
        x_in = cache[f"blocks.{layer}.ln2.hook_normalized"]
        assert torch.equal(cache[f"{site}.hook_sae_input"], x_in)
        with torch.no_grad():
            recons = tc.decode(tc.encode(x_in))
        torch.testing.assert_close(cache[f"{site}.hook_sae_recons"], recons)
        torch.testing.assert_close(cache[f"{site}.hook_sae_error"], cache[site] - recons)
    # the error zeroed at layer 0: the model runs on the transcoder's output there
    got = ablate(spliced, tokens, "blocks.0.hook_mlp_out.hook_sae_error", kind="zero")
    kept = {}

    def read(act, hook):
        kept["x"] = act

    def replace(act, hook):
        return tcs[0](kept["x"])

    with (
        torch.no_grad(),
        model.hooks([("blocks.0.ln2.hook_normalized", read), ("blocks.0.hook_mlp_out", replace)]),
    ):
        want = model(tokens)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="two SAEs/transcoders replace"):
        splice(model, [tcs[0], tcs[0]])
