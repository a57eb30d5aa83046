"""Exercises of notebook 16 (bigger models): a zoo model in GPT-2's layout, exactness across
backends, the logit lens by hand, and a patched run packed into one nnsight trace.

Everything runs offline: the cases use random tensors and ``facts-ioi-2l`` rebuilt as a
Hugging Face GPT-2 (as the notebook does) inside ``nnsight.TransformersModel``.
Fiotto-Kaufman et al. (2025), "NNsight and NDIF: Democratizing Access to Open-Weight
Foundation Model Internals"; the logit lens after nostalgebraist (2020).
"""

from __future__ import annotations

from functools import cache

import torch

from . import exercise

NB = "16_bigger_models"


@cache
def _zoo():
    import mechscope

    return mechscope.load("facts-ioi-2l")


def _randn(seed: int, *shape, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---- 1. per-head Q, K, V in GPT-2's c_attn layout ------------------------------------------


def _heads_to_columns(w: torch.Tensor) -> torch.Tensor:
    """``[head, d_model, d_head]`` -> ``[d_model, head * d_head]`` (head h owns a block)."""
    return w.permute(1, 0, 2).reshape(w.shape[1], -1)


def _qkv_cases():
    attn = _zoo().blocks[0].attn
    weights = [_randn(i, 4, 16, 8) for i in range(3)]
    biases = [_randn(10 + i, 4, 8) for i in range(3)]
    real = [attn.W_Q, attn.W_K, attn.W_V, attn.b_Q, attn.b_K, attn.b_V]
    return {
        "random W [4, 16, 8] (head, d_model, d_head) and b [4, 8]": (*weights, *biases),
        "facts-ioi-2l layer 0 (4 heads, d_model 128, d_head 32)": tuple(
            t.detach().clone() for t in real
        ),
    }


def _flat_bias(b_q, b_k, b_v):
    return torch.cat([b_q.reshape(-1), b_k.reshape(-1), b_v.reshape(-1)])


@exercise(
    "16.gpt2_c_attn",
    notebook=NB,
    title="Per-head queries, keys and values in GPT-2's c_attn layout",
    difficulty=2,
    minutes=10,
    cases=_qkv_cases,
    mistakes=[
        (
            "reshaped [head, d_model, d_head] straight to [d_model, head * d_head] without moving "
            "the head axis first (reshape keeps the memory order: permute to [d_model, head, "
            "d_head] before flattening)",
            lambda wq, wk, wv, bq, bk, bv: (
                torch.cat([w.reshape(w.shape[1], -1) for w in (wq, wk, wv)], 1),
                _flat_bias(bq, bk, bv),
            ),
        ),
        (
            "keys before queries: GPT-2 splits c_attn into queries, keys, values, in that order",
            lambda wq, wk, wv, bq, bk, bv: (
                torch.cat([_heads_to_columns(w) for w in (wk, wq, wv)], 1),
                _flat_bias(bk, bq, bv),
            ),
        ),
        (
            "heads interleaved inside d_head ([d_model, d_head, head]); head h must own the "
            "columns h * d_head to (h + 1) * d_head - 1",
            lambda wq, wk, wv, bq, bk, bv: (
                torch.cat([w.permute(1, 2, 0).reshape(w.shape[1], -1) for w in (wq, wk, wv)], 1),
                torch.cat([b.T.reshape(-1) for b in (bq, bk, bv)]),
            ),
        ),
    ],
)
def gpt2_c_attn(W_Q, W_K, W_V, b_Q, b_K, b_V):
    """``W_Q, W_K, W_V [head, d_model, d_head]``, ``b_Q, b_K, b_V [head, d_head]`` ->
    ``(weight [d_model, 3 * head * d_head], bias [3 * head * d_head])``: GPT-2's ``c_attn``
    (a Conv1D, ``x @ weight + bias``), queries then keys then values, each ``head``-major."""
    weight = torch.cat([_heads_to_columns(w) for w in (W_Q, W_K, W_V)], dim=1)
    return weight, _flat_bias(b_Q, b_K, b_V)


# ---- 2. where do two backends disagree most? ---------------------------------------------


def _gap_cases():
    names = [
        "hook_embed",
        "blocks.0.hook_resid_pre",
        "blocks.0.attn.hook_pattern",
        "blocks.1.hook_mlp_out",
    ]
    a = {n: _randn(i, 2, 5, 6) for i, n in enumerate(names)}
    b = {n: t.clone() for n, t in a.items()}
    b["blocks.0.hook_resid_pre"] += 2e-6 * _randn(20, 2, 5, 6)  # small everywhere
    b["blocks.0.hook_resid_pre"][1, 2, 3] += 3e-6  # a larger mean, not the largest entry
    b["blocks.1.hook_mlp_out"][0, 4, 1] += 8e-5  # the largest gap: one entry, b above a
    b["hook_embed"][0, 0, 0] -= 5e-5  # a above b: the largest signed a - b
    c = {n: _randn(30 + i, 3, 4) for i, n in enumerate(names[:3])}
    d = {n: t + 1e-3 * (i + 1) * _randn(40 + i, 3, 4) for i, (n, t) in enumerate(c.items())}
    return {
        "4 hooks [2, 5, 6], one entry off by 8e-5": (a, b),
        "3 hooks [3, 4], every entry off": (c, d),
    }


def _gaps(a, b, reduce):
    return {n: reduce(a[n].float() - b[n].float()) for n in a.keys()}


@exercise(
    "16.largest_gap",
    notebook=NB,
    title="Where two backends disagree most",
    difficulty=1,
    minutes=5,
    cases=_gap_cases,
    mistakes=[
        (
            "the signed difference a - b: a gap where b is the larger one is missed (take abs())",
            lambda a, b: max(_gaps(a, b, lambda d: d.max().item()).items(), key=lambda kv: kv[1]),
        ),
        (
            "the mean |difference| of each hook, not the largest entry (one wrong entry hides in "
            "a mean)",
            lambda a, b: max(
                _gaps(a, b, lambda d: d.abs().mean().item()).items(), key=lambda kv: kv[1]
            ),
        ),
        (
            "the hook with the smallest gap, not the largest",
            lambda a, b: min(
                _gaps(a, b, lambda d: d.abs().max().item()).items(), key=lambda kv: kv[1]
            ),
        ),
    ],
    rtol=1e-3,
    atol=1e-9,
)
def largest_gap(cache_a, cache_b) -> tuple[str, float]:
    """Two caches (``{hook name: tensor}``, the same names and shapes) -> ``(name, gap)``: the
    hook whose tensors differ most, and that largest ``|a - b|`` over all its entries."""
    gaps = _gaps(cache_a, cache_b, lambda d: d.abs().max().item())
    name = max(gaps, key=gaps.get)
    return name, gaps[name]


# ---- 3. the logit lens by hand ---------------------------------------------------------------


def _lens_cases():
    return {
        "resid [3, 2, 4, 8], d_vocab 5": (
            _randn(0, 3, 2, 4, 8, scale=3.0) + 1.0,
            1 + 0.5 * _randn(1, 8),
            _randn(2, 8),
            _randn(3, 8, 5),
            _randn(4, 5),
            1e-5,
        ),
        "resid [2, 1, 3, 16], d_vocab 7, eps 1e-2": (
            _randn(5, 2, 1, 3, 16),
            1 + 0.5 * _randn(6, 16),
            _randn(7, 16),
            _randn(8, 16, 7),
            _randn(9, 7),
            1e-2,
        ),
    }


def _layer_norm(x, weight, bias, eps, centre=True):
    x = x - x.mean(-1, keepdim=True) if centre else x
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt() * weight + bias


@exercise(
    "16.lens_logits",
    notebook=NB,
    title="The logit lens by hand: the final LayerNorm and the unembedding",
    difficulty=2,
    minutes=10,
    cases=_lens_cases,
    mistakes=[
        (
            "no centring: LayerNorm subtracts each vector's mean before dividing by its scale "
            "(that would be an RMSNorm)",
            lambda r, w, b, W_U, b_U, eps: _layer_norm(r, w, b, eps, centre=False) @ W_U + b_U,
        ),
        (
            "the residual unembedded without the final LayerNorm",
            lambda r, w, b, W_U, b_U, eps: r @ W_U + b_U,
        ),
        (
            "forgot the unembedding bias b_U",
            lambda r, w, b, W_U, b_U, eps: _layer_norm(r, w, b, eps) @ W_U,
        ),
    ],
)
def lens_logits(resid, weight, bias, W_U, b_U, eps):
    """``resid [..., d_model]`` (residual streams, e.g. ``[layer, batch, pos, d_model]``) ->
    ``[..., d_vocab]``: each vector through the final LayerNorm (its own mean and scale,
    ``weight``, ``bias [d_model]``, ``eps``) and the unembedding ``W_U [d_model, d_vocab]``,
    ``b_U [d_vocab]``."""
    return _layer_norm(resid, weight, bias, eps) @ W_U + b_U


# ---- 4. a patched run in one trace ---------------------------------------------------------


@cache
def _gpt2():
    """``facts-ioi-2l`` as a Hugging Face GPT-2 in ``nnsight.TransformersModel``, and the IOI
    pair's tokens ``[1, pos]`` (clean, corrupted). Built as in the notebook."""
    import nnsight
    import transformers

    from mechscope.toy.facts import canonical_pairs

    zoo = _zoo()
    cfg = zoo.cfg
    config = transformers.GPT2Config(
        n_layer=cfg.n_layers,
        n_head=cfg.n_heads,
        n_embd=cfg.d_model,
        n_inner=cfg.d_mlp,
        n_positions=cfg.n_ctx,
        vocab_size=cfg.d_vocab,
        activation_function="gelu",
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        hf = transformers.GPT2LMHeadModel(config).eval()
    hf.lm_head = torch.nn.Linear(cfg.d_model, cfg.d_vocab, bias=True)
    h = hf.transformer
    pairs = [
        (h.wte.weight, zoo.W_E),
        (h.wpe.weight, zoo.W_pos),
        (h.ln_f.weight, zoo.ln_final.w),
        (h.ln_f.bias, zoo.ln_final.b),
        (hf.lm_head.weight, zoo.W_U.T),
        (hf.lm_head.bias, zoo.b_U),
    ]
    for block, ours in zip(h.h, zoo.blocks, strict=True):
        a, m = ours.attn, ours.mlp
        w, b = gpt2_c_attn(a.W_Q, a.W_K, a.W_V, a.b_Q, a.b_K, a.b_V)
        pairs += [
            (block.ln_1.weight, ours.ln1.w),
            (block.ln_1.bias, ours.ln1.b),
            (block.attn.c_attn.weight, w),
            (block.attn.c_attn.bias, b),
            (block.attn.c_proj.weight, a.W_O.reshape(-1, cfg.d_model)),
            (block.attn.c_proj.bias, a.b_O),
            (block.ln_2.weight, ours.ln2.w),
            (block.ln_2.bias, ours.ln2.b),
            (block.mlp.c_fc.weight, m.W_in),
            (block.mlp.c_fc.bias, m.b_in),
            (block.mlp.c_proj.weight, m.W_out),
            (block.mlp.c_proj.bias, m.b_out),
        ]
    with torch.no_grad():
        for dst, src in pairs:
            dst.copy_(src)
    lm = nnsight.TransformersModel(
        hf, tokenizer=_word_tokenizer(zoo.tokenizer.words), task="text-generation"
    )
    ioi = canonical_pairs()[2]
    return lm, zoo.to_tokens(ioi.clean), zoo.to_tokens(ioi.corrupted)


def _word_tokenizer(words):
    """A Hugging Face tokenizer for the zoo's word vocabulary (id 0 ``<bos>``, prepended)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=words[0]))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.post_processor = processors.TemplateProcessing(
        single=f"{words[0]} $A", special_tokens=[(words[0], 0)]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token=words[0], unk_token=words[0]
    )


def _trace_cases():
    lm, clean, corrupted = _gpt2()
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(1, 159, (2, 8), generator=gen)
    b = a.clone()
    b[:, 3] = torch.randint(1, 159, (2,), generator=gen)
    return {
        "IOI (Mary / John), block 0, pos 14 (the last position)": (lm, clean, corrupted, 0, 14),
        "random tokens [2, 8] differing at pos 3, block 1, pos 5": (lm, a, b, 1, 5),
    }


def _patched(lm, clean, corrupted, layer, pos, *, where="output", noising=False):
    import nnsight

    n = clean.shape[0]
    with lm.trace(torch.cat([clean, corrupted])):
        block = lm.transformer.h[layer]
        resid = block.output if where == "output" else block.input
        if noising:
            resid[:n, pos] = resid[n:, pos]
        elif pos is None:
            resid[n:] = resid[:n]
        else:
            resid[n:, pos] = resid[:n, pos]
        logits = lm.output.logits
        logits = nnsight.save(logits[:n] if noising else logits[n:])
    return logits.detach()


@exercise(
    "16.patch_in_one_trace",
    notebook=NB,
    title="Clean run and patched run in one nnsight trace",
    difficulty=3,
    minutes=15,
    cases=_trace_cases,
    mistakes=[
        (
            "patched every position of the block's output (from there on that is the clean "
            "run), not only `pos`",
            lambda lm, c, k, layer, pos: _patched(lm, c, k, layer, None),
        ),
        (
            "patched the block's input (the residual entering block `layer`), not its output",
            lambda lm, c, k, layer, pos: _patched(lm, c, k, layer, pos, where="input"),
        ),
        (
            "the other direction: corrupted activation into the clean rows (noising), not clean "
            "into corrupted (denoising)",
            lambda lm, c, k, layer, pos: _patched(lm, c, k, layer, pos, noising=True),
        ),
    ],
)
def patch_in_one_trace(lm, clean, corrupted, layer, pos):
    """``lm``: an nnsight GPT-2; ``clean``, ``corrupted`` ``[batch, pos]`` tokens -> logits
    ``[batch, pos, d_vocab]`` of ``corrupted`` with block ``layer``'s output
    (``lm.transformer.h[layer].output``, ``[rows, pos, d_model]``) at position ``pos`` taken
    from ``clean``: both runs as rows of ONE trace (one request to NDIF)."""
    return _patched(lm, clean, corrupted, layer, pos)
