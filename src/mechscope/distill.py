"""A policy distilled into a program: a decision tree over features read from the model.

The review (Bereska & Gavves 2024, §8) names neurosymbolic methods, programs and decision trees
distilled from a network, as a way to state what a model does in a form a person can check.
The recipe here follows policy extraction (Bastani, Pu & Solar-Lezama 2018, "Verifiable
Reinforcement Learning via Policy Extraction"; Frosst & Hinton 2017, "Distilling a Neural
Network into a Soft Decision Tree"): run the model, read features from one hidden layer (e.g.
the positions a probe decodes), fit a small tree from those features to the model's *own*
actions, and score the tree by **fidelity**, its agreement with the model on held-out inputs.
The tree's if/else rules are the program.

This is distillation of *behaviour*: the tree imitates input-output pairs and says nothing
about how the weights compute them. MIPS (Michaud et al. 2024, "Opening the AI Black Box:
Program Synthesis via Mechanistic Interpretability", review §5.4) goes further: it reads a
program from an RNN's weights (integer autoencoding of the hidden states, then symbolic
regression of the update), so its program is the network's mechanism.

    policy_readout   run the model once: activations at a hook, its actions, probe readouts
    distill_tree     fit a depth-limited tree (scikit-learn, imported lazily) on a seeded split
    DistilledTree    fidelity (train / held-out), the majority baseline, leaves, ``.rules()``
    fidelity         agreement of predicted actions with the model's

Shapes: ``features [n, k]`` floats, ``targets [n]`` integer classes (the model's actions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ._probe_fit import split
from .probes import Probe

__all__ = ["DistilledTree", "PolicyReadout", "distill_tree", "fidelity", "policy_readout"]


def _as_labels(x, what: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dtype == torch.bool or t.dtype.is_floating_point or t.ndim != 1:
        raise ValueError(
            f"{what} has shape {list(t.shape)} dtype {t.dtype}; expected integer classes [n] "
            "(e.g. the model's actions, logits.argmax(-1))."
        )
    return t.long().cpu()


def fidelity(predicted, reference) -> float:
    """The fraction of rows where ``predicted`` ``[n]`` equals ``reference`` ``[n]`` (a
    surrogate's actions against the model's own; 1.0 = the program imitates it everywhere)."""
    p, r = _as_labels(predicted, "predicted"), _as_labels(reference, "reference")
    if len(p) != len(r) or len(p) == 0:
        raise ValueError(
            f"predicted has {len(p)} rows and reference {len(r)}; expected the same n > 0 "
            "(one prediction per input)."
        )
    return float((p == r).float().mean())


@dataclass(frozen=True)
class PolicyReadout:
    """One run of a policy: ``acts`` ``[n, d]`` at ``hook``, ``actions`` ``[n]`` (its top
    logit), and ``decoded``: each probe's prediction ``[n]`` (long classes or float values)."""

    hook: str
    acts: torch.Tensor = field(repr=False)
    actions: torch.Tensor = field(repr=False)
    decoded: dict = field(repr=False)


def policy_readout(model, inputs, hook: str, *, probes: dict | None = None) -> PolicyReadout:
    """Run ``model`` once on ``inputs`` (e.g. a :class:`~mechscope.rl.GridAgent` on
    observations ``[n, d_obs]``) and read its hidden layer at ``hook`` (rows ``[n, d]``), its
    actions (argmax of the output ``[n, n_actions]``), and ``probes`` ``{name: Probe}``
    (from :func:`mechscope.probes.fit_probe`) applied to those rows. No gradients; the model
    keeps its weights, hooks and mode."""
    if not isinstance(hook, str):
        raise TypeError(f"hook={hook!r}; expected one hook name, e.g. 'blocks.1.hook_resid_pre'.")
    probes = {} if probes is None else probes
    if not isinstance(probes, dict) or not all(isinstance(p, Probe) for p in probes.values()):
        raise TypeError(
            f"probes={probes!r:.80}; expected a dict {{name: Probe}} of probes fitted with "
            "mechscope.probes.fit_probe on this hook's activations."
        )
    with torch.no_grad():
        logits, cache = model.run_with_cache(inputs, names=[hook])
    acts = cache[hook].float()
    if acts.ndim != 2 or logits.ndim != 2:
        raise ValueError(
            f"hook {hook!r} gives {list(acts.shape)} and the output {list(logits.shape)}; "
            "policy_readout expects one row per input ([n, d] and [n, n_actions]), as a "
            "policy network gives. For a sequence model pick a position first."
        )
    for name, probe in probes.items():
        if probe.weight.shape[-1] != acts.shape[1]:
            raise ValueError(
                f"probes[{name!r}] reads {probe.weight.shape[-1]} dimensions but hook {hook!r} "
                f"has {acts.shape[1]}; fit it on this hook's activations."
            )
    decoded = {name: probe.predict(acts).cpu() for name, probe in probes.items()}
    return PolicyReadout(hook, acts.cpu(), logits.argmax(-1).cpu(), decoded)


@dataclass(frozen=True)
class DistilledTree:
    """A decision tree fitted to a model's actions (:func:`distill_tree`).

    train_fidelity / test_fidelity: agreement with the targets on the training / held-out rows;
    majority: the held-out agreement of always answering the most common training target (the
    depth-0 program, the baseline a tree must beat); n_leaves: leaves of the printed program
    (sibling leaves with the same answer merged, predictions unchanged); depth: of that program.
    """

    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    max_depth: int | None
    train_fidelity: float
    test_fidelity: float
    majority: float
    n_leaves: int
    depth: int
    train_index: torch.Tensor = field(repr=False)
    test_index: torch.Tensor = field(repr=False)
    tree: object = field(repr=False)  # the fitted sklearn.tree.DecisionTreeClassifier
    kinds: tuple[str, ...] = field(repr=False)  # per feature: "binary", "integer" or "real"

    def predict(self, features) -> torch.Tensor:
        """The program's answer for each row of ``features`` ``[n, k]``: long ``[n]``."""
        x = _as_features(features, len(self.feature_names))
        return torch.as_tensor(self.tree.predict(x.numpy())).long()

    def rules(self) -> str:
        """The tree as a Python function, one ``if`` per split, early returns: it computes
        exactly :meth:`predict` (real-valued thresholds are printed with 4 significant digits;
        integer and 0/1 features exactly)."""
        lines = [f"def program({', '.join(self.used_features)}):"]
        self._emit(_collapse(self.tree.tree_, 0), 1, lines)
        return "\n".join(lines)

    @property
    def used_features(self) -> tuple[str, ...]:
        """The features the printed program tests, in column order."""
        used = _used(_collapse(self.tree.tree_, 0))
        return tuple(name for i, name in enumerate(self.feature_names) if i in used)

    def _emit(self, node, depth: int, lines: list[str]) -> None:
        pad = "    " * depth
        if node[0] == "leaf":
            label = int(self.tree.classes_[node[1]])
            lines.append(f"{pad}return {self.class_names[label]!r}")
            return
        _, f, t, left, right = node
        name, kind = self.feature_names[f], self.kinds[f]
        if kind == "binary":
            cond = f"not {name}"
        elif kind == "integer":
            cond = f"{name} <= {math.floor(t)}"
        else:
            cond = f"{name} <= {t:.4g}"
        lines.append(f"{pad}if {cond}:")
        self._emit(left, depth + 1, lines)
        self._emit(right, depth, lines)

    def __repr__(self) -> str:
        return (
            f"DistilledTree(max_depth={self.max_depth}, leaves={self.n_leaves}, fidelity "
            f"{self.test_fidelity:.3f} held out (majority {self.majority:.3f}))"
        )


def _as_features(features, k: int | None = None) -> torch.Tensor:
    x = torch.as_tensor(features)
    if x.ndim != 2 or (k is not None and x.shape[1] != k):
        want = f"[n, {k}]" if k is not None else "[n, k]"
        raise ValueError(
            f"features has shape {list(x.shape)}; expected {want}, one row of numbers per input."
        )
    x = x.double().cpu()
    if not torch.isfinite(x).all():
        raise ValueError("features hold NaN or Inf; a tree needs finite values.")
    return x


def _collapse(t, i: int):
    """The subtree at node ``i`` as nested tuples, sibling leaves with one answer merged."""
    if t.children_left[i] == -1:
        return ("leaf", int(t.value[i][0].argmax()))
    left, right = _collapse(t, t.children_left[i]), _collapse(t, t.children_right[i])
    if left[0] == right[0] == "leaf" and left[1] == right[1]:
        return left
    return ("split", int(t.feature[i]), float(t.threshold[i]), left, right)


def _used(node) -> set[int]:
    return set() if node[0] == "leaf" else {node[1]} | _used(node[3]) | _used(node[4])


def _leaves(node) -> int:
    return 1 if node[0] == "leaf" else _leaves(node[3]) + _leaves(node[4])


def _depth(node) -> int:
    return 0 if node[0] == "leaf" else 1 + max(_depth(node[3]), _depth(node[4]))


def distill_tree(
    features, targets, *, max_depth: int | None = 3, feature_names=None, class_names=None,
    test_frac: float = 0.2, seed: int = 0,
) -> DistilledTree:  # fmt: skip
    """Fit a decision tree (CART, scikit-learn) from ``features`` ``[n, k]`` to ``targets``
    ``[n]`` (the model's actions) on a seeded split, and score its fidelity.

    The split is :func:`mechscope.probes.fit_probe`'s (same ``n``, ``test_frac``, ``seed`` ->
    same held-out rows), so a tree on probe-decoded features is scored on rows its probes never
    saw. max_depth: the tree's depth limit (``None``: grow until pure). feature_names: one
    identifier per column (default ``x0, x1, ...``); class_names: a name per target class
    (default the class number), both used by :meth:`DistilledTree.rules`.
    """
    try:
        from sklearn.tree import DecisionTreeClassifier
    except ImportError as err:  # optional dependency (the dev and lab extras install it)
        raise ImportError(
            "distill_tree needs scikit-learn: pip install scikit-learn (or mechscope[lab])."
        ) from err
    x = _as_features(features)
    y = _as_labels(targets, "targets")
    n, k = x.shape
    if len(y) != n:
        raise ValueError(f"features has {n} rows but targets {len(y)}; give one target per row.")
    if max_depth is not None and (
        isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1
    ):
        raise ValueError(f"max_depth={max_depth!r}; expected an int >= 1 or None (no limit).")
    names = tuple(f"x{i}" for i in range(k)) if feature_names is None else tuple(feature_names)
    if len(names) != k or not all(isinstance(s, str) and s.isidentifier() for s in names):
        raise ValueError(
            f"feature_names={feature_names!r}; expected {k} identifiers (one per column of "
            "features), e.g. ['agent_row', 'agent_col']."
        )
    n_cls = int(y.max()) + 1 if n else 0
    if y.min() < 0:
        raise ValueError(f"targets hold {int(y.min())}; expected classes 0, 1, 2, ...")
    classes = tuple(str(i) for i in range(n_cls)) if class_names is None else tuple(class_names)
    if len(classes) < n_cls:
        raise ValueError(
            f"class_names has {len(classes)} names but targets reach class {n_cls - 1}; give "
            f"one name per class, e.g. mechscope.rl.ACTIONS."
        )
    train, test = split(n, test_frac, seed)
    tree = DecisionTreeClassifier(max_depth=max_depth, random_state=seed)
    tree.fit(x[train].numpy(), y[train].numpy())
    xt = x[train]
    integral = (xt == xt.round()).all(0)
    binary = ((xt == 0) | (xt == 1)).all(0)
    kinds = tuple(
        "binary" if b else "integer" if i else "real"
        for b, i in zip(binary.tolist(), integral.tolist(), strict=True)
    )
    pred = torch.as_tensor(tree.predict(x.numpy())).long()
    most = int(torch.bincount(y[train]).argmax())
    node = _collapse(tree.tree_, 0)
    nan = float("nan")
    return DistilledTree(
        feature_names=names,
        class_names=classes,
        max_depth=max_depth,
        train_fidelity=fidelity(pred[train], y[train]),
        test_fidelity=fidelity(pred[test], y[test]) if len(test) else nan,
        majority=float((y[test] == most).float().mean()) if len(test) else nan,
        n_leaves=_leaves(node),
        depth=_depth(node),
        train_index=train,
        test_index=test,
        tree=tree,
        kinds=kinds,
    )
