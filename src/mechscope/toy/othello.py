"""Othello on a small square board, batched in torch: the world of a miniature Othello-GPT.

Li et al. (2023), "Emergent World Representations", trained a GPT on the move sequences of
random legal Othello games and found the board state inside it; Nanda et al. (2023),
"Emergent Linear Representations in World Models of Self-Supervised Sequence Models", showed
the state is *linear* once squares are labelled relative to the player to move
(empty / mine / theirs). This module is that game, on a ``size x size`` board (default 6):

- boards are int8 ``[batch, square]`` tensors (square = ``row * size + col``) seen from the
  player **to move**: ``+1`` = that player's disc ("mine"), ``-1`` = the opponent's
  ("theirs"), ``0`` = empty. Playing a move flips the view, so no colour is ever stored;
- every operation works on a whole batch at once (rays of squares are precomputed per board
  size and gathered, no Python loop over games);
- **passes are explicit**: a player with no legal move plays the token ``pass`` (it is then
  the only legal move). When neither player can move the game is over and the sequence ends.
  An explicit pass keeps "whose turn is it" a function of the token count, so the
  player-relative labels at a position never depend on hidden information.

Black moves first from the standard start (the four centre squares, ``d4``-style diagonal).
Move tokens are named like chess squares: column letter, row number (``a1`` = top left).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

EMPTY, MINE, THEIRS = 0, 1, 2  # board-state label classes (Nanda et al. 2023), see board_labels
CLASS_NAMES = ("empty", "mine", "theirs")
PASS = -1  # the move index of a pass
_DIRECTIONS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _check_size(size: int) -> int:
    if not isinstance(size, int) or size < 4 or size % 2:
        raise ValueError(
            f"Othello board size must be an even int >= 4 (e.g. 6 or 8), got {size!r}."
        )
    return size


def center_squares(size: int = 6) -> list[int]:
    """The four centre squares (filled at the start, so never a move), in row-major order."""
    h = _check_size(size) // 2
    return [(h - 1) * size + h - 1, (h - 1) * size + h, h * size + h - 1, h * size + h]


def square_name(square: int, size: int = 6) -> str:
    """``row * size + col`` -> ``"c4"``-style name (column letter, 1-based row)."""
    r, c = divmod(int(square), _check_size(size))
    if not 0 <= r < size:
        raise ValueError(f"square {square} is off a {size}x{size} board (0..{size * size - 1}).")
    return f"{'abcdefghijklmnop'[c]}{r + 1}"


def move_vocab(size: int = 6) -> list[str]:
    """Token names: every square a move can land on (all but the centre four), then ``pass``."""
    centre = set(center_squares(size))
    return [square_name(s, size) for s in range(size * size) if s not in centre] + ["pass"]


@lru_cache(maxsize=8)
def _rays(size: int) -> torch.Tensor:
    """``[square, direction, size - 1]`` square indices walking out from each square; steps
    off the board point to the sentinel index ``size * size`` (an always-empty cell)."""
    n = size * size
    rays = torch.full((n, 8, size - 1), n, dtype=torch.long)
    for s in range(n):
        r, c = divmod(s, size)
        for d, (dr, dc) in enumerate(_DIRECTIONS):
            for k in range(1, size):
                rr, cc = r + k * dr, c + k * dc
                if not (0 <= rr < size and 0 <= cc < size):
                    break
                rays[s, d, k - 1] = rr * size + cc
    return rays


def _size_of(board: torch.Tensor) -> int:
    if not isinstance(board, torch.Tensor) or board.dim() != 2:
        got = list(board.shape) if isinstance(board, torch.Tensor) else type(board).__name__
        raise ValueError(f"board must be a [batch, square] tensor, got {got}.")
    size = round(board.shape[1] ** 0.5)
    if size * size != board.shape[1]:
        raise ValueError(
            f"board has {board.shape[1]} squares, not a square number; expected size * size "
            "(e.g. 36 for 6x6)."
        )
    return _check_size(size)


def _runs(board: torch.Tensor, squares: torch.Tensor) -> torch.Tensor:
    """How many discs a move at ``squares`` ([batch, k]) flips in each direction:
    ``[batch, k, 8]``; 0 where the run of "theirs" is not closed by a "mine" disc."""
    size = _size_of(board)
    rays = _rays(size).to(board.device)[squares]  # [batch, k, 8, L]
    padded = torch.cat([board, board.new_zeros(board.shape[0], 1)], 1)  # sentinel = empty
    vals = padded.gather(1, rays.flatten(1)).view(rays.shape)
    run = (vals == -1).long().cumprod(-1).sum(-1)  # leading "theirs" discs, [batch, k, 8]
    after = vals.gather(-1, run.clamp(max=size - 2)[..., None])[..., 0]
    closed = (run < size - 1) & (after == 1)
    return torch.where(closed, run, torch.zeros_like(run))


def start_board(batch: int = 1, size: int = 6) -> torch.Tensor:
    """The opening position from Black's view (Black moves first): int8 ``[batch, square]``."""
    a, b, c, d = center_squares(size)
    board = torch.zeros(batch, size * size, dtype=torch.int8)
    board[:, [a, d]] = -1  # White on the main diagonal of the centre
    board[:, [b, c]] = 1
    return board


def legal_moves(board: torch.Tensor) -> torch.Tensor:
    """Squares the player to move may play: bool ``[batch, square]`` (pass is not included;
    a player must pass exactly when this row is all False)."""
    n = board.shape[1]
    squares = torch.arange(n, device=board.device).expand(board.shape[0], n)
    return (board == 0) & (_runs(board, squares).sum(-1) > 0)


def flipped(board: torch.Tensor, moves: torch.Tensor) -> torch.Tensor:
    """Discs each move flips: bool ``[batch, square]``; all False for a pass (``moves == -1``).

    ``moves`` is ``[batch]`` square indices. Raises if a (non-pass) move is illegal.
    """
    size = _size_of(board)
    moves = torch.as_tensor(moves, device=board.device).long()
    if moves.shape != (board.shape[0],):
        raise ValueError(f"moves must be [batch] = [{board.shape[0]}], got {list(moves.shape)}.")
    is_pass = moves == PASS
    sq = moves.clamp(min=0)
    runs = _runs(board, sq[:, None])[:, 0]  # [batch, 8]
    bad = ~is_pass & ((board.gather(1, sq[:, None])[:, 0] != 0) | (runs.sum(-1) == 0))
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"Illegal move {square_name(int(sq[i]), size)} in game {i} of the batch "
            f"({int(bad.sum())} illegal in all); legal moves there: "
            f"{[square_name(s, size) for s in legal_moves(board[i : i + 1])[0].nonzero()[:, 0]]}."
            " Use legal_moves(board) to choose, or -1 to pass."
        )
    rays = _rays(size).to(board.device)[sq]  # [batch, 8, L]
    steps = torch.arange(size - 1, device=board.device)
    take = (steps < runs[..., None]) & ~is_pass[:, None, None]
    out = torch.zeros(board.shape[0], size * size + 1, dtype=torch.long, device=board.device)
    out.scatter_add_(1, rays.flatten(1), take.long().flatten(1))
    return out[:, :-1] > 0


def play(board: torch.Tensor, moves: torch.Tensor) -> torch.Tensor:
    """Play ``moves`` ([batch] square indices, -1 = pass): the new board, seen from the
    player who moves next (so mine and theirs swap)."""
    flips = flipped(board, moves)
    moves = torch.as_tensor(moves, device=board.device).long()
    new = torch.where(flips, torch.ones_like(board), board)
    placed = moves != PASS
    rows = torch.arange(board.shape[0], device=board.device)[placed]
    new[rows, moves[placed]] = 1
    return -new


def board_labels(board: torch.Tensor) -> torch.Tensor:
    """Player-relative labels: long ``[..., square]`` with EMPTY=0, MINE=1, THEIRS=2."""
    board = torch.as_tensor(board)
    return torch.where(board == 0, EMPTY, torch.where(board > 0, MINE, THEIRS)).long()


def colour_labels(boards: torch.Tensor) -> torch.Tensor:
    """Absolute-colour labels of a game's boards: long ``[batch, pos, square]`` with EMPTY=0,
    1 = Black, 2 = White. ``boards`` is ``Games.boards`` (``[batch, pos, square]``): Black is to
    move at even positions (passes are explicit moves), so there "mine" is Black. The labels Li
    et al. (2023) found non-linear, unlike the player-relative ones (Nanda et al. 2023)."""
    if boards.dim() != 3:
        raise ValueError(
            f"boards must be Games.boards, [batch, pos, square], got {list(boards.shape)}; the "
            "position index says whose turn it is."
        )
    black_to_move = (torch.arange(boards.shape[1]) % 2 == 0)[None, :, None]
    labels = board_labels(boards)
    swapped = torch.where(labels == MINE, THEIRS, torch.where(labels == THEIRS, MINE, EMPTY))
    return torch.where(black_to_move, labels, swapped)


def render(board: torch.Tensor, marks: dict[int, str] | None = None) -> str:
    """One board (``[square]`` or ``[1, square]``) as text: ``x`` = mine (to move),
    ``o`` = theirs, ``.`` = empty; ``marks`` overrides squares (e.g. ``{legal: "*"}``)."""
    b = torch.as_tensor(board).reshape(-1)
    size = _size_of(b[None])
    marks = marks or {}
    lines = ["  " + " ".join("abcdefghijklmnop"[:size])]
    for r in range(size):
        cells = []
        for c in range(size):
            s = r * size + c
            cells.append(marks.get(s, {1: "x", -1: "o", 0: "."}[int(b[s])]))
        lines.append(f"{r + 1} " + " ".join(cells))
    return "\n".join(lines)


@dataclass
class Games:
    """A batch of games, aligned with token positions (position 0 = BOS = the start).

    moves:  long ``[batch, max_moves]`` square index per move, -1 = pass, -2 = after the end
    boards: int8 ``[batch, max_moves + 1, square]`` board at each position (after that many
            moves), seen from the player to move next
    legal:  bool ``[batch, max_moves + 1, square + 1]`` legal next moves at each position; the
            last column is pass (legal exactly when no square is). All False once the game is over.
    length: long ``[batch]`` moves (passes included) in each game
    size:   board side
    """

    moves: torch.Tensor
    boards: torch.Tensor
    legal: torch.Tensor
    length: torch.Tensor
    size: int

    def __len__(self) -> int:
        return self.moves.shape[0]


def random_games(n: int, size: int = 6, seed: int = 0, max_moves: int | None = None) -> Games:
    """``n`` games of uniformly random legal moves (the data of Li et al. 2023), batched.

    A player with no legal move passes; the game ends when neither can move or after
    ``max_moves`` moves (default ``size * size - 4`` squares + 8 passes). Seeded: the same
    ``seed`` gives the same games.
    """
    _check_size(size)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (number of games), got {n!r}.")
    max_moves = size * size - 4 + 8 if max_moves is None else max_moves
    gen = torch.Generator().manual_seed(seed)
    board = start_board(n, size)
    moves = torch.full((n, max_moves), -2, dtype=torch.long)
    boards = torch.zeros(n, max_moves + 1, size * size, dtype=torch.int8)
    legal = torch.zeros(n, max_moves + 1, size * size + 1, dtype=torch.bool)
    alive = torch.ones(n, dtype=torch.bool)
    for t in range(max_moves + 1):
        boards[:, t] = board
        sq_legal = legal_moves(board)
        can_pass = ~sq_legal.any(1)
        # A pass is a move only while the opponent can still play; else the game is over.
        over = can_pass & ~legal_moves(-board).any(1)
        alive &= ~over
        legal[:, t, :-1] = sq_legal & alive[:, None]
        legal[:, t, -1] = can_pass & alive
        if t == max_moves or not alive.any():
            break
        weights = sq_legal.float() + can_pass[:, None].float() * 1.0  # any row > 0
        pick = torch.multinomial(weights, 1, generator=gen)[:, 0]
        move = torch.where(can_pass, torch.full_like(pick, PASS), pick)
        move = torch.where(alive, move, torch.full_like(pick, PASS))
        board = torch.where(alive[:, None], play(board, move), board)
        moves[:, t] = torch.where(alive, move, torch.full_like(move, -2))
    length = (moves != -2).sum(1)
    return Games(moves=moves, boards=boards, legal=legal, length=length, size=size)


def token_ids(size: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Lookup tables between moves and token ids of a WordTokenizer over
    ``move_vocab(size)`` (id 0 = BOS): ``square_to_id`` ``[square + 1]`` (last entry = pass;
    -1 for the centre squares) and ``id_to_square`` ``[d_vocab]`` (-1 = pass, -2 = BOS)."""
    vocab = move_vocab(size)
    n = size * size
    square_to_id = torch.full((n + 1,), -1, dtype=torch.long)
    id_to_square = torch.full((len(vocab) + 1,), -2, dtype=torch.long)
    names = {square_name(s, size): s for s in range(n)}
    for i, name in enumerate(vocab, start=1):
        s = PASS if name == "pass" else names[name]
        square_to_id[s if s >= 0 else n] = i
        id_to_square[i] = s
    return square_to_id, id_to_square


def game_tokens(games: Games, pad: int = 0) -> torch.Tensor:
    """Token ids ``[batch, max_moves + 1]``: BOS, then each move; positions after a game's
    end hold ``pad`` (mask them with ``games.legal.any(-1)``)."""
    square_to_id, _ = token_ids(games.size)
    n = games.size * games.size
    idx = torch.where(games.moves == PASS, n, games.moves).clamp(min=0)
    ids = torch.where(games.moves == -2, pad, square_to_id[idx])
    return torch.cat([torch.zeros(len(games), 1, dtype=torch.long), ids], 1)


def legal_token_mask(games: Games) -> torch.Tensor:
    """``games.legal`` re-indexed by token id: bool ``[batch, max_moves + 1, d_vocab]``
    (BOS is never legal)."""
    square_to_id, _ = token_ids(games.size)
    d_vocab = len(move_vocab(games.size)) + 1
    out = torch.zeros(*games.legal.shape[:2], d_vocab, dtype=torch.bool)
    keep = square_to_id >= 0
    out[..., square_to_id[keep]] = games.legal[..., keep]
    return out
