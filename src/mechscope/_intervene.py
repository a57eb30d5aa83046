"""Private helpers of the interventions (ablation, steering, DAS, world models): one home each
for index arguments (ints, never bools), the one "add a direction to the residual" hook that
steering and world-model edits share, and the selection of positions from an activation."""

from __future__ import annotations

import operator
from collections.abc import Callable

import torch

from ._core import as_tokens
from .hooks import unknown_name_error


def is_bool(x) -> bool:
    """A Python / numpy bool or a bool tensor: never a valid layer, head or position."""
    if isinstance(x, torch.Tensor):
        return x.dtype == torch.bool
    return isinstance(x, bool) or type(x).__name__ == "bool_"


def index_list(x, what: str) -> list[int] | None:
    """An int or a non-empty list of ints (Python, numpy or tensor) -> list; None stays None."""
    if x is None:
        return None
    if is_bool(x) or (not isinstance(x, (str, bytes)) and _has_bool(x)):
        raise TypeError(
            f"{what}={x!r} is a bool; {what} takes an int or a list of ints (a bool would "
            f"silently mean index {int(x) if isinstance(x, bool) else '0/1'}). Pass e.g. "
            f"{what}=1 or {what}=[0, 2]."
        )
    try:
        return [operator.index(x)]  # one int (Python, numpy or 0-d tensor)
    except TypeError:
        pass
    try:
        out = [operator.index(i) for i in x]
    except TypeError:
        out = []
    if not out:
        raise TypeError(
            f"{what} must be an int or a non-empty list of ints, got {x!r} "
            f"(None = all). E.g. {what}=0 or {what}=[0, 2]."
        )
    return out


def is_scalar(x) -> bool:
    try:
        operator.index(x)
        return True
    except TypeError:
        return False


def _has_bool(x) -> bool:
    try:
        return any(is_bool(i) for i in x)
    except TypeError:
        return False


def check_range(idx: list[int], size: int, what: str, where: str) -> list[int]:
    """``idx`` reduced mod ``size``; a ValueError naming ``what`` when one is out of range."""
    bad = [i for i in idx if not -size <= i < size]
    if bad:
        raise ValueError(
            f"{what}={bad if len(bad) > 1 else bad[0]} is out of range: {where} has {size}; "
            f"valid: 0..{size - 1}, or negative from the end."
        )
    return [i % size for i in idx]


def as_inputs(model, x, name: str) -> torch.Tensor:
    """Tokens through the one coercion (``_core.as_tokens``); a float tensor passes as the
    inputs of a non-sequence model (e.g. ``[n, d]`` features), if it is not empty."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        if x.dim() == 0 or x.numel() == 0:
            raise ValueError(f"{name} is empty (shape {list(x.shape)}); pass at least one input.")
        return x
    return as_tokens(model, x, name=name)


def check_hook(model, hook, what: str = "hook") -> str:
    """A single known hook name."""
    if not isinstance(hook, str):
        raise TypeError(
            f"{what} must be one hook name such as 'blocks.1.hook_resid_pre', got "
            f"{type(hook).__name__} {hook!r}."
        )
    names = model.hook_names()
    if hook not in names:
        raise KeyError(f"{what}: {unknown_name_error(hook, names).args[0]}")
    return hook


def resolve_hooks(model, hooks) -> list[str]:
    """A hook name, a list of names or a predicate -> the matching names (none is an error)."""
    names = model.hook_names()
    if callable(hooks) and not isinstance(hooks, str):
        out = [n for n in names if hooks(n)]
        if not out:
            raise ValueError(
                "hooks: the predicate matched none of the model's hook points; list them with "
                "model.hook_names()."
            )
        return out
    given = [hooks] if isinstance(hooks, str) else hooks
    try:
        given = list(given)
    except TypeError:
        given = []
    if not given or not all(isinstance(n, str) for n in given):
        raise TypeError(
            f"hooks must be a hook name, a non-empty list of hook names or a predicate, got "
            f"{hooks!r}. E.g. 'blocks.1.attn.hook_z'; see model.hook_names()."
        )
    for n in given:
        check_hook(model, n, "hooks")
    return list(dict.fromkeys(given))


# ---- adding a direction to the residual stream ---------------------------------------------


def check_resid(hook: str, act: torch.Tensor, d: int, what: str = "vector") -> None:
    if act.dim() != 3:
        raise ValueError(
            f"hook {hook!r} has activations of shape {list(act.shape)}; adding a direction "
            "needs [batch, pos, d_model]. Use a residual-sized hook (blocks.L.hook_resid_pre / "
            "hook_resid_mid / hook_resid_post / hook_attn_out / hook_mlp_out)."
        )
    if act.shape[-1] != d:
        raise ValueError(
            f"The {what} has {d} entries but hook {hook!r} has width {act.shape[-1]} "
            f"(activations {list(act.shape)}). Use a {what} of that width, e.g. made at a "
            "hook of the same model and width (steering_vector, a probe's direction)."
        )


def add_hook(
    hook: str, delta: torch.Tensor, mask: torch.Tensor | None, what: str = "vector"
) -> Callable:
    """The hook that adds ``delta`` to ``[batch, pos, d]`` activations: ``act + delta * mask``.

    delta: ``[rows, d]``, one vector per row of the batch (``rows`` = batch, or 1 for all).
    mask: ``[rows or 1, pos]`` 0/1 where to add, or None for every position.
    """

    def fn(act, hook_point):
        check_resid(hook, act, delta.shape[-1], what)
        add = delta.to(act.device, act.dtype)[:, None, :]  # [rows, 1, d]
        if mask is not None:
            add = add * mask.to(act.device, act.dtype)[..., None]
        return act + add

    return fn


# ---- positions of an activation ------------------------------------------------------------


def select(act: torch.Tensor, hook: str, pos) -> torch.Tensor:
    """The vectors at ``pos``: ``[batch, d]`` for a ``[batch, d]`` activation or one position,
    ``[batch, len(pos), d]`` for a list of positions."""
    if act.dim() == 2:
        if pos is not None:
            raise ValueError(
                f"hook {hook!r} has activations [batch, d] = {list(act.shape)} (no positions), "
                f"but pos={pos} was given. Pass pos=None."
            )
        return act
    if act.dim() != 3:
        raise ValueError(
            f"hook {hook!r} has activations of shape {list(act.shape)}; interventions here take "
            "[batch, d] or [batch, pos, d] hooks (residual stream, MLP, attention out). For "
            "per-head hooks like hook_z, use the head's output in the residual stream instead."
        )
    n = act.shape[1]
    if pos is None:
        raise ValueError(
            f"hook {hook!r} has activations [batch, pos, d] = {list(act.shape)}; say which "
            f"position to intervene on with pos= (an int in [-{n}, {n}), e.g. pos=-1 for "
            "the last, or a list of them)."
        )
    idx = index_list(pos, "pos")
    many = not is_scalar(pos)
    check_range(idx, n, "pos", f"hook {hook!r} (positions)")
    if len({p % n for p in idx}) != len(idx):
        raise ValueError(f"pos={pos} names a position twice; list each position once.")
    return act[:, idx] if many else act[:, idx[0]]
