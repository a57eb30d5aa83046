"""mechscope.wrap on tiny random-init models of every supported family: exact to HF."""

import pytest
import torch
from hf_tiny import ALL_KINDS, DECODERS, VOCAB, build_hf, hook_count, make_tokenizer

import mechscope

torch.set_num_threads(1)


def wrapped(kind, impl="eager"):
    hf = build_hf(kind, impl)
    return hf, mechscope.wrap(hf, make_tokenizer(encoder=kind.startswith("bert")))


def hf_out(hf, tokens, **kw):
    out = hf(tokens, **kw)
    return out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", ALL_KINDS)
@torch.no_grad()
def test_logits_equal_hf_with_every_hook_installed(kind, impl, tokens):
    hf, model = wrapped(kind, impl)
    ref = hf_out(hf, tokens)
    logits, cache = model.run_with_cache(tokens)  # every hook point, hooked attention included
    assert set(cache) == set(model.hook_names())
    assert (logits - ref).abs().max() < 1e-5
    assert torch.equal(model(tokens), ref)  # no hooks: HF's own implementation, bit for bit
    assert hf.config._attn_implementation == impl and hook_count(hf) == 0


@pytest.mark.parametrize("kind", ALL_KINDS)
@torch.no_grad()
def test_patterns_equal_hf_output_attentions(kind, tokens):
    hf, model = wrapped(kind)
    _, cache = model.run_with_cache(tokens, names=lambda n: n.endswith("hook_pattern"))
    ref = hf(tokens, output_attentions=True).attentions
    for layer in range(model.cfg.n_layers):
        pat = cache["pattern", layer]
        assert pat.shape == (2, model.cfg.n_heads, tokens.shape[1], tokens.shape[1])
        assert torch.allclose(pat, ref[layer], atol=1e-6)
        assert torch.allclose(pat.sum(-1), torch.ones(()), atol=1e-5)


@pytest.mark.parametrize("kind", ALL_KINDS)
@torch.no_grad()
def test_heads_through_w_o_sum_to_attn_out(kind, tokens):
    _, model = wrapped(kind)
    _, cache = model.run_with_cache(tokens, names=lambda n: n.endswith(("hook_z", "attn_out")))
    stack, labels = cache.stack_head_results()
    H = model.cfg.n_heads
    assert stack.shape == (model.cfg.n_layers * H, 2, tokens.shape[1], model.cfg.d_model)
    assert labels[H + 1] == "L1H1"
    for layer in range(model.cfg.n_layers):
        total = stack[layer * H : (layer + 1) * H].sum(0) + model.attn_output_bias(layer)
        assert torch.allclose(total, cache["attn_out", layer], atol=1e-5)


@pytest.mark.parametrize("kind", DECODERS)
@torch.no_grad()
def test_decomposition_sums_to_residual_and_logits(kind, tokens):
    _, model = wrapped(kind)
    logits, cache = model.run_with_cache(tokens)
    last = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]
    stack, labels = cache.decompose_resid()
    assert torch.allclose(stack.sum(0), last, atol=1e-5)
    assert labels[-1].endswith("mlp_out")
    mid, _ = cache.decompose_resid(layer=1)
    assert torch.allclose(mid.sum(0), cache["resid_pre", 1], atol=1e-5)
    # Direct logit attribution: the normalised components plus the offset give the logits.
    normed, _ = cache.decompose_resid(apply_ln=True)
    attrs = cache.logit_attrs(normed, tokens)
    assert attrs.shape == (len(labels), *tokens.shape)
    expected = logits.gather(-1, tokens[..., None])[..., 0]
    assert torch.allclose(attrs.sum(0) + cache.unembed_offset()[tokens], expected, atol=1e-4)
    # The logit lens of the final residual is the model's own logits.
    acc, acc_labels = cache.accumulated_resid(apply_ln=True)
    assert acc_labels[-1] == "final_post"
    assert torch.allclose(
        cache.logit_attrs(acc[-1:], tokens)[0] + cache.unembed_offset()[tokens], expected, atol=1e-4
    )


@torch.no_grad()
def test_post_norm_bert_refuses_residual_sums(tokens):
    _, model = wrapped("bert_mlm")
    _, cache = model.run_with_cache(tokens)
    with pytest.raises(ValueError, match="post-norm"):
        cache.decompose_resid()
    with pytest.raises(NotImplementedError, match="not linear|no linear"):
        model.unembed_weights()


@pytest.mark.parametrize("kind", ALL_KINDS)
@torch.no_grad()
def test_zeroing_z_equals_a_torch_hook_on_the_out_projection(kind, tokens):
    hf, model = wrapped(kind)
    Dh = model.cfg.d_head

    def zero_head_1(z, hook):
        z = z.clone()
        z[:, :, 1] = 0
        return z

    ours = model.run_with_hooks(tokens, [("blocks.1.attn.hook_z", zero_head_1)])

    def pre(module, args):
        x = args[0].clone()
        x[..., Dh : 2 * Dh] = 0
        return (x,)

    handle = model._sites[1]["out_proj"].register_forward_pre_hook(pre)
    try:
        theirs = hf_out(hf, tokens)
    finally:
        handle.remove()
    assert not torch.allclose(ours, hf_out(hf, tokens), atol=1e-4)  # it did change something
    assert torch.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("kind", ["llama", "mistral", "gpt2"])
@torch.no_grad()
def test_editing_v_per_kv_head_equals_a_torch_hook_on_the_projection(kind, tokens):
    hf, model = wrapped(kind)
    Dh, D = model.cfg.d_head, model.cfg.d_model
    _, cache = model.run_with_cache(tokens, names="blocks.0.attn.hook_v")
    assert cache["v", 0].shape == (2, tokens.shape[1], model.cfg.n_kv_heads, Dh)

    def zero_kv0(v, hook):
        v = v.clone()
        v[:, :, 0] = 0
        return v

    ours = model.run_with_hooks(tokens, [("blocks.0.attn.hook_v", zero_kv0)])
    attn = model._sites[0]["attn"]
    if kind == "gpt2":  # fused c_attn: [q | k | v]
        proj, sl = attn.c_attn, slice(2 * D, 2 * D + Dh)
    else:
        proj, sl = attn.v_proj, slice(0, Dh)

    def post(module, args, out):
        out = out.clone()
        out[..., sl] = 0
        return out

    handle = proj.register_forward_hook(post)
    try:
        theirs = hf_out(hf, tokens)
    finally:
        handle.remove()
    assert torch.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "neox", "bert"])
@torch.no_grad()
def test_written_pattern_flows_into_z(kind, tokens):
    """Make head 2 of layer 0 attend only to position 0: its z is then v at position 0."""
    _, model = wrapped(kind)
    n_rep = model.cfg.n_heads // model.cfg.n_kv_heads

    def to_first(pattern, hook):
        pattern = pattern.clone()
        pattern[:, 2] = 0
        pattern[:, 2, :, 0] = 1
        return pattern

    with model.hooks([("blocks.0.attn.hook_pattern", to_first)]):
        logits, cache = model.run_with_cache(
            tokens, names=["blocks.0.attn.hook_v", "blocks.0.attn.hook_z"]
        )
    v0 = cache["v", 0][:, :1, 2 // n_rep]  # [batch, 1, d_head]
    assert torch.allclose(cache["z", 0][:, :, 2], v0.expand(-1, tokens.shape[1], -1), atol=1e-6)
    assert not torch.allclose(logits, model(tokens), atol=1e-4)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "neox_seq"])
@torch.no_grad()
def test_editing_resid_mid_equals_adding_to_attn_out(kind, tokens):
    hf, model = wrapped(kind)
    delta = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(5))
    ours = model.run_with_hooks(tokens, [("blocks.0.hook_resid_mid", lambda x, hook: x + delta)])
    handle = model._sites[0]["out_proj"].register_forward_hook(lambda m, a, out: out + delta)
    try:
        theirs = hf_out(hf, tokens)
    finally:
        handle.remove()
    assert torch.allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", ["gpt2", "llama", "neox", "bert"])
@torch.no_grad()
def test_left_padding_gives_unpadded_numbers(kind, impl):
    hf, model = wrapped(kind, impl)
    texts = ["the cat sat on a mat", "dog ran"]
    side = "right" if kind == "bert" else "left"
    batch = model.tokenize(texts, padding_side=side)
    padded = model(batch)
    _, cache = model.run_with_cache(batch, names=lambda n: n.endswith("hook_pattern"))
    hooked = model.run_with_hooks(batch, [("blocks.0.attn.hook_q", lambda x, hook: x)])
    real_all = batch["attention_mask"].bool()  # pad positions are garbage in any implementation
    assert torch.allclose(hooked[real_all], padded[real_all], atol=1e-5)  # hooked attention
    for i, text in enumerate(texts):
        alone = model(model.to_tokens(text))[0]
        real = batch["attention_mask"][i].bool()
        assert torch.allclose(padded[i][real], alone, atol=1e-5)
    # The same ids without their mask would attend to the pads: refused, not silently wrong.
    with pytest.raises(ValueError, match="pad token"):
        model(batch["input_ids"])


@torch.no_grad()
def test_sliding_window_is_respected():
    _, model = wrapped("mistral")  # sliding_window=4
    tokens = torch.arange(4, 4 + 12)[None] % VOCAB
    _, cache = model.run_with_cache(tokens, names="blocks.0.attn.hook_pattern")
    pat = cache["pattern", 0][0]
    q, k = torch.meshgrid(torch.arange(12), torch.arange(12), indexing="ij")
    assert pat[:, (q - k) >= 4].abs().max() == 0
    assert pat[:, (q - k) == 3].min() > 0
