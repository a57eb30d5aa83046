"""A hand-built boolean network, ``y = (a AND b) OR c``, for the patching-direction example.

Review section 4.3 (its AND/OR figure; Heimersheim & Nanda 2024): activation patching
answers different questions depending on its direction.

- **Denoising** (clean activation into the corrupted run) asks whether a node is
  *sufficient* to restore the clean output.
- **Noising** (corrupted activation into the clean run) asks whether a node is
  *necessary* for the clean output.

An OR gate has inputs that are each sufficient but none necessary; an AND gate has inputs
that are each necessary but none sufficient. This network has both, with fixed weights
and ReLUs, exact on ``{0, 1}`` inputs, so the patching results can be worked out by hand
(tests/unit/test_boolean.py does).

Nodes (hook points, named like the transformer's)::

    hook_a, hook_b, hook_c   the inputs
    hook_and                 relu(a + b - 1)          = a AND b
    hook_out                 1 - relu(1 - and - c)    = (a AND b) OR c

Example::

    net = BooleanNet()
    clean, corrupted = torch.tensor([[1., 1., 1.]]), torch.tensor([[0., 0., 0.]])
    _, cache = net.run_with_cache(clean)
    with net.hooks([("hook_c", lambda x, hook: cache["hook_c"])]):
        net(corrupted)  # tensor([1.]): restoring c alone restores the output
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from ..hooks import HookFn, HookPoint, NameFilter, installed_hooks, name_hook_points, resolve_names

NODES = ["hook_a", "hook_b", "hook_c", "hook_and", "hook_out"]

__all__ = ["NODES", "BooleanNet", "truth_table"]


class BooleanNet(nn.Module):
    """``y = (a AND b) OR c`` from fixed weights and ReLUs; input ``[batch, 3]`` -> ``[batch]``."""

    def __init__(self) -> None:
        super().__init__()
        # AND: relu(a + b - 1). OR: 1 - relu(1 - and - c). Exact on {0, 1} inputs.
        self.register_buffer("W_and", torch.tensor([1.0, 1.0]))
        self.register_buffer("b_and", torch.tensor(-1.0))
        self.register_buffer("W_or", torch.tensor([-1.0, -1.0]))
        self.register_buffer("b_or", torch.tensor(1.0))
        self.hook_a = HookPoint()
        self.hook_b = HookPoint()
        self.hook_c = HookPoint()
        self.hook_and = HookPoint()
        self.hook_out = HookPoint()
        self._hook_points = name_hook_points(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.dim() == 1:
            x = x[None]
        if x.dim() != 2 or x.shape[-1] != 3:
            raise ValueError(
                f"BooleanNet takes inputs of shape [batch, 3] (columns a, b, c), got {list(x.shape)}."
            )
        a, b, c = self.hook_a(x[:, 0]), self.hook_b(x[:, 1]), self.hook_c(x[:, 2])
        and_ab = self.hook_and(torch.relu(self.W_and[0] * a + self.W_and[1] * b + self.b_and))
        return self.hook_out(1 - torch.relu(self.W_or[0] * and_ab + self.W_or[1] * c + self.b_or))

    def hook_names(self) -> list[str]:
        """All hook point names, in forward order."""
        return list(self._hook_points)

    def hooks(self, fwd_hooks: Iterable[tuple[str | Callable[[str], bool], HookFn]]):
        """Context manager: ``with net.hooks([(name, fn), ...]): net(x)``."""
        return installed_hooks(self._hook_points, fwd_hooks)

    def run_with_cache(
        self, x: torch.Tensor, names: NameFilter = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Output and ``{name: activation}`` for the hook points in ``names`` (default all)."""
        cache: dict[str, torch.Tensor] = {}

        def save(act: torch.Tensor, hook: HookPoint) -> None:
            cache[hook.name] = act.detach().clone()

        with self.hooks([(n, save) for n in resolve_names(names, self.hook_names())]):
            out = self(x)
        return out, cache


def truth_table() -> tuple[torch.Tensor, torch.Tensor]:
    """All eight inputs ``[8, 3]`` (a, b, c) and the expected outputs ``[8]``."""
    x = torch.tensor(
        [[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=torch.float32
    )
    y = ((x[:, 0] * x[:, 1]) + x[:, 2]).clamp(max=1)
    return x, y
