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

Entry points:

- :func:`ablate`: one ablated forward pass, returns logits.
- :func:`ablation_hooks`: a context manager, for ``with ablation_hooks(...): model(tokens)``.
- :func:`ablation_sweep`: ablate every head (or position) of every layer in turn, with the
  batching of :func:`mechscope.patching.activation_patch` (many ablated copies per forward
  pass, chunked by ``memory_mb`` / ``batch_size``); returns an :class:`AblationResult`.

Selections: ``head`` picks heads on hooks with a head axis (``attn.hook_q / k / v / z``:
``[batch, pos, head, d_head]``; ``attn.hook_attn_scores / hook_pattern``:
``[batch, head, query_pos, key_pos]``); ``pos`` picks positions (query positions for
patterns). Both take an int or a list of ints (never a bool). The model is left as it came
(hooks, weights, mode), also when a call raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ._core import as_tokens, check_site, metric_values
from ._intervene import check_range, index_list, resolve_hooks
from ._patch_runner import TargetRun
from ._patching_sites import SITES, hook_name
from ._sweep import SiteGrid, labelled, sweep
from .hooks import unknown_name_error
from .metrics import Metric

KINDS = ("zero", "mean", "resample")

__all__ = [
    "KINDS",
    "AblationResult",
    "ablate",
    "ablation_hooks",
    "ablation_sweep",
    "ablation_values",
]


@dataclass(frozen=True)
class AblationResult(SiteGrid):
    """An ablation sweep's values with their labels.

    values: ``[layer, pos]``, ``[layer, head]`` or ``[layer, head, pos]`` (``dims`` says
        which): the metric, averaged over the prompts, with that one activation ablated.
    baseline_value: the metric (averaged over prompts) without any ablation.
    kind: ``"zero"``, ``"mean"`` or ``"resample"``; str_tokens: the first prompt's tokens.
    """

    values: torch.Tensor
    site: str
    dims: tuple[str, ...]
    row_labels: list[str]
    col_labels: list[str]
    str_tokens: list[str]
    kind: str
    baseline_value: float

    def __repr__(self) -> str:
        return (
            f"AblationResult(site={self.site!r}, kind={self.kind!r}, "
            f"values[{', '.join(self.dims)}]={list(self.values.shape)}, "
            f"baseline_value={self.baseline_value:.4g})"
        )

    def to_widget(self, **kwargs):
        """A :class:`mechscope.widgets.Heatmap` of :meth:`grid`, labelled; kwargs go to it."""
        return self.heatmap(f"{self.kind} ablation: {self.site}", kwargs)


# ---- checks -------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {', '.join(map(repr, KINDS))}.")


def _axes(name: str) -> tuple[int | None, int]:
    """``(head_axis, pos_axis)`` of the activation at ``name`` (DESIGN.md layouts)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in ("hook_q", "hook_k", "hook_v", "hook_z"):
        return 2, 1  # [batch, pos, head, d_head]
    if leaf in ("hook_attn_scores", "hook_pattern"):
        return 1, 2  # [batch, head, query_pos, key_pos]
    return None, 1  # [batch, pos, ...]


def _check_tokens_like(tokens: torch.Tensor, reference: torch.Tensor, what: str) -> None:
    if reference.dim() != 2 or reference.shape[0] == 0 or reference.shape[1] != tokens.shape[1]:
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
    model, hooks, *, kind: str = "zero", reference=None, seed: int = 0
) -> dict[str, torch.Tensor | None]:
    """The replacement value of each hook: ``{name: tensor}`` (None for ``kind="zero"``).

    hooks: a hook name, a list of them or a predicate.
    mean: ``[1, *act_shape[1:]]``, the mean over the reference batch, per position.
    resample: ``[ref_batch, *act_shape[1:]]``, the reference prompts' own activations.
    reference: tokens ``[batch, pos]``, a text or texts; required for mean and resample.
    """
    _check_kind(kind)
    names = resolve_hooks(model, hooks)
    if kind == "zero":
        return dict.fromkeys(names)
    if reference is None:
        raise ValueError(
            f"kind={kind!r} needs reference tokens: the prompts to "
            f"{'average over' if kind == 'mean' else 'take activations from'}. Pass "
            "reference=<tokens [batch, pos]>; `ablate(model, tokens, ...)` defaults to the "
            "ablated batch itself."
        )
    ref = as_tokens(model, reference, name="reference")
    with torch.no_grad():
        _, cache = model.run_with_cache(ref, names=names)
    if kind == "mean":
        return {n: cache[n].mean(0, keepdim=True) for n in names}
    return {n: cache[n] for n in names}


def _selection(name, shape, head, pos) -> torch.Tensor | None:
    """Bool mask broadcastable to ``shape``, True where ablated; None = everything."""
    head_axis, pos_axis = _axes(name)
    if head is None and pos is None:
        return None
    mask = torch.ones([1] * len(shape), dtype=torch.bool)
    for idx, axis, what in ((head, head_axis, "head"), (pos, pos_axis, "pos")):
        if idx is None:
            continue
        if axis is None:
            raise ValueError(
                f"head={head} was given, but {name!r} has no head axis (shape "
                f"{list(shape)}). Heads can be picked on attn.hook_q / hook_k / hook_v / "
                "hook_z / hook_attn_scores / hook_pattern; use head=None here."
            )
        size = shape[axis]
        idx = check_range(idx, size, what, f"{name!r} (shape {list(shape)}, {what} axis)")
        one = torch.zeros(size, dtype=torch.bool)
        one[idx] = True
        view = [1] * len(shape)
        view[axis] = size
        mask = mask & one.reshape(view)
    return mask


def _hook(name, kind, value, head, pos, seed):
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
        mask = _selection(name, act.shape, head, pos)
        if mask is None:
            return new.expand_as(act).clone()
        return torch.where(mask.to(act.device), new, act)

    return hook


def _check_heads(model, names, head) -> None:
    """Heads are known before any forward pass: check them against ``cfg.n_heads``."""
    if head is None:
        return
    for n in names:
        if _axes(n)[0] is None:
            raise ValueError(
                f"head={head} was given, but {n!r} has no head axis. Heads can be picked on "
                "attn.hook_q / hook_k / hook_v / hook_z / hook_attn_scores / hook_pattern; "
                "use head=None here."
            )
    n_heads = getattr(model.cfg, "n_heads", 0)
    if n_heads:
        check_range(head, n_heads, "head", "the model (n_heads)")


@contextlib.contextmanager
def ablation_hooks(
    model,
    hooks,
    *,
    kind: str = "zero",
    head=None,
    pos=None,
    reference=None,
    seed: int = 0,
) -> Iterator[None]:
    """Context manager: inside the block, ``model(tokens)`` runs with ``hooks`` ablated.

    hooks: a hook name, a list of them or a predicate (``"blocks.1.attn.hook_z"``).
    kind: ``"zero"``, ``"mean"`` or ``"resample"`` (see the module docstring).
    head, pos: an int or a list of ints; None = all.
    reference: tokens ``[ref_batch, pos]``, required for mean and resample. For resample,
        prompt i takes reference row i when the batch sizes match, else a seeded random row.

    The hooks are removed on exit, also when the block raises.
    """
    _check_kind(kind)
    names = resolve_hooks(model, hooks)
    head = index_list(head, "head")
    pos = index_list(pos, "pos")
    _check_heads(model, names, head)
    values = ablation_values(model, names, kind=kind, reference=reference, seed=seed)
    fwd = [(n, _hook(n, kind, values[n], head, pos, seed)) for n in names]
    with model.hooks(fwd):
        yield


def ablate(
    model,
    tokens,
    hooks,
    *,
    kind: str = "zero",
    head=None,
    pos=None,
    reference=None,
    seed: int = 0,
) -> torch.Tensor:
    """One forward pass with ``hooks`` ablated; returns logits ``[batch, pos, d_vocab]``.

    tokens: a text, texts or ids ``[batch, pos]``.
    reference: for ``kind="mean"`` the prompts to average over and for ``"resample"`` the
        prompts to take activations from; None = the batch itself (mean over ``tokens``;
        resample from a seeded derangement of its rows, so no prompt keeps its own).
    Other arguments as in :func:`ablation_hooks`. Runs under ``torch.no_grad``.

    Example: ``ablate(model, toks, "blocks.1.attn.hook_z", kind="mean", head=[2])``.
    """
    _check_kind(kind)
    toks = as_tokens(model, tokens)
    idx = index_list(pos, "pos")
    if idx is not None:
        check_range(idx, toks.shape[1], "pos", f"tokens (positions, shape {list(toks.shape)})")
    ref = _reference(model, toks, kind, reference, seed)
    with torch.no_grad():
        with ablation_hooks(model, hooks, kind=kind, head=head, pos=pos, reference=ref, seed=seed):
            return model(toks)


def _reference(model, toks, kind, reference, seed) -> torch.Tensor | None:
    if kind == "zero":
        return None
    if reference is None:
        return toks if kind == "mean" else toks[_derangement(toks.shape[0], seed)]
    ref = as_tokens(model, reference, name="reference")
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
    batch_size: int | None = None,
    memory_mb: float | None = None,
) -> AblationResult:
    """Ablate ``site`` at every layer and head (or position), one at a time; record ``metric``.

    site: one of :data:`mechscope.patching.SITES`: ``"z"`` / ``"pattern"`` give
        ``[layer, head]``, ``"z_by_pos"`` ``[layer, head, pos]``, the residual-sized sites
        ``[layer, pos]``.
    metric: ``fn(logits [batch, pos, d_vocab]) -> [batch]``; each value is its mean over
        the prompts.
    kind, reference, seed: as in :func:`ablate`.
    batch_size, memory_mb: chunking, as in :func:`mechscope.patching.activation_patch`: the
        ablated copies run many at a time in one forward pass.

    Returns an :class:`AblationResult` (``baseline_value`` = the metric without ablation).
    """
    _check_kind(kind)
    if site not in SITES:
        raise unknown_name_error(site, SITES, what="ablation site")
    check_site(model, site)
    toks = as_tokens(model, tokens)
    batch = toks.shape[0]
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    site_names = [hook_name(site, layer) for layer in range(n_layers)]
    ref = _reference(model, toks, kind, reference, seed)

    with torch.no_grad():
        # The patching sweep, with the ablated values as the source: the same batching,
        # and on causal models the same reuse of the unablated run (blocks before the
        # ablated one, positions before it, and ablations that change nothing are not run).
        target = TargetRun(model, toks, site_names)
        base_v = metric_values(metric, target.logits, batch).mean().item()
        by_name = ablation_values(model, site_names, kind=kind, reference=ref, seed=seed)
        sources = {
            name: _full_source(kind, by_name[name], target.cache[name], seed) for name in site_names
        }
        values = sweep(model, site, target, sources, metric, 0, base_v, batch_size, memory_mb)

    lab = labelled(model, site, values, toks, n_heads, f"{kind} ablation", base_v, base_v)
    return AblationResult(
        values=lab.values,
        site=site,
        dims=lab.dims,
        row_labels=lab.row_labels,
        col_labels=lab.col_labels,
        str_tokens=lab.str_tokens,
        kind=kind,
        baseline_value=base_v,
    )


def _full_source(kind: str, value, act: torch.Tensor, seed: int) -> torch.Tensor:
    """The replacement as a ``[batch, ...]`` tensor, the layout ``patch_hook`` copies from."""
    if kind == "zero":
        return torch.zeros_like(act)
    value = value.to(act.device, act.dtype)
    if kind == "mean":
        return value.expand_as(act)
    rows = _rows(value.shape[0], act.shape[0], seed)
    return value if rows is None else value[rows.to(act.device)]
