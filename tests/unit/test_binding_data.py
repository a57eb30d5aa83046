"""The entity-attribute binding contexts (mechscope.toy.binding, after Feng & Steinhardt 2024):
layout, seeding, the order-swapped counterfactuals and the slot choice."""

import pytest
import torch

from mechscope.models import Transformer, TransformerConfig, WordTokenizer
from mechscope.toy import binding as bd
from mechscope.toy.induction import WORDS


@pytest.fixture(scope="module")
def model():
    tok = WordTokenizer(bd.VOCAB)
    cfg = TransformerConfig(
        n_layers=1, d_model=8, n_heads=1, d_head=8, d_vocab=len(tok), n_ctx=bd.N_POS
    )
    return Transformer(cfg, tokenizer=tok).eval()


def test_layout_every_context_puts_its_words_at_the_documented_positions(model):
    contexts = bd.sample_contexts(64, seed=3)
    tokens = bd.tokens_of(model, contexts)
    assert tokens.shape == (64, bd.N_POS)
    ids = model.tokenizer.ids
    for row, c in zip(tokens.tolist(), contexts, strict=True):
        assert [row[p] for p in bd.ENTITY_POS] == [ids[e] for e in c.entities]
        assert [row[p] for p in bd.ATTRIBUTE_POS] == [ids[a] for a in c.attributes]
        assert row[bd.QUERY_POS] == ids[c.entities[c.query]]
        assert c.entities[0] != c.entities[1] and c.attributes[0] != c.attributes[1]
    assert bd.attribute_ids(model, contexts).tolist() == [
        [row[2], row[4]] for row in tokens.tolist()
    ]


def test_vocabulary_is_induction_2l_s_and_disjoint():
    assert set(bd.VOCAB) <= set(WORDS) and not set(bd.ENTITIES) & set(bd.ATTRIBUTES)


def test_sampling_is_seeded_and_covers_both_slots():
    a, b = bd.sample_contexts(200, seed=0), bd.sample_contexts(200, seed=0)
    assert a == b and a != bd.sample_contexts(200, seed=1)
    assert 70 < sum(c.query for c in a) < 130  # both slots queried, about half each
    state = torch.random.get_rng_state()
    bd.sample_contexts(10, seed=5)
    assert torch.equal(state, torch.random.get_rng_state())


def test_swapped_contexts_keep_the_query_and_change_the_answer():
    c = bd.BindingContext(("cat", "dog"), ("red", "blue"), 1)
    assert c.text == "cat red dog blue dog"
    assert (c.answer, c.wrong) == ("blue", "red")
    e = bd.swapped(c, "entities")
    assert e.text == "dog red cat blue dog" and e.answer == "red"
    a = bd.swapped(c, "attributes")
    assert a.text == "cat blue dog red dog" and a.answer == "red"
    assert bd.swapped(e, "entities") == c
    with pytest.raises(ValueError, match="what='names'"):
        bd.swapped(c, "names")
    with pytest.raises(ValueError, match="n=0"):
        bd.sample_contexts(0, seed=0)


def test_choice_reads_the_last_position_only():
    logits = torch.zeros(3, 4, 10)
    logits[0, -1, 2], logits[1, -1, 5], logits[2, 0, 5] = 1.0, 1.0, 9.0
    ids = torch.tensor([[2, 5], [2, 5], [2, 5]])
    assert bd.choice(logits, ids).tolist() == [0, 1, 0]
