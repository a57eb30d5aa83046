"""Zoo recipe for causal abstraction (issue 7): ``equality-das``.

A small transformer trained on hierarchical equality (mechscope.toy.equality): the prompt
``<bos> a b c d`` and the answer ``true`` when ``(a == b) == (c == d)``. The card records,
besides held-out accuracy, the interchange-intervention accuracy (IIA) of distributed
alignment search (Geiger et al. 2023) for the causal model's variables V1 = (a == b) and
V2 = (c == d) at the sites listed in :data:`DAS_SITES`, and the baselines: the naive
full-vector interchange at the same site, a random subspace of the same size, and DAS on the
same architecture untrained. The tests re-run DAS (seeded, seconds) and re-check them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..das import das, interchange_accuracy, random_basis
from ..models import Transformer, TransformerConfig, WordTokenizer
from ..toy import equality as eq
from ._common import run_record, seeded_model_and_optimizer, train_steps

# Where each variable is looked for, and the subspace size: (site, position, k).
# Found by the full-vector sweep over (layer, position) in notebook 10: after layer 0, the
# token b's vector carries V1 and the token d's carries V2; DAS finds each in one direction.
DAS_SITES: dict[str, tuple[str, int, int]] = {
    "V1": ("blocks.0.hook_resid_post", 2, 1),  # the token b, after layer 0
    "V2": ("blocks.0.hook_resid_post", 4, 1),  # the token d, after layer 0
}
# DAS training and evaluation pairs (counterfactual_pairs seeds) and optimiser settings.
DAS_EVAL = {"n_train": 1000, "n_heldout": 1000, "train_seed": 0, "heldout_seed": 1,
            "steps": 150, "lr": 2e-2, "batch_size": 128, "seed": 0}  # fmt: skip
ACCURACY_EVAL = {"n": 2000, "seed": 12345}
# One-cycle schedule: warm-up to max_lr over the first 10% of steps, then cosine decay (torch's
# OneCycleLR defaults, which also cycle Adam's beta1 between 0.85 and 0.95).
OPTIM = {"name": "AdamW", "lr": 1e-3, "weight_decay": 0.01, "betas": [0.9, 0.999],
         "schedule": {"name": "OneCycleLR", "max_lr": 2e-3, "pct_start": 0.1}}  # fmt: skip
STEPS = 2500


@torch.no_grad()
def task_accuracy(model: Transformer, split: str = "heldout", n: int = 2000, seed: int = 12345):
    """Accuracy of ``argmax(logit(false), logit(true))`` at the last position on ``split``."""
    x = eq.sample_inputs(n, split, seed=seed)
    logits = model(eq.to_tokens(x))[:, -1, eq.answer_ids()]
    return float((logits.argmax(-1) == eq.causal_model(x)["out"].long()).float().mean())


def das_for(model: Transformer, variable: str, **overrides):
    """Run DAS for ``variable`` at its :data:`DAS_SITES` site on the training pairs; returns
    ``(result, heldout_pairs)``. ``overrides`` replace entries of :data:`DAS_EVAL` / the site's k.
    """
    cfg = DAS_EVAL | overrides
    site, pos, k = DAS_SITES[variable]
    k = overrides.get("k", k)
    train = eq.counterfactual_pairs(cfg["n_train"], variable, "train", seed=cfg["train_seed"])
    held = eq.counterfactual_pairs(cfg["n_heldout"], variable, "heldout", cfg["heldout_seed"])
    result = das(
        model, eq.to_tokens(train.base), eq.to_tokens(train.source), train.label, hook=site,
        k=k, pos=pos, answer_ids=eq.answer_ids(), steps=cfg["steps"], lr=cfg["lr"],
        batch_size=cfg["batch_size"], seed=cfg["seed"],
    )  # fmt: skip
    return result, held


def _iia(model, held, variable, basis):
    site, pos, _ = DAS_SITES[variable]
    return interchange_accuracy(
        model, eq.to_tokens(held.base), eq.to_tokens(held.source), held.label, hook=site,
        pos=pos, basis=basis, answer_ids=eq.answer_ids(),
    )  # fmt: skip


def das_metrics(model: Transformer, untrained: Transformer | None = None, **overrides) -> dict:
    """Held-out IIA per variable: DAS, the full-vector swap, a random subspace of the same
    size, and (with ``untrained``) DAS on the untrained architecture; rounded to 4 places.
    ``overrides`` go to :func:`das_for`."""
    out = {}
    for var in eq.VARIABLES:
        result, held = das_for(model, var, **overrides)
        d, k = result.basis.shape
        out |= {
            f"{var}_das_iia": _iia(model, held, var, result.basis),
            f"{var}_das_train_iia": result.train_accuracy,
            f"{var}_full_vector_iia": _iia(model, held, var, None),
            f"{var}_random_subspace_iia": _iia(model, held, var, random_basis(d, k, seed=1)),
            f"{var}_no_intervention_iia": float((held.label == held.base_label).float().mean()),
        }
        if untrained is not None:
            res_u, _ = das_for(untrained, var, **overrides)
            out[f"{var}_untrained_das_iia"] = _iia(untrained, held, var, res_u.basis)
    return {key: round(v, 4) for key, v in out.items()}


def _config(seed: int) -> tuple[WordTokenizer, TransformerConfig]:
    tok = WordTokenizer(eq.VOCAB)
    cfg = TransformerConfig(
        n_layers=3, d_model=64, n_heads=4, d_head=16, d_vocab=len(tok), n_ctx=5, d_mlp=256,
        act_fn="gelu", normalization="ln", seed=seed,
    )  # fmt: skip
    return tok, cfg


def train_equality_das(steps: int | None = None, seed: int = 0) -> tuple[Transformer, dict]:
    """3-layer transformer on hierarchical equality (answer-only loss), then DAS on it.

    The loss sits at ln 2 (chance) for the first ~1500 steps, then drops to ~0 within a few
    hundred: held-out accuracy 1.0 at 2500 steps (about 5 minutes on one CPU thread). When
    the loss leaves its plateau depends on the data stream: with other streams (or a constant
    learning rate) it can take longer than 2500 steps, and where the network stores V1 varies
    between runs (always check with the interchange sweep of notebook 10).
    """
    steps = STEPS if steps is None else steps
    tok, cfg = _config(seed)
    data = {"batch": 256, "n_objects": len(eq.OBJECTS)}
    optim = dict(OPTIM)
    model, opt = seeded_model_and_optimizer(cfg, tok, optim, seed)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=optim["schedule"]["max_lr"],
        total_steps=max(steps, 1),
        pct_start=optim["schedule"]["pct_start"],
    )
    answers = torch.tensor(eq.answer_ids())

    def loss_at(step):
        x = eq.sample_inputs(data["batch"], "train", seed=1000 + 1_000_000 * seed + step)
        target = answers[eq.causal_model(x)["out"].long()]
        return F.cross_entropy(model(eq.to_tokens(x))[:, -1], target)

    losses, wall = train_steps(model, opt, steps, loss_at, "equality-das", sched=sched)
    model.eval()
    untrained = Transformer(cfg, tokenizer=tok).eval()  # same seeded init, no training
    # A smoke run (a few training steps) gets a few DAS steps too; the card records which.
    das_cfg = (
        DAS_EVAL if steps >= 100 else DAS_EVAL | {"steps": 3, "n_train": 200, "n_heldout": 200}
    )
    metrics = {
        "heldout_accuracy": round(task_accuracy(model, "heldout", **ACCURACY_EVAL), 4),
        "train_accuracy": round(task_accuracy(model, "train", **ACCURACY_EVAL), 4),
        **das_metrics(model, untrained, **das_cfg),
    }
    card = {
        "name": "equality-das",
        "description": "3-layer transformer trained on hierarchical equality ('<bos> a b c d' "
        "-> true iff (a == b) == (c == d)), for interchange interventions and distributed "
        "alignment search (DAS) against the causal model V1 = (a == b), V2 = (c == d).",
        "config": cfg.to_dict(),
        "tokenizer": tok.to_dict(),
        "data": {
            **data,
            "recipe": "mechscope.toy.equality.sample_inputs(batch, 'train', seed=1000 + "
            "1_000_000 * seed + step): a == b with probability 1/2 (else b another object), c == d "
            "the same, independently; 16 object words. One in five quadruples is held out "
            "(is_heldout, a fixed random table) and never trained on. Loss: cross-entropy of "
            "the answer word (true/false) at the last position.",
            "das": {"sites": {v: list(s) for v, s in DAS_SITES.items()}, **das_cfg},
            "accuracy_eval": ACCURACY_EVAL,
        },
        "training": run_record(
            seed,
            steps,
            optim,
            wall,
            loss="cross-entropy of the answer word at the last position",
            final_loss_mean_last_100=sum(losses[-100:]) / max(len(losses[-100:]), 1),
        ),
        "metrics": metrics,
        "metrics_definition": "mechscope.zoo.recipes_abstraction: accuracy = argmax over "
        "(false, true) at the last position; *_iia = interchange-intervention accuracy on "
        "held-out counterfactual pairs (DAS_EVAL): das = the subspace DAS learned on the "
        "training pairs, full_vector = the whole site vector swapped, random_subspace = a "
        "random k-dim subspace (random_basis seed 1), untrained_das = DAS on the untrained "
        "model, no_intervention = the share of pairs whose label the intervention keeps.",
        "references": [
            "Geiger, Wu, Potts, Icard & Goodman 2023, Finding Alignments Between "
            "Interpretable Causal Variables and Distributed Neural Representations",
            "Geiger, Lu, Icard & Potts 2021, Causal Abstractions of Neural Networks",
        ],
    }
    return model, card
