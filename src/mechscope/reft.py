"""ReFT: trained low-rank interventions on representations (LoReFT).

Wu, Arora, Wang, Geiger, Jurafsky, Manning & Potts (2024), "ReFT: Representation Finetuning
for Language Models". Instead of changing weights, ReFT learns an edit of the hidden vector
``h`` at one hook and some positions, with the model frozen. LoReFT, the low-rank form,
edits ``h`` only inside an ``r``-dim subspace::

    Phi(h) = h + R^T (W h + b - R h)        R [r, d] orthonormal rows, W [r, d], b [r]

Along the rows of ``R`` the new coordinates are ``W h + b`` (an affine function of the whole
vector); orthogonal to them ``h`` is kept. With ``W = R`` and ``b = 0`` the edit is the
identity (the starting point here). Only ``R``, ``W`` and ``b`` are trained: ``2 r d + r``
numbers, against the millions of a layer's weights.

**Relation to DAS** (:mod:`mechscope.das`). DAS's intervention ``h + R^T R (h_source - h)``
uses the same projection: it *interchanges* the subspace's coordinates with a source's,
``R h_source``, to test whether a causal variable lives there. LoReFT *edits* them, writing a
learned ``W h + b``: the subspace DAS finds for a variable is where a rank-1 edit can change it.

Every function leaves the model as it came (hooks removed, parameters' ``requires_grad`` and
``.grad``, train/eval modes restored), also on error: the edit runs inside ``model.hooks``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ._das_train import check_answer_ids, check_basis, check_labels, check_model, frozen, readout
from ._intervene import as_inputs, index_list, is_scalar, select
from .das import random_basis

__all__ = ["ReFT", "train_reft"]

Pos = int | Sequence[int] | None


def _edit(h: torch.Tensor, R: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h + R^T (W h + b - R h)`` for ``h [..., d]`` (rows as vectors)."""
    return h + (h @ W.T + b - h @ R.T) @ R


def _hook_fn(hook: str, pos: Pos, R, W, b):
    """A hook that applies the edit at ``pos`` (every position when None)."""

    def fn(act, hook_point):
        R_, W_, b_ = (t.to(act.dtype) for t in (R, W, b))  # trained in float32
        if act.dim() == 2:
            return _edit(select(act, hook, pos), R_, W_, b_)  # [batch, d]: pos is None
        if pos is None:
            return _edit(act, R_, W_, b_)  # every position
        new = _edit(select(act, hook, pos), R_, W_, b_)  # read before the clone is written
        act = act.clone()
        act[:, pos if isinstance(pos, int) else list(pos)] = new
        return act

    return fn


@dataclass(frozen=True)
class ReFT:
    """A trained LoReFT intervention (Wu et al. 2024), from :func:`train_reft`.

    hook, pos: where it edits (``pos=None``: every position).
    R: ``[rank, d]`` orthonormal rows (also ``values``); W: ``[rank, d]``; b: ``[rank]``.
    trained_basis: False when ``R`` was given and kept fixed (only ``W``, ``b`` trained).
    losses: training loss per step; train_accuracy: read-out accuracy on the training data.

    Use it with ``with reft.apply(model): model(tokens)`` (hooks removed on exit), or
    ``reft(model, tokens)`` for the logits. ``n_params`` counts the trained numbers.
    """

    hook: str
    pos: Pos
    R: torch.Tensor
    W: torch.Tensor
    b: torch.Tensor
    trained_basis: bool
    losses: list[float] = field(repr=False)
    train_accuracy: float

    @property
    def values(self) -> torch.Tensor:
        return self.R

    @property
    def rank(self) -> int:
        return self.R.shape[0]

    @property
    def n_params(self) -> int:
        """Trained numbers: ``W`` and ``b`` (``r d + r``), plus ``R`` (``r d``) when trained."""
        n = self.W.numel() + self.b.numel()
        return n + (self.R.numel() if self.trained_basis else 0)

    def edit(self, acts: torch.Tensor) -> torch.Tensor:
        """The edit on vectors ``acts [..., d]``: ``acts + R^T (W acts + b - R acts)``."""
        acts = torch.as_tensor(acts)
        if acts.shape[-1:] != self.R.shape[-1:]:
            raise ValueError(
                f"acts has shape {list(acts.shape)}, but this ReFT edits vectors of "
                f"d={self.R.shape[-1]} (hook {self.hook!r}); pass [..., {self.R.shape[-1]}]."
            )
        return _edit(acts, *(t.to(acts.device, acts.dtype) for t in (self.R, self.W, self.b)))

    @contextlib.contextmanager
    def apply(self, model) -> Iterator[None]:
        """Context manager: ``model`` runs with the edit inside, and without it after (the
        hook is installed by ``model.hooks`` and removed on exit, also on error)."""
        check_model(model, self.hook)
        with model.hooks([(self.hook, _hook_fn(self.hook, self.pos, self.R, self.W, self.b))]):
            yield

    def __call__(self, model, tokens) -> torch.Tensor:
        """Logits of ``model`` on ``tokens`` with the edit (e.g. ``[batch, pos, d_vocab]``)."""
        tokens = as_inputs(model, tokens, "tokens")
        with torch.no_grad(), frozen(model), self.apply(model):
            return model(tokens)

    def accuracy(self, model, tokens, labels, *, answer_ids: Sequence[int] | None = None) -> float:
        """Fraction of ``tokens`` whose edited read-out (last position, over ``answer_ids``
        when given) is ``labels`` ``[n]``."""
        tokens = as_inputs(model, tokens, "tokens")
        labels = _check_labels(labels, tokens)
        answer_ids = check_answer_ids(answer_ids, model)
        out = readout(self(model, tokens), answer_ids)
        labels = check_labels(labels, out.shape[-1]).to(out.device)
        return float((out.argmax(-1) == labels).float().mean())

    def __repr__(self) -> str:
        return (
            f"ReFT(hook={self.hook!r}, pos={self.pos}, rank={self.rank}, d={self.R.shape[-1]}, "
            f"n_params={self.n_params}, trained_basis={self.trained_basis}, "
            f"final_loss={self.losses[-1]:.4f}, train_accuracy={self.train_accuracy:.4f})"
        )


def _check_labels(labels, tokens: torch.Tensor) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if (
        labels.shape != (len(tokens),)
        or labels.dtype.is_floating_point
        or labels.dtype == torch.bool
    ):
        raise ValueError(
            f"labels must be [n] = [{len(tokens)}] integer class ids (one target per input in "
            f"tokens), got shape {list(labels.shape)} dtype {labels.dtype}."
        )
    return labels.long()


def _check_settings(rank, steps, lr, batch_size) -> None:
    for name, v, low in (("rank", rank, 1), ("steps", steps, 1), ("batch_size", batch_size, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name}={v!r}; expected an int >= {low}.")
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0):
        raise ValueError(f"lr={lr!r}; expected a positive learning rate, e.g. lr=1e-2.")


def _probe(model, tokens, hook: str, pos: Pos) -> tuple[torch.Tensor, Pos]:
    """The activation at ``hook`` on one input (its width and device), and ``pos`` checked
    (an int, a list of ints or None)."""
    seen = []
    with torch.no_grad(), frozen(model), model.hooks([(hook, lambda a, h: seen.append(a))]):
        model(tokens[:1])
    act = seen[0]
    if pos is not None:
        idx = index_list(pos, "pos")
        pos = idx[0] if is_scalar(pos) else idx
    if not (act.dim() == 3 and pos is None):  # None on [batch, pos, d]: every position
        select(act, hook, pos)  # checks pos; rejects hooks other than [batch, (pos,) d]
    return act, pos


def train_reft(
    model,
    tokens,
    labels,
    *,
    hook: str,
    pos: Pos = None,
    rank: int | None = None,
    basis: torch.Tensor | None = None,
    answer_ids: Sequence[int] | None = None,
    steps: int = 200,
    lr: float = 1e-2,
    batch_size: int = 256,
    seed: int = 0,
) -> ReFT:
    """Train a LoReFT intervention ``h + R^T (W h + b - R h)`` at ``hook`` / ``pos`` so that
    ``model`` outputs ``labels`` (Wu et al. 2024), the model frozen.

    tokens: ``n`` inputs (texts or ``[n, pos]`` ids); labels: ``[n]`` target class ids, read
    at the last position (indices into ``answer_ids`` when given, else token ids). pos: an
    int, a list of ints (one edit, applied at each) or None (every position). rank: ``r``, the
    subspace's dimension (default 1, or the basis's columns). basis: a fixed ``[d, rank]`` orthonormal basis (``R = basis^T``, not
    trained; e.g. :func:`mechscope.das.random_basis` as a control, or a DAS basis); None
    learns ``R``, kept orthonormal by ``torch.nn.utils.parametrizations.orthogonal``.
    Adam on the cross-entropy of the read-out; seeded (initial ``R`` and minibatches), the
    global RNG untouched. Returns a :class:`ReFT`.
    """
    check_model(model, hook)
    tokens = as_inputs(model, tokens, "tokens")
    labels = _check_labels(labels, tokens)
    answer_ids = check_answer_ids(answer_ids, model)
    if rank is None:
        rank = 1 if basis is None else int(torch.as_tensor(basis).shape[-1])
    _check_settings(rank, steps, lr, batch_size)
    act, pos = _probe(model, tokens, hook, pos)
    d, device = act.shape[-1], act.device
    if rank > d:
        raise ValueError(f"rank={rank} exceeds the width d={d} of hook {hook!r}; use rank <= {d}.")
    if basis is not None:
        basis = check_basis(basis, d, hook)
        if basis.shape[1] != rank:
            raise ValueError(
                f"basis has {basis.shape[1]} columns but rank={rank}; pass rank="
                f"{basis.shape[1]} (or leave rank out) with this basis."
            )
    init = (random_basis(d, rank, seed=seed) if basis is None else basis).T.to(device)
    # [rank, d] weight = R's rows. skip_init: no draw from the global RNG.
    rot = nn.utils.skip_init(nn.Linear, d, rank, bias=False, device=device)
    with torch.no_grad():
        rot.weight.copy_(init)
    if basis is None:
        # Keeps the rows orthonormal. Registration draws from the global RNG: fork it.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            nn.utils.parametrizations.orthogonal(rot)
    else:
        rot.weight.requires_grad_(False)
    W = nn.Parameter(init.clone())  # W = R, b = 0: the edit starts as the identity
    b = nn.Parameter(torch.zeros(rank, device=device))
    params = [W, b] + ([p for p in rot.parameters() if p.requires_grad] if basis is None else [])
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    with frozen(model):
        for _ in range(steps):
            idx = torch.randint(len(tokens), (min(batch_size, len(tokens)),), generator=gen)
            fn = _hook_fn(hook, pos, rot.weight, W, b)
            with model.hooks([(hook, fn)]):
                out = readout(model(tokens[idx]), answer_ids)
            loss = F.cross_entropy(out, check_labels(labels[idx], out.shape[-1]).to(out.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    R = rot.weight.detach().clone()
    reft = ReFT(hook, pos, R, W.detach().clone(), b.detach().clone(), basis is None, losses, 0.0)
    acc = reft.accuracy(model, tokens, labels, answer_ids=answer_ids)
    return ReFT(hook, pos, R, reft.W, reft.b, basis is None, losses, acc)
