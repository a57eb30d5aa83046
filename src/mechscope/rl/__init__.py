"""Reinforcement learning (the review's §3.4 and §8, beyond language): a seeded gridworld, a
small residual-MLP policy with hook points, and the tools of the notebook.

    gridworld  GridWorld: walls, BFS distances, the optimal actions, observations
    agent      GridAgent (hook points blocks.{i}.hook_resid_pre, ...), train_agent (imitation
               of the BFS-optimal policy), load_zoo_agent
    rollout    rollout / evaluate (success rate, steps against the optimum, the random policy),
               redirect (push the stream along a goal probe every step; a random-direction control)
"""

from .agent import AgentConfig, GridAgent, load_zoo_agent, train_agent
from .gridworld import ACTIONS, GridWorld
from .rollout import RedirectResult, RolloutResult, evaluate, goal_encodings, redirect, rollout

__all__ = [
    "ACTIONS",
    "AgentConfig",
    "GridAgent",
    "GridWorld",
    "RedirectResult",
    "RolloutResult",
    "evaluate",
    "goal_encodings",
    "load_zoo_agent",
    "redirect",
    "rollout",
    "train_agent",
]
