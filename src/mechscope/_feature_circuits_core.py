"""Internals of :mod:`mechscope.feature_circuits`: the node table, the gradient passes of
attribution patching and integrated gradients, exact single-node patching, and ablation.

A *node point* is a hook point of a spliced model whose activation holds nodes:

- ``H.hook_sae_acts`` ``[batch, pos, d_sae]``: one node per (pos, feature), a scalar;
- ``H.hook_sae_error`` ``[batch, pos, d]``: one node per pos, the whole error vector;
- any other hook ``[batch, pos, d]`` (one vector node per pos) or ``[batch, pos, head, d_head]``
  (one per (pos, head), e.g. ``blocks.L.attn.hook_z``).

Nodes are numbered point by point (forward order), row-major over each point's node grid
(``[pos, d_sae]``, ``[pos]`` or ``[pos, head]``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch

from ._attribution_grad import quadrature
from ._core import metric_values
from .hooks import resolve_names
from .splice import SPLICE_POINTS, SplicedModel, splice

FEATURE, ERROR, VECTOR = "feature", "error", "vector"


def point_kind(point: str) -> str:
    if point.endswith(".hook_sae_acts"):
        return FEATURE
    return ERROR if point.endswith(".hook_sae_error") else VECTOR


def node_shape(point: str, act: torch.Tensor) -> tuple[int, ...]:
    """The node grid of one point: ``[pos, d_sae]`` for features, else the activation's
    shape without batch and its last (vector) dimension."""
    shape = tuple(act.shape[1:])
    return shape if point_kind(point) == FEATURE else shape[:-1]


def to_nodes(point: str, t: torch.Tensor) -> torch.Tensor:
    """Per-element products ``[batch, *act]`` -> per-node sums ``[batch, n_nodes]``."""
    return (t if point_kind(point) == FEATURE else t.sum(-1)).flatten(1)


def table(points: list[str], acts: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(point_id, pos, index)`` per node; ``index`` is the feature or head, -1 for a vector."""
    ids, poss, idx = [], [], []
    for i, p in enumerate(points):
        shape = node_shape(p, acts[p])
        n = math.prod(shape)
        per_pos = n // shape[0]
        flat = torch.arange(n)
        ids.append(torch.full((n,), i))
        poss.append(flat // per_pos)
        idx.append(flat % per_pos if len(shape) == 2 else torch.full((n,), -1))
    return torch.cat(ids), torch.cat(poss), torch.cat(idx)


def cached(model, tokens: torch.Tensor, points: list[str], metric, batch: int):
    """No-grad run: ``({point: act}, metric [batch])``."""
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names=points)
        return {p: cache[p] for p in points}, metric_values(metric, logits, batch).float()


def grad_pass(model, tokens, metric, batch: int, edits: dict[str, Callable]):
    """One forward with autograd where each edited point's activation goes through its
    edit ``act -> (new_act, leaf)``; returns ``{point: d mean(metric) / d leaf}``.

    The gradient is w.r.t. leaves (``torch.autograd.grad``), so no parameter's ``.grad`` is
    written and models whose parameters do not require grad work too.
    """
    leaves: dict[str, torch.Tensor] = {}

    def hook_for(point, edit):
        def hook(act, hook):
            new, leaves[point] = edit(act)
            return new

        return hook

    with torch.enable_grad(), model.hooks([(p, hook_for(p, e)) for p, e in edits.items()]):
        value = metric_values(metric, model(tokens), batch).mean()
        if not value.requires_grad:
            raise ValueError(
                "metric(logits) is not differentiable (it calls .item(), argmax or no_grad?); "
                "feature attribution needs a differentiable metric such as "
                "mechscope.metrics.logit_diff."
            )
        order = list(edits)
        grads = torch.autograd.grad(value, [leaves[p] for p in order], allow_unused=True)
    return {
        p: torch.zeros_like(leaves[p]) if g is None else g
        for p, g in zip(order, grads, strict=True)
    }


def keep_graph(act):
    """Edit that leaves ``act`` on the graph (upstream paths intact) behind a zero leaf."""
    leaf = torch.zeros_like(act, requires_grad=True)
    return act + leaf, leaf


def replace_with(value: torch.Tensor):
    """Edit that replaces the whole activation by ``value`` (a leaf; upstream cut)."""

    def edit(act):
        leaf = value.detach().clone().requires_grad_(True)
        return leaf, leaf

    return edit


def _select(point: str, pos: int, index: int):
    """Indexing of one node in ``[batch, ...]``."""
    if index < 0:
        return (slice(None), pos)
    return (slice(None), pos, index)


def replace_node(point: str, pos: int, index: int, value: torch.Tensor, leaf: bool):
    """Edit that sets one node (all prompts) to ``value`` (``[batch]`` or ``[batch, d]``)."""
    sel = _select(point, pos, index)

    def edit(act):
        v = value.detach().clone().to(act.dtype).requires_grad_(leaf)
        new = act.clone()
        new[sel] = v
        return new, v

    return edit


def node_values(acts: dict, point: str, pos: int, index: int) -> torch.Tensor:
    return acts[point][_select(point, pos, index)]


def exact_patch(model, tokens, metric, batch, point, pos, index, value) -> torch.Tensor:
    """Metric ``[batch]`` with one node set to ``value``; no grad."""
    edit = replace_node(point, pos, index, value, leaf=False)
    with torch.no_grad(), model.hooks([(point, lambda act, hook: edit(act)[0])]):
        return metric_values(metric, model(tokens), batch).float()


# ---- ablation --------------------------------------------------------------------------


class Ablator:
    """``value(keep)``: the mean metric on ``tokens`` with every node of ``points`` that
    ``keep`` (``{point: bool [node grid]}``) leaves out set to its ablation value: the
    mean over ``reference``'s prompts at the same position (``kind="mean"``) or zero."""

    def __init__(self, model, points, tokens, metric, kind: str, reference):
        self.model, self.points, self.tokens, self.metric = model, points, tokens, metric
        self.batch = tokens.shape[0]
        acts, _ = cached(model, reference, points, metric_none, reference.shape[0])
        self.shapes = {p: node_shape(p, acts[p]) for p in points}
        self.means = {
            p: acts[p].mean(0) if kind == "mean" else torch.zeros_like(acts[p][0]) for p in points
        }

    def value(self, keep: dict[str, torch.Tensor]) -> float:
        def hook_for(point):
            mask = keep[point]
            if point_kind(point) != FEATURE:
                mask = mask[..., None]
            mean = self.means[point]

            def hook(act, hook):
                return torch.where(mask, act, mean.to(act.dtype))

            return hook

        hooks = [(p, hook_for(p)) for p in self.points if not bool(keep[p].all())]
        with torch.no_grad(), self.model.hooks(hooks):
            logits = self.model(self.tokens)
        return float(metric_values(self.metric, logits, self.batch).float().mean())


def metric_none(logits: torch.Tensor) -> torch.Tensor:
    """A stand-in metric for runs that only record activations."""
    return logits[:, -1, 0]


# ---- feature_attribution's pieces --------------------------------------------------------


def label(point: str, pos: int, index: int, str_tokens: list[str]) -> str:
    m = re.match(r"blocks\.(\d+)\.(.*)", point)
    where = f"L{m.group(1)}" if m else point
    tok = f" {str_tokens[pos]!r}" if pos < len(str_tokens) else ""
    if point.endswith(".hook_sae_acts"):
        return f"{where} F{index} @{pos}{tok}"
    if point.endswith(".hook_sae_error"):
        return f"{where} err @{pos}{tok}"
    rest = m.group(2).rsplit(".", 1)[-1].removeprefix("hook_") if m else ""
    head = f" H{index}" if index >= 0 else ""
    return f"{where} {rest}{head} @{pos}{tok}"


def spliced_points(model, sae, hooks) -> tuple[SplicedModel, list[str]]:
    """The spliced model and its node points in forward order (extra ``hooks`` checked)."""
    not_remote(model)
    spliced = splice(model, sae)
    names = spliced.hook_names()
    extra = [] if hooks is None else resolve_names(hooks, names, what="hooks")
    for h in extra:
        if h in spliced.saes or h.rsplit(".", 1)[-1] in SPLICE_POINTS:
            raise ValueError(
                f"hooks: {h!r} is a spliced hook or one of its splice points, whose nodes are "
                f"already the features and errors; name other hooks (e.g. blocks.0.attn.hook_z)."
            )
    splice_points = {f"{h}.{p}" for h in spliced.saes for p in ("hook_sae_acts", "hook_sae_error")}
    return spliced, [n for n in names if n in splice_points or n in extra]


def not_remote(model) -> None:
    """Feature circuits splice SAEs in with hooks whose own hook points fire inside the
    model's pass; a remote nnsight pass runs them on the server's copies, so their values
    never come back. Raise before any request."""
    if getattr(model, "remote", False):
        raise NotImplementedError(
            f"Feature circuits do not run on a remote nnsight model (remote="
            f"{model.remote!r}): the spliced SAE's hook points (hook_sae_acts / hook_sae_error) "
            f"fire inside the pass, on the server's copies, and their values and gradients "
            f"do not come back. Run them on a local model (remote=False), or patch and "
            f"attribute the SAE's site itself (attribution_patch) remotely."
        )


def check_shapes(points, acts) -> None:
    for p in points:
        if point_kind(p) == VECTOR and acts[p].dim() not in (3, 4):
            raise ValueError(
                f"hooks: {p!r} has activations {list(acts[p].shape)}; a node hook must be "
                f"[batch, pos, d] or [batch, pos, head, d_head] (e.g. blocks.0.attn.hook_z)."
            )


def check_nodes(nodes, points, acts) -> list[tuple[str, int, int]]:
    out = []
    for node in nodes:
        ok = isinstance(node, (tuple, list)) and len(node) == 3 and node[0] in points
        try:
            point, pos, index = node[0], int(node[1]), -1 if node[2] is None else int(node[2])
        except (TypeError, ValueError, IndexError, KeyError):
            ok = False
        if ok:
            shape = node_shape(point, acts[point])
            pos = pos + shape[0] if pos < 0 else pos
            ok = 0 <= pos < shape[0] and (
                (index == -1 and len(shape) == 1) or (len(shape) == 2 and 0 <= index < shape[1])
            )
        if not ok:
            raise ValueError(
                f"nodes: {node!r} is not a node; expected (point, pos, index) with point one of "
                f"{points}, index the feature / head (-1 for an error or vector node)."
            )
        out.append((point, pos, index))
    return out


def active(point, a, b) -> torch.Tensor:
    if point_kind(point) != FEATURE:
        return torch.ones(math.prod(node_shape(point, a)), dtype=torch.bool)
    return ((a != 0) | (b != 0)).any(0).flatten()


def ig_by_splice(spliced, tgt_t, metric, batch, points, src, tgt, steps) -> torch.Tensor:
    """Marks et al.'s IG: each splice's nodes (or one extra hook's) move together."""
    groups: dict[str, list[str]] = {}
    for p in points:
        key = p.rsplit(".", 1)[0] if point_kind(p) != VECTOR else p
        groups.setdefault(key, []).append(p)
    alphas, weights = quadrature(steps, "gausslegendre")
    out = {}
    for members in groups.values():
        total = {p: torch.zeros_like(src[p]) for p in members}
        for a, w in zip(alphas.tolist(), weights.tolist(), strict=True):
            edits = {p: replace_with(tgt[p] + a * (src[p] - tgt[p])) for p in members}
            grads = grad_pass(spliced, tgt_t, metric, batch, edits)
            for p in members:
                total[p] += w * grads[p]
        out.update({p: to_nodes(p, (src[p] - tgt[p]) * total[p]) for p in members})
    return torch.cat([out[p] for p in points], 1) * batch


def per_node(spliced, tgt_t, metric, batch, chosen, src, tgt, tgt_m, method, steps):
    """``[batch, n]`` effects of the chosen nodes, each on its own."""
    cols = []
    for point, pos, index in chosen:
        s, t = node_values(src, point, pos, index), node_values(tgt, point, pos, index)
        if method == "exact":
            patched = exact_patch(spliced, tgt_t, metric, batch, point, pos, index, s)
            cols.append(patched - tgt_m)
            continue
        alphas, weights = quadrature(steps, "gausslegendre") if method == "ig" else ([0.0], [1.0])
        g = torch.zeros_like(s)
        for a, w in zip(list(alphas), list(weights), strict=True):
            edit = replace_node(point, pos, index, t + float(a) * (s - t), leaf=True)
            g += float(w) * grad_pass(spliced, tgt_t, metric, batch, {point: edit})[point]
        e = (s - t) * g * batch
        cols.append(e if e.dim() == 1 else e.sum(-1))
    return torch.stack(cols, 1)
