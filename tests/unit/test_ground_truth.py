"""mechscope.ground_truth: compiled programs are exact, their circuits are right, and the
benchmark's scores are the ones a hand count gives."""

from __future__ import annotations

import itertools

import pytest
import torch

from mechscope.ground_truth import (
    Aggregate,
    Indices,
    Select,
    Tokens,
    circuit_discovery_benchmark,
    compile_program,
    evaluate,
    frac_prevs,
    histogram,
    induction,
    pair_equal,
    precision_recall,
    roc_auc,
)
from mechscope.path_patching import path_patch

FACTORIES = [frac_prevs, histogram, induction, pair_equal]


def _all_inputs(cp):
    """Every sequence of n_ctx - 1 tokens, as ids with BOS first."""
    n = cp.model.cfg.n_ctx - 1
    rows = list(itertools.product(range(1, len(cp.vocab) + 1), repeat=n))
    return torch.cat([torch.zeros(len(rows), 1, dtype=torch.long), torch.tensor(rows)], 1)


def _same(cp, got, want):
    if cp.program.kind == "numerical":
        return all(
            abs(a - b) < 1e-5
            for g, w in zip(got, want, strict=True)
            for a, b in zip(g, w, strict=True)
        )
    return got == want


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_compiled_program_is_exact_on_every_input(factory):
    cp = factory(n_ctx=6)  # 3 tokens, 5 positions: all 243 inputs
    tokens = _all_inputs(cp)
    with torch.no_grad():
        got = cp.decode(cp.model(tokens))
    want = [evaluate(cp.program, row) for row in cp.strings(tokens)]
    assert _same(cp, got, want)
    # Causal: each prefix of an input is an input too, so shorter lengths are covered.
    with torch.no_grad():
        assert _same(cp, cp.decode(cp.model(tokens[:, :4])), [w[:3] for w in want])


def test_programs_compute_what_they_say():
    assert evaluate(histogram().program, "a b a a c") == [1, 1, 2, 3, 1]
    assert evaluate(induction().program, "a b c a c") == [None, None, None, "b", "a"]
    assert evaluate(pair_equal().program, "a a b a") == [None, "yes", "no", "no"]
    assert evaluate(frac_prevs().program, "a b a b") == [1.0, 0.5, 2 / 3, 0.5]


def _resample(model, tokens, other, layer, head):
    _, cache = model.run_with_cache(other, names=[f"blocks.{layer}.attn.hook_z"])

    def patch(z, hook):
        z = z.clone()
        z[:, :, head] = cache[hook.name][:, :, head]
        return z

    with torch.no_grad(), model.hooks([(f"blocks.{layer}.attn.hook_z", patch)]):
        return model(tokens)


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_known_circuit_heads(factory):
    cp = factory()
    tokens, other = cp.sample(128, seed=0), cp.sample(128, seed=1)
    with torch.no_grad():
        base = cp.model(tokens)
    want = cp.decode(base)
    in_circuit = dict(zip(cp.circuit.heads, cp.circuit.head_labels(), strict=True))
    assert sum(in_circuit.values()) >= 1
    for label, inside in in_circuit.items():
        layer, head = (int(x) for x in label[1:].split("H"))
        logits = _resample(cp.model, tokens, other, layer, head)
        if inside:  # resample-ablating a circuit head breaks the output
            assert not _same(cp, cp.decode(logits), want), label
        else:  # a decoy (or an empty slot) changes nothing at all
            assert torch.allclose(logits, base, atol=1e-5), label


def test_known_circuit_edges_induction():
    cp = induction()
    assert ("L0H0", "L1H1.k") in cp.circuit.edges
    assert "L0H0" in cp.circuit.nodes and "L1MLP" not in cp.circuit.nodes
    prev, ind = cp.place["prev_token"], cp.place["induction"]
    decoy = cp.place["prev_prev"]  # a decoy that reads the circuit's previous-token head
    clean, corrupted = cp.sample(64, seed=0), cp.sample(64, seed=1)
    metric = cp.metric(clean)

    def effect(hooks):
        v = path_patch(cp.model, clean, corrupted, metric, sender=prev, hooks=hooks)
        with torch.no_grad():
            return v - float(metric(cp.model(corrupted)).mean())

    assert effect([("blocks.1.attn.hook_k", ind[1])]) > 1.0  # the K-composition edge
    assert abs(effect([("blocks.1.attn.hook_v", decoy[1])])) < 1e-5  # outside the circuit
    assert abs(effect([("blocks.1.attn.hook_q", ind[1])])) < 1e-5


def test_roc_auc_and_precision_recall_by_hand():
    assert roc_auc([0.9, 0.8, 0.3, 0.1], [True, False, True, False]) == 0.75
    assert roc_auc([1.0, 1.0], [True, False]) == 0.5  # a tie counts half
    assert roc_auc([0.2, 0.1], [True, True]) != roc_auc([0.2, 0.1], [True, True])  # NaN
    assert precision_recall([True, True, False, False], [True, False, True, False]) == (0.5, 0.5)
    p, r = precision_recall([False, False], [True, False])
    assert p != p and r == 0.0
    with pytest.raises(ValueError, match="align"):
        roc_auc([1.0, 2.0], [True])


def test_benchmark_scores_induction():
    cp = induction()
    before = {k: v.clone() for k, v in cp.model.state_dict().items()}
    res = circuit_discovery_benchmark([cp], n_samples=24, seed=0)
    assert all(torch.equal(before[k], v) for k, v in cp.model.state_dict().items())
    assert not any(hp._forward_hooks for hp in cp.model._hook_points.values())
    act = res.row("induction", "activation patching")
    assert (act["precision"], act["recall"], act["roc_auc"]) == (1.0, 1.0, 1.0)
    acdc_row = res.row("induction", "ACDC")
    assert (acdc_row["precision"], acdc_row["recall"]) == (1.0, 1.0)
    # Attribution patching misses the previous-token head: its effect goes through a
    # saturated softmax (the key scores), whose gradient is ~0.
    attr = res.row("induction", "attribution patching")
    assert (attr["precision"], attr["recall"]) == (1.0, 0.5)
    # Path patching to the logits sees direct effects only: the same head is missed.
    assert res.row("induction", "path patching")["recall"] == 0.5
    edges = res.row("induction", "path patching", level="edges")
    assert (edges["precision"], edges["recall"], edges["roc_auc"]) == (1.0, 1.0, 1.0)
    assert edges["n_true"] == 2 and edges["n_candidates"] == 33
    # Edge attribution patching: the K-composition edge's softmax is saturated, so EAP scores
    # it ~0 (recall 0.5); EAP-IG's path average sees it, near path patching's exact effect.
    eap = res.row("induction", "edge attribution patching", level="edges")
    assert (eap["precision"], eap["recall"]) == (1.0, 0.5)
    ig = res.row("induction", "EAP-IG", level="edges")
    assert (ig["precision"], ig["recall"], ig["roc_auc"]) == (1.0, 1.0, 1.0)
    k_edge = cp.circuit.candidate_edges.index(("L0H0", "L1H1.k"))
    exact = float(res.scores["induction", "edges", "path patching"][1][k_edge])
    assert float(res.scores["induction", "edges", "edge attribution patching"][1][k_edge]) < 1e-6
    got = float(res.scores["induction", "edges", "EAP-IG"][1][k_edge])
    assert exact > 0.15 and exact / 1.5 < got < 1.5 * exact
    for level in ("nodes", "edges"):
        assert 0.35 < res.row("induction", "random", level=level)["roc_auc"] < 0.65
    table = res.to_table()
    assert table.splitlines()[0].startswith("| program | level | method")
    assert len(table.splitlines()) == 2 + len(res.rows) == 2 + res.values.shape[0]
    with pytest.raises(KeyError, match="No row"):
        res.row("induction", "ACDC", level="graphs")


def test_benchmark_histogram_attribution_fails():
    # The selector-width MLP is a step function: zero gradient, so attribution patching
    # scores the one circuit head 0 while exact patching finds it.
    res = circuit_discovery_benchmark([histogram()], n_samples=16)
    assert res.row("histogram", "attribution patching")["recall"] == 0.0
    assert res.row("histogram", "activation patching")["recall"] == 1.0


def test_errors():
    toks, idx = Tokens(("a", "b")), Indices(4)
    with pytest.raises(ValueError, match="disagreeing"):
        evaluate(Aggregate(Select(idx, idx, lambda k, q: k <= q), toks), "a b")
    with pytest.raises(ValueError, match="not in the program's vocab"):
        evaluate(Aggregate(Select(idx, idx, lambda k, q: k == q), toks), "a z")
    twice = Aggregate(Select(idx, idx, lambda k, q: k == q), toks, name="x")
    with pytest.raises(ValueError, match="used twice"):
        compile_program(twice, decoys=[Aggregate(Select(idx, idx, lambda k, q: k == 1), toks,
                                                 name="x")])  # fmt: skip
    with pytest.raises(TypeError, match="CompiledProgram"):
        circuit_discovery_benchmark(["histogram"])
    with pytest.raises(ValueError, match="threshold"):
        circuit_discovery_benchmark([histogram()], threshold=-1)
