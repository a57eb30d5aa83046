"""Bad inputs to the interventions: ablation, steering, DAS, world models.

One case = one call with one bad input. Each asserts the error type, that the message names
the argument (and, where useful, the bad value), and the hygiene of the model afterwards
(``conftest.check_clean``: hooks, weights, modes, attention implementation, grad mode).
"""

from __future__ import annotations

import contextlib

import pytest
import torch

import mechscope
from mechscope.ablation import ablate, ablation_hooks, ablation_sweep, ablation_values
from mechscope.das import das, interchange_accuracy, interchange_intervention, random_basis
from mechscope.steering import (
    random_direction,
    steer,
    steering_hooks,
    steering_sweep,
    steering_vector,
)
from mechscope.toy import equality as eq
from mechscope.world import (
    StateProbe,
    activations_at,
    fit_state_probe,
    intervene_along,
    intervene_to_class,
    push_to_class,
)

Z1 = "blocks.1.attn.hook_z"
R0 = "blocks.0.hook_resid_post"
R1 = "blocks.1.hook_resid_pre"


@pytest.fixture(scope="module")
def equality_model():
    return mechscope.load("equality-das")


def _enter(cm_fn, *args, **kwargs):
    """Open (and close) a context manager: its errors come at entry."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(cm_fn(*args, **kwargs))


def _ids(batch=2, n_pos=8, vocab=49, seed=0):
    return torch.randint(1, vocab, (batch, n_pos), generator=torch.Generator().manual_seed(seed))


def _vec(d, seed=0):
    return torch.randn(d, generator=torch.Generator().manual_seed(seed))


def _last(logits):
    return logits[:, -1, 0]


FACTS = "When Mary and John went to the store"
HF = "the cat sat on a mat"

# (case id, model fixture, fn, error type, strings the message must contain, args, kwargs)
# args / kwargs may be callables of the model (built lazily, once the model is loaded).
T = _ids()
# One case a row, so the table reads as a table: the formatter leaves it alone.
# fmt: off
CASES = [
    # ---- ablation ------------------------------------------------------------------------
    ("ablate-unknown-hook", "induction_model", ablate, KeyError, ["hooks", "hook_zz"],
     (T, "blocks.1.attn.hook_zz"), {}),
    ("ablate-bad-kind", "induction_model", ablate, ValueError, ["kind='random'"],
     (T, Z1), {"kind": "random"}),
    ("ablate-kind-not-str", "induction_model", ablate, ValueError, ["kind=0"],
     (T, Z1), {"kind": 0}),
    ("ablate-head-true", "induction_model", ablate, TypeError, ["head=True", "bool"],
     (T, Z1), {"head": True}),
    ("ablate-head-list-with-bool", "induction_model", ablate, TypeError, ["head", "bool"],
     (T, Z1), {"head": [0, True]}),
    ("ablate-pos-false", "induction_model", ablate, TypeError, ["pos=False"],
     (T, Z1), {"pos": False}),
    ("ablate-pos-out-of-range", "induction_model", ablate, ValueError, ["pos=99"],
     (T, Z1), {"pos": 99}),
    ("ablate-head-out-of-range", "induction_model", ablate, ValueError, ["head=7"],
     (T, Z1), {"head": 7}),
    ("ablate-head-empty-list", "induction_model", ablate, TypeError, ["head"],
     (T, Z1), {"head": []}),
    ("ablate-head-on-resid", "induction_model", ablate, ValueError, ["head=", "no head axis"],
     (T, R0), {"head": 0}),
    ("ablate-reference-wrong-length", "induction_model", ablate, ValueError, ["reference"],
     (T, Z1), {"kind": "mean", "reference": _ids(3, 5)}),
    ("ablate-reference-out-of-vocab", "induction_model", ablate, ValueError,
     ["reference", "vocabulary"], (T, Z1), {"kind": "mean", "reference": T + 100}),
    ("ablate-empty-tokens", "induction_model", ablate, ValueError, ["tokens", "empty"],
     (torch.zeros(1, 0, dtype=torch.long), Z1), {}),
    ("ablate-empty-text", "facts_model", ablate, ValueError, ["tokens", "empty"],
     ("", Z1), {}),
    ("ablate-float-tokens", "induction_model", ablate, TypeError, ["tokens", "integer"],
     (T.float(), Z1), {}),
    ("ablate-resample-one-prompt", "induction_model", ablate, ValueError,
     ["reference", "at least 2 prompts"], (T[:1], Z1), {"kind": "resample"}),
    ("ablate-text-pos-out-of-range", "facts_model", ablate, ValueError, ["pos=40"],
     (FACTS, Z1), {"pos": 40}),
    ("ablate-hooks-empty-list", "induction_model", ablation_values, TypeError, ["hooks"],
     ([],), {}),
    ("ablate-hooks-predicate-matches-nothing", "induction_model", ablation_values, ValueError,
     ["hooks", "predicate"], (lambda n: n.endswith("hook_nothing"),), {}),
    ("ablation-hooks-mean-without-reference", "induction_model",
     lambda m, h, **kw: _enter(ablation_hooks, m, h, **kw), ValueError, ["reference"],
     (Z1,), {"kind": "mean"}),
    ("ablation-sweep-unknown-site", "induction_model", ablation_sweep, KeyError, ["resid_pr"],
     (T, _last, "resid_pr"), {}),
    ("ablation-sweep-site-missing-on-model", "induction_model", ablation_sweep, KeyError,
     ["mlp_out"], (T, _last, "mlp_out"), {}),
    ("ablation-sweep-metric-not-per-prompt", "induction_model", ablation_sweep, ValueError,
     ["metric", "[batch]"], (T, lambda lg: lg.sum(), "z"), {}),
    ("ablation-sweep-batch-size-too-small", "induction_model", ablation_sweep, ValueError,
     ["batch_size=1"], (T, _last, "z"), {"batch_size": 1}),
    ("ablate-hf-head-true", "hf_gpt2", ablate, TypeError, ["head=True"],
     (HF, Z1), {"head": True}),
    ("ablate-hf-unknown-hook", "hf_gpt2", ablate, KeyError, ["hooks", "blocks.9.attn.hook_z"],
     (HF, "blocks.9.attn.hook_z"), {}),
    ("ablation-sweep-hf-reference-wrong-length", "hf_gpt2", ablation_sweep, ValueError,
     ["reference"], (HF, _last, "z"), {"kind": "mean", "reference": "the cat"}),
    # ---- steering ------------------------------------------------------------------------
    ("steer-vector-wrong-size", "induction_model", steer, ValueError,
     ["vector has 10 entries", "width 64"], (T, _vec(10), R1), {}),
    ("steer-vector-non-finite", "induction_model", steer, ValueError, ["vector", "non-finite"],
     (T, _vec(64) * float("nan"), R1), {}),
    ("steer-vector-2d", "induction_model", steer, ValueError, ["vector", "[d_model]"],
     (T, _vec(64)[None], R1), {}),
    ("steer-vector-ints", "induction_model", steer, ValueError, ["vector", "int64"],
     (T, torch.arange(64), R1), {}),
    ("steer-hook-not-residual", "induction_model", steer, ValueError,
     ["hook", "blocks.0.attn.hook_z", "[batch, pos, d_model]"], (T, _vec(64), "blocks.0.attn.hook_z"), {}),
    ("steer-unknown-hook", "induction_model", steer, KeyError, ["hook", "hook_resid_pr"],
     (T, _vec(64), "blocks.1.hook_resid_pr"), {}),
    ("steer-hook-not-str", "induction_model", steer, TypeError, ["hook", "int"],
     (T, _vec(64), 3), {}),
    ("steer-pos-bool", "induction_model", steer, TypeError, ["pos=True"],
     (T, _vec(64), R1), {"pos": True}),
    ("steer-pos-out-of-range", "induction_model", steer, ValueError, ["pos=20"],
     (T, _vec(64), R1), {"pos": 20}),
    ("steer-strength-nan", "induction_model", steer, ValueError, ["strength"],
     (T, _vec(64), R1), {"strength": float("nan")}),
    ("steer-strength-text", "induction_model", steer, TypeError, ["strength"],
     (T, _vec(64), R1), {"strength": "big"}),
    ("steering-sweep-strengths-empty", "induction_model", steering_sweep, ValueError,
     ["strengths"], (T, _vec(64), R1), {"strengths": []}),
    ("steering-sweep-strengths-inf", "induction_model", steering_sweep, ValueError,
     ["strengths"], (T, _vec(64), R1), {"strengths": [0.0, float("inf")]}),
    ("steering-sweep-read-pos-out-of-range", "induction_model", steering_sweep, ValueError,
     ["read_pos=50"], (T, _vec(64), R1), {"read_pos": 50}),
    ("steering-sweep-read-pos-bool", "induction_model", steering_sweep, ValueError,
     ["read_pos=True"], (T, _vec(64), R1), {"read_pos": True}),
    ("steering-sweep-answer-out-of-vocab", "induction_model", steering_sweep, ValueError,
     ["answer_ids", "10000"], (T, _vec(64), R1), {"answer_ids": [10_000]}),
    ("steering-sweep-answer-two-tokens", "facts_model", steering_sweep, ValueError,
     ["answer_ids", "2 tokens"], (FACTS, _vec(128), R1), {"answer_ids": ["Mary John"]}),
    ("steering-sweep-batch-size-too-small", "facts_model", steering_sweep, ValueError,
     ["batch_size=0"], ([FACTS, FACTS], _vec(128), R1), {"batch_size": 0}),
    ("steering-sweep-vector-wrong-size", "facts_model", steering_sweep, ValueError,
     ["vector has 64 entries"], (FACTS, _vec(64), R1), {}),
    ("steering-vector-pos-last", "induction_model", steering_vector, ValueError,
     ["pos='last'"], (T, T, R1), {"pos": "last"}),
    ("steering-vector-pos-out-of-range", "induction_model", steering_vector, ValueError,
     ["pos=30", "positive"], (T, T, R1), {"pos": 30}),
    ("steering-vector-empty-negative", "facts_model", steering_vector, ValueError,
     ["negative", "empty"], ([FACTS], [""], R1), {}),
    ("steering-vector-hf-hook-not-residual", "hf_gpt2", steering_vector, ValueError,
     ["hook", "attn.hook_z"], ([HF], ["the dog ran to a mat"], "blocks.0.attn.hook_z"), {}),
    ("steering-hooks-hf-non-finite", "hf_gpt2",
     lambda m, v, h, **kw: _enter(steering_hooks, m, v, h, **kw), ValueError, ["vector"],
     (torch.full((16,), float("inf")), R1), {}),
    ("steer-hf-vector-wrong-size", "hf_gpt2", steer, ValueError, ["vector has 3 entries"],
     (HF, _vec(3), R1), {}),
    ("random-direction-int-vector", None, random_direction, ValueError, ["vector"],
     (torch.arange(4),), {}),
    # ---- DAS -----------------------------------------------------------------------------
    ("das-k-larger-than-d", "equality_model", das, ValueError, ["k=65", "d=64"],
     ("base", "source", "labels"), {"hook": R0, "k": 65, "pos": 2, "steps": 1}),
    ("das-k-bool", "equality_model", das, TypeError, ["k"],
     ("base", "source", "labels"), {"hook": R0, "k": True, "pos": 2, "steps": 1}),
    ("das-steps-zero", "equality_model", das, ValueError, ["steps=0"],
     ("base", "source", "labels"), {"hook": R0, "k": 1, "pos": 2, "steps": 0}),
    ("das-unknown-hook", "equality_model", das, KeyError, ["hook", "hook_resid_psot"],
     ("base", "source", "labels"), {"hook": "blocks.0.hook_resid_psot", "k": 1, "pos": 2}),
    ("das-answer-out-of-vocab", "equality_model", das, ValueError, ["answer_ids"],
     ("base", "source", "labels"), {"hook": R0, "k": 1, "pos": 2, "answer_ids": [0, 99]}),
    ("iia-base-source-different-count", "equality_model", interchange_accuracy, ValueError,
     ["base", "source"], ("base", "source[:4]", "labels"), {"hook": R0, "pos": 2}),
    ("iia-base-source-different-length", "equality_model", interchange_accuracy, ValueError,
     ["base", "source"], ("base", "source[:, :4]", "labels"), {"hook": R0, "pos": 2}),
    ("iia-labels-wrong-length", "equality_model", interchange_accuracy, ValueError,
     ["labels", "[8]"], ("base", "source", "labels[:5]"), {"hook": R0, "pos": 2}),
    ("iia-labels-float", "equality_model", interchange_accuracy, ValueError,
     ["labels", "float"], ("base", "source", "labels.float()"), {"hook": R0, "pos": 2}),
    ("iia-labels-out-of-range", "equality_model", interchange_accuracy, ValueError,
     ["labels", "[0, 2)"], ("base", "source", "labels + 2"),
     {"hook": R0, "pos": 2, "answer_ids": eq.answer_ids()}),
    ("iia-batch-size-zero", "equality_model", interchange_accuracy, ValueError,
     ["batch_size=0"], ("base", "source", "labels"), {"hook": R0, "pos": 2, "batch_size": 0}),
    ("ii-basis-wrong-shape", "equality_model", interchange_intervention, ValueError,
     ["basis", "[64, k]"], ("base", "source"), {"hook": R0, "pos": 2, "basis": torch.eye(8)}),
    ("ii-basis-not-orthonormal", "equality_model", interchange_intervention, ValueError,
     ["basis", "orthonormal"], ("base", "source"),
     {"hook": R0, "pos": 2, "basis": torch.ones(64, 2)}),
    ("ii-basis-nan", "equality_model", interchange_intervention, ValueError,
     ["basis", "orthonormal"], ("base", "source"),
     {"hook": R0, "pos": 2, "basis": torch.full((64, 1), float("nan"))}),
    ("ii-pos-missing", "equality_model", interchange_intervention, ValueError,
     ["pos=", "say which position"], ("base", "source"), {"hook": R0}),
    ("ii-pos-out-of-range", "equality_model", interchange_intervention, ValueError, ["pos=9"],
     ("base", "source"), {"hook": R0, "pos": 9}),
    ("ii-pos-twice", "equality_model", interchange_intervention, ValueError, ["pos", "twice"],
     ("base", "source"), {"hook": R0, "pos": [4, -1]}),
    ("ii-pos-bool", "equality_model", interchange_intervention, TypeError, ["pos=True"],
     ("base", "source"), {"hook": R0, "pos": True}),
    ("ii-per-head-hook", "equality_model", interchange_intervention, ValueError,
     ["hook", "hook_z"], ("base", "source"), {"hook": "blocks.0.attn.hook_z", "pos": 2}),
    ("ii-empty-base", "equality_model", interchange_intervention, ValueError, ["base", "empty"],
     ("base[:0]", "source[:0]"), {"hook": R0, "pos": 2}),
    ("random-basis-k-larger-than-d", None, random_basis, ValueError, ["k=5", "1 <= k <= d"],
     (4, 5), {}),
    ("random-basis-d-float", None, random_basis, TypeError, ["d", "int"], (4.0, 2), {}),
    # ---- world models --------------------------------------------------------------------
    ("activations-at-mask-wrong-shape", "induction_model", activations_at, ValueError,
     ["mask", "one bool per"], (T, R0), {"mask": torch.ones(2, 3, dtype=torch.bool)}),
    ("activations-at-mask-not-bool", "induction_model", activations_at, ValueError,
     ["mask", "bool"], (T, R0), {"mask": torch.ones(2, 8)}),
    ("activations-at-pos-and-mask", "induction_model", activations_at, ValueError,
     ["pos or mask"], (T, R0), {"pos": -1, "mask": torch.ones(2, 8, dtype=torch.bool)}),
    ("activations-at-unknown-hook", "facts_model", activations_at, KeyError, ["hook"],
     (FACTS, "blocks.0.hook_resid_pots"), {}),
    ("intervene-along-directions-wrong-batch", "induction_model", intervene_along, ValueError,
     ["directions", "[3, 64]"], (T,), {"hooks": R0, "directions": torch.ones(3, 64),
                                      "amounts": 1.0}),
    ("intervene-along-amounts-wrong-length", "induction_model", intervene_along, ValueError,
     ["amounts", "[5]"], (T,), {"hooks": R0, "directions": torch.ones(64),
                               "amounts": torch.ones(5)}),
    ("intervene-along-pos-wrong-length", "induction_model", intervene_along, ValueError,
     ["pos", "[batch] = [2]"], (T,), {"hooks": R0, "directions": torch.ones(64),
                                    "amounts": 1.0, "pos": [1, 2, 3]}),
    ("intervene-along-pos-out-of-range", "induction_model", intervene_along, ValueError,
     ["pos", "out of range"], (T,), {"hooks": R0, "directions": torch.ones(64),
                                    "amounts": 1.0, "pos": 8}),
    ("intervene-along-directions-wrong-width", "induction_model", intervene_along, ValueError,
     ["directions has 5 entries"], (T,), {"hooks": R0, "directions": torch.ones(5),
                                         "amounts": 1.0}),
    ("intervene-along-per-hook-count", "induction_model", intervene_along, ValueError,
     ["directions", "2 hook"], (T,), {"hooks": [R0, R1], "directions": torch.ones(3, 2, 64),
                                     "amounts": 1.0}),
    ("intervene-along-hooks-empty", "induction_model", intervene_along, TypeError, ["hooks"],
     (T,), {"hooks": [], "directions": torch.ones(64), "amounts": 1.0}),
    ("intervene-along-hf-directions-ints", "hf_gpt2", intervene_along, ValueError,
     ["directions", "float"], (HF,), {"hooks": R0, "directions": torch.ones(16, dtype=torch.long),
                                     "amounts": 1.0}),
    ("intervene-to-class-probes-not-probes", "induction_model", intervene_to_class, TypeError,
     ["probes", "StateProbe"], (T, [torch.zeros(3, 3, 64)], torch.tensor([0, 1])),
     {"to_class": torch.tensor([1, 1])}),
    ("intervene-to-class-probe-without-hook", "induction_model", intervene_to_class,
     ValueError, ["probes", "hook"], (T, "probe_no_hook", torch.tensor([0, 1])),
     {"to_class": torch.tensor([1, 1])}),
    ("intervene-to-class-probe-unknown-hook", "induction_model", intervene_to_class, KeyError,
     ["probes", "hook_resid_psot"], (T, "probe_bad_hook", torch.tensor([0, 1])),
     {"to_class": torch.tensor([1, 1])}),
    ("intervene-to-class-variable-out-of-range", "induction_model", intervene_to_class,
     ValueError, ["variable", "[0, 3)"], (T, "probe", torch.tensor([0, 3])),
     {"to_class": torch.tensor([1, 1])}),
    ("intervene-to-class-to-class-out-of-range", "induction_model", intervene_to_class,
     ValueError, ["to_class", "[0, 3)"], (T, "probe", torch.tensor([0, 1])),
     {"to_class": torch.tensor([1, 5])}),
    ("intervene-to-class-variable-wrong-length", "induction_model", intervene_to_class,
     ValueError, ["variable", "[2]"], (T, "probe", torch.tensor([0, 1, 2])),
     {"to_class": torch.tensor([1, 1])}),
    ("intervene-to-class-variable-float", "induction_model", intervene_to_class, ValueError,
     ["variable", "float"], (T, "probe", torch.tensor([0.0, 1.0])),
     {"to_class": torch.tensor([1, 1])}),
    ("intervene-to-class-pos-wrong-length", "induction_model", intervene_to_class, ValueError,
     ["pos"], (T, "probe", torch.tensor([0, 1])), {"to_class": torch.tensor([1, 1]),
                                                   "pos": torch.tensor([1, 2, 3])}),
    ("intervene-to-class-probe-wrong-width", "induction_model", intervene_to_class, ValueError,
     ["d_model=7"], (T, "probe_narrow", torch.tensor([0, 1])), {"to_class": torch.tensor([1, 1])}),
    ("push-to-class-variable-wrong-length", None, push_to_class, ValueError,
     ["variable", "one per row of acts"], ("probe", torch.zeros(4, 64), torch.tensor([0, 1]),
                                         torch.tensor([1, 1, 1, 1])), {}),
    ("fit-state-probe-labels-out-of-range", None, fit_state_probe, ValueError,
     ["labels", "[0, 2)"], (torch.zeros(4, 8), torch.tensor([[0], [1], [2], [0]]), 2), {}),
]
# fmt: on


def _probes() -> dict:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 3, 64, generator=g)
    return {
        "probe": StateProbe(w, torch.zeros(3, 3), hook=R0),
        "probe_no_hook": StateProbe(w, torch.zeros(3, 3)),
        "probe_bad_hook": StateProbe(w, torch.zeros(3, 3), hook="blocks.0.hook_resid_psot"),
        "probe_narrow": StateProbe(torch.zeros(3, 3, 7), torch.zeros(3, 3), hook=R0),
    }


def _das_data() -> dict:
    p = eq.counterfactual_pairs(8, "V1", "train", seed=0)
    base, source, labels = eq.to_tokens(p.base), eq.to_tokens(p.source), p.label
    return {
        "base": base,
        "source": source,
        "labels": labels,
        "source[:4]": source[:4],
        "source[:, :4]": source[:, :4],
        "labels[:5]": labels[:5],
        "labels.float()": labels.float(),
        "labels + 2": labels + 2,
        "base[:0]": base[:0],
        "source[:0]": source[:0],
    }


@pytest.mark.parametrize(
    "fixture,fn,exc,names,args,kwargs", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_intervention(request, bad, fixture, fn, exc, names, args, kwargs):
    named = {**_probes(), **_das_data()}
    args = tuple(named[a] if isinstance(a, str) and a in named else a for a in args)
    if fixture is None:
        bad(None, fn, exc, names, *args, **kwargs)
        return
    model = request.getfixturevalue(fixture)
    bad(model, fn, exc, names, model, *args, **kwargs)


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 35 and len({c[0] for c in CASES}) == len(CASES)
