"""The batched Othello game against a plain one-board reference, and its data layout."""

import pytest
import torch

from mechscope.toy import othello as o


def _ref_flips(board: list[int], size: int, sq: int) -> list[int]:
    """Plain reference: squares a move at ``sq`` flips for the player to move (+1)."""
    if board[sq] != 0:
        return []
    r0, c0 = divmod(sq, size)
    out = []
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr == dc == 0:
                continue
            run, r, c = [], r0 + dr, c0 + dc
            while 0 <= r < size and 0 <= c < size and board[r * size + c] == -1:
                run.append(r * size + c)
                r, c = r + dr, c + dc
            if run and 0 <= r < size and 0 <= c < size and board[r * size + c] == 1:
                out += run
    return out


def test_opening_position_and_its_four_moves():
    b = o.start_board(2)
    assert b.shape == (2, 36) and b.dtype == torch.int8
    assert int((b != 0).sum()) == 8 and int(b.sum()) == 0
    legal = [o.square_name(s) for s in o.legal_moves(b)[0].nonzero()[:, 0]]
    assert legal == ["c2", "b3", "e4", "d5"]  # the four symmetric openings on 6x6
    after = o.play(b[:1], torch.tensor([o.center_squares()[0] - 6]))  # c2
    # Black flipped c3; seen from White (to move) Black's four discs are "theirs" (-1).
    assert int((after == -1).sum()) == 4 and int((after == 1).sum()) == 1


@pytest.mark.parametrize("size", [4, 6, 8])
def test_legal_moves_and_flips_match_reference_on_random_games(size):
    games = o.random_games(12, size=size, seed=3)
    n = size * size
    real = torch.arange(games.moves.shape[1])[None] < games.length[:, None]
    boards = games.boards[:, :-1][real]  # every position that has a next move, [k, square]
    moves, nexts = games.moves[real], games.boards[:, 1:][real]
    legal = o.legal_moves(boards)
    flips = o.flipped(boards, moves)
    for i in range(len(boards)):
        board = boards[i].tolist()
        ref_legal = [s for s in range(n) if _ref_flips(board, size, s)]
        assert legal[i].nonzero()[:, 0].tolist() == ref_legal
        move = int(moves[i])
        if move == o.PASS:
            assert ref_legal == [] and not flips[i].any()
            assert torch.equal(nexts[i], -boards[i])
            continue
        ref = sorted(_ref_flips(board, size, move))
        assert flips[i].nonzero()[:, 0].tolist() == ref
        expected = boards[i].clone()
        expected[ref + [move]] = 1
        assert torch.equal(nexts[i], -expected)
    assert (moves != o.PASS).sum() > 10 * (n - 4) // 2


def test_games_end_when_nobody_can_move_and_passes_are_explicit():
    games = o.random_games(150, seed=0)
    assert games.moves.shape == (150, 40) and games.boards.shape == (150, 41, 36)
    assert games.length.max() <= 40
    assert 0.1 < (games.moves == o.PASS).any(1).float().mean() < 0.9  # passes do happen
    rows = torch.arange(150)
    end = games.boards[rows, games.length]
    assert not o.legal_moves(end).any() and not o.legal_moves(-end).any()
    assert not games.legal[rows, games.length].any()  # nothing legal after the end
    # Before the end exactly one of (some square, pass) is legal.
    t = torch.arange(41)[None] < games.length[:, None]
    assert torch.equal(games.legal[..., :-1].any(-1) ^ games.legal[..., -1], t)
    # A pass never follows a pass (the game would be over).
    p = games.moves == o.PASS
    assert not (p[:, 1:] & p[:, :-1]).any()
    # Discs never disappear: each real move adds exactly one.
    discs = (games.boards != 0).sum(-1)
    for g in range(10):
        for k in range(int(games.length[g])):
            step = int(discs[g, k + 1] - discs[g, k])
            assert step == (0 if games.moves[g, k] == o.PASS else 1)


def test_games_are_seeded():
    a, b, c = o.random_games(8, seed=1), o.random_games(8, seed=1), o.random_games(8, seed=2)
    assert torch.equal(a.moves, b.moves) and not torch.equal(a.moves, c.moves)


def test_tokens_labels_and_legal_mask_line_up():
    games = o.random_games(20, seed=5)
    tokens = o.game_tokens(games)
    vocab = o.move_vocab()
    assert len(vocab) == 33 and vocab[-1] == "pass" and "c3" not in vocab
    assert tokens.shape == (20, 41) and (tokens[:, 0] == 0).all()
    _, id_to_square = o.token_ids()
    g = 0
    for t in range(int(games.length[g])):
        assert int(id_to_square[tokens[g, t + 1]]) == int(games.moves[g, t])
    mask = o.legal_token_mask(games)
    assert mask.shape == (20, 41, 34) and not mask[..., 0].any()
    assert torch.equal(mask.sum(-1), games.legal.sum(-1))
    labels = o.board_labels(games.boards)
    assert labels.shape == (20, 41, 36)
    assert torch.equal(labels == o.MINE, games.boards == 1)
    assert torch.equal(labels == o.THEIRS, games.boards == -1)
    # At the start, seen from Black: two mine, two theirs, 32 empty.
    assert torch.bincount(labels[0, 0], minlength=3).tolist() == [32, 2, 2]


def test_colour_labels_follow_the_turn():
    games = o.random_games(30, seed=2)
    colour = o.colour_labels(games.boards)
    rel = o.board_labels(games.boards)
    assert torch.equal(colour[:, 0::2], rel[:, 0::2])  # Black to move: mine = Black
    assert torch.equal(colour[:, 1::2] == 1, rel[:, 1::2] == o.THEIRS)
    # A Black disc stays Black until flipped: after Black's first move, its square is Black.
    first = games.moves[:, 0]
    assert (colour[torch.arange(30), 1, first] == 1).all()
    with pytest.raises(ValueError, match="whose turn"):
        o.colour_labels(games.boards[0])


def test_render():
    text = o.render(o.start_board()[0], marks={8: "*"})
    assert text.splitlines()[0] == "  a b c d e f"
    assert text.splitlines()[2] == "2 . . * . . ."
    assert text.splitlines()[3] == "3 . . o x . ."


def test_bad_inputs_say_what_and_how():
    with pytest.raises(ValueError, match="even int >= 4"):
        o.start_board(1, size=5)
    with pytest.raises(ValueError, match="not a square number"):
        o.legal_moves(torch.zeros(1, 35, dtype=torch.int8))
    with pytest.raises(ValueError, match=r"Illegal move a1 .*legal moves there: \['c2'"):
        o.play(o.start_board(), torch.tensor([0]))
    with pytest.raises(ValueError, match="moves must be"):
        o.play(o.start_board(2), torch.tensor([8]))
    with pytest.raises(ValueError, match="positive int"):
        o.random_games(0)
