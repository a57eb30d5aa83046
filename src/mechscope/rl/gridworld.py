"""A seeded gridworld: a square grid with wall cells, an agent and a goal (the review's §8).

The agent moves one cell per step (up, down, left, right); a move into a wall or off the grid
leaves it where it is. An episode ends when the agent stands on the goal. The optimal policy is
read off a breadth-first-search distance map from the goal: an action is optimal when it lowers
the distance by one. Positions are ``(row, col)`` long tensors; the observation is two flat
one-hot planes (the agent's cell, then the goal's cell), ``2 * size * size`` floats: the walls
are fixed for a world, so an agent trained on it learns them.

Everything is batched: ``pos`` and ``goal`` are ``[n, 2]``; ``step`` moves ``n`` agents at once.
"""

from __future__ import annotations

from collections import deque

import torch

ACTIONS = ("up", "down", "left", "right")
MOVES = torch.tensor([[-1, 0], [1, 0], [0, -1], [0, 1]])
UNREACHABLE = -1

__all__ = ["ACTIONS", "MOVES", "GridWorld"]


class GridWorld:
    """A grid of ``size x size`` cells; ``walls`` bool ``[size, size]`` marks the blocked ones.

    Every free cell must be reachable from every other (checked). ``GridWorld.random(size=7,
    n_walls=10, seed=0)`` draws one. ``cells`` ``[n_cells, 2]`` lists the free cells in row-major
    order; ``cell_index(pos)`` maps positions to their row in ``cells`` (the class a probe
    predicts); ``distances`` ``[n_cells, size, size]`` is the BFS distance from each free cell
    (``-1`` on walls).
    """

    def __init__(self, walls):
        walls = torch.as_tensor(walls)
        if walls.dtype != torch.bool or walls.ndim != 2 or walls.shape[0] != walls.shape[1]:
            raise ValueError(
                f"walls must be a square bool tensor [size, size], got shape "
                f"{list(walls.shape)} dtype {walls.dtype}; e.g. torch.zeros(7, 7, dtype=torch.bool)."
            )
        if walls.shape[0] < 2:
            raise ValueError(f"walls is {list(walls.shape)}; a gridworld needs size >= 2.")
        self.walls = walls.clone()
        self.size = int(walls.shape[0])
        self.cells = (~walls).nonzero()  # [n_cells, 2], row-major
        if len(self.cells) < 2:
            raise ValueError("walls leave fewer than 2 free cells; an agent and a goal need 2.")
        index = torch.full((self.size, self.size), -1, dtype=torch.long)
        index[self.cells[:, 0], self.cells[:, 1]] = torch.arange(len(self.cells))
        self._index = index
        self.distances = torch.stack([self._bfs(tuple(c.tolist())) for c in self.cells])
        if (self.distances[:, self.cells[:, 0], self.cells[:, 1]] == UNREACHABLE).any():
            raise ValueError(
                "walls cut the free cells into parts that cannot reach each other; remove a "
                "wall or draw another layout (GridWorld.random retries until connected)."
            )

    @classmethod
    def random(cls, size: int = 7, *, n_walls: int = 10, seed: int = 0) -> GridWorld:
        """A seeded layout with ``n_walls`` wall cells whose free cells are all connected."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise ValueError(f"size={size!r}; expected an int >= 2 (e.g. 7).")
        if isinstance(n_walls, bool) or not isinstance(n_walls, int):
            raise TypeError(f"n_walls={n_walls!r}; expected an int.")
        if not 0 <= n_walls <= size * size - 2:
            raise ValueError(f"n_walls={n_walls}; expected 0..{size * size - 2} for size {size}.")
        gen = torch.Generator().manual_seed(seed)
        for _ in range(1000):
            walls = torch.zeros(size * size, dtype=torch.bool)
            walls[torch.randperm(size * size, generator=gen)[:n_walls]] = True
            try:
                return cls(walls.reshape(size, size))
            except ValueError:
                continue
        raise ValueError(f"no connected layout with n_walls={n_walls} found; use fewer walls.")

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    @property
    def d_obs(self) -> int:
        return 2 * self.size * self.size

    def __repr__(self) -> str:
        return f"GridWorld(size={self.size}, n_cells={self.n_cells})"

    def _bfs(self, start: tuple[int, int]) -> torch.Tensor:
        dist = torch.full((self.size, self.size), UNREACHABLE, dtype=torch.long)
        dist[start] = 0
        queue = deque([start])
        while queue:
            r, c = queue.popleft()
            for dr, dc in MOVES.tolist():
                rr, cc = r + dr, c + dc
                inside = 0 <= rr < self.size and 0 <= cc < self.size
                if inside and not self.walls[rr, cc] and dist[rr, cc] == UNREACHABLE:
                    dist[rr, cc] = dist[r, c] + 1
                    queue.append((rr, cc))
        return dist

    def check_pos(self, pos, what: str = "pos") -> torch.Tensor:
        """``pos`` as long ``[n, 2]`` on free cells (a single ``(row, col)`` becomes ``[1, 2]``)."""
        p = torch.as_tensor(pos)
        if p.dtype == torch.bool or p.dtype.is_floating_point:
            raise TypeError(f"{what} must hold integer (row, col) pairs, got dtype {p.dtype}.")
        p = p.long().reshape(1, 2) if p.shape == (2,) else p.long()
        if p.ndim != 2 or p.shape[1] != 2:
            raise ValueError(f"{what} has shape {list(p.shape)}; expected [n, 2] (row, col) pairs.")
        off = ((p < 0) | (p >= self.size)).any(-1)
        if off.any():
            raise ValueError(
                f"{what} {p[off][0].tolist()} is off the {self.size}x{self.size} grid; "
                f"rows and cols run 0..{self.size - 1}."
            )
        on_wall = self.walls[p[:, 0], p[:, 1]]
        if on_wall.any():
            raise ValueError(
                f"{what} {p[on_wall][0].tolist()} is a wall cell; pick positions from world.cells."
            )
        return p

    def cell_index(self, pos) -> torch.Tensor:
        """The row of each position in ``cells``: long ``[n]`` (a probe's class)."""
        p = self.check_pos(pos)
        return self._index[p[:, 0], p[:, 1]]

    def step(self, pos, actions) -> torch.Tensor:
        """Move each agent one cell: pos ``[n, 2]``, actions long ``[n]`` in 0..3 -> ``[n, 2]``.

        A move into a wall or off the grid leaves the agent in place.
        """
        p = self.check_pos(pos)
        a = torch.as_tensor(actions)
        if a.dtype == torch.bool or a.dtype.is_floating_point or a.shape != (len(p),):
            raise ValueError(
                f"actions must be integer [n] = [{len(p)}] (one per agent), got shape "
                f"{list(a.shape)} dtype {a.dtype}."
            )
        if len(a) and (a.min() < 0 or a.max() >= len(ACTIONS)):
            raise ValueError(f"actions hold {a.min()}..{a.max()}; expected 0..3 {ACTIONS}.")
        new = p + MOVES[a.long()]
        inside = ((new >= 0) & (new < self.size)).all(-1)
        new = torch.where(inside[:, None], new, p)
        blocked = self.walls[new[:, 0], new[:, 1]]
        return torch.where(blocked[:, None], p, new)

    def distance(self, pos, goal) -> torch.Tensor:
        """Shortest-path steps from each ``pos`` to its ``goal``: long ``[n]``."""
        p, g = self.check_pos(pos), self.check_pos(goal, "goal")
        return self.distances[self._index[g[:, 0], g[:, 1]], p[:, 0], p[:, 1]]

    def optimal_actions(self, pos, goal) -> torch.Tensor:
        """bool ``[n, 4]``: which actions lower the BFS distance to the goal by one (all False
        where the agent already stands on its goal)."""
        p, g = self.check_pos(pos), self.check_pos(goal, "goal")
        if p.shape != g.shape:
            raise ValueError(f"pos {list(p.shape)} and goal {list(g.shape)} must match.")
        here = self.distance(p, g)
        after = torch.stack(
            [self.distance(self.step(p, torch.full((len(p),), a)), g) for a in range(4)], -1
        )
        return after == (here - 1)[:, None]

    def observe(self, pos, goal) -> torch.Tensor:
        """Observation float ``[n, 2 * size * size]``: one-hot agent plane, then goal plane."""
        p, g = self.check_pos(pos), self.check_pos(goal, "goal")
        if p.shape != g.shape:
            raise ValueError(f"pos {list(p.shape)} and goal {list(g.shape)} must match.")
        s2 = self.size * self.size
        obs = torch.zeros(len(p), 2 * s2)
        rows = torch.arange(len(p))
        obs[rows, p[:, 0] * self.size + p[:, 1]] = 1.0
        obs[rows, s2 + g[:, 0] * self.size + g[:, 1]] = 1.0
        return obs

    def states(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every (agent, goal) pair of distinct free cells: ``(pos [m, 2], goal [m, 2])``,
        ``m = n_cells * (n_cells - 1)``, agent-major."""
        n = self.n_cells
        a, g = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        keep = a != g
        return self.cells[a[keep]], self.cells[g[keep]]

    def render(self, pos=None, goal=None) -> str:
        """The grid as text: ``#`` wall, ``A`` agent, ``G`` goal, ``.`` free."""
        rows = [["#" if w else "." for w in row] for row in self.walls.tolist()]
        for mark, cell, what in (("G", goal, "goal"), ("A", pos, "pos")):
            if cell is not None:
                r, c = self.check_pos(cell, what)[0].tolist()
                rows[r][c] = mark
        return "\n".join("".join(r) for r in rows)
