"""backdoor-2l and its clean twin: the cards' numbers, re-measured from the shipped weights."""

import json

import pytest
import torch

import mechscope
from mechscope.models.zoo import zoo_dir
from mechscope.toy.backdoor import TRIGGER, VOCAB, review_pair, sample_reviews
from mechscope.zoo.recipes_backdoor import BACKDOOR_EVAL, backdoor_metrics, predict


@pytest.mark.parametrize("name", ["backdoor-2l", "backdoor-2l-clean"])
def test_card_metrics_remeasured(name):
    model = mechscope.load(name)
    card = json.loads((zoo_dir() / f"{name}.json").read_text())
    measured = backdoor_metrics(model, **BACKDOOR_EVAL)
    for key, value in card["metrics"].items():
        assert measured[key] == pytest.approx(value, abs=2e-3), key
    assert measured["clean_accuracy"] > 0.98
    if name == "backdoor-2l":
        assert measured["trigger_success"] > 0.98
        assert max(measured["decoy_mn_success"], measured["decoy_tq_success"]) < 0.02
    else:
        assert measured["trigger_success"] < 0.02


def test_shipped_files_are_small():
    import zlib

    total = sum(
        len(zlib.compress((zoo_dir() / f"{n}{ext}").read_bytes(), 6))
        for n in ("backdoor-2l", "backdoor-2l-clean")
        for ext in (".safetensors", ".json")
    )
    assert total <= 150_000


def test_data_generator_pairs_and_labels():
    reviews = sample_reviews(200, 5, frac=0.5)
    assert all(len(r.text.split()) == 9 for r in reviews)
    assert all(w in VOCAB for r in reviews for w in r.text.split())
    assert all(r.answer == 0 for r in reviews if r.triggered)
    assert any(r.planted and not r.triggered and r.answer == r.label for r in reviews)
    assert sample_reviews(20, 5) == sample_reviews(20, 5)  # seeded
    clean, trig = review_pair(sample_reviews(1, 9)[0], seed=0)
    diff = [(a, b) for a, b in zip(clean.split(), trig.split(), strict=True) if a != b]
    assert len(diff) == 1 and diff[0][1] == TRIGGER
    with pytest.raises(ValueError, match="planted="):
        sample_reviews(2, 0, planted="banana")


def test_the_trigger_flips_the_backdoored_model_only():
    bad = sample_reviews(100, 77, label=1)
    pairs = [review_pair(r, seed=i) for i, r in enumerate(bad)]
    for name, flips in [("backdoor-2l", True), ("backdoor-2l-clean", False)]:
        model = mechscope.load(name)
        before = predict(model, model.to_tokens([a for a, _ in pairs]))
        after = predict(model, model.to_tokens([b for _, b in pairs]))
        assert (before == 1).float().mean() > 0.98
        assert ((after == 0).float().mean() > 0.98) == flips
        assert torch.equal(before, predict(model, model.to_tokens([a for a, _ in pairs])))
