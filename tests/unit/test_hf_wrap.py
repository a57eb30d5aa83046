"""mechscope.wrap / mechscope.load on a tiny local GPT-2: interface and bad inputs."""

import pytest
import torch

import mechscope
from mechscope._load import ModelUnavailableError

torch.set_num_threads(1)

WORDS = "<pad> <bos> <eos> <unk> the cat sat on a mat dog ran".split()


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
    )


def tiny_gpt2():
    import transformers as tf

    cfg = tf.GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=8,
        n_positions=10,
        vocab_size=len(WORDS),
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    return tf.GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def gpt2():
    return mechscope.wrap(tiny_gpt2(), tiny_tokenizer())


def test_interface_matches_transformer(gpt2):
    c = gpt2.cfg
    assert (c.n_layers, c.n_heads, c.n_kv_heads, c.d_model, c.d_head, c.d_vocab, c.n_ctx) == (
        2,
        2,
        2,
        8,
        4,
        len(WORDS),
        10,
    )
    assert c.family == "GPT-2" and c.output == "logits" and c.positional == "learned"
    names = gpt2.hook_names()
    assert names[:3] == ["hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre"]
    assert names[-2:] == ["ln_final.hook_scale", "ln_final.hook_normalized"]
    assert gpt2.blocks[0].attn.hook_pattern.name == "blocks.0.attn.hook_pattern"
    assert gpt2.to_str_tokens("the cat sat") == ["the", "cat", "sat"]
    assert gpt2.to_tokens("the cat", prepend_bos=True).tolist() == [[1, 4, 5]]
    assert gpt2("the cat sat").shape == (1, 3, len(WORDS))
    assert "GPT2LMHeadModel" in repr(gpt2) and gpt2.training is False


def test_cache_options(gpt2):
    tokens = gpt2.to_tokens("the cat sat on a mat")
    logits, cache = gpt2.run_with_cache(
        tokens,
        names=["blocks.1.attn.hook_z", "hook_pos_embed"],
        remove_batch_dim=True,
        dtype=torch.float16,
        device="cpu",
    )
    assert list(cache) == ["blocks.1.attn.hook_z", "hook_pos_embed"]
    assert cache["z", 1].shape == (6, 2, 4) and cache["z", 1].dtype == torch.float16
    assert cache.has_batch_dim is False
    two = torch.cat([tokens, tokens])
    with pytest.raises(ValueError, match="batch size 1"):
        gpt2.run_with_cache(two, names="hook_embed", remove_batch_dim=True)
    _, c2 = gpt2.run_with_cache(two, names="hook_pos_embed")
    assert c2["hook_pos_embed"].shape == (2, 6, 8)  # broadcast positions expanded to the batch
    with pytest.raises(KeyError, match="was not cached"):
        c2["blocks.0.attn.hook_q"]


def test_unknown_and_bad_hooks(gpt2):
    with pytest.raises(KeyError, match="Closest valid names: blocks.0.attn.hook_pattern"):
        gpt2.run_with_hooks("the cat", [("blocks.0.attn.hook_patern", lambda x, h: x)])
    with pytest.raises(ValueError, match="expected a tensor of shape"):
        gpt2.run_with_hooks("the cat", [("blocks.0.hook_resid_post", lambda x, h: x[0])])


def test_bad_tokens(gpt2):
    with pytest.raises(TypeError, match="integer ids"):
        gpt2(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="longer than this model's context"):
        gpt2(torch.ones(1, 11, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 12\)"):
        gpt2(torch.tensor([[4, 99]]))
    with pytest.raises(ValueError, match="different lengths.*tokenize"):
        gpt2.to_tokens(["the cat", "the cat sat"])
    with pytest.raises(ValueError, match="must match"):
        gpt2(torch.tensor([[4, 5, 6]]), attention_mask=torch.ones(1, 2))
    with pytest.raises(ValueError, match="no real tokens"):
        gpt2(torch.tensor([[4, 5]]), attention_mask=torch.zeros(1, 2))
    with pytest.raises(ValueError, match="pad token"):
        gpt2(torch.tensor([[0, 0, 4, 5]]))  # left padding without a mask


def test_tokens_as_list_and_dict(gpt2):
    ref = gpt2(torch.tensor([[4, 5, 6]]))
    assert torch.equal(gpt2([4, 5, 6]), ref)
    batch = gpt2.tokenize(["the cat sat", "dog"], padding_side="left")
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    out = gpt2(batch)
    assert torch.allclose(out[0], ref[0], atol=1e-5)
    assert torch.allclose(out[1, -1], gpt2("dog")[0, -1], atol=1e-5)


def test_unsupported_architecture_names_class_and_families():
    import transformers as tf

    opt = tf.OPTForCausalLM(
        tf.OPTConfig(
            hidden_size=8,
            num_attention_heads=2,
            num_hidden_layers=1,
            ffn_dim=16,
            vocab_size=12,
            max_position_embeddings=8,
            word_embed_proj_dim=8,
        )
    )
    with pytest.raises(ValueError, match=r"OPTForCausalLM.*GPT-2.*GPT-NeoX.*Llama.*BERT"):
        mechscope.wrap(opt)
    with pytest.raises(TypeError, match="PreTrainedModel"):
        mechscope.wrap(torch.nn.Linear(2, 2))


def test_wrap_leaves_the_model_alone():
    hf = tiny_gpt2()
    before = {k: v.clone() for k, v in hf.state_dict().items()}
    model = mechscope.wrap(hf, tiny_tokenizer())
    model.run_with_cache("the cat sat")
    assert mechscope.wrap(model) is model
    assert all(torch.equal(hf.state_dict()[k], v) for k, v in before.items())
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in hf.modules()) == 0


def test_load_local_directory_and_offline_hub(tmp_path, monkeypatch):
    hf = tiny_gpt2()
    hf.save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    model = mechscope.load(str(tmp_path))
    assert isinstance(model, mechscope.HFModel) and model.hf_model.training is False
    assert torch.allclose(model("the cat"), hf(torch.tensor([[4, 5]])).logits, atol=1e-6)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ModelUnavailableError, match=r"offline.*local copy.*mechscope.load\('/path/to/gpt2'\)"
    ):
        mechscope.load("gpt2")
    with pytest.raises(OSError):  # also an OSError, like transformers' own
        mechscope.load("EleutherAI/pythia-70m")
    with pytest.raises(ValueError, match="no directory at that path"):
        mechscope.load("./no/such/dir")
    assert mechscope.load("induction-2l").cfg.n_layers == 2  # zoo names come first


def test_to_str_tokens_accepts_one_id(gpt2):
    one = gpt2.to_str_tokens(torch.tensor(4))
    assert len(one) == 1 and one == gpt2.to_str_tokens(torch.tensor([4]))


def test_head_scores_work_on_wrapped_models(gpt2):
    """Head detectors need only hook points, so they run on HF models too."""
    scores = mechscope.head_scores(gpt2, period=4, n_samples=4)
    n_layers, n_heads = gpt2.cfg.n_layers, gpt2.cfg.n_heads
    for table in scores.values:
        assert table.shape == (n_layers, n_heads)
        assert ((table >= 0) & (table <= 1)).all()
