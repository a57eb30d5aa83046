"""Re-measure othello-mini (the world-model tutorial's model) from its shipped weights.

The card's numbers: legal-move accuracy, the board probe against a random-init control, and
the probe-direction intervention (Li et al. 2023; Nanda et al. 2023).
"""

import pytest
import torch

from mechscope.toy import othello
from mechscope.world import intervene_to_class
from mechscope.zoo import recipes_world as rw

NAME = "othello-mini"


@pytest.fixture(scope="module")
def measured(model):
    return rw.world_metrics(model)


def test_weights_are_the_carded_ones_and_small(model, check_shipped):
    assert len(check_shipped(model)) < 2.1e6  # the zoo's size budget for this model
    assert model.cfg.d_vocab == len(othello.move_vocab()) + 1
    assert model.tokenizer.words[-1] == "pass"


def test_card_metrics_reproduce(model, measured):
    card = model.card["metrics"]
    for key in ("legal_top1_accuracy", "legal_topk_error_rate", "heldout_loss"):
        assert measured[key] == pytest.approx(card[key], abs=2e-3), key
    for group in ("probe", "probe_control", "intervention"):
        for key, value in card[group].items():
            if isinstance(value, float):
                assert measured[group][key] == pytest.approx(value, abs=5e-3), (group, key)
            else:
                assert measured[group][key] == value, (group, key)


def test_it_knows_the_rules(measured):
    assert measured["legal_top1_accuracy"] >= 0.95
    assert measured["legal_topk_error_rate"] <= 0.13


def test_board_is_linearly_decodable_and_the_control_is_not(measured):
    probe, control = measured["probe"], measured["probe_control"]
    assert probe["accuracy"] >= 0.85
    assert probe["accuracy"] > control["accuracy"] + 0.15
    # Mine vs theirs on occupied squares: the part a bag of played moves cannot give.
    assert probe["occupied_accuracy"] >= 0.78
    assert control["occupied_accuracy"] < 0.6


def test_intervention_moves_predictions_to_the_edited_board(measured):
    iv = measured["intervention"]
    assert iv["n_cases"] >= 200
    assert iv["edited_error_after"] < iv["edited_error_before"] - 0.05
    # After the edit, the moves fit the edited board better than the real one.
    assert iv["edited_error_after"] < iv["original_error_after"]
    assert iv["original_error_after"] > iv["original_error_before"]
    # Pushing as far in a random direction does not do it.
    assert iv["edited_error_random_push"] > iv["edited_error_before"] - 0.02


def test_intervention_leaves_the_model_as_it_came(model):
    cases = rw.flip_cases(20, seed=3)
    probe = rw.fit_board_probe(model, rw.PROBE_EVAL["layer"], n=100, steps=20)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = (model, cases["tokens"], [probe], cases["square"])
    with pytest.raises(ValueError, match="pos must be"):
        intervene_to_class(*args, to_class=cases["to_class"], pos=torch.tensor([1, 2]))
    intervene_to_class(*args, to_class=cases["to_class"], pos=cases["position"])
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_topk_errors_and_legal_loss_on_known_logits():
    legal = torch.tensor([[False, True, True, False], [True, False, False, False]])
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0], [5.0, 1.0, 0.0, 0.0]])
    # Row 0: k=2, top-2 = {1, 3}, one illegal; row 1: k=1, top-1 legal.
    assert rw.topk_errors(logits, legal).tolist() == [0.5, 0.0]
    with pytest.raises(ValueError, match="at least one legal move"):
        rw.topk_errors(logits, torch.zeros_like(legal))
    perfect = torch.where(legal, 0.0, -1e9)[:, None]  # uniform over the legal moves
    expected = (torch.log(torch.tensor(2.0)) + 0.0) / 2  # mean entropy of the targets
    assert float(rw.legal_loss(perfect, legal[:, None])) == pytest.approx(float(expected))


def test_flip_cases_edit_one_square_and_change_the_legal_moves():
    cases = rw.flip_cases(60, seed=5)
    m = len(cases["square"])
    assert 40 <= m <= 60
    rows = torch.arange(m)
    flipped = cases["board"].clone()
    assert (flipped[rows, cases["square"]] != 0).all()
    flipped[rows, cases["square"]] *= -1
    legal = othello.legal_moves(cases["board"])
    legal_edit = othello.legal_moves(flipped)
    assert (legal != legal_edit).any(-1).all() and legal_edit.any(-1).all()
    assert torch.equal(cases["legal"].sum(-1), legal.sum(-1))
    assert torch.equal(cases["legal_edited"].sum(-1), legal_edit.sum(-1))
    mine = cases["board"][rows, cases["square"]] > 0
    assert torch.equal(cases["to_class"] == othello.THEIRS, mine)
    # The token at each position really led to that board: replaying reproduces it.
    _, id_to_square = othello.token_ids()
    i = 0
    board = othello.start_board()
    for tok in cases["tokens"][i, 1 : int(cases["position"][i]) + 1].tolist():
        board = othello.play(board, torch.tensor([int(id_to_square[tok])]))
    assert torch.equal(board[0], cases["board"][i])
