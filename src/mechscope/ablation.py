"""Ablation: what happens to the behaviour when an activation is taken away?

Replace an activation by a value that carries no information about the input and measure
what the model loses (review section 4.3 and 7; the choice of the replacement value is the
whole method, see Chan et al. 2022, "Causal Scrubbing", and Heimersheim & Nanda 2024,
"How to use and interpret activation patching"):

- ``kind="zero"``: replace by 0 (Olsson et al. 2022 knock out induction heads this way). Easy,
  but 0 may be a value the model never sees, so the damage can come from pushing the model
  off its input distribution rather than from removing information.
- ``kind="mean"``: replace by the mean over a reference dataset, per position (Wang et al.
  2022, IOI). Stays near the typical activation, but the mean itself may be atypical.
- ``kind="resample"``: replace by the activation of a *different* input (Chan et al. 2022).
  Always a value the model really produces; only the information specific to *this* input
  is removed. By default another prompt of the same batch (a seeded derangement), or
  ``reference`` tokens.

Three entry points:

- :func:`ablate`: one ablated forward pass, returns logits.
- :func:`ablation_hooks`: a context manager, for ``with ablation_hooks(...): model(tokens)``.
- :func:`ablation_sweep`: ablate every head (or position) of every layer in turn, with the
  batching of :func:`mechscope.patching.activation_patch` (many ablated copies per forward
  pass, chunked by ``memory_mb`` / ``max_batch``); returns a
  :class:`~mechscope.patching.PatchResult`.

Selections: ``heads`` picks heads on hooks with a head axis (``attn.hook_q / k / v / z``:
``[batch, pos, head, d_head]``; ``attn.hook_attn_scores / hook_pattern``:
``[batch, head, query_pos, key_pos]``); ``positions`` picks positions (query positions for
patterns). The model is left as it came (hooks, weights, mode), also when a call raises.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator

import torch

from ._core import as_tokens, check_site, metric_values
from ._patch_runner import TargetRun
from ._patching_sites import SITES, hook_name
from .hooks import unknown_name_error
from .metrics import Metric
from ._sweep import PatchResult, labelled, sweep

KINDS = ("zero", "mean", "resample")

__all__ = ["KINDS", "ablate", "ablation_hooks", "ablation_sweep", "ablation_values"]


# ---- checks -------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {', '.join(map(repr, KINDS))}.")


def _names(model, names) -> list[str]:
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(
            f"names must be a hook name or a non-empty list of hook names, got {names!r}. "
            "E.g. 'blocks.1.attn.hook_z'; see model.hook_names()."
        )
    valid = model.hook_names()
    for n in names:
        if n not in valid:
            raise unknown_name_error(n, valid)
    return list(dict.fromkeys(names))


def _axes(name: str) -> tuple[int | None, int]:
    """``(head_axis, pos_axis)`` of the activation at ``name`` (DESIGN.md layouts)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in ("hook_q", "hook_k", "hook_v", "hook_z"):
        return 2, 1  # [batch, pos, head, d_head]
    if leaf in ("hook_attn_scores", "hook_pattern"):
        return 1, 2  # [batch, head, query_pos, key_pos]
    return None, 1  # [batch, pos, ...]


def _index_list(x, what: str) -> list[int] | None:
    if x is None:
        return None
    try:
        return [operator.index(x)]  # one int (Python, numpy or 0-d tensor)
    except TypeError:
        pass
    try:
        out = [operator.index(i) for i in x]
    except TypeError:
        out = []
    if not out:
        raise TypeError(f"{what} must be an int or a non-empty list of ints, got {x!r}.")
    return out


def _check_tokens_like(tokens: torch.Tensor, reference: torch.Tensor, what: str) -> None:
    if reference.dim() != 2 or reference.shape[1] != tokens.shape[1]:
        raise ValueError(
            f"{what} tokens must be [batch, pos] with the same number of positions as the "
            f"ablated tokens ({tokens.shape[1]}), got shape {list(reference.shape)}. Positions "
            "must line up; truncate or re-tokenise the reference prompts to that length."
        )


def _derangement(n: int, seed: int) -> torch.Tensor:
    """A seeded permutation of ``range(n)`` with no fixed point (so no prompt keeps its own)."""
    if n < 2:
        raise ValueError(
            "kind='resample' without reference tokens resamples from the other prompts of the "
            f"batch, but the batch has {n} prompt. Pass reference=<tokens of other prompts, "
            "same length> or a batch of at least 2 prompts."
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(-1)  # each prompt takes the next one in a random cycle
    return perm


def _rows(ref_batch: int, batch: int, seed: int) -> torch.Tensor | None:
    """Which reference row each prompt takes: row i if the batches match, else seeded draws."""
    if ref_batch == batch:
        return None
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(ref_batch, (batch,), generator=gen)


# ---- values -------------------------------------------------------------------------------


def ablation_values(
    model, names, kind: str, reference=None, *, seed: int = 0
) -> dict[str, torch.Tensor | None]:
    """The replacement value of each hook: ``{name: tensor}`` (None for ``kind="zero"``).

    mean: ``[1, *act_shape[1:]]``, the mean over the reference batch, per position.
    resample: ``[ref_batch, *act_shape[1:]]``, the reference prompts' own activations.
    reference: tokens ``[batch, pos]`` or texts; required for mean and resample.
    """
    _check_kind(kind)
    names = _names(model, names)
    if kind == "zero":
        return dict.fromkeys(names)
    if reference is None:
        raise ValueError(
            f"kind={kind!r} needs reference tokens: the prompts to "
            f"{'average over' if kind == 'mean' else 'take activations from'}. Pass "
            "reference=<tokens [batch, pos]>; `ablate(model, tokens, ...)` defaults to the "
            "ablated batch itself."
        )
    ref = as_tokens(model, reference)
    with torch.no_grad():
        _, cache = model.run_with_cache(ref, names=names)
    if kind == "mean":
        return {n: cache[n].mean(0, keepdim=True) for n in names}
    return {n: cache[n] for n in names}


def _selection(name, shape, heads, positions) -> torch.Tensor | None:
    """Bool mask broadcastable to ``shape``, True where ablated; None = everything."""
    head_axis, pos_axis = _axes(name)
    if heads is None and positions is None:
        return None
    mask = torch.ones([1] * len(shape), dtype=torch.bool)
    for idx, axis, what in ((heads, head_axis, "heads"), (positions, pos_axis, "positions")):
        if idx is None:
            continue
        if axis is None:
            raise ValueError(
                f"heads={heads} was given, but {name!r} has no head axis (shape "
                f"{list(shape)}). Heads can be picked on attn.hook_q / hook_k / hook_v / "
                "hook_z / hook_attn_scores / hook_pattern; use heads=None here."
            )
        size = shape[axis]
        bad = [i for i in idx if not -size <= i < size]
        if bad:
            raise IndexError(
                f"{what} {bad} out of range for {name!r}, which has {size} {what} (shape "
                f"{list(shape)}); valid: 0..{size - 1} (or negative from the end)."
            )
        one = torch.zeros(size, dtype=torch.bool)
        one[[i % size for i in idx]] = True
        view = [1] * len(shape)
        view[axis] = size
        mask = mask & one.reshape(view)
    return mask


def _hook(name, kind, value, heads, positions, seed):
    def hook(act, hook):
        if kind == "zero":
            new = torch.zeros((), dtype=act.dtype, device=act.device)
        else:
            if value.shape[1:] != act.shape[1:]:
                raise ValueError(
                    f"Ablating {name!r}: the activation has shape {list(act.shape)} but the "
                    f"reference gave {list(value.shape)}. The reference tokens must have the "
                    "same number of positions as the tokens run under the ablation."
                )
            new = value.to(act.device, act.dtype)
            if kind == "resample":
                rows = _rows(value.shape[0], act.shape[0], seed)
                new = new if rows is None else new[rows.to(act.device)]
        mask = _selection(name, act.shape, heads, positions)
        if mask is None:
            return new.expand_as(act).clone()
        return torch.where(mask.to(act.device), new, act)

    return hook


@contextlib.contextmanager
def ablation_hooks(
    model,
    names,
    *,
    kind: str = "zero",
    heads=None,
    positions=None,
    reference=None,
    seed: int = 0,
) -> Iterator[None]:
    """Context manager: inside the block, ``model(tokens)`` runs with ``names`` ablated.

    names: a hook name or a list of them (``"blocks.1.attn.hook_z"``).
    kind: ``"zero"``, ``"mean"`` or ``"resample"`` (see the module docstring).
    heads, positions: an int or a list of ints; None = all.
    reference: tokens ``[ref_batch, pos]``, required for mean and resample. For resample,
        prompt i takes reference row i when the batch sizes match, else a seeded random row.

    The hooks are removed on exit, also when the block raises.
    """
    _check_kind(kind)
    names = _names(model, names)
    heads = _index_list(heads, "heads")
    positions = _index_list(positions, "positions")
    values = ablation_values(model, names, kind, reference, seed=seed)
    hooks = [(n, _hook(n, kind, values[n], heads, positions, seed)) for n in names]
    with model.hooks(hooks):
        yield


def ablate(
    model,
    tokens,
    names,
    *,
    kind: str = "zero",
    heads=None,
    positions=None,
    reference=None,
    seed: int = 0,
) -> torch.Tensor:
    """One forward pass with ``names`` ablated; returns logits ``[batch, pos, d_vocab]``.

    tokens: text, texts or ids ``[batch, pos]``.
    reference: for ``kind="mean"`` the prompts to average over and for ``"resample"`` the
        prompts to take activations from; None = the batch itself (mean over ``tokens``;
        resample from a seeded derangement of its rows, so no prompt keeps its own).
    Other arguments as in :func:`ablation_hooks`. Runs under ``torch.no_grad``.

    Example: ``ablate(model, toks, "blocks.1.attn.hook_z", kind="mean", heads=[2])``.
    """
    _check_kind(kind)
    toks = as_tokens(model, tokens)
    ref = _reference(model, toks, kind, reference, seed)
    with torch.no_grad():
        with ablation_hooks(
            model, names, kind=kind, heads=heads, positions=positions, reference=ref, seed=seed
        ):
            return model(toks)


def _reference(model, toks, kind, reference, seed) -> torch.Tensor | None:
    if kind == "zero":
        return None
    if reference is None:
        return toks if kind == "mean" else toks[_derangement(toks.shape[0], seed)]
    ref = as_tokens(model, reference)
    _check_tokens_like(toks, ref, "reference")
    return ref


# ---- sweep --------------------------------------------------------------------------------


def ablation_sweep(
    model,
    tokens,
    metric: Metric,
    site: str = "z",
    *,
    kind: str = "zero",
    reference=None,
    seed: int = 0,
    max_batch: int | None = None,
    memory_mb: float | None = None,
) -> PatchResult:
    """Ablate ``site`` at every layer and head (or position), one at a time; record ``metric``.

    site: one of :data:`mechscope.patching.SITES`: ``"z"`` / ``"pattern"`` give
        ``[layer, head]``, ``"z_by_pos"`` ``[layer, head, pos]``, the residual-sized sites
        ``[layer, pos]``.
    metric: ``fn(logits [batch, pos, d_vocab]) -> [batch]``; each value is its mean over
        the prompts.
    kind, reference, seed: as in :func:`ablate`.
    max_batch, memory_mb: chunking, as in :func:`mechscope.patching.activation_patch`: the
        ablated copies run many at a time in one forward pass.

    Returns a :class:`~mechscope.patching.PatchResult` with ``direction = "<kind> ablation"``,
    ``clean_value`` = the metric without ablation and ``corrupted_value`` = NaN (there is
    no corrupted run).
    """
    _check_kind(kind)
    if site not in SITES:
        raise unknown_name_error(site, SITES, what="ablation site")
    check_site(model, site)
    toks = as_tokens(model, tokens)
    batch, n_pos = toks.shape
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    site_names = [hook_name(site, layer) for layer in range(n_layers)]
    ref = _reference(model, toks, kind, reference, seed)

    with torch.no_grad():
        # The patching sweep, with the ablated values as the source: the same batching,
        # and on causal models the same reuse of the unablated run (blocks before the
        # ablated one, positions before it, and ablations that change nothing are not run).
        target = TargetRun(model, toks, site_names)
        base_v = metric_values(metric, target.logits, batch).mean().item()
        values_by_name = ablation_values(model, site_names, kind, ref, seed=seed)
        sources = {
            name: _full_source(kind, values_by_name[name], target.cache[name], seed)
            for name in site_names
        }
        values = sweep(model, site, target, sources, metric, 0, base_v, max_batch, memory_mb)

    return labelled(model, site, values, toks, n_heads, f"{kind} ablation", base_v, float("nan"))


def _full_source(kind: str, value, act: torch.Tensor, seed: int) -> torch.Tensor:
    """The replacement as a ``[batch, ...]`` tensor, the layout ``patch_hook`` copies from."""
    if kind == "zero":
        return torch.zeros_like(act)
    value = value.to(act.device, act.dtype)
    if kind == "mean":
        return value.expand_as(act)
    rows = _rows(value.shape[0], act.shape[0], seed)
    return value if rows is None else value[rows.to(act.device)]
