"""Exercises of notebook 14 (real code): copying, brackets and head tables on ``stdlib-lm``.

Olsson et al. (2022), "In-context Learning and Induction Heads"; Bereska & Gavves (2024), §7.
"""

from __future__ import annotations

from functools import cache

import torch

from . import exercise

NB = "14_real_code"

SNIPPET = (
    "def parse_header(line):\n    key, value = line.split(':')\n    return key\n\n"
    "result = parse_header(text)\n"
)


@cache
def _snippet_tokens() -> tuple[torch.Tensor, tuple[str, ...]]:
    """``stdlib-lm``'s tokens ``[1, pos]`` and token texts of :data:`SNIPPET`."""
    import mechscope

    model = mechscope.load("stdlib-lm")
    tokens = model.to_tokens(SNIPPET)
    texts = tuple(model.tokenizer.token_text(int(i)) for i in tokens[0])
    return tokens, texts


def _bigram_cases():
    gen = torch.Generator().manual_seed(0)
    tokens, _ = _snippet_tokens()
    return {
        "random tokens [3, 24] from 4 ids": (torch.randint(0, 4, (3, 24), generator=gen),),
        "stdlib-lm tokens of a snippet where parse_header repeats": (tokens,),
    }


@exercise(
    "14.repeated_bigram_mask",
    notebook=NB,
    title="Where copying could help: repeated bigrams",
    difficulty=2,
    minutes=10,
    cases=_bigram_cases,
    mistakes=[
        (
            "marked repeated tokens, not repeated (previous, current) pairs",
            lambda t: torch.stack(
                [
                    torch.tensor([int((row[:i] == row[i]).any()) for i in range(len(row))])
                    for row in t
                ]
            ),
        ),
        (
            "counted the pair at this very position as 'earlier' (every position after the "
            "first comes out True)",
            lambda t: torch.cat(
                [
                    torch.zeros(t.shape[0], 1, dtype=torch.long),
                    torch.ones(t.shape[0], t.shape[1] - 1, dtype=torch.long),
                ],
                1,
            ),
        ),
    ],
)
def repeated_bigram_mask(tokens: torch.Tensor) -> torch.Tensor:
    """``tokens [batch, pos]`` -> long ``[batch, pos]`` of 0/1: 1 at position ``i >= 1`` when
    the pair ``(tokens[i-1], tokens[i])`` already occurred at some earlier ``(j-1, j)``,
    ``j < i``. (0/1 integers, not bools: the check compares integer tables.)"""
    out = torch.zeros(tokens.shape, dtype=torch.long)
    for b, row in enumerate(tokens.tolist()):
        seen: set[tuple[int, int]] = set()
        for i in range(1, len(row)):
            pair = (row[i - 1], row[i])
            out[b, i] = int(pair in seen)
            seen.add(pair)
    return out


def _depth_cases():
    _, texts = _snippet_tokens()
    return {
        "hand-made tokens with all three bracket kinds": (
            [
                "<bos>",
                "f",
                "(",
                "a",
                "[",
                "0",
                "],",
                " {",
                "'k",
                "':",
                " g",
                "((",
                "x",
                "))}",
                ")",
                "\n",
            ],
        ),
        "stdlib-lm token texts of a snippet": (list(texts),),
    }


def _depth(tokens, opens="([{", closes=")]}"):
    d, out = 0, []
    for t in tokens:
        d += sum(t.count(c) for c in opens) - sum(t.count(c) for c in closes)
        out.append(d)
    return torch.tensor(out)


@exercise(
    "14.bracket_depth",
    notebook=NB,
    title="Bracket depth from token texts",
    difficulty=1,
    minutes=8,
    cases=_depth_cases,
    mistakes=[
        (
            "the depth before each token, not after it",
            lambda ts: torch.cat([torch.zeros(1, dtype=torch.long), _depth(ts)[:-1]]),
        ),
        ("counted round brackets only", lambda ts: _depth(ts, "(", ")")),
        (
            "counted at most one bracket per token (a token like '((' or '))}' holds several)",
            lambda ts: torch.tensor(
                torch.tensor(
                    [int(any(c in t for c in "([{")) - int(any(c in t for c in ")]}")) for t in ts]
                )
                .cumsum(0)
                .tolist()
            ),
        ),
    ],
)
def bracket_depth(str_tokens: list[str]) -> torch.Tensor:
    """``str_tokens`` (``pos`` token texts) -> long ``[pos]``: the number of open brackets
    ``([{`` not yet closed by ``)]}`` after each token (every bracket character counts)."""
    return _depth(str_tokens)


def _top_cases():
    gen = torch.Generator().manual_seed(3)
    return {
        "random scores [4, 6], k=3": (torch.rand(4, 6, generator=gen), 3),
        "random scores [2, 8], k=5": (torch.rand(2, 8, generator=gen), 5),
    }


@exercise(
    "14.top_heads",
    notebook=NB,
    title="The k best heads of a [layer, head] table",
    difficulty=1,
    minutes=5,
    cases=_top_cases,
    mistakes=[
        (
            "layer and head swapped (unravel the flat index with the number of heads)",
            lambda s, k: [
                (int(i) % s.shape[1], int(i) // s.shape[1]) for i in s.flatten().topk(k).indices
            ],
        ),
        (
            "the k smallest entries, not the k largest",
            lambda s, k: [
                (int(i) // s.shape[1], int(i) % s.shape[1])
                for i in s.flatten().topk(k, largest=False).indices
            ],
        ),
    ],
)
def top_heads(scores: torch.Tensor, k: int) -> list[tuple[int, int]]:
    """``scores [layer, head]``, ``k`` -> the ``(layer, head)`` of the ``k`` largest entries,
    largest first."""
    flat = scores.flatten().topk(k).indices
    return [(int(i) // scores.shape[1], int(i) % scores.shape[1]) for i in flat]


def _pr_cases():
    gen = torch.Generator().manual_seed(5)
    fired = torch.rand(40, 6, generator=gen) < 0.3
    fired[:, 5] = False  # a feature that never fires: its precision is 0, not NaN
    mask = torch.rand(40, generator=gen) < 0.4
    return {
        "random firing [40, 6] (one feature never fires), random rule [40]": (fired, mask),
        "a perfect detector, its complement and a constant": (
            torch.stack([mask, ~mask, torch.ones(40, dtype=torch.bool)], 1),
            mask,
        ),
    }


def _pr(fired, mask):
    f, y = fired.float(), mask.float()
    tp = y @ f
    return tp / f.sum(0).clamp(min=1), tp / y.sum().clamp(min=1)


@exercise(
    "14.precision_recall",
    notebook=NB,
    title="Precision and recall of every feature for a rule",
    difficulty=1,
    minutes=8,
    cases=_pr_cases,
    mistakes=[
        (
            "precision and recall swapped (precision divides by how often the FEATURE fires)",
            lambda fired, mask: _pr(fired, mask)[::-1],
        ),
        (
            "a feature that never fires gives NaN (0/0): clamp the denominator to at least 1",
            lambda fired, mask: (
                (mask.float() @ fired.float()) / fired.float().sum(0),
                _pr(fired, mask)[1],
            ),
        ),
        (
            "every position counted as the feature firing (use the fired table, not all ones)",
            lambda fired, mask: _pr(torch.ones_like(fired), mask),
        ),
    ],
)
def precision_recall(fired: torch.Tensor, mask: torch.Tensor) -> tuple:
    """``fired [pos, feature]`` bool (feature active) and ``mask [pos]`` bool (the rule holds)
    -> ``(precision [feature], recall [feature])`` floats: precision = P(rule | feature
    fires), 0 for a feature that never fires; recall = P(feature fires | rule)."""
    return _pr(fired, mask)
