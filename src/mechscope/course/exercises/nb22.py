"""Exercises of notebook 22 (the greater-than circuit): the probability difference, the
upper-triangular score of a logit-lens heatmap, and a circuit's faithfulness.

Hanna, Liu & Variengien (2023), "How does GPT-2 compute greater-than?".
"""

from __future__ import annotations

import torch

from . import exercise

NB = "22_greater_than"


def _pd_cases():
    gen = torch.Generator().manual_seed(0)
    probs = torch.rand(6, 100, generator=gen)
    probs = 0.8 * probs / probs.sum(-1, keepdim=True)  # 0.2 of the mass on non-year tokens
    peaked = torch.zeros(3, 100)
    peaked[0, 40], peaked[1, 41], peaked[2, 39] = 0.9, 0.9, 0.9  # all on one year near yy = 40
    return {
        "6 prompts, 80% of the mass on years": (probs, torch.tensor([2, 10, 32, 50, 77, 98])),
        "the mass on yy itself, yy + 1, yy - 1": (peaked, torch.tensor([40, 40, 40])),
    }


def _later(probs, yy):
    return torch.arange(probs.shape[-1])[None] > yy[:, None]


@exercise(
    "22.prob_diff",
    notebook=NB,
    title="The probability difference (Hanna et al.)",
    difficulty=1,
    minutes=5,
    cases=_pd_cases,
    mistakes=[
        (
            "yy itself counts as later (>= instead of >): the year yy is not greater than yy",
            lambda p, yy: (p * (_later(p, yy - 1))).sum(-1) - (p * ~_later(p, yy - 1)).sum(-1),
        ),
        (
            "only the later years' mass: subtract the earlier years'",
            lambda p, yy: (p * _later(p, yy)).sum(-1),
        ),
        (
            "renormalised over the years: the paper keeps the softmax over the whole vocabulary",
            lambda p, yy: ((p * _later(p, yy)).sum(-1) - (p * ~_later(p, yy)).sum(-1)) / p.sum(-1),
        ),
    ],  # fmt: skip
)
def prob_diff(probs, yy) -> torch.Tensor:
    """``probs [batch, 100]`` (years 00..99), ``yy [batch]`` -> ``[batch]``:
    ``sum_{y > yy} p(y) - sum_{y <= yy} p(y)``."""
    later = torch.arange(probs.shape[-1])[None] > yy[:, None]
    return (probs * later).sum(-1) - (probs * ~later).sum(-1)


def _tri_cases():
    gen = torch.Generator().manual_seed(1)
    return {
        "5 rows of random logits": (torch.randn(5, 100, generator=gen), torch.tensor([3, 20, 50, 71, 97])),
        "a perfect step at yy": ((torch.arange(100)[None] > torch.tensor([[10], [60]])).float(),
                                 torch.tensor([10, 60])),
    }  # fmt: skip


def _tri(x, yy, later):
    return (x * later).sum(-1) / later.sum(-1) - (x * ~later).sum(-1) / (~later).sum(-1)


@exercise(
    "22.triangle_score",
    notebook=NB,
    title="How upper-triangular is a [yy, year] heatmap?",
    difficulty=2,
    minutes=8,
    cases=_tri_cases,
    mistakes=[
        (
            "sums instead of means: the two sides have different numbers of years",
            lambda x, yy: (x * _later(x, yy)).sum(-1) - (x * ~_later(x, yy)).sum(-1),
        ),
        (
            "the sign is flipped: later years minus earlier ones",
            lambda x, yy: -_tri(x, yy, _later(x, yy)),
        ),
        ("yy counted with the later years (>=)", lambda x, yy: _tri(x, yy, _later(x, yy - 1))),
    ],  # fmt: skip
)
def triangle_score(values, yy) -> torch.Tensor:
    """``values [row, 100]`` (e.g. a component's logits on the years 00..99 for prompts with
    year ``yy [row]``) -> ``[row]``: mean over the years after ``yy`` minus mean over the
    years up to ``yy``. Positive = the upper-triangular pattern of Hanna et al.'s Fig. 4."""
    later = torch.arange(values.shape[-1])[None] > yy[:, None]
    mean_later = (values * later).sum(-1) / later.sum(-1)
    mean_earlier = (values * ~later).sum(-1) / (~later).sum(-1)
    return mean_later - mean_earlier


def _faith_cases():
    return {
        "a faithful circuit": (torch.tensor(0.80), torch.tensor(0.12), torch.tensor(0.95)),
        "a circuit worse than nothing": (torch.tensor(0.05), torch.tensor(0.12), torch.tensor(0.95)),
        "a negative baseline": (torch.tensor(0.30), torch.tensor(-0.20), torch.tensor(0.60)),
    }  # fmt: skip


@exercise(
    "22.faithfulness",
    notebook=NB,
    title="Faithfulness: the share of the behaviour a circuit keeps",
    difficulty=1,
    minutes=4,
    cases=_faith_cases,
    mistakes=[
        ("not measured from the all-ablated baseline: kept / full", lambda k, e, f: k / f),
        ("that is the share lost, 1 - faithfulness", lambda k, e, f: (f - k) / (f - e)),
        (
            "the denominator is the circuit's own gap: divide by full - empty",
            lambda k, e, f: (k - e) / (f - k),
        ),
    ],  # fmt: skip
)
def faithfulness(kept, empty, full) -> torch.Tensor:
    """Metric with only the circuit kept, with nothing kept, and of the whole model ->
    ``(kept - empty) / (full - empty)``: 1 = the circuit does all of it, 0 = none."""
    return (kept - empty) / (full - empty)


def _succ_cases():
    gen = torch.Generator().manual_seed(2)
    planted = torch.randn(12, 12, generator=gen)
    planted[torch.arange(9), torch.arange(1, 10)] += 4.0  # rows 0..8 map t -> t + 1
    copying = torch.randn(8, 8, generator=gen) + 4.0 * torch.eye(8)
    rows = torch.arange(11)
    return {
        "a 12-token table, successor planted on 9 of 11 rows": (planted, rows, rows + 1),
        "a copying head (diagonal)": (copying, torch.arange(7), torch.arange(1, 8)),
    }


@exercise(
    "22.successor_fraction",
    notebook=NB,
    title="The successor test of Gould et al. on a head's OV circuit",
    difficulty=2,
    minutes=6,
    cases=_succ_cases,
    mistakes=[
        (
            "that is the copying test: compare each row's top output with its successor "
            "(targets), not with the token itself",
            lambda t, rows, targets: (t[rows].argmax(-1) == rows).float().mean(),
        ),
        (
            "the table is transposed: row = the token attended to, column = the output token",
            lambda t, rows, targets: (t.T[rows].argmax(-1) == targets).float().mean(),
        ),
        (
            "a count, not a share: take the mean over the rows",
            lambda t, rows, targets: (t[rows].argmax(-1) == targets).float().sum(),
        ),
    ],  # fmt: skip
)
def successor_fraction(table, rows, targets) -> torch.Tensor:
    """``table [d_vocab, d_vocab]`` (a head's full OV circuit ``W_E W_V W_O W_U``: row = the
    token attended to, column = the output logit), ``rows [n]`` token ids, ``targets [n]`` their
    successors -> the share of ``rows`` whose top-1 output token is its successor."""
    return (table[rows].argmax(-1) == targets).float().mean()
