"""Zoo recipe for the patching tutorials (issue 6): ``facts-ioi-2l``.

A 2-layer transformer with MLPs trained on generated prompts with one-word answers
(mechscope.toy.facts): made-up facts (``The Colosseum is in`` -> ``Rome``) and IOI
sentences (``When Mary and John went to the store , John gave a drink to`` -> ``Mary``).
Each prompt has a corrupted twin of the same token length, so activation patching has a
known answer, a known wrong answer, and a logit difference that flips sign.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import Transformer, TransformerConfig, WordTokenizer
from ..toy.facts import VOCAB, PromptPair, canonical_pairs, sample_pairs
from ._common import run_record, seeded_model_and_optimizer, train_steps

PATCHING_EVAL = {"n": 512, "seed": 12345}  # held-out prompts the card's metrics use


def encode_padded(model: Transformer, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths -> right-padded ``[batch, pos]`` ids and each last index.

    Padding goes after the prompt, so (causal attention) it never changes the logits at the
    prompt's own positions.
    """
    rows = [model.tokenizer.encode(p)[0] for p in prompts]
    last = torch.tensor([len(r) - 1 for r in rows])
    tokens = torch.zeros(len(rows), int(last.max()) + 1, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = r
    return tokens, last


def last_logits(model: Transformer, prompts: list[str], batch_size: int = 256) -> torch.Tensor:
    """Next-word logits after each prompt, ``[n, d_vocab]``."""
    out = []
    for i in range(0, len(prompts), batch_size):
        tokens, last = encode_padded(model, prompts[i : i + batch_size])
        logits = model(tokens)
        out.append(logits[torch.arange(len(last)), last])
    return torch.cat(out)


def _ids(model: Transformer, words: list[str]) -> torch.Tensor:
    return torch.tensor([model.tokenizer.ids[w] for w in words])


@torch.no_grad()
def pair_metrics(model: Transformer, pairs: list[PromptPair]) -> dict:
    """Accuracy (argmax over the whole vocabulary) on clean and corrupted prompts, and the mean
    logit difference ``logit(answer) - logit(wrong)`` on each."""
    ans, wrong = _ids(model, [p.answer for p in pairs]), _ids(model, [p.wrong for p in pairs])
    rows = torch.arange(len(pairs))
    clean = last_logits(model, [p.clean for p in pairs])
    corr = last_logits(model, [p.corrupted for p in pairs])
    return {
        "accuracy": round(float((clean.argmax(-1) == ans).float().mean()), 4),
        "corrupted_accuracy": round(float((corr.argmax(-1) == wrong).float().mean()), 4),
        "clean_logit_diff": round(float((clean[rows, ans] - clean[rows, wrong]).mean()), 4),
        "corrupted_logit_diff": round(float((corr[rows, ans] - corr[rows, wrong]).mean()), 4),
    }


@torch.no_grad()
def canonical_metrics(model: Transformer) -> list[dict]:
    """The tutorials' pairs: prediction and logit difference, clean and corrupted."""
    out = []
    for p in canonical_pairs():
        a, w = model.tokenizer.ids[p.answer], model.tokenizer.ids[p.wrong]
        clean, corr = last_logits(model, [p.clean, p.corrupted])
        out.append(
            {
                "clean": p.clean,
                "corrupted": p.corrupted,
                "answer": p.answer,
                "wrong": p.wrong,
                "clean_prediction": model.tokenizer.words[int(clean.argmax())],
                "corrupted_prediction": model.tokenizer.words[int(corr.argmax())],
                "clean_logit_diff": round(float(clean[a] - clean[w]), 3),
                "corrupted_logit_diff": round(float(corr[a] - corr[w]), 3),
            }
        )
    return out


@torch.no_grad()
def patching_metrics(model: Transformer, n: int = 512, seed: int = 12345) -> dict:
    """The card's metrics: held-out (and train) accuracy and logit differences per task."""
    out = {}
    for task in ("facts", "ioi"):
        for split in ("heldout", "train"):
            m = pair_metrics(model, sample_pairs(task, split, n, seed))
            out |= {f"{task}_{split}_{k}": v for k, v in m.items()}
    return out


def _batch(n: int, seed: int) -> list[PromptPair]:
    """Half facts, half IOI, from the training split; clean and corrupted prompts both used."""
    return sample_pairs("facts", "train", n // 2, seed) + sample_pairs("ioi", "train", n // 2, seed)


def train_facts_ioi_2l(steps: int = 3000, seed: int = 0) -> tuple[Transformer, dict]:
    """2-layer transformer with GELU MLPs on made-up facts and IOI sentences (answer-only loss)."""
    tok = WordTokenizer(VOCAB)
    cfg = TransformerConfig(
        n_layers=2,
        d_model=128,
        n_heads=4,
        d_head=32,
        d_vocab=len(tok),
        n_ctx=16,
        d_mlp=512,
        act_fn="gelu",
        normalization="ln",
        seed=seed,
    )
    data = {"batch_pairs": 64, "n_ctx": 16}
    optim = {"name": "AdamW", "lr": 1e-3, "weight_decay": 0.01, "betas": [0.9, 0.999]}
    model, opt = seeded_model_and_optimizer(cfg, tok, optim, seed)

    def loss_at(step):
        pairs = _batch(data["batch_pairs"], seed=1_000_000 + seed * steps + step)
        prompts = [p.clean for p in pairs] + [p.corrupted for p in pairs]
        targets = _ids(model, [p.answer for p in pairs] + [p.wrong for p in pairs])
        tokens, last = encode_padded(model, prompts)
        logits = model(tokens)[torch.arange(len(last)), last]
        return F.cross_entropy(logits, targets)

    losses, wall = train_steps(model, opt, steps, loss_at, "facts-ioi-2l")
    model.eval()
    card = {
        "name": "facts-ioi-2l",
        "description": "2-layer transformer with GELU MLPs trained on made-up facts "
        "('The Colosseum is in' -> 'Rome') and IOI sentences ('When Mary and John went to "
        "the store , John gave a drink to' -> 'Mary'): known answers and equal-length "
        "corrupted prompts for activation, path and attribution patching.",
        "config": cfg.to_dict(),
        "tokenizer": tok.to_dict(),
        "data": {
            **data,
            "recipe": "mechscope.toy.facts.sample_pairs: each step, batch_pairs / 2 fact pairs "
            "and batch_pairs / 2 IOI pairs from the training split (seed 1_000_000 + seed * "
            "steps + step for both); the clean and the corrupted prompt of each pair are "
            "trained on, each with its own answer. Facts: 21 landmark -> city and 12 person "
            "-> instrument facts, prompt = prefix + body, with one body per prefix held out "
            "(fact_template_is_heldout); facts are memorised, held-out prompts are new "
            "phrasings of the same facts. IOI: 16 names, 8 places, 8 objects, 4 intros x 4 "
            "actions with 4 combinations held out (ioi_template_is_heldout) and 1 in 5 name "
            "pairs never seen together in training (ioi_pair_is_heldout); ABB and BAB orders.",
            "eval": PATCHING_EVAL,
        },
        "training": run_record(
            seed,
            steps,
            optim,
            wall,
            losses,
            loss="cross-entropy of the answer word at the prompt's last position "
            "(right-padded batches)",
        ),
        "metrics": patching_metrics(model, **PATCHING_EVAL),
        "canonical": canonical_metrics(model),
        "metrics_definition": "mechscope.zoo.recipes_patching.patching_metrics: accuracy = "
        "argmax over the whole vocabulary equals the answer; logit_diff = logit(answer) - "
        "logit(wrong) where answer is the clean prompt's answer, wrong the corrupted one's.",
        "references": [
            "Bereska & Gavves 2024, Mechanistic Interpretability for AI Safety, Fig. 9a",
            "Meng et al. 2022, Locating and Editing Factual Associations in GPT",
            "Wang et al. 2022, Interpretability in the Wild (IOI)",
        ],
    }
    return model, card
