"""Zoo recipe for concepts without labels (issue 19): ``facts-truth-2l``.

A tiny 2-layer transformer reads a statement about the made-up facts world
(:mod:`mechscope.toy.facts_truth`: ``The Colosseum is not in Rome .``) and predicts the
next word, ``True`` or ``False``. It must know the fact and undo a negation, so truth is
computed inside the model; contrast-consistent search (Burns et al. 2023) then looks for it
without labels. The card records the truth accuracy and the CCS / probe accuracies per
layer that ``tests/integration/test_zoo_truth.py`` re-measures from the shipped weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models import Transformer, TransformerConfig, WordTokenizer
from ..toy import facts_truth as ft
from ._common import run_record, seeded_model_and_optimizer, train_steps

TRUTH_EVAL = {"n": 512, "seed": 12345}
# Where the notebook and the card read the residual stream (at the final ".").
TRUTH_HOOKS = [
    "blocks.0.hook_resid_mid",
    "blocks.0.hook_resid_post",
    "blocks.1.hook_resid_mid",
    "blocks.1.hook_resid_post",
]


def truth_accuracy(model: Transformer, split: str, n: int = 512, seed: int = 12345) -> dict:
    """Accuracy of ``sign(logit(True) - logit(False))`` and the mean margin on ``split``."""
    st = ft.sample_statements(split, n, seed)
    ld = ft.truth_logits(model, [s.text for s in st])
    truth = torch.tensor([s.true for s in st])
    signed = torch.where(truth, ld, -ld)
    return {"accuracy": round(float((signed > 0).float().mean()), 4),
            "margin": round(float(signed.mean()), 4)}  # fmt: skip


def concept_metrics(model: Transformer, seed: int = 0) -> dict:
    """Per layer: CCS accuracy (no labels; sign-free) and supervised probe accuracy, held out.

    Contrast pairs from :func:`mechscope.toy.facts_truth.contrast_pairs` (``n_wrong=1``,
    ``seed``), split in half by subject parity: fit on even subjects, score on odd ones.
    """
    from ..ccs import fit_ccs
    from ..probes import fit_probe

    pos, neg, labels = ft.contrast_pairs(n_wrong=1, seed=seed)
    a_pos = ft.statement_activations(model, [s.text for s in pos], TRUTH_HOOKS)
    a_neg = ft.statement_activations(model, [s.text for s in neg], TRUTH_HOOKS)
    fit = torch.tensor([ft.SUBJECTS.index(s.subject) % 2 == 0 for s in pos])
    out = {}
    for hook in TRUTH_HOOKS:
        xp, xn = a_pos[hook], a_neg[hook]
        ccs = fit_ccs(xp[fit], xn[fit], seed=seed)
        out[f"ccs_{hook}"] = round(ccs.accuracy(xp[~fit], xn[~fit], labels[~fit]), 4)
        # supervised: one probe on both members of each pair, labelled by truth
        acts = torch.cat([xp, xn])
        truth = torch.cat([labels, 1 - labels])
        both = torch.cat([fit, fit])
        probe = fit_probe(acts[both], truth[both], test_frac=0.0, seed=seed)
        out[f"probe_{hook}"] = round(probe.accuracy(acts[~both], truth[~both]), 4)
    return out


def _batch(n: int, seed: int) -> list[ft.Statement]:
    return ft.sample_statements("train", n, seed)


def train_facts_truth_2l(steps: int = 3000, seed: int = 0) -> tuple[Transformer, dict]:
    """2 layers, d_model 32, 4 heads, d_mlp 128, GELU, LayerNorm; loss on the True/False word
    (and on recalling the fact), AdamW with a cosine schedule."""
    tok = WordTokenizer(ft.VOCAB)
    cfg = TransformerConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_vocab=len(tok),
        n_ctx=16,
        d_mlp=128,
        act_fn="gelu",
        normalization="ln",
        seed=seed,
    )
    data = {"batch": 64, "n_ctx": 16, "recall_weight": 0.5}
    optim = {
        "name": "AdamW",
        "lr": 3e-3,
        "weight_decay": 0.05,
        "betas": [0.9, 0.999],
        "schedule": "cosine to 0",
    }
    model, opt = seeded_model_and_optimizer(cfg, tok, optim, seed)
    ids = torch.tensor([tok.ids[w] for w in ft.LABELS])  # class 0 = "False", 1 = "True"

    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
    )

    def loss_at(step):
        st = _batch(data["batch"], seed=2_000_000 + seed * steps + step)
        tokens, last = ft.encode_statements(model, [s.text for s in st])
        logits = model(tokens)
        rows = torch.arange(len(st))
        truth = F.cross_entropy(logits[rows, last], ids[torch.tensor([int(s.true) for s in st])])
        # the facts themselves: in an affirmed statement, the word before the answer
        # predicts the subject's true answer (whatever answer the statement then gives)
        aff = torch.tensor([not s.negated for s in st])
        fact = torch.tensor([tok.ids[ft.true_answer(s.subject)] for s in st])
        recall = F.cross_entropy(logits[rows[aff], last[aff] - 2], fact[aff])
        return truth + data["recall_weight"] * recall

    losses, wall = train_steps(model, opt, steps, loss_at, "facts-truth-2l", sched=sched)
    model.eval()
    metrics = {}
    for split in ("train", "heldout"):
        m = truth_accuracy(model, split, **TRUTH_EVAL)
        metrics |= {f"truth_{split}_{k}": v for k, v in m.items()}
    metrics |= concept_metrics(model)
    card = {
        "name": "facts-truth-2l",
        "description": "Tiny 2-layer transformer that reads a statement about the made-up "
        "facts world ('The Colosseum is not in Rome .') and predicts 'True' or 'False': a "
        "truth concept to find without labels (CCS, Burns et al. 2023).",
        "config": cfg.to_dict(),
        "tokenizer": tok.to_dict(),
        "data": {
            **data,
            "recipe": "mechscope.toy.facts_truth.sample_statements('train', batch, seed "
            "2_000_000 + seed * steps + step): a subject (21 landmarks, 12 people), its true "
            "answer or (half the time) a wrong answer of its kind, one of 4 training prefixes, "
            "affirmed or negated (half each), then '.'; the target is the next word 'True' / "
            "'False'. Plus recall_weight x the cross-entropy of the subject's true answer "
            "predicted at the word before the answer of every affirmed statement (the model "
            "is told the facts). Held out: the prefix 'They say' and one wrong answer in four per "
            "subject (wrong_answer_is_heldout).",
            "eval": TRUTH_EVAL,
        },
        "training": run_record(
            seed,
            steps,
            optim,
            wall,
            losses,
            loss="cross-entropy of the True/False word after the statement's '.'",
        ),
        "metrics": metrics,
        "metrics_definition": "truth_*: mechscope.zoo.recipes_truth.truth_accuracy (sign of "
        "logit(True) - logit(False) against the truth; margin = its signed mean). ccs_HOOK / "
        "probe_HOOK: recipes_truth.concept_metrics: mechscope.ccs.fit_ccs (seed 0, no labels, "
        "accuracy sign-free) and a logistic mechscope.probes.fit_probe on the activation at "
        "the final '.', fitted on the contrast pairs of even-numbered subjects and scored on "
        "the odd ones.",
        "references": [
            "Burns et al. 2023, Discovering Latent Knowledge in Language Models Without Supervision",
            "Farquhar et al. 2023, Challenges with unsupervised LLM knowledge discovery",
        ],
    }
    return model, card
