"""Causal scrubbing: test a hypothesis about what each component computes.

Chan et al. 2022, "Causal Scrubbing: a method for rigorously testing interpretability
hypotheses" (Redwood Research). A hypothesis names model components, says which
*feature of the input* each one computes, and which upstream components it reads that
feature from. Scrubbing then replaces every activation by its value on *another* input
that the hypothesis says is equivalent, and every path the hypothesis leaves out by its
value on a random input. If the hypothesis is right, the model cannot tell: the loss stays
where it was. The score is the fraction of the loss recovered::

    recovered = (loss_random_baseline - loss_scrubbed) / (loss_random_baseline - loss_full)

1.0: the hypothesis explains everything the loss measures; 0.0: no better than feeding the
output random activations.

**Inputs are contexts.** A decoder's activation at position ``j`` of sequence ``s`` is a
function of the prefix ``tokens[s, :j+1]``, so the unit that is resampled is a context
``(s, j)`` of the dataset you pass. A feature maps ``tokens [batch, pos]`` to integer codes
``[batch, pos]``; two contexts are equivalent for a node when their codes agree. A resampled
context may sit at another position: a feature that should keep the position includes
:func:`position` (``token() & position()``).

**The graph** is the model's at head granularity. Scrubbing recomputes heads and MLPs from
the weights, so the model needs the :class:`mechscope.protocols.ReadableBlocks` capability
(mechscope's ``Transformer``; a wrapped HF model gets a TypeError naming it):

- ``"embed"``: token + position embedding of the context (a leaf);
- ``("blocks.L.attn.hook_q", h)`` / ``hook_k`` / ``hook_v``: what head ``h``'s query, key or
  value reads, the residual stream before ``ln1``; its model parents are ``"embed"``, every
  head of an earlier layer and every earlier MLP;
- ``("blocks.L.attn.hook_z", h)``: head ``h``'s output (times ``W_O``); parents: its own
  q, k, v. A head at context ``(s, j)`` reads its key and value inputs at every ``(s, m)``,
  ``m <= j``, each resampled separately (this is what makes K-composition testable);
- ``"blocks.L.hook_mlp_out"``: an MLP; parents: embed, heads of layers ``<= L``, earlier MLPs;
- ``"logits"``: the output, always run on the reference context; parents: all of the above
  except q/k/v.

Biases (``b_O``, MLP ``b_out``) are constants and never resampled. A head's attention pattern
(``hook_pattern``) is a function of its q and k inputs, so claims about the pattern are claims
on those two nodes.

Why not hooks on one batched forward pass: in the treeified model a head's key at each earlier
position comes from a *different* resampled context, which a forward pass over whole sequences
cannot express. So the scrubbed values are assembled functionally from the model's own weights
(LayerNorm, ``W_Q``, ``W_K``, ``W_V``, ``W_O``, MLP, unembedding), batched over contexts; the
model is only read. The full model's loss and the random baseline come from ordinary (hooked)
forward passes, independently of that assembly, which is what the limit tests compare against.

**The algorithm** (Chan et al., section 2, "treeified" model): evaluate ``logits`` at each
reference context. For each model parent ``p`` of a node ``n`` evaluated at context ``c``: if
the hypothesis claims the edge ``p -> n``, draw ``c'`` uniformly among the dataset's
contexts whose feature of ``p`` equals that of ``c`` and evaluate ``p`` at ``c'`` the same way
(recursively); otherwise take ``p``'s ordinary value at a uniformly random context ``c'``.
Implementation choice (documented, not in the paper): each ``(node, context)`` is computed
once, with one draw of its upstream inputs, and shared by every branch that lands on it. Each
branch still draws its own context, so a reference's tree meets the same pair twice only when
two of its branches draw the same context; the cost is bounded by nodes x contexts instead of
growing with the tree.

Example: the induction circuit of ``induction-2l`` through one induction head (L1H2) and the
previous-token head L0H2 (K-composition) recovers 0.29 of the loss on 32 repeated sequences;
with all four layer-1 induction heads, 0.90 (notebook 10)::

    def head(kind, layer, h):  # ("blocks.1.attn.hook_k", 2): the key input of head L1H2
        return (f"blocks.{layer}.attn.hook_{kind}", h)

    tok, prev, pos = token(), token(-1), position()
    hyp = Hypothesis({
        "logits": Claim(parents=["embed", head("z", 1, 2)]),
        "embed": Claim(tok & pos),
        head("z", 1, 2): Claim(induction_target(), [head(c, 1, 2) for c in "qkv"]),
        head("q", 1, 2): Claim(tok, ["embed"]),
        head("k", 1, 2): Claim(prev, [head("z", 0, 2)]),  # K-composition
        head("v", 1, 2): Claim(tok, ["embed"]),
        head("z", 0, 2): Claim(prev, [head(c, 0, 2) for c in "qkv"]),
        head("q", 0, 2): Claim(pos, ["embed"]),
        head("k", 0, 2): Claim(pos, ["embed"]),
        head("v", 0, 2): Claim(tok, ["embed"]),
    })
    scrub(model, hyp, tokens, loss_mask).recovered
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._core import as_tokens
from ._scrub_graph import (
    EVERYTHING,
    Claim,
    Everything,
    Feature,
    Hypothesis,
    induction_target,
    model_parents,
    position,
    token,
    validate,
)
from .protocols import ReadableBlocks, require

__all__ = [
    "EVERYTHING",
    "Claim",
    "Feature",
    "Hypothesis",
    "ScrubResult",
    "induction_target",
    "position",
    "scrub",
    "token",
]

_ROWS = 1024  # contexts per chunk when computing a head (memory: rows x pos x d_model floats)


# ---- the scrubbed evaluation -------------------------------------------------------------


def _ln(x: torch.Tensor, ln) -> torch.Tensor:
    """The model's LayerNorm (or identity) applied functionally, so no hook point fires."""
    if not hasattr(ln, "w"):
        return x
    x = x - x.mean(-1, keepdim=True)
    return x / (x.pow(2).mean(-1, keepdim=True) + ln.eps).sqrt() * ln.w + ln.b


class _Scrubber:
    """Evaluates nodes at contexts (flat indices ``s * pos + j`` into ``tokens``)."""

    def __init__(self, model, claims, tokens, gen: torch.Generator, exact: bool = False):
        self.model, self.claims, self.gen, self.exact = model, claims, gen, exact
        cfg = model.cfg
        P, T = tokens.shape
        self.T, self.n = T, P * T
        names = ["hook_embed", "hook_pos_embed"]
        for layer in range(cfg.n_layers):
            names += [f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.attn.hook_z"]
            if not cfg.attn_only:
                names.append(f"blocks.{layer}.hook_mlp_out")
        logits, cache = model.run_with_cache(tokens, names)
        flat = lambda x: x.reshape(self.n, *x.shape[2:])  # noqa: E731  [P, T, ...] -> [n, ...]
        self.cache = {k: flat(cache[k]) for k in names}
        # Each node's ordinary value at every context: what an unclaimed path reads.
        self.plain = {("embed",): self.cache["hook_embed"] + self.cache["hook_pos_embed"]}
        self.plain[("logits",)] = flat(logits)
        for layer in range(cfg.n_layers):
            z = self.cache[f"blocks.{layer}.attn.hook_z"]  # [n, head, d_head]
            out = torch.einsum("nhe,hed->hnd", z, model.blocks[layer].attn.W_O)
            resid = self.cache[f"blocks.{layer}.hook_resid_pre"]
            for h in range(cfg.n_heads):
                self.plain[("z", layer, h)] = out[h]
                for kind in "qkv":
                    self.plain[(kind, layer, h)] = resid
            if not cfg.attn_only:
                self.plain[("mlp", layer)] = self.cache[f"blocks.{layer}.hook_mlp_out"]
        # Equivalence classes of each feature: contexts sorted by class, class start and size.
        self.classes = {}
        for feature, _ in claims.values():
            if isinstance(feature, Everything) or id(feature) in self.classes:
                continue
            codes = feature(tokens.cpu()).flatten()
            cls = torch.unique(codes, return_inverse=True)[1]
            count = torch.bincount(cls)
            order = torch.argsort(cls, stable=True)
            self.classes[id(feature)] = (order, torch.cumsum(count, 0) - count, count, cls)
        self.memo: dict = {}

    # -- sampling --

    def _random(self, m: int) -> torch.Tensor:
        return torch.randint(0, self.n, (m,), generator=self.gen)

    def _equivalent(self, feature: Feature, ctx: torch.Tensor) -> torch.Tensor:
        """For each context, a uniformly drawn context with the same feature code."""
        if isinstance(feature, Everything):
            return ctx
        order, start, count, cls = self.classes[id(feature)]
        c = cls[ctx]
        pick = (torch.rand(len(ctx), generator=self.gen) * count[c]).long()
        return order[start[c] + pick]

    def _read(self, node, parent, ctx: torch.Tensor) -> torch.Tensor:
        """``parent``'s value as ``node`` (evaluated at ``ctx``) reads it: ``[len(ctx), d]``."""
        if parent in self.claims[node][1]:
            return self.value(parent, self._equivalent(self.claims[parent][0], ctx))
        return self.plain[parent][self._random(len(ctx))]

    # -- evaluation --

    def value(self, node, ctx: torch.Tensor) -> torch.Tensor:
        """The scrubbed value of ``node`` at contexts ``ctx [m]``, memoised per context.

        With ``exact``, every row is its own branch of the treeified model (no sharing).
        """
        if node == ("embed",):  # a leaf: its value is a function of the context itself
            return self.plain[node][ctx]
        if self.exact:
            return torch.cat([self._compute(node, chunk) for chunk in ctx.split(_ROWS)])
        if node not in self.memo:
            width = self.plain[node].shape[-1]
            self.memo[node] = (
                torch.empty(self.n, width, device=self.plain[node].device),
                torch.zeros(self.n, dtype=torch.bool),
            )
        vals, done = self.memo[node]
        need = torch.unique(ctx[~done[ctx]])
        for chunk in need.split(_ROWS):
            vals[chunk] = self._compute(node, chunk)
            done[chunk] = True
        return vals[ctx]

    def _sum_parents(self, node, ctx: torch.Tensor) -> torch.Tensor:
        """Residual stream as ``node`` sees it: its parents' values plus constant biases."""
        parents = model_parents(self.model, node)
        total = sum(self._read(node, p, ctx) for p in parents)
        for layer in sorted({p[1] for p in parents if p[0] == "z"}):
            total = total + self.model.blocks[layer].attn.b_O
        return total

    def _compute(self, node, ctx: torch.Tensor) -> torch.Tensor:
        model, kind = self.model, node[0]
        if kind in "qkv":
            return self._sum_parents(node, ctx)
        if kind == "mlp":
            block = model.blocks[node[1]]
            mlp = block.mlp
            x = _ln(self._sum_parents(node, ctx), block.ln2)
            return mlp.act(x @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out
        if kind == "logits":
            x = self._sum_parents(node, ctx)
            if model.cfg.normalization == "ln":
                x = _ln(x, model.ln_final)
            return x @ model.W_U + model.b_U
        return self._head(node, ctx)

    def _head(self, node, ctx: torch.Tensor) -> torch.Tensor:
        """Head output at ``ctx``: query read at the context, key/value at each earlier one."""
        _, layer, h = node
        T = self.T
        block = self.model.blocks[layer]
        attn = block.attn
        j = ctx % T
        keys = (ctx - j)[:, None] + torch.arange(T)  # contexts (s, m) for m in 0..pos-1
        valid = torch.arange(T)[None] <= j[:, None]  # [m, pos]: causal
        rows = keys[valid]  # only causal (query, key) pairs are read and projected
        q = _ln(self._read(node, ("q", layer, h), ctx), block.ln1) @ attn.W_Q[h] + attn.b_Q[h]
        k = torch.zeros(len(ctx), T, q.shape[-1], device=q.device)  # [m, pos, d_head]
        v = torch.zeros_like(k)
        k[valid] = (
            _ln(self._read(node, ("k", layer, h), rows), block.ln1) @ attn.W_K[h] + attn.b_K[h]
        )
        v[valid] = (
            _ln(self._read(node, ("v", layer, h), rows), block.ln1) @ attn.W_V[h] + attn.b_V[h]
        )
        scores = torch.einsum("me,mte->mt", q, k) * attn.scale
        pattern = scores.masked_fill(~valid, float("-inf")).softmax(dim=-1)
        return torch.einsum("mt,mte->me", pattern, v) @ attn.W_O[h]


# ---- the public entry point --------------------------------------------------------------


@dataclass(frozen=True)
class ScrubResult:
    """Losses of one scrubbing run (mean next-token cross-entropy over the masked positions).

    loss_full: the model as it is. loss_scrubbed: under the hypothesis.
    loss_random_baseline: every input of the output (embedding, each head, each MLP) taken
    from an independent random context: what the empty hypothesis scrubs to.
    """

    loss_full: float
    loss_scrubbed: float
    loss_random_baseline: float
    n_contexts: int

    @property
    def recovered(self) -> float:
        """``(baseline - scrubbed) / (baseline - full)``: 1 = all of the loss explained.

        NaN when the baseline equals the full loss (nothing to recover on this data).
        """
        if self.loss_random_baseline == self.loss_full:
            return float("nan")
        return (self.loss_random_baseline - self.loss_scrubbed) / (
            self.loss_random_baseline - self.loss_full
        )

    def __repr__(self) -> str:
        return (
            f"ScrubResult(loss_full={self.loss_full:.3f}, loss_scrubbed={self.loss_scrubbed:.3f}, "
            f"loss_random_baseline={self.loss_random_baseline:.3f}, "
            f"recovered={self.recovered:.3f}, n_contexts={self.n_contexts})"
        )


def _check_inputs(model, tokens, loss_mask) -> tuple[torch.Tensor, torch.Tensor]:
    # It recomputes every head and MLP from its weights (see the module docstring).
    require(model, ReadableBlocks, "scrub")
    tokens = as_tokens(model, tokens).to(model.W_E.device)
    if isinstance(loss_mask, torch.Tensor) and loss_mask.is_floating_point():
        raise TypeError(f"loss_mask must be bool [batch, pos - 1], got dtype {loss_mask.dtype}.")
    mask = torch.as_tensor(loss_mask, dtype=torch.bool)
    P, T = tokens.shape
    if mask.shape != (P, T - 1):
        raise ValueError(
            f"loss_mask has shape {list(mask.shape)}, expected [batch, pos - 1] = {[P, T - 1]} "
            "(position i predicts token i + 1), e.g. mechscope.toy.induction.repeated_part_mask."
        )
    if not mask.any():
        raise ValueError("loss_mask selects no position; the loss would be undefined.")
    return tokens, mask.to(tokens.device)


@torch.no_grad()
def _random_baseline(model, tokens, ref, targets, gen) -> float:
    """Loss with every input of the output from a random context, by hooks on the real model.

    An implementation independent of :class:`_Scrubber`: the embeddings, every head's ``z``
    and every MLP's output are replaced (each from its own random context) in a forward pass.
    """
    P, T = tokens.shape
    n = P * T
    _, cache = model.run_with_cache(
        tokens, lambda name: name.endswith(("hook_embed", "hook_z", "hook_mlp_out"))
    )
    embed_ctx = torch.randint(0, n, (n,), generator=gen)

    def resample(act, hook):
        flat = act.reshape(n, *act.shape[2:])
        if hook.name == "hook_pos_embed":
            return flat[embed_ctx].view(act.shape)
        source = cache[hook.name].reshape(flat.shape)
        if hook.name.endswith("hook_z"):  # each head from its own random context
            H = flat.shape[1]
            idx = torch.randint(0, n, (n, H), generator=gen)
            return source[idx, torch.arange(H)].view(act.shape)
        return source[
            embed_ctx if hook.name == "hook_embed" else torch.randint(0, n, (n,), generator=gen)
        ].view(act.shape)

    hooks = [
        (name, resample) for name in model.hook_names() if name in cache or name == "hook_pos_embed"
    ]
    logits = model.run_with_hooks(tokens, hooks)
    return F.cross_entropy(logits.reshape(n, -1)[ref], targets).item()


@torch.no_grad()
def scrub(
    model, hypothesis: Hypothesis, tokens, loss_mask, *, seed: int = 0, exact: bool = False
) -> ScrubResult:
    """Causally scrub ``hypothesis`` on ``model`` (Chan et al. 2022).

    model: a model with the :class:`~mechscope.protocols.ReadableBlocks` capability
        (mechscope's ``Transformer``); it is only read (no hooks stay, weights, mode and
        ``requires_grad`` untouched).
    hypothesis: a :class:`Hypothesis` over the nodes in the module docstring.
    tokens: ``[batch, pos]`` the dataset; its contexts are both the reference inputs and the
        pool that resampled contexts are drawn from.
    loss_mask: ``[batch, pos - 1]`` bool, True where the next-token loss counts (e.g.
        :func:`mechscope.toy.induction.repeated_part_mask`).
    seed: seeds every resampling draw (same seed, same result).
    exact: evaluate the treeified model literally: every branch draws and computes its own
        upstream values, none shared (the module docstring's implementation choice off).
        Cost grows with the tree (x pos for each head on a claimed path): for checking the
        shared default on small hypotheses and few contexts.

    Returns a :class:`ScrubResult`; ``.recovered`` is the fraction of the loss recovered.
    """
    tokens, mask = _check_inputs(model, tokens, loss_mask)
    claims = validate(model, hypothesis)
    claims.setdefault(("logits",), (EVERYTHING, []))
    P, T = tokens.shape
    s, i = mask.nonzero(as_tuple=True)
    ref = (s * T + i).cpu()
    targets = tokens[s, i + 1]
    gen = torch.Generator().manual_seed(seed)
    scrubber = _Scrubber(model, claims, tokens, gen, exact)
    full = F.cross_entropy(scrubber.plain[("logits",)][ref], targets).item()
    scrubbed = F.cross_entropy(scrubber.value(("logits",), ref), targets).item()
    baseline = _random_baseline(
        model, tokens, ref, targets, torch.Generator().manual_seed(seed + 1)
    )
    return ScrubResult(full, scrubbed, baseline, len(ref))
