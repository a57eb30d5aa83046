"""Gradient machinery behind :mod:`mechscope.attribution`: token checks, no-grad recording
at a hook, the gradient of a metric w.r.t. a replaced activation, the quadrature of
integrated gradients and its baselines. Private: import by plain names."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable

import torch

from ._core import as_tokens, metric_values
from .hooks import unknown_name_error

Metric = Callable[[torch.Tensor], torch.Tensor]


def check_hook(model, hook: str) -> None:
    names = model.hook_names()
    if hook not in names:
        raise unknown_name_error(hook, names)


def int_tokens(model, tokens) -> torch.Tensor:
    """``tokens`` (text, list of texts, ``[pos]`` or ``[batch, pos]`` ids) as ``[batch, pos]``
    ids, checked (one coercion: :func:`mechscope._core.as_tokens`)."""
    return as_tokens(model, tokens)


def record(model, tokens: torch.Tensor, hook: str, metric=None, replace=None, baseline=False):
    """One no-grad forward: the activation at ``hook`` (detached) and, with ``metric``, the
    metric ``[batch]`` (None otherwise). ``replace``: an activation written in at ``hook``.
    ``baseline``: the tokens are a baseline, attended to even where they are pad ids."""
    store = {}

    def save(act, hook):
        store["x"] = act.detach()

    save.mechscope_read_only = True  # a remote model calls it here, after its pass
    hooks = [(hook, save)]
    if replace is not None:
        hooks.append((hook, lambda act, hook: replace))
    kwargs = {}
    if baseline and "attention_mask" in inspect.signature(model.forward).parameters:
        # A pad baseline is meant as real tokens: every position is attended to (a wrapped
        # HF model refuses unmasked padding otherwise). The input itself gets no mask, so
        # padded prompts still fail loudly, in the same way as in the gradient passes.
        kwargs["attention_mask"] = torch.ones_like(tokens)
    with torch.no_grad(), model.hooks(hooks):
        logits = model(tokens, **kwargs)
        f = None if metric is None else metric_values(metric, logits, tokens.shape[0]).detach()
    return store["x"], f


@contextlib.contextmanager
def frozen(model):
    """Parameters without ``requires_grad`` for the duration (restored in a ``finally``):
    autograd then records only the path to the activation, not to every weight."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in trainable:
            p.requires_grad_(False)
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


def grad_at(model, tokens, hook: str, values: torch.Tensor, metric: Metric, batch: int):
    """Metric and its gradient w.r.t. the activation at ``hook``, replaced by ``values``.

    values ``[k * batch, pos, d]`` (k copies of the batch, copy-major). Returns
    (metric ``[k * batch]``, grad ``[k * batch, pos, d]``). Parameters get no ``.grad``.
    """
    leaf = values.detach().requires_grad_(True)

    def replace(act, hook):
        return leaf

    k = leaf.shape[0] // batch
    rows = tokens.repeat(k, 1) if k > 1 else tokens

    def per_row(logits):
        # unbind, not slicing: the backward of k slices would allocate k zero tensors the
        # size of all the logits; unbind's backward stacks the k gradients once.
        parts = logits.view(k, batch, *logits.shape[1:]).unbind(0)
        return torch.cat([metric_values(metric, part, batch) for part in parts])

    in_pass = getattr(model, "metric_grads", None)
    if in_pass is not None:  # the backward runs inside the model's own pass (nnsight, NDIF)
        with frozen(model), model.hooks([(hook, lambda act, hook: values.detach())]):
            f, _, grads = in_pass(rows, [hook], per_row)
        return f, grads[hook]
    with torch.enable_grad(), frozen(model), model.hooks([(hook, replace)]):
        f = per_row(model(rows))
        (grad,) = torch.autograd.grad(f.sum(), leaf)
    return f.detach(), grad


def gradient(model, tokens, metric: Metric, hook: str):
    tokens = int_tokens(model, tokens)
    check_hook(model, hook)
    x, _ = record(model, tokens, hook)
    f, grad = grad_at(model, tokens, hook, x, metric, tokens.shape[0])
    return x, f, grad


@functools.lru_cache(maxsize=32)
def quadrature(steps: int, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(alphas ``[steps]``, weights ``[steps]``) on [0, 1]; weights sum to 1. Cached: the
    Gauss-Legendre nodes cost about as much as a small model's forward pass."""
    if method == "gausslegendre":
        import numpy as np

        x, w = np.polynomial.legendre.leggauss(steps)
        return torch.tensor(0.5 * (1 + x)), torch.tensor(0.5 * w)
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError(f"riemann_trapezoid needs steps >= 2, got {steps}.")
        w = torch.full((steps,), 1.0 / (steps - 1), dtype=torch.float64)
        w[0] = w[-1] = 0.5 / (steps - 1)
        return torch.linspace(0, 1, steps, dtype=torch.float64), w
    left = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}
    if method in left:
        a = (torch.arange(steps, dtype=torch.float64) + left[method]) / steps
        return a, torch.full((steps,), 1.0 / steps, dtype=torch.float64)
    raise ValueError(
        f"method={method!r}; expected 'gausslegendre', 'riemann_trapezoid', 'riemann_left', "
        f"'riemann_middle' or 'riemann_right'."
    )


def baseline_activation(model, tokens, x, baseline, hook: str, metric: Metric):
    """The baseline activation ``[batch, pos, d]`` at ``hook`` and the metric on it ``[batch]``."""
    if isinstance(baseline, str):
        if baseline == "zeros":
            baseline = torch.zeros_like(x)
        elif baseline == "pad":
            tok = getattr(model, "tokenizer", None)
            pad = getattr(tok, "pad_token_id", None) if tok is not None else None
            baseline = int(pad) if pad is not None else 0
        else:
            raise ValueError(
                f"baseline={baseline!r}; expected 'zeros', 'pad', a token id, baseline "
                f"tokens [batch, pos] or a baseline activation {list(x.shape)}."
            )
    if isinstance(baseline, int):
        return record(model, torch.full_like(tokens, baseline), hook, metric, baseline=True)
    baseline = torch.as_tensor(baseline)
    if not baseline.is_floating_point():  # baseline tokens
        if baseline.shape != tokens.shape and baseline.dim() == 1:
            baseline = baseline.expand_as(tokens)
        if baseline.shape != tokens.shape:
            raise ValueError(
                f"baseline tokens have shape {list(baseline.shape)}; expected the tokens' "
                f"shape {list(tokens.shape)}."
            )
        return record(model, baseline.to(tokens.device), hook, metric, baseline=True)
    try:
        base = baseline.to(x.device, x.dtype).expand_as(x).contiguous()
    except RuntimeError as err:
        raise ValueError(
            f"baseline activation has shape {list(baseline.shape)}; expected {list(x.shape)} "
            f"(the activation at {hook!r}) or something that broadcasts to it."
        ) from err
    return base, record(model, tokens, hook, metric, replace=base)[1]
