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
        raise ValueError(
            f"period {period} needs at least {period + 1} tokens in the vocabulary, have {d_vocab}."
        )
    keys = torch.rand(n, d_vocab - 1, generator=gen)
    return keys.argsort(dim=1)[:, :period] + 1  # + 1 skips BOS (id 0)


def random_period_batch(
    batch: int,
    seq_len: int,
    d_vocab: int,
    min_period: int,
    max_period: int,
    gen: torch.Generator,
    p_prefix: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sequences ``[BOS, prefix, block, block, ...]`` of ``seq_len`` tokens.

    Per row: a block of ``period`` distinct random tokens (period uniform in
    ``[min_period, max_period]``) repeats to the end. With probability ``p_prefix``
    it starts after a random-length prefix of other random tokens, else right after
    BOS. The random start matters: if blocks always began at position 1, keys at late
    positions would never need to know their previous token, and the model learns a
    previous-token head that works only early in the context. Rows without a prefix
    keep the signal strong, so the circuit still forms in a few hundred steps. Returns ``(tokens [batch, seq_len], periods [batch], starts [batch])``,
    where ``starts`` is the position of the block's first token.
    """
    periods = torch.randint(min_period, max_period + 1, (batch,), generator=gen)
    # Prefix length uniform in [0, room], room leaving at least two copies of the block.
    room = seq_len - 1 - 2 * periods
    if (room < 0).any():
        raise ValueError(f"seq_len {seq_len} is too short for two copies of period {max_period}.")
    prefix = (torch.rand(batch, generator=gen) * (room + 1)).floor().long()
    prefix = torch.where(torch.rand(batch, generator=gen) < p_prefix, prefix, 0)
    tokens = torch.zeros(batch, seq_len, dtype=torch.long)  # column 0 stays BOS
    pos = torch.arange(seq_len - 1)
    for p in periods.unique().tolist():
        rows = (periods == p).nonzero().squeeze(1)
        keys = (
            torch.rand(len(rows), d_vocab - 1, generator=gen).argsort(dim=1) + 1
        )  # a permutation of non-BOS ids
        block, others = keys[:, :p], keys[:, p:]
        # Prefix tokens come from outside the block, so the block's first copy is its first occurrence.
        pick = torch.randint(0, others.shape[1], (len(rows), seq_len - 1), generator=gen)
        noise = others.gather(1, pick)
        rel = pos[None] - prefix[rows, None]  # position relative to the block's start
        body = torch.where(rel >= 0, block.gather(1, rel.clamp(min=0) % p), noise)
        tokens[rows, 1:] = body
    return tokens, periods, prefix + 1


def repeated_random_tokens(
    batch: int, period: int, d_vocab: int, seed: int = 0, copies: int = 2
) -> torch.Tensor:
    """``[BOS, r_1..r_T, r_1..r_T]`` with ``T = period`` distinct random tokens; ``[batch, 1 + copies*T]``.

    The standard probe sequence for induction and previous-token scores.
    """
    gen = torch.Generator().manual_seed(seed)
    block = _blocks(batch, period, d_vocab, gen)
    bos = torch.zeros(batch, 1, dtype=torch.long)
    return torch.cat([bos, block.repeat(1, copies)], dim=1)


def repeated_part_mask(seq_len: int, periods: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """``[batch, seq_len - 1]`` True where the next token is predictable by repetition.

    Position ``i`` predicts token ``i + 1``. Induction can do that once token ``i``
    has occurred before, i.e. from the second copy of the block on: ``i >= start + period``.
    (The first token of the second copy follows the block's last token, which is new.)
    """
    i = torch.arange(seq_len - 1)[None]
    return i >= (starts + periods)[:, None]
