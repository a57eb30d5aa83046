"""Neuron-to-graph (N2G): a neuron's or SAE feature's behaviour as a graph of token patterns
(Foote et al. 2023, "Neuron to Graph: Interpreting Language Model Neurons at Scale"; review
§5.4).

An explanation written as a *graph* instead of a sentence. For each top-activating context:

1. **prune**: keep the shortest suffix that ends at the activating token and still gives at
   least ``frac`` of the activation (batched: causal attention lets shorter contexts share one
   right-padded batch);
2. **saliency**: replace each kept token by a common token and measure the drop; tokens whose
   replacement costs at least ``importance`` of the activation are *important*, the rest
   become wildcards ``*``;
3. **graph**: the patterns, read backwards from the activating token, go into a trie (Foote
   et al.'s graph before their merge step for display); an end node stores the mean
   activation of the contexts that end there.

The graph **predicts** the activation on new text: at each token, the largest stored value
of any pattern that matches the text ending there, else 0. So it is an explanation in the
sense of :mod:`mechscope.explain` (``.text`` and ``.simulate(token_texts)``) and scores by
simulation like any other; :func:`fire_score` adds Foote et al.'s precision and recall of
"fires" (activation above ``threshold`` times the largest activation the graph was built
from).

What we leave out: Foote et al. also *augment* each important token with similar tokens
proposed by a helper language model (none here, offline), so our graphs match exact tokens
only and recall suffers on held-out text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ._core import as_tokens
from .explain import simulate_score
from .sae import check_hook_name

__all__ = ["FireScore", "NeuronGraph", "fire_score", "neuron_to_graph"]

WILDCARD = None  # a pattern position that matches any token


@dataclass
class _Node:
    children: dict = field(default_factory=dict)  # token string (or None = *) -> _Node
    values: list = field(default_factory=list)  # activations of the patterns ending here


@dataclass
class NeuronGraph:
    """A feature's N2G graph: ``patterns`` as ``(tokens, activation)``, tokens read left to
    right and ending at the activating token, ``None`` a wildcard. ``max_act``: the largest
    activation it was built from (the unit of :func:`fire_score`'s threshold). ``contexts``:
    the pruned contexts the patterns come from (``[n]`` ids each, without ``<bos>``)."""

    patterns: list[tuple[tuple[str | None, ...], float]]
    max_act: float
    hook: str = ""
    feature: int = -1
    contexts: list = field(default_factory=list, repr=False)
    _root: _Node = field(default_factory=_Node, repr=False)

    def __post_init__(self):
        for pattern, value in self.patterns:
            node = self._root
            for tok in reversed(pattern):  # the activating token is the trie's first level
                node = node.children.setdefault(tok, _Node())
            node.values.append(float(value))

    @property
    def n_nodes(self) -> int:
        """Nodes in the trie (its size, the graph's complexity)."""
        stack, n = [self._root], -1
        while stack:
            node = stack.pop()
            n += 1
            stack.extend(node.children.values())
        return n

    @property
    def end_patterns(self) -> list[tuple[tuple[str | None, ...], float, int]]:
        """The distinct patterns (the trie's end nodes) as ``(pattern, mean activation,
        count)``, strongest first: what the graph predicts with."""
        out, stack = [], [(self._root, ())]
        while stack:
            node, path = stack.pop()
            if node.values:
                out.append((path[::-1], sum(node.values) / len(node.values), len(node.values)))
            stack.extend((child, (*path, tok)) for tok, child in node.children.items())
        return sorted(out, key=lambda e: -e[1])

    @property
    def text(self) -> str:
        """The distinct patterns, strongest first, one per line: ``*`` a wildcard, the
        activating token in brackets, the mean activation and how many contexts gave it."""
        return "\n".join(
            " ".join(["*" if t is None else repr(t) for t in p[:-1]] + [f"[{p[-1]!r}]"])
            + f" -> {v:.2f} (x{n})"
            for p, v, n in self.end_patterns
        )

    def _predict_at(self, toks: list[str], t: int) -> float:
        best, stack = 0.0, [(self._root, t)]
        while stack:
            node, i = stack.pop()
            if node.values:
                best = max(best, sum(node.values) / len(node.values))
            if i < 0:
                continue
            for key in (toks[i], WILDCARD):
                child = node.children.get(key)
                if child is not None and (key is not None or node is not self._root):
                    stack.append((child, i - 1))
        return best

    def simulate(self, token_texts) -> list[torch.Tensor]:
        """Predicted activations ``[one tensor of len(text) per text]``: at each token the
        largest value of a matching pattern, 0 where none matches."""
        if isinstance(token_texts, str):
            raise TypeError("token_texts must be a list of texts, each a list of token strings.")
        return [
            torch.tensor([self._predict_at(list(toks), t) for t in range(len(toks))])
            for toks in token_texts
        ]


@dataclass(frozen=True)
class FireScore:
    """``precision``, ``recall`` of "fires" (above threshold) over ``n_tokens`` tokens, of
    which ``n_fires`` really fire and ``n_predicted`` are predicted to; ``r``: Pearson r of
    predicted vs real activations (:func:`mechscope.explain.simulate_score`)."""

    precision: float
    recall: float
    r: float
    n_fires: int
    n_predicted: int
    n_tokens: int

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0


class _Stop(Exception):
    """Raised by the reading hook: nothing after ``hook`` is needed (no later layers, no
    unembedding), so the run ends there; the hook context removes the hook on the way out."""


def _feature_acts(model, tokens, hook, features, sae, batch_size=64) -> torch.Tensor:
    """``[batch, pos, len(features)]``: the units ``features`` of ``hook`` (of ``sae``'s
    features when given), from runs that stop at ``hook``."""
    out = []

    def read(act, point=None):  # point: the HookPoint (unused)
        h = act.float()
        h = sae.encode(h) if sae is not None else h
        if max(features) >= h.shape[-1]:
            raise ValueError(
                f"feature {max(features)} but {hook} has {h.shape[-1]} "
                f"{'SAE features' if sae is not None else 'units'}: pass an index below that."
            )
        out.append(h[..., features])
        raise _Stop

    with torch.no_grad():
        for i in range(0, len(tokens), batch_size):
            try:
                with model.hooks([(hook, read)]):
                    model(tokens[i : i + batch_size])
            except _Stop:
                pass
    return torch.cat(out)


def _check_args(model, hook, feature, sae, k, frac, importance, n_ctx):
    check_hook_name(model, hook)
    features = [feature] if isinstance(feature, int) and not isinstance(feature, bool) else feature
    if (
        isinstance(features, (str, bytes))
        or not isinstance(features, Sequence)
        or not features
        or any(isinstance(f, bool) or not isinstance(f, int) or f < 0 for f in features)
    ):
        raise TypeError(
            f"feature={feature!r}; expected a neuron or SAE feature index (int >= 0) or a "
            f"non-empty list of them."
        )
    if sae is not None and getattr(sae.cfg, "site", hook) != hook:
        raise ValueError(
            f"sae reads {sae.cfg.site!r} but hook={hook!r}: pass hook={sae.cfg.site!r}."
        )
    for name, v in (("frac", frac), ("importance", importance)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise ValueError(f"{name}={v!r}; expected a fraction in (0, 1], e.g. 0.5.")
    for name, v in (("k", k), ("n_ctx", n_ctx)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r}; expected a positive int.")
    if not getattr(model.cfg, "is_causal", True):
        raise ValueError(
            "neuron_to_graph needs a causal model (it right-pads pruned contexts); "
            f"{type(model).__name__} has cfg.is_causal False."
        )
    return list(features)


def _last_acts(act_fn, rows, pad) -> list[float]:
    """The activation at the last token of each row (1-D ids, any lengths), from one batch
    padded on the right: causal attention keeps the padding from reaching back."""
    batch = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=rows[0].dtype)
    for b, r in enumerate(rows):
        batch[b, : len(r)] = r
    ends = torch.tensor([len(r) - 1 for r in rows])
    return act_fn(batch)[torch.arange(len(rows)), ends].tolist()


_FIRST = 8  # suffix lengths tried in a first batch: most contexts prune to a few tokens


def _prune(act_fn, examples, start, frac, n_ctx, pad, bos) -> list[torch.Tensor]:
    """``examples`` ``[(row, p, a)]`` -> per example the shortest suffix ``row[p + 1 - n : p +
    1]`` (at most ``n_ctx`` tokens, none before ``start``) whose activation at its last token is
    >= ``frac * a``; the longest tried when none is."""
    found = [0] * len(examples)
    for lo, hi in ((1, _FIRST), (_FIRST + 1, n_ctx)):
        rows, owner = [], []
        for e, (row, p, _) in enumerate(examples):
            for n in range(lo, min(hi, p + 1 - start) + 1) if not found[e] else ():
                rows.append(torch.cat([bos, row[p + 1 - n : p + 1]]))
                owner.append((e, n))
        if not rows:
            break
        for (e, n), x in zip(owner, _last_acts(act_fn, rows, pad), strict=True):
            if not found[e] and x >= frac * examples[e][2]:
                found[e] = n  # each example's rows come shortest first
    return [
        row[p + 1 - (n or min(n_ctx, p + 1 - start)) : p + 1]
        for (row, p, _), n in zip(examples, found, strict=True)
    ]


def _important(act_fn, contexts, bos, alts, importance, pad) -> list[list[bool]]:
    """Per token of each context: does replacing it by a common token lower the activation at
    the last token by >= ``importance`` of its value? The activating (last) token is kept."""
    rows = []
    for ctx in contexts:
        full = torch.cat([bos, ctx])
        rows.append(full)  # unchanged, then one row per replaced token
        for j, tok in enumerate(ctx.tolist()):
            row = full.clone()
            row[len(bos) + j] = alts[1] if tok == alts[0] else alts[0]
            rows.append(row)
    acts, out, i = _last_acts(act_fn, rows, pad), [], 0
    for ctx in contexts:
        base, drops = acts[i], acts[i + 1 : i + 1 + len(ctx)]
        keep = [base - x >= importance * abs(base) for x in drops]
        out.append(keep[:-1] + [True])
        i += 1 + len(ctx)
    return out


def neuron_to_graph(
    model,
    tokens,
    hook: str,
    feature: int | Sequence[int],
    *,
    sae=None,
    k: int = 8,
    frac: float = 0.5,
    importance: float = 0.5,
    n_ctx: int = 24,
    baseline: int | None = None,
) -> NeuronGraph | list[NeuronGraph]:
    """N2G (Foote et al. 2023): the graph of token patterns of neuron ``feature`` at ``hook``
    (``[..., d]`` activations), or of SAE feature ``feature`` when ``sae`` (reading ``hook``)
    is given, built from its ``k`` top-activating texts of ``tokens`` (``[batch, pos]``, one
    context per text at its peak; a leading ``<bos>`` is kept in every pruned context). A list
    of features gives a list of graphs (one full run shared by all).

    frac: pruning keeps the shortest suffix of at most ``n_ctx`` tokens with >= ``frac`` of
    the activation. importance: a token is important when replacing it drops the activation by
    >= this fraction. baseline: the replacement token id; default the commonest token of
    ``tokens`` (the second commonest where a token already is the commonest).
    Needs a causal model; runs stop at ``hook``, under ``no_grad``; the model is not changed.
    """
    features = _check_args(model, hook, feature, sae, k, frac, importance, n_ctx)
    tokens = as_tokens(model, tokens)
    bos_id = getattr(getattr(model, "tokenizer", None), "bos_id", None)
    start = 1 if bos_id is not None and bool((tokens[:, 0] == bos_id).all()) else 0
    if tokens.shape[1] <= start:
        raise ValueError(f"tokens has {tokens.shape[1]} positions; give texts of >= 1 token.")
    bos = tokens[0, :start]
    counts = torch.bincount(tokens[:, start:].flatten(), minlength=2)
    if baseline is not None:
        if isinstance(baseline, bool) or not isinstance(baseline, int):
            raise TypeError(f"baseline={baseline!r}; expected a token id (int) or None.")
        counts[baseline] = counts.max() + 1
    alts = counts.topk(2).indices.tolist()
    tok = getattr(model, "tokenizer", None)  # patterns hold token strings, as texts do
    text_of = getattr(tok, "token_text", None) or (
        (lambda i: model.to_str_tokens(torch.tensor([i]))[0]) if tok is not None else str
    )
    full = _feature_acts(model, tokens, hook, features, sae)[:, start:]  # [batch, pos, feature]
    graphs = []
    for f, acts in zip(features, full.unbind(-1), strict=True):

        def act_fn(batch, f=f):  # [batch, pos] ids -> [batch, pos] activations of f
            return _feature_acts(model, batch, hook, [f], sae)[..., 0]

        peak, where = acts.max(1)
        top = [i for i in peak.argsort(descending=True)[:k].tolist() if peak[i] > 0]
        examples = [(tokens[i], int(where[i]) + start, float(peak[i])) for i in top]
        contexts = _prune(act_fn, examples, start, frac, n_ctx, alts[0], bos) if top else []
        keeps = _important(act_fn, contexts, bos, alts, importance, alts[0]) if top else []
        patterns = []
        for (_, _, a), ctx, keep in zip(examples, contexts, keeps, strict=True):
            first = keep.index(True)  # wildcards before the farthest important token match all
            pat = [text_of(int(t)) if kp else WILDCARD for t, kp in zip(ctx, keep, strict=True)]
            patterns.append((tuple(pat[first:]), a))
        if not patterns:
            raise ValueError(
                f"feature {f} at {hook} never activates (> 0) on tokens: nothing to explain; "
                "pass texts where it fires, or another feature."
            )
        graphs.append(NeuronGraph(patterns, max(v for _, v in patterns), hook, f, contexts))
    return graphs[0] if isinstance(feature, int) else graphs


def fire_score(graph, token_texts, acts, *, threshold: float = 0.5) -> FireScore:
    """Score ``graph`` (any explanation with ``.simulate``; a :class:`NeuronGraph` gives the
    unit) on ``token_texts`` against the real ``acts`` (one sequence per text): a token
    *fires* when its activation exceeds ``threshold * graph.max_act``, for the real and the
    predicted activations alike. Precision and recall of firing, and Pearson r."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold <= 0:
        raise ValueError(f"threshold={threshold!r}; expected a fraction > 0 of graph.max_act.")
    unit = getattr(graph, "max_act", None)
    if unit is None:
        raise TypeError(
            f"graph must carry max_act (a NeuronGraph from neuron_to_graph); got "
            f"{type(graph).__name__}."
        )
    score = simulate_score(graph, token_texts, acts)  # validates texts and acts
    real = torch.cat([torch.as_tensor(a, dtype=torch.float32).flatten() for a in acts])
    pred = torch.cat([p.float().flatten() for p in graph.simulate(token_texts)])
    fires, said = real > threshold * unit, pred > threshold * unit
    hit = int((fires & said).sum())
    n_f, n_s = int(fires.sum()), int(said.sum())
    return FireScore(
        hit / n_s if n_s else 0.0, hit / n_f if n_f else 0.0, score.score, n_f, n_s, len(real)
    )
