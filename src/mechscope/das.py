"""Causal abstraction: interchange interventions and distributed alignment search (DAS).

A high-level causal model (a small program with intermediate variables, e.g. ``V1 = (a == b)``
in :mod:`mechscope.toy.equality`) is an *abstraction* of a network when interventions on the
program and on the network agree (Geiger, Lu, Icard & Potts 2021, "Causal Abstractions of
Neural Networks"). The test is the **interchange intervention**: run the network on a *base*
input, but at a *site* (a hook point, at one position) put in the activation it had on a
*source* input. If the site carries variable ``V``, the network's output must become the
program's output on the base input with ``V`` set to its value on the source. The fraction
of pairs where it does is the **interchange-intervention accuracy** (IIA).

A variable need not sit in whole neurons or whole vectors. **DAS** (Geiger, Wu, Potts, Icard
& Goodman 2023, "Finding Alignments Between Interpretable Causal Variables and Distributed
Neural Representations") learns an orthogonal change of basis ``R`` of the site and swaps only
the first ``k`` rotated coordinates::

    h' = h_base + B B^T (h_source - h_base)        B = R[:, :k]  ([d, k], orthonormal columns)

``B`` is trained by gradient descent (the network frozen) so that the intervened network
predicts the program's counterfactual output. Only the first ``k`` columns of ``R`` enter the
intervention, so we learn them directly: a ``[k, d]`` matrix kept on the Stiefel manifold by
``torch.nn.utils.parametrizations.orthogonal`` (the low-rank rotation pyvene also uses).

Every function here leaves the model as it came: hooks removed in a ``finally``, parameters'
``requires_grad``, their ``.grad`` and every module's train/eval mode restored, even when a
call raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .hooks import unknown_name_error

__all__ = [
    "DASResult",
    "das",
    "interchange_accuracy",
    "interchange_intervention",
    "random_basis",
    "site_activation",
    "subspace_overlap",
]

# Where in a [batch, pos, d] site: one position, a list of positions, or None for [batch, d].
Pos = int | Sequence[int] | None


@dataclass
class DASResult:
    """A subspace learned by :func:`das`.

    basis: ``[d, k]`` orthonormal columns spanning the subspace (``B`` above).
    site, pos: where it lives (one basis for every position in a list ``pos``).
    losses: training loss per step.
    train_accuracy: IIA on the training pairs after training.
    """

    site: str
    pos: Pos
    k: int
    basis: torch.Tensor
    losses: list[float] = field(repr=False)
    train_accuracy: float

    def __repr__(self) -> str:
        return (
            f"DASResult(site={self.site!r}, pos={self.pos}, k={self.k}, d={self.basis.shape[0]}, "
            f"final_loss={self.losses[-1]:.4f}, train_accuracy={self.train_accuracy:.4f})"
        )


# ---- model state ------------------------------------------------------------------------


@contextlib.contextmanager
def _frozen(model: nn.Module):
    """Eval mode and no parameter gradients inside; the exact prior state restored after."""
    modes = [(m, m.training) for m in model.modules()]
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    try:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag, grad in zip(params, flags, grads, strict=True):
            p.requires_grad_(flag)
            p.grad = grad
        for m, mode in modes:
            m.training = mode


# ---- checks -----------------------------------------------------------------------------


def _check_site(model, site: str) -> None:
    if not (hasattr(model, "hooks") and hasattr(model, "hook_names")):
        raise TypeError(
            f"{type(model).__name__} has no hook points; interchange interventions need a "
            "mechscope model (mechscope.load / mechscope.wrap / Transformer) or any module "
            "with .hooks() and .hook_names()."
        )
    if not isinstance(site, str):
        raise TypeError(f"site must be one hook name (str), got {type(site).__name__}.")
    names = model.hook_names()
    if site not in names:
        raise unknown_name_error(site, names)


def _select(act: torch.Tensor, site: str, pos: Pos) -> torch.Tensor:
    """The site's vectors from a hook's activation: ``[batch, d]`` for a ``[batch, d]`` site or
    one position ``pos``; ``[batch, len(pos), d]`` for a list of positions."""
    if act.dim() == 2:
        if pos is not None:
            raise ValueError(
                f"Site {site!r} has activations [batch, d] = {list(act.shape)} (no positions), "
                f"but pos={pos} was given. Pass pos=None."
            )
        return act
    if act.dim() == 3:
        n = act.shape[1]
        if pos is None:
            raise ValueError(
                f"Site {site!r} has activations [batch, pos, d] = {list(act.shape)}; say which "
                f"position to intervene on with pos= (an int in [-{n}, {n}), e.g. pos=-1 for "
                "the last, or a list of them)."
            )
        many = not isinstance(pos, int)
        positions = list(pos) if many else [pos]
        bad = [p for p in positions if not isinstance(p, int) or not -n <= p < n]
        if bad or not positions:
            raise ValueError(
                f"pos={pos} is out of range for site {site!r} with {n} positions: expected "
                f"ints with -{n} <= pos < {n} (one, or a non-empty list)."
            )
        if len({p % n for p in positions}) != len(positions):
            raise ValueError(f"pos={pos} names a position twice; list each position once.")
        return act[:, positions] if many else act[:, pos]
    raise ValueError(
        f"Site {site!r} has activations of shape {list(act.shape)}; interchange interventions "
        "here take [batch, d] or [batch, pos, d] sites (residual stream, MLP, attention out). "
        "For per-head sites like hook_z, use the head's output in the residual stream instead."
    )


def _check_basis(basis: torch.Tensor, d: int, site: str) -> torch.Tensor:
    basis = torch.as_tensor(basis, dtype=torch.float32)
    if basis.dim() != 2 or basis.shape[0] != d or not 1 <= basis.shape[1] <= d:
        raise ValueError(
            f"basis has shape {list(basis.shape)}; site {site!r} has d={d}, so expected "
            f"[{d}, k] with 1 <= k <= {d} (orthonormal columns spanning the subspace)."
        )
    gram = basis.T @ basis
    err = float((gram - torch.eye(basis.shape[1])).abs().max())
    if err > 1e-3:
        raise ValueError(
            f"basis columns are not orthonormal (max |B^T B - I| = {err:.3g}). Orthonormalise "
            "them first: torch.linalg.qr(basis).Q."
        )
    return basis


def _check_pair(base, source, labels=None) -> None:
    nb, ns = len(base), len(source)
    if nb != ns:
        raise ValueError(
            f"base has {nb} inputs and source has {ns}; interchange interventions pair them "
            "one to one, so pass the same number of each."
        )
    if nb == 0:
        raise ValueError("base and source are empty; pass at least one (base, source) pair.")
    if labels is not None:
        labels = torch.as_tensor(labels)
        if labels.shape != (nb,) or labels.dtype.is_floating_point:
            raise ValueError(
                f"labels must be [n] = [{nb}] integer class ids (the causal model's "
                f"counterfactual outputs), got shape {list(labels.shape)} dtype {labels.dtype}."
            )


def _readout(logits: torch.Tensor, answer_ids: Sequence[int] | None) -> torch.Tensor:
    """Logits ``[batch, pos, d_vocab]`` (last position used) or ``[batch, classes]`` ->
    ``[batch, classes]``, restricted to ``answer_ids`` when given."""
    if logits.dim() == 3:
        logits = logits[:, -1]
    return logits if answer_ids is None else logits[:, list(answer_ids)]


def _check_labels(labels, n_classes: int) -> torch.Tensor:
    labels = torch.as_tensor(labels).long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"labels range over [{int(labels.min())}, {int(labels.max())}] but the read-out has "
            f"{n_classes} classes: labels index answer_ids (or the logits), so expected values "
            f"in [0, {n_classes})."
        )
    return labels


# ---- interchange interventions ----------------------------------------------------------


@torch.no_grad()
def site_activation(model, inputs, site: str, pos: Pos = None) -> torch.Tensor:
    """The activation at ``site`` on ``inputs``: ``[batch, d]`` (at position ``pos``, for
    ``[batch, pos, d]`` sites), or ``[batch, len(pos), d]`` for a list of positions."""
    _check_site(model, site)
    out = {}

    def read(act, hook):
        out["act"] = _select(act, site, pos).detach().clone()

    with _frozen(model), model.hooks([(site, read)]):
        model(inputs)
    return out["act"]


def _intervened_logits(model, base, site, pos, src_act, basis):
    """Forward on ``base`` with the site's vector replaced (whole, or within ``basis``)."""

    def swap(act, hook):
        h = _select(act, site, pos)
        if basis is None:
            new = src_act.to(h.dtype)
        else:
            b = basis.to(h.dtype)  # the rotation trains in float32; the model may be half
            new = h + (src_act.to(h.dtype) - h) @ b @ b.T
        if act.dim() == 2:
            return new
        act = act.clone()
        act[:, pos if isinstance(pos, int) else list(pos)] = new
        return act

    with model.hooks([(site, swap)]):
        return model(base)


def interchange_intervention(
    model,
    base,
    source,
    site: str,
    pos: Pos = None,
    basis: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits of ``model`` on ``base`` with the activation at ``site`` taken from ``source``.

    Geiger et al. 2021 (interchange intervention). ``base`` and ``source`` are ``n`` inputs
    each (e.g. ``[n, pos]`` tokens); ``pos`` picks the position for ``[batch, pos, d]`` sites
    (a list of positions intervenes on each, from the same positions of the source).
    With ``basis`` (``[d, k]``, orthonormal columns) only the subspace it spans is taken from
    the source (``h + B B^T (h_src - h)``, the DAS intervention); without it, the whole vector.
    Returns the model's logits, e.g. ``[n, pos, d_vocab]``.
    """
    _check_pair(base, source)
    src = site_activation(model, source, site, pos)
    if basis is not None:
        basis = _check_basis(basis, src.shape[-1], site).to(src.device)
    with torch.no_grad(), _frozen(model):
        return _intervened_logits(model, base, site, pos, src, basis)


@torch.no_grad()
def interchange_accuracy(
    model,
    base,
    source,
    labels,
    site: str,
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
    _check_pair(base, source, labels)
    labels = torch.as_tensor(labels)
    correct = 0
    for i in range(0, len(base), batch_size):
        logits = interchange_intervention(
            model, base[i : i + batch_size], source[i : i + batch_size], site, pos, basis
        )
        out = _readout(logits, answer_ids)
        lab = _check_labels(labels[i : i + batch_size], out.shape[-1]).to(out.device)
        correct += int((out.argmax(-1) == lab).sum())
    return correct / len(base)


# ---- distributed alignment search -------------------------------------------------------


def random_basis(d: int, k: int, seed: int = 0) -> torch.Tensor:
    """A uniformly random ``k``-dim subspace of ``R^d``: ``[d, k]`` orthonormal columns.

    The control for DAS: a random subspace of the same size.
    """
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
    site: str,
    k: int,
    pos: Pos = None,
    answer_ids: Sequence[int] | None = None,
    steps: int = 300,
    lr: float = 1e-2,
    batch_size: int = 256,
    seed: int = 0,
) -> DASResult:
    """Distributed alignment search: learn a ``k``-dim subspace of ``site`` that carries a
    causal variable (Geiger, Wu, Potts, Icard & Goodman 2023).

    base, source: ``n`` paired inputs (e.g. ``[n, pos]`` tokens). labels: ``[n]`` the causal
    model's output on each base with the variable set to its value on the source (class ids,
    indices into ``answer_ids`` when given). ``pos``: the position (or list of positions, one
    shared basis) for ``[batch, pos, d]`` sites. The model is frozen; only the rotation is trained,
    with Adam on the cross-entropy of the intervened model's read-out against ``labels``.
    Seeded (initial rotation and minibatches); the global RNG is not touched.

    Returns a :class:`DASResult` whose ``basis`` ``[d, k]`` goes to
    :func:`interchange_accuracy` to measure IIA on held-out pairs.
    """
    _check_pair(base, source, labels)
    if not (isinstance(base, torch.Tensor) and isinstance(source, torch.Tensor)):
        raise TypeError(
            f"das takes base and source as tensors (e.g. [n, pos] token ids), got "
            f"{type(base).__name__} and {type(source).__name__}; tokenize first."
        )
    if not isinstance(k, int) or isinstance(k, bool):
        raise TypeError(f"k must be an int (the subspace's dimension), got {type(k).__name__}.")
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(
            f"steps={steps}, batch_size={batch_size}, lr={lr}: expected steps >= 1, "
            "batch_size >= 1 and lr > 0."
        )
    src = site_activation(model, source, site, pos)  # [n, d] or [n, len(pos), d]
    d = src.shape[-1]
    if not 1 <= k <= d:
        where = site if pos is None else f"{site} at pos {pos}"
        raise ValueError(
            f"DAS subspace of k={k} dimensions does not fit the site {where}, whose vectors "
            f"have d={d} dimensions: expected 1 <= k <= {d}. Pick a k in that range (k={d} "
            "swaps the whole vector: the naive interchange, basis=None)."
        )
    labels = torch.as_tensor(labels).long().to(src.device)
    gen = torch.Generator().manual_seed(seed)
    # [k, d] weight = the first k rows of R; skip_init: no draw from the global RNG.
    rot = nn.utils.skip_init(nn.Linear, d, k, bias=False, device=src.device)
    with torch.no_grad():
        rot.weight.copy_(random_basis(d, k, seed).T)
    # Keeps the rows orthonormal while training. Registration draws a random completion of
    # the basis from the global RNG: seed it there, and give the user's RNG state back.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        nn.utils.parametrizations.orthogonal(rot)
    opt = torch.optim.Adam(rot.parameters(), lr=lr)
    losses = []
    with _frozen(model):
        for _ in range(steps):
            idx = torch.randint(len(labels), (min(batch_size, len(labels)),), generator=gen)
            b_idx = idx.to(src.device)
            logits = _intervened_logits(model, base[idx], site, pos, src[b_idx], rot.weight.T)
            out = _readout(logits, answer_ids)
            loss = F.cross_entropy(out, _check_labels(labels[b_idx], out.shape[-1]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    basis = rot.weight.detach().T.contiguous()
    train_acc = interchange_accuracy(
        model, base, source, labels, site, pos, basis, answer_ids, batch_size=1024
    )
    return DASResult(site, pos, k, basis, losses, train_acc)
