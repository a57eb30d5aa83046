import hashlib

import pytest
import torch

import mechscope
from mechscope.heads import diagonal_score, head_scores
from mechscope.models import zoo
from mechscope.toy.induction import random_period_batch, repeated_part_mask, repeated_random_tokens


def test_zoo_lists_induction_model():
    assert "induction-2l" in mechscope.zoo_models()


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match=r"No|Unknown") as err:
        mechscope.load("nope")
    assert "induction-2l" in str(err.value)
    with pytest.raises(TypeError, match="model name"):
        mechscope.load(3)


def test_card_describes_the_run():
    card = zoo.card("induction-2l")
    for key in ("config", "tokenizer", "data", "training", "metrics", "sha256"):
        assert key in card
    assert card["config"]["d_mlp"] is None  # attention-only
    assert card["training"]["wall_time_s"] > 0 and card["training"]["steps"] > 0
    assert card["data"]["min_period"] < card["data"]["max_period"]  # random period, not fixed


def test_shipped_weights_match_card_hash():
    card = zoo.card("induction-2l")
    blob = (zoo.zoo_dir() / "induction-2l.safetensors").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == card["sha256"]


def test_load_is_eval_mode_and_has_tokenizer():
    model = mechscope.load("induction-2l")
    assert model.training is False
    assert model.to_str_tokens("red cat red")[1:] == ["red", "cat", "red"]


def test_diagonal_score_on_known_pattern():
    eye_prev = torch.zeros(6, 6)
    eye_prev[0, 0] = 1
    eye_prev[torch.arange(1, 6), torch.arange(0, 5)] = 1  # every query attends to the previous key
    assert float(diagonal_score(eye_prev, offset=1, first_query=2, last_query=5)) == 1.0
    assert float(diagonal_score(eye_prev, offset=0, first_query=2, last_query=5)) == 0.0


def test_random_period_data_repeats_with_its_period():
    gen = torch.Generator().manual_seed(0)
    toks, periods, starts = random_period_batch(64, 40, 30, 3, 9, gen)
    assert (toks[:, 0] == 0).all() and (toks[:, 1:] > 0).all()
    assert len(periods.unique()) > 1 and len(starts.unique()) > 1
    for row, p, s in zip(toks, periods.tolist(), starts.tolist(), strict=True):
        body = row[s:]
        assert len(body) >= 2 * p
        assert torch.equal(body[p:], body[:-p])  # repeats with its period from the start on
        assert len(set(body[:p].tolist())) == p  # distinct within a block
        assert not set(row[1:s].tolist()) & set(body[:p].tolist())  # prefix never uses block words
    mask = repeated_part_mask(40, periods, starts)
    # position i predicts token i + 1: predictable once token i is in the second copy
    assert mask[0].sum() == 39 - (starts[0] + periods[0])
    assert not mask[0, starts[0] + periods[0] - 1] and mask[0, starts[0] + periods[0]]


def test_repeated_random_tokens_layout():
    t = repeated_random_tokens(3, 5, 12, seed=1)
    assert t.shape == (3, 11)
    assert torch.equal(t[:, 1:6], t[:, 6:])


def test_random_init_scores_low():
    cfg = mechscope.TransformerConfig(**zoo.card("induction-2l")["config"])
    scores = head_scores(mechscope.Transformer(cfg))
    assert scores.induction.max() < 0.2 and scores.previous_token.max() < 0.2
