"""Zoo recipe for multiple-choice heads (review §3.3, Lieberum et al. 2023): ``mcq-2l``.

A 2-layer transformer with MLPs trained on the multiple-choice questions of
:mod:`mechscope.toy.mcq` (``Where is the Eiffel Tower located ? A Rome B Paris C Berlin D
London Answer :`` -> ``B``), half with the labels ``A B C D`` and half with four other letters.
The card records accuracy per label set, the heads' direct logit attribution and patching
scores, and where the top head attends (:func:`circuit_metrics`); the tests re-measure them.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from ..metrics import normalized
from ..models import Transformer, TransformerConfig, WordTokenizer
from ..patching import activation_patch
from ..toy import mcq
from ._common import round_to_float16, run_record, seeded_model_and_optimizer, train_steps

EVAL = {"n": 256, "seed": 12345}  # held-out questions the card's metrics use


@torch.no_grad()
def behaviour(
    model, split: str = "heldout", label_set: str = "abcd", n: int = 256, seed: int = 12345
) -> dict:
    """Accuracy (top token = the correct letter), the logit difference correct minus the
    corrupted prompt's letter, and the probability mass on the four labels."""
    qs = mcq.sample_questions(split, n, seed, label_set)
    logits = model(mcq.tokens_of(model, qs))
    probs = logits[:, -1].softmax(-1)
    on_labels = probs.gather(1, mcq.label_ids(model, qs)).sum(-1)
    return {
        "accuracy": round(float(mcq.accuracy(logits, model, qs).float().mean()), 4),
        "logit_diff": round(float(mcq.logit_diff_metric(model, qs)(logits).mean()), 4),
        "label_mass": round(float(on_labels.mean()), 4),
    }


def head_names(model) -> list[str]:
    return [f"L{la}H{h}" for la in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]


@torch.no_grad()
def head_dla(model, questions) -> torch.Tensor:
    """``[layer * head]``: each head's direct logit attribution at the last position to the
    correct letter minus the mean of the three other labels (final LayerNorm scale from the
    run), averaged over ``questions``."""
    _, cache = model.run_with_cache(mcq.tokens_of(model, questions))
    stack, _ = cache.stack_head_results(pos_slice=-1, apply_ln=True)  # [comp, batch, d_model]
    labels = mcq.label_ids(model, questions)  # [batch, 4]
    right = mcq.answer_ids(model, questions)
    per_label = cache.logit_attrs(stack[..., None, :], labels)  # [comp, batch, 4]
    correct = cache.logit_attrs(stack, right)  # [comp, batch]
    others = (per_label.sum(-1) - correct) / 3
    return (correct - others).mean(-1)


@torch.no_grad()
def attention_to_options(model, questions, layer: int, head: int) -> dict:
    """Where ``L{layer}H{head}`` looks from the last position: its mean attention on the
    correct option's label, on each other label (mean of the three), on the correct option's
    text and on each other option's text."""
    _, cache = model.run_with_cache(mcq.tokens_of(model, questions))
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][:, head, -1]  # [batch, key_pos]
    rows = torch.arange(len(questions))
    answer = torch.tensor([q.answer for q in questions])
    out = {}
    for name, pos in (("label", mcq.LABEL_POS), ("option", mcq.OPTION_POS)):
        att = pattern[:, pos]  # [batch, 4]
        right = att[rows, answer]
        out[f"correct_{name}"] = round(float(right.mean()), 4)
        out[f"other_{name}"] = round(float(((att.sum(-1) - right) / 3).mean()), 4)
    return out


def patching_scores(model, questions) -> torch.Tensor:
    """``[layer, head]``: denoising activation patching of each head's ``hook_z`` (all
    positions) from the clean into the corrupted run (the answer moved to another option),
    normalised to 0 = corrupted, 1 = clean, on :func:`mcq.logit_diff_metric`."""
    clean, corrupted = mcq.tokens_of(model, questions), mcq.tokens_of(model, questions, True)
    metric = mcq.logit_diff_metric(model, questions)
    with torch.no_grad():
        norm = normalized(metric, metric(model(clean)).mean(), metric(model(corrupted)).mean())
    return activation_patch(model, clean, corrupted, norm, site="z").values


def circuit_metrics(model, n: int = 256, seed: int = 12345) -> dict:
    """DLA and patching per head on held-out ``abcd`` questions; the top-DLA head's attention
    under each label set; and the same attention for 10 random other heads (seed 0)."""
    qs = mcq.sample_questions("heldout", n, seed)
    dla = head_dla(model, qs)
    names = head_names(model)
    top = names[int(dla.argmax())]
    layer, head = int(top[1]), int(top[3])
    patch = patching_scores(model, qs).flatten()
    rng = random.Random(0)
    others = [c for c in names if c != top]
    rand = [attention_to_options(model, qs, int(c[1]), int(c[3]))["correct_label"]
            for c in (rng.choice(others) for _ in range(10))]  # fmt: skip
    return {
        "dla": {c: round(float(v), 4) for c, v in zip(names, dla, strict=True)},
        "patching": {c: round(float(v), 4) for c, v in zip(names, patch, strict=True)},
        "top_head": top,
        "top_head_attention": {
            s: attention_to_options(model, mcq.sample_questions("heldout", n, seed, s), layer, head)
            for s in mcq.LABEL_SETS
        },
        "random_head_correct_label_mean": round(sum(rand) / len(rand), 4),
    }


def train_mcq_2l(steps: int = 2000, seed: int = 0) -> tuple[Transformer, dict]:
    """2-layer transformer with GELU MLPs; cross-entropy on the correct letter at the last
    position; each batch half ``A B C D``, half other letters in alphabetical order."""
    tok = WordTokenizer(mcq.VOCAB)
    cfg = TransformerConfig(
        n_layers=2,
        d_model=64,
        n_heads=4,
        d_head=16,
        d_vocab=len(tok),
        n_ctx=mcq.N_POS,
        d_mlp=64,  # small, and float16 weights: the package's size budget
        act_fn="gelu",
        normalization="ln",
        seed=seed,
    )
    data = {"batch": 256, "label_sets": {"abcd": 0.5, "letters": 0.5}}
    optim = {"name": "AdamW", "lr": 2e-3, "weight_decay": 0.01, "betas": [0.9, 0.999]}
    model, opt = seeded_model_and_optimizer(cfg, tok, optim, seed)

    def loss_at(step):
        half = data["batch"] // 2
        qs = mcq.sample_questions("train", half, 1_000_000 + step, "abcd")
        qs += mcq.sample_questions("train", half, 2_000_000 + step, "letters")
        logits = model(mcq.tokens_of(model, qs))[:, -1]
        return F.cross_entropy(logits, mcq.answer_ids(model, qs))

    losses, wall = train_steps(model, opt, steps, loss_at, "mcq-2l")
    model.eval()
    round_to_float16(model)  # ships in float16: measure exactly what ships
    card = {
        "name": "mcq-2l",
        "description": "2-layer transformer with GELU MLPs trained on multiple-choice questions "
        "about the made-up facts world ('Where is the Eiffel Tower located ? A Rome B Paris C "
        "Berlin D London Answer :' -> 'B'), for the correct-letter heads of Lieberum et al. 2023.",
        "dtype": "float16",
        "config": cfg.to_dict(),
        "tokenizer": tok.to_dict(),
        "data": {
            **data,
            "recipe": "mechscope.toy.mcq.sample_questions('train', batch / 2, seed 1_000_000 + "
            "step, 'abcd') + sample_questions('train', batch / 2, seed 2_000_000 + step, "
            "'letters'): a two-word landmark (city) or person (instrument) of "
            "mechscope.toy.facts, 2 of 3 question templates per kind (the third held out), "
            "four options (the true answer at a uniform place), labels A B C D or four other "
            "letters of A..H in alphabetical order. Loss: cross-entropy on the correct letter "
            "at the last position.",
            "eval": EVAL,
        },
        "training": run_record(
            seed,
            steps,
            optim,
            wall,
            losses,
            loss="cross-entropy on the correct letter at the last position",
        ),
        "metrics": {
            "heldout": {s: behaviour(model, "heldout", s, **EVAL) for s in mcq.LABEL_SETS},
            "train": behaviour(model, "train", "abcd", **EVAL),
            **circuit_metrics(model, **EVAL),
        },
        "metrics_definition": "mechscope.zoo.recipes_mcq.behaviour and circuit_metrics on "
        "sample_questions('heldout', 256, 12345, label_set) (the held-out question template): "
        "accuracy = top token over the whole vocabulary is the correct letter; logit_diff = "
        "logit of the correct letter minus the letter the corrupted twin (answer moved to "
        "another option) makes correct; dla = each head's direct logit attribution at the last "
        "position, correct letter minus the mean of the other three labels; patching = "
        "denoising activation patching of each head's hook_z, normalised 0 = corrupted, 1 = "
        "clean; top_head_attention = the top-DLA head's attention from the last position on "
        "the correct label, each other label (mean), the correct option text, each other "
        "option text; random_head_correct_label_mean = the same on the correct label for 10 "
        "random other heads (seed 0).",
        "references": [
            "Lieberum et al. 2023, Does Circuit Analysis Interpretability Scale? Evidence from "
            "Multiple Choice Capabilities in Chinchilla",
            "Bereska & Gavves 2024, Mechanistic Interpretability for AI Safety, §3.3",
        ],
    }
    return model, card
