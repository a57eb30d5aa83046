"""The seeds of induction-2l: the same motif every time, on different heads (weak universality)."""

import pytest

import mechscope
from mechscope import circuits
from mechscope.heads import best_head, head_scores
from mechscope.zoo.train import repeated_accuracy

SEEDS = ["induction-2l", "induction-2l-seed1", "induction-2l-seed2", "induction-2l-seed3"]


@pytest.mark.parametrize("name", SEEDS)
def test_every_seed_forms_the_circuit(name):
    model = mechscope.load(name)
    card = model.card
    assert card["training"]["seed"] == SEEDS.index(name)
    scores = head_scores(model)
    pl, ph, ps = best_head(scores.previous_token)
    il, ih, iscore = best_head(scores.induction)
    assert (pl, il) == (0, 1) and ps >= 0.8 and iscore >= 0.8
    assert [il, ih] == card["metrics"]["induction_head"] and [pl, ph] == card["metrics"][
        "previous_token_head"
    ]
    k = circuits.composition_scores(model, "K", 0, 1)
    assert int(k[:, ih].argmax()) == ph
    assert k[ph, ih] > 2 * circuits.composition_baseline(model.cfg.d_model, model.cfg.d_head)
    assert repeated_accuracy(model, card["data"]) == pytest.approx(
        card["metrics"]["repeated_accuracy"], abs=1e-3
    )


def test_components_differ_across_seeds():
    prev_heads = {tuple(mechscope.load(n).card["metrics"]["previous_token_head"]) for n in SEEDS}
    assert len(prev_heads) > 1  # the motif recurs, the head that carries it does not
