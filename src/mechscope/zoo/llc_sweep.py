"""The local learning coefficient over the zoo's training checkpoints (notebook 20).

``python -m mechscope.zoo.llc_sweep [--out PATH]`` (default: ``llc_sweep.json`` beside this file) estimates the LLC (Lau et al. 2023,
``mechscope.llc.estimate_llc``) at checkpoints of ``induction-2l`` (the induction-head phase
change, steps 158-215) and ``modadd-1l`` (grokking, test accuracy at ~9,000 steps), with the
seeded data and the hyperparameters below, and writes one JSON file. Notebook 20 recomputes a
subset with the same settings and checks that it matches. Seeded: reruns are bit-identical on
one machine (CPU, one thread).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..llc import estimate_llc, next_token_loss
from ..models import zoo
from ..toy import modadd
from ..toy.induction import random_period_batch

SAVED = Path(__file__).with_suffix(".json")

INDUCTION_STEPS = [0, 63, 116, 158, 215, 292, 397, 733, 1354, 2500]
MODADD_STEPS = [0, 100, 300, 1000, 3000, 5000, 7000, 8000, 9000, 10000]
# SGLD settings, one per model, fixed across checkpoints (tuned on the last checkpoint: the
# running estimate is flat after burn-in and the loss rises by a few per cent, not to chance).
SETTINGS = {
    "induction-2l": {"steps": 150, "lr": 1e-5, "gamma": 1e4, "batch_size": 16, "burn_in": 50},
    "modadd-1l": {"steps": 150, "lr": 1e-5, "gamma": 1e4, "batch_size": 256, "burn_in": 50},
}


def induction_problem(n_seqs: int = 512, seed: int = 2024):
    """Held-out induction sequences ``[n_seqs, 64]`` and ``beta``: the likelihood's ``n`` is the
    number of predicted tokens (the loss is a mean over tokens), so ``n beta = n_tokens /
    log n_tokens``, expressed per row."""
    data = zoo.card("induction-2l")["data"]
    gen = torch.Generator().manual_seed(seed)
    tokens, _, _ = random_period_batch(
        n_seqs, data["seq_len"], 49, data["min_period"], data["max_period"], gen,
        p_prefix=data["p_prefix"],
    )  # fmt: skip
    per_row = tokens.shape[1] - 1
    return tokens, per_row / math.log(n_seqs * per_row)


def modadd_problem():
    """The training pairs ``(tokens [n, 3], answers [n])`` and the answer loss at ``=``."""
    card = zoo.card("modadd-1l")
    p = card["data"]["p"]
    train_idx, _ = modadd.train_test_split(
        p, card["data"]["train_frac"], card["data"]["split_seed"]
    )
    tokens, answers = modadd.all_pairs(p)

    def loss_fn(model, batch):
        x, y = batch
        return F.cross_entropy(modadd.answer_logits(model(x), p), y)

    return (tokens[train_idx], answers[train_idx]), loss_fn


def llc_at(name: str, step: int, *, n_chains: int = 2, seed: int = 0, **overrides):
    """One checkpoint's estimate with the sweep's settings (``overrides`` change them)."""
    model = zoo.load_checkpoint(name, step)
    kw = {**SETTINGS[name], **overrides}
    if name == "induction-2l":
        tokens, beta = induction_problem()
        return estimate_llc(
            model, next_token_loss, tokens, beta=beta, n_chains=n_chains, seed=seed, **kw
        )
    data, loss_fn = modadd_problem()
    return estimate_llc(model, loss_fn, data, n_chains=n_chains, seed=seed, **kw)


def saved() -> dict:
    """The sweep's saved numbers (``llc_sweep.json``, written by :func:`main`)."""
    return json.loads(SAVED.read_text())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(SAVED))
    parser.add_argument("--n-chains", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = {"settings": SETTINGS, "n_chains": args.n_chains, "torch": torch.__version__}
    for name, steps in (("induction-2l", INDUCTION_STEPS), ("modadd-1l", MODADD_STEPS)):
        rows = []
        for step in steps:
            start = time.perf_counter()
            r = llc_at(name, step, n_chains=args.n_chains)
            rows.append({
                "step": step, "llc": round(r.llc, 3), "llc_std": round(r.llc_std, 3),
                "init_loss": round(r.init_loss, 5), "nbeta": round(r.nbeta, 2),
                "seconds": round(time.perf_counter() - start, 1),
            })  # fmt: skip
            print(name, rows[-1], flush=True)
        out[name] = rows
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
