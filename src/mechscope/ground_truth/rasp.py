"""A tiny RASP: sequence programs that compile to a transformer with a known circuit.

RASP (Weiss, Goldberg & Yahav 2021, "Thinking Like Transformers") writes a transformer's
computation as operations on whole sequences (*s-ops*); Tracr (Lindner et al. 2023,
"Tracr: Compiled Transformers as a Laboratory for Interpretability") compiles such a
program into transformer weights. This module is the program side of our own, smaller
version (``mechscope.ground_truth.compiler`` is the weight side):

- primitives: :class:`Tokens` (the input) and :class:`Indices` (the position, 1 = first token);
- :class:`Map` / :class:`SequenceMap`: a function of one / two s-ops at every position
  (compiled to an MLP lookup table);
- :class:`Select` + :class:`Aggregate`: each query position attends to the key positions
  where ``predicate(key, query)`` holds and averages an s-op there (compiled to one head);
- :class:`SelectorWidth`: how many key positions a selector picks (a head and an MLP).

Semantics, chosen to fit our *causal* decoder (``mechscope.Transformer`` masks future keys):
every sequence starts with a BOS token at position 0; position ``i`` selects among the keys
``1..i`` only (no future, never BOS); an empty selection gives ``None`` (categorical) or
``0`` (numerical); a categorical aggregate needs its selected values to agree, or
``latest=True`` on the selector (take the latest selected key). So Tracr's ``reverse`` and
``sort``, which read later positions, have no causal program here; their causal cousins do
(``mechscope.ground_truth.programs``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "Aggregate",
    "Indices",
    "Map",
    "Select",
    "SelectorWidth",
    "SequenceMap",
    "SOp",
    "Tokens",
    "evaluate",
]


class SOp:
    """A sequence operation: one value per position. ``kind`` is ``"categorical"`` (one of
    ``values``, one-hot in the residual stream) or ``"numerical"`` (one number, one dim)."""

    name: str
    kind: str
    values: tuple

    def inputs(self) -> tuple[SOp, ...]:
        return ()


@dataclass(frozen=True, eq=False)
class Tokens(SOp):
    """The input tokens; ``values`` are the token strings."""

    values: tuple
    name: str = "tokens"
    kind: str = "categorical"


@dataclass(frozen=True, eq=False)
class Indices(SOp):
    """The position of each token, 1 for the first token after BOS, up to ``n_ctx - 1``."""

    n_ctx: int
    name: str = "indices"
    kind: str = "categorical"

    @property
    def values(self) -> tuple:
        return tuple(range(1, self.n_ctx))


@dataclass(frozen=True, eq=False)
class Map(SOp):
    """``f(inner)`` at every position. ``kind="numerical"``: ``f`` returns a number and
    ``values`` is ignored; otherwise ``f`` returns one of ``values``."""

    f: Callable
    inner: SOp
    values: tuple = ()
    name: str = "map"
    kind: str = "categorical"

    def inputs(self):
        return (self.inner,)


@dataclass(frozen=True, eq=False)
class SequenceMap(SOp):
    """``f(a, b)`` at every position, categorical: ``f`` returns one of ``values``."""

    f: Callable
    a: SOp
    b: SOp
    values: tuple = ()
    name: str = "sequence_map"
    kind: str = "categorical"

    def inputs(self):
        return (self.a, self.b)


@dataclass(frozen=True, eq=False)
class Select:
    """Query position ``i`` selects key position ``j`` (``1 <= j <= i``) when
    ``predicate(keys[j], queries[i])``. ``latest``: a categorical aggregate takes the
    latest selected key (attention scores rise with the key's position)."""

    keys: SOp
    queries: SOp
    predicate: Callable
    latest: bool = False


@dataclass(frozen=True, eq=False)
class Aggregate(SOp):
    """The mean of ``sop`` over the selected keys (numerical ``sop``), or the selected
    keys' common value (categorical ``sop``)."""

    selector: Select
    sop: SOp
    name: str = "aggregate"

    @property
    def kind(self) -> str:
        return self.sop.kind

    @property
    def values(self) -> tuple:
        return self.sop.values

    def inputs(self):
        return (self.selector.keys, self.selector.queries, self.sop)


@dataclass(frozen=True, eq=False)
class SelectorWidth(SOp):
    """The number of keys ``selector`` selects at each position: ``0..n_ctx - 1``."""

    selector: Select
    n_ctx: int
    name: str = "selector_width"
    kind: str = "categorical"

    @property
    def values(self) -> tuple:
        return tuple(range(self.n_ctx))

    def inputs(self):
        return (self.selector.keys, self.selector.queries)


def walk(program: SOp) -> list[SOp]:
    """Every s-op ``program`` depends on (itself included), inputs before the ops that read them."""
    out: list[SOp] = []
    seen: set[int] = set()

    def visit(s):
        if id(s) in seen:
            return
        seen.add(id(s))
        for x in s.inputs():
            visit(x)
        out.append(s)

    visit(program)
    return out


def _selected(sel: Select, keys: list, queries: list, i: int) -> list[int]:
    return [
        j
        for j in range(i + 1)
        if keys[j] is not None and queries[i] is not None and sel.predicate(keys[j], queries[i])
    ]


def evaluate(program: SOp, tokens: Sequence[str]) -> list:
    """Run ``program`` on one input (the tokens after BOS): one value per token.

    ``None`` is "no value" (e.g. a categorical aggregate over an empty selection). Raises
    ValueError when a categorical aggregate selects disagreeing values (the compiled head
    would average them) or a map returns a value outside its ``values``.
    """
    tokens = list(tokens.split() if isinstance(tokens, str) else tokens)
    n = len(tokens)
    vals: dict[int, list] = {}
    for s in walk(program):
        if isinstance(s, Tokens):
            bad = [t for t in tokens if t not in s.values]
            if bad:
                raise ValueError(f"tokens {bad} are not in the program's vocab {list(s.values)}.")
            out = list(tokens)
        elif isinstance(s, Indices):
            if n > s.n_ctx - 1:
                raise ValueError(f"{n} tokens do not fit n_ctx={s.n_ctx} (BOS takes one).")
            out = list(range(1, n + 1))
        elif isinstance(s, Map):
            x = vals[id(s.inner)]
            if s.kind == "numerical":
                out = [0.0 if v is None else float(s.f(v)) for v in x]
            else:
                out = [None if v is None else _check(s, s.f(v)) for v in x]
        elif isinstance(s, SequenceMap):
            a, b = vals[id(s.a)], vals[id(s.b)]
            out = [
                None if u is None or v is None else _check(s, s.f(u, v))
                for u, v in zip(a, b, strict=True)
            ]
        elif isinstance(s, Aggregate):
            keys, queries = vals[id(s.selector.keys)], vals[id(s.selector.queries)]
            x = vals[id(s.sop)]
            out = []
            for i in range(n):
                sel = _selected(s.selector, keys, queries, i)
                if s.kind == "numerical":
                    out.append(sum(x[j] for j in sel) / len(sel) if sel else 0.0)
                elif not sel:
                    out.append(None)
                elif s.selector.latest:
                    out.append(x[sel[-1]])
                else:
                    if len({x[j] for j in sel}) > 1:
                        raise ValueError(
                            f"{s.name}: position {i + 1} selects disagreeing values "
                            f"{sorted({str(x[j]) for j in sel})}; a categorical aggregate needs "
                            "one value (or Select(..., latest=True))."
                        )
                    out.append(x[sel[0]])
        elif isinstance(s, SelectorWidth):
            keys, queries = vals[id(s.selector.keys)], vals[id(s.selector.queries)]
            out = [len(_selected(s.selector, keys, queries, i)) for i in range(n)]
        else:
            raise TypeError(f"{type(s).__name__} is not an s-op of mechscope.ground_truth.rasp.")
        vals[id(s)] = out
    return vals[id(program)]


def _check(s: SOp, v):
    if v is not None and v not in s.values:
        raise ValueError(f"{s.name}: f returned {v!r}, not one of its values {list(s.values)}.")
    return v
