"""Training dynamics: metrics over checkpoints, and when they change.

Developmental interpretability (review §5.2) asks *when* during training a mechanism
forms. Olsson et al. 2022 found that induction heads form in a sudden phase change,
visible at the same time as a bump in the loss on repeated text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .models import zoo


def checkpoint_curve(
    name: str, metric: Callable, steps: Sequence[int] | None = None
) -> tuple[list[int], list]:
    """``metric(model)`` for each shipped checkpoint of zoo model ``name``: ``(steps, values)``."""
    steps = list(zoo.checkpoint_steps(name) if steps is None else steps)
    return steps, [metric(zoo.load_checkpoint(name, s)) for s in steps]


def crossing_step(steps: Sequence[int], values: Sequence[float], frac: float = 0.5) -> int:
    """First step at which ``values`` has moved ``frac`` of the way from its first to its last value.

    Works for rising curves (scores) and falling ones (losses) alike.
    """
    if len(steps) != len(values) or not steps:
        raise ValueError(
            f"steps and values must be non-empty and of equal length, got {len(steps)} and {len(values)}."
        )
    start, end = values[0], values[-1]
    target = start + frac * (end - start)
    rising = end >= start
    for s, v in zip(steps, values, strict=True):
        if (v >= target) if rising else (v <= target):
            return s
    return steps[-1]


def steepest_interval(steps: Sequence[int], values: Sequence[float]) -> tuple[int, int]:
    """The consecutive checkpoint pair ``(step_a, step_b)`` over which ``values`` changes most,
    in the direction of its overall change (a loss's biggest drop, a score's biggest rise)."""
    if len(steps) != len(values) or len(steps) < 2:
        raise ValueError(
            f"need at least two checkpoints with one value each, got {len(steps)} steps and {len(values)} values."
        )
    sign = 1.0 if values[-1] >= values[0] else -1.0
    deltas = [sign * (b - a) for a, b in zip(values[:-1], values[1:], strict=True)]
    i = max(range(len(deltas)), key=deltas.__getitem__)
    return steps[i], steps[i + 1]
