"""Non-linear (MLP) probes, and their selectivity against a control task.

A one-hidden-layer MLP probe can read off more than a linear one, but more of what it reads
may be its own doing: Hewitt & Liang 2019 ("Designing and Interpreting Probes with Control
Tasks") found MLP probes gain accuracy on the real task *and more* on a control task that
only memorisation can solve, so they are less selective. Compare probes by selectivity
(real minus control held-out accuracy, :func:`mechscope.probes.selectivity`), not by
accuracy alone. Belinkov 2022 ("Probing Classifiers: Promises, Shortcomings, and Advances")
reviews the debate.

The fit mirrors :func:`mechscope.probes.fit_probe`: the same seeded held-out split, features
standardised on the training rows, then ``steps`` full-batch Adam steps on the mean cross
entropy plus ``l2`` times the squared weights. Deterministic for a given ``seed`` (on one
thread).

Shapes: ``acts [n, d]``, ``labels [n]`` int classes ``0..C-1``, ``types [n]`` int.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ._probe_fit import as_acts, as_label_tensor, as_labels, as_types, split, standardise
from .probes import SelectivityResult, control_task

__all__ = ["MLPProbe", "fit_mlp_probe", "mlp_selectivity"]


@dataclass(frozen=True)
class MLPProbe:
    """``scores = relu(standardise(acts) @ w1.T + b1) @ w2.T + b2``.

    w1 ``[d_mlp, d]``, w2 ``[C, d_mlp]``; mean / std ``[d]`` standardise raw activations.
    ``train_accuracy`` / ``test_accuracy`` as in :class:`mechscope.probes.Probe`.
    """

    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    train_accuracy: float
    test_accuracy: float
    train_index: torch.Tensor = field(repr=False)
    test_index: torch.Tensor = field(repr=False)
    kind: str = "mlp"
    task: str = "classification"

    @property
    def n_classes(self) -> int:
        return self.w2.shape[0]

    def scores(self, acts) -> torch.Tensor:
        """Class logits ``[n, d] -> [n, C]``."""
        acts = as_acts(acts)
        if acts.shape[1] != self.w1.shape[1]:
            raise ValueError(
                f"acts has d={acts.shape[1]} features but this probe was fitted on "
                f"d={self.w1.shape[1]}; use activations from the same hook point."
            )
        x = (acts.double() - self.mean) / self.std
        return _forward(x, self.w1, self.b1, self.w2, self.b2)

    def predict(self, acts) -> torch.Tensor:
        """Predicted class ``[n]`` (long)."""
        return self.scores(acts).argmax(-1)

    def accuracy(self, acts, labels) -> float:
        """Accuracy of ``predict(acts)`` against ``labels [n]``."""
        pred = self.predict(acts)
        labels = as_label_tensor(labels)
        if labels.shape != pred.shape:
            raise ValueError(
                f"labels has shape {list(labels.shape)} but acts has {len(pred)} rows; "
                f"expected one label per row."
            )
        return float((pred == labels.long()).float().mean())


def _forward(x, w1, b1, w2, b2):
    return torch.relu(x @ w1.T + b1) @ w2.T + b2


def fit_mlp_probe(
    acts,
    labels,
    *,
    d_mlp: int = 64,
    test_frac: float = 0.2,
    seed: int = 0,
    l2: float = 1e-3,
    steps: int = 300,
    lr: float = 1e-2,
) -> MLPProbe:
    """Fit a one-hidden-layer ReLU probe (width ``d_mlp``) with the seeded split of ``fit_probe``.

    acts ``[n, d]``, labels ``[n]`` int classes 0..C-1. Full-batch Adam, ``steps`` steps at
    ``lr``, loss ``mean CE + l2 * (|w1|^2 + |w2|^2)`` on standardised features; weights
    start from a seeded Kaiming-uniform draw. Returns an :class:`MLPProbe`.
    """
    if isinstance(d_mlp, bool) or not isinstance(d_mlp, int) or d_mlp < 1:
        raise ValueError(f"d_mlp={d_mlp!r}; expected a positive int (the hidden width, e.g. 64).")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}; expected a positive int.")
    if l2 < 0 or not lr > 0:
        raise ValueError(f"l2={l2}, lr={lr}; expected l2 >= 0 and lr > 0.")
    acts = as_acts(acts).cpu()
    n, d = acts.shape
    labels = as_labels(labels, n, "logistic")[0].cpu()
    train, test = split(n, test_frac, seed)
    if int(torch.unique(labels[train]).numel()) < 2:
        raise ValueError(
            "the training split holds one class only; give more examples of each class."
        )
    n_cls = int(labels.max()) + 1
    xt = acts[train].double()
    mean, std = standardise(xt, 0)
    gen = torch.Generator().manual_seed(seed)

    def uniform(*shape, fan_in):
        bound = 1 / math.sqrt(fan_in)
        return (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound

    params = [uniform(d_mlp, d, fan_in=d), uniform(d_mlp, fan_in=d),
              uniform(n_cls, d_mlp, fan_in=d_mlp), uniform(n_cls, fan_in=d_mlp)]  # fmt: skip
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    yt = labels[train]
    with torch.enable_grad():
        for _ in range(steps):
            w1, b1, w2, b2 = params
            loss = torch.nn.functional.cross_entropy(_forward(xt, w1, b1, w2, b2), yt)
            loss = loss + l2 * (w1.pow(2).sum() + w2.pow(2).sum())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    w1, b1, w2, b2 = (p.detach() for p in params)
    probe = MLPProbe(w1, b1, w2, b2, mean, std, math.nan, math.nan, train, test)
    train_acc = probe.accuracy(acts[train], labels[train])
    test_acc = probe.accuracy(acts[test], labels[test]) if len(test) else math.nan
    object.__setattr__(probe, "train_accuracy", train_acc)
    object.__setattr__(probe, "test_accuracy", test_acc)
    return probe


def mlp_selectivity(
    acts,
    labels,
    types,
    *,
    d_mlp: int = 64,
    test_frac: float = 0.2,
    seed: int = 0,
    l2: float = 1e-3,
    steps: int = 300,
    lr: float = 1e-2,
) -> SelectivityResult:
    """:func:`mechscope.probes.selectivity` with MLP probes: the same split and control task.

    acts ``[n, d]``, labels ``[n]`` int, types ``[n]`` int (the type each example's control
    label is drawn for, :func:`mechscope.probes.control_task`). Returns a
    :class:`mechscope.probes.SelectivityResult` whose ``real`` and ``control`` are
    :class:`MLPProbe` s; ``.selectivity`` is the held-out accuracy difference.
    """
    acts = as_acts(acts)
    labels, _ = as_labels(labels, acts.shape[0], "logistic")
    types = as_types(types, acts.shape[0])
    control = control_task(types, labels, seed=seed)
    opts = dict(d_mlp=d_mlp, test_frac=test_frac, seed=seed, l2=l2, steps=steps, lr=lr)
    real = fit_mlp_probe(acts, labels, **opts)
    ctrl = fit_mlp_probe(acts, control, **opts)
    return SelectivityResult(real=real, control=ctrl, control_labels=control)
