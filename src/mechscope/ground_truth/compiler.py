"""Compile a :mod:`~mechscope.ground_truth.rasp` program into a ``mechscope.Transformer``.

The weights are set by hand, as in Tracr (Lindner et al. 2023): the residual stream is a
direct sum of named subspaces, one per s-op (one-hot for a categorical s-op, one dim for
a numerical one), plus ``one`` (1 everywhere), ``bos`` (1 at position 0) and ``pos``
(position / n_ctx). Each :class:`~mechscope.ground_truth.rasp.Aggregate` becomes one head
whose QK circuit scores ``A`` where the predicate holds and ``A / 2`` on BOS (the default
when nothing is selected), and whose OV circuit copies the aggregated s-op into the output
subspace; each map becomes an MLP lookup table (ReLU); a ``SelectorWidth`` is a head that
always attends to BOS too (weight ``1 / (width + 1)``) followed by an MLP that turns that
fraction back into a count. No LayerNorm (``normalization=None``): the subspaces stay exact.

Because every weight is known, so is the circuit: :class:`KnownCircuit` lists the heads and
MLPs the output depends on, and the *edges* sender head -> receiver (a later head's query,
key or value input, or the logits), with MLPs folded into the edges as in path patching
(Wang et al. 2022). ``decoys``: extra s-ops compiled into the same model (their heads and
MLPs work, attend and write, but nothing on the way to the output reads them): the
negatives a discovery method must leave out.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..models.tokenizer import WordTokenizer
from ..models.transformer import Transformer, TransformerConfig
from .rasp import (
    Aggregate,
    Indices,
    Map,
    SelectorWidth,
    SequenceMap,
    SOp,
    Tokens,
    evaluate,
    walk,
)

__all__ = ["CompiledProgram", "KnownCircuit", "compile_program"]

LOGIT = 10.0  # logit of the right class (the others get 0)
STEP = 30.0  # score added per position by Select(latest=True): exp(-30) ~ 1e-13
BIG = 1e4  # switches MLP units off at BOS


@dataclass(frozen=True)
class KnownCircuit:
    """The compiled model's true circuit.

    nodes: ``"L{layer}H{head}"`` and ``"L{layer}MLP"`` that the output depends on.
    edges: ``(sender, receiver)``: sender ``"L0H1"`` or ``"embed"``; receiver
        ``"L1H0.q"`` / ``".k"`` / ``".v"`` or ``"logits"`` (MLPs folded into edges).
    heads: every head of the model, in layer-then-head order.
    candidate_edges: every head -> receiver edge the model's layout allows (sender heads
        only: what path patching can score), in a fixed order.
    """

    nodes: frozenset
    edges: frozenset
    heads: tuple
    candidate_edges: tuple

    def head_labels(self) -> list[bool]:
        """For each of ``heads``: is it in the circuit?"""
        return [h in self.nodes for h in self.heads]

    def edge_labels(self) -> list[bool]:
        """For each of ``candidate_edges``: is it in the circuit?"""
        return [e in self.edges for e in self.candidate_edges]


@dataclass(frozen=True)
class CompiledProgram:
    """A program, its compiled model and its known circuit.

    place: ``{s-op name: (layer, head)}`` for heads, ``(layer, None)`` for MLPs.
    output_ids: the vocab id of each output value (categorical; ``None`` has no id) or of
        the readout logit (numerical: the logit *is* the value).
    """

    name: str
    program: SOp
    model: Transformer
    circuit: KnownCircuit
    place: dict
    output_ids: dict

    @property
    def vocab(self) -> tuple:
        return self.program_tokens().values

    def program_tokens(self) -> Tokens:
        return next(s for s in walk(self.program) if isinstance(s, Tokens))

    def sample(self, n: int, *, seed: int = 0) -> torch.Tensor:
        """``[n, n_ctx]`` token ids: BOS then ``n_ctx - 1`` uniformly random tokens."""
        gen = torch.Generator().manual_seed(seed)
        words = self.vocab
        ids = torch.randint(len(words), (n, self.model.cfg.n_ctx - 1), generator=gen) + 1
        return torch.cat([torch.zeros(n, 1, dtype=torch.long), ids], 1)

    def strings(self, tokens: torch.Tensor) -> list[list[str]]:
        """Token ids ``[batch, pos]`` (BOS first) -> the token strings after BOS."""
        words = self.model.tokenizer.words
        return [[words[i] for i in row[1:]] for row in tokens.tolist()]

    def decode(self, logits: torch.Tensor) -> list[list]:
        """Logits ``[batch, pos, d_vocab]`` -> the output at every position after BOS."""
        if self.program.kind == "numerical":
            return logits[:, 1:, self.output_ids[None]].tolist()
        values = list(self.output_ids)
        sub = logits[:, 1:, [self.output_ids[v] for v in values]]  # [batch, pos, class]
        best, arg = sub.max(-1)
        return [
            [values[a] if b > LOGIT / 2 else None for a, b in zip(ra, rb, strict=True)]
            for ra, rb in zip(arg.tolist(), best.tolist(), strict=True)
        ]

    def metric(self, clean: torch.Tensor):
        """A metric ``logits -> [batch]`` that is high when the output is ``clean``'s:
        categorical, the mean logit of each position's clean answer (positions whose
        answer is ``None`` left out); numerical, minus the mean squared error of the readout."""
        answers = [evaluate(self.program, row) for row in self.strings(clean)]
        if self.program.kind == "numerical":
            target = torch.tensor(answers)  # [batch, pos - 1]
            rid = self.output_ids[None]
            return lambda logits: -(logits[:, 1:, rid] - target.to(logits)).pow(2).mean(-1)
        ids = torch.tensor([[self.output_ids.get(a, 0) for a in row] for row in answers])
        mask = torch.tensor([[a is not None for a in row] for row in answers]).float()

        def metric(logits):
            picked = logits[:, 1:].gather(-1, ids.to(logits.device)[..., None])[..., 0]
            return (picked * mask.to(picked)).sum(-1) / mask.sum(-1).clamp(min=1).to(picked)

        return metric


def _stages(ops: list[SOp]) -> dict[int, int]:
    """Stage of each op: 2L = attention of layer L, 2L + 1 = its MLP, -1 = the embedding."""
    stage: dict[int, int] = {}
    for s in ops:  # inputs first
        if isinstance(s, (Tokens, Indices)):
            stage[id(s)] = -1
            continue
        first = max(stage[id(x)] for x in s.inputs()) + 1
        attn = isinstance(s, (Aggregate, SelectorWidth))
        if attn != (first % 2 == 0):
            first += 1
        stage[id(s)] = first + (1 if isinstance(s, SelectorWidth) else 0)  # its MLP
    return stage


def compile_program(program: SOp, *, decoys: Sequence[SOp] = (), seed: int = 0, name: str = ""):
    """Compile ``program`` (and the ``decoys``) into a :class:`CompiledProgram`.

    seed: shuffles which head slot of a layer each attention op gets, so circuit heads are
    not always head 0. name: a label for tables (default: the program's name).
    """
    if not isinstance(program, SOp):
        raise TypeError(f"program={program!r}; expected an s-op of mechscope.ground_truth.rasp.")
    ops = list({id(s): s for d in (program, *decoys) for s in walk(d)}.values())
    names = [s.name for s in ops]
    dup = sorted({n for n in names if names.count(n) > 1 or n in ("one", "bos", "pos")})
    if dup:
        raise ValueError(
            f"s-op names {dup} are used twice or reserved (one, bos, pos); give each s-op "
            "its own name=."
        )
    toks = [s for s in ops if isinstance(s, Tokens)]
    ctx = {s.n_ctx for s in ops if isinstance(s, (Indices, SelectorWidth))}
    if len(toks) != 1 or len(ctx) != 1:
        raise ValueError("a program needs one Tokens and one n_ctx (Indices / SelectorWidth).")
    n_ctx = ctx.pop()
    # An order in which inputs come first (the program's walk, then each decoy's).
    ops = [s for d in (program, *decoys) for s in walk(d)]
    ops = list({id(s): s for s in ops}.values())
    stage = _stages(ops)

    # Residual layout: name -> (start, values); numerical s-ops have values (None,).
    layout: dict[str, tuple[int, tuple]] = {}
    d = 0
    for key, vals in [("one", (None,)), ("bos", (None,)), ("pos", (None,))] + [
        (s.name, s.values if s.kind == "categorical" else (None,)) for s in ops
    ]:
        layout[key], d = (d, tuple(vals)), d + len(vals)
        if key in names and isinstance(_by_name(ops, key), SelectorWidth):
            layout[key + ".frac"], d = (d, (None,)), d + 1

    def dim(key, value=None) -> int:
        start, vals = layout[key]
        return start + vals.index(value)

    # Vocab: the input tokens, then output classes that are not tokens.
    words = [str(t) for t in toks[0].values]
    output_ids: dict = {}
    for v in program.values if program.kind == "categorical" else (None,):
        word = "<readout>" if v is None else str(v)
        if word not in words:
            words.append(word)
        output_ids[v] = words.index(word) + 1

    # Heads and MLP units per layer.
    n_layers = max(stage[id(s)] for s in ops) // 2 + 1
    rng = random.Random(seed)
    attn_ops = [[s for s in ops if isinstance(s, (Aggregate, SelectorWidth)) and
                 stage[id(s)] // 2 == la] for la in range(n_layers)]  # fmt: skip
    for layer_ops in attn_ops:
        rng.shuffle(layer_ops)
    n_heads = max(1, *(len(x) for x in attn_ops))
    units = {id(s): _n_units(s) for s in ops if stage[id(s)] > 0 and stage[id(s)] % 2}
    per_layer = [
        sum(units[id(s)] for s in ops if stage[id(s)] == 2 * la + 1) for la in range(n_layers)
    ]
    max_sel = max([len(s.selector.keys.values) for x in attn_ops for s in x] + [1])
    max_ov = max([len(s.values) for x in attn_ops for s in x] + [1])
    d_head = max(max_sel + 2, max_ov)
    cfg = TransformerConfig(
        n_layers=n_layers, d_model=d, n_heads=n_heads, d_head=d_head, d_vocab=len(words) + 1,
        n_ctx=n_ctx, d_mlp=max(per_layer) or None, act_fn="relu", normalization=None,
        init_std=0.0,
    )  # fmt: skip
    model = Transformer(cfg, tokenizer=WordTokenizer(words))
    place: dict[str, tuple] = {}
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for t, w in enumerate(toks[0].values, start=1):
            model.W_E[t, dim("one")] = 1.0
            model.W_E[t, dim(toks[0].name, w)] = 1.0
        for t in range(len(toks[0].values) + 1, cfg.d_vocab):
            model.W_E[t, dim("one")] = 1.0  # output-only words: never inputs
        model.W_E[0, dim("one")] = model.W_E[0, dim("bos")] = 1.0
        for p in range(n_ctx):
            model.W_pos[p, dim("pos")] = p / n_ctx
        for s in ops:
            if isinstance(s, Indices):
                for p in s.values:
                    model.W_pos[p, dim(s.name, p)] = 1.0
        for la, layer_ops in enumerate(attn_ops):
            for h, s in enumerate(layer_ops):
                _set_head(model.blocks[la].attn, h, s, dim, n_ctx)
                place[s.name] = (la, h)
        for la in range(n_layers):
            u = 0
            for s in ops:
                if stage[id(s)] == 2 * la + 1:
                    _set_mlp(model.blocks[la].mlp, u, s, dim, n_ctx)
                    u += units[id(s)]
                    if not isinstance(s, SelectorWidth):
                        place[s.name] = (la, None)
        for v, t in output_ids.items():
            model.W_U[dim(program.name, v), t] = 1.0 if v is None else LOGIT
    circuit = _circuit(program, ops, place, n_layers, n_heads)
    return CompiledProgram(name or program.name, program, model, circuit, place, output_ids)


def _by_name(ops, key):
    return next(s for s in ops if s.name == key)


def _n_units(s: SOp) -> int:
    if isinstance(s, Map):
        if s.inner.kind != "categorical":
            raise ValueError(
                f"{s.name}: Map of a numerical s-op is not compiled; map a categorical one."
            )
        return len(s.inner.values)
    if isinstance(s, SequenceMap):
        return len(s.a.values) * len(s.b.values)
    if isinstance(s, SelectorWidth):
        return 2 * (s.n_ctx - 1) + 1
    raise TypeError(f"{type(s).__name__} {s.name!r} is not compiled to an MLP.")


def _set_head(attn, h: int, s: SOp, dim, n_ctx: int) -> None:
    sel = s.selector
    root = math.sqrt(attn.W_Q.shape[-1])  # the model divides scores by sqrt(d_head)
    score = 4 * STEP * n_ctx + 100.0  # A: well above anything ``latest`` adds
    keys = sel.keys.values
    for a, kv in enumerate(keys):
        attn.W_K[h, dim(sel.keys.name, kv), a] = 1.0
        for qv in sel.queries.values:
            if sel.predicate(kv, qv):
                attn.W_Q[h, dim(sel.queries.name, qv), a] = score * root
    width = isinstance(s, SelectorWidth)
    attn.W_K[h, dim("bos"), len(keys)] = 1.0
    attn.W_Q[h, dim("one"), len(keys)] = (score if width else score / 2) * root
    if sel.latest:
        attn.W_K[h, dim("pos"), len(keys) + 1] = 1.0
        attn.W_Q[h, dim("one"), len(keys) + 1] = STEP * n_ctx * root
    if width:
        attn.W_V[h, dim("bos"), 0] = 1.0
        attn.W_O[h, 0, dim(s.name + ".frac")] = 1.0
    elif s.kind == "numerical":
        attn.W_V[h, dim(s.sop.name), 0] = 1.0
        attn.W_O[h, 0, dim(s.name)] = 1.0
    else:
        for c, v in enumerate(s.values):
            attn.W_V[h, dim(s.sop.name, v), c] = 1.0
            attn.W_O[h, c, dim(s.name, v)] = 1.0


def _set_mlp(mlp, u: int, s: SOp, dim, n_ctx: int) -> None:
    W_in, b_in, W_out = mlp.W_in, mlp.b_in, mlp.W_out
    if isinstance(s, Map):
        for i, v in enumerate(s.inner.values):
            W_in[dim(s.inner.name, v), u + i] = 1.0
            W_in[dim("bos"), u + i] = -BIG
            out = s.f(v)
            if s.kind == "numerical":
                W_out[u + i, dim(s.name)] = float(out)
            elif out is not None:
                W_out[u + i, dim(s.name, out)] = 1.0
    elif isinstance(s, SequenceMap):
        for i, (va, vb) in enumerate((a, b) for a in s.a.values for b in s.b.values):
            W_in[dim(s.a.name, va), u + i] = W_in[dim(s.b.name, vb), u + i] = 1.0
            W_in[dim("bos"), u + i] = -BIG
            b_in[u + i] = -1.0  # on only when both one-hots are
            out = s.f(va, vb)
            if out is not None:
                W_out[u + i, dim(s.name, out)] = 1.0
    else:  # SelectorWidth: frac = 1 / (width + 1) -> one-hot width
        kmax = n_ctx - 1
        slope = 4.0 * kmax * (kmax + 1)  # steps exactly 0 or 1 between consecutive 1/(w+1)
        frac, one = dim(s.name + ".frac"), dim("one")
        W_in[one, u] = 1.0  # unit u: 1 off BOS (the step s_0)
        W_in[dim("bos"), u] = -BIG
        steps = [[(u, 1.0)]]
        for k in range(1, kmax + 1):
            t = (1 / k + 1 / (k + 1)) / 2  # s_k = [width >= k] = [frac < t]
            for j, off in ((0, 0.0), (1, -1.0)):
                W_in[frac, u + 2 * k - 1 + j] = -slope
                W_in[one, u + 2 * k - 1 + j] = slope * t + off
                W_in[dim("bos"), u + 2 * k - 1 + j] = -BIG
            steps.append([(u + 2 * k - 1, 1.0), (u + 2 * k, -1.0)])
        steps.append([])
        for w in range(kmax + 1):  # one-hot width = s_w - s_{w+1}
            for unit, sign in steps[w]:
                W_out[unit, dim(s.name, w)] += sign
            for unit, sign in steps[w + 1]:
                W_out[unit, dim(s.name, w)] -= sign


def _circuit(program, ops, place, n_layers, n_heads) -> KnownCircuit:
    by_name = {s.name: s for s in ops}

    def label(s):
        la, h = place[s.name]
        return f"L{la}H{h}" if h is not None else f"L{la}MLP"

    def sources(s) -> set:
        if isinstance(s, (Tokens, Indices)):
            return {"embed"}
        if isinstance(s, Aggregate):
            return {label(s)}
        if isinstance(s, SelectorWidth):
            return {label(s), "embed"}  # its MLP reads the head's fraction and one / bos
        return {"embed"}.union(*(sources(x) for x in s.inputs()))

    nodes, edges = set(), set()
    for s in walk(program):
        if isinstance(s, (Aggregate, SelectorWidth)):
            head = label(s)
            nodes.add(head)
            v = sources(s.sop) if isinstance(s, Aggregate) else {"embed"}
            for chan, src in (("q", sources(s.selector.queries) | {"embed"}),
                              ("k", sources(s.selector.keys) | {"embed"}), ("v", v)):  # fmt: skip
                edges.update((x, f"{head}.{chan}") for x in src)
        if isinstance(s, SelectorWidth) or s.name in place and place[s.name][1] is None:
            nodes.add(f"L{place[s.name][0]}MLP")
    edges.update((x, "logits") for x in sources(by_name[program.name]))
    heads = tuple(f"L{la}H{h}" for la in range(n_layers) for h in range(n_heads))
    candidates = []
    for la in range(n_layers):
        for h in range(n_heads):
            for lb in range(la + 1, n_layers):
                for g in range(n_heads):
                    candidates += [(f"L{la}H{h}", f"L{lb}H{g}.{c}") for c in "qkv"]
            candidates.append((f"L{la}H{h}", "logits"))
    return KnownCircuit(frozenset(nodes), frozenset(edges), heads, tuple(candidates))
