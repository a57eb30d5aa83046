"""Exercises of notebook 13 (bring your own model): hooks and cache analysis on a wrapped HF model.

Everything runs offline: the cases use a 2-layer GPT-2 with random weights and a 14-word
tokenizer built here (as in the notebook) and the zoo's ``induction-2l``. Direct logit
attribution after Elhage et al. (2021), "A Mathematical Framework for Transformer Circuits".
"""

from __future__ import annotations

from functools import cache

import torch

from . import exercise

NB = "13_bring_your_own_model"
WORDS = "<|endoftext|> the cat sat on mat and dog ran to a red big small".split()


@cache
def _tiny():
    """A wrapped random-init GPT-2 (2 layers, 4 heads, d_model 32; the final LayerNorm's weight
    and bias drawn at random, as a trained model's would be), and 3 sentences' tokens."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    import mechscope

    word_level = Tokenizer(
        models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token=WORDS[0])
    )
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=word_level, bos_token=WORDS[0], eos_token=WORDS[0], unk_token=WORDS[0]
    )
    config = transformers.GPT2Config(
        n_layer=2,
        n_head=4,
        n_embd=32,
        n_positions=32,
        vocab_size=len(WORDS),
        bos_token_id=0,
        eos_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        hf_model = transformers.GPT2LMHeadModel(config).eval()
        with torch.no_grad():
            hf_model.transformer.ln_f.weight.uniform_(0.5, 1.5)
            hf_model.transformer.ln_f.bias.normal_(0.0, 0.1)
    model = mechscope.wrap(hf_model, tokenizer)
    tokens = model.to_tokens(
        ["the cat sat on the red mat", "a red dog ran to the cat", "the big small dog sat on a"],
        prepend_bos=True,
    )
    return model, tokens


@cache
def _tiny_run():
    """``(logits, cache)`` of the tiny model on its tokens (every hook point)."""
    model, tokens = _tiny()
    with torch.no_grad():
        return model.run_with_cache(tokens)


@cache
def _induction():
    import mechscope
    from mechscope.toy.induction import repeated_random_tokens

    model = mechscope.load("induction-2l")
    return model, repeated_random_tokens(3, 6, model.cfg.d_vocab, seed=0)


def _randn(seed: int, *shape, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---- per-position KL ----------------------------------------------------------------------


def _kl_cases():
    import mechscope

    model, tokens = _tiny()
    logits, _ = _tiny_run()
    ablated = mechscope.ablate(model, tokens, "blocks.1.hook_mlp_out")
    return {
        "random logits [2, 5, 11] vs random reference [2, 5, 11]": (
            _randn(0, 2, 5, 11, scale=2.0),
            _randn(1, 2, 5, 11, scale=2.0),
        ),
        "peaked random logits [3, 4, 50]": (
            _randn(2, 3, 4, 50, scale=6.0),
            _randn(3, 3, 4, 50, scale=6.0),
        ),
        "tiny GPT-2 with layer 1's MLP zero-ablated vs the clean run": (ablated, logits),
    }


@exercise(
    "13.per_position_kl",
    notebook=NB,
    title="Per-position KL between two runs",
    difficulty=1,
    minutes=5,
    cases=_kl_cases,
    mistakes=[
        (
            "KL in the other direction: KL(logits || reference)",
            lambda logits, reference: (
                logits.log_softmax(-1).exp() * (logits.log_softmax(-1) - reference.log_softmax(-1))
            ).sum(-1),
        ),
        (
            "used the raw logits as log-probabilities (no log_softmax)",
            lambda logits, reference: (reference.softmax(-1) * (reference - logits)).sum(-1),
        ),
        (
            "softmax over positions (dim 1), not over the vocabulary",
            lambda logits, reference: (
                reference.softmax(1) * (reference.log_softmax(1) - logits.log_softmax(1))
            ).sum(-1),
        ),
    ],
)
def per_position_kl(logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``logits``, ``reference [batch, pos, d_vocab]`` -> ``[batch, pos]``: KL(P_reference ||
    P_logits) of the next-token distributions at each position, in nats."""
    log_p = reference.log_softmax(-1)
    log_q = logits.log_softmax(-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


# ---- record the residual stream with a hook ------------------------------------------------


def _recorded(model, tokens, name: str) -> torch.Tensor:
    store = {}

    def keep(act, hook):
        store["act"] = act.detach().clone()

    with torch.no_grad(), model.hooks([(name, keep)]):
        model(tokens)
    return store["act"]


def _record_cases():
    model, tokens = _tiny()
    induction, rep = _induction()
    return {
        "tiny GPT-2 (wrapped from Hugging Face), layer 0": (model, tokens, 0),
        "tiny GPT-2, layer 1 (the last)": (model, tokens, 1),
        "induction-2l (mechscope's own Transformer), layer 0": (induction, rep, 0),
    }


@exercise(
    "13.record_resid",
    notebook=NB,
    title="Record the residual stream with a hook",
    difficulty=2,
    minutes=10,
    cases=_record_cases,
    mistakes=[
        (
            "recorded blocks.{layer}.hook_resid_pre: the block's input, not its output",
            lambda model, tokens, layer: _recorded(model, tokens, f"blocks.{layer}.hook_resid_pre"),
        ),
        (
            "recorded blocks.{layer}.hook_resid_mid: after attention, before the MLP",
            lambda model, tokens, layer: _recorded(model, tokens, f"blocks.{layer}.hook_resid_mid"),
        ),
        (
            "recorded the block's MLP output, not the residual stream it is added to",
            lambda model, tokens, layer: _recorded(model, tokens, f"blocks.{layer}.hook_mlp_out"),
        ),
    ],
)
def record_resid(model, tokens, layer) -> torch.Tensor:
    """The residual stream after block ``layer`` (``blocks.{layer}.hook_resid_post``,
    ``[batch, pos, d_model]``) on ``tokens [batch, pos]``, recorded by a hook installed with
    ``model.hooks`` (not ``run_with_cache``)."""
    store = {}

    def keep(resid, hook):
        store["resid"] = resid.detach().clone()  # returning None leaves the activation as is

    with torch.no_grad(), model.hooks([(f"blocks.{layer}.hook_resid_post", keep)]):
        model(tokens)
    return store["resid"]


# ---- the final LayerNorm, frozen --------------------------------------------------------------


def _centre(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True)


def _std(x: torch.Tensor, eps: float) -> torch.Tensor:
    return (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def _stack_cases():
    _, cache_ = _tiny_run()
    stack, _ = cache_.decompose_resid()
    stack_r = _randn(4, 4, 2, 5, 16, scale=2.0) + 0.5
    return {
        "random stack [4, 2, 5, 16] and its sum as the residual, eps 1e-5": (
            stack_r,
            stack_r.sum(0),
            1e-5,
        ),
        "tiny GPT-2: decompose_resid() and blocks.1.hook_resid_post, eps 1e-5": (
            stack,
            cache_["blocks.1.hook_resid_post"],
            1e-5,
        ),
    }


@exercise(
    "13.freeze_final_ln",
    notebook=NB,
    title="Put the components through the final LayerNorm, frozen",
    difficulty=2,
    minutes=10,
    cases=_stack_cases,
    mistakes=[
        (
            "divided each component by its own scale (the logit lens's recompute), not by the "
            "scale of the whole residual stream",
            lambda stack, resid, eps: _centre(stack) / _std(_centre(stack), eps),
        ),
        (
            "forgot to centre the components (LayerNorm subtracts the mean over d_model)",
            lambda stack, resid, eps: stack / _std(_centre(resid), eps),
        ),
        (
            "took the residual's scale without centring it first (that is RMSNorm's scale)",
            lambda stack, resid, eps: _centre(stack) / _std(resid, eps),
        ),
    ],
)
def freeze_final_ln(stack: torch.Tensor, resid: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``stack [component, batch, pos, d_model]`` whose sum is the final residual stream
    ``resid [batch, pos, d_model]`` -> each component centred over ``d_model`` and divided by
    the residual's LayerNorm scale ``sqrt(var(resid) + eps)`` (without the norm's weight and
    bias): the components then add up to the normalised residual."""
    centred = resid - resid.mean(-1, keepdim=True)
    scale = (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt()  # [batch, pos, 1]
    return (stack - stack.mean(-1, keepdim=True)) / scale


# ---- direct logit attribution ---------------------------------------------------------------


def _attrs(model, stack, answer_ids, *, fold=True, total=False) -> torch.Tensor:
    w_u = model.unembed_weights().detach()
    norm = model.final_norm()
    if fold and norm is not None and norm["weight"] is not None:
        w_u = norm["weight"].detach()[:, None] * w_u
    out = (stack * w_u.T[answer_ids]).sum(-1)
    return out.sum(0) if total else out


def _attr_cases():
    model, tokens = _tiny()
    _, cache_ = _tiny_run()
    induction, rep = _induction()
    with torch.no_grad():
        _, ind_cache = induction.run_with_cache(rep)
    ln_stack, _ = cache_.decompose_resid(apply_ln=True, pos_slice=slice(0, -1))
    ind_stack, _ = ind_cache.decompose_resid(apply_ln=True, pos_slice=slice(0, -1))
    return {
        "tiny GPT-2: normalised stack [6, 3, 7, 32], the next tokens": (
            model,
            ln_stack,
            tokens[:, 1:],
        ),
        "tiny GPT-2: a random stack [3, 3, 8, 32], random answers": (
            model,
            _randn(5, 3, 3, 8, 32),
            torch.randint(14, (3, 8), generator=torch.Generator().manual_seed(6)),
        ),
        "induction-2l: normalised stack, the next tokens": (induction, ind_stack, rep[:, 1:]),
    }


@exercise(
    "13.direct_logit_attribution",
    notebook=NB,
    title="Direct logit attribution",
    difficulty=2,
    minutes=10,
    cases=_attr_cases,
    mistakes=[
        (
            "forgot to fold the final norm's weight into W_U",
            lambda model, stack, answer_ids: _attrs(model, stack, answer_ids, fold=False),
        ),
        (
            "summed over the components (that is the whole logit minus the offset, not each "
            "component's share)",
            lambda model, stack, answer_ids: _attrs(model, stack, answer_ids, total=True),
        ),
    ],
)
def direct_logit_attribution(model, stack: torch.Tensor, answer_ids: torch.Tensor) -> torch.Tensor:
    """``stack [component, batch, pos, d_model]`` (through the frozen final norm),
    ``answer_ids [batch, pos]`` -> ``[component, batch, pos]``: each component's direct
    contribution to the logit of its answer, through ``W_U`` (``model.unembed_weights()``,
    ``[d_model, d_vocab]``) scaled row-wise by the final norm's weight
    (``model.final_norm()["weight"]``, ``[d_model]``)."""
    w_u = model.unembed_weights().detach()
    norm = model.final_norm()
    if norm is not None and norm["weight"] is not None:
        w_u = norm["weight"].detach()[:, None] * w_u  # fold the norm's weight in
    directions = w_u.T[answer_ids]  # [batch, pos, d_model]: each answer's unembedding
    return (stack * directions).sum(-1)
