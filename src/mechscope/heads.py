"""Head scores: how much each attention head behaves like a known motif.

Definitions after Olsson et al. 2022, "In-context Learning and Induction Heads",
on sequences ``[BOS, r_1..r_T, r_1..r_T]`` of ``T`` distinct random tokens
repeated once:

- **previous-token score** of a head: its mean attention from each position
  ``i >= 2`` to position ``i - 1`` (over all such queries and the batch);
- **induction score**: its mean attention from each query in the second copy
  (``i = T + 1 .. 2T``) to the token *after* the previous occurrence of the same
  token, position ``i - T + 1``;
- **duplicate-token score**: its mean attention from each query in the second copy
  to the previous occurrence of the same token, position ``i - T``.

All lie in [0, 1]; 1 means the head puts all its attention on that position.
Scores work on any HookedModel that has ``blocks.{l}.attn.hook_pattern`` hook points.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .toy.induction import repeated_random_tokens

MIN_PERIOD = 2  # an induction score needs a token whose previous occurrence has a successor


def _patterns(model, tokens: torch.Tensor) -> torch.Tensor:
    """``[layer, batch, head, q, k]`` attention patterns of ``model`` on ``tokens``."""
    names = [n for n in model.hook_names() if n.endswith("attn.hook_pattern")]
    if not names:
        raise ValueError(
            f"{type(model).__name__} has no attention hook points (blocks.{{l}}.attn.hook_pattern): "
            "head scores need a model with attention layers."
        )
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names=names)
    return torch.stack([cache[name] for name in names])


def diagonal_score(
    pattern: torch.Tensor, offset: int, first_query: int, last_query: int
) -> torch.Tensor:
    """Mean attention from query ``i`` to key ``i - offset`` over ``first_query <= i <= last_query``.

    pattern: ``[..., q, k]``; returns ``[...]`` (the leading dims, e.g. ``[layer, batch, head]``).
    """
    q = torch.arange(first_query, last_query + 1, device=pattern.device)
    return pattern[..., q, q - offset].mean(-1)


def _probe_tokens(model, batch: int, period: int, seed: int) -> torch.Tensor:
    """``[BOS, r, r]`` probe sequences in ``model``'s vocabulary.

    Random tokens avoid the tokenizer's special ids (padding, BOS/EOS, ...), so a wrapped
    Hugging Face model does not read them as padding; position 0 holds the BOS id when the
    tokenizer has one (zoo models: id 0), else an ordinary token.
    """
    tok = getattr(model, "tokenizer", None)
    bos = getattr(tok, "bos_id", None)
    if bos is None:
        bos = getattr(tok, "bos_token_id", None)
    special = set(getattr(tok, "all_special_ids", None) or []) | (
        {bos} if bos is not None else set()
    )
    allowed = torch.tensor([i for i in range(model.cfg.d_vocab) if i not in special])
    if len(allowed) < period + 1:
        raise ValueError(
            f"period={period} needs {period + 1} ordinary tokens, the vocabulary has {len(allowed)}."
        )
    idx = repeated_random_tokens(batch, period, len(allowed) + 1, seed=seed)  # ids 1..len(allowed)
    tokens = allowed[(idx - 1).clamp(min=0)]
    tokens[:, 0] = bos if bos is not None else allowed[0]
    return tokens


@dataclass(frozen=True)
class HeadScoresResult:
    """Previous-token, induction and duplicate-token score of every head, each ``[layer, head]``.

    ``values`` stacks them ``[score, layer, head]`` in the order of ``labels``; ``period``,
    ``n_samples`` and ``seed`` say how they were measured.
    """

    previous_token: torch.Tensor
    induction: torch.Tensor
    duplicate_token: torch.Tensor
    period: int
    n_samples: int
    seed: int
    labels: tuple[str, ...] = ("previous_token", "induction", "duplicate_token")

    @property
    def values(self) -> torch.Tensor:
        """``[score, layer, head]``: the three tables stacked in the order of ``labels``."""
        return torch.stack([getattr(self, name) for name in self.labels])

    def to_widget(self, **kwargs):
        """A :class:`~mechscope.widgets.Heatmap`: one ``[layer, head]`` panel per score, on
        one [0, 1] scale; :func:`~mechscope.widgets.link_heads` links it to attention patterns."""
        from .widgets.heatmap import Heatmap

        return Heatmap.from_head_scores(self, **kwargs)


def head_scores(model, *, period: int = 20, n_samples: int = 32, seed: int = 0) -> HeadScoresResult:
    """Previous-token, induction and duplicate-token score of every head.

    Returns a :class:`HeadScoresResult` (each table ``[layer, head]``), measured on
    ``n_samples`` sequences ``[BOS, r_1..r_T, r_1..r_T]`` with ``T = period`` distinct random
    tokens (so the sequence length is ``1 + 2 * period``).
    """
    n_ctx = model.cfg.n_ctx
    if isinstance(period, bool) or not isinstance(period, int) or period < MIN_PERIOD:
        raise ValueError(
            f"period={period!r} is too short for an induction score: the minimum is "
            f"{MIN_PERIOD} (sequences of at least {1 + 2 * MIN_PERIOD} tokens)."
        )
    if 1 + 2 * period > n_ctx:
        raise ValueError(
            f"period={period} gives sequences of {1 + 2 * period} tokens, longer than the model's "
            f"context of {n_ctx}; use period <= {(n_ctx - 1) // 2}."
        )
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples={n_samples!r}; expected a positive number of sequences.")
    tokens = _probe_tokens(model, n_samples, period, seed)
    pat = _patterns(model, tokens)  # [layer, batch, head, q, k]
    second = {"first_query": period + 1, "last_query": 2 * period}
    prev = diagonal_score(pat, offset=1, first_query=2, last_query=2 * period)
    return HeadScoresResult(
        previous_token=prev.mean(1),
        induction=diagonal_score(pat, offset=period - 1, **second).mean(1),
        duplicate_token=diagonal_score(pat, offset=period, **second).mean(1),
        period=period,
        n_samples=n_samples,
        seed=seed,
    )


def best_head(scores: torch.Tensor) -> tuple[int, int, float]:
    """``(layer, head, score)`` of the highest entry of a ``[layer, head]`` score table."""
    flat = int(scores.argmax())
    layer, head = divmod(flat, scores.shape[1])
    return layer, head, float(scores[layer, head])
