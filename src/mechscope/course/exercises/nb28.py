"""Exercises of notebook 28 (multiple-choice heads): a head's direct logit attribution to the
correct letter, and its attention on the correct option against the others.

Lieberum et al. (2023), "Does Circuit Analysis Interpretability Scale? Evidence from Multiple
Choice Capabilities in Chinchilla".
"""

from __future__ import annotations

import torch

from . import exercise

NB = "28_multiple_choice"


def _dla_cases():
    gen = torch.Generator().manual_seed(0)
    w_u = torch.randn(8, 12, generator=gen)
    labels = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [1, 3, 5, 7]])
    return {
        "3 heads, 3 questions": (torch.randn(3, 3, 8, generator=gen), w_u, torch.tensor([2, 8, 1]), labels),
        "one head, the answer first": (torch.randn(1, 3, 8, generator=gen), w_u, labels[:, 0], labels),
    }  # fmt: skip


def _gather(out, w_u, ids):
    return torch.einsum("hbd,dbk->hbk", out, w_u[:, ids.reshape(ids.shape[0], -1)])


@exercise(
    "28.letter_dla",
    notebook=NB,
    title="Direct logit attribution to the correct letter",
    difficulty=2,
    minutes=8,
    cases=_dla_cases,
    mistakes=[
        (
            "the correct letter's raw logit: subtract the mean of the other three labels",
            lambda o, w, c, lab: _gather(o, w, c)[..., 0].mean(-1),
        ),
        (
            "the mean over all four labels includes the correct one: average the other three",
            lambda o, w, c, lab: (_gather(o, w, c)[..., 0] - _gather(o, w, lab).mean(-1)).mean(-1),
        ),
        (
            "the other labels were summed, not averaged",
            lambda o, w, c, lab: (
                _gather(o, w, c)[..., 0] - (_gather(o, w, lab).sum(-1) - _gather(o, w, c)[..., 0])
            ).mean(-1),
        ),
    ],  # fmt: skip
)
def letter_dla(head_out, w_u, correct, labels) -> torch.Tensor:
    """``head_out [head, batch, d_model]`` (each head's output at the last position, final
    LayerNorm applied), ``w_u [d_model, d_vocab]``, ``correct [batch]`` (id of the correct
    letter), ``labels [batch, 4]`` (ids of the four labels, the correct one among them)
    -> ``[head]``: the mean over the batch of ``head_out . (W_U[correct] - mean of W_U over
    the three other labels)``."""
    right = torch.einsum("hbd,db->hb", head_out, w_u[:, correct])
    every = torch.einsum("hbd,dbk->hbk", head_out, w_u[:, labels])  # [head, batch, 4]
    others = (every.sum(-1) - right) / (labels.shape[-1] - 1)
    return (right - others).mean(-1)


def _att_cases():
    gen = torch.Generator().manual_seed(1)
    pattern = torch.rand(4, 10, generator=gen)
    pattern = pattern / pattern.sum(-1, keepdim=True)
    return {
        "4 questions, labels at 2, 4, 6, 8": (pattern, torch.tensor([0, 3, 1, 2]), [2, 4, 6, 8]),
        "options at 3, 5, 7, 9": (pattern, torch.tensor([2, 2, 0, 1]), [3, 5, 7, 9]),
    }  # fmt: skip


@exercise(
    "28.option_attention",
    notebook=NB,
    title="Attention on the correct option vs the others",
    difficulty=1,
    minutes=5,
    cases=_att_cases,
    mistakes=[
        (
            "the answer's index was used as a key position: map it through positions",
            lambda p, a, pos: torch.stack(
                [p[torch.arange(len(a)), a], (p[:, pos].sum(-1) - p[torch.arange(len(a)), a]) / 3],
                -1,
            ),
        ),
        (
            "the others were summed, not averaged (mean of the three)",
            lambda p, a, pos: torch.stack(
                [
                    p[:, pos][torch.arange(len(a)), a],
                    p[:, pos].sum(-1) - p[:, pos][torch.arange(len(a)), a],
                ],
                -1,
            ),
        ),
        (
            "the 'others' mean includes the correct option",
            lambda p, a, pos: torch.stack(
                [p[:, pos][torch.arange(len(a)), a], p[:, pos].mean(-1)], -1
            ),
        ),
    ],  # fmt: skip
)
def option_attention(pattern, answer, positions) -> torch.Tensor:
    """``pattern [batch, key_pos]`` (one head's attention from the last position),
    ``answer [batch]`` (index 0..3 of the correct option), ``positions`` (the 4 key
    positions, one per option) -> ``[batch, 2]``: attention on the correct option's position
    and the mean attention on the three others."""
    att = pattern[:, positions]  # [batch, 4]
    right = att[torch.arange(len(answer)), answer]
    return torch.stack([right, (att.sum(-1) - right) / (att.shape[-1] - 1)], -1)


def _mover_cases():
    gen = torch.Generator().manual_seed(2)
    pattern = torch.rand(3, 2, 10, 10, generator=gen).tril()
    pattern = pattern / pattern.sum(-1, keepdim=True)  # causal rows that sum to 1
    return {
        "2 heads, options at 3, 5, 7, 9": (pattern, [3, 5, 7, 9], [2, 4, 6, 8]),
        "labels two places back": (pattern, [4, 6, 8], [2, 4, 6]),
    }


@exercise(
    "28.label_mover",
    notebook=NB,
    title="A label mover: attention from each option to its own label",
    difficulty=1,
    minutes=5,
    cases=_mover_cases,
    mistakes=[
        (
            "query and key swapped: the option's text is the query, its label the key",
            lambda p, q, k: p[:, :, k, q].diagonal(dim1=-2, dim2=-1).mean((0, -1)),
        ),
        (
            "every option to every label: take only each option's own label",
            lambda p, q, k: p[:, :, q][:, :, :, k].mean((0, 2, 3)),
        ),
        (
            "summed over the options instead of averaged",
            lambda p, q, k: p[:, :, q, k].sum(-1).mean(0),
        ),
    ],  # fmt: skip
)
def label_mover(pattern, option_pos, label_pos) -> torch.Tensor:
    """``pattern [batch, head, query_pos, key_pos]`` (one layer), ``option_pos`` and
    ``label_pos`` (paired lists: each option's text and its own label) -> ``[head]``: the mean
    over the batch and the options of the attention from an option's text to its label."""
    return pattern[:, :, option_pos, label_pos].mean((0, 2))
