"""Exercises of notebook 21 (ground truth): a select head by hand, ROC AUC over a circuit.

Lindner et al. (2023), "Tracr: Compiled Transformers as a Laboratory for Interpretability";
Gupta et al. (2024), "InterpBench: Semi-Synthetic Transformers for Evaluating Mechanistic
Interpretability Techniques".
"""

from __future__ import annotations

import torch

from . import exercise

NB = "21_ground_truth"


def _onehots(values, n):
    out = torch.zeros(len(values), n)
    for i, v in enumerate(values):
        if v is not None:
            out[i, v] = 1.0
    return out


def _pattern_cases():
    idx = _onehots([None, 0, 1, 2, 3, 4], 5)  # BOS, then positions 1..5 (index 0..4)
    prev = torch.zeros(5, 5)
    for q in range(5):
        if q >= 1:
            prev[q - 1, q] = 1.0  # key index == query index - 1
    toks = _onehots([None, 0, 1, 0, 2, 0], 3)
    return {
        "previous position (keys = queries = indices)": (idx, idx, prev, 8.0),
        "same token (keys = queries = tokens)": (toks, toks, torch.eye(3), 6.0),
    }


def _pattern(keys, queries, predicate, score, bos, causal=True):
    s = score * queries @ predicate.T @ keys.T
    s[:, 0] += bos
    if causal:
        n = s.shape[0]
        s = s.masked_fill(~torch.tril(torch.ones(n, n, dtype=torch.bool)), float("-inf"))
    return s.softmax(-1)


@exercise(
    "21.select_pattern",
    notebook=NB,
    title="A select head by hand: its attention pattern",
    difficulty=2,
    minutes=10,
    cases=_pattern_cases,
    mistakes=[
        (
            "no causal mask: a query must not see later keys",
            lambda k, q, p, s: _pattern(k, q, p, s, s / 2, causal=False),
        ),
        (
            "BOS at the full score: it should get score / 2, so it wins only when nothing is selected",
            lambda k, q, p, s: _pattern(k, q, p, s, s),
        ),
        (
            "predicate transposed: predicate[a, b] is key value a, query value b",
            lambda k, q, p, s: _pattern(k, q, p.T, s, s / 2),
        ),
        ("no BOS default", lambda k, q, p, s: _pattern(k, q, p, s, 0.0)),
    ],  # fmt: skip
)
def select_pattern(keys, queries, predicate, score) -> torch.Tensor:
    """``keys [pos, n_key]`` and ``queries [pos, n_query]`` one-hot (row 0 = BOS, all zero),
    ``predicate [n_key, n_query]`` (1 = selected), ``score`` -> pattern ``[pos, pos]``:
    softmax over causal keys of ``score * predicate`` plus ``score / 2`` on BOS (key 0)."""
    s = score * queries @ predicate.T @ keys.T  # [query_pos, key_pos]
    s[:, 0] += score / 2
    n = s.shape[0]
    s = s.masked_fill(~torch.tril(torch.ones(n, n, dtype=torch.bool)), float("-inf"))
    return s.softmax(-1)


def _auc_cases():
    gen = torch.Generator().manual_seed(0)
    ties = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.5, 0.0, 0.5, 0.2])
    labels = torch.tensor([True, False, False, True, True, False, False, False])
    return {
        "scores with ties (zero-effect heads)": (ties, labels),
        "random scores": (torch.rand(12, generator=gen), torch.arange(12) % 3 == 0),
    }


def _auc(scores, labels, tie):
    d = scores[labels][:, None] - scores[~labels][None, :]
    return ((d > 0).double() + tie * (d == 0).double()).mean()


@exercise(
    "21.roc_auc",
    notebook=NB,
    title="ROC AUC over a circuit's heads",
    difficulty=1,
    minutes=6,
    cases=_auc_cases,
    mistakes=[
        ("ties count 0: a tie is a coin flip, count it half", lambda s, y: _auc(s, y, 0.0)),
        ("ties count 1: a tie is a coin flip, count it half", lambda s, y: _auc(s, y, 1.0)),
        ("positives and negatives swapped", lambda s, y: _auc(s, ~y, 0.5)),
    ],  # fmt: skip
)
def roc_auc(scores, labels) -> torch.Tensor:
    """``scores [n]``, ``labels [n]`` bool -> the fraction of (positive, negative) pairs in
    which the positive scores higher, ties counting half."""
    d = scores[labels][:, None] - scores[~labels][None, :]
    return ((d > 0).double() + 0.5 * (d == 0).double()).mean()


def _width_cases():
    gen = torch.Generator().manual_seed(3)
    width = torch.randint(0, 8, (4, 7), generator=gen)
    jitter = 1 + 1e-6 * torch.randn(4, 7, generator=gen)  # float32 softmax is not exact
    return {
        "widths 0..7 with float32 rounding": ((1.0 / (width + 1)) * jitter,),
        "one position, weight just above 1/3": (torch.tensor([0.33333334]),),
    }


@exercise(
    "21.width_from_bos",
    notebook=NB,
    title="Selector width: the count from the weight on BOS",
    difficulty=1,
    minutes=5,
    cases=_width_cases,
    mistakes=[
        ("BOS counted as a match: subtract 1 from 1 / weight", lambda w: (1 / w).round().long()),
        ("truncated, not rounded: 1 / 0.33333334 - 1 is 1.9999999", lambda w: (1 / w - 1).long()),
    ],  # fmt: skip
)
def width_from_bos(bos_weight) -> torch.Tensor:
    """``bos_weight [...]`` = 1 / (width + 1) (up to float rounding) -> ``width [...]`` (long)."""
    return (1 / bos_weight - 1).round().long()
