"""What every zoo recipe does the same way: seeded model + AdamW, the training loop, float16
rounding, and the card's run record."""

from __future__ import annotations

import platform
import time

import torch
from tqdm.auto import tqdm

from ..models import Transformer, TransformerConfig


def seeded_model_and_optimizer(
    cfg: TransformerConfig, tokenizer, optim: dict, seed: int
) -> tuple[Transformer, torch.optim.AdamW]:
    """``torch.manual_seed(seed)``, the model (weights from ``cfg.seed``), and AdamW from ``optim``
    (``{"lr", "weight_decay", "betas"}``, as recorded in the card)."""
    torch.manual_seed(seed)
    model = Transformer(cfg, tokenizer=tokenizer)
    return model, adamw(model, optim)


def adamw(model: torch.nn.Module, optim: dict) -> torch.optim.AdamW:
    """AdamW on ``model``'s parameters from ``optim`` (``{"lr", "weight_decay", "betas"}``, as
    recorded in the card)."""
    return torch.optim.AdamW(
        model.parameters(),
        lr=optim["lr"],
        weight_decay=optim["weight_decay"],
        betas=tuple(optim["betas"]),
    )


@torch.no_grad()
def round_to_float16(model: torch.nn.Module) -> None:
    """Round every parameter through float16 in place, for a model that ships in float16: the
    card's metrics then measure exactly what ships."""
    for p in model.parameters():
        p.copy_(p.half().float())


def run_record(
    seed: int, steps: int, optim: dict, wall_s: float, losses: list[float] | None = None, **extra
) -> dict:
    """The card's ``training`` section: seed, steps, optimizer, ``extra``, wall time, threads
    and versions.

    losses: every step's loss (from :func:`train_steps`); when given, the extras end with
    ``final_loss_mean_last_100``, the mean of the last (up to) 100.
    """
    if losses is not None:
        extra["final_loss_mean_last_100"] = sum(losses[-100:]) / len(losses[-100:])
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


def train_steps(
    model,
    opt,
    steps: int,
    loss_at,
    desc: str,
    *,
    sched=None,
    before_step=None,
    report_every: int = 100,
) -> tuple[list[float], float]:
    """The loop every recipe shares: for each step, ``loss_at(step)`` -> backward -> AdamW
    step (and ``sched.step()``), with a progress bar.

    before_step: optionally called with the step number before its batch is drawn (e.g. to
    save a checkpoint of the weights that step starts from).
    Returns ``(losses, wall_s)``: every step's loss, and the loop's wall time in seconds.
    """
    start = time.perf_counter()
    losses = []
    for step in (bar := tqdm(range(steps), desc=desc)):
        if before_step is not None:
            before_step(step)
        loss = loss_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
        if step % report_every == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return losses, time.perf_counter() - start
