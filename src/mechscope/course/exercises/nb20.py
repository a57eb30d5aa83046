"""Exercises of notebook 20 (the learning coefficient): the SGLD step, the LLC from a chain's
losses, and the exact answer for a quadratic loss.

Lau et al. (2023), "Quantifying degeneracy in singular models via the learning coefficient";
Welling & Teh (2011), SGLD; Watanabe (2013), WBIC (beta = 1 / log n).
"""

from __future__ import annotations

import math

import torch

from . import exercise

NB = "20_learning_coefficient"


def _step_cases():
    gen = torch.Generator().manual_seed(0)
    w_star = torch.randn(7, generator=gen)
    w = w_star + 0.1 * torch.randn(7, generator=gen)
    return {
        "7 weights near w*": (w, w_star, torch.randn(7, generator=gen),
                              torch.randn(7, generator=gen), 1e-3, 100.0, 50.0),
        "a [3, 2] matrix, no localisation": (torch.randn(3, 2, generator=gen), torch.zeros(3, 2),
                                             torch.randn(3, 2, generator=gen),
                                             torch.randn(3, 2, generator=gen), 0.04, 0.0, 3.0),
    }  # fmt: skip


@exercise(
    "20.sgld_step",
    notebook=NB,
    title="One SGLD step on the localised tempered posterior",
    difficulty=1,
    minutes=6,
    cases=_step_cases,
    mistakes=[
        (
            "the drift needs lr / 2, not lr (Langevin: half the step size times the gradient)",
            lambda w, ws, g, z, lr, gm, nb: w - lr * (nb * g + gm * (w - ws)) + math.sqrt(lr) * z,
        ),
        (
            "the noise has variance lr: scale it by sqrt(lr), not lr",
            lambda w, ws, g, z, lr, gm, nb: w - lr / 2 * (nb * g + gm * (w - ws)) + lr * z,
        ),
        (
            "the localisation pushes away from w*: it is gamma (w - w*), subtracted",
            lambda w, ws, g, z, lr, gm, nb: (
                w - lr / 2 * (nb * g + gm * (ws - w)) + math.sqrt(lr) * z
            ),
        ),
    ],  # fmt: skip
)
def sgld_step(w, w_star, grad, noise, lr, gamma, nbeta) -> torch.Tensor:
    """Weights ``w``, the solution ``w_star``, the minibatch loss gradient ``grad`` and a standard
    normal ``noise`` (all the same shape) -> the weights after one SGLD step."""
    return w - lr / 2 * (nbeta * grad + gamma * (w - w_star)) + math.sqrt(lr) * noise


def _llc_cases():
    gen = torch.Generator().manual_seed(1)
    trace = 1.0 + 0.05 * torch.rand(3, 40, generator=gen, dtype=torch.float64)
    trace[:, :5] = 1.0  # the start of each chain, still at w*
    return {"3 chains of 40 steps, 5 of burn-in": (trace, 1.0, 200.0, 5),
            "no burn-in": (trace[:2, 10:], 0.98, 30.0, 0)}  # fmt: skip


@exercise(
    "20.llc_from_losses",
    notebook=NB,
    title="The LLC from a chain's losses",
    difficulty=1,
    minutes=5,
    cases=_llc_cases,
    mistakes=[
        (
            "the burn-in steps were averaged in: drop values[:, :burn_in]",
            lambda v, l0, nb, b: nb * (v.mean(1) - l0),
        ),
        ("not scaled by nbeta = n beta", lambda v, l0, nb, b: v[:, b:].mean(1) - l0),
        (
            "divided by nbeta instead of multiplied",
            lambda v, l0, nb, b: (v[:, b:].mean(1) - l0) / nb,
        ),
    ],  # fmt: skip
)
def llc_from_losses(values, init_loss, nbeta, burn_in) -> torch.Tensor:
    """``values [chain, step]`` (the loss along each chain), ``init_loss = L_n(w*)`` -> ``[chain]``:
    ``nbeta * (mean loss after burn-in - init_loss)`` per chain."""
    return nbeta * (values[:, burn_in:].mean(1) - init_loss)


def _gauss_cases():
    return {
        "stiff and flat directions": (torch.tensor([10.0, 1.0, 0.1, 1e-3], dtype=torch.float64), 100.0, 10.0),
        "all stiff": (torch.tensor([5.0, 5.0, 2.0], dtype=torch.float64), 1000.0, 1.0),
    }  # fmt: skip


@exercise(
    "20.quadratic_llc",
    notebook=NB,
    title="The exact estimate for a quadratic loss, with localisation",
    difficulty=2,
    minutes=10,
    cases=_gauss_cases,
    mistakes=[
        (
            "the localisation was ignored: that is d / 2",
            lambda h, nb, g: torch.tensor(len(h) / 2.0),
        ),
        (
            "nbeta is missing from the curvature: nbeta h / (nbeta h + gamma)",
            lambda h, nb, g: 0.5 * (h / (h + g)).sum(),
        ),
        ("the factor 1/2 is missing", lambda h, nb, g: (nb * h / (nb * h + g)).sum()),
    ],  # fmt: skip
)
def quadratic_llc(h, nbeta, gamma) -> torch.Tensor:
    """Hessian eigenvalues ``h [d]`` of ``L(w) = L(w*) + 1/2 (w - w*)^T H (w - w*)`` -> the
    estimator's exact value ``nbeta E[L - L(w*)]`` under the localised posterior (a scalar)."""
    return 0.5 * (nbeta * h / (nbeta * h + gamma)).sum()
