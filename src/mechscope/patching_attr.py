"""Attribution patching: activation patching for every site from one backward pass.

Exact activation patching (:func:`mechscope.patching.activation_patch`) runs one patched
copy of the target prompts per site. Attribution patching replaces each of those runs by
its first-order Taylor estimate around the target run (Nanda 2023, "Attribution patching:
activation patching at industrial scale"; Syed, Rager & Conmy 2023, "Attribution patching
outperforms automated circuit discovery"):

    metric(target with a := a_source)  ~  metric(target) + (a_source - a_target) . dmetric/da

where the gradient is taken on the target run. So one source forward (no grad), one target
forward and one backward give every site, layer, position and head at once.

- ``direction="denoising"``: source = clean, target = corrupted (gradient at the corrupted run).
- ``direction="noising"``: source = corrupted, target = clean (gradient at the clean run).

The estimate is exact where the metric is linear in the activation (e.g. the last residual
stream of a model without a final LayerNorm, with a logit-difference metric) and degrades
where attention patterns or LayerNorm scales move a lot; :func:`compare_to_exact` measures
how far it is from exact patching. Same sites, shapes and labels as ``activation_patch``.

Example::

    attr = attribution_patch(model, clean, corrupted, metric, site="resid_pre")
    exact = activation_patch(model, clean, corrupted, metric, site="resid_pre")
    compare_to_exact(attr, exact)  # {"pearson": 0.97, "max_abs_diff": ..., "worst": [...]}
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._core import as_tokens, check_pair, check_site, metric_values
from ._patching_sites import SITES, hook_name
from ._sweep import PatchResult, check_direction, labelled
from .hooks import unknown_name_error
from .metrics import Metric

__all__ = ["attribution_patch", "attribution_patch_sites", "compare_to_exact"]


def attribution_patch(
    model, clean, corrupted, metric: Metric, site: str = "resid_pre", *, direction="denoising"
) -> PatchResult:
    """Attribution-patching estimate of ``activation_patch(model, clean, corrupted, metric, site)``.

    Arguments as for :func:`mechscope.patching.activation_patch`. ``values`` has the same
    shape (``[layer, pos]``, ``[layer, head]`` or ``[layer, head, pos]``) and holds the
    estimated metric of the patched run, averaged over the prompts. The model is left as it
    came: no hooks, its parameters' ``.grad`` untouched, same mode.
    """
    return attribution_patch_sites(model, clean, corrupted, metric, [site], direction=direction)[
        site
    ]


def attribution_patch_sites(
    model,
    clean,
    corrupted,
    metric: Metric,
    sites: Sequence[str] | None = None,
    *,
    direction: str = "denoising",
) -> dict[str, PatchResult]:
    """:func:`attribution_patch` for several sites from the same three passes.

    sites: names from :data:`mechscope.patching.SITES`; None = every site the model has.
    Returns ``{site: PatchResult}``.
    """
    check_direction(direction)
    names_all = set(model.hook_names())
    if sites is None:
        sites = [s for s in SITES if hook_name(s, 0) in names_all]
    if isinstance(sites, str):
        sites = [sites]
    if not sites:
        raise ValueError(f"sites={sites!r} is empty; name at least one of {', '.join(SITES)}.")
    for site in sites:
        if site not in SITES:
            raise unknown_name_error(site, SITES, what="patching site")
        check_site(model, site)
    clean_t = as_tokens(model, clean, name="clean")
    corrupted_t = as_tokens(model, corrupted, name="corrupted")
    check_pair(model, clean_t, corrupted_t)
    batch = clean_t.shape[0]
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    source_t, target_t = (
        (clean_t, corrupted_t) if direction == "denoising" else (corrupted_t, clean_t)
    )
    # Distinct hook points (z and z_by_pos share one), in layer order.
    hooks = sorted(
        {hook_name(s, layer) for s in sites for layer in range(n_layers)},
        key=model.hook_names().index,
    )

    with torch.no_grad():
        source_logits, source_cache = model.run_with_cache(source_t, names=hooks)
        source_v = metric_values(metric, source_logits, batch).mean().item()
    target_v, target_acts, grads = _target_grads(model, target_t, metric, hooks, batch)

    # First-order term per hook point: (a_source - a_target) * grad, summed over the batch.
    terms = {
        n: ((source_cache[n].to(grads[n].dtype) - target_acts[n]) * grads[n]).sum(0) for n in hooks
    }
    results = {}
    for site in sites:
        rows = [_reduce(site, terms[hook_name(site, layer)]) for layer in range(n_layers)]
        values = target_v + torch.stack(rows).float().cpu()
        clean_v, corrupted_v = (
            (source_v, target_v) if direction == "denoising" else (target_v, source_v)
        )
        results[site] = labelled(
            model, site, values, clean_t, n_heads, direction, clean_v, corrupted_v
        )
    return results


def _target_grads(model, target_t, metric, hooks, batch):
    """Target run with autograd: ``(metric mean, {hook: act}, {hook: dmetric_mean/dact})``.

    Each hook adds a zero leaf tensor to its activation and the gradient is taken with
    respect to those leaves (``torch.autograd.grad``), so it works when the model's
    parameters do not require grad, and no parameter's ``.grad`` is written. The zero leaf
    keeps the activation on the graph, so an early site's gradient includes every path
    through later sites. A model with ``metric_grads`` (nnsight, also remote) takes the
    same gradients inside its own trace.
    """
    in_pass = getattr(model, "metric_grads", None)
    if in_pass is not None:  # the backward runs inside the model's own pass (nnsight, NDIF)
        value, acts, grads = in_pass(
            target_t, hooks, lambda logits: metric_values(metric, logits, batch).mean()
        )
        return float(value), acts, grads
    acts: dict[str, torch.Tensor] = {}
    leaves: dict[str, torch.Tensor] = {}

    def capture(act, hook):
        leaf = torch.zeros_like(act, requires_grad=True)
        acts[hook.name], leaves[hook.name] = act.detach(), leaf
        return act + leaf

    saved_grads = [(p, p.grad) for p in model.parameters()]
    try:
        with torch.enable_grad(), model.hooks([(n, capture) for n in hooks]):
            logits = model(target_t)
            value = metric_values(metric, logits, batch).mean()
            missing = [n for n in hooks if n not in leaves]
            if missing:
                raise RuntimeError(f"Hook point(s) {missing} never fired during the forward pass.")
            if not value.requires_grad:
                raise ValueError(
                    "metric(logits) is not differentiable (it does not depend on the logits "
                    "through autograd, e.g. it calls .item(), argmax or torch.no_grad). "
                    "Attribution patching needs a differentiable metric such as logit_diff."
                )
            grads = torch.autograd.grad(value, [leaves[n] for n in hooks], allow_unused=True)
    finally:
        for p, g in saved_grads:  # autograd.grad writes no .grad; restore in case a hook did
            p.grad = g
    out = {}
    for n, g in zip(hooks, grads, strict=True):
        out[n] = torch.zeros_like(acts[n]) if g is None else g  # None: no path to the metric
    return float(value.detach()), acts, out


def _reduce(site: str, term: torch.Tensor) -> torch.Tensor:
    """Sum one layer's first-order term (batch already summed) into one value per patch.

    term: ``[pos, d_model]`` (residual sites), ``[pos, head, d_head]`` (z) or
    ``[head, query_pos, key_pos]`` (pattern). Returns ``[pos]``, ``[head]`` or
    ``[head * pos]`` (head-major, the order of ``patch_grid``).
    """
    index = SITES[site].index
    if index == "pos":
        return term.sum(-1)
    if site == "pattern":
        return term.sum((-2, -1))
    if index == "head":
        return term.sum((0, 2))
    return term.sum(-1).T.reshape(-1)  # [pos, head] -> [head, pos] -> [head * pos]


def compare_to_exact(attr: PatchResult, exact: PatchResult, k: int = 5) -> dict:
    """How well attribution patching ``attr`` matches activation patching ``exact``.

    Returns ``{"pearson", "max_abs_diff", "mean_abs_diff", "worst"}``: the Pearson
    correlation of the values (NaN when either is constant), the largest and mean absolute
    difference, and the ``k`` sites with the largest absolute difference, worst first, as
    dicts ``{"label", "attribution", "exact", "diff"}`` (labels like ``"L1 3: cat"``,
    ``"L0 H2"`` or ``"L0H2 3: cat"``).
    """
    if attr.site != exact.site or attr.values.shape != exact.values.shape:
        raise ValueError(
            f"Cannot compare site {attr.site!r} values{list(attr.values.shape)} with site "
            f"{exact.site!r} values{list(exact.values.shape)}: run both on the same site, "
            "model and prompts."
        )
    if attr.direction != exact.direction:
        raise ValueError(
            f"attr is {attr.direction!r} but exact is {exact.direction!r}; use the same direction."
        )
    a, e = attr.grid().double(), exact.grid().double()
    diff = a - e
    af, ef = a.flatten(), e.flatten()
    ac, ec = af - af.mean(), ef - ef.mean()
    denom = (ac.norm() * ec.norm()).item()
    pearson = float((ac @ ec).item() / denom) if denom > 0 else float("nan")
    order = diff.abs().flatten().argsort(descending=True)[:k].tolist()
    n_cols = a.shape[1]
    worst = []
    for i in order:
        r, c = divmod(i, n_cols)
        worst.append(
            {
                "label": f"{attr.row_labels[r]} {attr.col_labels[c]}",
                "attribution": float(a[r, c]),
                "exact": float(e[r, c]),
                "diff": float(diff[r, c]),
            }
        )
    return {
        "pearson": pearson,
        "max_abs_diff": float(diff.abs().max()),
        "mean_abs_diff": float(diff.abs().mean()),
        "worst": worst,
    }
