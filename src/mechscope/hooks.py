"""Hook points: named places in a model where activations can be read or replaced.

A hook point is an identity module. Its address in the module tree is its name
(``blocks.0.attn.hook_pattern``), the convention TransformerLens made familiar, so
course material transfers. Every function here that installs a hook removes it in a
``finally``: a model leaves each call with exactly the hooks it entered with, even
when the forward pass raises.

A hook function has the signature ``fn(activation, hook) -> Tensor | None``.
``hook`` is the :class:`HookPoint` (``hook.name`` is its name). Returning a tensor
replaces the activation (it must keep the shape); returning ``None`` leaves it.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

HookFn = Callable[[torch.Tensor, "HookPoint"], torch.Tensor | None]
NameFilter = str | Sequence[str] | Callable[[str], bool] | None


class HookPoint(nn.Module):
    """Identity module marking a named activation. ``name`` is set by the model."""

    def __init__(self) -> None:
        super().__init__()
        self.name: str = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return repr(self.name)


def name_hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """Set ``.name`` on every HookPoint of ``model`` to its module path; return them by name."""
    points = {}
    for path, module in model.named_modules():
        if isinstance(module, HookPoint):
            module.name = path
            points[path] = module
    return points


def unknown_name_error(name: str, valid: Iterable[str], what: str = "hook point") -> KeyError:
    """A KeyError naming ``name`` and the closest valid names (STYLE.md habit 5)."""
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=5, cutoff=0.5)
    hint = f" Closest valid names: {', '.join(close)}." if close else ""
    sample = ", ".join(valid[:6]) + (", ..." if len(valid) > 6 else "")
    return KeyError(
        f"Unknown {what} {name!r}.{hint} This model has {len(valid)} {what}s ({sample}); "
        f"list them all with `model.hook_names()`."
    )


def resolve_names(names: NameFilter, valid: Sequence[str]) -> list[str]:
    """Turn a name, list of names, predicate or None (= all) into a list of valid names.

    Raises a KeyError listing the closest valid names for any unknown name.
    """
    if names is None:
        return list(valid)
    if callable(names):
        return [n for n in valid if names(n)]
    if isinstance(names, str):
        names = [names]
    valid_set = set(valid)
    for n in names:
        if n not in valid_set:
            raise unknown_name_error(n, valid)
    return list(dict.fromkeys(names))


def _wrap(fn: HookFn, point: HookPoint):
    def forward_hook(module, inputs, output):
        result = fn(output, point)
        if result is None:
            return None
        if not isinstance(result, torch.Tensor) or result.shape != output.shape:
            got = tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__
            raise ValueError(
                f"Hook on {point.name!r} returned {got}, expected a tensor of shape "
                f"{tuple(output.shape)} (or None to leave the activation unchanged)."
            )
        return result

    return forward_hook


@contextlib.contextmanager
def installed_hooks(
    points: dict[str, HookPoint],
    hooks: Iterable[tuple[str | Callable[[str], bool], HookFn]],
) -> Iterator[None]:
    """Install ``(name_or_predicate, fn)`` hooks for the duration of a ``with`` block.

    All names are checked before anything is installed, so a typo installs nothing.
    Handles are removed in a ``finally``, also when the block raises.
    """
    valid = list(points)
    plan: list[tuple[HookPoint, HookFn]] = []
    for name, fn in hooks:
        if not callable(fn):
            raise TypeError(
                f"Hook for {name!r} is {type(fn).__name__}, expected a function fn(activation, hook)."
            )
        for n in resolve_names(name, valid):
            plan.append((points[n], fn))
    handles = []
    try:
        for point, fn in plan:
            handles.append(point.register_forward_hook(_wrap(fn, point)))
        yield
    finally:
        for h in handles:
            h.remove()
