"""Data for induction: random tokens that repeat.

An induction head (Elhage et al. 2021; Olsson et al. 2022, "In-context Learning
and Induction Heads") completes ``[A][B] ... [A] -> [B]``: it looks back to the
token after the previous occurrence of the current token and copies it.

Training data repeats a random block of tokens with a *random period* per
sequence. With one fixed period a model can cheat: it attends a fixed number of
positions back and never needs a previous-token head (REVIEW.md).
"""

from __future__ import annotations

import torch

# Readable words as tokens, so widgets and notebooks show text, not ids.
WORDS = (
    "red blue green gold pink gray "
    "cat dog fox owl bee cow pig hen eel ant "
    "sun moon star rain snow wind fog sky "
    "cup pen box key hat map bag car "
    "run jump sing swim read cook draw fly "
    "one two three four five six seven nine"
).split()


def _blocks(n: int, period: int, d_vocab: int, gen: torch.Generator) -> torch.Tensor:
    """``[n, period]`` blocks of distinct non-BOS token ids (sampled without replacement)."""
    if period > d_vocab - 1:
        raise ValueError(f"period {period} needs at least {period + 1} tokens in the vocabulary, have {d_vocab}.")
    keys = torch.rand(n, d_vocab - 1, generator=gen)
    return keys.argsort(dim=1)[:, :period] + 1  # + 1 skips BOS (id 0)


def random_period_batch(
    batch: int, seq_len: int, d_vocab: int, min_period: int, max_period: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences ``[BOS, block, block, ...]`` cut to ``seq_len`` tokens, block length random per row.

    Returns ``(tokens [batch, seq_len], periods [batch])``. Within a block tokens are
    distinct, so the token after a previous occurrence is unambiguous.
    """
    periods = torch.randint(min_period, max_period + 1, (batch,), generator=gen)
    tokens = torch.zeros(batch, seq_len, dtype=torch.long)  # column 0 stays BOS
    pos = torch.arange(seq_len - 1)
    for p in periods.unique().tolist():
        rows = (periods == p).nonzero().squeeze(1)
        block = _blocks(len(rows), p, d_vocab, gen)
        tokens[rows, 1:] = block[:, pos % p]
    return tokens, periods


def repeated_random_tokens(batch: int, period: int, d_vocab: int, seed: int = 0, copies: int = 2) -> torch.Tensor:
    """``[BOS, r_1..r_T, r_1..r_T]`` with ``T = period`` distinct random tokens; ``[batch, 1 + copies*T]``.

    The standard probe sequence for induction and previous-token scores.
    """
    gen = torch.Generator().manual_seed(seed)
    block = _blocks(batch, period, d_vocab, gen)
    bos = torch.zeros(batch, 1, dtype=torch.long)
    return torch.cat([bos, block.repeat(1, copies)], dim=1)


def repeated_part_mask(seq_len: int, periods: torch.Tensor) -> torch.Tensor:
    """``[batch, seq_len - 1]`` True where the next token is predictable by repetition.

    Position ``i`` (1-based past BOS) predicts token ``i + 1``; that is determined by an
    earlier occurrence once ``i > period`` (token ``i`` has been seen one period ago).
    """
    i = torch.arange(seq_len - 1)[None]
    return i > periods[:, None]
