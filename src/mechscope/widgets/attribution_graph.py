"""AttributionGraph: an attribution graph (Ameisen et al. 2025) drawn inline, offline.

Nodes are laid out by layer (rows: embeddings at the bottom, each layer's transcoder features
and error nodes, the target logits on top) and position (columns, the prompt's tokens under
them); an edge's width is its ``|weight|``, its colour its sign (RdBu: red excites, blue
inhibits). Two sliders re-prune the graph in the browser, with the rule of
:func:`mechscope.attribution_graph.attribution_graph` (influence-ranked nodes up to the node
threshold, then score-ranked edges up to the edge threshold), from the node influences and the
edges sent: no Python round trip. Hovering a node shows its label, activation, influence, its
strongest incoming and outgoing edges and, for a feature, its logit effects (top tokens its
decoder promotes / suppresses, ``W_dec @ W_U``) and top activating contexts when Python
computed them. Clicking a node sets ``selected``; setting it from Python highlights the node.

Two-way: with ``model`` and ``transcoders`` given, selecting a feature (or error) node makes
Python zero it at its position in the spliced model (``mechscope.splice``: the feature's
``hook_sae_acts`` entry, or the layer's ``hook_sae_error`` at that position) and send the top
next-token probabilities, clean vs ablated, which the widget shows.

Payload: int32 / float32 node arrays, and the FULL adjacency's nonzero edges (so the sliders
can show more than Python's pruning), at most ``MAX_EDGES`` (12 bytes each: 1.2 MB; past it
the lowest pruning scores are left out, and the sliders' edge shares are over the edges sent).
TypeScript side: ``widgets/attribution_graph/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import torch
import traitlets

from mechscope._core import as_tokens
from mechscope.widgets import _buffers, _static, _svg_graph

_STATIC = Path(__file__).parent / "static"
# kind codes: the same in widgets/attribution_graph/graph.ts
KIND_CODES = {"embed": 0, "feature": 1, "error": 2, "logit": 3}
MAX_EDGES = 100_000
N_EFFECTS = 5  # promoted and suppressed tokens per feature
N_CONTEXTS = 3  # top activating contexts per feature
CONTEXT_WINDOW = 6  # tokens shown before the active one
TOP = 5  # next tokens shown for an ablation


class AttributionGraph(_static.StaticFallback, anywidget.AnyWidget):
    """An attribution graph with client-side pruning, hover details and click-to-ablate.

    Args:
        result: an :class:`~mechscope.attribution_graph.AttributionGraphResult`.
        model, transcoders: the model and per-layer transcoders the graph was built from;
            optional, together. With them the widget shows each feature's logit effects and
            a click on a feature or error node ablates it (two-way, see the module docstring).
        contexts: prompts (a str, a list of str, or ``[batch, pos]`` ids) in which to find each
            feature's top activating contexts; needs ``model`` and ``transcoders``.
        title: shown above the graph (default ``"Attribution graph"``).
        selected: the node to select first (default -1, none).

    Example::

        g = attribution_graph(model, tcs, "The Colosseum is in")
        w = AttributionGraph(g, model=model, transcoders=tcs)
        w.observe(lambda change: print(g.labels[change["new"]]), names="selected")
    """

    _esm = _STATIC / "attribution_graph.js"
    _css = _STATIC / "attribution_graph.css"

    n_nodes = traitlets.Int(0).tag(sync=True)
    n_edges = traitlets.Int(0).tag(sync=True)
    n_layers = traitlets.Int(0).tag(sync=True)
    n_pos = traitlets.Int(0).tag(sync=True)
    # [node] int32 / float32, little-endian (see _buffers)
    kind = traitlets.Bytes(b"").tag(sync=True)
    layer = traitlets.Bytes(b"").tag(sync=True)
    pos = traitlets.Bytes(b"").tag(sync=True)
    index = traitlets.Bytes(b"").tag(sync=True)
    activation = traitlets.Bytes(b"").tag(sync=True)
    influence = traitlets.Bytes(b"").tag(sync=True)
    # [edge] int32, int32, float32: edge src -> dst with weight adjacency[dst, src]
    edge_src = traitlets.Bytes(b"").tag(sync=True)
    edge_dst = traitlets.Bytes(b"").tag(sync=True)
    edge_weight = traitlets.Bytes(b"").tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    node_threshold = traitlets.Float(0.8).tag(sync=True)
    edge_threshold = traitlets.Float(0.98).tag(sync=True)
    n_effects = traitlets.Int(0).tag(sync=True)
    effect_tokens = traitlets.List(traitlets.List(traitlets.Unicode())).tag(sync=True)
    effect_values = traitlets.Bytes(b"").tag(sync=True)  # [node, 2 * n_effects] float32
    n_contexts = traitlets.Int(0).tag(sync=True)
    context_text = traitlets.List(traitlets.List(traitlets.Unicode())).tag(sync=True)
    context_values = traitlets.Bytes(b"").tag(sync=True)  # [node, n_contexts] float32
    selected = traitlets.Int(-1).tag(sync=True)
    interactive = traitlets.Bool(False).tag(sync=True)
    intervention_node = traitlets.Int(-1).tag(sync=True)
    intervention_status = traitlets.Unicode("").tag(sync=True)
    intervention_tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    intervention_probs = traitlets.Bytes(b"").tag(sync=True)  # [3, TOP] float32

    def __init__(
        self,
        result: Any,
        *,
        model: Any = None,
        transcoders: Any = None,
        contexts: Any = None,
        title: str | None = None,
        selected: int = -1,
    ) -> None:
        _check_result(result)
        tcs = _check_model(result, model, transcoders, contexts)
        n = len(result.kind)
        kinds = np.array([KIND_CODES[k] for k in result.kind], np.int32)
        src, dst, weight = _graph_edges(result)
        eff_tokens, eff_values = _logit_effects(result, model, tcs)
        ctx_text, ctx_values = _contexts(result, model, tcs, contexts)
        super().__init__(
            n_nodes=n,
            n_edges=len(src),
            n_layers=int(result.layer.max()) if n else 0,
            n_pos=len(result.str_tokens),
            kind=_buffers.encode(kinds, "int32"),
            layer=_buffers.encode(result.layer.numpy(), "int32"),
            pos=_buffers.encode(result.pos.numpy(), "int32"),
            index=_buffers.encode(result.index.numpy(), "int32"),
            activation=_buffers.encode(_buffers.to_numpy(result.activation), "float32"),
            influence=_buffers.encode(_buffers.to_numpy(result.influence), "float32"),
            edge_src=_buffers.encode(src, "int32"),
            edge_dst=_buffers.encode(dst, "int32"),
            edge_weight=_buffers.encode(weight, "float32"),
            labels=[str(s) for s in result.labels],
            tokens=[str(s) for s in result.str_tokens],
            title="Attribution graph" if title is None else str(title),
            node_threshold=float(result.node_threshold),
            edge_threshold=float(result.edge_threshold),
            n_effects=N_EFFECTS if tcs else 0,
            effect_tokens=eff_tokens,
            effect_values=_buffers.encode(eff_values, "float32"),
            n_contexts=N_CONTEXTS if contexts is not None else 0,
            context_text=ctx_text,
            context_values=_buffers.encode(ctx_values, "float32"),
            interactive=tcs is not None,
        )
        self._result = result
        self._model, self._transcoders, self._spliced, self._clean = model, tcs, None, None
        if tcs is not None:
            self.observe(self._on_selected, names="selected")
        self.selected = selected

    @classmethod
    def from_result(cls, result: Any, *, model=None, transcoders=None, contexts=None, title=None):
        """The widget of an :class:`~mechscope.attribution_graph.AttributionGraphResult`;
        the same as ``AttributionGraph(result, ...)`` (see the class)."""
        return cls(result, model=model, transcoders=transcoders, contexts=contexts, title=title)

    @traitlets.validate("selected")
    def _validate_selected(self, proposal: Any) -> int:
        value = proposal["value"]
        if not -1 <= value < self.n_nodes:
            raise traitlets.TraitError(
                f"selected={value} is not a node; expected -1 (none) or 0..{self.n_nodes - 1}."
            )
        return value

    @traitlets.validate("node_threshold", "edge_threshold")
    def _validate_threshold(self, proposal: Any) -> float:
        value = proposal["value"]
        if not 0 < value <= 1:
            raise traitlets.TraitError(
                f"{proposal['trait'].name}={value}; expected a fraction in (0, 1], e.g. 0.8."
            )
        return value

    def pruned(self) -> Any:
        """The result pruned at the widget's current thresholds (what the sliders show)."""
        r = self._result
        if (self.node_threshold, self.edge_threshold) == (r.node_threshold, r.edge_threshold):
            return r
        return r.prune(node_threshold=self.node_threshold, edge_threshold=self.edge_threshold)

    def _static_figure(self) -> _static.Figure:
        return _svg_graph.graph_figure(self)

    # ---- two-way: ablate the selected node --------------------------------------------------

    def _on_selected(self, change: dict[str, Any]) -> None:
        i = int(change["new"])
        r = self._result
        if i < 0 or r.kind[i] not in ("feature", "error"):
            self.intervention_node, self.intervention_tokens = -1, []
            self.intervention_status = "" if i < 0 else "click a feature or error node to ablate it"
            return
        try:
            tokens, probs = _ablate_node(self, i)
        except Exception as err:  # shown in the widget, not lost in the kernel log
            self.intervention_node, self.intervention_tokens = -1, []
            self.intervention_status = f"ablation failed: {type(err).__name__}: {err}"
            return
        with self.hold_sync():
            self.intervention_tokens = tokens
            self.intervention_probs = _buffers.encode(probs, "float32")
            self.intervention_status = f"zeroed {r.labels[i]} in the spliced model"
            self.intervention_node = i

    def intervention_array(self) -> np.ndarray:
        """The last ablation's probabilities ``[3, k]`` as the browser sees them: the clean top
        tokens' clean and ablated probabilities, then the ablated run's own top probabilities."""
        k = len(self.intervention_tokens) // 2
        return _buffers.decode(self.intervention_probs, "float32", (3, k))

    def __repr__(self) -> str:
        r = self._result
        counts = {k: sum(1 for x in r.kind if x == k) for k in KIND_CODES}
        return (
            f"AttributionGraph({counts['feature']} features, {counts['error']} error nodes, "
            f"{counts['logit']} logits, {self.n_edges} edges; node_threshold="
            f"{self.node_threshold:g}, edge_threshold={self.edge_threshold:g}, "
            f"selected={self.selected}, interactive={self.interactive})"
        )


def _graph_edges(result: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(src, dst, weight)`` of the full adjacency's nonzero edges, at most ``MAX_EDGES``
    (those of highest pruning score: normalised |weight| x the target's influence)."""
    adj = result.adjacency.detach().float()
    dst, src = torch.nonzero(adj, as_tuple=True)
    if len(src) > MAX_EDGES:
        a = adj.abs()
        norm = a / a.sum(1, keepdim=True).clamp(min=1e-12)
        logit = torch.tensor([k == "logit" for k in result.kind])
        w = torch.where(logit, result.activation, torch.zeros(()))
        w = w / w.sum().clamp(min=1e-12)
        score = norm[dst, src] * (result.influence + w)[dst]
        keep = torch.argsort(score, descending=True, stable=True)[:MAX_EDGES].sort().values
        dst, src = dst[keep], src[keep]
    return src.numpy().astype(np.int32), dst.numpy().astype(np.int32), adj[dst, src].numpy()


def _ablate_node(widget: AttributionGraph, i: int) -> tuple[list[str], np.ndarray]:
    """Zero node ``i`` (a feature at its position, or an error node's vector) in the spliced
    model; ``(tokens, probs)``: the clean top-``TOP`` then the ablated top-``TOP`` next tokens,
    and ``[3, TOP]`` probabilities (clean, ablated of the clean top, ablated top)."""
    from mechscope.splice import splice

    r, model, tcs = widget._result, widget._model, widget._transcoders
    if widget._spliced is None:
        widget._spliced = splice(model, tcs)
    spliced = widget._spliced
    toks = r.index[r.nodes_of("embed")][None]  # the prompt's ids, in position order
    layer, p, j = int(r.layer[i]), int(r.pos[i]), int(r.index[i])
    site = tcs[layer].cfg.site
    hook = f"{site}.hook_sae_acts" if r.kind[i] == "feature" else f"{site}.hook_sae_error"

    def zero(act: torch.Tensor, hook: Any) -> torch.Tensor:
        act = act.clone()
        if j >= 0:
            act[:, p, j] = 0
        else:
            act[:, p, :] = 0
        return act

    with torch.no_grad():
        if widget._clean is None:
            widget._clean = spliced(toks)[0, -1].float().softmax(-1)
        with spliced.hooks([(hook, zero)]):
            ablated = spliced(toks)[0, -1].float().softmax(-1)
    clean = widget._clean
    k = min(TOP, clean.numel())
    top_clean = clean.topk(k).indices
    top_ablated = ablated.topk(k).indices
    probs = torch.stack([clean[top_clean], ablated[top_clean], ablated[top_ablated]])
    ids = top_clean.tolist() + top_ablated.tolist()
    return [str(s) for s in model.to_str_tokens(ids)], probs.numpy().astype(np.float32)


def _feature_nodes(result: Any) -> list[int]:
    return [i for i, k in enumerate(result.kind) if k == "feature"]


def _logit_effects(result: Any, model: Any, tcs: Any) -> tuple[list[list[str]], np.ndarray]:
    """Per node: the ``N_EFFECTS`` tokens a feature's decoder direction promotes most, then
    those it suppresses most, through the unembedding (``W_dec[f] @ W_U``); [] elsewhere."""
    n = len(result.kind)
    if tcs is None:
        return [[] for _ in range(n)], np.zeros((n, 0), np.float32)
    texts: list[list[str]] = [[] for _ in range(n)]
    values = np.full((n, 2 * N_EFFECTS), np.nan, np.float32)
    feats = _feature_nodes(result)
    with torch.no_grad():
        W_U = model.W_U.detach().float()
        for layer, tc in enumerate(tcs):
            nodes = [i for i in feats if int(result.layer[i]) == layer]
            if not nodes:
                continue
            eff = tc.W_dec.detach().float()[result.index[nodes]] @ W_U  # [nodes, d_vocab]
            k = min(N_EFFECTS, eff.shape[1])
            pad = [""] * (N_EFFECTS - k)  # a vocabulary under N_EFFECTS tokens
            up, down = eff.topk(k, dim=1), eff.topk(k, dim=1, largest=False)
            for row, i in enumerate(nodes):
                names = [str(s) for s in model.to_str_tokens(up.indices[row].tolist())]
                names += pad + [str(s) for s in model.to_str_tokens(down.indices[row].tolist())]
                texts[i] = names + pad
                values[i, :k] = up.values[row].numpy()
                values[i, N_EFFECTS : N_EFFECTS + k] = down.values[row].numpy()
    return texts, values


def _contexts(
    result: Any, model: Any, tcs: Any, contexts: Any
) -> tuple[list[list[str]], np.ndarray]:
    """Per feature node: its ``N_CONTEXTS`` strongest activations over ``contexts``, as
    ``[prefix, token]`` pairs (up to ``CONTEXT_WINDOW`` tokens before the active one)."""
    n = len(result.kind)
    if contexts is None:
        return [[] for _ in range(n)], np.zeros((n, 0), np.float32)
    from mechscope.splice import splice

    prompts = [contexts] if isinstance(contexts, str) else contexts
    if isinstance(prompts, (list, tuple)) and all(isinstance(s, str) for s in prompts):
        batches = [as_tokens(model, s, name="contexts") for s in prompts]
    else:
        batches = list(as_tokens(model, contexts, name="contexts")[:, None])
    spliced = splice(model, tcs)
    names = [f"{tc.cfg.site}.hook_sae_acts" for tc in tcs]
    acts: list[list[torch.Tensor]] = [[] for _ in tcs]  # per layer, per context: [pos, d_sae]
    strs = []
    with torch.no_grad():
        for toks in batches:
            _, cache = spliced.run_with_cache(toks, names=names)
            for layer, name in enumerate(names):
                acts[layer].append(cache[name][0].float())
            strs.append([str(s) for s in model.to_str_tokens(toks[0])])
    texts: list[list[str]] = [[] for _ in range(n)]
    values = np.full((n, N_CONTEXTS), np.nan, np.float32)
    for i in _feature_nodes(result):
        layer, j = int(result.layer[i]), int(result.index[i])
        found = [(float(a[p, j]), c, p) for c, a in enumerate(acts[layer]) for p in range(len(a))]
        found = sorted((f for f in found if f[0] > 0), key=lambda f: (-f[0], f[1], f[2]))
        for slot, (v, c, p) in enumerate(found[:N_CONTEXTS]):
            texts[i] += ["".join(strs[c][max(0, p - CONTEXT_WINDOW) : p]), strs[c][p]]
            values[i, slot] = v
    return texts, values


def _check_result(result: Any) -> None:
    from mechscope.attribution_graph import AttributionGraphResult

    if not isinstance(result, AttributionGraphResult):
        raise TypeError(
            f"result must be an AttributionGraphResult, got {type(result).__name__}. Fix: "
            "AttributionGraph(mechscope.attribution_graph.attribution_graph(model, "
            "transcoders, prompt))."
        )


def _check_model(result: Any, model: Any, transcoders: Any, contexts: Any) -> list | None:
    """The transcoders as a list when ``model`` and ``transcoders`` are given (else None),
    checked against the graph."""
    if (model is None) != (transcoders is None):
        given = "model" if transcoders is None else "transcoders"
        raise ValueError(
            f"{given}= was given alone; logit effects and click-to-ablate need both the model "
            "and its per-layer transcoders: AttributionGraph(g, model=model, transcoders=tcs)."
        )
    if model is None:
        if contexts is not None:
            raise ValueError(
                "contexts= needs model= and transcoders= (the features are read by running "
                "the model on them): AttributionGraph(g, model=m, transcoders=tcs, contexts=...)."
            )
        return None
    tcs = list(transcoders) if isinstance(transcoders, (list, tuple)) else [transcoders]
    n_layers = int(result.layer.max())
    if len(tcs) != n_layers:
        raise ValueError(
            f"transcoders: the graph has {n_layers} layers but {len(tcs)} transcoders were "
            "given; pass the model and transcoders the graph was built from."
        )
    d_sae = [int(tc.cfg.d_sae) for tc in tcs]
    feats = _feature_nodes(result)
    bad = [result.labels[i] for i in feats if int(result.index[i]) >= d_sae[int(result.layer[i])]]
    if bad or model.cfg.n_layers != n_layers:
        raise ValueError(
            f"transcoders do not fit this graph (features {bad[:3]} past d_sae={d_sae}, or "
            f"the model has {model.cfg.n_layers} layers for {n_layers}); pass the model and "
            "transcoders the graph was built from."
        )
    return tcs
