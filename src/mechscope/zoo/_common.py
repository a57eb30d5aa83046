"""What every zoo recipe does the same way: seeded model + AdamW, and the card's run record."""

from __future__ import annotations

import platform

import torch

from ..models import Transformer, TransformerConfig


def seeded_model_and_optimizer(
    cfg: TransformerConfig, tokenizer, optim: dict, seed: int
) -> tuple[Transformer, torch.optim.AdamW]:
    """``torch.manual_seed(seed)``, the model (weights from ``cfg.seed``), and AdamW from ``optim``
    (``{"lr", "weight_decay", "betas"}``, as recorded in the card)."""
    torch.manual_seed(seed)
    model = Transformer(cfg, tokenizer=tokenizer)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=optim["lr"],
        weight_decay=optim["weight_decay"],
        betas=tuple(optim["betas"]),
    )
    return model, opt


def run_record(seed: int, steps: int, optim: dict, wall_s: float, **extra) -> dict:
    """The card's ``training`` section: seed, steps, optimizer, wall time, threads and versions."""
    return {
        "seed": seed,
        "steps": steps,
        "optimizer": optim,
        **extra,
        "wall_time_s": round(wall_s, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
