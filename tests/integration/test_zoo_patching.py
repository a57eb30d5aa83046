"""Re-measure facts-ioi-2l (the patching tutorials' model) from its shipped weights."""

import pytest

from mechscope.zoo.recipes_patching import (
    PATCHING_EVAL,
    canonical_metrics,
    last_logits,
    patching_metrics,
)

NAME = "facts-ioi-2l"


def test_weights_are_the_carded_ones(model, check_shipped):
    check_shipped(model)
    assert model.cfg.n_layers == 2 and model.cfg.n_heads == 4 and model.cfg.d_mlp


def test_card_metrics_reproduce_and_generalise(model):
    measured = patching_metrics(model, **PATCHING_EVAL)
    assert measured["facts_heldout_accuracy"] >= 0.9  # same facts, never-trained phrasings
    assert measured["ioi_heldout_accuracy"] >= 0.9  # never-trained name pairs / templates
    assert measured["ioi_heldout_corrupted_accuracy"] >= 0.9
    assert (
        measured["ioi_heldout_clean_logit_diff"] > 0 > measured["ioi_heldout_corrupted_logit_diff"]
    )
    for key, value in model.card["metrics"].items():
        assert measured[key] == pytest.approx(value, abs=2e-3), key


def test_canonical_prompts(model):
    measured = canonical_metrics(model)
    assert measured[0]["clean"] == "The Colosseum is in"
    assert measured[1]["clean"] == "The Eiffel Tower is in"
    for m, carded in zip(measured, model.card["canonical"], strict=True):
        assert m["clean_prediction"] == m["answer"], m
        assert m["corrupted_prediction"] == m["wrong"], m
        assert m["clean_logit_diff"] > 0 > m["corrupted_logit_diff"]
        for key in ("clean_logit_diff", "corrupted_logit_diff"):
            assert m[key] == pytest.approx(carded[key], abs=2e-3)


def test_canonical_answers_through_the_model_api(model):
    for prompt, answer in [("The Colosseum is in", "Rome"), ("The Eiffel Tower is in", "Paris")]:
        logits = model(model.to_tokens(prompt))[0, -1]
        assert model.to_str_tokens(logits.argmax())[0] == answer
    ioi = "When Mary and John went to the store , John gave a drink to"
    assert model.tokenizer.words[int(last_logits(model, [ioi])[0].argmax())] == "Mary"
