"""Causal abstraction: interchange interventions and distributed alignment search (DAS).

A high-level causal model (a small program with intermediate variables, e.g. ``V1 = (a == b)``
in :mod:`mechscope.toy.equality`) is an *abstraction* of a network when interventions on the
program and on the network agree (Geiger, Lu, Icard & Potts 2021, "Causal Abstractions of
Neural Networks"). The test is the **interchange intervention**: run the network on a *base*
input, but at a *hook* point (at one position) put in the activation it had on a
*source* input. If that activation carries variable ``V``, the network's output must become the
program's output on the base input with ``V`` set to its value on the source. The fraction
of pairs where it does is the **interchange-intervention accuracy** (IIA).

A variable need not sit in whole neurons or whole vectors. **DAS** (Geiger, Wu, Potts, Icard
& Goodman 2023, "Finding Alignments Between Interpretable Causal Variables and Distributed
Neural Representations") learns an orthogonal change of basis ``R`` of the activation and swaps only
the first ``k`` rotated coordinates::

    h' = h_base + B B^T (h_source - h_base)        B = R[:, :k]  ([d, k], orthonormal columns)

``B`` is trained by gradient descent (the network frozen) so that the intervened network
predicts the program's counterfactual output. Only the first ``k`` columns of ``R`` enter the
intervention, so we learn them directly: a ``[k, d]`` matrix kept on the Stiefel manifold by
``torch.nn.utils.parametrizations.orthogonal`` (the low-rank rotation pyvene also uses).

Every function here leaves the model as it came: hooks removed in a ``finally``, parameters'
``requires_grad``, their ``.grad`` and every module's train/eval mode restored, even when a
call raises. The training loop and checks live in ``mechscope._das_train``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ._das_train import (
    check_answer_ids,
    check_basis,
    check_labels,
    check_model,
    check_pair,
    frozen,
    intervened_logits,
    readout,
    train_rotation,
)
from ._intervene import as_inputs, select
from .world import activations_at

__all__ = [
    "DASResult",
    "das",
    "interchange_accuracy",
    "interchange_intervention",
    "random_basis",
    "subspace_overlap",
]

# Where in a [batch, pos, d] hook: one position, a list of positions, or None for [batch, d].
Pos = int | Sequence[int] | None


@dataclass(frozen=True)
class DASResult:
    """A subspace learned by :func:`das`.

    basis (also ``values``): ``[d, k]`` orthonormal columns spanning the subspace (``B``).
    hook, pos: where it lives (one basis for every position in a list ``pos``).
    losses: training loss per step.
    train_accuracy: IIA on the training pairs after training.
    """

    hook: str
    pos: Pos
    k: int
    basis: torch.Tensor
    losses: list[float] = field(repr=False)
    train_accuracy: float

    @property
    def values(self) -> torch.Tensor:
        return self.basis

    def __repr__(self) -> str:
        return (
            f"DASResult(hook={self.hook!r}, pos={self.pos}, k={self.k}, d={self.basis.shape[0]}, "
            f"final_loss={self.losses[-1]:.4f}, train_accuracy={self.train_accuracy:.4f})"
        )


def _inputs(model, base, source, labels=None):
    base, source = as_inputs(model, base, "base"), as_inputs(model, source, "source")
    check_pair(base, source, labels)
    return base, source


def _source_acts(model, source, hook, pos) -> torch.Tensor:
    """The source's vectors at ``hook`` / ``pos``, read in the mode the intervention runs in."""
    with frozen(model):
        acts = activations_at(model, source, hook, pos=pos)
    if pos is None and acts.shape[0] != source.shape[0]:  # a [batch, pos, d] hook: say so
        select(acts.reshape(source.shape[0], -1, acts.shape[-1]), hook, None)
    return acts


# ---- interchange interventions ----------------------------------------------------------


def interchange_intervention(
    model, base, source, *, hook: str, pos: Pos = None, basis: torch.Tensor | None = None
) -> torch.Tensor:
    """Logits of ``model`` on ``base`` with the activation at ``hook`` taken from ``source``.

    Geiger et al. 2021 (interchange intervention). ``base`` and ``source`` are ``n`` inputs
    each (texts, or e.g. ``[n, pos]`` tokens); ``pos`` picks the position for ``[batch, pos,
    d]`` hooks (a list of positions intervenes on each, from the same positions of the source).
    With ``basis`` (``[d, k]``, orthonormal columns) only the subspace it spans is taken from
    the source (``h + B B^T (h_src - h)``, the DAS intervention); without it, the whole vector.
    Returns the model's logits, e.g. ``[n, pos, d_vocab]``.
    """
    check_model(model, hook)
    base, source = _inputs(model, base, source)
    src = _source_acts(model, source, hook, pos)
    if basis is not None:
        basis = check_basis(basis, src.shape[-1], hook).to(src.device)
    with torch.no_grad(), frozen(model):
        return intervened_logits(model, base, hook, pos, src, basis)


@torch.no_grad()
def interchange_accuracy(
    model,
    base,
    source,
    labels,
    *,
    hook: str,
    pos: Pos = None,
    basis: torch.Tensor | None = None,
    answer_ids: Sequence[int] | None = None,
    batch_size: int = 1024,
) -> float:
    """Interchange-intervention accuracy (IIA): the fraction of pairs where the intervened
    model's prediction equals the causal model's counterfactual output ``labels`` (``[n]``).

    Geiger et al. 2023, section 2. The prediction is the argmax of the logits at the last
    position (or of ``[n, classes]`` outputs), over ``answer_ids`` when given (then
    ``labels`` index into ``answer_ids``). ``basis=None`` swaps the whole vector.
    """
    check_model(model, hook)
    base, source = _inputs(model, base, source, labels)
    answer_ids = check_answer_ids(answer_ids, model)
    _check_batch_size(batch_size)
    labels = torch.as_tensor(labels)
    correct = 0
    for i in range(0, len(base), batch_size):
        logits = interchange_intervention(
            model,
            base[i : i + batch_size],
            source[i : i + batch_size],
            hook=hook,
            pos=pos,
            basis=basis,
        )
        out = readout(logits, answer_ids)
        lab = check_labels(labels[i : i + batch_size], out.shape[-1]).to(out.device)
        correct += int((out.argmax(-1) == lab).sum())
    return correct / len(base)


def _check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}; expected an int >= 1.")


# ---- distributed alignment search -------------------------------------------------------


def random_basis(d: int, k: int, *, seed: int = 0) -> torch.Tensor:
    """A uniformly random ``k``-dim subspace of ``R^d``: ``[d, k]`` orthonormal columns.

    The control for DAS: a random subspace of the same size.
    """
    for name, v in (("d", d), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"random_basis: {name} must be an int, got {v!r}.")
    if not 1 <= k <= d:
        raise ValueError(f"random_basis(d={d}, k={k}): expected 1 <= k <= d.")
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, k, generator=gen))
    return q * torch.sign(torch.diagonal(r))  # sign fix: Haar-distributed


def subspace_overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """How much two subspaces coincide: mean squared cosine of their principal angles
    (Björck & Golub 1973), the check that DAS recovered a planted subspace.

    ``a``, ``b``: ``[d, k]`` orthonormal columns (same ``k``). Returns
    ``||a^T b||_F^2 / k`` in [0, 1]: 1 for the same subspace (in any basis), about ``k / d``
    for random ones, 0 for orthogonal ones.
    """
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(
            f"subspace_overlap takes two [d, k] bases of the same shape, got {list(a.shape)} "
            f"and {list(b.shape)}."
        )
    return float((a.T @ b).pow(2).sum() / a.shape[1])


def das(
    model,
    base,
    source,
    labels,
    *,
    hook: str,
    k: int,
    pos: Pos = None,
    answer_ids: Sequence[int] | None = None,
    steps: int = 300,
    lr: float = 1e-2,
    batch_size: int = 256,
    seed: int = 0,
) -> DASResult:
    """Distributed alignment search: learn a ``k``-dim subspace of ``hook`` that carries a
    causal variable (Geiger, Wu, Potts, Icard & Goodman 2023).

    base, source: ``n`` paired inputs (texts, or e.g. ``[n, pos]`` tokens). labels: ``[n]`` the
    causal model's output on each base with the variable set to its value on the source (class
    ids, indices into ``answer_ids`` when given). ``pos``: the position (or list of positions,
    one shared basis) for ``[batch, pos, d]`` hooks. The model is frozen; only the rotation is
    trained, with Adam on the cross-entropy of the intervened model's read-out against
    ``labels``. Seeded (initial rotation and minibatches); the global RNG is not touched.

    Returns a :class:`DASResult` whose ``basis`` ``[d, k]`` goes to
    :func:`interchange_accuracy` to measure IIA on held-out pairs.
    """
    check_model(model, hook)
    base, source = _inputs(model, base, source, labels)
    answer_ids = check_answer_ids(answer_ids, model)
    if not isinstance(k, int) or isinstance(k, bool):
        raise TypeError(f"k must be an int (the subspace's dimension), got {type(k).__name__}.")
    _check_batch_size(batch_size)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1 or not lr > 0:
        raise ValueError(f"steps={steps!r}, lr={lr!r}: expected an int steps >= 1 and lr > 0.")
    src = _source_acts(model, source, hook, pos)  # [n, d] or [n, len(pos), d]
    d = src.shape[-1]
    if not 1 <= k <= d:
        where = hook if pos is None else f"{hook} at pos {pos}"
        raise ValueError(
            f"DAS subspace of k={k} dimensions does not fit the hook {where}, whose vectors "
            f"have d={d} dimensions: expected 1 <= k <= {d}. Pick a k in that range (k={d} "
            "swaps the whole vector: the naive interchange, basis=None)."
        )
    labels = torch.as_tensor(labels).long().to(src.device)
    init = random_basis(d, k, seed=seed)
    basis, losses = train_rotation(
        model, base, src, labels, hook, k, pos, answer_ids, steps, lr, batch_size, seed, init
    )
    train_acc = interchange_accuracy(
        model, base, source, labels, hook=hook, pos=pos, basis=basis, answer_ids=answer_ids
    )
    return DASResult(hook, pos, k, basis, losses, train_acc)
