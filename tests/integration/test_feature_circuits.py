"""Sparse feature circuits (issue 14 item 4) on IOI with facts-ioi-2l's two transcoders.

Nodes: both transcoders' features and error terms, and every attention head at every position
(``blocks.L.attn.hook_z``): IOI in this model runs through attention, so without head nodes
the MLP nodes carry only ~13% of the logit difference (test_mlp_nodes_alone_carry_little).
Numbers re-checked here (32 discovery prompts, 64 other evaluation prompts, one template):
6 nodes (six heads) keep faithfulness 0.87; ablating them leaves -0.07 (completeness);
random circuits of 6 active nodes keep 0.00.
"""

import random

import pytest
import torch

import mechscope
from mechscope.feature_circuits import (
    completeness,
    faithfulness,
    faithfulness_curve,
    feature_attribution,
    feature_circuit,
)
from mechscope.metrics import logit_diff
from mechscope.toy.facts import NAMES, OBJECTS, PLACES, ioi_pair
from mechscope.transcoder import load_zoo_transcoder

HEADS = ["blocks.0.attn.hook_z", "blocks.1.attn.hook_z"]


@pytest.fixture(scope="module")
def model():
    return mechscope.load("facts-ioi-2l")


@pytest.fixture(scope="module")
def tcs():
    return [load_zoo_transcoder(f"facts-ioi-2l-tc{layer}") for layer in range(2)]


def _ioi(model, n, seed):
    """``n`` IOI pairs of one template (so positions line up), names / place / object / order
    drawn with ``seed``: (clean, corrupted, logit_diff(IO, S))."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        io, s = rng.sample(NAMES, 2)
        order = rng.choice(["ABB", "BAB"])
        pairs.append(ioi_pair(io, s, 0, 0, rng.choice(PLACES), rng.choice(OBJECTS), order))
    ids = [[model.to_single_token(w) for w in (p.answer, p.wrong)] for p in pairs]
    answer, wrong = torch.tensor(ids).T
    return (
        model.to_tokens([p.clean for p in pairs]),
        model.to_tokens([p.corrupted for p in pairs]),
        logit_diff(answer, wrong),
    )


@pytest.fixture(scope="module")
def data(model):
    return _ioi(model, 32, seed=0), _ioi(model, 64, seed=1)


@pytest.fixture(scope="module")
def attr(model, tcs, data):
    clean, corrupted, metric = data[0]
    return feature_attribution(model, tcs, clean, corrupted, metric, hooks=HEADS)


def _top_of_each_point(result, per_point=1):
    picked, seen, nodes = [], {}, result.nodes
    for i in result.values.abs().argsort(descending=True).tolist():
        point = nodes[i][0]
        if seen.get(point, 0) < per_point:
            seen[point] = seen.get(point, 0) + 1
            picked.append(nodes[i])
    return picked


def test_ig_of_single_nodes_is_their_patching_effect(model, tcs, data, attr):
    """One node of every kind (heads, features, errors, both layers): IG along the node's own
    line converges to patching that node alone (measured max |diff|: 4e-3 at 4 steps, 4e-4 at 6,
    1e-5 at 8), while the gradient estimate misses by up to 45% on heads."""
    clean, corrupted, metric = data[0]
    nodes = _top_of_each_point(attr)
    assert len(nodes) == 6
    run = dict(hooks=HEADS, nodes=nodes)
    exact = feature_attribution(model, tcs, clean, corrupted, metric, method="exact", **run)
    ig = feature_attribution(model, tcs, clean, corrupted, metric, method="ig", steps=8, **run)
    grad = feature_attribution(model, tcs, clean, corrupted, metric, **run)
    assert exact.nodes == nodes and exact.values.abs().max() > 5
    torch.testing.assert_close(ig.values, exact.values, atol=2e-4, rtol=0)
    torch.testing.assert_close(ig.per_prompt, exact.per_prompt, atol=3e-3, rtol=0)
    assert (grad.values - exact.values).abs().max() > 1  # attribution is only first-order
    # the subset's attribution values are the full run's
    full = {n: float(v) for n, v in zip(attr.nodes, attr.values, strict=True)}
    assert grad.values.tolist() == pytest.approx([full[n] for n in nodes], abs=1e-5)


def test_ig_per_splice_sums_to_patching_the_whole_splice(model, tcs, data):
    """Marks et al.'s IG moves all of a splice's nodes together: their effects add up to
    patching the whole hook (features + errors = the MLP's output) from the clean run."""
    clean, corrupted, metric = data[0]
    ig = feature_attribution(model, tcs, clean, corrupted, metric, method="ig", hooks=HEADS)
    with torch.no_grad():
        base = float(metric(model(corrupted)).mean())
    for hook in ["blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out", *HEADS]:
        mine = [i for i, p in enumerate(ig.points) if p.startswith(hook)]
        total = float(ig.values[torch.isin(ig.point_id, torch.tensor(mine))].sum())
        _, cache = model.run_with_cache(clean, names=[hook])
        with torch.no_grad(), model.hooks([(hook, lambda act, hook, c=cache[hook]: c)]):
            patched = float(metric(model(corrupted)).mean())
        assert total == pytest.approx(patched - base, abs=0.01, rel=1e-3), hook
    assert ig.clean_value > 10 > -10 > ig.corrupted_value


def test_ioi_circuit_is_small_faithful_and_complete(model, tcs, data, attr):
    clean, _, metric = data[1]
    curve = faithfulness_curve(model, attr, clean, metric, n_nodes=[0, 5, 6, 10, 100])
    faith, comp, rand = (dict(zip(curve.n_nodes, v.tolist(), strict=True))
                         for v in (curve.values, curve.completeness, curve.random))  # fmt: skip
    assert faith[0] == 0 and comp[0] == 1
    assert faith[5] < 0.8 <= faith[6]  # measured 0.63, 0.87: six nodes are the smallest circuit
    assert faith[10] >= 0.85 and faith[100] >= 0.9  # measured 0.90, 0.96
    assert comp[6] <= 0.0  # measured -0.07: ablating the six removes the behaviour
    assert rand[6] <= 0.05 and rand[100] <= 0.1  # measured 0.00, 0.02
    assert curve.full_value > 10 and abs(curve.empty_value) < 1
    circuit = feature_circuit(attr, n_nodes=6)
    assert all(p in HEADS for p, _, _ in circuit.nodes)  # the six are heads (L1 at 'to', L0 at S2)
    assert faithfulness(model, circuit, clean, metric) == pytest.approx(faith[6], abs=1e-6)
    assert completeness(model, circuit, clean, metric) == pytest.approx(comp[6], abs=1e-6)
    threshold = float(circuit.values.abs().min())
    assert feature_circuit(attr, threshold=threshold).nodes == circuit.nodes
    assert len(curve.plot().data) == 3


def test_mlp_nodes_alone_carry_little(model, tcs, data):
    """Why head nodes: with only the transcoders' nodes, ablating all of them keeps 87% of
    the logit difference (attention does the task), so m(M) - m(∅) is small."""
    (clean, corrupted, metric), (eval_clean, _, eval_metric) = data
    mlp = feature_attribution(model, tcs, clean, corrupted, metric)
    curve = faithfulness_curve(model, mlp, eval_clean, eval_metric, n_nodes=[100], n_samples=2)
    assert curve.empty_value >= 0.8 * curve.full_value  # measured 9.85 of 11.28
    assert curve.values[0] >= 0.9  # the top 100 features still explain that small part (0.96)


def test_bad_input_is_named_and_the_model_is_untouched(model, tcs, data, attr):
    clean, corrupted, metric = data[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    with pytest.raises(KeyError):
        feature_attribution(model, {"blocks.0.hook_nope": tcs[0]}, clean, corrupted, metric)
    with pytest.raises(ValueError, match="sae"):  # a transcoder where the widths do not fit
        feature_attribution(model, {"blocks.0.mlp.hook_post": tcs[0]}, clean, corrupted, metric)
    with pytest.raises(ValueError, match="same shape"):
        feature_attribution(model, tcs, clean, corrupted[:, :-1], metric)
    with pytest.raises(ValueError, match="method"):
        feature_attribution(model, tcs, clean, corrupted, metric, method="exact")
    with pytest.raises(ValueError, match="steps"):
        feature_attribution(model, tcs, clean, corrupted, metric, method="ig", steps=0)
    with pytest.raises(ValueError, match="nodes"):
        feature_attribution(model, tcs, clean, corrupted, metric, nodes=[("blocks.0.x", 0, 1)])
    with pytest.raises(ValueError, match="hooks"):
        feature_attribution(model, tcs, clean, corrupted, metric, hooks="blocks.0.hook_mlp_out")
    for bad in (0, -1.0, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="threshold"):
            feature_circuit(attr, threshold=bad)
    with pytest.raises(ValueError, match="exactly one"):
        feature_circuit(attr, threshold=0.1, n_nodes=3)
    with pytest.raises(ValueError, match="n_nodes"):
        feature_circuit(attr, n_nodes=-1)
    circuit = feature_circuit(attr, n_nodes=3)
    with pytest.raises(ValueError, match="kind"):
        faithfulness(model, circuit, clean, metric, kind="resample")
    with pytest.raises(ValueError, match="reference"):
        faithfulness(model, circuit, clean, metric, reference=clean[:, :-1])
    assert [p.requires_grad for p in model.parameters()] == flags
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0
    assert all(p.grad is None for p in model.parameters())
