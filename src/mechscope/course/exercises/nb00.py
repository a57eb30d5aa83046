"""Exercises of notebook 00 (quickstart): attention scores from cached patterns.

Olsson et al. (2022), "In-context Learning and Induction Heads"; Elhage et al. (2021).
"""

from __future__ import annotations

from functools import cache

import torch

from . import exercise

NB = "00_quickstart"


@cache
def _patterns(period: int = 6) -> tuple[torch.Tensor, int]:
    """induction-2l's attention patterns ``[layer, head, q, k]`` on ``[BOS, r, r]``."""
    import mechscope
    from mechscope.toy.induction import repeated_random_tokens

    model = mechscope.load("induction-2l")
    tokens = repeated_random_tokens(1, period, model.cfg.d_vocab, seed=0)
    _, cache_ = model.run_with_cache(tokens, names=lambda n: n.endswith("hook_pattern"))
    return torch.stack([cache_["pattern", la][0] for la in range(model.cfg.n_layers)]), period


def _random_pattern(seed: int, shape=(2, 3, 13, 13)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(shape, generator=gen)
    mask = torch.ones(shape[-2:], dtype=torch.bool).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


def _pattern_cases():
    zoo, period = _patterns()
    return {
        "random causal patterns [2, 3, 13, 13]": (_random_pattern(0),),
        "induction-2l on [BOS, 6 words, the same 6 words]": (zoo,),
    }


@exercise(
    "00.previous_token_score",
    notebook=NB,
    title="The previous-token score",
    difficulty=1,
    minutes=5,
    cases=_pattern_cases,
    mistakes=[
        (
            "the diagonal (attention to the token itself), not the one below it",
            lambda p: p.diagonal(0, -2, -1).mean(-1),
        ),
        (
            "the line above the diagonal (keys after the query: always 0 in a causal pattern)",
            lambda p: p.diagonal(1, -2, -1).mean(-1),
        ),
        ("averaged over keys instead of taking one key per query", lambda p: p.mean((-2, -1))),
    ],
)
def previous_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """``pattern [..., q, k]`` -> ``[...]``: mean attention from each query ``i >= 1`` to
    key ``i - 1``."""
    return pattern.diagonal(-1, -2, -1).mean(-1)


def _induction_cases():
    zoo, period = _patterns()
    return {
        "random causal patterns [2, 3, 13, 13], period 6": (_random_pattern(1), 6),
        "induction-2l on [BOS, 6 words, the same 6 words], period 6": (zoo, period),
    }


@exercise(
    "00.induction_score",
    notebook=NB,
    title="The induction score",
    difficulty=2,
    minutes=10,
    cases=_induction_cases,
    mistakes=[
        (
            "attention to the earlier copy of the same token (offset period), not the token "
            "after it (offset period - 1)",
            lambda p, period: p[
                ..., torch.arange(period + 1, 2 * period + 1), torch.arange(1, period + 1)
            ].mean(-1),
        ),
        (
            "included the first copy's queries too (they have no earlier copy to look at)",
            lambda p, period: p.diagonal(-(period - 1), -2, -1).mean(-1),
        ),
    ],
)
def induction_score(pattern: torch.Tensor, period: int) -> torch.Tensor:
    """``pattern [..., q, k]`` on ``[BOS, r_1..r_T, r_1..r_T]`` (``T = period``) ->
    ``[...]``: mean attention from each query in the second copy to the key right after the
    same token's first occurrence (offset ``period - 1``)."""
    q = torch.arange(period + 1, 2 * period + 1)
    return pattern[..., q, q - period + 1].mean(-1)


def _best_cases():
    gen = torch.Generator().manual_seed(2)
    return {
        "random scores [2, 4]": (torch.rand(2, 4, generator=gen),),
        "random scores [3, 8]": (torch.rand(3, 8, generator=gen),),
    }


@exercise(
    "00.best_head",
    notebook=NB,
    title="The best head in a score table",
    difficulty=1,
    minutes=5,
    cases=_best_cases,
    mistakes=[
        (
            "layer and head swapped (unravel with the number of heads, scores.shape[1])",
            lambda s: (int(s.argmax()) % s.shape[0], int(s.argmax()) // s.shape[0]),
        ),
        (
            "returned the flat index's quotient and remainder by the number of layers",
            lambda s: (int(s.argmax()) // s.shape[0], int(s.argmax()) % s.shape[0]),
        ),
    ],
)
def best_head(scores: torch.Tensor) -> tuple[int, int]:
    """``scores [layer, head]`` -> ``(layer, head)`` of the largest score."""
    flat = int(scores.argmax())
    return flat // scores.shape[1], flat % scores.shape[1]
