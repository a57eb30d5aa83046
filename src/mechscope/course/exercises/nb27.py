"""Exercises of notebook 27 (entity-attribute binding): which attribute the model picks, patching
chosen positions from a counterfactual run, and Feng & Steinhardt's mean binding vector.

Feng & Steinhardt (2024), "How do language models bind entities in context?".
"""

from __future__ import annotations

import torch

from . import exercise

NB = "27_binding"


def _choice_cases():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 6, 30, generator=gen)
    ids = torch.tensor([[3, 7], [7, 3], [10, 11], [0, 29], [15, 4]])
    early = torch.zeros(2, 6, 30)
    early[0, 0, 3], early[0, -1, 7] = 9.0, 1.0  # first position says slot 0, last says slot 1
    early[1, 2, 8], early[1, -1, 8] = 9.0, 2.0
    return {
        "5 random contexts": (logits, ids),
        "the earlier positions disagree with the last": (early, torch.tensor([[3, 7], [8, 9]])),
    }


def _pair(logits, ids, pos):
    return logits[:, pos].gather(-1, ids)


@exercise(
    "27.slot_choice",
    notebook=NB,
    title="Which slot's attribute does the model pick?",
    difficulty=1,
    minutes=5,
    cases=_choice_cases,
    mistakes=[
        (
            "read at the first position: the answer is predicted at the last one (-1)",
            lambda lg, ids: (_pair(lg, ids, 0)[:, 1] > _pair(lg, ids, 0)[:, 0]).long(),
        ),
        (
            "the slots are swapped: 1 means the second attribute has the LARGER logit",
            lambda lg, ids: (_pair(lg, ids, -1)[:, 1] < _pair(lg, ids, -1)[:, 0]).long(),
        ),
        (
            "that is the winning token id; return its slot (0 or 1)",
            lambda lg, ids: ids.gather(-1, _pair(lg, ids, -1).argmax(-1, keepdim=True))[:, 0],
        ),
    ],  # fmt: skip
)
def slot_choice(logits, attr_ids) -> torch.Tensor:
    """``logits [batch, pos, d_vocab]``, ``attr_ids [batch, 2]`` (the first- and second-slot
    attribute) -> ``[batch]`` long: 1 where the second slot's attribute has the larger logit at
    the last position, else 0."""
    pair = logits[:, -1].gather(-1, attr_ids)
    return (pair[:, 1] > pair[:, 0]).long()


def _patch_cases():
    gen = torch.Generator().manual_seed(1)
    return {
        "two positions of six": (torch.randn(3, 6, 4, generator=gen),
                                 torch.randn(3, 6, 4, generator=gen), [2, 4]),
        "one position, counted from the end": (torch.randn(2, 5, 3, generator=gen),
                                               torch.randn(2, 5, 3, generator=gen), [-1]),
    }  # fmt: skip


def _patched(resid, source, pos):
    out = resid.clone()
    out[:, pos] = source[:, pos]
    return out


@exercise(
    "27.patch_positions",
    notebook=NB,
    title="Patch chosen positions from the counterfactual run",
    difficulty=1,
    minutes=5,
    cases=_patch_cases,
    mistakes=[
        ("every position was replaced: patch only those in pos", lambda r, s, pos: s.clone()),
        (
            "the other positions were patched: pos lists the ones to take from source",
            lambda r, s, pos: _patched(s, r, pos),
        ),
        ("only the first position in pos was patched", lambda r, s, pos: _patched(r, s, pos[:1])),
    ],  # fmt: skip
)
def patch_positions(resid, source, pos) -> torch.Tensor:
    """``resid``, ``source [batch, pos, d_model]``, ``pos`` (a list of positions) -> a new
    ``[batch, pos, d_model]`` tensor: ``resid`` with ``source``'s vectors at ``pos`` (``resid``
    itself unchanged)."""
    out = resid.clone()
    out[:, pos] = source[:, pos]
    return out


def _vector_cases():
    gen = torch.Generator().manual_seed(2)
    acts = torch.randn(8, 6, 5, generator=gen)
    return {"8 contexts, slots at 1 and 3": (acts, (1, 3)), "slots at 2 and 4": (acts, (2, 4))}


@exercise(
    "27.binding_vector",
    notebook=NB,
    title="Feng & Steinhardt's binding vector: slot 2 minus slot 1, on average",
    difficulty=1,
    minutes=5,
    cases=_vector_cases,
    mistakes=[
        (
            "the sign is flipped: second slot minus first",
            lambda a, pos: (a[:, pos[0]] - a[:, pos[1]]).mean(0),
        ),
        (
            "one context only: average the difference over the batch",
            lambda a, pos: a[0, pos[1]] - a[0, pos[0]],
        ),
        (
            "that is the slots' mean, not their difference",
            lambda a, pos: (a[:, pos[1]] + a[:, pos[0]]).mean(0) / 2,
        ),
    ],  # fmt: skip
)
def binding_vector(acts, pos) -> torch.Tensor:
    """``acts [batch, pos, d_model]`` (one site over many contexts), ``pos`` = (first slot's
    position, second slot's position) -> ``[d_model]``: the mean over the batch of
    ``acts[:, pos[1]] - acts[:, pos[0]]``. Contents vary at random across contexts, so what is
    left is what the slot itself adds (Feng & Steinhardt's binding ID difference)."""
    return (acts[:, pos[1]] - acts[:, pos[0]]).mean(0)
