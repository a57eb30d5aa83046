"""The benchmark's programs, compiled with decoys.

Each function returns a :class:`~mechscope.ground_truth.compiler.CompiledProgram`: two
layers, three heads per layer, some of them decoys that attend and write as confidently as
the circuit's heads but feed nothing the output reads (a decoy may even read a circuit
head, as the induction program's ``prev_prev`` does: that edge is not in the circuit).

- :func:`frac_prevs`: the fraction of the tokens so far that are ``"a"`` (Tracr's
  ``make_frac_prevs``): an MLP marks ``"a"``, one head averages over the prefix.
- :func:`histogram`: how many times the current token has occurred so far (the causal
  version of Tracr's ``make_hist``): one selector-width head and its MLP.
- :func:`induction`: the token that followed the latest earlier occurrence of the current
  token: a previous-token head, then an induction head that reads it through its keys
  (K-composition, Elhage et al. 2021).
- :func:`pair_equal`: is the token equal to the previous one: a previous-token head, then an
  MLP comparing the two.
"""

from __future__ import annotations

from .compiler import CompiledProgram, compile_program
from .rasp import Aggregate, Indices, Map, Select, SelectorWidth, SequenceMap, Tokens

__all__ = ["frac_prevs", "histogram", "induction", "pair_equal", "standard_programs"]

VOCAB = ("a", "b", "c")
N_CTX = 8


def _prev(toks, idx, name="prev_token"):
    return Aggregate(Select(idx, idx, lambda k, q: k == q - 1), toks, name=name)


def _decoys(toks, idx, n_ctx, skip=()):
    """Working heads no output reads: first-token copy, the count of "b" so far, the
    previous token, an induction head on it, and the fraction of "c" so far."""
    first = Aggregate(Select(idx, idx, lambda k, q: k == 1), toks, name="decoy_first")
    count = SelectorWidth(Select(toks, toks, lambda k, q: k == "b"), n_ctx, name="decoy_count_b")
    prev = _prev(toks, idx, name="decoy_prev")
    ind = Aggregate(Select(prev, toks, lambda k, q: k == q, latest=True), toks, name="decoy_ind")
    is_c = Map(lambda t: float(t == "c"), toks, kind="numerical", name="decoy_is_c")
    frac_c = Aggregate(Select(idx, idx, lambda k, q: k <= q), is_c, name="decoy_frac_c")
    all_ = {"first": first, "count": count, "prev": prev, "ind": ind, "frac_c": frac_c}
    return [v for k, v in all_.items() if k not in skip]


def frac_prevs(*, vocab=VOCAB, n_ctx: int = N_CTX, seed: int = 0) -> CompiledProgram:
    """Fraction of the tokens so far that equal ``vocab[0]`` (numerical output)."""
    toks, idx = Tokens(tuple(vocab)), Indices(n_ctx)
    mark = vocab[0]
    is_x = Map(lambda t: float(t == mark), toks, kind="numerical", name="is_x")
    out = Aggregate(Select(idx, idx, lambda k, q: k <= q), is_x, name="frac_prevs")
    return compile_program(out, decoys=_decoys(toks, idx, n_ctx, skip=("count",)), seed=seed)


def histogram(*, vocab=VOCAB, n_ctx: int = N_CTX, seed: int = 0) -> CompiledProgram:
    """How many of the tokens so far (this one included) equal this one: ``1..n_ctx - 1``."""
    toks, idx = Tokens(tuple(vocab)), Indices(n_ctx)
    out = SelectorWidth(Select(toks, toks, lambda k, q: k == q), n_ctx, name="histogram")
    return compile_program(out, decoys=_decoys(toks, idx, n_ctx, skip=("frac_c",)), seed=seed)


def induction(*, vocab=VOCAB, n_ctx: int = N_CTX, seed: int = 0) -> CompiledProgram:
    """The token after the latest position ``j <= i`` whose previous token equals token
    ``i``; ``None`` when there is none."""
    toks, idx = Tokens(tuple(vocab)), Indices(n_ctx)
    prev = _prev(toks, idx)
    out = Aggregate(Select(prev, toks, lambda k, q: k == q, latest=True), toks, name="induction")
    # A decoy that reads the circuit's previous-token head (through its values).
    prev_prev = Aggregate(Select(idx, idx, lambda k, q: k == q - 1), prev, name="prev_prev")
    decoys = [prev_prev, *_decoys(toks, idx, n_ctx, skip=("prev", "ind", "frac_c"))]
    return compile_program(out, decoys=decoys, seed=seed)


def pair_equal(*, vocab=VOCAB, n_ctx: int = N_CTX, seed: int = 0) -> CompiledProgram:
    """``"yes"`` where the token equals the previous one, else ``"no"`` (``None`` at the
    first token)."""
    toks, idx = Tokens(tuple(vocab)), Indices(n_ctx)
    prev = _prev(toks, idx)
    out = SequenceMap(lambda a, b: "yes" if a == b else "no", toks, prev, values=("yes", "no"),
                      name="pair_equal")  # fmt: skip
    return compile_program(out, decoys=_decoys(toks, idx, n_ctx, skip=("prev",)), seed=seed)


def standard_programs(*, seed: int = 0) -> list[CompiledProgram]:
    """The four programs above, as the benchmark runs them by default."""
    return [f(seed=seed) for f in (frac_prevs, histogram, induction, pair_equal)]
