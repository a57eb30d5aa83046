"""Reproduce the zoo: ``python -m mechscope.zoo.train NAME [--out DIR] [--steps N]``.

Each recipe is seeded and runs in minutes on a laptop CPU. It writes
``NAME.safetensors`` and the card ``NAME.json`` (architecture, tokenizer, data
recipe, seed, steps, wall time, and the measured behaviour that the tests re-check).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ..heads import best_head, head_scores
from ..models import Transformer, TransformerConfig, WordTokenizer
from ..toy.induction import WORDS, random_period_batch, repeated_part_mask
from ._common import run_record, seeded_model_and_optimizer, train_steps
from .recipes_circuits import train_modadd_1l
from .recipes_features import train_grammar_2l, train_grammar_2l_sae_mlp0
from .recipes_patching import train_facts_ioi_2l

ZOO = Path(__file__).parent


def _heldout(model: Transformer, data: dict, n: int, seed: int):
    """Held-out induction sequences, the model's logits on them (no grad), and the mask of
    positions whose next token is predictable by repetition."""
    gen = torch.Generator().manual_seed(seed)
    tokens, periods, starts = random_period_batch(
        n,
        data["seq_len"],
        model.cfg.d_vocab,
        data["min_period"],
        data["max_period"],
        gen,
        p_prefix=data["p_prefix"],
    )
    with torch.no_grad():
        logits = model(tokens)[:, :-1]
    return tokens[:, 1:], logits, repeated_part_mask(data["seq_len"], periods, starts)


def repeated_accuracy(model: Transformer, data: dict, n: int = 512, seed: int = 12345) -> float:
    """Next-token accuracy on the predictable (repeated) part of held-out sequences."""
    targets, logits, mask = _heldout(model, data, n, seed)
    return float((logits.argmax(-1) == targets)[mask].float().mean())


def log_spaced_steps(total: int, n: int, first: int = 10) -> list[int]:
    """About ``n`` steps from 0 to ``total``: 0, then log-spaced from ``first`` to ``total``."""
    return sorted({0, *(round(first * (total / first) ** (i / (n - 2))) for i in range(n - 1))})


def repeated_loss(model: Transformer, data: dict, n: int = 256, seed: int = 12345) -> float:
    """Mean next-token loss on the predictable (repeated) part of held-out sequences."""
    targets, logits, mask = _heldout(model, data, n, seed)
    loss = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    return float(loss[mask].mean())


def checkpoint_metrics(model: Transformer, data: dict) -> dict:
    """What the training-dynamics notebook plots for one checkpoint."""
    scores = head_scores(model)
    return {
        "repeated_loss": round(repeated_loss(model, data), 4),
        "induction_score": round(float(scores.induction[1:].max()), 4),
        "previous_token_score": round(float(scores.previous_token[:1].max()), 4),
    }


def train_induction_2l(steps: int = 2500, seed: int = 0, n_checkpoints: int | None = None):
    """2-layer attention-only transformer on random blocks repeated with a random period.

    Induction heads form here (Olsson et al. 2022): a layer-0 previous-token head and a
    layer-1 induction head that K-composes with it (Elhage et al. 2021). Returns
    ``(model, card, checkpoints)``; checkpoints (log-spaced steps) show the phase change.
    Seed 0 (the tutorials' model) keeps 20 checkpoints by default, other seeds none.
    """
    if n_checkpoints is None:
        n_checkpoints = 20 if seed == 0 else 0
    tok = WordTokenizer(WORDS)
    cfg = TransformerConfig(
        n_layers=2,
        d_model=64,
        n_heads=4,
        d_head=16,
        d_vocab=len(tok),
        n_ctx=64,
        d_mlp=None,
        normalization="ln",
        seed=seed,
    )
    data = {"seq_len": 64, "min_period": 4, "max_period": 24, "p_prefix": 0.25, "batch": 64}
    optim = {"name": "AdamW", "lr": 1e-3, "weight_decay": 0.01, "betas": [0.9, 0.999]}
    model, opt = seeded_model_and_optimizer(cfg, tok, optim, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    save_at = set(log_spaced_steps(steps, n_checkpoints)) if n_checkpoints else set()
    checkpoints = {}

    def save_checkpoint(step):
        if step in save_at:
            checkpoints[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def loss_at(step):
        tokens, _, _ = random_period_batch(
            data["batch"],
            data["seq_len"],
            cfg.d_vocab,
            data["min_period"],
            data["max_period"],
            gen,
            p_prefix=data["p_prefix"],
        )
        logits = model(tokens)
        return F.cross_entropy(logits[:, :-1].reshape(-1, cfg.d_vocab), tokens[:, 1:].reshape(-1))

    losses, wall = train_steps(
        model, opt, steps, loss_at, "induction-2l", before_step=save_checkpoint
    )
    if n_checkpoints:
        checkpoints[steps] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # Measure each checkpoint as it ships (float16), so tests can re-check the card exactly.
    probe = Transformer(cfg, tokenizer=tok).eval()
    ckpt_metrics = {}
    for step, sd in sorted(checkpoints.items()):
        probe.load_state_dict({k: v.to(torch.float16).float() for k, v in sd.items()})
        ckpt_metrics[str(step)] = checkpoint_metrics(probe, data)
    model.eval()
    scores = head_scores(model)
    il, ih, iscore = best_head(scores.induction[1:])  # induction heads need a layer before them
    pl, ph, pscore = best_head(scores.previous_token[:1])
    card = {
        # Other seeds ship under their own names, for the universality comparison.
        "name": "induction-2l" if seed == 0 else f"induction-2l-seed{seed}",
        "description": "2-layer attention-only transformer that forms induction heads on repeated random words.",
        "config": cfg.to_dict(),
        "tokenizer": tok.to_dict(),
        "data": {
            **data,
            "recipe": "BOS, then (with probability p_prefix) a random-length prefix of other random "
            "words, then a block of `period` distinct random words (period uniform in "
            "[min_period, max_period] per sequence) repeated to seq_len tokens. A random period forces a previous-token head (a fixed one "
            "lets the model look back a fixed distance); a random start forces it at every position.",
        },
        "training": run_record(
            seed, steps, optim, wall, losses, loss="next-token cross-entropy, all positions"
        ),
        **({"checkpoints": {"metrics": ckpt_metrics}} if checkpoints else {}),
        "metrics": {
            "repeated_accuracy": round(repeated_accuracy(model, data), 4),
            "induction_head": [il + 1, ih],
            "induction_score": round(iscore, 4),
            "previous_token_head": [pl, ph],
            "previous_token_score": round(pscore, 4),
            "scores_definition": "mechscope.heads.head_scores(model), period 20, n_samples 32, seed 0",
        },
        "references": [
            "Elhage et al. 2021, A Mathematical Framework for Transformer Circuits",
            "Olsson et al. 2022, In-context Learning and Induction Heads",
        ],
    }
    return model, card, (checkpoints or None)


def _lazy(module: str, fn: str):
    """A recipe imported only when it runs (keeps ``import mechscope.zoo.train`` light)."""

    def run(**kwargs):
        import importlib

        return getattr(importlib.import_module(f"{__package__}.{module}"), fn)(**kwargs)

    run.__name__ = fn
    return run


RECIPES = {
    "induction-2l": train_induction_2l,
    "grammar-2l": train_grammar_2l,
    "modadd-1l": train_modadd_1l,
    "facts-ioi-2l": train_facts_ioi_2l,
    # issue 7 (causal abstraction / DAS) and issue 8 (world model):
    "equality-das": _lazy("recipes_abstraction", "train_equality_das"),
    "othello-mini": _lazy("recipes_world", "train_othello_mini"),
    # issue 18: a real language model on the Python standard library's source
    "stdlib-lm": _lazy("recipes_stdlib", "train_stdlib_lm"),
    # issue 18 §5.1, notebook 19: GELU vs SoLU vs an activation L1 penalty, same task and size
    "grammar-1l-gelu": _lazy("recipes_intrinsic", "train_grammar_1l_gelu"),
    "grammar-1l-solu": _lazy("recipes_intrinsic", "train_grammar_1l_solu"),
    "grammar-1l-gelu-l1": _lazy("recipes_intrinsic", "train_grammar_1l_gelu_l1"),
    "grammar-1l-relu": _lazy("recipes_intrinsic", "train_grammar_1l_relu"),
    "grammar-1l-relu-l1": _lazy("recipes_intrinsic", "train_grammar_1l_relu_l1"),
    "grammar-1l-bilinear": _lazy("recipes_intrinsic", "train_grammar_1l_bilinear"),
    # review §3.3, notebook 04 §6: a second seed of grammar-1l-gelu, for universal neurons
    "grammar-1l-gelu-seed1": _lazy("recipes_universality", "train_grammar_1l_gelu_seed1"),
    # issue 18 (§3.3): the greater-than circuit (Hanna et al. 2023) on made-up years
    "greater-than-2l": _lazy("recipes_greater_than", "train_greater_than_2l"),
    # review §3.3, notebook 22 §6: sequence continuation (Lan & Barez 2023), successor heads
    "sequences-2l": _lazy("recipes_sequences", "train_sequences_2l"),
    # issue 19: a planted backdoor (safety cases) and its clean control
    "backdoor-2l": _lazy("recipes_backdoor", "train_backdoor_2l"),
    "backdoor-2l-clean": _lazy("recipes_backdoor", "train_backdoor_2l_clean"),
    # issue 19: truth without labels (CCS, CKA)
    "facts-truth-2l": _lazy("recipes_truth", "train_facts_truth_2l"),
    # review §3.3: multiple-choice heads (Lieberum et al. 2023)
    "mcq-2l": _lazy("recipes_mcq", "train_mcq_2l"),
}
# SAEs on zoo models: written to zoo/sae/NAME.safetensors + NAME.json (mechscope.sae.load_zoo_sae).
SAE_RECIPES = {
    "grammar-2l-mlp0": train_grammar_2l_sae_mlp0,
    "stdlib-lm-mlp1": _lazy("recipes_stdlib_sae", "train_stdlib_lm_sae"),  # issue 21
}
# Transcoders (issue 14): zoo/transcoders/NAME.safetensors + NAME.json
# (mechscope.transcoder.load_zoo_transcoder).
TRANSCODER_RECIPES = {
    "facts-ioi-2l-tc0": _lazy("recipes_transcoders", "train_facts_tc0"),
    "facts-ioi-2l-tc1": _lazy("recipes_transcoders", "train_facts_tc1"),
}
# Vision models (issue 19): zoo/vision/NAME.safetensors + NAME.json (mechscope.vision.load_zoo_cnn).
VISION_RECIPES = {
    "digits-cnn": _lazy("recipes_vision", "train_digits_cnn"),
    "curves-cnn": _lazy("recipes_curves", "train_curves_cnn"),  # review §3.3, notebook 25 §9
    "curves-cnn-dense": _lazy("recipes_curves", "train_curves_cnn_dense"),  # its control
}
# Reinforcement learning (issue 19): zoo/rl/NAME.safetensors + NAME.json (mechscope.rl.load_zoo_agent).
RL_RECIPES = {"gridworld-agent": _lazy("recipes_rl", "train_gridworld_agent")}


def save(model: Transformer, card: dict, out: Path, checkpoints: dict | None = None) -> None:
    """Write NAME.safetensors, NAME.json and, with checkpoints, NAME.checkpoints.safetensors.

    Checkpoints are stored in float16 (half the size); their metrics in the card are measured
    from the stored float16 weights, so the tests re-measure exactly what ships.
    """
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{card['name']}.safetensors"
    dtype = torch.float16 if card.get("dtype") == "float16" else None  # as the card says
    state = {k: v.detach().to(dtype or v.dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights), metadata={"name": card["name"]})
    card["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    if checkpoints:
        flat = {
            f"step{step}/{k}": v.to(torch.float16).contiguous()
            for step, sd in sorted(checkpoints.items())
            for k, v in sd.items()
        }
        path = out / f"{card['name']}.checkpoints.safetensors"
        save_file(flat, str(path), metadata={"name": card["name"]})
        card.setdefault("checkpoints", {})
        card["checkpoints"].update(
            steps=sorted(checkpoints),
            dtype="float16",
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        )
    (out / f"{card['name']}.json").write_text(json.dumps(card, indent=2) + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "name",
        choices=sorted(RECIPES)
        + sorted(SAE_RECIPES)
        + sorted(TRANSCODER_RECIPES)
        + sorted(VISION_RECIPES)
        + sorted(RL_RECIPES),
    )
    p.add_argument(
        "--out", type=Path, default=ZOO, help="output folder (default: the package's zoo)"
    )
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (default 1: the same float results on every machine)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    kwargs = {"seed": args.seed} | ({"steps": args.steps} if args.steps else {})
    if args.name in SAE_RECIPES or args.name in TRANSCODER_RECIPES:
        sub = "sae" if args.name in SAE_RECIPES else "transcoders"
        sae, card = {**SAE_RECIPES, **TRANSCODER_RECIPES}[args.name](**kwargs)
        weights = sae.save(args.out / sub / card["name"], card)
        card["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
        sae.save(args.out / sub / card["name"], card)
        print(json.dumps(card["metrics"], indent=2))
        return
    if args.name in VISION_RECIPES or args.name in RL_RECIPES:
        sub = "vision" if args.name in VISION_RECIPES else "rl"
        model, card = {**VISION_RECIPES, **RL_RECIPES}[args.name](**kwargs)
        save(model, card, args.out / sub)
        print(json.dumps(card["metrics"], indent=2))
        return
    model, card, *rest = RECIPES[args.name](**kwargs)
    save(model, card, args.out, checkpoints=rest[0] if rest else None)
    print(json.dumps(card["metrics"], indent=2))


if __name__ == "__main__":
    main()
