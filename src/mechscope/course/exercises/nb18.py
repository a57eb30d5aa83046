"""Exercises of notebook 18 (automated explanations): the simulation score, top-activating
examples, the rule an explainer picks, and predicting with a neuron-to-graph's patterns.

Bills et al. (2023), "Language models can explain neurons in language models"; Foote et al.
(2023), "Neuron to Graph: Interpreting Language Model Neurons at Scale".
"""

from __future__ import annotations

import torch

from . import exercise

NB = "18_automated_explanations"


def _corr_cases():
    gen = torch.Generator().manual_seed(0)
    real = torch.relu(torch.randn(200, generator=gen))
    return {
        "a noisy prediction": (real + 0.5 * torch.rand(200, generator=gen) + 2.0, real),
        "a prediction on another scale": (3.0 * real - 1.0, real),
        "a constant prediction (a rule that never fires)": (torch.zeros(200), real),
    }


def _cosine(pred, real):
    d = pred.norm() * real.norm()
    return float(pred @ real / d) if d > 0 else 0.0


@exercise(
    "18.pearson",
    notebook=NB,
    title="The simulation score: Pearson correlation, 0 for a constant",
    difficulty=1,
    minutes=5,
    cases=_corr_cases,
    mistakes=[
        ("not centred: that is the cosine, not the correlation", _cosine),
        (
            "a constant side gives nan here: return 0.0 when either side has no variance",
            lambda p, r: float(
                ((p - p.mean()) @ (r - r.mean())) / ((p - p.mean()).norm() * (r - r.mean()).norm())
            ),
        ),
        (
            "the covariance, not divided by the two standard deviations",
            lambda p, r: float(((p - p.mean()) * (r - r.mean())).mean()),
        ),
    ],  # fmt: skip
)
def pearson(pred, real) -> float:
    """``pred [n]``, ``real [n]`` -> Pearson r as a float; 0.0 when either is constant."""
    p, r = pred - pred.mean(), real - real.mean()
    d = p.norm() * r.norm()
    return float(p @ r / d) if d > 0 else 0.0


def _top_cases():
    gen = torch.Generator().manual_seed(1)
    acts = torch.relu(torch.randn(12, 30, generator=gen))
    acts[3, 7] = 9.0  # one spike: top by max, not by mean
    acts[5] += 0.8  # everywhere a bit: top by mean, not by max
    return {"12 texts of 30 tokens, k=4": (acts, 4)}


@exercise(
    "18.top_examples",
    notebook=NB,
    title="Top-activating examples",
    difficulty=1,
    minutes=4,
    cases=_top_cases,
    mistakes=[
        (
            "ranked by the mean over tokens, not the max",
            lambda a, k: a.mean(1).argsort(descending=True)[:k],
        ),
        ("the lowest first: sort descending", lambda a, k: a.amax(1).argsort()[:k]),
        (
            "positions, not texts: take the max over dim 1",
            lambda a, k: a.amax(0).argsort(descending=True)[:k],
        ),
    ],  # fmt: skip
)
def top_examples(acts, k) -> torch.Tensor:
    """``acts [n_texts, pos]`` -> the ``k`` text indices of highest max activation, highest
    first."""
    return acts.amax(1).argsort(descending=True)[:k]


def _rule_cases():
    gen = torch.Generator().manual_seed(2)
    n = 300
    string = (torch.rand(n, generator=gen) < 0.3).float()
    depth = torch.randint(0, 6, (n,), generator=gen).float()
    acts = 0.5 * string + 0.05 * depth + 0.3 * torch.rand(n, generator=gen)
    labels = {"in_string": string, "bracket_depth": depth, "after_def": torch.zeros(n)}
    flips = (torch.rand(n, generator=gen) < 0.2).float()
    neg = {"in_string": (string - flips).abs(), "in_comment": -string, "after_def": torch.zeros(n)}
    return {
        "a feature that reads strings, a depth of large range": (labels, acts),
        "the strongest correlation is negative": (neg, string + 0.3 * torch.rand(n, generator=gen)),
    }


def _corr(x, y):
    return pearson(x, y)


@exercise(
    "18.best_rule",
    notebook=NB,
    title="The rule explainer: the best-correlated rule",
    difficulty=2,
    minutes=6,
    cases=_rule_cases,
    mistakes=[
        (
            "ranked by |r|: a rule that anti-correlates does not explain the feature",
            lambda lab, a: max(lab, key=lambda r: abs(_corr(lab[r], a))),
        ),
        (
            "ranked by covariance, which favours rules of large range (depths)",
            lambda lab, a: max(
                lab, key=lambda r: float(((lab[r] - lab[r].mean()) * (a - a.mean())).mean())
            ),
        ),
        ("the worst rule: max, not min", lambda lab, a: min(lab, key=lambda r: _corr(lab[r], a))),
    ],  # fmt: skip
)
def best_rule(labels, acts) -> str:
    """``labels {rule: [n]}``, ``acts [n]`` -> the rule whose labels have the highest Pearson
    r with ``acts`` (constant labels score 0)."""
    return max(labels, key=lambda r: pearson(labels[r], acts))


def _n2g_cases():
    patterns = [(("x", None, "z"), 3.0), (("z",), 1.0), (("y", "z"), 2.0)]
    return {
        "a wildcard pattern, a bigram and a unigram that overlap": (
            patterns,
            ["x", "y", "z", "z", "w", "x", "q", "z"],
        ),
        "a pattern longer than the text so far": ([(("x", "z"), 2.0)], ["z", "x", "z", "x"]),
    }


def _match_all(patterns, tokens, literal=False, combine=max, wrap=False, anchor_end=True):
    out = []
    for t in range(len(tokens)):
        hits = [0.0]
        for pat, v in patterns:
            n = len(pat)
            first = t - n + 1 if anchor_end else t
            if (first < 0 and not wrap) or first + n > len(tokens):
                continue
            if all(
                (p is None and not literal) or p == tokens[first + i] for i, p in enumerate(pat)
            ):
                hits.append(v)
        out.append(float(combine(hits)))
    return out


@exercise(
    "18.n2g_predict",
    notebook=NB,
    title="Predicting with an N2G graph: patterns that end at the token",
    difficulty=2,
    minutes=8,
    cases=_n2g_cases,
    mistakes=[
        (
            "matched from the pattern's first token forward: a pattern ends at the activating "
            "token, so match the tokens *before* t",
            lambda pats, toks: _match_all(pats, toks, anchor_end=False),
        ),
        (
            "the wildcard (None) must match any token, not only a token equal to None",
            lambda pats, toks: _match_all(pats, toks, literal=True),
        ),
        (
            "the values of all matches summed: take the largest",
            lambda pats, toks: _match_all(pats, toks, combine=sum),
        ),
        (
            "a pattern longer than the text so far matched by wrapping round (negative "
            "indices): skip it",
            lambda pats, toks: _match_all(pats, toks, wrap=True),
        ),
    ],  # fmt: skip
)
def n2g_predict(patterns, tokens) -> list[float]:
    """``patterns [(tokens, value)]`` (each a tuple of token strings ending at the activating
    token, ``None`` a wildcard), ``tokens`` a list of str -> one float per token: the largest
    value of a pattern matching the text that ends there, 0.0 where none does."""
    out = []
    for t in range(len(tokens)):
        best = 0.0
        for pattern, value in patterns:
            first = t - len(pattern) + 1
            if first >= 0 and all(
                p is None or p == tokens[first + i] for i, p in enumerate(pattern)
            ):
                best = max(best, value)
        out.append(best)
    return out
