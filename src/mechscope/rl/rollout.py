"""Episodes in the gridworld: greedy rollouts, evaluation against the optimum and a random
policy, and the goal intervention (the agent steered to a goal it does not observe).

:func:`rollout` runs ``n`` episodes in one batch: at each step every agent observes
``(pos, goal)``, the policy's top action moves it, and an episode stops when its agent stands on
its goal (or on its ``stop`` cell). Hooks passed as ``fwd_hooks`` stay in for every step, so an
edit of the hidden state acts through the whole walk; they are removed in a ``finally``.

:func:`redirect` is the intervention of the notebook, after Mini et al. 2023's "cheese vector"
and Li et al. 2023's probe edits: at ``hook``, every step, the stream is pushed along a goal
probe's class-difference directions until the probe reads the new goal ``to``
(:func:`mechscope.world.push_to_class`); ``kind="random"`` pushes by the same amount along a
random direction (the control).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from ..probes import Probe
from ..world import StateProbe, push_to_class
from .gridworld import GridWorld

__all__ = ["RedirectResult", "RolloutResult", "evaluate", "goal_encodings", "redirect", "rollout"]


@dataclass(frozen=True)
class RolloutResult:
    """``n`` episodes. paths ``[n, max_steps + 1, 2]`` (a finished agent stays put); steps
    ``[n]`` (steps taken until it stopped, ``max_steps`` if it never did); end ``[n, 2]``;
    reached ``[n]`` bool (ended on its goal); stopped ``[n]`` bool (ended on its stop cell)."""

    paths: torch.Tensor = field(repr=False)
    steps: torch.Tensor = field(repr=False)
    end: torch.Tensor = field(repr=False)
    reached: torch.Tensor = field(repr=False)
    stopped: torch.Tensor = field(repr=False)

    @property
    def values(self) -> torch.Tensor:
        return self.steps

    @property
    def success_rate(self) -> float:
        return float(self.reached.float().mean())


def rollout(
    agent, world: GridWorld, pos, goal, *, max_steps: int | None = None, fwd_hooks=(), stop=None,
    seed: int | None = None,
) -> RolloutResult:  # fmt: skip
    """Run one episode per row of pos / goal ``[n, 2]``.

    agent: a :class:`GridAgent` (greedy: its top action), or ``None`` for the uniformly random
    policy (seeded by ``seed``). max_steps: default ``4 * size * size``. stop: optional cells
    ``[n, 2]`` that also end an episode. fwd_hooks: ``[(name, fn)]`` kept in for every step.
    """
    p, g = world.check_pos(pos), world.check_pos(goal, "goal")
    if p.shape != g.shape:
        raise ValueError(f"pos {list(p.shape)} and goal {list(g.shape)} must have one row each.")
    s = world.check_pos(stop, "stop") if stop is not None else g
    if s.shape != g.shape:
        raise ValueError(f"stop {list(s.shape)} must match goal {list(g.shape)}.")
    max_steps = 4 * world.size**2 if max_steps is None else max_steps
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps={max_steps!r}; expected a positive int.")
    if agent is None and fwd_hooks:
        raise ValueError("fwd_hooks need an agent; the random policy (agent=None) has no hooks.")
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    paths = [p]
    done = ((p == g).all(-1)) | ((p == s).all(-1))
    steps = torch.zeros(len(p), dtype=torch.long)

    def act(cur):
        if agent is None:
            return torch.randint(4, (len(cur),), generator=gen)
        return agent(world.observe(cur, g)).argmax(-1)

    with (
        torch.no_grad(),
        agent.hooks(list(fwd_hooks)) if agent is not None else contextlib.nullcontext(),
    ):
        cur = p
        for _ in range(max_steps):
            if done.all():
                paths.append(cur)
                continue
            nxt = world.step(cur, act(cur))
            cur = torch.where(done[:, None], cur, nxt)
            steps = steps + (~done).long()
            done = done | (cur == g).all(-1) | (cur == s).all(-1)
            paths.append(cur)
    return RolloutResult(
        paths=torch.stack(paths, 1),
        steps=steps,
        end=cur,
        reached=(cur == g).all(-1),
        stopped=(cur == s).all(-1) & (stop is not None),
    )


def evaluate(agent, world: GridWorld, *, max_steps: int | None = None, seed: int = 0) -> dict:
    """Every (agent, goal) state of ``world`` as a start: success rate, mean steps of the
    successful episodes and their mean optimal steps (BFS), and the ratio of the two.
    ``agent=None`` evaluates the random policy (seeded)."""
    pos, goal = world.states()
    res = rollout(agent, world, pos, goal, max_steps=max_steps, seed=seed)
    ok = res.reached
    opt = world.distance(pos, goal).float()
    steps = res.steps.float()
    return {
        "success_rate": res.success_rate,
        "mean_steps": float(steps[ok].mean()) if ok.any() else float("nan"),
        "mean_optimal_steps": float(opt[ok].mean()) if ok.any() else float("nan"),
        "step_ratio": float(steps[ok].sum() / opt[ok].sum()) if ok.any() else float("nan"),
        "n_episodes": len(pos),
    }


@dataclass(frozen=True)
class RedirectResult:
    """The steered episodes: ``frac_to`` ended on the new goal, ``frac_goal`` on the observed one;
    ``mean_amount``: the mean norm of one step's push; ``rollout``: the episodes."""

    frac_to: float
    frac_goal: float
    mean_amount: float
    rollout: RolloutResult = field(repr=False)

    @property
    def values(self) -> torch.Tensor:
        return self.rollout.stopped


def goal_encodings(agent, world: GridWorld, hook: str) -> torch.Tensor:
    """Each goal's encoding at ``hook``: the mean activation over every state with that goal,
    ``[n_cells, d]`` (row ``i`` = goal ``world.cells[i]``)."""
    pos, goal = world.states()
    _, cache = agent.run_with_cache(world.observe(pos, goal), names=[hook])
    acts = cache[hook].float()
    if acts.ndim != 2:
        raise ValueError(f"hook {hook!r} gives {list(acts.shape)}; expected [batch, d] rows.")
    idx = world.cell_index(goal)
    sums = torch.zeros(world.n_cells, acts.shape[1]).index_add_(0, idx, acts)
    return sums / torch.bincount(idx, minlength=world.n_cells)[:, None]


def redirect(
    agent, world: GridWorld, hook: str, *, pos, goal, to, kind: str = "means", encodings=None,
    probe: Probe | None = None, margin: float = 2.0, seed: int = 0, max_steps: int | None = None,
) -> RedirectResult:  # fmt: skip
    """Walk from ``pos`` towards an observed ``goal`` with the stream at ``hook`` edited every
    step towards the goal cell ``to`` (pos, goal, to ``[n, 2]``); an episode ends on goal or to.

    kind: ``"means"`` adds ``encodings[to] - encodings[goal]`` (from :func:`goal_encodings`:
    the representation moved from goal A's encoding to B's); ``"random"`` adds a random unit
    direction (seeded) scaled to that same norm, per row (the control); ``"probe"`` pushes along
    ``probe``'s class-difference directions (a goal-cell :class:`~mechscope.probes.Probe`) until
    it reads ``to`` by ``margin`` (:func:`mechscope.world.push_to_class`).
    """
    if kind not in ("means", "random", "probe"):
        raise ValueError(f"kind={kind!r}; expected 'means', 'random' (the control) or 'probe'.")
    g, target = world.cell_index(goal), world.cell_index(to)
    if kind == "probe":
        if not isinstance(probe, Probe) or probe.n_classes != world.n_cells:
            raise TypeError(
                f"kind='probe' needs probe=, a Probe from mechscope.probes.fit_probe with goal "
                f"cells (world.cell_index) as its {world.n_cells} classes; got {probe!r:.60}."
            )
        state = StateProbe(probe.weight[None].float(), probe.bias[None].float(), hook)
    else:
        enc = torch.as_tensor(encodings) if encodings is not None else None
        if enc is None or enc.ndim != 2 or enc.shape[0] != world.n_cells:
            raise ValueError(
                f"kind={kind!r} needs encodings=[n_cells={world.n_cells}, d] from "
                "goal_encodings(agent, world, hook)."
            )
        delta = (enc[target] - enc[g]).float()  # [n, d]
        if kind == "random":
            gen = torch.Generator().manual_seed(seed)
            r = torch.randn(delta.shape, generator=gen)
            delta = r / r.norm(dim=-1, keepdim=True) * delta.norm(dim=-1, keepdim=True)
    amounts = []

    def push(acts, hook_point):
        if kind == "probe":
            zero = torch.zeros(len(acts), dtype=torch.long)
            unit, amount = push_to_class(state, acts, zero, target, margin=margin)
            amounts.append(amount)
            return acts + amount[:, None] * unit
        amounts.append(delta.norm(dim=-1))
        return acts + delta

    res = rollout(agent, world, pos, goal, max_steps=max_steps, fwd_hooks=[(hook, push)], stop=to)
    return RedirectResult(
        frac_to=float(res.stopped.float().mean()),
        frac_goal=float(res.reached.float().mean()),
        mean_amount=float(torch.cat(amounts).mean()) if amounts else 0.0,
        rollout=res,
    )
