"""World models: read a state out of the residual stream with linear probes, and write it back.

Li et al. (2023), "Emergent World Representations", probed an Othello move-sequence model for
the board and edited the board by intervening on its activations; Nanda et al. (2023),
"Emergent Linear Representations in World Models of Self-Supervised Sequence Models", found
the board is *linearly* represented (as empty / mine / theirs relative to the player to move)
and edited it by pushing the residual stream along a probe's directions. Nothing here is
specific to Othello:

- :func:`activations_at` collects one hook point's activations at chosen positions;
- :func:`fit_state_probe` fits one linear probe per state variable (per board square, with
  :func:`mechscope.probes.fit_probe`), all over the same classes; :class:`StateProbe` reads
  or scores a whole state at once;
- :func:`push_to_class` gives, per example, a push along the probe's class-difference
  directions that makes the probe read a chosen class (by a margin);
- :func:`intervene_along` runs the model with the residual pushed along given directions at
  given positions and hook points; :func:`intervene_to_class` pushes at each probe's hook
  point, on the fly, until that probe reads the chosen class (hooks removed in a ``finally``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


def activations_at(
    model, tokens: torch.Tensor, hook_name: str, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Activations of ``hook_name`` at the positions where ``mask`` is True.

    tokens: ``[batch, pos]``; mask: bool ``[batch, pos]`` (None = every position).
    Returns ``[n, d_model]`` with rows in ``mask.nonzero()`` order (float32, no grad).
    """
    tokens = torch.as_tensor(tokens)
    if mask is not None and tuple(mask.shape) != tuple(tokens.shape):
        raise ValueError(
            f"mask has shape {list(mask.shape)}, expected the tokens' shape {list(tokens.shape)} "
            "(one bool per [batch, pos])."
        )
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names=hook_name)
    acts = cache[hook_name].float()
    return acts.reshape(-1, acts.shape[-1]) if mask is None else acts[mask.to(acts.device)]


@dataclass
class StateProbe:
    """One linear probe per state variable (e.g. per board square), all over the same classes.

    weight: ``[variable, class, d_model]``; bias: ``[variable, class]``; ``hook_name``: where the
    activations came from; ``classes``: class names.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    hook_name: str = ""
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
    hook_name: str = "",
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
    return StateProbe(weight, bias, hook_name, tuple(classes))


def push_to_class(
    probe: StateProbe,
    acts: torch.Tensor,
    variable: torch.Tensor,
    to_class: torch.Tensor,
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
    variable, to_class = torch.as_tensor(variable).long(), torch.as_tensor(to_class).long()
    if variable.shape != (acts.shape[0],) or to_class.shape != (acts.shape[0],):
        raise ValueError(
            f"variable and to_class must be [n] = [{acts.shape[0]}] (one per row of acts), got "
            f"{list(variable.shape)} and {list(to_class.shape)}."
        )
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


def intervene_along(
    model,
    tokens: torch.Tensor,
    hook_names: str | Sequence[str],
    directions: torch.Tensor,
    amounts: torch.Tensor | float,
    positions: torch.Tensor | int = -1,
) -> torch.Tensor:
    """Logits with the residual pushed along ``directions`` at ``positions`` and ``hook_names``.

    tokens: ``[batch, pos]``. directions: ``[d_model]`` (one for all rows) or ``[batch,
    d_model]``, or one such per hook name as ``[hook, batch, d_model]``. amounts: a float,
    ``[batch]`` or ``[hook, batch]``. positions: an int or ``[batch]`` (one position per row).
    At each hook point, ``resid[i, positions[i]] += amounts[i] * directions[i]``; later layers
    then run on the edited stream (Li et al. 2023; Nanda et al. 2023). Returns ``[batch, pos,
    d_vocab]``. The hooks are removed in a ``finally``, also when the forward pass raises.
    """
    tokens = torch.as_tensor(tokens)
    names = [hook_names] if isinstance(hook_names, str) else list(hook_names)
    batch = tokens.shape[0]
    d = directions.shape[-1]
    amounts = torch.as_tensor(amounts, dtype=torch.float32)
    k = len(names)
    ok_dirs = directions.shape in ((d,), (batch, d), (k, batch, d))
    ok_amounts = amounts.shape in ((), (batch,), (k, batch))
    if not (ok_dirs and ok_amounts):
        raise ValueError(
            f"With {k} hook name(s) and batch {batch}, directions must be [d_model], "
            f"[batch, d_model] or [hook, batch, d_model], and amounts a float, [batch] or "
            f"[hook, batch]; got directions {list(directions.shape)} and amounts "
            f"{list(amounts.shape)}."
        )
    dirs = directions.float().expand(k, batch, d)
    amt = amounts.expand(k, batch)
    pos = torch.as_tensor(positions).long()
    pos = pos.expand(batch) if pos.dim() == 0 else pos
    if pos.shape != (batch,):
        raise ValueError(f"positions must be an int or [batch] = [{batch}], got {list(pos.shape)}.")
    rows = torch.arange(batch)

    def make_hook(k: int):
        def hook(resid, _hook):
            if resid.shape[-1] != d:
                raise ValueError(
                    f"directions have d_model={d} but {_hook.name} has {resid.shape[-1]}."
                )
            resid = resid.clone()
            delta = (amt[k][:, None] * dirs[k]).to(resid.dtype).to(resid.device)
            resid[rows, pos] += delta
            return resid

        return hook

    with model.hooks([(name, make_hook(k)) for k, name in enumerate(names)]):
        return model(tokens)


def intervene_to_class(
    model,
    tokens: torch.Tensor,
    probes: StateProbe | Sequence[StateProbe],
    variable: torch.Tensor,
    to_class: torch.Tensor,
    positions: torch.Tensor | int = -1,
    margin: float = 2.0,
    return_amounts: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Logits with the state edited: at each probe's hook point (``probe.hook_name``), the
    residual at ``positions`` is pushed (:func:`push_to_class`) until that probe reads
    ``to_class`` for ``variable``, ahead of every other class by ``margin``.

    With probes at several layers this is the layer-by-layer edit of Li et al. (2023): the
    push at a later layer is computed on the stream as the earlier edits left it. tokens
    ``[batch, pos]``; variable, to_class long ``[batch]``; positions an int or ``[batch]``.
    Returns ``[batch, pos, d_vocab]`` (with ``return_amounts``, also how far each hook point's
    residual was pushed, ``[probe, batch]``). Hooks are removed in a ``finally``.
    """
    tokens = torch.as_tensor(tokens)
    probes = [probes] if isinstance(probes, StateProbe) else list(probes)
    batch = tokens.shape[0]
    pos = torch.as_tensor(positions).long()
    pos = pos.expand(batch) if pos.dim() == 0 else pos
    if pos.shape != (batch,):
        raise ValueError(f"positions must be an int or [batch] = [{batch}], got {list(pos.shape)}.")
    missing = [p for p in probes if not p.hook_name]
    if missing:
        raise ValueError(
            "Every probe needs its hook_name (where its activations came from), e.g. "
            "fit_state_probe(..., hook_name='blocks.2.hook_resid_post')."
        )
    rows = torch.arange(batch)
    amounts = {}

    def make_hook(k: int, probe: StateProbe):
        def hook(resid, _hook):
            at = resid[rows, pos].float()
            unit, amount = push_to_class(probe, at, variable, to_class, margin)
            amounts[k] = amount
            resid = resid.clone()
            resid[rows, pos] = (at + amount[:, None] * unit).to(resid.dtype)
            return resid

        return hook

    with model.hooks([(p.hook_name, make_hook(k, p)) for k, p in enumerate(probes)]):
        logits = model(tokens)
    if return_amounts:
        return logits, torch.stack([amounts[k] for k in range(len(probes))])
    return logits
