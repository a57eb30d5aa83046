"""Zoo recipe for the greater-than circuit (issue 18, §3.3): ``greater-than-2l``.

A 2-layer transformer with MLPs trained on made-up years (:mod:`mechscope.toy.greater_than`,
after Hanna et al. 2023): ``The war lasted from the year 17 32 to the year 17`` -> a year
after 32. The training target is the uniform distribution over the years after ``YY``, so
the ideal probability difference is 1. The card records the behaviour on held-out templates
and the circuit's patching numbers (:func:`circuit_metrics`); the tests re-measure them.
"""

from __future__ import annotations

import contextlib
import random

import torch
import torch.nn.functional as F

from ..ablation import ablation_hooks
from ..metrics import normalized
from ..models import Transformer, TransformerConfig, WordTokenizer
from ..patching import activation_patch
from ..path_patching import path_patch
from ..toy import greater_than as gt
from ._common import run_record, seeded_model_and_optimizer, train_steps

EVAL = {"n": 256, "seed": 12345}  # held-out prompts the card's metrics use


@torch.no_grad()
def behaviour(model: Transformer, split: str = "heldout", n: int = 256, seed: int = 12345) -> dict:
    """Probability difference and accuracy on clean prompts, PD on their corrupted twins."""
    prompts = gt.sample_prompts(split, n, seed)
    metric = gt.prob_diff_metric(model, prompts)
    clean = model(gt.tokens_of(model, prompts))
    corrupted = model(gt.tokens_of(model, prompts, corrupted=True))
    yy = torch.tensor([p.yy for p in prompts])
    return {
        "prob_diff": round(float(metric(clean).mean()), 4),
        "corrupted_prob_diff": round(float(metric(corrupted).mean()), 4),
        "accuracy": round(float(gt.accuracy(clean, gt.year_ids(model), yy).float().mean()), 4),
        "year_mass": round(float(gt.year_probs(clean, gt.year_ids(model)).sum(-1).mean()), 4),
    }


def component_names(model) -> list[str]:
    """Every head (``"L0H2"``) and MLP (``"MLP1"``), in layer order."""
    out = []
    for layer in range(model.cfg.n_layers):
        out += [f"L{layer}H{h}" for h in range(model.cfg.n_heads)] + [f"MLP{layer}"]
    return out


@contextlib.contextmanager
def keep_only(model, keep, reference):
    """Inside the block every head and MLP *not* in ``keep`` (names as in
    :func:`component_names`) is mean-ablated over ``reference`` (the paper's 01 prompts)."""
    with contextlib.ExitStack() as stack:
        for layer in range(model.cfg.n_layers):
            drop = [h for h in range(model.cfg.n_heads) if f"L{layer}H{h}" not in keep]
            if drop:
                stack.enter_context(ablation_hooks(
                    model, f"blocks.{layer}.attn.hook_z", kind="mean", head=drop,
                    reference=reference))  # fmt: skip
            if f"MLP{layer}" not in keep:
                stack.enter_context(ablation_hooks(
                    model, f"blocks.{layer}.hook_mlp_out", kind="mean", reference=reference))  # fmt: skip
        yield


@torch.no_grad()
def faithfulness(model, keep, prompts) -> float:
    """Share of the probability difference kept with only ``keep`` left (the rest mean-ablated
    over the corrupted prompts): ``(PD(circuit) - PD(nothing)) / (PD(model) - PD(nothing))``."""
    clean = gt.tokens_of(model, prompts)
    ref = gt.tokens_of(model, prompts, corrupted=True)
    metric = gt.prob_diff_metric(model, prompts)
    full = float(metric(model(clean)).mean())
    with keep_only(model, [], ref):
        empty = float(metric(model(clean)).mean())
    with keep_only(model, keep, ref):
        kept = float(metric(model(clean)).mean())
    return (kept - empty) / (full - empty)


@torch.no_grad()
def random_faithfulness(model, size: int, prompts, n_samples: int = 10, seed: int = 0) -> list:
    """The control: :func:`faithfulness` of ``n_samples`` random sets of ``size`` components."""
    rng = random.Random(seed)
    names = component_names(model)
    return [faithfulness(model, rng.sample(names, size), prompts) for _ in range(n_samples)]


def patching_scores(model, prompts) -> dict:
    """Denoising activation patching (clean into the 01-corrupted run), normalised to 0 =
    corrupted, 1 = clean: each head's ``hook_z`` (all positions) and each MLP's output at
    the last position, ``{"L0H1": ..., "MLP0": ...}``."""
    clean, corrupted = gt.tokens_of(model, prompts), gt.tokens_of(model, prompts, True)
    metric = gt.prob_diff_metric(model, prompts)
    with torch.no_grad():
        norm = normalized(metric, metric(model(clean)).mean(), metric(model(corrupted)).mean())
    heads = activation_patch(model, clean, corrupted, norm, site="z").values
    mlps = activation_patch(model, clean, corrupted, norm, site="mlp_out").values[:, -1]
    scores = {}
    for layer in range(model.cfg.n_layers):
        scores |= {f"L{layer}H{h}": float(heads[layer, h]) for h in range(model.cfg.n_heads)}
        scores[f"MLP{layer}"] = float(mlps[layer])
    return scores


def path_scores(model, prompts, sender: tuple[int, int]) -> dict:
    """Normalised denoising path patching from ``sender`` to each MLP's input and to the
    logits (``ln_final.hook_normalized``): how the head's clean output reaches the answer."""
    clean, corrupted = gt.tokens_of(model, prompts), gt.tokens_of(model, prompts, True)
    metric = gt.prob_diff_metric(model, prompts)
    with torch.no_grad():
        norm = normalized(metric, metric(model(clean)).mean(), metric(model(corrupted)).mean())
    receivers = {
        f"MLP{la}": f"blocks.{la}.mlp.hook_pre" for la in range(sender[0], model.cfg.n_layers)
    }
    receivers["logits"] = "ln_final.hook_normalized"
    return {
        name: path_patch(model, clean, corrupted, norm, sender=sender, hooks=[hook])
        for name, hook in receivers.items()
    }


def circuit_metrics(model, n: int = 256, seed: int = 12345, k: float = 0.1) -> dict:
    """Patching scores; the circuit (every MLP, as in the paper's MLPs 8-11, and the heads
    whose patch recovers at least ``k``); path patching from the top head; faithfulness of the
    circuit and of random sets of as many components (10 draws, seed 0)."""
    prompts = gt.sample_prompts("heldout", n, seed)
    scores = patching_scores(model, prompts)
    circuit = [c for c in component_names(model) if c.startswith("MLP") or scores[c] >= k]
    top = max((c for c in scores if not c.startswith("MLP")), key=scores.get)
    sender = (int(top[1]), int(top[3]))
    rand = random_faithfulness(model, len(circuit), prompts)
    return {
        "patching": {c: round(v, 4) for c, v in scores.items()},
        "circuit": circuit,
        "circuit_head_threshold": k,
        "faithfulness": round(faithfulness(model, circuit, prompts), 4),
        "random_faithfulness_mean": round(sum(rand) / len(rand), 4),
        "top_head": top,
        "top_head_paths": {c: round(v, 4) for c, v in path_scores(model, prompts, sender).items()},
    }


def train_greater_than_2l(steps: int = 1000, seed: int = 0) -> tuple[Transformer, dict]:
    """2-layer transformer with GELU MLPs; loss = cross-entropy against the uniform
    distribution over the years after ``YY`` at the last position."""
    tok = WordTokenizer(gt.VOCAB)
    cfg = TransformerConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_vocab=len(tok),
        n_ctx=gt.N_POS,
        d_mlp=128,
        act_fn="gelu",
        normalization="ln",
        seed=seed,
    )
    data = {"batch": 256, "yy_range": [1, 98]}
    optim = {"name": "AdamW", "lr": 3e-3, "weight_decay": 0.01, "betas": [0.9, 0.999]}
    model, opt = seeded_model_and_optimizer(cfg, tok, optim, seed)
    ids = gt.year_ids(model)
    later = torch.arange(100)[None] > torch.arange(100)[:, None]  # [yy, year]
    target_years = later.float() / later.float().sum(-1, keepdim=True).clamp(min=1)

    def loss_at(step):
        prompts = gt.sample_prompts("train", data["batch"], 1_000_000 + step, *data["yy_range"])
        logits = model(gt.tokens_of(model, prompts))[:, -1]
        target = torch.zeros_like(logits)
        target[:, ids] = target_years[torch.tensor([p.yy for p in prompts])]
        return F.cross_entropy(logits, target)

    losses, wall = train_steps(model, opt, steps, loss_at, "greater-than-2l")
    model.eval()
    card = {
        "name": "greater-than-2l",
        "description": "2-layer transformer with GELU MLPs trained on made-up years ('The war "
        "lasted from the year 17 32 to the year 17' -> a year after 32), for the greater-than "
        "circuit of Hanna et al. 2023.",
        "config": cfg.to_dict(),
        "tokenizer": tok.to_dict(),
        "data": {
            **data,
            "recipe": "mechscope.toy.greater_than.sample_prompts('train', batch, seed "
            "1_000_000 + step, 1, 98): template 'The {noun} {verb} from the year {century} "
            "{yy} {connector} the year {century}' with 16 nouns, 9 centuries, 4 verbs x 4 "
            "connectors of which 4 combinations are held out (template_is_heldout); yy "
            "uniform in 01..98 (01 included, so the paper's corrupted prompts are in "
            "distribution). Loss: cross-entropy at the last position against the uniform "
            "distribution over the years yy+1..99.",
            "eval": EVAL,
        },
        "training": run_record(
            seed, steps, optim, wall, losses, loss="soft-target cross-entropy at the last position"
        ),
        "metrics": {
            "heldout": behaviour(model, "heldout", **EVAL),
            "train": behaviour(model, "train", **EVAL),
            **circuit_metrics(model, **EVAL),
        },
        "metrics_definition": "mechscope.zoo.recipes_greater_than.behaviour and "
        "circuit_metrics on sample_prompts('heldout', 256, 12345) (yy in 02..98): prob_diff "
        "= sum P(y > yy) - sum P(y <= yy) over the year tokens at the last position "
        "(softmax over the whole vocabulary); accuracy = the top token is a year after yy; "
        "patching = denoising activation patching (clean into the 01-corrupted run) of each "
        "head's hook_z (all positions) and each MLP's output at the last position, "
        "normalised to 0 = corrupted, 1 = clean; circuit = every MLP and the heads "
        "with patching >= circuit_head_threshold; top_head_paths = path patching from the "
        "top head to each later MLP's input and to the logits; faithfulness = PD share kept with every other head and MLP "
        "mean-ablated over the corrupted prompts.",
        "references": [
            "Hanna, Liu & Variengien 2023, How does GPT-2 compute greater-than?",
            "Bereska & Gavves 2024, Mechanistic Interpretability for AI Safety, §3.3",
        ],
    }
    return model, card
