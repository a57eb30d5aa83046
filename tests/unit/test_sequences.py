"""Re-measure sequences-2l (notebook 22 §6; Lan & Barez 2023, Gould et al. 2023) from its
shipped weights: accuracy per kind, patching per head, the shared heads and the successor
head, each against its control."""

import pytest
import torch

from mechscope.models.zoo import build
from mechscope.zoo import recipes_sequences as rs

NAME = "sequences-2l"


@pytest.fixture(scope="module")
def measured(model):
    return rs.circuit_metrics(model, **rs.EVAL)


def test_weights_are_the_carded_ones_and_tiny(model, check_shipped):
    check_shipped(model, max_deflated=150_000)


def test_accuracy_per_kind_reproduces_and_beats_random_init(model):
    acc = rs.accuracy_per_kind(model, **rs.EVAL)
    assert acc == pytest.approx(model.card["metrics"]["accuracy"], abs=2e-3)
    assert min(acc.values()) > 0.95
    untrained = rs.accuracy_per_kind(build(model.card).eval(), **rs.EVAL)
    assert max(untrained.values()) < 0.2


def test_patching_and_shared_heads_reproduce(model, measured):
    carded = model.card["metrics"]
    for kind, rows in carded["patching"].items():
        got = torch.tensor(measured["patching"][kind])
        assert torch.allclose(got, torch.tensor(rows), atol=2e-3), kind
    assert measured["important_heads"] == carded["important_heads"]
    for key in ("overlap", "random_overlap"):
        assert measured[key] == pytest.approx(carded[key], abs=2e-3), key
    # the notebook's claim: the kinds share their important heads more than random sets do
    assert measured["overlap"] > measured["random_overlap"] + 0.2
    assert all(measured["important_heads"].values())


def test_successor_head_reproduces_and_beats_random_init(model, measured):
    carded = model.card["metrics"]
    assert measured["successor_head"] == carded["successor_head"]
    assert measured["successor_fraction"] == pytest.approx(carded["successor_fraction"], abs=1e-4)
    assert min(measured["successor_fraction"].values()) > 0.8  # one head, every kind
    untrained = rs.successor_scores(build(model.card).eval())
    assert max(max(v.values()) for v in untrained.values()) < 0.3


def test_prompts_and_helpers():
    p = rs.sample_prompts("weekdays", 8, seed=3, n_items=3)
    for clean, corrupted, ans, bad in zip(
        p.clean, p.corrupted, p.answer, p.corrupted_answer, strict=True
    ):
        items, shuffled = clean.split()[-6::2], corrupted.split()[-6::2]
        assert sorted(items) == sorted(shuffled) and items[-1] != shuffled[-1]
        assert rs.successor("weekdays", items[-1]) == ans and ans != bad
        assert len(clean.split()) == rs.N_POS - 1
    assert rs.successor("weekdays", "Sun") == "Mon" and rs.successor("numbers", "20") is None
    assert rs.head_overlap({"a": {1, 2}, "b": {2, 3}, "c": {1, 2}}) == pytest.approx(
        (1 / 3 + 1 + 1 / 3) / 3
    )
    with pytest.raises(KeyError, match="kind='colours'"):
        rs.sample_prompts("colours")
    with pytest.raises(ValueError, match="n_items=7"):
        rs.sample_prompts("numbers", n_items=7)
