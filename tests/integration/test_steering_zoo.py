"""Steering and ablation on shipped zoo models (measured behaviour) and on a wrapped HF GPT-2."""

import pytest
import torch
from hf_tiny import VOCAB, build_hf, hook_count, make_tokenizer

import mechscope
from mechscope.ablation import ablate, ablation_sweep
from mechscope.steering import random_direction, steer, steering_sweep, steering_vector
from mechscope.toy import grammar as g
from mechscope.toy.induction import repeated_random_tokens

SITE = "blocks.1.hook_resid_pre"
PLURAL = g.CLASSES["animal_plural"] + g.CLASSES["object_plural"]


def noun_phrases(dets):
    return [f"{d} {a} {c}" for d in dets for a in g.ADJECTIVES for c in g.COLOURS]


@pytest.fixture(scope="module")
def grammar():
    return mechscope.load("grammar-2l")


@pytest.fixture(scope="module")
def number_vector(grammar):
    """plural minus singular determiners ("two big red" - "a big red"), last position."""
    return steering_vector(grammar, noun_phrases(g.DET_PLURAL), noun_phrases(g.DET_SINGULAR), SITE)


def test_number_vector_steers_singular_to_plural(grammar, number_vector):
    strengths = [0.0, 0.25, 0.5, 0.75, 1.0]
    res = steering_sweep(
        grammar, noun_phrases(["a"]), number_vector, SITE, strengths=strengths, answer_ids=PLURAL
    )
    p_plural = res.values.sum(-1)
    assert p_plural[0] < 0.01 and p_plural[-1] > 0.95
    assert (p_plural.diff() >= 0).all()  # monotone in the strength
    assert (res.kl.diff() >= 0).all() and res.kl[-1] > 5
    control = steering_sweep(
        grammar,
        noun_phrases(["a"]),
        random_direction(number_vector, seed=0),
        SITE,
        strengths=strengths,
        answer_ids=PLURAL,
    )
    assert control.values.sum(-1).max() < 0.05  # same norm, random direction: no plural


def test_negative_strength_steers_the_ambiguous_determiner(grammar, number_vector):
    # "the" allows both numbers; the vector's sign picks one.
    res = steering_sweep(
        grammar, noun_phrases(["the"]), number_vector, SITE, strengths=[-1.0, 0.0, 1.0],
        answer_ids=PLURAL,
    )  # fmt: skip
    p = res.values.sum(-1)
    assert p[0] < 0.05 and 0.2 < p[1] < 0.8 and p[2] > 0.95


def test_induction_ablations(induction):
    toks = repeated_random_tokens(16, 20, induction.cfg.d_vocab, seed=1)

    def repeated_loss(logits):
        logp = logits[:, :-1].log_softmax(-1)
        nll = -logp.gather(-1, toks[:, 1:, None])[..., 0]
        return nll[:, 21:].mean(-1)  # the predictable part of the second copy

    with torch.no_grad():
        base = repeated_loss(induction(toks)).mean().item()
    res = ablation_sweep(induction, toks, repeated_loss, "z", kind="zero")
    assert base < 0.1 and res.baseline_value == pytest.approx(base, abs=1e-5)
    # L0H2, the strongest previous-token head, is the one head the circuit cannot lose.
    assert res.values.flatten().argmax().item() == 2 and res.values[0, 2] > 3
    for kind in ("zero", "mean", "resample"):
        loss = repeated_loss(ablate(induction, toks, "blocks.1.attn.hook_z", kind=kind))
        assert loss.mean() > 3  # all induction heads gone: no better than chance (ln 48 = 3.9)


# ---- wrapped Hugging Face GPT-2 (tiny, random init, built locally) -------------------------


@pytest.fixture
def gpt2():
    return mechscope.wrap(build_hf("gpt2"), make_tokenizer())


def test_steering_on_wrapped_gpt2(gpt2, tokens):
    hf = gpt2.hf_model
    before = hook_count(hf)
    other = torch.randint(4, VOCAB, (3, 9), generator=torch.Generator().manual_seed(7))
    v = steering_vector(gpt2, tokens, other, SITE, pos="mean")
    assert v.shape == (gpt2.cfg.d_model,)
    with torch.no_grad():
        hf_logits = hf(input_ids=tokens).logits
    assert torch.equal(steer(gpt2, tokens, v, SITE, strength=0.0), gpt2(tokens))
    assert torch.allclose(gpt2(tokens), hf_logits, atol=1e-5)
    strengths = [0.0, 1.0, 3.0]
    res = steering_sweep(
        gpt2, tokens, v, "blocks.0.hook_resid_post", strengths=strengths, answer_ids=[5]
    )
    for i, s in enumerate(strengths):
        p = (
            steer(gpt2, tokens, v, "blocks.0.hook_resid_post", strength=s)[:, -1]
            .softmax(-1)
            .mean(0)
        )
        assert torch.allclose(res.probs[i], p, atol=1e-5)
    assert res.kl[0] < 1e-6 and res.kl[2] > res.kl[1] > 0
    assert hook_count(hf) == before


def test_ablation_on_wrapped_gpt2(gpt2, tokens):
    before = hook_count(gpt2.hf_model)
    with torch.no_grad():
        clean = gpt2(tokens)
    same = ablate(gpt2, tokens, "blocks.1.attn.hook_z", kind="resample", reference=tokens)
    assert torch.allclose(same, clean, atol=1e-6)

    def metric(logits):
        return logits[:, -1, 5]

    res = ablation_sweep(gpt2, tokens, metric, "z", kind="mean", batch_size=4)
    for layer in range(2):
        for h in range(4):
            one = ablate(gpt2, tokens, f"blocks.{layer}.attn.hook_z", kind="mean", head=h)
            assert res.values[layer, h].item() == pytest.approx(metric(one).mean().item(), abs=1e-4)
    assert hook_count(gpt2.hf_model) == before
