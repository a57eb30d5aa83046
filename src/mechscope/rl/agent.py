"""A small residual-MLP policy for the gridworld, with named hook points.

The observation (two one-hot planes, :meth:`GridWorld.observe`) is embedded into a residual
stream of width ``d_model``; each block adds an MLP's output to it; the final stream is
unembedded into four action logits. The hook points are mechscope's own
:class:`~mechscope.HookPoint` modules, so ``agent.run_with_cache``, ``agent.hooks`` and the
probes work on it as on a transformer (one row per state, no position axis)::

    hook_input                 [batch, 2 * size * size]   the observation
    hook_embed                 [batch, d_model]           embedded observation
    blocks.{i}.hook_resid_pre  [batch, d_model]           the stream entering block i
    blocks.{i}.mlp.hook_post   [batch, d_mlp]             the MLP's ReLU neurons
    blocks.{i}.hook_resid_post [batch, d_model]
    hook_logits                [batch, 4]                 up, down, left, right

:func:`train_agent` trains it by imitation of the BFS-optimal policy (cross-entropy against the
uniform distribution over the optimal actions, on every (agent, goal) pair). Seeded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .._small_models import NoAttentionFields, with_weights, zoo_card
from ..cache import HookPointsMixin
from ..hooks import HookPoint, name_hook_points
from .gridworld import GridWorld

__all__ = ["AgentConfig", "GridAgent", "load_zoo_agent", "train_agent"]


@dataclass(frozen=True)
class AgentConfig(NoAttentionFields):
    size: int = 7  # the grid's side; the observation has 2 * size * size entries
    d_model: int = 32
    d_mlp: int = 64
    n_layers: int = 2
    n_actions: int = 4
    seed: int = 0  # seeds the initial weights (a private generator)

    # The HookedModel protocol's fields, for tools that read them (n_heads, d_head and n_ctx
    # are 0: NoAttentionFields).
    @property
    def d_vocab(self) -> int:
        return self.n_actions

    def to_dict(self) -> dict:
        return asdict(self)


class _MLP(nn.Module):
    def __init__(self, d_model: int, d_mlp: int):
        super().__init__()
        self.fc_in = nn.Linear(d_model, d_mlp)
        self.hook_post = HookPoint()
        self.fc_out = nn.Linear(d_mlp, d_model)

    def forward(self, x):
        return self.fc_out(self.hook_post(F.relu(self.fc_in(x))))


class _Block(nn.Module):
    def __init__(self, d_model: int, d_mlp: int):
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.mlp = _MLP(d_model, d_mlp)
        self.hook_resid_post = HookPoint()

    def forward(self, x):
        x = self.hook_resid_pre(x)
        return self.hook_resid_post(x + self.mlp(x))


class GridAgent(HookPointsMixin, nn.Module):
    """The policy network; hook names in the module docstring.

    ``agent(obs)``: obs ``[batch, 2 * size * size]`` -> action logits ``[batch, 4]``.
    """

    def __init__(self, cfg: AgentConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or AgentConfig()
        with torch.random.fork_rng(devices=[]):  # seeded weights, the global RNG left as it was
            torch.manual_seed(cfg.seed)
            self.hook_input = HookPoint()
            self.embed = nn.Linear(2 * cfg.size * cfg.size, cfg.d_model)
            self.hook_embed = HookPoint()
            self.blocks = nn.ModuleList(
                [_Block(cfg.d_model, cfg.d_mlp) for _ in range(cfg.n_layers)]
            )
            self.unembed = nn.Linear(cfg.d_model, cfg.n_actions)
            self.hook_logits = HookPoint()
        self._points = name_hook_points(self)
        self.card: dict = {}
        self.eval()

    def to_tokens(self, obs) -> torch.Tensor:
        """``obs`` as a float ``[batch, 2 * size * size]`` tensor (the protocol's coercion)."""
        x = torch.as_tensor(obs)
        x = x.float() if not x.is_floating_point() else x
        x = x[None] if x.ndim == 1 else x
        d = 2 * self.cfg.size**2
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(
                f"obs has shape {list(torch.as_tensor(obs).shape)}; expected [batch, {d}] "
                "observations. Fix: make them with world.observe(pos, goal)."
            )
        return x

    def to_str_tokens(self, tokens) -> list[str]:
        raise TypeError("GridAgent reads observations, which have no tokens; label states by cell.")

    def forward(self, obs) -> torch.Tensor:
        x = self.hook_embed(self.embed(self.hook_input(self.to_tokens(obs))))
        for block in self.blocks:
            x = block(x)
        return self.hook_logits(self.unembed(x))


def _imitation_targets(world: GridWorld):
    pos, goal = world.states()
    best = world.optimal_actions(pos, goal).float()
    return world.observe(pos, goal), best / best.sum(-1, keepdim=True)


def train_agent(
    world: GridWorld, *, cfg: AgentConfig | None = None, steps: int = 1500, lr: float = 3e-3
) -> tuple[GridAgent, list[float]]:
    """Imitation of the BFS-optimal policy on every (agent, goal) state of ``world``.

    Full-batch AdamW on the cross-entropy against the uniform distribution over the optimal
    actions; the weights are seeded by ``cfg.seed`` and the run is deterministic (one thread
    gives the same floats on every machine). Returns ``(agent in eval mode, losses)``.
    """
    cfg = cfg or AgentConfig(size=world.size)
    if cfg.size != world.size:
        raise ValueError(f"cfg.size={cfg.size} but the world is {world.size}x{world.size}.")
    if steps < 1:
        raise ValueError(f"steps={steps}; expected a positive number of optimiser steps.")
    obs, target = _imitation_targets(world)
    agent = GridAgent(cfg).train()
    opt = torch.optim.AdamW(agent.parameters(), lr=lr, weight_decay=0.01)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(agent(obs), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return agent.eval(), losses


def zoo_rl_dir() -> Path:
    return Path(str(resources.files("mechscope") / "zoo" / "rl"))


def load_zoo_agent(name: str = "gridworld-agent") -> tuple[GridAgent, GridWorld]:
    """A shipped agent (``zoo/rl/NAME.safetensors`` + card) and the world it was trained on."""
    path, card = zoo_card(zoo_rl_dir(), name, "agent", "gridworld-agent")
    world = GridWorld.random(**card["world"])
    return with_weights(GridAgent(AgentConfig(**card["config"])), path, card), world
