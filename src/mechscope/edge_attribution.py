"""Edge attribution patching (EAP) and EAP with integrated gradients (EAP-IG).

Attribution patching (:mod:`mechscope.patching_attr`) scores *nodes*: one head's output, all
of its effects at once. Edge attribution patching scores *edges* ``sender head -> receiver``
from the same single backward pass (Syed, Rager & Conmy 2023, "Attribution Patching
Outperforms Automated Circuit Discovery"). The receivers are a later head's query, key or
value input (``"L1H0.q"`` / ``".k"`` / ``".v"``) and the logits (the final residual stream,
``"logits"``). The score of an edge is the first-order estimate of patching the clean
sender output into that one receiver's input, everything else corrupted:

    score(s -> r) = (out_s(clean) - out_s(corrupted)) . dmetric / d(input of r)

where ``out_s`` is what head ``s`` writes into the residual stream (``z_s @ W_O[s]``) and the
gradient is taken at the corrupted run. Every receiver reads the same residual stream, so
each one gets its *own* input gradient: the gradient at its ``hook_q`` / ``hook_k`` /
``hook_v`` (head ``h`` only) passed back through ``W_Q[h]`` (``W_K``, ``W_V``) and its
LayerNorm (a vector-Jacobian product at the corrupted activations).

``mlps`` says which paths an edge includes, as path patching's receivers do:

- ``"fold"`` (default): the sender's output reaches the receiver directly and through the
  MLPs in between (MLPs recompute, other heads are held): the gradient is also passed back
  through each MLP between the two (its LayerNorm included). This is how
  :func:`mechscope.path_patching.path_patch_all` and the compiled circuits of
  :mod:`mechscope.ground_truth` count an edge.
- ``"direct"``: the residual path only, MLPs held at their corrupted values (an MLP is a
  node of its own, as in Syed et al.'s graph, whose edges are not listed here).

``method="eap-ig"`` (Hanna, Pezzelle & Belinkov 2024, "Have Faith in Faithfulness") averages
the receivers' input gradients over ``steps`` runs whose input embeddings move from the
corrupted to the clean ones, ``corrupted + (k / steps) (clean - corrupted)``, ``k = 1..steps``
(their Eq. 5; one forward and backward per step). Where the model is not smooth (a saturated
softmax, a ReLU staircase) the gradient at the corrupted run alone can be ~0 while patching
changes a lot; the path average sees the change.

Only :class:`mechscope.Transformer` (zoo and compiled models) is supported: the method reads
its per-head weights and calls its LayerNorm and MLP modules.

Example::

    res = edge_attribution_patch(model, clean, corrupted, metric, method="eap-ig", steps=8)
    res.top(5)  # [(("L0H3", "L1H1.k"), 0.41), ...]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._attribution_grad import frozen
from ._core import as_tokens, check_pair, metric_values
from ._sweep import check_direction
from .metrics import Metric
from .models.transformer import Transformer

__all__ = ["EdgeAttributionResult", "edge_attribution_patch"]

METHODS = ("eap", "eap-ig")
MLP_MODES = ("fold", "direct")


@dataclass(frozen=True)
class EdgeAttributionResult:
    """Edge scores.

    edges: ``(sender, receiver)`` pairs, sender ``"L0H1"``, receiver ``"L1H0.q"`` / ``.k`` /
        ``.v`` or ``"logits"``; sender-major, the order of ``KnownCircuit.candidate_edges``.
    values: ``[edge]`` estimated change of the metric (mean over prompts) when the clean
        sender output reaches that receiver only (``direction="noising"``: the corrupted one
        into the clean run).
    clean_value, corrupted_value: the metric on the clean and corrupted prompts.
    """

    edges: tuple
    values: torch.Tensor
    method: str
    steps: int
    mlps: str
    direction: str
    clean_value: float
    corrupted_value: float

    def top(self, k: int = 10) -> list:
        """The ``k`` edges with the largest ``|score|``: ``[((sender, receiver), score)]``."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k={k!r}; expected a positive int, e.g. top(10).")
        order = self.values.abs().argsort(descending=True, stable=True)[:k]
        return [(self.edges[i], float(self.values[i])) for i in order.tolist()]

    def as_dict(self) -> dict:
        """``{(sender, receiver): score}``."""
        return dict(zip(self.edges, self.values.tolist(), strict=True))


def _check_args(model, method, steps, mlps):
    if not isinstance(model, Transformer):
        raise TypeError(
            f"edge_attribution_patch supports mechscope.Transformer models (the zoo's and "
            f"mechscope.ground_truth's compiled ones); got {type(model).__name__}. On other "
            "models use path_patch_all (exact edges) or attribution_patch(site='z') (nodes)."
        )
    if method not in METHODS:
        raise ValueError(f"method={method!r}; expected 'eap' or 'eap-ig'.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}; expected a positive int, e.g. steps=8 (EAP-IG).")
    if method == "eap" and steps != 1:
        raise ValueError(f"steps={steps} with method='eap', which takes one step; "
                         "use method='eap-ig' to integrate over steps.")  # fmt: skip
    if mlps not in MLP_MODES:
        raise ValueError(
            f"mlps={mlps!r}; expected 'fold' (paths through MLPs count, as path patching) "
            "or 'direct' (the residual path only)."
        )


def edge_attribution_patch(
    model,
    clean,
    corrupted,
    metric: Metric,
    *,
    method: str = "eap",
    steps: int | None = None,
    mlps: str = "fold",
    direction: str = "denoising",
) -> EdgeAttributionResult:
    """Score every head -> receiver edge by EAP or EAP-IG (module docstring).

    model: a :class:`mechscope.Transformer`.
    clean, corrupted: text, a list of texts, or token ids ``[batch, pos]`` of the same shape.
    metric: ``fn(logits [batch, pos, d_vocab]) -> [batch]``; scores are in its units.
    method: ``"eap"`` (one forward and backward) or ``"eap-ig"`` (``steps`` of them).
    steps: EAP-IG's interpolation steps (default 5); EAP takes 1.
    mlps: ``"fold"`` (paths through MLPs count) or ``"direct"`` (residual path only).
    direction: ``"denoising"`` (clean sender outputs into the corrupted run, the gradient
        at the corrupted run) or ``"noising"`` (the reverse).

    The model is left as it came: no hooks, parameters' ``requires_grad`` and ``.grad``
    untouched, same mode.
    """
    if steps is None:
        steps = 5 if method == "eap-ig" else 1
    _check_args(model, method, steps, mlps)
    check_direction(direction)
    clean_t = as_tokens(model, clean, name="clean")
    corrupted_t = as_tokens(model, corrupted, name="corrupted")
    check_pair(model, clean_t, corrupted_t)
    source, target = (clean_t, corrupted_t) if direction == "denoising" else (corrupted_t, clean_t)
    with frozen(model):
        embeds, outs, values = _source_target(model, source, target, metric)
        alphas = [k / steps for k in range(1, steps + 1)] if method == "eap-ig" else [0.0]
        total = None
        for a in alphas:
            emb = embeds[1] + a * (embeds[0] - embeds[1])
            s = _step_scores(model, target, emb, metric, outs, mlps)
            total = s if total is None else {lr: total[lr] + v for lr, v in s.items()}
    scores = {lr: v / len(alphas) for lr, v in total.items()}
    edges, vals = _flatten(model, scores)
    src_v, tgt_v = values
    clean_v, corrupted_v = (src_v, tgt_v) if direction == "denoising" else (tgt_v, src_v)
    return EdgeAttributionResult(edges, vals, method, steps, mlps, direction, clean_v, corrupted_v)


def _source_target(model, source, target, metric):
    """No-grad passes over both runs: their embeddings ``(source, target)`` (each
    ``[batch, pos, d_model]``), each layer's sender-output difference ``source - target``
    (``[batch, pos, head, d_model]``) and the two metric means."""
    n = source.shape[0]
    store = {}

    def save(act, hook):
        store[hook.name] = act.detach()

    names = ["hook_embed"] + [f"blocks.{la}.attn.hook_z" for la in range(model.cfg.n_layers)]
    runs = []  # one pass each: a metric may hold one answer per prompt
    for tokens in (source, target):
        with torch.no_grad(), model.hooks([(name, save) for name in names]):
            m = float(metric_values(metric, model(tokens), n).mean())
        runs.append((dict(store), m))
    (src, src_v), (tgt, tgt_v) = runs
    outs = []
    for la, block in enumerate(model.blocks):
        dz = src[f"blocks.{la}.attn.hook_z"] - tgt[f"blocks.{la}.attn.hook_z"]  # [b, p, h, e]
        outs.append(torch.einsum("bphe,hed->bphd", dz, block.attn.W_O.detach()))
    return (src["hook_embed"], tgt["hook_embed"]), outs, (src_v, tgt_v)


def _step_scores(model, target, embed, metric, outs, mlps):
    """Scores ``{receiver layer: [receiver, sender layer, sender head]}`` from one forward and
    backward of ``target`` with ``embed`` at ``hook_embed``."""
    L, n = model.cfg.n_layers, target.shape[0]
    leaf = embed.detach().clone().requires_grad_(True)
    acts = {}

    def keep(act, hook):
        acts[hook.name] = act
        return act

    names = [f"blocks.{la}.hook_resid_pre" for la in range(L)]
    names += [f"blocks.{la}.hook_resid_mid" for la in range(L) if model.blocks[la].has_mlp]
    names += [f"blocks.{la}.attn.hook_{c}" for la in range(1, L) for c in "qkv"]
    names.append(f"blocks.{L - 1}.hook_resid_post")
    with torch.enable_grad():
        hooks = [("hook_embed", lambda act, hook: leaf)] + [(name, keep) for name in names]
        with model.hooks(hooks):
            m = metric_values(metric, model(target), n).mean()
        wrt = [f"blocks.{la}.attn.hook_{c}" for la in range(1, L) for c in "qkv"]
        wrt.append(f"blocks.{L - 1}.hook_resid_post")
        grads = torch.autograd.grad(m, [acts[w] for w in wrt], allow_unused=True)
        grads = {w: torch.zeros_like(acts[w]) if g is None else g
                 for w, g in zip(wrt, grads, strict=True)}  # fmt: skip
        resid = {k: v.detach() for k, v in acts.items() if "resid" in k}
        scores = {}
        for lr in range(1, L + 1):
            cot = _receiver_cotangents(model, lr, grads, resid)  # [receiver, batch, pos, d]
            per_layer = []
            for la in range(lr - 1, -1, -1):
                block = model.blocks[la]
                if mlps == "fold" and block.has_mlp:
                    x = resid[f"blocks.{la}.hook_resid_mid"]
                    cot = cot + _vjp(lambda r, b=block: b.mlp(b.ln2(r)), x, cot)
                per_layer.append(torch.einsum("rbpd,bphd->rh", cot, outs[la]))
            scores[lr] = torch.stack(per_layer[::-1], 1)  # [receiver, sender layer, head]
    return scores


def _receiver_cotangents(model, lr, grads, resid):
    """Each receiver's own input gradient at layer ``lr`` (``n_layers`` = the logits):
    ``[3 * head, batch, pos, d_model]`` (q heads, k heads, v heads) or ``[1, ...]``."""
    L = model.cfg.n_layers
    if lr == L:
        return grads[f"blocks.{L - 1}.hook_resid_post"][None]
    attn = model.blocks[lr].attn
    parts = []
    for c, W in (("q", attn.W_Q), ("k", attn.W_K), ("v", attn.W_V)):
        g = grads[f"blocks.{lr}.attn.hook_{c}"]  # [batch, pos, head, d_head]
        parts.append(torch.einsum("bphe,hde->hbpd", g, W.detach()))
    cot = torch.cat(parts)  # gradient at ln1's output, one row per receiver
    return _vjp(model.blocks[lr].ln1, resid[f"blocks.{lr}.hook_resid_pre"], cot)


def _vjp(fn, x, cot):
    """``cot [k, *x.shape] @ d fn / d x`` at ``x``, row by row. ``fn`` acts on the last axis
    only (a LayerNorm, an MLP), so ``k`` copies of ``x`` in one batch give ``k`` independent
    products from one backward pass."""
    rows = x.detach().expand(cot.shape[0], *x.shape).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(rows), rows, grad_outputs=cot)
    return g


def _flatten(model, scores):
    """Edges in ``KnownCircuit.candidate_edges`` order and their scores ``[edge]``."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    edges, vals = [], []
    for la in range(L):
        for h in range(H):
            for lb in range(la + 1, L):
                for g in range(H):
                    for i, c in enumerate("qkv"):
                        edges.append((f"L{la}H{h}", f"L{lb}H{g}.{c}"))
                        vals.append(scores[lb][i * H + g, la, h])
            edges.append((f"L{la}H{h}", "logits"))
            vals.append(scores[L][0, la, h])
    return tuple(edges), torch.stack(vals).detach()
