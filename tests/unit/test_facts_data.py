"""The patching-tutorial data: equal-length clean/corrupted pairs with correct answers."""

import pytest

from mechscope.models import WordTokenizer
from mechscope.toy import facts
from mechscope.toy.facts import (
    LANDMARKS,
    NAMES,
    PEOPLE,
    VOCAB,
    canonical_pairs,
    fact_pair,
    ioi_pair,
    ioi_pair_is_heldout,
    ioi_template_is_heldout,
    sample_pairs,
)

TOK = WordTokenizer(VOCAB)
ANSWERS = dict(LANDMARKS) | dict(PEOPLE)


def _all(task, split, n=400, seed=0):
    return sample_pairs(task, split, n, seed)


@pytest.mark.parametrize("task", ["facts", "ioi"])
@pytest.mark.parametrize("split", ["train", "heldout"])
def test_pairs_tokenize_to_equal_lengths(task, split):
    for p in _all(task, split):
        clean, corr = TOK.encode(p.clean), TOK.encode(p.corrupted)  # every word in the vocab
        assert clean.shape == corr.shape, p
        assert p.answer in TOK.ids and p.wrong in TOK.ids
        assert p.answer != p.wrong
        assert clean.shape[1] <= 16  # the model's n_ctx


def test_fact_answers_are_correct():
    for p in _all("facts", "train") + _all("facts", "heldout"):
        subject = next(s for s in ANSWERS if f" {s} " in f" {p.clean} ")
        partner = next(s for s in ANSWERS if f" {s} " in f" {p.corrupted} ")
        assert ANSWERS[subject] == p.answer and ANSWERS[partner] == p.wrong
        assert p.clean.replace(subject, partner) == p.corrupted  # only the subject changes


def test_canonical_pairs():
    colosseum, eiffel, ioi = canonical_pairs()
    assert (colosseum.clean, colosseum.answer) == ("The Colosseum is in", "Rome")
    assert (colosseum.corrupted, colosseum.wrong) == ("The Louvre is in", "Paris")
    assert (eiffel.clean, eiffel.answer) == ("The Eiffel Tower is in", "Paris")
    assert len(eiffel.corrupted.split()) == len(eiffel.clean.split())
    assert ioi.clean == "When Mary and John went to the store , John gave a drink to"
    assert ioi.corrupted == "When Mary and John went to the store , Mary gave a drink to"
    assert (ioi.answer, ioi.wrong) == ("Mary", "John")
    assert len(ANSWERS) >= 30


def test_ioi_answer_is_the_name_that_does_not_repeat():
    for p in _all("ioi", "train") + _all("ioi", "heldout"):
        words = p.clean.split()
        names = [w for w in words if w in NAMES]
        assert len(names) == 3 and names[0] != names[1]  # two different names, then one repeat
        assert names[2] == p.wrong and p.answer in names[:2] and p.answer != names[2]
        cnames = [w for w in p.corrupted.split() if w in NAMES]
        assert cnames[:2] == names[:2] and cnames[2] == p.answer  # the other name repeats
        assert [w for w in words if w not in NAMES] == [
            w for w in p.corrupted.split() if w not in NAMES
        ]


def _ioi_key(p):
    """(unordered name pair, (intro, action)) of an IOI prompt: 'INTRO A and B ... , S VERB ...'."""
    words = p.clean.split()
    verb = words[words.index(",") + 2]
    intro = [t.split()[0] for t in facts.IOI_INTROS].index(words[0])
    action = [t.split()[1] for t in facts.IOI_ACTIONS].index(verb)
    return frozenset((words[1], words[3])), (intro, action)


def test_heldout_splits_are_disjoint():
    train_facts = {p.clean for p in _all("facts", "train", 2000)}
    held_facts = {p.clean for p in _all("facts", "heldout", 2000)}
    assert train_facts and held_facts and not train_facts & held_facts
    assert "The Colosseum is in" in train_facts  # the canonical phrasing is trained on

    train = [_ioi_key(p) for p in _all("ioi", "train", 2000)]
    held = [_ioi_key(p) for p in _all("ioi", "heldout", 2000)]
    for pair, tmpl in train:
        assert not ioi_pair_is_heldout(*pair) and not ioi_template_is_heldout(*tmpl)
    for pair, tmpl in held:
        assert ioi_pair_is_heldout(*pair) or ioi_template_is_heldout(*tmpl)
    # both kinds of held-out: unseen name pairs, and unseen templates with seen pairs
    assert any(ioi_pair_is_heldout(*pair) for pair, _ in held)
    assert any(ioi_template_is_heldout(*t) and not ioi_pair_is_heldout(*p) for p, t in held)
    assert not {p for p, _ in train} & {p for p, t in held if ioi_pair_is_heldout(*p)}
    # every name still appears in training (held out are combinations, not names)
    assert set().union(*(p for p, _ in train)) == set(NAMES)


def test_sampling_is_seeded_and_checks_arguments():
    assert sample_pairs("ioi", "train", 5, 3) == sample_pairs("ioi", "train", 5, 3)
    with pytest.raises(ValueError, match="split"):
        sample_pairs("facts", "test", 5, 0)
    with pytest.raises(ValueError, match="task"):
        sample_pairs("math", "train", 5, 0)
    with pytest.raises(ValueError, match="two different names"):
        ioi_pair("Mary", "Mary")
    assert fact_pair("Colosseum").answer == "Rome"
