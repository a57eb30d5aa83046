"""Leave every model a check touches as it was: hooks, train/eval mode, gradients, weights."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["models_in", "untouched"]

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)
# Snapshot the weights of models up to this many numbers (zoo models are far smaller).
_MAX_SNAPSHOT = 50_000_000


def models_in(value: Any, found: list[nn.Module] | None = None) -> list[nn.Module]:
    """Every ``nn.Module`` in ``value`` (itself, or inside tuples, lists and dicts)."""
    found = [] if found is None else found
    if isinstance(value, nn.Module):
        if all(m is not value for m in found):
            found.append(value)
    elif isinstance(value, (tuple, list)):
        for v in value:
            models_in(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            models_in(v, found)
    return found


def _snapshot(model: nn.Module) -> dict[str, Any]:
    modules = list(model.modules())
    params = list(model.parameters())
    buffers = list(model.buffers())
    small = sum(p.numel() for p in params) + sum(b.numel() for b in buffers) <= _MAX_SNAPSHOT
    return {
        "modules": modules,
        "hooks": [
            {name: set(getattr(m, name, {}).keys()) for name in _HOOK_DICTS} for m in modules
        ],
        "training": [m.training for m in modules],
        "params": params,
        "requires_grad": [p.requires_grad for p in params],
        "grads": [p.grad for p in params],
        "values": [p.detach().clone() for p in params] if small else None,
        "buffers": buffers,
        "buffer_values": [b.detach().clone() for b in buffers] if small else None,
    }


def _restore(snap: dict[str, Any]) -> None:
    for m, keys, training in zip(snap["modules"], snap["hooks"], snap["training"], strict=True):
        for name, before in keys.items():
            hooks = getattr(m, name, None)
            if hooks is None:
                continue
            for k in [k for k in hooks if k not in before]:
                del hooks[k]
                for extra in (
                    "_forward_hooks_with_kwargs",
                    "_forward_hooks_always_called",
                    "_forward_pre_hooks_with_kwargs",
                ):
                    getattr(m, extra, {}).pop(k, None)
        m.training = training
    with torch.no_grad():
        for i, p in enumerate(snap["params"]):
            p.requires_grad_(snap["requires_grad"][i])
            p.grad = snap["grads"][i]
            if snap["values"] is not None and not torch.equal(p, snap["values"][i]):
                p.copy_(snap["values"][i])
        if snap["buffer_values"] is not None:
            for b, v in zip(snap["buffers"], snap["buffer_values"], strict=True):
                if b.shape == v.shape and not torch.equal(b, v):
                    b.copy_(v)


@contextlib.contextmanager
def untouched(value: Any) -> Iterator[None]:
    """Run the block, then undo what it did to the models in ``value``, even on error.

    Also runs it under a forked random-number generator seeded with 0, so the student's and
    the reference's functions see the same random numbers and the global RNG is not moved.
    """
    snaps = [_snapshot(m) for m in models_in(value)]
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            yield
    finally:
        for s in snaps:
            _restore(s)
