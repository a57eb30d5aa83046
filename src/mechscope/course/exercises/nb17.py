"""Exercises of notebook 17 (self-repair): LayerNorm scale, frozen-scale DLA, self-repair.

McGrath et al. (2023), "The Hydra Effect: Emergent Self-repair in Language Model
Computations"; Rushing & Nanda (2024), "Explorations of Self-Repair in Language Models".
"""

from __future__ import annotations

import torch

from . import exercise

NB = "17_self_repair"


def _scale_cases():
    gen = torch.Generator().manual_seed(0)
    return {
        "a batch of residual streams with a large mean": (torch.randn(5, 16, generator=gen) + 3.0,),
        "[batch, pos, d_model]": (torch.randn(2, 3, 8, generator=gen) * 4,),
    }


@exercise(
    "17.ln_scale",
    notebook=NB,
    title="The final LayerNorm's scale",
    difficulty=1,
    minutes=5,
    cases=_scale_cases,
    mistakes=[
        (
            "the mean was not subtracted first (LayerNorm centres, then scales)",
            lambda r: (r.pow(2).mean(-1) + 1e-5).sqrt(),
        ),
        (
            "the unbiased variance (divide by d_model, not d_model - 1)",
            lambda r: (r.var(-1, unbiased=True) + 1e-5).sqrt(),
        ),
        ("the square root is missing", lambda r: r.var(-1, unbiased=False) + 1e-5),
    ],  # fmt: skip
)
def ln_scale(resid) -> torch.Tensor:
    """``resid [..., d_model]`` -> ``[...]``: ``sqrt(mean((r - mean r)^2) + 1e-5)`` per row."""
    centred = resid - resid.mean(-1, keepdim=True)
    return (centred.pow(2).mean(-1) + 1e-5).sqrt()


def _dla_cases():
    gen = torch.Generator().manual_seed(1)
    return {
        "8 components, 6 prompts": (
            torch.randn(8, 6, generator=gen), torch.rand(6, generator=gen) + 0.5,
            torch.rand(6, generator=gen) + 0.5,
        ),
    }  # fmt: skip


@exercise(
    "17.frozen_dla",
    notebook=NB,
    title="Direct logit attribution with the clean run's LayerNorm scale",
    difficulty=2,
    minutes=8,
    cases=_dla_cases,
    mistakes=[
        (
            "the ratio is upside down: multiply by scale_ablated, divide by scale_clean",
            lambda v, sa, sc: v * sc / sa,
        ),
        (
            "not rescaled: the values are still divided by the ablated run's scale",
            lambda v, sa, sc: v.clone(),
        ),
        ("divided by the clean scale without undoing the ablated one", lambda v, sa, sc: v / sc),
    ],  # fmt: skip
)
def frozen_dla(values, scale_ablated, scale_clean) -> torch.Tensor:
    """``values [component, batch]`` divided by ``scale_ablated [batch]`` -> the same writes
    divided by ``scale_clean [batch]``."""
    return values * scale_ablated / scale_clean


def _repair_cases():
    gen = torch.Generator().manual_seed(2)
    clean = torch.randn(8, 10, generator=gen) + 1.0
    ablated = clean + 0.3 * torch.randn(8, 10, generator=gen)
    ablated[5] = 0.2 * torch.randn(10, generator=gen)  # the ablated head still writes a bit
    ld_clean = clean.sum(0) + 0.5
    ld_ablated = ld_clean - 1.1 + 0.2 * torch.randn(10, generator=gen)
    return {"a head whose ablated output is not zero (mean / resample)":
            (clean, ablated, ld_clean, ld_ablated, 5)}  # fmt: skip


def _repair(direct, total, repair):
    return torch.stack([direct, total, repair])


@exercise(
    "17.self_repair",
    notebook=NB,
    title="Direct effect, total effect and self-repair (McGrath et al.)",
    difficulty=1,
    minutes=6,
    cases=_repair_cases,
    mistakes=[
        (
            "self-repair has the wrong sign: it is direct minus total",
            lambda dc, da, lc, la, i: _repair(
                (dc[i] - da[i]).mean(), (lc - la).mean(), (lc - la).mean() - (dc[i] - da[i]).mean()
            ),
        ),
        (
            "the direct effect ignores what the ablated head still writes (clean minus ablated)",
            lambda dc, da, lc, la, i: _repair(
                dc[i].mean(), (lc - la).mean(), dc[i].mean() - (lc - la).mean()
            ),
        ),
        (
            "effects as rises, not drops: clean minus ablated",
            lambda dc, da, lc, la, i: _repair(
                (da[i] - dc[i]).mean(), (la - lc).mean(), (da[i] - dc[i]).mean() - (la - lc).mean()
            ),
        ),
    ],  # fmt: skip
)
def self_repair(dla_clean, dla_ablated, ld_clean, ld_ablated, index) -> torch.Tensor:
    """Per-component terms ``[component, batch]`` of the clean and the ablated run (both at
    the clean LayerNorm scale), the two logit differences ``[batch]`` and the ablated row
    -> ``[3]``: (direct effect, total effect, self-repair = direct - total), batch means."""
    direct = (dla_clean[index] - dla_ablated[index]).mean()
    total = (ld_clean - ld_ablated).mean()
    return torch.stack([direct, total, direct - total])
