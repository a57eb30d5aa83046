"""Attribution graphs over transcoder features (Ameisen et al. 2025, "Circuit Tracing").

For one prompt, the *local replacement model* is the model with

- each MLP replaced by its per-layer transcoder (``mechscope.transcoder``) plus an **error
  node** per layer and position: the MLP's real output minus the transcoder's, a constant;
- attention patterns and LayerNorm scales **frozen** at their values in the real run.

With those frozen, everything between the leaves and a feature's pre-activation (or a logit) is
affine, so each target is exactly a sum of direct effects, one per source node, plus a bias
(every bias term of the model and transcoders on the way). Nodes:

- ``embed``: the token and position embedding at each position (source only);
- ``feature``: each active transcoder feature (layer, pos, index): a source with its
  activation ``a``, a target through its pre-activation (= ``a``: TopK with ReLU is the
  identity on an active feature);
- ``error``: each (layer, pos) error vector (source only);
- ``logit``: the target logits at the last position (target only).

Edge ``A[t, s]`` is source ``s``'s direct effect on target ``t``: ``a_s * d target_t / d a_s``
for a feature (a vector leaf's effect is its dot product with the gradient), through the
frozen linear paths only, never through another feature. Hence, exactly (tests re-check):
``target_t = sum_s A[t, s] + bias_t``; the replacement model's targets equal the real model's.

Pruning (Ameisen et al. 2025, appendix "Graph pruning"): normalise the absolute incoming
weights of each node to sum to 1 (``Â``); the indirect influence of every node on the logits
is ``w^T (Â + Â^2 + ...) = w^T ((I - Â)^-1 - I)`` with ``w`` the target logits'
probabilities; keep the fewest feature and error nodes that carry ``node_threshold`` of the
total influence (embeddings and logits always stay), then the fewest edges that carry
``edge_threshold`` of the edge influence (an edge's normalised weight times its target's
influence).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import _attribution_graph_core as _core
from ._core import as_tokens
from .protocols import ReadableBlocks, require
from .transcoder import Transcoder

__all__ = ["AttributionGraphResult", "attribution_graph"]

KINDS = ("embed", "feature", "error", "logit")


@dataclass(frozen=True)
class AttributionGraphResult:
    """An attribution graph; see the module docstring.

    values: pruned adjacency ``[node, node]`` (rows: targets, columns: sources; 0 where pruned).
    adjacency: the full, unpruned adjacency ``[node, node]``.
    labels: one readable label per node (``"L0 F17 @3 'Rome'"`` ...).
    kind, layer, pos, index: per node (``index`` is the feature or token id; -1 else).
    activation: a feature's activation, a logit's value, 0 for vector nodes.
    bias: per target, what no node accounts for (``target = adjacency.sum(1) + bias``).
    target_value: per node, the replacement model's value (pre-activation or logit).
    influence: per node, its indirect influence on the logits (0 for logits).
    kept: per node, whether it survives pruning.
    str_tokens: the prompt's tokens.
    """

    values: torch.Tensor
    adjacency: torch.Tensor
    labels: list[str]
    kind: list[str]
    layer: torch.Tensor
    pos: torch.Tensor
    index: torch.Tensor
    activation: torch.Tensor
    bias: torch.Tensor
    target_value: torch.Tensor
    influence: torch.Tensor
    kept: torch.Tensor
    str_tokens: list[str]
    node_threshold: float
    edge_threshold: float
    meta: dict = field(default_factory=dict, compare=False)

    def nodes_of(self, kind: str) -> torch.Tensor:
        """Indices of the nodes of one kind (``"embed"``, ``"feature"``, ``"error"``, ``"logit"``)."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}; expected one of {KINDS}.")
        return torch.tensor([i for i, k in enumerate(self.kind) if k == kind], dtype=torch.long)

    def prune(self, *, node_threshold: float, edge_threshold: float) -> AttributionGraphResult:
        """The same graph pruned at other thresholds (no model run)."""
        values, influence, kept = _core.prune(
            self.adjacency, self.kind, self.activation, node_threshold, edge_threshold
        )
        return AttributionGraphResult(
            **{
                **self.__dict__,
                "values": values,
                "influence": influence,
                "kept": kept,
                "node_threshold": node_threshold,
                "edge_threshold": edge_threshold,
            }
        )

    def to_widget(self, **kwargs):
        """An :class:`~mechscope.widgets.AttributionGraph` of this graph; ``kwargs`` as its
        constructor (``model=``, ``transcoders=``: logit effects and click-to-ablate)."""
        from .widgets.attribution_graph import AttributionGraph

        return AttributionGraph(self, **kwargs)

    def __repr__(self) -> str:
        n = {k: sum(1 for x in self.kind if x == k) for k in KINDS}
        return (
            f"AttributionGraphResult({n['feature']} features, {n['error']} error nodes, "
            f"{n['logit']} logits; kept {int(self.kept.sum())} nodes, "
            f"{int((self.values != 0).sum())} edges)"
        )


def _check_threshold(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
        raise ValueError(f"{name}={v!r}; expected a fraction in (0, 1], e.g. 0.8.")
    return float(v)


def _check_transcoders(model, transcoders) -> list[Transcoder]:
    tcs = list(transcoders) if isinstance(transcoders, (list, tuple)) else [transcoders]
    n = model.cfg.n_layers
    if len(tcs) != n or not all(isinstance(t, Transcoder) for t in tcs):
        raise ValueError(
            f"transcoders: need one Transcoder per layer ({n}), in layer order, got "
            f"{[type(t).__name__ for t in tcs]}."
        )
    for layer, tc in enumerate(tcs):
        want = (f"blocks.{layer}.ln2.hook_normalized", f"blocks.{layer}.hook_mlp_out")
        if (tc.cfg.input_site, tc.cfg.site) != want or tc.cfg.d_in != model.cfg.d_model:
            raise ValueError(
                f"transcoders[{layer}] reads {tc.cfg.input_site!r} -> {tc.cfg.site!r} "
                f"(d_in={tc.cfg.d_in}); attribution graphs need {want[0]!r} -> {want[1]!r} "
                f"with d_in=d_model={model.cfg.d_model}."
            )
    return tcs


def attribution_graph(
    model,
    transcoders,
    tokens,
    *,
    answer_ids=None,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
) -> AttributionGraphResult:
    """The attribution graph of one prompt's next-token prediction; see the module docstring.

    Args:
        model: a model with readable weights (mechscope's ``Transformer``; LayerNorm).
        transcoders: one :class:`~mechscope.transcoder.Transcoder` per layer, reading
            ``blocks.L.ln2.hook_normalized`` and writing ``blocks.L.hook_mlp_out``.
        tokens: one prompt (str, or ``[1, pos]`` ids), at most ``n_ctx`` tokens.
        answer_ids: the target logits (token ids at the last position); default: the
            smallest set of top tokens holding 95% of the probability (at most 10).
        node_threshold, edge_threshold: fractions in (0, 1] of the influence kept by pruning.
    """
    require(model, ReadableBlocks, "attribution_graph")
    if getattr(model.cfg, "normalization", "ln") != "ln":
        raise ValueError("attribution_graph: the model must use LayerNorm (cfg.normalization).")
    node_threshold = _check_threshold("node_threshold", node_threshold)
    edge_threshold = _check_threshold("edge_threshold", edge_threshold)
    tcs = _check_transcoders(model, transcoders)
    toks = as_tokens(model, tokens, check_ctx=True)
    if toks.shape[0] != 1:
        raise ValueError(f"tokens: one prompt, got a batch of {toks.shape[0]}; pass tokens[i:i+1].")
    f = _core.frozen(model, tcs, toks)
    probs = f["logits"].softmax(-1)
    if answer_ids is None:
        top = probs.sort(descending=True)
        n = int((top.values.cumsum(0) < 0.95).sum()) + 1
        answer_ids = top.indices[: min(n, 10)]
    answer_ids = torch.as_tensor(answer_ids, dtype=torch.long).reshape(-1)
    bad = [int(i) for i in answer_ids if not 0 <= int(i) < model.cfg.d_vocab]
    if bad:
        raise ValueError(
            f"answer_ids: {bad} not in the vocabulary (0..{model.cfg.d_vocab - 1}); pass "
            f"model.to_single_token(word) ids."
        )
    return _core.build(model, tcs, f, toks, answer_ids, node_threshold, edge_threshold)
