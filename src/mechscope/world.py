"""World models: read a state out of the residual stream with linear probes, and write it back.

Li et al. (2023), "Emergent World Representations", probed an Othello move-sequence model for
the board and edited the board by intervening on its activations; Nanda et al. (2023),
"Emergent Linear Representations in World Models of Self-Supervised Sequence Models", found
the board is *linearly* represented (as empty / mine / theirs relative to the player to move)
and edited it by pushing the residual stream along a probe's directions. Nothing here is
specific to Othello:

- :func:`activations_at` collects one hook point's activations at chosen positions (DAS
  reads its sources with it too);
- :func:`fit_state_probe` fits one linear probe per state variable (per board square, with
  :func:`mechscope.probes.fit_probe`), all over the same classes; :class:`StateProbe` reads
  or scores a whole state at once;
- :func:`push_to_class` gives, per example, a push along the probe's class-difference
  directions that makes the probe read a chosen class (by a margin);
- :func:`intervene_along` runs the model with the residual pushed along given directions at
  given positions and hook points; :func:`intervene_to_class` pushes at each probe's hook
  point, on the fly, until that probe reads the chosen class (hooks removed in a ``finally``).
  Both add to the residual with steering's one implementation (:mod:`mechscope.steering`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ._core import as_tokens
from ._intervene import add_hook, as_inputs, check_hook, resolve_hooks, select

__all__ = [
    "InterventionResult",
    "StateProbe",
    "activations_at",
    "fit_state_probe",
    "intervene_along",
    "intervene_to_class",
    "push_to_class",
]


def activations_at(model, tokens, hook: str, *, pos=None, mask=None) -> torch.Tensor:
    """Activations of ``hook`` on ``tokens`` (float32, no grad).

    tokens: a text, texts or ids ``[batch, pos]`` (or a non-sequence model's inputs).
    pos: an int -> ``[batch, d]``; a list of ints -> ``[batch, len(pos), d]``.
    mask: bool ``[batch, pos]`` -> ``[n, d]``, rows in ``mask.nonzero()`` order.
    Neither: ``[batch * pos, d]`` (every position), or ``[batch, d]`` for a ``[batch, d]`` hook.
    """
    check_hook(model, hook)
    toks = as_inputs(model, tokens, "tokens")
    if pos is not None and mask is not None:
        raise ValueError("activations_at takes pos or mask, not both; pass one of them.")
    if mask is not None:
        mask = torch.as_tensor(mask)
        if mask.dtype != torch.bool or tuple(mask.shape) != tuple(toks.shape[:2]):
            raise ValueError(
                f"mask has shape {list(mask.shape)} and dtype {mask.dtype}, expected bool of "
                f"the tokens' shape {list(toks.shape[:2])} (one bool per [batch, pos])."
            )
    out = {}

    def read(act, hook_point):
        out["act"] = act.detach().float().clone()

    with torch.no_grad(), model.hooks([(hook, read)]):
        model(toks)
    acts = out["act"]
    if pos is not None or acts.dim() == 2:
        return select(acts, hook, pos)
    if mask is None:
        return acts.reshape(-1, acts.shape[-1])
    return acts[mask.to(acts.device)]


@dataclass
class StateProbe:
    """One linear probe per state variable (e.g. per board square), all over the same classes.

    weight: ``[variable, class, d_model]``; bias: ``[variable, class]``; ``hook``: where the
    activations came from; ``classes``: class names.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    hook: str = ""
    classes: tuple[str, ...] = ()

    def logits(self, acts: torch.Tensor) -> torch.Tensor:
        """``[n, d_model]`` -> ``[n, variable, class]``."""
        self._check(acts)
        return torch.einsum("nd,vcd->nvc", acts.float(), self.weight) + self.bias

    def predict(self, acts: torch.Tensor) -> torch.Tensor:
        """``[n, d_model]`` -> predicted class per variable, long ``[n, variable]``."""
        return self.logits(acts).argmax(-1)

    def accuracy(self, acts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Accuracy per variable, ``[variable]``, on ``acts`` ``[n, d_model]`` and ``labels``
        ``[n, variable]``."""
        return (self.predict(acts) == labels.to(self.weight.device)).float().mean(0)

    def direction(
        self, variable: int, to_class: int, from_class: int | None = None
    ) -> torch.Tensor:
        """Unit direction ``[d_model]`` that raises ``to_class`` of ``variable`` most: its weight
        row, or with ``from_class`` the difference ``w[to] - w[from]`` (raises one, lowers the
        other: the direction of Nanda et al. 2023's "flip" interventions)."""
        w = self.weight[variable, to_class]
        if from_class is not None:
            w = w - self.weight[variable, from_class]
        return w / w.norm().clamp(min=1e-12)

    def _check(self, acts: torch.Tensor) -> None:
        if acts.dim() != 2 or acts.shape[1] != self.weight.shape[-1]:
            raise ValueError(
                f"acts must be [n, d_model={self.weight.shape[-1]}], got {list(acts.shape)}. "
                "Collect them at the probe's hook point with activations_at(...)."
            )


def fit_state_probe(
    acts: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    *,
    l2: float = 1e-3,
    steps: int = 30,
    hook: str = "",
    classes: Sequence[str] = (),
    seed: int = 0,
) -> StateProbe:
    """Multinomial logistic probes, one per state variable (Alain & Bengio 2016; the
    per-square probes of Nanda et al. 2023), each fitted by :func:`mechscope.probes.fit_probe`
    on all rows (score them on held-out data with :meth:`StateProbe.accuracy`).

    acts: ``[n, d_model]``; labels: long ``[n, variable]`` in ``[0, n_classes)``; ``steps``:
    L-BFGS iterations per variable. A class a variable never shows gets a zero weight row and
    a bias of -1e4 (never predicted); a variable with a single class is that constant.
    """
    from .probes import fit_probe

    acts = torch.as_tensor(acts).float()
    labels = torch.as_tensor(labels)
    if acts.dim() != 2 or labels.dim() != 2 or labels.shape[0] != acts.shape[0]:
        raise ValueError(
            f"Expected acts [n, d_model] and labels [n, variable] with the same n; got acts "
            f"{list(acts.shape)} and labels {list(labels.shape)}."
        )
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(
            f"labels must be class ids in [0, {n_classes}), got range "
            f"[{int(labels.min())}, {int(labels.max())}]; pass n_classes = number of classes."
        )
    d, v = acts.shape[1], labels.shape[1]
    weight = torch.zeros(v, n_classes, d)
    bias = torch.full((v, n_classes), -1e4)
    for i in range(v):
        seen = labels[:, i].unique()
        if len(seen) == 1:
            bias[i, seen] = 0.0
            continue
        probe = fit_probe(
            acts, labels[:, i], kind="logistic", test_frac=0.0, seed=seed, l2=l2, steps=steps
        )
        c = probe.weight.shape[0]  # max label + 1
        weight[i, :c], bias[i, :c] = probe.weight.float(), probe.bias.float()
        missing = seen.new_ones(n_classes, dtype=torch.bool)
        missing[seen] = False
        weight[i, missing], bias[i, missing] = 0.0, -1e4
    return StateProbe(weight, bias, hook, tuple(classes))


def push_to_class(
    probe: StateProbe,
    acts: torch.Tensor,
    variable: torch.Tensor,
    to_class: torch.Tensor,
    *,
    margin: float = 2.0,
    rounds: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A push that makes the probe read ``to_class`` for ``variable``, ahead of every other class
    by ``margin``.

    Each round pushes along ``w[to] - w[rival]`` (``rival`` = the strongest other class now), by
    exactly the amount that sets ``logit[to] - logit[rival] = margin``; a logit difference is
    linear along that direction, so one round is exact when only one rival is ahead (the "flip"
    of Nanda et al. 2023: ``w[mine] - w[theirs]``). Rounds repeat until no rival is within the
    margin. acts ``[n, d_model]``, variable and to_class long ``[n]``. Returns the unit
    direction ``[n, d_model]`` and the amount ``[n]`` (0 where the probe already reads ``to``
    by the margin), so ``acts + amount[:, None] * direction`` is the pushed activation.
    """
    variable, to_class = _targets(probe, variable, to_class, acts.shape[0], "acts")
    rows = torch.arange(acts.shape[0])
    W = probe.weight[variable]  # [n, class, d]
    delta = torch.zeros_like(acts, dtype=torch.float32)
    for _ in range(rounds):
        logits = probe.logits(acts.float() + delta)[rows, variable]  # [n, class]
        others = logits.clone()
        others[rows, to_class] = float("-inf")
        rival = others.argmax(-1)
        gap = logits[rows, to_class] - logits[rows, rival]
        need = gap < margin - 1e-4
        if not need.any():
            break
        diff = W[rows, to_class] - W[rows, rival]  # [n, d]
        norm2 = diff.pow(2).sum(-1).clamp(min=1e-12)
        step = torch.where(need, (margin - gap) / norm2, 0.0)
        delta = delta + step[:, None] * diff
    amount = delta.norm(dim=-1)
    unit = delta / amount.clamp(min=1e-12)[:, None]
    return unit, amount


def _targets(probe, variable, to_class, n: int, what: str):
    """``variable`` and ``to_class`` as long ``[n]``, in range for ``probe``."""
    variable, to_class = torch.as_tensor(variable), torch.as_tensor(to_class)
    for name, t, size in (
        ("variable", variable, probe.weight.shape[0]),
        ("to_class", to_class, probe.weight.shape[1]),
    ):
        if t.dtype == torch.bool or t.dtype.is_floating_point or t.shape != (n,):
            raise ValueError(
                f"variable and to_class must be integer [n] = [{n}] (one per row of {what}); "
                f"got {name} of shape {list(t.shape)} and dtype {t.dtype}."
            )
        if n and (t.min() < 0 or t.max() >= size):
            raise ValueError(
                f"{name} holds {int(t.min())}..{int(t.max())}, but the probe has {size} "
                f"{'variables' if name == 'variable' else 'classes'}: expected [0, {size})."
            )
    return variable.long(), to_class.long()


def _row_positions(pos, batch: int, n_pos: int) -> torch.Tensor:
    """``pos`` (an int or ``[batch]``, one per row) as long ``[batch]`` in ``[0, n_pos)``."""
    p = torch.as_tensor(pos)
    if p.dtype == torch.bool or p.dtype.is_floating_point:
        raise ValueError(f"pos must be an int or [batch] = [{batch}] ints, got dtype {p.dtype}.")
    p = p.long()
    p = p.expand(batch) if p.dim() == 0 else p
    if p.shape != (batch,):
        raise ValueError(
            f"pos must be an int or [batch] = [{batch}] (one position per row), got "
            f"{list(p.shape)}."
        )
    if ((p < -n_pos) | (p >= n_pos)).any():
        raise ValueError(
            f"pos {p.tolist()} is out of range for prompts of {n_pos} tokens; valid: "
            f"0..{n_pos - 1} or negative from the end."
        )
    return p % n_pos


def _one_hot(pos: torch.Tensor, n_pos: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(pos, n_pos).float()  # [batch, n_pos]


@dataclass(frozen=True)
class InterventionResult:
    """The logits of an edited run and how far each hook point was pushed.

    logits (also ``values``): ``[batch, pos, d_vocab]``. amounts: ``[probe, batch]``, the norm
    of the push at each probe's hook point.
    """

    logits: torch.Tensor
    amounts: torch.Tensor

    @property
    def values(self) -> torch.Tensor:
        return self.logits


def intervene_along(
    model, tokens, *, hooks, directions: torch.Tensor, amounts, pos=-1
) -> torch.Tensor:
    """Logits with the residual pushed along ``directions`` at ``pos`` and ``hooks``.

    tokens: texts or ids ``[batch, pos]``. hooks: a hook name, a list or a predicate.
    directions: ``[d_model]`` (one for all rows) or ``[batch, d_model]``, or one such per hook
    as ``[hook, batch, d_model]``. amounts: a float, ``[batch]`` or ``[hook, batch]``.
    pos: an int or ``[batch]`` (one position per row). At each hook point,
    ``resid[i, pos[i]] += amounts[i] * directions[i]`` (steering's add); later layers then run
    on the edited stream (Li et al. 2023; Nanda et al. 2023). Returns ``[batch, pos,
    d_vocab]``. The hooks are removed in a ``finally``, also when the forward pass raises.
    """
    toks = as_tokens(model, tokens)
    names = resolve_hooks(model, hooks)
    batch, n_pos = toks.shape
    directions = torch.as_tensor(directions)
    if directions.dim() == 0 or not directions.dtype.is_floating_point:
        raise ValueError(
            f"directions must be a float tensor [d_model], [batch, d_model] or [hook, batch, "
            f"d_model], got shape {list(directions.shape)} dtype {directions.dtype}."
        )
    d = directions.shape[-1]
    amounts = torch.as_tensor(amounts, dtype=torch.float32)
    k = len(names)
    ok_dirs = directions.shape in ((d,), (batch, d), (k, batch, d))
    ok_amounts = amounts.shape in ((), (batch,), (k, batch))
    if not (ok_dirs and ok_amounts):
        raise ValueError(
            f"With {k} hook(s) and batch {batch}, directions must be [d_model], "
            f"[batch, d_model] or [hook, batch, d_model], and amounts a float, [batch] or "
            f"[hook, batch]; got directions {list(directions.shape)} and amounts "
            f"{list(amounts.shape)}."
        )
    dirs = directions.float().expand(k, batch, d)
    amt = amounts.expand(k, batch)
    mask = _one_hot(_row_positions(pos, batch, n_pos), n_pos)
    fwd = [
        (n, add_hook(n, amt[i][:, None] * dirs[i], mask, "directions")) for i, n in enumerate(names)
    ]
    with model.hooks(fwd):
        return model(toks)


def intervene_to_class(
    model, tokens, probes, variable, *, to_class, pos=-1, margin: float = 2.0
) -> InterventionResult:
    """The run with the state edited: at each probe's hook point (``probe.hook``), the
    residual at ``pos`` is pushed (:func:`push_to_class`) until that probe reads
    ``to_class`` for ``variable``, ahead of every other class by ``margin``.

    With probes at several layers this is the layer-by-layer edit of Li et al. (2023): the
    push at a later layer is computed on the stream as the earlier edits left it. tokens
    ``[batch, pos]``; variable, to_class long ``[batch]``; pos an int or ``[batch]``.
    Returns an :class:`InterventionResult`: logits ``[batch, pos, d_vocab]`` and how far
    each hook point's residual was pushed, ``[probe, batch]``. Hooks removed in a ``finally``.
    """
    toks = as_tokens(model, tokens)
    probes = [probes] if isinstance(probes, StateProbe) else list(probes)
    if not probes or not all(isinstance(p, StateProbe) for p in probes):
        raise TypeError(
            "probes must be a StateProbe or a non-empty list of them (from fit_state_probe), "
            f"got {[type(p).__name__ for p in probes] or 'an empty list'}."
        )
    batch, n_pos = toks.shape
    rows = torch.arange(batch)
    pos = _row_positions(pos, batch, n_pos)
    mask = _one_hot(pos, n_pos)
    for p in probes:
        if not p.hook:
            raise ValueError(
                "Every probe in probes needs its hook (where its activations came from), e.g. "
                "fit_state_probe(..., hook='blocks.2.hook_resid_post')."
            )
        check_hook(model, p.hook, "probes[...].hook")
        _targets(p, variable, to_class, batch, "tokens")
    amounts = {}

    def make_hook(k: int, probe: StateProbe):
        def hook(resid, hook_point):
            at = resid[rows, pos].float()
            unit, amount = push_to_class(probe, at, variable, to_class, margin=margin)
            amounts[k] = amount
            return add_hook(probe.hook, amount[:, None] * unit, mask)(resid, hook_point)

        return hook

    with model.hooks([(p.hook, make_hook(k, p)) for k, p in enumerate(probes)]):
        logits = model(toks)
    return InterventionResult(logits, torch.stack([amounts[k] for k in range(len(probes))]))
