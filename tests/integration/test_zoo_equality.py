"""Re-measure equality-das (the causal-abstraction tutorial's model) from its shipped weights:
task accuracy, and the interchange-intervention accuracy of DAS against its baselines."""

import pytest

from mechscope.das import interchange_accuracy
from mechscope.toy import equality as eq
from mechscope.zoo.recipes_abstraction import (
    ACCURACY_EVAL,
    DAS_SITES,
    das_metrics,
    task_accuracy,
)

NAME = "equality-das"


@pytest.fixture(scope="module")
def measured(model):
    return das_metrics(model)  # DAS for V1 and V2, seeded: a few seconds each


def test_weights_are_the_carded_ones(model, check_shipped):
    check_shipped(model)
    assert model.cfg.n_layers == 3 and model.cfg.n_ctx == 5
    assert model.tokenizer.words[1:] == eq.VOCAB


def test_solves_hierarchical_equality_on_heldout_inputs(model):
    heldout = task_accuracy(model, "heldout", **ACCURACY_EVAL)
    assert heldout >= 0.99
    assert heldout == pytest.approx(model.card["metrics"]["heldout_accuracy"], abs=2e-3)
    prompt = model.to_tokens("circle circle star moon")  # V1 true, V2 false -> false
    assert model.to_str_tokens(model(prompt)[0, -1].argmax())[0] == "false"


def test_das_finds_each_variable_in_one_direction(model, measured):
    for var in eq.VARIABLES:
        das_iia = measured[f"{var}_das_iia"]
        assert das_iia >= 0.95, var
        # Controls: a random direction of the same site does what no intervention does.
        assert measured[f"{var}_random_subspace_iia"] < 0.6, var
        assert abs(measured[f"{var}_no_intervention_iia"] - 0.5) < 0.05, var
        assert das_iia - measured[f"{var}_random_subspace_iia"] > 0.35, var
        for key in ("das_iia", "das_train_iia", "full_vector_iia", "random_subspace_iia"):
            carded = model.card["metrics"][f"{var}_{key}"]
            assert measured[f"{var}_{key}"] == pytest.approx(carded, abs=0.02), (var, key)


def test_untrained_model_control_is_carded_at_chance(model):
    for var in eq.VARIABLES:
        assert model.card["metrics"][f"{var}_untrained_das_iia"] < 0.6, var


def test_v1_is_not_at_the_final_position(model):
    # The last position after the last attention layer carries the answer, not V1: swapping
    # it whole hands over the source's answer, right only when the source agrees (about half).
    held = eq.counterfactual_pairs(500, "V1", "heldout", seed=1)
    site, pos, _ = DAS_SITES["V1"]
    last = interchange_accuracy(
        model, eq.to_tokens(held.base), eq.to_tokens(held.source), held.label,
        hook="blocks.2.hook_resid_mid", pos=-1, answer_ids=eq.answer_ids(),
    )  # fmt: skip
    assert 0.4 < last < 0.6
    assert (site, pos) == ("blocks.0.hook_resid_post", 2)
