import math

import pytest
import torch

from mechscope.models import Transformer, TransformerConfig

HOOKS_PER_BLOCK_MLP = {
    "hook_resid_pre",
    "hook_resid_mid",
    "hook_resid_post",
    "hook_attn_out",
    "hook_mlp_out",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_attn_scores",
    "attn.hook_pattern",
    "attn.hook_z",
    "mlp.hook_pre",
    "mlp.hook_post",
    "ln1.hook_normalized",
    "ln2.hook_normalized",
}


def test_hook_names_follow_design(tiny):
    names = set(tiny.hook_names())
    for layer in range(2):
        assert {f"blocks.{layer}.{n}" for n in HOOKS_PER_BLOCK_MLP} <= names
    assert {"hook_embed", "hook_pos_embed", "ln_final.hook_normalized"} <= names


def test_attention_only_has_no_mlp_hooks(attn_only):
    names = attn_only.hook_names()
    assert not [n for n in names if "mlp" in n or "resid_mid" in n or "ln" in n]
    assert "blocks.0.attn.hook_pattern" in names


def test_shapes_of_cached_activations(tiny, tokens):
    logits, cache = tiny.run_with_cache(tokens)
    b, p = tokens.shape
    assert logits.shape == (b, p, 11)
    assert cache["blocks.0.attn.hook_q"].shape == (b, p, 2, 8)
    assert cache["blocks.1.attn.hook_z"].shape == (b, p, 2, 8)
    assert cache["blocks.1.attn.hook_pattern"].shape == (b, 2, p, p)
    assert cache["blocks.0.mlp.hook_post"].shape == (b, p, 32)
    assert cache["blocks.1.hook_resid_post"].shape == (b, p, 16)


def test_pattern_is_causal_and_normalised(tiny, tokens):
    _, cache = tiny.run_with_cache(tokens, names="blocks.0.attn.hook_pattern")
    pat = cache["blocks.0.attn.hook_pattern"]
    assert torch.allclose(pat.sum(-1), torch.ones(pat.shape[:-1]), atol=1e-6)
    upper = torch.triu(torch.ones(pat.shape[-2:], dtype=torch.bool), diagonal=1)
    assert pat[..., upper].abs().max() == 0


def test_residual_stream_adds_up(tiny, tokens):
    """resid_post = resid_pre + attn_out + mlp_out, and resid_pre(0) = embed + pos_embed."""
    _, c = tiny.run_with_cache(tokens)
    assert torch.allclose(c["blocks.0.hook_resid_pre"], c["hook_embed"] + c["hook_pos_embed"])
    for layer in range(2):
        total = (
            c[f"blocks.{layer}.hook_resid_pre"]
            + c[f"blocks.{layer}.hook_attn_out"]
            + c[f"blocks.{layer}.hook_mlp_out"]
        )
        assert torch.allclose(total, c[f"blocks.{layer}.hook_resid_post"], atol=1e-6)


def test_z_matches_manual_attention(tiny, tokens):
    """hook_z is the pattern-weighted sum of values, per head."""
    _, c = tiny.run_with_cache(tokens)
    v, pat, z = (
        c["blocks.1.attn.hook_v"],
        c["blocks.1.attn.hook_pattern"],
        c["blocks.1.attn.hook_z"],
    )
    manual = torch.einsum("bhqk,bkhd->bqhd", pat, v)
    assert torch.allclose(manual, z, atol=1e-6)
    q, k = c["blocks.1.attn.hook_q"], c["blocks.1.attn.hook_k"]
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(8)
    assert torch.allclose(
        scores.tril(), c["blocks.1.attn.hook_attn_scores"].nan_to_num(neginf=0).tril(), atol=1e-5
    )


def test_batch_rows_are_independent(tiny, tokens):
    both = tiny(tokens)
    one = tiny(tokens[1:])
    assert torch.allclose(both[1:], one, atol=1e-5)


def test_same_seed_same_weights(tiny_cfg):
    a, b = Transformer(tiny_cfg), Transformer(tiny_cfg)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_context_limit_names_the_limit(tiny):
    with pytest.raises(ValueError, match=r"longer than this model's context of 12 tokens"):
        tiny(torch.zeros(1, 13, dtype=torch.long))


def test_bad_token_ids_and_dtypes(tiny):
    with pytest.raises(ValueError, match=r"\[0, 11\)"):
        tiny(torch.tensor([[0, 11]]))
    with pytest.raises(TypeError, match="integer ids"):
        tiny(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="batch, pos"):
        tiny(torch.zeros(1, 1, 3, dtype=torch.long))


def test_text_round_trip(tiny):
    toks = tiny.to_tokens("a b c")
    assert toks.tolist() == [[0, 1, 2, 3]]
    assert tiny.to_str_tokens(toks) == ["<bos>", "a", "b", "c"]
    assert torch.equal(tiny("a b c"), tiny(toks))
    with pytest.raises(KeyError, match="Unknown word 'zz'"):
        tiny.to_tokens("a zz")


def test_config_rejects_unknown_options():
    with pytest.raises(ValueError, match="act_fn"):
        TransformerConfig(
            n_layers=1, d_model=8, n_heads=2, d_head=4, d_vocab=5, n_ctx=6, act_fn="swish"
        )
    with pytest.raises(ValueError, match="Unknown TransformerConfig fields"):
        TransformerConfig.from_dict({"n_layers": 1, "bogus": 2})
