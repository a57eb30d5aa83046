"""Hierarchical equality: a task with a known high-level causal model, for causal abstraction.

Geiger, Wu, Potts, Icard & Goodman (2023), "Finding Alignments Between Interpretable Causal
Variables and Distributed Neural Representations" (DAS), use hierarchical equality (after
Premack 1983) as their first test bed. The input is four objects ``(a, b, c, d)``; the output
says whether the two pairs have the same relation::

    V1  = (a == b)          intermediate variable 1
    V2  = (c == d)          intermediate variable 2
    out = (V1 == V2)        "true" or "false"

That little program is the *high-level causal model*. Causal abstraction asks whether the
network runs it: is there a place in the network that, swapped in from another input
(an *interchange intervention*), changes the output exactly as setting V1 (or V2) to its
value on that other input changes the program's output?

Here objects are words (:data:`OBJECTS`), a prompt is ``"<bos> a b c d"`` and the answer is
the next word, ``true`` or ``false``. Inputs are sampled with ``P(a == b) = P(c == d) = 1/2``
so V1, V2 and the output are all balanced. One in five object quadruples is held out
(:func:`is_heldout`): the zoo model never trains on them, and DAS is evaluated on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..hooks import HookFn, HookPoint, installed_hooks, name_hook_points

# 16 object words (one token each) and the two answer words.
OBJECTS: list[str] = [
    "circle", "square", "star", "heart", "moon", "cloud", "arrow", "ring",
    "cross", "drop", "leaf", "bell", "key", "flag", "cube", "wave",
]  # fmt: skip
ANSWERS: list[str] = ["false", "true"]  # index = the output's truth value
VOCAB: list[str] = OBJECTS + ANSWERS
VARIABLES = ("V1", "V2")

__all__ = [
    "ANSWERS",
    "OBJECTS",
    "VARIABLES",
    "VOCAB",
    "CounterfactualPairs",
    "PlantedEqualityNet",
    "answer_ids",
    "causal_model",
    "counterfactual_pairs",
    "is_heldout",
    "prompts",
    "sample_inputs",
    "to_tokens",
]


def is_heldout(x: torch.Tensor) -> torch.Tensor:
    """Which quadruples belong to the held-out split: ``[n, 4]`` object indices -> ``[n]`` bool.

    A fixed random table over all ``16**4`` quadruples (seed 2023, probability 1/5), so the
    split carries no pattern a model could pick up, and every object word and every kind of
    input (a == b or not, c == d or not) is in both splits.
    """
    x = _check_inputs(x)
    if x.numel() and (x.min() < 0 or x.max() >= len(OBJECTS)):
        raise ValueError(
            f"Object indices must be in [0, {len(OBJECTS)}), got range "
            f"[{int(x.min())}, {int(x.max())}]."
        )
    return _heldout_table()[x[:, 0], x[:, 1], x[:, 2], x[:, 3]]


def _heldout_table() -> torch.Tensor:
    global _HELDOUT
    if _HELDOUT is None:
        n = len(OBJECTS)
        _HELDOUT = torch.rand((n,) * 4, generator=torch.Generator().manual_seed(2023)) < 0.2
    return _HELDOUT


_HELDOUT: torch.Tensor | None = None


def sample_inputs(
    n: int, split: str = "train", seed: int = 0, n_objects: int = len(OBJECTS)
) -> torch.Tensor:
    """``n`` quadruples ``[n, 4]`` of object indices from ``split`` ("train" or "heldout").

    ``a == b`` with probability 1/2 (else ``b`` is another object), the same for ``c, d``,
    independently: V1, V2 and the output are balanced. Seeded, no global RNG touched.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split={split!r}; expected 'train' or 'heldout'.")
    if not 2 <= n_objects <= len(OBJECTS):
        raise ValueError(f"n_objects={n_objects}; expected 2 <= n_objects <= {len(OBJECTS)}.")
    gen = torch.Generator().manual_seed(seed)
    out, have = [], 0
    while have < n:
        m = 2 * (n - have) + 64  # about 4 in 5 survive the split filter
        first = torch.randint(n_objects, (m, 2), generator=gen)  # a, c
        # The second of each pair: the same object, or a different one uniformly.
        shift = torch.randint(1, n_objects, (m, 2), generator=gen)
        same = torch.rand(m, 2, generator=gen) < 0.5
        second = torch.where(same, first, (first + shift) % n_objects)
        x = torch.stack([first[:, 0], second[:, 0], first[:, 1], second[:, 1]], dim=1)
        keep = is_heldout(x) == (split == "heldout")
        out.append(x[keep])
        have += int(keep.sum())
    return torch.cat(out)[:n]


def causal_model(x: torch.Tensor, **interventions: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run the high-level causal model on ``[n, 4]`` inputs; returns ``{"V1", "V2", "out"}``.

    Each value is ``[n]`` bool. Keyword arguments intervene on an intermediate variable:
    ``causal_model(x, V1=v)`` sets ``V1`` to ``v`` (``[n]`` bool) and recomputes ``out``.
    """
    x = _check_inputs(x)
    unknown = sorted(set(interventions) - set(VARIABLES))
    if unknown:
        raise ValueError(
            f"Unknown variables {unknown}; the causal model's intermediate variables are "
            f"{list(VARIABLES)}."
        )
    v = {"V1": x[:, 0] == x[:, 1], "V2": x[:, 2] == x[:, 3]}
    for name, value in interventions.items():
        value = torch.as_tensor(value, dtype=torch.bool)
        if value.shape != v[name].shape:
            raise ValueError(
                f"Intervention {name} has shape {list(value.shape)}, expected {list(v[name].shape)}"
                " (one truth value per input)."
            )
        v[name] = value
    return {**v, "out": v["V1"] == v["V2"]}


@dataclass(frozen=True)
class CounterfactualPairs:
    """Base and source inputs (``[n, 4]`` object indices) and what the causal model says.

    ``label[i]`` is the causal model's output on ``base[i]`` with ``variable`` set to its value
    on ``source[i]`` (the interchange intervention's expected answer, ``[n]`` long, 0 = false,
    1 = true); ``base_label`` is the output without intervention.
    """

    base: torch.Tensor
    source: torch.Tensor
    label: torch.Tensor
    base_label: torch.Tensor
    variable: str

    @property
    def changes(self) -> torch.Tensor:
        """``[n]`` bool: pairs where the intervention changes the causal model's output."""
        return self.label != self.base_label


def counterfactual_pairs(
    n: int, variable: str, split: str = "train", seed: int = 0
) -> CounterfactualPairs:
    """``n`` (base, source) pairs from ``split`` and the counterfactual label for ``variable``.

    Base and source are independent draws, so the variable differs between them (and the
    intervention flips the output) in about half of the pairs.
    """
    if variable not in VARIABLES:
        raise ValueError(f"variable={variable!r}; expected one of {list(VARIABLES)}.")
    base = sample_inputs(n, split, seed=2 * seed)
    source = sample_inputs(n, split, seed=2 * seed + 1)
    label = causal_model(base, **{variable: causal_model(source)[variable]})["out"]
    return CounterfactualPairs(
        base, source, label.long(), causal_model(base)["out"].long(), variable
    )


def prompts(x: torch.Tensor) -> list[str]:
    """``[n, 4]`` object indices -> the prompts ``"a b c d"`` (words)."""
    return [" ".join(OBJECTS[i] for i in row) for row in _check_inputs(x).tolist()]


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``[n, 4]`` object indices -> ``[n, 5]`` token ids ``<bos> a b c d`` for a model whose
    tokenizer is ``WordTokenizer(VOCAB)`` (object ``i`` is token ``i + 1``; id 0 is BOS)."""
    x = _check_inputs(x)
    return torch.cat([torch.zeros(len(x), 1, dtype=torch.long), x + 1], dim=1)


def answer_ids() -> list[int]:
    """Token ids of ``false`` and ``true`` under ``WordTokenizer(VOCAB)``."""
    return [1 + VOCAB.index(a) for a in ANSWERS]


def _check_inputs(x) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.dim() != 2 or x.shape[1] != 4 or x.dtype.is_floating_point:
        raise ValueError(
            f"Expected [n, 4] integer object indices (a, b, c, d), got shape {list(x.shape)} "
            f"and dtype {x.dtype}."
        )
    return x.long()


class PlantedEqualityNet(nn.Module):
    """A hand-built (untrained) network for hierarchical equality with V1 and V2 planted in
    known random subspaces of its hidden layer: the ground truth DAS must recover.

    Input ``[n, 4]`` object indices; output logits ``[n, 2]`` (false, true). The hidden layer
    (hook point ``hook_hidden``, ``[n, d]``) is ``B1 c1 + B2 c2 + N z``: ``B1``, ``B2``
    (``[d, k]``) and ``N`` (``[d, d - 2k]``) are orthonormal, mutually orthogonal blocks of a
    random rotation; ``z`` is input-dependent noise the output never reads. ``c1`` (``[k]``)
    is ``V1`` written ``k`` times, ``c1_j = +-m_j(a, b)``: sign + when ``V1``, magnitude
    ``m_j`` random per object pair and coordinate (log-uniform in about [0.2, 4.5]). The output
    lets each coordinate vote, ``s1 = mean_j tanh(4 (B1^T h)_j)``, the same for ``V2`` with
    ``(c, d)``, and says true when the two agree (logit difference ``8 s1 s2``).

    Because the magnitudes differ between coordinates and inputs, swapping a single direction
    (or any part of ``span(B1)``) leaves some of the base's votes in place: only a swap of the
    whole ``k``-dim ``span(B1)``, and nothing of ``span(B2)``, sets V1 for every input.
    """

    def __init__(self, d: int = 16, k: int = 3, seed: int = 0) -> None:
        super().__init__()
        if not (1 <= k and 2 * k < d):
            raise ValueError(f"PlantedEqualityNet(d={d}, k={k}): expected 1 <= k and 2k < d.")
        gen = torch.Generator().manual_seed(seed)
        n = len(OBJECTS)
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen))
        self.register_buffer("B1", q[:, :k].contiguous())
        self.register_buffer("B2", q[:, k : 2 * k].contiguous())
        self.register_buffer("N", q[:, 2 * k :].contiguous())
        # Magnitudes per (first, second) object of a pair and per coordinate.
        self.register_buffer("M", torch.exp(4 * torch.rand(2, n, n, k, generator=gen) - 2))
        self.register_buffer("Z", torch.randn(4, n, d - 2 * k, generator=gen))
        self.hook_hidden = HookPoint()
        self._hook_points = name_hook_points(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_inputs(x)
        v = causal_model(x)
        c1 = self.M[0, x[:, 0], x[:, 1]] * (2.0 * v["V1"].float() - 1)[:, None]
        c2 = self.M[1, x[:, 2], x[:, 3]] * (2.0 * v["V2"].float() - 1)[:, None]
        z = sum(self.Z[i, x[:, i]] for i in range(4))
        h = self.hook_hidden(c1 @ self.B1.T + c2 @ self.B2.T + z @ self.N.T)
        s1 = _soft_min(h @ self.B1)
        s2 = _soft_min(h @ self.B2)
        diff = 10 * torch.tanh(s1) * torch.tanh(s2)
        return torch.stack([-diff / 2, diff / 2], dim=-1)

    def basis(self, variable: str) -> torch.Tensor:
        """The planted subspace of ``variable`` ("V1" or "V2"): ``[d, k]`` orthonormal."""
        if variable not in VARIABLES:
            raise ValueError(f"variable={variable!r}; expected one of {list(VARIABLES)}.")
        return (self.B1 if variable == "V1" else self.B2).clone()

    def hook_names(self) -> list[str]:
        """All hook point names (one: ``hook_hidden``)."""
        return list(self._hook_points)

    def hooks(self, fwd_hooks: Iterable[tuple[str | Callable[[str], bool], HookFn]]):
        """Context manager: ``with net.hooks([(name, fn), ...]): net(x)``."""
        return installed_hooks(self._hook_points, fwd_hooks)


def _soft_min(y: torch.Tensor, beta: float = 4.0) -> torch.Tensor:
    """Smooth minimum over the last axis, ``-log(mean(exp(-beta y))) / beta``: between the
    minimum and the mean, so positive when every coordinate is, negative when every one is
    negative."""
    return -(torch.logsumexp(-beta * y, dim=-1) - math.log(y.shape[-1])) / beta
