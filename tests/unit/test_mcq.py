"""Multiple-choice questions (mechscope.toy.mcq) and the zoo model mcq-2l (notebook 28, after
Lieberum et al. 2023): the data's invariants, and the card's numbers re-measured from the
shipped weights, against a random-init control."""

import pytest

from mechscope.models.zoo import build
from mechscope.toy import mcq
from mechscope.zoo.recipes_mcq import EVAL, attention_to_options, behaviour, circuit_metrics

NAME = "mcq-2l"


def test_questions_have_fixed_layout_and_a_moved_answer():
    for label_set in mcq.LABEL_SETS:
        for q in mcq.sample_questions("heldout", 50, 0, label_set):
            words, bad = q.clean.split(), q.corrupted.split()
            assert len(words) == len(bad) == mcq.N_POS - 1
            assert [words[p - 1] for p in mcq.LABEL_POS] == list(q.labels)
            assert [words[p - 1] for p in mcq.OPTION_POS] == list(q.options)
            assert q.options[q.answer] == mcq.SUBJECTS[q.subject]
            assert bad[mcq.OPTION_POS[q.corrupted_answer] - 1] == mcq.SUBJECTS[q.subject]
            assert q.letter != q.corrupted_letter and q.template == mcq.HELDOUT_TEMPLATE
            ordered = list(q.labels) == sorted(q.labels)
            assert ordered == (label_set != "shuffled")
            assert (q.labels == ("A", "B", "C", "D")) == (label_set == "abcd")
    train = mcq.sample_questions("train", 400, 1, "letters")
    assert {q.template for q in train} == {0, 1}
    assert sorted({q.answer for q in train}) == [0, 1, 2, 3]  # every place is used


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="split='test'"):
        mcq.sample_questions("test", 1, 0)
    with pytest.raises(ValueError, match="label_set='xyz'"):
        mcq.sample_questions("train", 1, 0, "xyz")
    with pytest.raises(KeyError, match="subject='Louvre'"):
        mcq.question("Louvre", ["Paris", "Rome", "Berlin", "London"])
    with pytest.raises(ValueError, match="options="):
        mcq.question("Eiffel Tower", ["Rome", "Rome", "Berlin", "London"])
    with pytest.raises(ValueError, match="labels="):
        mcq.question("Eiffel Tower", ["Paris", "Rome", "Berlin", "London"], ("A", "B", "C", "Z"))


def test_weights_are_the_carded_ones_and_tiny(model, check_shipped):
    check_shipped(model, max_deflated=150_000)


def test_behaviour_reproduces_and_beats_random_init(model):
    for label_set in mcq.LABEL_SETS:
        measured = behaviour(model, "heldout", label_set, **EVAL)
        for key, value in model.card["metrics"]["heldout"][label_set].items():
            assert measured[key] == pytest.approx(value, abs=2e-3), (label_set, key)
    train = behaviour(model, "train", "abcd", **EVAL)
    assert train["accuracy"] == pytest.approx(model.card["metrics"]["train"]["accuracy"], abs=2e-3)
    held = model.card["metrics"]["heldout"]
    assert train["accuracy"] > 0.95 and held["abcd"]["accuracy"] > 0.5  # chance: 0.25
    untrained = behaviour(build(model.card).eval(), "heldout", "abcd", **EVAL)
    assert untrained["accuracy"] < 0.1 and untrained["label_mass"] < 0.1  # 4 of 89 tokens


def test_circuit_numbers_reproduce(model):
    measured = circuit_metrics(model, **EVAL)
    carded = model.card["metrics"]
    assert measured["top_head"] == carded["top_head"]
    for key in ("dla", "patching"):
        for c, v in carded[key].items():
            assert measured[key][c] == pytest.approx(v, abs=2e-3), (key, c)
    for s, att in carded["top_head_attention"].items():
        for k, v in att.items():
            assert measured["top_head_attention"][s][k] == pytest.approx(v, abs=2e-3), (s, k)
    # the notebook's claims: the top head is in layer 1 and reads the correct option's text,
    # not its label (in 2 layers a label token cannot yet know that its option is correct)
    att = measured["top_head_attention"]["abcd"]
    assert measured["top_head"].startswith("L1")
    assert att["correct_option"] > 4 * att["other_option"]
    assert att["correct_label"] < 0.1


def test_attention_rows_are_probabilities(model):
    qs = mcq.sample_questions("heldout", 16, 0)
    att = attention_to_options(model, qs, 1, 0)
    total = att["correct_label"] + 3 * att["other_label"] + att["correct_option"]
    assert 0 <= total + 3 * att["other_option"] <= 1 + 1e-4
