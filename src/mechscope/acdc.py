"""ACDC-style greedy circuit discovery at head level (Conmy et al. 2023).

"Towards Automated Circuit Discovery for Mechanistic Interpretability" (Conmy et al. 2023)
prunes a model's computational graph one edge at a time: walk the graph from the output
backwards (reverse topological order), try removing each component by replacing its output
with its value on a *corrupted* input, and keep it removed if the model's output moves by less
than a threshold ``tau``. What survives is the circuit.

This module does the node (head) version, exactly, on any HookedModel:

- a head is *removed* by patching its ``blocks.L.attn.hook_z`` (all positions) with the
  corrupted run's ``z`` (resample ablation towards the corrupted input); MLPs, embeddings
  and LayerNorms are always kept;
- heads are visited from the last layer to the first (reverse topological order);
- the score is a *distance* from the full model, lower is better:
  ``metric="kl"`` (default) is the KL divergence ``KL(full || circuit)`` of the next-token
  distributions, averaged over prompts and the positions ``pos``; a callable
  ``metric(logits) -> [batch]`` (e.g. :func:`mechscope.metrics.logit_diff`) gives the
  distance ``|mean metric(circuit) - mean metric(full)|``;
- a head is removed when ``distance(after) - distance(before) < tau``.

Every decision depends on the ones before it, so the greedy walk is sequential: one forward
pass per head (no grad).

Example::

    result = acdc(model, clean_tokens, corrupted_tokens, tau=0.02)
    result.kept             # [(layer, head), ...]
    result.metric_kept      # distance of the circuit from the full model
    result.recovered        # 1 - metric_kept / metric_empty
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ._core import as_tokens, check_pair, metric_values

__all__ = ["ACDCResult", "acdc"]


@dataclass(frozen=True)
class ACDCResult:
    """What greedy discovery kept.

    kept, removed: ``(layer, head)`` lists, in layer-then-head order.
    metric_full: the distance of the full model from itself (0 for KL).
    metric_kept: the distance of the circuit (removed heads patched) from the full model.
    metric_empty: the distance with every head patched to the corrupted run.
    history: one dict per visited head, in visiting order: ``head``, ``before``,
        ``after``, ``delta`` (= after - before) and ``removed``.
    """

    kept: list[tuple[int, int]]
    removed: list[tuple[int, int]]
    metric_full: float
    metric_kept: float
    metric_empty: float
    tau: float
    n_layers: int
    n_heads: int
    history: list[dict] = field(default_factory=list, repr=False)

    @property
    def recovered(self) -> float:
        """``1 - metric_kept / metric_empty``: 1 = the circuit behaves like the full model,
        0 = no better than removing every head."""
        if self.metric_empty == 0:
            return float("nan")
        return 1.0 - self.metric_kept / self.metric_empty

    def mask(self) -> torch.Tensor:
        """``[layer, head]`` bool, True for kept heads."""
        m = torch.zeros(self.n_layers, self.n_heads, dtype=torch.bool)
        for la, h in self.kept:
            m[la, h] = True
        return m

    def to_widget(self, **kwargs):
        """A :class:`mechscope.widgets.Heatmap` of each head's ``delta`` (the distance its
        removal added), kept heads marked in the row labels' title."""
        from .widgets.heatmap import Heatmap

        deltas = torch.zeros(self.n_layers, self.n_heads)
        for step in self.history:
            la, h = step["head"]
            deltas[la, h] = step["delta"]
        opts = dict(
            row_labels=[f"L{la}" for la in range(self.n_layers)],
            col_labels=[f"H{h}" for h in range(self.n_heads)],
            row_title="layer",
            col_title="head",
            title=f"ACDC: distance added by removing each head (tau={self.tau:g})",
            value_label="delta",
        )
        opts.update(kwargs)
        return Heatmap(deltas, **opts)


def _kl(full_logits: torch.Tensor, logits: torch.Tensor, pos) -> torch.Tensor:
    """``KL(full || circuit)`` per prompt, averaged over the selected positions: ``[batch]``."""
    p_log = F.log_softmax(full_logits[:, pos].double(), -1)
    q_log = F.log_softmax(logits[:, pos].double(), -1)
    kl = (p_log.exp() * (p_log - q_log)).sum(-1)  # [batch, pos']
    return kl.reshape(kl.shape[0], -1).mean(-1)


def acdc(
    model,
    clean,
    corrupted,
    metric: str | Callable[[torch.Tensor], torch.Tensor] = "kl",
    *,
    tau: float = 0.01,
    pos=slice(None),
) -> ACDCResult:
    """Greedy head-level circuit discovery (see the module docstring).

    model: a HookedModel (``mechscope.Transformer`` or ``mechscope.wrap(...)``).
    clean, corrupted: text, a list of texts, or token ids ``[pos]`` / ``[batch, pos]`` of
        the same shape.
    metric: ``"kl"`` or a callable ``fn(logits [batch, pos, d_vocab]) -> [batch]``.
    tau: a head is removed when removing it raises the distance by less than ``tau``.
    pos: positions the KL averages over (an index, slice or bool mask); ignored for a callable.

    The model is left as it came (no hooks left installed).
    """
    if not (isinstance(metric, str) and metric == "kl") and not callable(metric):
        raise ValueError(f"metric={metric!r}; expected 'kl' or a function logits -> [batch].")
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau == tau:
        raise TypeError(f"tau={tau!r}; expected a number (the distance threshold, e.g. 0.01).")
    clean_t = as_tokens(model, clean, name="clean")
    corrupted_t = as_tokens(model, corrupted, name="corrupted")
    check_pair(model, clean_t, corrupted_t)
    batch = clean_t.shape[0]
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    z_names = [f"blocks.{la}.attn.hook_z" for la in range(n_layers)]
    if not n_heads or any(z not in model.hook_names() for z in z_names):
        raise KeyError(
            f"acdc removes heads by patching blocks.L.attn.hook_z, but {type(model).__name__} "
            "has no per-head hook_z at every layer (a model without attention heads?)."
        )

    with torch.no_grad():
        full_logits = model(clean_t)
        _, corr_cache = model.run_with_cache(corrupted_t, names=z_names)
    clean_t = clean_t.to(full_logits.device)
    corr_z = {n: corr_cache[n] for n in z_names}

    if callable(metric):
        full_value = metric_values(metric, full_logits, batch).mean()

        def distance(logits):
            return float((metric_values(metric, logits, batch).mean() - full_value).abs())
    else:

        def distance(logits):
            return float(_kl(full_logits, logits, pos).mean())

    def run(removed: set[tuple[int, int]]) -> float:
        def patch(act, hook):
            layer = z_names.index(hook.name)
            heads = [h for la, h in removed if la == layer]
            if not heads:
                return act
            act = act.clone()
            act[:, :, heads] = corr_z[hook.name][:, :, heads].to(act.dtype)
            return act

        with torch.no_grad(), model.hooks([(n, patch) for n in z_names]):
            return distance(model(clean_t))

    all_heads = [(la, h) for la in range(n_layers) for h in range(n_heads)]
    metric_full = run(set())
    metric_empty = run(set(all_heads))
    removed: set[tuple[int, int]] = set()
    current = metric_full
    history = []
    for la in reversed(range(n_layers)):
        for h in range(n_heads):
            after = run(removed | {(la, h)})
            delta = after - current
            drop = delta < tau
            history.append(
                {
                    "head": (la, h),
                    "before": current,
                    "after": after,
                    "delta": delta,
                    "removed": drop,
                }
            )
            if drop:
                removed.add((la, h))
                current = after
    return ACDCResult(
        kept=[x for x in all_heads if x not in removed],
        removed=[x for x in all_heads if x in removed],
        metric_full=metric_full,
        metric_kept=current,
        metric_empty=metric_empty,
        tau=float(tau),
        n_layers=n_layers,
        n_heads=n_heads,
        history=history,
    )
