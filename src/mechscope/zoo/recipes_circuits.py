"""Zoo recipes for circuit and training-dynamics tutorials (``python -m mechscope.zoo.train modadd-1l``).

``modadd-1l``: modular addition p = 113 after Nanda et al. 2023, trained until it
groks, with checkpoints across training and the train/test curves in its card.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..models import Transformer, TransformerConfig
from ..toy import modadd
from ._common import run_record, seeded_model_and_optimizer


def last_position_logits(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    """``model(tokens)[:, -1]`` for a 1-layer model without LayerNorm, computing only what the
    last position needs (its query, its MLP, its unembedding): ~3x less work per training step.
    Equality with the full forward pass is tested.
    """
    blk = model.blocks[0]
    a = blk.attn
    resid = model.W_E[tokens] + model.W_pos[: tokens.shape[1]]  # [batch, pos, d_model]
    q = torch.einsum("bd,hde->bhe", resid[:, -1], a.W_Q) + a.b_Q  # [batch, head, d_head]
    k = torch.einsum("bpd,hde->bphe", resid, a.W_K) + a.b_K  # [batch, pos, head, d_head]
    v = torch.einsum("bpd,hde->bphe", resid, a.W_V) + a.b_V
    pattern = (torch.einsum("bhe,bphe->bhp", q, k) * a.scale).softmax(
        -1
    )  # last query sees all keys
    z = torch.einsum("bhp,bphe->bhe", pattern, v)
    resid = resid[:, -1] + torch.einsum("bhe,hed->bd", z, a.W_O) + a.b_O
    resid = resid + blk.mlp(resid)
    return resid @ model.W_U + model.b_U


def train_modadd_1l(
    steps: int = 20000, seed: int = 0, p: int = 113, every: int = 1000, patience: int = 1000
):
    """1 layer, d_model 128, 4 heads, d_mlp 512, ReLU, no LayerNorm; 30% of pairs, full batch,
    AdamW lr 1e-3, weight decay 1.0, betas (0.9, 0.98) (Nanda et al. 2023).

    Training stops ``patience`` steps after test accuracy first reaches 0.99 (or at
    ``steps``). Returns ``(model, card, checkpoints)``; checkpoints maps step -> state_dict.
    """
    tok = modadd.tokenizer(p)
    cfg = TransformerConfig(
        n_layers=1,
        d_model=128,
        n_heads=4,
        d_head=32,
        d_vocab=len(tok),
        n_ctx=3,
        d_mlp=512,
        act_fn="relu",
        normalization=None,
        # 0.8 / sqrt(d_model): the init of Nanda et al.'s model. With GPT-2's 0.02 the model
        # neither memorises nor groks in 3k steps (test accuracy stalls near 0.45).
        init_std=0.8 / math.sqrt(128),
        seed=seed,
    )
    data = {"p": p, "train_frac": 0.3, "split_seed": seed}
    optim = {"name": "AdamW", "lr": 1e-3, "weight_decay": 1.0, "betas": [0.9, 0.98]}
    model, opt = seeded_model_and_optimizer(cfg, tok, optim, seed)
    tokens, answers = modadd.all_pairs(p)
    train_idx, test_idx = modadd.train_test_split(p, data["train_frac"], data["split_seed"])
    x_tr, y_tr, x_te, y_te = (
        tokens[train_idx],
        answers[train_idx],
        tokens[test_idx],
        answers[test_idx],
    )
    # Early steps (memorisation) and then evenly through the long grokking phase.
    save_at = {0, 100, 300, *range(every, steps + 1, every)}
    checkpoints, curve = (
        {},
        {"step": [], "train_loss": [], "test_loss": [], "train_acc": [], "test_acc": []},
    )
    grokked_at = None
    start = time.perf_counter()
    for step in (bar := tqdm(range(steps + 1), desc="modadd-1l")):
        if step in save_at:
            checkpoints[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        logits = last_position_logits(model, x_tr)[:, 1 : p + 1]
        loss = F.cross_entropy(logits, y_tr)
        if step % 100 == 0 or step == steps:
            with torch.no_grad():
                test_logits = modadd.answer_logits(model(x_te), p)
            curve["step"].append(step)
            curve["train_loss"].append(round(loss.item(), 5))
            curve["test_loss"].append(round(F.cross_entropy(test_logits, y_te).item(), 5))
            curve["train_acc"].append(round((logits.argmax(-1) == y_tr).float().mean().item(), 4))
            curve["test_acc"].append(
                round((test_logits.argmax(-1) == y_te).float().mean().item(), 4)
            )
            bar.set_postfix(
                train=curve["train_loss"][-1],
                test=curve["test_loss"][-1],
                acc=curve["test_acc"][-1],
            )
        if grokked_at is None and curve["test_acc"] and curve["test_acc"][-1] >= 0.99:
            grokked_at = curve["step"][-1]
        if step == steps or (grokked_at is not None and step >= grokked_at + patience):
            if step not in checkpoints:
                checkpoints[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    wall = time.perf_counter() - start
    model.eval()
    W_E = model.W_E.detach()[1 : p + 1]
    card = {
        "name": "modadd-1l",
        "description": "1-layer transformer on (a + b) mod 113 that groks (Nanda et al. 2023).",
        "config": cfg.to_dict(),
        "tokenizer": tok.to_dict(),
        "data": {
            **data,
            "recipe": "all pairs (a, b) as tokens 'a b =', answer (a + b) mod p read at '='; "
            "a random 30% of pairs (torch.randperm with split_seed) for training, the rest held out",
        },
        "training": run_record(
            seed,
            curve["step"][-1],
            optim,
            wall,
            max_steps=steps,
            stop_rule=f"stop {patience} steps after test accuracy first reaches 0.99",
            batch="full (all training pairs)",
        ),
        "curves": curve,
        "checkpoint_steps": sorted(checkpoints),
        "metrics": {
            "train_accuracy": curve["train_acc"][-1],
            "test_accuracy": curve["test_acc"][-1],
            "test_loss": curve["test_loss"][-1],
            "grok_step": grokked_at,
            "key_frequencies": modadd.key_frequencies(W_E),
        },
        "references": [
            "Nanda et al. 2023, Progress measures for grokking via mechanistic interpretability",
            "Power et al. 2022, Grokking: Generalization beyond overfitting",
        ],
    }
    package_modadd(model, card, checkpoints)
    return model, card, checkpoints


def modadd_progress(model: Transformer, p: int, train_idx: torch.Tensor, freqs: list[int]) -> dict:
    """Nanda et al.'s progress measures for one checkpoint: train/test loss and accuracy, and
    the restricted and excluded loss for the final model's key frequencies ``freqs``."""
    tokens, answers = modadd.all_pairs(p)
    with torch.no_grad():
        logits = last_position_logits(model, tokens)[:, 1 : p + 1].double()
    test_mask = torch.ones(p * p, dtype=torch.bool)
    test_mask[train_idx] = False
    loss = F.cross_entropy(logits, answers, reduction="none")
    correct = (logits.argmax(-1) == answers).float()
    return {
        "train_loss": round(float(loss[train_idx].mean()), 4),
        "test_loss": round(float(loss[test_mask].mean()), 4),
        "test_accuracy": round(float(correct[test_mask].mean()), 4),
        "restricted_loss": round(modadd.restricted_loss(logits, answers, freqs), 4),
        "excluded_loss": round(modadd.excluded_loss(logits, answers, freqs, train_idx), 4),
    }


def package_modadd(model: Transformer, card: dict, checkpoints: dict) -> dict:
    """Add checkpoint progress measures to ``card``, measured from the float16 weights that ship."""
    p = card["data"]["p"]
    train_idx, _ = modadd.train_test_split(
        p, card["data"]["train_frac"], card["data"]["split_seed"]
    )
    freqs = card["metrics"]["key_frequencies"]
    probe = Transformer(model.cfg, tokenizer=model.tokenizer).eval()
    measures = {}
    for step, sd in sorted(checkpoints.items()):
        probe.load_state_dict({k: v.to(torch.float16).float() for k, v in sd.items()})
        measures[str(step)] = modadd_progress(probe, p, train_idx, freqs)
    card["checkpoints"] = {"metrics": measures}
    return card
