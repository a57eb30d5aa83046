"""Re-measure induction-2l's behaviour from the shipped weights (the card's claims)."""

import pytest

import mechscope
from mechscope.heads import best_head, head_scores
from mechscope.zoo.train import repeated_accuracy


@pytest.fixture(scope="module")
def model():
    return mechscope.load("induction-2l")


@pytest.fixture(scope="module")
def scores(model):
    return head_scores(model)


def test_repeated_part_accuracy(model):
    acc = repeated_accuracy(model, model.card["data"])
    assert acc >= 0.95
    assert acc == pytest.approx(model.card["metrics"]["repeated_accuracy"], abs=1e-3)


def test_layer1_has_an_induction_head(scores, model):
    layer, head, score = best_head(scores.induction[1:])
    assert score >= 0.8
    assert [layer + 1, head] == model.card["metrics"]["induction_head"]
    assert score == pytest.approx(model.card["metrics"]["induction_score"], abs=1e-3)
    assert scores.induction[0].max() < 0.2  # layer 0 cannot do induction alone


def test_layer0_has_a_previous_token_head(scores, model):
    layer, head, score = best_head(scores.previous_token[:1])
    assert score >= 0.8
    assert [layer, head] == model.card["metrics"]["previous_token_head"]
    assert score == pytest.approx(model.card["metrics"]["previous_token_score"], abs=1e-3)


def test_in_context_copying_on_words(model):
    """The model completes the second copy of a made-up word sequence."""
    text = "red fox sun cup run two owl snow"
    toks = model.to_tokens(f"{text} {text}")
    pred = model(toks)[0, :-1].argmax(-1)
    n = len(text.split())
    second = slice(n + 1, 2 * n)  # positions whose next token is known from the first copy
    assert (pred[second] == toks[0, 1:][second]).float().mean() == 1.0
