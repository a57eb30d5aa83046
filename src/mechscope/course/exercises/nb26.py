"""Exercises of notebook 26 (reinforcement learning): the BFS distance map, each goal's
encoding (class means), the fraction of steered episodes that end on the new goal, and the
blocked-move primitive of the distilled program (Bastani et al. 2018's policy extraction).

Mini et al. (2023), "Understanding and Controlling a Maze-Solving Policy Network";
Ivanitskiy et al. (2023), "Structured World Representations in Maze-Solving Transformers".
"""

from __future__ import annotations

from collections import deque

import torch

from . import exercise

NB = "26_reinforcement_learning"


def _walls_cases():
    gen = torch.Generator().manual_seed(0)
    walls = torch.rand(6, 6, generator=gen) < 0.2
    walls[0, 0] = walls[5, 5] = walls[2, 3] = False
    corridor = torch.ones(5, 5, dtype=torch.bool)
    corridor[2] = False
    corridor[:, 4] = False
    return {
        "6x6 with random walls, goal (2, 3)": (walls, (2, 3)),
        "a corridor that turns a corner, goal (2, 0)": (corridor, (2, 0)),
    }


def _bfs(walls, goal, moves, first: int = 0, respect_walls: bool = True):
    size = walls.shape[0]
    dist = torch.full((size, size), -1, dtype=torch.long)
    dist[goal] = first
    queue = deque([tuple(goal)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in moves:
            rr, cc = r + dr, c + dc
            if not (0 <= rr < size and 0 <= cc < size) or dist[rr, cc] != -1:
                continue
            if respect_walls and walls[rr, cc]:
                continue
            dist[rr, cc] = dist[r, c] + 1
            queue.append((rr, cc))
    return dist


_FOUR = ((-1, 0), (1, 0), (0, -1), (0, 1))
_EIGHT = _FOUR + ((-1, -1), (-1, 1), (1, -1), (1, 1))


@exercise(
    "26.bfs_distances",
    notebook=NB,
    title="The BFS distance map: what the optimal policy follows",
    difficulty=2,
    minutes=10,
    cases=_walls_cases,
    mistakes=[
        (
            "diagonal moves: the agent moves up, down, left or right only",
            lambda w, g: _bfs(w, g, _EIGHT),
        ),
        ("the goal's own distance is 0, not 1", lambda w, g: _bfs(w, g, _FOUR, first=1)),
        (
            "walls are not obstacles: a wall cell is never entered (and stays -1)",
            lambda w, g: _bfs(w, g, _FOUR, respect_walls=False),
        ),
    ],  # fmt: skip
)
def bfs_distances(walls, goal) -> torch.Tensor:
    """walls bool ``[size, size]``, goal ``(row, col)`` -> long ``[size, size]``: the fewest
    up/down/left/right moves from each cell to the goal (``-1`` on walls and unreachable cells)."""
    return _bfs(walls, tuple(goal), _FOUR)


def _means_cases():
    gen = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 2, 2, 1, 0, 3, 1, 2, 3, 3, 0, 1])
    return {
        "12 rows of 5 features, 4 goals": (torch.randn(12, 5, generator=gen) + 1.0, labels, 4),
    }


def _means(acts, labels, n_classes, divide=True, by_all=False):
    sums = torch.zeros(n_classes, acts.shape[1]).index_add_(0, labels, acts)
    if not divide:
        return sums
    if by_all:
        return sums / len(labels)
    return sums / torch.bincount(labels, minlength=n_classes)[:, None]


@exercise(
    "26.goal_means",
    notebook=NB,
    title="Each goal's encoding: the mean activation of its states",
    difficulty=1,
    minutes=6,
    cases=_means_cases,
    mistakes=[
        (
            "sums, not means: divide by each goal's number of rows",
            lambda a, y, c: _means(a, y, c, False),
        ),
        (
            "divided by all rows, not by the goal's own count",
            lambda a, y, c: _means(a, y, c, by_all=True),
        ),
        (
            "the overall mean was subtracted: the encoding is the plain mean",
            lambda a, y, c: _means(a, y, c) - a.mean(0),
        ),
    ],  # fmt: skip
)
def goal_means(acts, labels, n_classes) -> torch.Tensor:
    """acts ``[n, d]``, labels long ``[n]`` (goal cell per row), n_classes -> ``[n_classes, d]``:
    the mean of the rows of each goal."""
    return _means(acts, labels, n_classes)


def _ended_cases():
    gen = torch.Generator().manual_seed(2)
    paths = torch.randint(0, 4, (10, 6, 2), generator=gen)
    targets = paths[:, -1].clone()
    targets[::3] = paths[::3, 2]  # visited on the way, but not where it ended
    targets[1::4, 0] = (targets[1::4, 0] + 1) % 4  # right column, wrong row
    targets[0] = paths[0, 0]
    return {"10 episodes of 5 steps": (paths, targets)}


@exercise(
    "26.ended_at",
    notebook=NB,
    title="The intervention's success: episodes that end on the new goal",
    difficulty=1,
    minutes=5,
    cases=_ended_cases,
    mistakes=[
        (
            "visited at some step counts too: only where the walk ended counts",
            lambda p, t: (p == t[:, None]).all(-1).any(-1).float(),
        ),
        (
            "only the column was compared: a cell is (row, col)",
            lambda p, t: (p[:, -1, 1] == t[:, 1]).float(),
        ),
        ("the start was compared, not the end", lambda p, t: (p[:, 0] == t).all(-1).float()),
    ],  # fmt: skip
)
def ended_at(paths, targets) -> torch.Tensor:
    """paths long ``[n, steps + 1, 2]``, targets ``[n, 2]`` -> float ``[n]``: 1.0 where the
    episode's last position is its target, else 0.0 (its mean is the success fraction)."""
    return (paths[:, -1] == targets).all(-1).float()


def _blocked_cases():
    gen = torch.Generator().manual_seed(3)
    walls = torch.rand(6, 6, generator=gen) < 0.3
    walls[0, 0] = walls[5, 5] = walls[0, 5] = walls[3, 2] = False
    walls[2, 2] = walls[3, 1] = True  # (3, 2): walled above and on the left, free below
    cells = (~walls).nonzero()
    return {"6x6 with random walls, every free cell": (walls, cells)}


def _blocked(walls, cells, moves=_FOUR, edges=True):
    size = walls.shape[0]
    out = torch.zeros(len(cells), len(moves))
    for j, (dr, dc) in enumerate(moves):
        r, c = cells[:, 0] + dr, cells[:, 1] + dc
        inside = (r >= 0) & (r < size) & (c >= 0) & (c < size)
        hit = torch.zeros(len(cells), dtype=torch.bool)
        hit[inside] = walls[r[inside], c[inside]]
        out[:, j] = (hit | (~inside & edges)).float()
    return out


@exercise(
    "26.blocked_moves",
    notebook=NB,
    title="A primitive for the program: which moves a wall or the edge blocks",
    difficulty=1,
    minutes=8,
    cases=_blocked_cases,
    mistakes=[
        (
            "the grid's edge blocks too: a move off the grid leaves the agent in place",
            lambda w, c: _blocked(w, c, edges=False),
        ),
        (
            "up and down swapped: rows count from the top, so up is row - 1",
            lambda w, c: _blocked(w, c, ((1, 0), (-1, 0), (0, -1), (0, 1))),
        ),
        (
            "row and column swapped: a cell is (row, col), and up / down change the row",
            lambda w, c: _blocked(w, c, ((0, -1), (0, 1), (-1, 0), (1, 0))),
        ),
    ],  # fmt: skip
)
def blocked_moves(walls, cells) -> torch.Tensor:
    """walls bool ``[size, size]``, cells long ``[n, 2]`` (row, col) -> float ``[n, 4]``: 1.0
    where the move (up, down, left, right) from that cell hits a wall or the grid's edge."""
    return _blocked(walls, cells)
