"""Hook points: named places in a model where activations can be read or replaced.

A hook point is an identity module. Its address in the module tree is its name
(``blocks.0.attn.hook_pattern``), the convention TransformerLens made familiar, so
course material transfers. Every function here that installs a hook removes it in a
``finally``: a model leaves each call with exactly the hooks it entered with, even
when the forward pass raises.

A hook function has the signature ``fn(activation, hook) -> Tensor | None``.
``hook`` is the :class:`HookPoint` (``hook.name`` is its name). Returning a tensor
replaces the activation (it must keep the shape and dtype); returning ``None`` leaves it.

A hook that only reads (stores the activation somewhere, always returns ``None``) may say so
with the attribute ``fn.mechscope_read_only = True`` (``run_with_cache``'s hooks do). A
backend whose forward pass runs elsewhere (a remote nnsight model: NDIF's server) then brings
the activation back and calls ``fn`` here after the pass, in forward order, so what it stores
lands on this machine; every hook without the mark runs where the model runs.

One model, one run at a time: :func:`model_lock` gives each model a re-entrant lock that
its ``hooks(...)`` contexts and forward passes hold, so two threads sharing a model never
see each other's hooks (one thread's cache never holds the other's activations).
"""

from __future__ import annotations

import contextlib
import difflib
import threading
import weakref
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

    # ---- TransformerLens' HookPoint methods (hooks that stay until removed) ----------

    def layer(self) -> int:
        """The block index in the name: ``blocks.3.attn.hook_z`` -> 3 (TransformerLens')."""
        parts = self.name.split(".")
        if len(parts) < 2 or parts[0] != "blocks" or not parts[1].isdigit():
            raise ValueError(f"Hook point {self.name!r} is not inside a block; it has no layer.")
        return int(parts[1])

    def add_hook(self, hook: HookFn, dir: str = "fwd", is_permanent: bool = False):
        """Install ``hook(activation_or_grad, hook_point)`` until :meth:`remove_hooks`.

        dir: ``"fwd"`` (the activation; a returned tensor replaces it) or ``"bwd"`` (the
        gradient of the loss with respect to the activation, during ``backward()``; a
        returned tensor replaces it). Prefer ``model.hooks([...])``, which removes its
        hooks by itself; this is TransformerLens' ``add_hook`` for course code that calls it.
        """
        if dir not in ("fwd", "bwd"):
            raise ValueError(f"dir={dir!r}; expected 'fwd' or 'bwd'.")
        if not callable(hook):
            raise TypeError(f"add_hook: hook is {type(hook).__name__}, expected fn(act, hook).")
        fn = _wrap(hook, self) if dir == "fwd" else _grad_hook(hook, self)
        handle = self.register_forward_hook(fn)
        self.__dict__.setdefault("_kept", []).append((handle, dir, is_permanent))
        return handle

    def remove_hooks(self, dir: str = "both", including_permanent: bool = False) -> None:
        """Remove the hooks :meth:`add_hook` installed (``dir``: "fwd", "bwd" or "both")."""
        if dir not in ("fwd", "bwd", "both"):
            raise ValueError(f"dir={dir!r}; expected 'fwd', 'bwd' or 'both'.")
        keep = []
        for handle, d, permanent in self.__dict__.get("_kept", []):
            if dir in (d, "both") and (including_permanent or not permanent):
                handle.remove()
            else:
                keep.append((handle, d, permanent))
        self.__dict__["_kept"] = keep


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


def resolve_names(names: NameFilter, valid: Sequence[str], *, what: str = "names") -> list[str]:
    """Turn a name, list of names, predicate or None (= all) into a list of valid names.

    what: the argument being resolved (``"names"``, ``"fwd_hooks"``, ``"hooks"``), for messages.
    Raises a KeyError listing the closest valid names for any unknown name, and a ValueError
    when a predicate or a list matches no hook point at all (a silent no-op hides a typo).
    """
    valid = list(valid)
    if names is None:
        return valid
    if callable(names):
        out = [n for n in valid if names(n)]
    else:
        if isinstance(names, str):
            names = [names]
        elif not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
            raise TypeError(
                f"{what}={names!r}: expected a hook name, a list of names, or a predicate "
                f"fn(name) -> bool."
            )
        valid_set = set(valid)
        for n in names:
            if n not in valid_set:
                err = unknown_name_error(n, valid)
                raise KeyError(f"{what}: {err.args[0]}")
        out = list(dict.fromkeys(names))
    if not out:
        sample = ", ".join(valid[:4]) + (", ..." if len(valid) > 4 else "")
        raise ValueError(
            f"{what}={names!r} matches no hook point. Valid names include {sample}; list them "
            f"all with `model.hook_names()`."
        )
    return out


_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model) -> threading.RLock:
    """The re-entrant lock that serialises runs of ``model`` across threads.

    A wrapped Hugging Face model shares one lock with every wrapper of it (``model.hf_model``).
    """
    key = getattr(model, "hf_model", None)
    key = key if isinstance(key, nn.Module) else model
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = threading.RLock()
        return lock


def _wrap(fn: HookFn, point: HookPoint):
    def forward_hook(module, inputs, output):
        result = fn(output, point)
        if result is None:
            return None
        ok = (
            isinstance(result, torch.Tensor)
            and result.shape == output.shape
            and result.dtype == output.dtype
        )
        if not ok:
            got = (
                f"shape {tuple(result.shape)}, dtype {result.dtype}"
                if isinstance(result, torch.Tensor)
                else type(result).__name__
            )
            raise ValueError(
                f"Hook on {point.name!r} returned {got}; expected a tensor of shape "
                f"{tuple(output.shape)} and dtype {output.dtype} (or None to leave the activation "
                f"unchanged). Return e.g. new.to(act.dtype).reshape(act.shape)."
            )
        return result

    forward_hook.mechscope_read_only = getattr(fn, "mechscope_read_only", False) is True
    return forward_hook


def _grad_hook(fn: HookFn, point: HookPoint):
    """A forward hook that asks autograd to call ``fn(grad, point)`` on this activation's
    gradient (a returned tensor replaces the gradient). It lives on the run's own tensors,
    so it fires in a backward pass through that run only, and never in a later run."""

    def forward_hook(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda grad: fn(grad, point))

    return forward_hook


def backward_as_forward(bwd_hooks) -> list:
    """``[(name or predicate, fn(grad, hook))]`` -> forward hooks for :func:`installed_hooks`
    that register ``fn`` on the gradient of each activation (see :func:`_grad_hook`)."""
    out = []
    for entry in bwd_hooks:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and callable(entry[1])):
            raise TypeError(f"bwd_hooks entries are (name or predicate, fn) pairs, got {entry!r}.")
        name, fn = entry
        out.append((name, lambda act, hook, fn=fn: _grad_hook(fn, hook)(None, None, act)))
    return out


@contextlib.contextmanager
def installed_hooks(
    points: dict[str, HookPoint],
    hooks: Iterable[tuple[str | Callable[[str], bool], HookFn]],
) -> Iterator[None]:
    """Install ``(name_or_predicate, fn)`` hooks for the duration of a ``with`` block.

    All names are checked before anything is installed, so a typo installs nothing.
    Handles are removed in a ``finally``, also when the block raises (KeyboardInterrupt too).
    """
    valid = list(points)
    one_pair = isinstance(hooks, tuple) and len(hooks) == 2 and callable(hooks[1])
    if isinstance(hooks, str) or callable(hooks) or one_pair:
        raise TypeError(
            f"fwd_hooks must be a list of (name or predicate, fn) pairs, got {hooks!r}; "
            f"e.g. [('blocks.0.hook_resid_pre', fn)]."
        )
    plan: list[tuple[HookPoint, HookFn]] = []
    for entry in hooks:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
            raise TypeError(f"fwd_hooks entries are (name or predicate, fn) pairs, got {entry!r}.")
        name, fn = entry
        if not callable(fn):
            raise TypeError(
                f"fwd_hooks: the hook for {name!r} is {type(fn).__name__}, expected a function "
                f"fn(activation, hook)."
            )
        for n in resolve_names(name, valid, what="fwd_hooks"):
            plan.append((points[n], fn))
    handles = []
    try:
        for point, fn in plan:
            handles.append(point.register_forward_hook(_wrap(fn, point)))
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def locked_hooks(
    model,
    points: dict[str, HookPoint],
    fwd_hooks: Iterable[tuple[str | Callable[[str], bool], HookFn]],
) -> Iterator[None]:
    """:func:`installed_hooks` while holding ``model``'s lock (:func:`model_lock`), so no
    other thread runs ``model`` with these hooks in."""
    with model_lock(model), installed_hooks(points, fwd_hooks):
        yield
