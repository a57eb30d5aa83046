"""Linear and sparse probes on cached activations, with control tasks.

A probe asks whether a concept can be *read off* a layer linearly (Alain & Bengio 2016,
"Understanding intermediate layers using linear classifier probes"). Two cautions shape
the API:

* Accuracy alone says little: a flexible probe can memorise. Hewitt & Liang 2019
  ("Designing and Interpreting Probes with Control Tasks") give each word *type* a
  fixed random label; a probe that also learns that control task is memorising.
  ``selectivity = real accuracy - control accuracy`` (both held out).
* Which neurons carry it: Gurnee et al. 2023 ("Finding Neurons in a Haystack") rank
  neurons by a cheap univariate score and fit a probe on the top ``k`` only.

Every fit is seeded and deterministic: a seeded held-out split, then closed-form ridge
(``kind="lstsq"``) or full-batch L-BFGS on the L2-penalised multinomial log-likelihood
(``kind="logistic"``). Features are standardised for the fit and the weights mapped back,
so ``Probe.weight`` acts on raw activations and ``Probe.direction`` is a direction in the
model's own space (e.g. for steering along a probe).

Shapes: ``acts [n, d]`` (float), ``labels [n]`` (int classes ``0..C-1``) or float targets
``[n]`` / ``[n, k]`` for least-squares regression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ._probe_fit import (
    as_acts,
    as_label_tensor,
    as_labels,
    as_types,
    fit_logistic,
    fit_ridge,
    r2,
    rank_scores,
    split,
    standardise,
)

__all__ = [
    "Probe",
    "SelectivityResult",
    "SparseProbe",
    "control_task",
    "fit_probe",
    "selectivity",
    "sparse_probe",
]


# ---- the probe ----------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """A fitted linear probe: ``scores = acts @ weight.T + bias``.

    weight ``[C, d]`` and bias ``[C]`` act on raw activations (C = classes, or targets
    for regression). ``train_accuracy`` / ``test_accuracy`` are accuracies for
    classification and R^2 for regression (``test_accuracy`` is NaN when
    ``test_frac=0``). ``train_index`` / ``test_index`` are the rows of the fitted
    ``acts`` in each split.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    kind: str
    task: str  # "classification" or "regression"
    train_accuracy: float
    test_accuracy: float
    train_index: torch.Tensor = field(repr=False)
    test_index: torch.Tensor = field(repr=False)

    @property
    def n_classes(self) -> int:
        """Number of classes (classification) or target columns (regression)."""
        return self.weight.shape[0]

    def _check(self, acts) -> torch.Tensor:
        acts = as_acts(acts)
        if acts.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"acts has d={acts.shape[1]} features but this probe was fitted on "
                f"d={self.weight.shape[1]}; use activations from the same hook point."
            )
        return acts

    def scores(self, acts) -> torch.Tensor:
        """Class logits (or regression outputs): ``[n, d] -> [n, C]``."""
        return self._scores(self._check(acts))

    def _scores(self, acts: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(acts.device, acts.dtype)
        return acts @ w.T + self.bias.to(acts.device, acts.dtype)

    def predict(self, acts) -> torch.Tensor:
        """Predicted class ``[n]`` (long), or regression values ``[n]`` (``[n, k]`` for k > 1)."""
        return self._predict(self._check(acts))

    def _predict(self, acts: torch.Tensor) -> torch.Tensor:
        s = self._scores(acts)
        if self.task == "classification":
            return s.argmax(-1)
        return s[:, 0] if s.shape[1] == 1 else s

    def accuracy(self, acts, labels) -> float:
        """Accuracy of ``predict(acts)`` against ``labels`` (R^2 for regression)."""
        acts = self._check(acts)
        labels = as_label_tensor(labels)
        if labels.shape[0:1] != (acts.shape[0],):
            raise ValueError(
                f"labels has shape {list(labels.shape)} but acts has {acts.shape[0]} rows; "
                f"expected one label per row."
            )
        return self._accuracy(acts, labels)

    def _accuracy(self, acts: torch.Tensor, labels: torch.Tensor) -> float:
        return self._accuracy_of(self._predict(acts), labels.to(acts.device))

    def _accuracy_of(self, pred: torch.Tensor, labels: torch.Tensor) -> float:
        if self.task == "regression":
            return r2(pred, labels)
        return float((pred == labels).float().mean())

    def direction(self, cls: int | None = None) -> torch.Tensor:
        """Unit vector ``[d]`` along which the score of ``cls`` rises against the rest.

        Multinomial: ``w[cls] - mean_{c != cls} w[c]`` (for two classes ``w[1] - w[0]``),
        normalised. Regression: target ``cls``'s weight row, normalised. ``cls=None``:
        class 1 of a binary probe, or the single target of a regression.
        """
        c = self.n_classes
        if cls is None:
            if self.task == "regression" and c == 1:
                cls = 0
            elif self.task == "classification" and c == 2:
                cls = 1
            else:
                raise ValueError(f"this probe has {c} outputs: name one, direction(cls=...).")
        if not -c <= cls < c:
            raise ValueError(f"cls={cls} but the probe has {c} classes (0..{c - 1}).")
        w = self.weight.double()
        if self.task == "regression" or c == 1:
            v = w[cls]
        else:
            rest = torch.cat([w[: cls % c], w[cls % c + 1 :]])
            v = w[cls] - rest.mean(0)
        return (v / v.norm().clamp_min(1e-30)).to(self.weight.dtype)


def fit_probe(
    acts,
    labels,
    *,
    kind: str = "logistic",
    test_frac: float = 0.2,
    seed: int = 0,
    l2: float = 1e-3,
    steps: int = 200,
) -> Probe:
    """Fit a linear probe on activations with a seeded held-out split.

    acts ``[n, d]``; labels ``[n]`` int classes 0..C-1 (C >= 2), or float targets ``[n]``
    / ``[n, k]`` for ``kind="lstsq"`` regression.

    kind: ``"logistic"`` (multinomial logistic regression, Alain & Bengio 2016), fitted by
    full-batch L-BFGS for at most ``steps`` iterations on ``mean CE + l2 * |W|^2`` over
    standardised features; or ``"lstsq"``: ridge regression in closed form
    (``(X^T X + n l2 I)^-1 X^T Y``) onto one-hot targets (classification, predict = argmax)
    or onto the float targets (regression, accuracy = R^2).

    Returns a :class:`Probe` whose weights act on raw activations.
    """
    if kind not in ("logistic", "lstsq"):
        raise ValueError(f"kind={kind!r}; expected 'logistic' or 'lstsq'.")
    if l2 < 0:
        raise ValueError(f"l2={l2}; expected a non-negative penalty (e.g. 1e-3).")
    acts = as_acts(acts)
    n, d = acts.shape
    labels, is_cls = as_labels(labels, n, kind)
    labels = labels.to(acts.device)
    train, test = split(n, test_frac, seed)
    train, test = train.to(acts.device), test.to(acts.device)

    if is_cls and int(torch.unique(labels[train]).numel()) < 2:
        raise ValueError(
            "the training split holds one class only; give more examples of each class "
            "or a different seed / test_frac."
        )
    # Standardise the training rows in float64 (conditioning), fit, map back. The logistic
    # fit takes them as columns [d, n_train], the ridge fit as rows.
    if kind == "logistic":
        xt = acts[train].T.contiguous().double()
        mu, sd = standardise(xt, 1)
        w, b = fit_logistic(xt, labels[train], int(labels.max()) + 1, l2, steps)
    else:
        xs = acts[train].double()
        mu, sd = standardise(xs, 0)
        if is_cls:
            y = torch.nn.functional.one_hot(labels[train], int(labels.max()) + 1).double()
        else:
            y = labels[train].double().reshape(len(train), -1)
        w, b = fit_ridge(xs, y, l2)

    weight = w / sd  # [C, d] on raw activations
    bias = b - weight @ mu
    out_dtype = acts.dtype if acts.dtype in (torch.float32, torch.float64) else torch.float32
    probe = Probe(
        weight=weight.to(out_dtype),
        bias=bias.to(out_dtype),
        kind=kind,
        task="classification" if is_cls else "regression",
        train_accuracy=math.nan,
        test_accuracy=math.nan,
        train_index=train.cpu(),
        test_index=test.cpu(),
    )
    pred = probe._predict(acts)  # one pass over all rows, then each split's
    train_acc = probe._accuracy_of(pred[train], labels[train])
    test_acc = probe._accuracy_of(pred[test], labels[test]) if len(test) else math.nan
    object.__setattr__(probe, "train_accuracy", train_acc)
    object.__setattr__(probe, "test_accuracy", test_acc)
    return probe


# ---- control tasks (Hewitt & Liang 2019) --------------------------------------


def control_task(types, labels=None, *, n_classes: int | None = None, seed: int = 0):
    """Control-task labels: every *type* gets one fixed random label.

    types ``[n]`` int: the word type of each example (e.g. its token id). Each distinct
    type draws one label, shared by all its examples; the draw follows the empirical
    class frequencies of ``labels`` ``[n]`` when given (as Hewitt & Liang 2019 do), else
    is uniform over ``n_classes``. A probe that scores well on these labels can only be
    memorising type identity. Returns ``[n]`` long labels (re-drawn, seeded, so that at
    least two classes occur).
    """
    types = as_label_tensor(types, "types").cpu()
    if types.dim() != 1 or types.is_floating_point():
        raise ValueError(
            f"types must be 1-D integer ids [n] (e.g. token ids), got shape "
            f"{list(types.shape)} dtype {types.dtype}."
        )
    if labels is not None:
        labels, _ = as_labels(labels, types.shape[0], "logistic")
        labels = labels.cpu()
        n_cls = int(labels.max()) + 1
        probs = torch.bincount(labels, minlength=n_cls).double()
    elif n_classes is not None:
        if n_classes < 2:
            raise ValueError(f"n_classes={n_classes}; a control task needs at least 2 classes.")
        n_cls = n_classes
        probs = torch.ones(n_cls, dtype=torch.float64)
    else:
        raise ValueError(
            "control_task needs labels (to copy their class frequencies) or n_classes."
        )
    uniq, inverse = torch.unique(types, return_inverse=True)
    if uniq.numel() < 2:
        raise ValueError(
            f"types holds one type only ({int(uniq[0])}); a control task needs at least 2 types."
        )
    gen = torch.Generator().manual_seed(seed)
    for _ in range(100):
        per_type = torch.multinomial(probs, uniq.numel(), replacement=True, generator=gen)
        if torch.unique(per_type).numel() >= 2:
            break
    return per_type[inverse]


@dataclass(frozen=True)
class SelectivityResult:
    """A probe on the real task and on its control task (Hewitt & Liang 2019).

    ``selectivity = real.test_accuracy - control.test_accuracy``: high when the layer
    encodes the concept, not merely the identity of each type.
    """

    real: Probe
    control: Probe
    control_labels: torch.Tensor = field(repr=False)

    @property
    def selectivity(self) -> float:
        return self.real.test_accuracy - self.control.test_accuracy


def selectivity(
    acts,
    labels,
    types,
    *,
    kind: str = "logistic",
    test_frac: float = 0.2,
    seed: int = 0,
    l2: float = 1e-3,
    steps: int = 200,
) -> SelectivityResult:
    """Fit the same probe on the real labels and on a control task, on the same split.

    acts ``[n, d]``, labels ``[n]`` int, types ``[n]`` int (word type per example). The
    control labels come from :func:`control_task` (seeded by ``seed``). Returns a
    :class:`SelectivityResult`; ``.selectivity`` is the held-out accuracy difference.
    """
    acts = as_acts(acts)
    labels, is_cls = as_labels(labels, acts.shape[0], kind)
    if not is_cls:
        raise ValueError("selectivity needs class labels (integers), not regression targets.")
    types = as_types(types, acts.shape[0])
    control = control_task(types, labels, seed=seed)
    opts = dict(kind=kind, test_frac=test_frac, seed=seed, l2=l2, steps=steps)
    real = fit_probe(acts, labels, **opts)
    ctrl = fit_probe(acts, control, **opts)
    return SelectivityResult(real=real, control=ctrl, control_labels=control)


# ---- sparse probing (Gurnee et al. 2023) --------------------------------------


@dataclass(frozen=True)
class SparseProbe:
    """The top-``k`` neurons for a feature and the probe fitted on them alone.

    neurons ``[k]`` (column indices of acts, best first); ``accuracy`` is the probe's
    held-out accuracy; ``ranking`` ``[d]`` is the score each neuron was ranked by (on the
    training split). Unpacks as ``neurons, accuracy = sparse_probe(...)``.
    """

    neurons: torch.Tensor
    accuracy: float
    probe: Probe = field(repr=False)
    ranking: torch.Tensor = field(repr=False)

    def __iter__(self):
        return iter((self.neurons, self.accuracy))


def sparse_probe(
    acts,
    labels,
    k: int,
    *,
    method: str = "f_stat",
    kind: str = "logistic",
    test_frac: float = 0.2,
    seed: int = 0,
    l2: float = 1e-3,
    steps: int = 200,
) -> SparseProbe:
    """k-sparse probing (Gurnee et al. 2023, "Finding Neurons in a Haystack").

    Rank the ``d`` neurons of acts ``[n, d]`` by a univariate score on the training split
    only (``method="f_stat"``: ANOVA F; ``"mean_diff"``: |class mean - rest mean|), keep
    the top ``k``, and fit a probe on those columns with the same split. labels ``[n]``
    int. Returns a :class:`SparseProbe` (unpacks as ``(neurons [k], accuracy)``).
    """
    if method not in ("f_stat", "mean_diff"):
        raise ValueError(f"method={method!r}; expected 'f_stat' or 'mean_diff'.")
    acts = as_acts(acts)
    n, d = acts.shape
    if not 1 <= k <= d:
        raise ValueError(f"k={k}; expected 1 <= k <= d = {d} (the number of neurons).")
    labels, is_cls = as_labels(labels, n, "logistic")
    train, _ = split(n, test_frac, seed)
    score = rank_scores(acts.double()[train.to(acts.device)], labels[train].to(acts.device), method)
    # Stable sort: ties go to the lower index, so the choice is deterministic.
    neurons = torch.sort(-score.cpu(), stable=True).indices[:k]
    probe = fit_probe(
        acts[:, neurons.to(acts.device)],
        labels,
        kind=kind,
        test_frac=test_frac,
        seed=seed,
        l2=l2,
        steps=steps,
    )
    return SparseProbe(
        neurons=neurons, accuracy=probe.test_accuracy, probe=probe, ranking=score.float().cpu()
    )
