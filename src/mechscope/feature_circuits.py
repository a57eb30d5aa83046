"""Sparse feature circuits (Marks et al. 2024, "Sparse Feature Circuits").

Splice SAEs or transcoders into a model (:func:`mechscope.splice`); their features and error
terms become *nodes*, alongside any plain hook you add (``hooks=``, e.g. the attention heads'
``blocks.L.attn.hook_z``, one node per (pos, head)). For a clean / corrupted pair of prompt
sets (equal lengths, so positions line up), :func:`feature_attribution` estimates every node's
indirect effect, the change of the mean metric when that node alone is patched from the
source run into the target run (``direction="denoising"``: clean into corrupted, the default
everywhere in mechscope; ``"noising"``: corrupted into clean, Marks et al.'s choice):

- ``method="attribution"`` (Marks et al. eq. 2): ``grad . (a_source - a_target)``, the
  gradient taken on the target run; one forward and one backward for every node at once.
- ``method="ig"`` (eq. 3): the same difference times the gradient averaged along the
  straight line from ``a_target`` to ``a_source`` (Gauss-Legendre, ``steps`` points). As in
  Marks et al.'s implementation, all nodes of one splice (its features and its errors; or one
  extra hook) move along the line together, later nodes recomputed: ``steps`` passes per
  splice. Per splice, the effects sum to the exact effect of patching the whole splice.
- ``nodes=[(point, pos, index), ...]``: only these nodes, each moved *alone*
  (``"ig"``: ``steps`` passes per node, which converges to the exact effect of patching that
  node alone) or patched alone (``method="exact"``: one forward per node).

``values`` is the effect on the metric averaged over the prompts (Marks et al. average their
per-example effects too); ``per_prompt`` keeps each prompt's own. A feature node is a scalar;
an error or vector node's effect is its gradient's dot product with its difference.

:func:`feature_circuit` keeps the nodes with the largest ``|effect|``; :func:`faithfulness`
is ``(m(C) - m(∅)) / (m(M) - m(∅))`` with every node outside the circuit ``C`` mean-ablated
(``M``: nothing ablated, ``∅``: every node ablated); :func:`completeness` is the same ratio
for the complement ``M \\ C`` (the circuit ablated, the rest kept; near 0 = complete);
:func:`faithfulness_curve` sweeps circuit sizes against random circuits of the same size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import torch

from . import _feature_circuits_core as _c
from ._core import as_tokens, check_pair
from ._sweep import check_direction
from .splice import splice

__all__ = [
    "FaithfulnessCurveResult",
    "FeatureAttributionResult",
    "FeatureCircuitResult",
    "completeness",
    "faithfulness",
    "faithfulness_curve",
    "feature_attribution",
    "feature_circuit",
]

METHODS = ("attribution", "ig", "exact")
KINDS = ("mean", "zero")


@dataclass(frozen=True)
class FeatureAttributionResult:
    """Indirect effect of every node; see the module docstring.

    values: ``[node]`` estimated change of the mean metric when the node alone is patched
        from the source into the target run. per_prompt: ``[batch, node]``.
    points: the node points (hook names); point_id, pos, index: ``[node]`` each (``index``:
        feature or head, -1 for a vector node). active: ``[node]`` bool, False for a feature
        that is zero at its position on every clean and corrupted prompt.
    clean_value, corrupted_value: the mean metric of the unpatched runs.
    """

    values: torch.Tensor
    per_prompt: torch.Tensor
    points: list[str]
    point_id: torch.Tensor
    pos: torch.Tensor
    index: torch.Tensor
    active: torch.Tensor
    str_tokens: list[str]
    method: str
    direction: str
    steps: int
    clean_value: float
    corrupted_value: float
    saes: dict = field(repr=False, compare=False, default_factory=dict)

    @cached_property
    def nodes(self) -> list[tuple[str, int, int]]:
        """``(point, pos, index)`` per node, as :func:`feature_attribution`'s ``nodes=`` takes."""
        ids, ps, ix = self.point_id.tolist(), self.pos.tolist(), self.index.tolist()
        return [(self.points[i], p, j) for i, p, j in zip(ids, ps, ix, strict=True)]

    @cached_property
    def labels(self) -> list[str]:
        """One readable label per node: ``"L0 F17 @3 'John'"``, ``"L1 err @13 'to'"``, ..."""
        return [_c.label(h, p, j, self.str_tokens) for h, p, j in self.nodes]

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nodes with the largest ``|value|``: ``[(label, value)]``."""
        order = self.values.abs().argsort(descending=True, stable=True)[:k].tolist()
        nodes = self.nodes
        return [(_c.label(*nodes[i], self.str_tokens), float(self.values[i])) for i in order]

    def __repr__(self) -> str:
        return (
            f"FeatureAttributionResult({len(self.values)} nodes at {len(self.points)} points, "
            f"method={self.method!r}, {self.direction}; clean {self.clean_value:.3f}, "
            f"corrupted {self.corrupted_value:.3f})"
        )


@dataclass(frozen=True)
class FeatureCircuitResult:
    """A set of nodes ``C`` out of all nodes ``M`` at ``points`` (a feature_attribution's).

    values: ``[n]`` the kept nodes' effects, largest ``|effect|`` first; nodes, labels: theirs.
    """

    values: torch.Tensor
    nodes: list[tuple[str, int, int]]
    labels: list[str]
    points: list[str]
    n_total: int
    saes: dict = field(repr=False, compare=False, default_factory=dict)

    def __repr__(self) -> str:
        return f"FeatureCircuitResult({len(self.nodes)} of {self.n_total} nodes)"


@dataclass(frozen=True)
class FaithfulnessCurveResult:
    """Faithfulness over circuit size; see :func:`faithfulness_curve`.

    values: ``[size]`` faithfulness of the top-``n`` circuit; completeness: ``[size]`` that of
    its complement; random: ``[size]`` mean faithfulness of random circuits of ``n`` active
    nodes. full_value, empty_value: ``m(M)``, ``m(∅)``.
    """

    values: torch.Tensor
    completeness: torch.Tensor
    random: torch.Tensor
    n_nodes: list[int]
    full_value: float
    empty_value: float

    def plot(self, title: str = "Faithfulness over circuit size"):
        """The three curves over circuit size (log axis), as a plotly figure."""
        import plotly.graph_objects as go  # lazy: plotly only when a plot is wanted

        fig = go.Figure()
        x = [max(n, 0.5) for n in self.n_nodes]  # 0 on a log axis: drawn at 0.5
        for name, ys in (
            ("circuit (top nodes)", self.values),
            ("complement (circuit ablated)", self.completeness),
            ("random circuit, same size", self.random),
        ):
            fig.add_trace(go.Scatter(x=x, y=ys.tolist(), mode="lines+markers", name=name))
        fig.update_layout(
            title=title, xaxis_title="nodes in the circuit", yaxis_title="faithfulness"
        )
        fig.update_xaxes(type="log")
        return fig


def feature_attribution(
    model,
    sae,
    clean,
    corrupted,
    metric,
    *,
    method: str = "attribution",
    steps: int = 10,
    direction: str = "denoising",
    hooks=None,
    nodes=None,
) -> FeatureAttributionResult:
    """Indirect effect of every feature, error and extra node; see the module docstring.

    Args:
        model: any HookedModel. sae: what :func:`mechscope.splice` takes (an SAE, a
            transcoder, a list of them, or ``{hook: SAE}``).
        clean, corrupted: prompts of equal token lengths; metric: ``logits -> [batch]``.
        method: ``"attribution"``, ``"ig"`` or ``"exact"`` (needs ``nodes``).
        steps: quadrature points of ``"ig"``. direction: ``"denoising"`` / ``"noising"``.
        hooks: extra plain hooks whose activations are nodes (per pos, or per pos and head).
        nodes: ``[(point, pos, index)]``: only these, each alone (see the module docstring).

    The model is left as it came (no hooks; its parameters' ``.grad`` untouched).
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}; expected one of {METHODS}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}; expected a positive integer (e.g. 10).")
    check_direction(direction)
    if method == "exact" and nodes is None:
        raise ValueError(
            "method='exact' patches nodes one at a time: pass nodes=[(point, pos, index), ...] "
            "(e.g. the top of a method='attribution' result: [r.nodes[i] for i in ...])."
        )
    clean_t = as_tokens(model, clean, name="clean")
    corrupted_t = as_tokens(model, corrupted, name="corrupted")
    check_pair(model, clean_t, corrupted_t)
    spliced, points = _c.spliced_points(model, sae, hooks)
    batch = clean_t.shape[0]
    clean_acts, clean_m = _c.cached(spliced, clean_t, points, metric, batch)
    corr_acts, corr_m = _c.cached(spliced, corrupted_t, points, metric, batch)
    _c.check_shapes(points, clean_acts)
    src, tgt, tgt_t, tgt_m = (
        (clean_acts, corr_acts, corrupted_t, corr_m)
        if direction == "denoising"
        else (corr_acts, clean_acts, clean_t, clean_m)
    )
    point_id, pos, index = _c.table(points, clean_acts)
    active = torch.cat([_c.active(p, clean_acts[p], corr_acts[p]) for p in points])
    diff = {p: src[p] - tgt[p] for p in points}
    if nodes is not None:
        chosen = _c.check_nodes(nodes, points, clean_acts)
        per_prompt = _c.per_node(
            spliced, tgt_t, metric, batch, chosen, src, tgt, tgt_m, method, steps
        )
        flat = {(points[i], p, j): n for n, (i, p, j) in
                enumerate(zip(point_id.tolist(), pos.tolist(), index.tolist(), strict=True))}  # fmt: skip
        keep = torch.tensor([flat[n] for n in chosen], dtype=torch.long)
        point_id, pos, index, active = point_id[keep], pos[keep], index[keep], active[keep]
    elif method == "attribution":
        grads = _c.grad_pass(spliced, tgt_t, metric, batch, dict.fromkeys(points, _c.keep_graph))
        per_prompt = torch.cat([_c.to_nodes(p, diff[p] * grads[p]) for p in points], 1) * batch
    else:
        per_prompt = _c.ig_by_splice(spliced, tgt_t, metric, batch, points, src, tgt, steps)
    return FeatureAttributionResult(
        values=per_prompt.mean(0).float(),
        per_prompt=per_prompt.float(),
        points=points,
        point_id=point_id,
        pos=pos,
        index=index,
        active=active,
        str_tokens=[str(s) for s in model.to_str_tokens(clean_t[0])],
        method=method,
        direction=direction,
        steps=steps,
        clean_value=float(clean_m.mean()),
        corrupted_value=float(corr_m.mean()),
        saes=spliced.saes,
    )


def feature_circuit(result: FeatureAttributionResult, *, threshold=None, n_nodes=None):
    """The nodes with the largest ``|effect|``: those with ``|value| >= threshold`` (metric
    units, > 0), or the top ``n_nodes``. Returns a :class:`FeatureCircuitResult`."""
    if not isinstance(result, FeatureAttributionResult):
        raise TypeError(f"result must be a FeatureAttributionResult, got {type(result).__name__}.")
    if (threshold is None) == (n_nodes is None):
        raise ValueError("feature_circuit: give exactly one of threshold= and n_nodes=.")
    mag = result.values.abs()
    order = mag.argsort(descending=True, stable=True)
    if threshold is not None:
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not (threshold > 0 and math.isfinite(threshold))
        ):
            raise ValueError(
                f"threshold={threshold!r}; expected a positive number in metric units "
                f"(largest |effect| here: {float(mag.max()):.3g})."
            )
        order = order[: int((mag >= threshold).sum())]
    else:
        if isinstance(n_nodes, bool) or not isinstance(n_nodes, int) or n_nodes < 0:
            raise ValueError(f"n_nodes={n_nodes!r}; expected an integer >= 0.")
        order = order[:n_nodes]
    nodes, labels = result.nodes, result.labels
    return FeatureCircuitResult(
        values=result.values[order],
        nodes=[nodes[i] for i in order.tolist()],
        labels=[labels[i] for i in order.tolist()],
        points=list(result.points),
        n_total=len(result.values),
        saes=dict(result.saes),
    )


def _ablator(model, circuit, tokens, metric, kind, reference):
    if not isinstance(circuit, FeatureCircuitResult):
        raise TypeError(f"circuit must be a FeatureCircuitResult, got {type(circuit).__name__}.")
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {KINDS}.")
    toks = as_tokens(model, tokens)
    ref = toks if reference is None else as_tokens(model, reference, name="reference")
    if ref.shape[1] != toks.shape[1]:
        raise ValueError(
            f"reference has {ref.shape[1]} positions, tokens {toks.shape[1]}: mean ablation is "
            "per position, so give prompts of the same length."
        )
    _c.not_remote(model)
    spliced = splice(model, circuit.saes)
    return _c.Ablator(spliced, circuit.points, toks, metric, kind, ref)


def _masks(ab, nodes, keep_listed: bool) -> dict[str, torch.Tensor]:
    keep = {p: torch.full(s, not keep_listed, dtype=torch.bool) for p, s in ab.shapes.items()}
    for point, pos, index in nodes:
        keep[point][(pos,) if index < 0 else (pos, index)] = keep_listed
    return keep


def _ratio(ab, nodes, keep_listed, full, empty) -> float:
    return (ab.value(_masks(ab, nodes, keep_listed)) - empty) / (full - empty)


def _ends(ab) -> tuple[float, float]:
    full = ab.value(_masks(ab, [], False))
    empty = ab.value(_masks(ab, [], True))
    if full == empty:
        raise ValueError(
            f"m(M) = m(∅) = {full:.4g}: ablating every node does not change the metric, so "
            "faithfulness is undefined; add node hooks (hooks=) or use other prompts."
        )
    return full, empty


def faithfulness(model, circuit, tokens, metric, *, kind="mean", reference=None) -> float:
    """``(m(C) - m(∅)) / (m(M) - m(∅))`` on ``tokens``: the share of the behaviour the
    circuit keeps with every other node ablated (``kind="mean"``: the mean over
    ``reference``'s prompts at the node's position, default ``tokens``; or ``"zero"``)."""
    ab = _ablator(model, circuit, tokens, metric, kind, reference)
    return _ratio(ab, circuit.nodes, True, *_ends(ab))


def completeness(model, circuit, tokens, metric, *, kind="mean", reference=None) -> float:
    """``(m(M \\ C) - m(∅)) / (m(M) - m(∅))``: the behaviour left with the circuit's nodes
    ablated and the rest kept; near 0 when the circuit is complete (Marks et al. §3)."""
    ab = _ablator(model, circuit, tokens, metric, kind, reference)
    return _ratio(ab, circuit.nodes, False, *_ends(ab))


def faithfulness_curve(
    model, result, tokens, metric, *, n_nodes, kind="mean", reference=None, n_samples=5, seed=0
) -> FaithfulnessCurveResult:
    """Faithfulness and completeness of the top-``n`` circuit of ``result`` for each ``n``
    in ``n_nodes``, and the mean faithfulness of ``n_samples`` random circuits of ``n``
    active nodes (seeded by ``seed``)."""
    sizes = [n_nodes] if isinstance(n_nodes, int) else list(n_nodes)
    circuits = [feature_circuit(result, n_nodes=n) for n in sizes]
    ab = _ablator(model, circuits[0], tokens, metric, kind, reference)
    full, empty = _ends(ab)
    gen = torch.Generator().manual_seed(seed)
    pool = result.active.nonzero().flatten()
    all_nodes = result.nodes
    faith, comp, rand = [], [], []
    for n, c in zip(sizes, circuits, strict=True):
        faith.append(_ratio(ab, c.nodes, True, full, empty))
        comp.append(_ratio(ab, c.nodes, False, full, empty))
        draws = [pool[torch.randperm(len(pool), generator=gen)[:n]] for _ in range(n_samples)]
        rand.append(sum(_ratio(ab, [all_nodes[i] for i in d.tolist()], True, full, empty)
                        for d in draws) / n_samples)  # fmt: skip
    return FaithfulnessCurveResult(
        torch.tensor(faith), torch.tensor(comp), torch.tensor(rand), sizes, full, empty
    )
