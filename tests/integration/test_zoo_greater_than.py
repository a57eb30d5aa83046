"""Re-measure greater-than-2l (notebook 22, Hanna et al. 2023) from its shipped weights: the
probability difference, the accuracy, the circuit's patching and faithfulness numbers."""

import pytest
import torch

from mechscope.models.zoo import build
from mechscope.toy import greater_than as gt
from mechscope.zoo.recipes_greater_than import EVAL, behaviour, circuit_metrics

NAME = "greater-than-2l"


def test_weights_are_the_carded_ones_and_tiny(model, check_shipped):
    check_shipped(model, max_deflated=150_000)


def test_behaviour_reproduces_and_beats_random_init(model):
    for split in ("heldout", "train"):
        measured = behaviour(model, split, **EVAL)
        for key, value in model.card["metrics"][split].items():
            assert measured[key] == pytest.approx(value, abs=2e-3), (split, key)
    held = behaviour(model, "heldout", **EVAL)
    assert held["prob_diff"] > 0.9 and held["accuracy"] > 0.95  # never-trained templates
    assert held["corrupted_prob_diff"] < 0.3  # 01 removes the information
    untrained = behaviour(build(model.card).eval(), "heldout", **EVAL)
    yy = torch.tensor([p.yy for p in gt.sample_prompts("heldout", **EVAL)])
    chance = float(((99 - yy) - (yy + 1)).float().mean()) / len(model.tokenizer)
    assert abs(untrained["prob_diff"] - chance) < 0.05 and untrained["year_mass"] < 0.9


def test_circuit_numbers_reproduce(model):
    measured = circuit_metrics(model, **EVAL)
    carded = model.card["metrics"]
    assert measured["circuit"] == carded["circuit"]
    assert measured["top_head"] == carded["top_head"]
    for c, v in carded["patching"].items():
        assert measured["patching"][c] == pytest.approx(v, abs=2e-3), c
    for c, v in carded["top_head_paths"].items():
        assert measured["top_head_paths"][c] == pytest.approx(v, abs=2e-3), c
    for key in ("faithfulness", "random_faithfulness_mean"):
        assert measured[key] == pytest.approx(carded[key], abs=2e-3), key
    # the claims the notebook makes
    assert measured["faithfulness"] > measured["random_faithfulness_mean"] + 0.2
    assert measured["faithfulness"] > 0.75


def test_canonical_prompt_through_the_model_api(model):
    p = gt.canonical_prompts()[0]
    assert p.clean == "The war lasted from the year 17 32 to the year 17"
    logits = model(model.to_tokens(p.clean))
    probs = gt.year_probs(logits, gt.year_ids(model))[0]
    assert probs[33:].sum() > 0.9 and probs[:33].sum() < 0.05
    with pytest.raises(ValueError, match="prob_diff_metric was built for 1 prompts"):
        gt.prob_diff_metric(model, [p])(torch.zeros(2, 13, len(model.tokenizer)))
