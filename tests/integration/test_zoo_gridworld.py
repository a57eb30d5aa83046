"""The shipped gridworld-agent: its card's numbers re-measured from the weights, with controls."""

from __future__ import annotations

import hashlib
import zlib

import pytest
import torch

from mechscope.probes import fit_probe
from mechscope.rl import AgentConfig, GridAgent, load_zoo_agent, redirect
from mechscope.rl.agent import zoo_rl_dir
from mechscope.zoo.recipes_rl import PROBE_HOOK, measure, redirect_episodes


@pytest.fixture(scope="module")
def loaded():
    return load_zoo_agent("gridworld-agent")


@pytest.fixture(scope="module")
def measured(loaded):
    return measure(*loaded)


def test_weights_are_the_cards_and_tiny(loaded):
    agent, world = loaded
    path = zoo_rl_dir() / "gridworld-agent.safetensors"
    raw = path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == agent.card["sha256"]
    assert len(zlib.compress(raw, 9)) < 60_000
    assert world.n_cells == 39 and int(world.walls.sum()) == 10
    with pytest.raises(ValueError, match=r"name='maze'.*available: \['gridworld-agent'\]"):
        load_zoo_agent("maze")


def test_card_numbers_are_re_measured(loaded, measured):
    card = loaded[0].card["metrics"]
    for key, value in measured.items():
        assert value == card[key], (key, value, card[key])


def test_agent_is_optimal_and_the_random_policy_is_not(measured):
    assert measured["success_rate"] == 1.0 and measured["step_ratio"] == 1.0
    assert measured["random_policy_success_rate"] < 0.8


def test_goal_edit_sends_the_agent_to_the_new_goal_and_a_random_push_does_not(measured):
    assert measured["redirect_to_new_goal"] > 0.85
    assert measured["redirect_random_control"] < 0.2


def test_untrained_agent_reads_positions_too_but_does_not_navigate(loaded):
    agent, world = loaded
    pos, goal = world.states()
    rand = GridAgent(AgentConfig(seed=1))
    _, cache = rand.run_with_cache(world.observe(pos, goal), names=[PROBE_HOOK])
    # one-hot observations: a random network keeps the goal linearly readable (the notebook's
    # caution), so probe accuracy alone is no evidence of learning
    assert fit_probe(cache[PROBE_HOOK], world.cell_index(goal)).test_accuracy > 0.9
    start, a, b = redirect_episodes(world, n=60)
    with pytest.raises(ValueError, match="kind='means' needs encodings"):
        redirect(agent, world, PROBE_HOOK, pos=start, goal=a, to=b)
    with pytest.raises(TypeError, match="kind='probe' needs probe="):
        redirect(agent, world, PROBE_HOOK, pos=start, goal=a, to=b, kind="probe")
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    enc = torch.zeros(world.n_cells, 32)
    redirect(agent, world, PROBE_HOOK, pos=start, goal=a, to=b, encodings=enc)
    assert all(torch.equal(before[k], v) for k, v in agent.state_dict().items())
    assert not any(p._forward_hooks for p in agent.modules())  # hooks removed
