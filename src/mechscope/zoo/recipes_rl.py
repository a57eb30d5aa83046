"""Reinforcement-learning recipe (issue 19, the review's §3.4 / §8): ``gridworld-agent``.

``python -m mechscope.zoo.train gridworld-agent`` writes ``zoo/rl/gridworld-agent.safetensors``
and its card: a residual-MLP policy trained by imitation of the BFS-optimal policy on a seeded
7x7 gridworld with 10 wall cells. Full-batch, seeded, single-threaded: seconds.
"""

from __future__ import annotations

import time

import torch

from ..probes import fit_probe
from ..rl import AgentConfig, GridAgent, GridWorld, evaluate, goal_encodings, redirect, train_agent
from ._common import run_record

WORLD = {"size": 7, "n_walls": 10, "seed": 0}
PROBE_HOOK = "blocks.1.hook_resid_pre"
STEER_HOOK = "hook_embed"


def redirect_episodes(world: GridWorld, n: int = 300, seed: int = 0):
    """Seeded (start, observed goal A, new goal B) triples of distinct cells, ``[m, 2]`` each."""
    idx = torch.randint(world.n_cells, (n, 3), generator=torch.Generator().manual_seed(seed))
    keep = (idx[:, 0] != idx[:, 1]) & (idx[:, 0] != idx[:, 2]) & (idx[:, 1] != idx[:, 2])
    return tuple(world.cells[idx[keep, i]] for i in range(3))


def measure(agent: GridAgent, world: GridWorld) -> dict:
    """The card's numbers; tests/integration/test_zoo_gridworld.py re-measures them."""
    pos, goal = world.states()
    _, cache = agent.run_with_cache(world.observe(pos, goal), names=[PROBE_HOOK])
    ev, rand = evaluate(agent, world), evaluate(None, world)
    start, a, b = redirect_episodes(world)
    enc = goal_encodings(agent, world, STEER_HOOK)
    steer = {
        k: redirect(agent, world, STEER_HOOK, pos=start, goal=a, to=b, kind=k, encodings=enc)
        for k in ("means", "random")
    }
    return {
        "success_rate": round(ev["success_rate"], 4),
        "step_ratio": round(ev["step_ratio"], 4),
        "random_policy_success_rate": round(rand["success_rate"], 4),
        "agent_probe_accuracy": round(
            fit_probe(cache[PROBE_HOOK], world.cell_index(pos)).test_accuracy, 4
        ),
        "goal_probe_accuracy": round(
            fit_probe(cache[PROBE_HOOK], world.cell_index(goal)).test_accuracy, 4
        ),
        "redirect_to_new_goal": round(steer["means"].frac_to, 4),
        "redirect_random_control": round(steer["random"].frac_to, 4),
        "n_redirect_episodes": len(start),
    }


def train_gridworld_agent(steps: int = 1000, seed: int = 0):
    """Imitation of the BFS-optimal policy; returns ``(agent, card)``."""
    world = GridWorld.random(**WORLD)
    cfg = AgentConfig(size=world.size, seed=seed)
    lr = 1e-2
    t0 = time.perf_counter()
    agent, losses = train_agent(world, cfg=cfg, steps=steps, lr=lr)
    wall = time.perf_counter() - t0
    card = {
        "name": "gridworld-agent",
        "description": "Residual-MLP policy (d_model 32, 2 blocks of 64 ReLU neurons) on a seeded "
        "7x7 gridworld with 10 walls; imitation of the BFS-optimal policy.",
        "config": cfg.to_dict(),
        "world": WORLD,
        "data": {
            "recipe": "every (agent, goal) pair of distinct free cells (1,482 states), full batch; "
            "target: uniform over the actions that lower the BFS distance by one",
        },
        "training": run_record(
            seed,
            steps,
            {"name": "AdamW", "lr": lr, "weight_decay": 0.01, "betas": [0.9, 0.999]},
            wall,
            loss="cross-entropy against the optimal-action distribution",
            final_loss=round(losses[-1], 4),
        ),
        "metrics": {
            **measure(agent, world),
            "probe_hook": PROBE_HOOK,
            "steer_hook": STEER_HOOK,
        },
        "references": [
            "Mini et al. 2023, Understanding and Controlling a Maze-Solving Policy Network",
            "Ivanitskiy et al. 2023, Structured World Representations in Maze-Solving Transformers",
        ],
    }
    return agent, card
