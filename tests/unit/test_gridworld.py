"""mechscope.rl: the gridworld's dynamics, its BFS-optimal policy, seeding and input errors;
the agent's hooks and training; rollouts and the random policy."""

from __future__ import annotations

import re

import pytest
import torch

from mechscope.rl import AgentConfig, GridAgent, GridWorld, evaluate, rollout, train_agent


@pytest.fixture(scope="module")
def world():
    return GridWorld.random(7, n_walls=10, seed=0)


def _corridor():
    walls = torch.ones(3, 3, dtype=torch.bool)
    walls[0] = False  # a top row ...
    walls[:, 2] = False  # ... turning down the right column
    return GridWorld(walls)


def test_steps_move_one_cell_and_walls_and_edges_block():
    w = _corridor()
    pos = torch.tensor([[0, 0], [0, 0], [0, 0], [0, 2], [0, 2]])
    acts = torch.tensor([3, 0, 1, 1, 3])  # right, up (edge), down (wall), down, right (edge)
    assert w.step(pos, acts).tolist() == [[0, 1], [0, 0], [0, 0], [1, 2], [0, 2]]


def test_bfs_distances_follow_the_corridor_not_a_straight_line():
    w = _corridor()
    d = w.distance(torch.tensor([[0, 0]]), torch.tensor([[2, 2]]))
    assert d.tolist() == [4]  # Manhattan would also say 4; the blocked diagonal cells are walls
    assert w.distances[int(w.cell_index([2, 2])[0])][1, 0] == -1  # a wall is unreachable
    assert w.n_cells == 5 and w.d_obs == 18


def test_optimal_actions_lower_the_distance_by_one(world):
    pos, goal = world.states()
    best = world.optimal_actions(pos, goal)
    assert best.any(-1).all()  # every state that is not the goal has a way forward
    here = world.distance(pos, goal)
    for a in range(4):
        after = world.distance(world.step(pos, torch.full((len(pos),), a)), goal)
        assert torch.equal(after[best[:, a]], here[best[:, a]] - 1)
        assert (after[~best[:, a]] >= here[~best[:, a]]).all()


def test_following_the_optimal_policy_takes_the_bfs_distance(world):
    pos, goal = world.states()
    cur, steps = pos, torch.zeros(len(pos), dtype=torch.long)
    for _ in range(world.size**2):
        done = (cur == goal).all(-1)
        act = world.optimal_actions(cur, goal).float().argmax(-1)
        cur = torch.where(done[:, None], cur, world.step(cur, act))
        steps += (~done).long()
    assert (cur == goal).all() and torch.equal(steps, world.distance(pos, goal))


def test_layouts_are_seeded_and_connected():
    a, b = GridWorld.random(7, n_walls=10, seed=0), GridWorld.random(7, n_walls=10, seed=0)
    c = GridWorld.random(7, n_walls=10, seed=1)
    assert torch.equal(a.walls, b.walls) and not torch.equal(a.walls, c.walls)
    assert int(a.walls.sum()) == 10 and a.n_cells == 39
    assert (a.distances[:, a.cells[:, 0], a.cells[:, 1]] >= 0).all()
    assert len(a.states()[0]) == 39 * 38


def test_observation_is_two_one_hot_planes(world):
    obs = world.observe([[0, 1]], [[6, 6]])
    assert obs.shape == (1, 98) and obs.sum() == 2
    assert obs[0, 1] == 1 and obs[0, 49 + 48] == 1
    assert world.render([0, 1], [6, 6]).splitlines()[0][1] == "A"


def test_bad_inputs_name_the_argument_and_the_fix(world):
    with pytest.raises(ValueError, match=r"walls must be a square bool tensor"):
        GridWorld(torch.zeros(3, 4, dtype=torch.bool))
    split = torch.zeros(3, 3, dtype=torch.bool)
    split[1] = True
    with pytest.raises(ValueError, match="cannot reach each other"):
        GridWorld(split)
    with pytest.raises(ValueError, match=r"size=1"):
        GridWorld.random(1)
    with pytest.raises(ValueError, match=r"n_walls=60"):
        GridWorld.random(7, n_walls=60)
    with pytest.raises(ValueError, match=r"pos \[7, 0\] is off the 7x7 grid"):
        world.cell_index([7, 0])
    wall = world.walls.nonzero()[0].tolist()
    with pytest.raises(ValueError, match=re.escape(f"goal {wall} is a wall cell")):
        world.observe([world.cells[0].tolist()], [wall])
    with pytest.raises(TypeError, match="pos must hold integer"):
        world.step(torch.zeros(1, 2), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"actions hold 0..4"):
        world.step(world.cells[:2], torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="max_steps=0"):
        rollout(None, world, world.cells[:1], world.cells[1:2], max_steps=0)
    with pytest.raises(ValueError, match=r"obs has shape \[3, 5\]"):
        GridAgent()(torch.zeros(3, 5))


def test_agent_hooks_cache_and_leave_no_hook(world):
    agent = GridAgent(AgentConfig(seed=3))
    obs = world.observe(*[x[:5] for x in world.states()])
    logits, cache = agent.run_with_cache(obs)
    assert logits.shape == (5, 4)
    assert cache["blocks.1.hook_resid_pre"].shape == (5, 32)
    assert cache["blocks.0.mlp.hook_post"].shape == (5, 64)
    with agent.hooks([("hook_embed", lambda x, hook: torch.zeros_like(x))]):
        zeroed = agent(obs)
    assert not torch.allclose(zeroed, logits)
    assert torch.equal(agent(obs), logits)  # the hook is gone
    assert torch.equal(GridAgent(AgentConfig(seed=3)).embed.weight, agent.embed.weight)


def test_short_training_beats_the_random_policy_on_a_small_world():
    w = GridWorld.random(4, n_walls=3, seed=2)
    agent, losses = train_agent(
        w, cfg=AgentConfig(size=4, d_model=16, d_mlp=32), steps=150, lr=1e-2
    )
    assert losses[-1] < 0.5 * losses[0]
    trained, rand = evaluate(agent, w), evaluate(None, w, seed=0)
    assert trained["success_rate"] > 0.95 and trained["step_ratio"] < 1.1
    assert rand["step_ratio"] > 2 * trained["step_ratio"]
    again, _ = train_agent(w, cfg=AgentConfig(size=4, d_model=16, d_mlp=32), steps=150, lr=1e-2)
    assert torch.equal(again.unembed.weight, agent.unembed.weight)  # seeded, deterministic
    with pytest.raises(ValueError, match="cfg.size=7 but the world is 4x4"):
        train_agent(w, cfg=AgentConfig(size=7))
