"""Tiny random-init Hugging Face models of every supported family, built locally.

No downloads: configs are constructed in code and the tokenizer is a WordLevel
tokenizer from the ``tokenizers`` library. Weights are re-drawn with a seeded
std-0.3 normal (LayerNorm gains and biases included) so that activations are far
from HF's near-zero init and every parity check has something to compare.
"""

import torch

WORDS = "the cat sat on a mat dog ran to red blue big small and when then".split()
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
VOCAB = 32  # the models' vocabulary; the tokenizer uses the first 20 ids
N_CTX = 16


def make_tokenizer(encoder: bool = False):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate([*SPECIALS, *WORDS])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if encoder:  # BERT-style: <bos> text <eos> (as [CLS] text [SEP])
        tk.post_processor = processors.TemplateProcessing(
            single="<bos> $A <eos>", special_tokens=[("<bos>", 1), ("<eos>", 2)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
    )


def _config(kind: str):
    import transformers as tf

    common = dict(vocab_size=VOCAB, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    dec = dict(
        hidden_size=16,
        num_attention_heads=4,
        num_hidden_layers=2,
        intermediate_size=32,
        max_position_embeddings=N_CTX,
        **common,
    )
    if kind == "gpt2":
        return tf.GPT2Config(n_layer=2, n_head=4, n_embd=16, n_positions=N_CTX, **common)
    if kind == "neox":
        return tf.GPTNeoXConfig(**dec)  # parallel residual, partial rotary (Pythia)
    if kind == "neox_seq":
        return tf.GPTNeoXConfig(use_parallel_residual=False, **dec)
    if kind == "llama":
        return tf.LlamaConfig(num_key_value_heads=2, tie_word_embeddings=False, **dec)
    if kind == "qwen2":
        return tf.Qwen2Config(num_key_value_heads=2, **dec)
    if kind == "mistral":
        return tf.MistralConfig(num_key_value_heads=1, sliding_window=4, **dec)
    if kind in ("bert", "bert_mlm"):
        return tf.BertConfig(**dec)
    raise ValueError(kind)


DECODERS = ["gpt2", "neox", "neox_seq", "llama", "qwen2", "mistral"]
ALL_KINDS = [*DECODERS, "bert", "bert_mlm"]


def build_hf(kind: str, impl: str = "eager", seed: int = 0):
    """A tiny HF model of family ``kind`` with attention implementation ``impl``, in eval mode."""
    import transformers as tf

    config = _config(kind)
    if kind == "bert":
        model = tf.BertModel._from_config(config, attn_implementation=impl)
    elif kind == "bert_mlm":
        model = tf.BertForMaskedLM._from_config(config, attn_implementation=impl)
    else:
        model = tf.AutoModelForCausalLM.from_config(config, attn_implementation=impl)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model.eval()


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
