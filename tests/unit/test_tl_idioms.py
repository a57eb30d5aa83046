"""TransformerLens-3-style course code runs unchanged on every mechscope model (issue 20).

The ``tl_*`` functions below are written the way TransformerLens' demos and ARENA's exercises
write them (``run_with_hooks`` with ``functools.partial``, ``cache["pattern", l]``,
``model.W_Q[l, h]``, ``utils.get_act_name``); each runs, text unchanged, on the zoo's
induction-2l, a wrapped random-init GPT-2 and a wrapped random-init Llama (grouped-query
attention, rotary positions, RMSNorm), all built locally. The numbers they give are checked
against mechscope's own analyses and against the models' activations.
"""

from __future__ import annotations

import functools

import pytest
import torch

import mechscope
from mechscope import utils
from mechscope.circuits import full_ov_circuit, full_qk_circuit
from mechscope.compat import HookedTransformer, HookedTransformerConfig
from mechscope.heads import best_head

WORDS = [f"w{i}" for i in range(40)]


def _hf(kind: str):
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", *WORDS])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )
    ids = dict(vocab_size=48, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    if kind == "gpt2":
        config = tf.GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=64, **ids)
    else:
        config = tf.LlamaConfig(
            hidden_size=32, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
            intermediate_size=64, max_position_embeddings=64, tie_word_embeddings=False, **ids,
        )  # fmt: skip
    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in hf.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return mechscope.wrap(hf.eval(), tok)


@pytest.fixture(scope="module", params=["zoo", "gpt2", "llama", "tl-gpt2", "tl-llama"])
def model(request):
    """Every provider: our Transformer, wrapped HF models, and TransformerLens 4 bridges
    (``mechscope.wrap(bridge)``) of the same HF models."""
    if request.param == "zoo":
        return mechscope.load("induction-2l")
    if request.param.startswith("tl-"):
        from mechscope.models.tl import bridge

        hf = _hf(request.param[3:])
        return mechscope.wrap(bridge(hf.hf_model, hf.tokenizer))
    return _hf(request.param)


def _ln1(model, layer):
    """The pre-attention norm of ``layer`` as a function (provider-specific, not TL code)."""
    if isinstance(model, mechscope.Transformer):
        return model.blocks[layer].ln1
    if hasattr(model, "bridge"):
        return model.bridge.blocks[layer].ln1
    block = model._sites[layer]["block"]
    return getattr(block, "ln_1", None) or block.input_layernorm


def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _no_hooks_left(model):
    return all(not p._forward_hooks for p in model.hook_dict.values())


# ---- TransformerLens-style snippets (the same text for every model) ----------------------


def generate_repeated_tokens(model, seq_len, batch):
    bos = model.to_tokens("", prepend_bos=True)[:, :1]
    prefix = bos.expand(batch, 1)
    gen = torch.Generator().manual_seed(0)
    # distinct tokens in each row (4..: past the tokenizers' special ids)
    rows = [
        torch.randperm(model.cfg.d_vocab - 4, generator=gen)[:seq_len] + 4 for _ in range(batch)
    ]
    rep_tokens_half = torch.stack(rows)
    return torch.cat([prefix, rep_tokens_half, rep_tokens_half], dim=-1)


def tl_induction_scores_from_cache(model, rep_tokens, seq_len):
    _, rep_cache = model.run_with_cache(rep_tokens)
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        pattern = rep_cache["pattern", layer]
        stripe = pattern.diagonal(dim1=-2, dim2=-1, offset=1 - seq_len)
        scores[layer] = stripe.mean(dim=(0, 2))
    return scores


def tl_induction_scores_from_hooks(model, rep_tokens, seq_len):
    induction_score_store = torch.zeros((model.cfg.n_layers, model.cfg.n_heads))

    def induction_score_hook(pattern, hook):
        induction_stripe = pattern.diagonal(dim1=-2, dim2=-1, offset=1 - seq_len)
        induction_score_store[hook.layer(), :] = induction_stripe.mean(dim=(0, 2))

    model.run_with_hooks(
        rep_tokens,
        return_type=None,
        fwd_hooks=[(lambda name: name.endswith("pattern"), induction_score_hook)],
    )
    return induction_score_store


def head_ablation_hook(z, hook, head_index_to_ablate):
    z[:, :, head_index_to_ablate, :] = 0.0
    return z


def tl_ablated_loss(model, tokens, layer, head):
    hook_fn = functools.partial(head_ablation_hook, head_index_to_ablate=head)
    return model.run_with_hooks(
        tokens, return_type="loss", fwd_hooks=[(utils.get_act_name("z", layer), hook_fn)]
    )


def patch_residual_component(corrupted_residual_component, hook, pos, clean_cache):
    corrupted_residual_component[:, pos, :] = clean_cache[hook.name][:, pos, :]
    return corrupted_residual_component


def tl_patch_resid(model, clean_tokens, corrupted_tokens, layer, pos, answer, wrong):
    _, clean_cache = model.run_with_cache(clean_tokens)
    hook_fn = functools.partial(patch_residual_component, pos=pos, clean_cache=clean_cache)
    patched_logits = model.run_with_hooks(
        corrupted_tokens, fwd_hooks=[(utils.get_act_name("resid_pre", layer), hook_fn)]
    )
    return (patched_logits[:, -1, answer] - patched_logits[:, -1, wrong]).mean()


def tl_full_qk_circuit(model, layer, head):
    W_E, W_Q, W_K = model.W_E, model.W_Q, model.W_K
    return W_E @ W_Q[layer, head] @ W_K[layer, head].T @ W_E.T


def tl_full_ov_circuit(model, layer, head):
    return model.W_E @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U


def tl_recompute_q_v(model, cache, normalized, layer):
    q = torch.einsum("bpd,hde->bphe", normalized, model.W_Q[layer]) + model.b_Q[layer]
    v = torch.einsum("bpd,hde->bphe", normalized, model.W_V[layer]) + model.b_V[layer]
    attn_out = torch.einsum("bphe,hed->bpd", cache["z", layer], model.W_O[layer])
    return q, v, attn_out + model.b_O[layer]


# ---- the checks ---------------------------------------------------------------------


def test_induction_scores_cache_and_hooks_agree(model):
    seq_len = 20
    rep_tokens = generate_repeated_tokens(model, seq_len, batch=8)
    before = _params(model)
    from_cache = tl_induction_scores_from_cache(model, rep_tokens, seq_len)
    from_hooks = tl_induction_scores_from_hooks(model, rep_tokens, seq_len)
    assert torch.allclose(from_cache, from_hooks, atol=1e-6)
    assert _no_hooks_left(model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_induction_head_found_by_tl_code_is_mechscope_s():
    model = mechscope.load("induction-2l")
    seq_len = 20
    scores = tl_induction_scores_from_hooks(
        model, generate_repeated_tokens(model, seq_len, batch=16), seq_len
    )
    ours = mechscope.head_scores(model, period=seq_len).induction
    flat = int(scores.argmax())
    assert divmod(flat, model.cfg.n_heads) == best_head(ours)[:2] == (1, 2)
    assert scores.max() > 0.9


def test_head_ablation_hook_equals_mechscope_ablate(model):
    tokens = generate_repeated_tokens(model, 6, batch=2)
    loss = tl_ablated_loss(model, tokens, layer=1, head=2)
    logits = mechscope.ablate(model, tokens, "blocks.1.attn.hook_z", head=2)
    assert torch.allclose(loss, utils.lm_cross_entropy_loss(logits, tokens), atol=1e-5)
    assert not torch.allclose(loss, model.run_with_hooks(tokens, return_type="loss"), atol=1e-4)
    assert _no_hooks_left(model)


def test_patching_hook_equals_activation_patch(model):
    clean = generate_repeated_tokens(model, 5, batch=1)
    corrupted = clean.clone()
    corrupted[:, 3] = clean[:, 4]
    answer, wrong = int(clean[0, 5]), int(clean[0, 4])
    ours = mechscope.activation_patch(
        model, clean, corrupted, mechscope.metrics.logit_diff(answer, wrong), "resid_pre"
    )
    for layer, pos in [(0, 3), (1, 3), (1, 8)]:
        with torch.no_grad():
            tl = tl_patch_resid(model, clean, corrupted, layer, pos, answer, wrong)
        assert abs(float(tl) - float(ours.values[layer, pos])) < 1e-4


def test_qk_ov_circuits_equal_mechscope_circuits(model):
    for layer, head in [(0, 1), (1, 3)]:
        qk = tl_full_qk_circuit(model, layer, head)
        assert qk.shape == (model.cfg.d_vocab, model.cfg.d_vocab)
        assert torch.allclose(qk, full_qk_circuit(model, layer).full()[head], atol=1e-5)
        ov = tl_full_ov_circuit(model, layer, head)
        assert torch.allclose(ov, full_ov_circuit(model, layer).full()[head], atol=1e-5)


def test_per_head_weights_recompute_the_activations(model):
    cfg = model.cfg
    L, H, D, Dh = cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head
    assert model.W_Q.shape == model.W_K.shape == model.W_V.shape == (L, H, D, Dh)
    assert model.W_O.shape == (L, H, Dh, D) and model.b_O.shape == (L, D)
    assert model.b_Q.shape == (L, H, Dh) and model.W_U.shape == (D, cfg.d_vocab)
    assert model.W_E.shape == (cfg.d_vocab, D)
    assert model.blocks[1].attn.W_K.shape == (H, D, Dh)
    tokens = generate_repeated_tokens(model, 5, batch=2)
    _, cache = model.run_with_cache(tokens)
    rotary = cfg.positional_embedding_type == "rotary"
    group = H // (cfg.n_key_value_heads or H)
    for layer in range(L):
        normalized = _ln1(model, layer)(cache["resid_pre", layer])
        q, v, attn_out = tl_recompute_q_v(model, cache, normalized, layer)
        q_hook = cache["q", layer]
        # Rotary models' hook_q is after the rotation (identity at position 0 only).
        assert (q - q_hook)[:, : 1 if rotary else None].abs().max() < 1e-5
        assert (v[:, :, ::group] - cache["v", layer]).abs().max() < 1e-5
        assert (attn_out - cache["attn_out", layer]).abs().max() < 1e-5


def test_weights_are_copies(model):
    tokens = generate_repeated_tokens(model, 4, batch=1)
    before = model(tokens)
    with torch.no_grad():
        for w in (model.W_Q, model.W_O, model.b_O):
            w.zero_()
        if model.cfg.d_mlp:
            model.W_in.zero_(), model.W_out.zero_()
        # On mechscope's Transformer W_E / W_U / blocks[l].attn.W_V are the parameters (as in
        # TransformerLens); on a wrapped HF model they are copies too.
        if not isinstance(model, mechscope.Transformer):
            model.W_E.zero_(), model.W_U.zero_(), model.blocks[0].attn.W_V.zero_()
    assert torch.equal(model(tokens), before)


def test_dla_from_stack_head_results_sums_to_the_logits(model):
    tokens = generate_repeated_tokens(model, 5, batch=2)
    logits, cache = model.run_with_cache(tokens)
    answer = tokens[:, -1]
    per_head, labels = cache.stack_head_results(layer=-1, pos_slice=-1, return_labels=True)
    per_head = cache.apply_ln_to_stack(per_head, layer=-1, pos_slice=-1)
    assert labels[:2] == ["L0H0", "L0H1"] and per_head.shape[0] == model.cfg.n_layers * 4
    resid, _ = cache.decompose_resid(layer=-1, pos_slice=-1, apply_ln=True, return_labels=True)
    total = cache.logit_attrs(resid, tokens=answer).sum(0) + cache.unembed_offset()[answer]
    assert torch.allclose(total, logits[torch.arange(2), -1, answer], atol=1e-4)
    acc, acc_labels = cache.accumulated_resid(layer=-1, incl_mid=False, return_labels=True)
    assert acc_labels[-1] == "final_post" and acc.shape[0] == model.cfg.n_layers + 1
    with pytest.raises(ValueError, match="always returns"):
        cache.stack_head_results(layer=-1, return_labels=False)


def test_cache_keys_as_transformer_lens(model):
    tokens = generate_repeated_tokens(model, 3, batch=1)
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: "hook_norm" not in n)
    assert cache["pattern", 0] is cache["blocks.0.attn.hook_pattern"]
    assert cache["q", 1, "attn"] is cache["blocks.1.attn.hook_q"]
    assert cache["resid_pre", -1] is cache["blocks.1.hook_resid_pre"]
    assert cache["embed"] is cache["hook_embed"] and cache["k1"] is cache["blocks.1.attn.hook_k"]
    with pytest.raises(KeyError, match="cache shorthand"):
        cache["patern", 0]
    with pytest.raises(TypeError, match="names= and names_filter="):
        model.run_with_cache(tokens, names=["hook_embed"], names_filter=["hook_embed"])


def test_get_act_name_matches_transformer_lens():
    from transformer_lens.utilities import get_act_name as tl_get_act_name

    cases = [
        ("pattern", 0), ("resid_pre", 1), ("mlp_out", 2), ("q", 3), ("k", 0, "attn"), ("z", 1),
        ("v", 0), ("attn_scores", 1), ("scale",), ("normalized",), ("normalized", 1, "ln2"),
        ("embed",), ("pos_embed",), ("post", 0), ("pre", 1), ("attn", 0), ("k6",),
        ("scale4ln1",), ("pre5",), ("blocks.0.hook_resid_post",), ("resid_post", 11),
        ("result", 2), ("attn_out", 0), ("resid_mid", 3), ("scale", 2, "ln1"),
    ]  # fmt: skip
    for case in cases:
        assert utils.get_act_name(*case) == tl_get_act_name(*case), case


def test_run_with_hooks_leaves_no_hooks_also_when_a_hook_raises(model):
    tokens = generate_repeated_tokens(model, 3, batch=1)

    def boom(act, hook):
        raise RuntimeError(f"boom in {hook.name}")

    with pytest.raises(RuntimeError, match="boom in blocks.1.attn.hook_z"):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_pre", lambda a, h: None),
                                                ("blocks.1.attn.hook_z", boom)])  # fmt: skip
    assert _no_hooks_left(model)
    with pytest.raises(KeyError, match="blocks.0.attn.hook_pattern"):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_patern", boom)])
    assert _no_hooks_left(model)
    with pytest.raises(TypeError, match="pos_slice"):
        model.run_with_cache(tokens, pos_slice=-1)


def test_persistent_and_backward_hooks(model):
    tokens = generate_repeated_tokens(model, 4, batch=1)
    name = utils.get_act_name("resid_pre", 1)
    # reset_hooks_end=False keeps the hooks until reset_hooks(), as in TransformerLens
    zero = model.run_with_hooks(
        tokens, fwd_hooks=[(name, lambda a, h: a * 0)], reset_hooks_end=False
    )
    assert torch.equal(model(tokens), zero) and not _no_hooks_left(model)
    model.reset_hooks()
    assert _no_hooks_left(model) and not torch.equal(model(tokens), zero)
    # bwd_hooks see the gradient of the loss with respect to the activation
    store = {}
    loss = model.run_with_hooks(
        tokens,
        return_type="loss",
        fwd_hooks=[(name, lambda a, h: store.update(act=a))],
        bwd_hooks=[(name, lambda g, h: store.update(grad=g.clone()))],
    )
    (expected,) = torch.autograd.grad(loss, store["act"], retain_graph=True)
    loss.backward()
    assert torch.allclose(store["grad"], expected) and expected.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    assert _no_hooks_left(model)
    model.add_hook(name, lambda a, h: a * 0)
    assert torch.equal(model(tokens), zero)
    model.reset_hooks()
    assert _no_hooks_left(model)


def test_cfg_tokens_and_from_pretrained(model):
    cfg = model.cfg
    for field in ("n_layers", "n_heads", "d_model", "d_head", "d_vocab", "n_ctx", "act_fn"):
        assert getattr(cfg, field)
    assert cfg.device == "cpu" and cfg.d_vocab_out == cfg.d_vocab
    llama = cfg.positional_embedding_type == "rotary"
    assert cfg.normalization_type == ("RMS" if llama else "LN")
    assert cfg.n_key_value_heads == (2 if llama else None)
    word = "w7" if not isinstance(model, mechscope.Transformer) else model.to_str_tokens([5])[0]
    assert model.to_single_token(word) == model.to_tokens(word, prepend_bos=False)[0, 0]
    with pytest.raises(ValueError, match=r"to_single_token\('.*'\): it is 2 tokens"):
        model.to_single_token(f"{word} {word}")
    assert model.to_string(model.to_tokens(f"{word} {word}", prepend_bos=False)[0]).split() == [
        word, word
    ]  # fmt: skip
    assert set(model.hook_dict) == set(model.hook_names())
    assert isinstance(model, HookedTransformer)


def test_hooked_transformer_shim(monkeypatch):
    model = HookedTransformer.from_pretrained("induction-2l", fold_ln=True)
    assert isinstance(model, mechscope.Transformer) and model.cfg.n_layers == 2

    def offline(name, **kwargs):  # what load() raises without network, without trying the hub
        raise mechscope._load.ModelUnavailableError(f"{name!r} needs the Hugging Face hub.")

    monkeypatch.setattr(mechscope.compat, "load", offline)
    with pytest.raises(
        mechscope._load.ModelUnavailableError,
        match="hf_model=.*induction-2l|induction-2l.*hf_model=",
    ):
        HookedTransformer.from_pretrained("gpt2-small")
    cfg = HookedTransformerConfig(
        n_layers=1, d_model=16, n_ctx=8, d_head=4, d_vocab=10, attn_only=True, seed=3
    )
    tiny = HookedTransformer(cfg)
    assert (
        tiny.cfg.n_heads == 4
        and tiny.cfg.attn_only
        and tiny(torch.tensor([[1, 2]])).shape == (1, 2, 10)
    )
    with pytest.raises(ValueError, match="positional_embedding_type='rotary'"):
        HookedTransformerConfig(
            n_layers=1, d_model=16, n_ctx=8, d_head=4, d_vocab=10,
            positional_embedding_type="rotary",
        )  # fmt: skip
