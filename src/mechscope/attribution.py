"""Attribution: which components and which input tokens a prediction comes from.

Two families (review section 2, "attributional" paradigm; section 4.2):

* **Direct logit attribution** (Elhage et al. 2021, "A Mathematical Framework for
  Transformer Circuits"): the final residual stream is a sum of component outputs, and
  the final norm is linear once its scale is fixed, so each head / layer output adds a
  definite amount to a logit. Built on the cache's ``stack_head_results``,
  ``decompose_resid`` and ``logit_attrs`` (:mod:`mechscope._cache_analysis`).
* **Gradient attributions over the input embeddings**: saliency (Simonyan et al. 2014,
  "Deep Inside Convolutional Networks"), gradient x input (Shrikumar et al. 2016;
  Denil et al. 2014) and integrated gradients (Sundararajan et al. 2017, "Axiomatic
  Attribution for Deep Networks"). Integrated gradients satisfies *completeness*: the
  attributions sum to ``f(input) - f(baseline)``; every result reports how far the
  numerical integral is from it.

The gradient methods read and replace the activation at a hook point, by default
``hook_embed`` (the token embeddings, before positions are added): the same tensor
Captum's ``LayerIntegratedGradients`` interpolates when given the token-embedding layer.
Any other hook point works too (``at="blocks.0.hook_resid_pre"``: the whole input
residual). Integrated gradients batches the interpolation steps into as few forward and
backward passes as ``chunk_size`` allows.

A metric is ``metric(logits) -> [batch]``: one number per prompt, e.g.
``mechscope.metrics.logit_diff(answer_ids, wrong_ids)``. It is always called on a
batch shaped like ``tokens``, so per-prompt answer ids work.

The model is left as it came: hooks are removed in a ``finally``; parameters get no
``.grad`` and keep their ``requires_grad``; the mode (train/eval) is not touched.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .metrics import logit_diff

__all__ = [
    "GradientAttribution",
    "IGResult",
    "LogitAttribution",
    "direct_logit_attribution",
    "gradient_x_input",
    "integrated_gradients",
    "logit_metric",
    "saliency",
]

Metric = Callable[[torch.Tensor], torch.Tensor]


# ---- direct logit attribution ---------------------------------------------------


@dataclass(frozen=True)
class LogitAttribution:
    """Per-component contributions to a logit (difference), with their labels.

    values: ``[component, batch]`` (``[component, batch, pos]`` for ``pos=None``).
    labels: one per component (``"L0H1"``, ``"embed"``, ``"1_mlp_out"``, ...).
    offset: ``[batch]`` (or ``[batch, pos]``), what no component gets: the final norm's
    bias and the unembedding bias. For ``by="component"``,
    ``values.sum(0) + offset`` is the logit (difference) itself.
    """

    values: torch.Tensor
    labels: list[str]
    offset: torch.Tensor
    by: str

    def mean(self) -> torch.Tensor:
        """``[component]``: the contribution averaged over prompts (and positions)."""
        return self.values.reshape(len(self.labels), -1).mean(-1)

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` components with the largest mean |contribution|, as (label, mean)."""
        m = self.mean()
        order = torch.sort(-m.abs(), stable=True).indices[:k]
        return [(self.labels[i], float(m[i])) for i in order]

    def as_dict(self) -> dict[str, float]:
        """``{label: mean contribution}``."""
        return {lab: float(v) for lab, v in zip(self.labels, self.mean(), strict=True)}


def direct_logit_attribution(
    cache,
    answer_ids,
    wrong_ids=None,
    *,
    by: str = "head",
    pos: int | None = -1,
) -> LogitAttribution:
    """Direct logit attribution (Elhage et al. 2021) from an :class:`ActivationCache`.

    by: ``"head"``: each head's write ``z @ W_O`` (needs every ``attn.hook_z``);
    ``"component"``: embeddings, each attention and MLP output (needs ``hook_embed``,
    ``hook_pos_embed``, ``hook_attn_out``, ``hook_mlp_out``). Both divide by the real
    final residual's norm scale (``ln_final.hook_scale`` or the last ``hook_resid_post``).
    ``model.run_with_cache(tokens)`` (all names) has everything.

    answer_ids / wrong_ids: one id, or ``[batch]`` ids (``[batch, pos]`` with
    ``pos=None``). With ``wrong_ids`` the values are logit differences.
    pos: the position scored (default the last); None scores every position.
    Returns a :class:`LogitAttribution` with values ``[component, batch]``
    (``[component, batch, pos]`` for ``pos=None``).
    """
    if by not in ("head", "component"):
        raise ValueError(f"by={by!r}; expected 'head' or 'component'.")
    if not cache.has_batch_dim:
        raise ValueError(
            "direct_logit_attribution needs a cache with its batch axis; run_with_cache "
            "without remove_batch_dim=True."
        )
    if by == "head":
        stack, labels = cache.stack_head_results(pos_slice=pos, apply_ln=True)
    else:
        stack, labels = cache.decompose_resid(pos_slice=pos, apply_ln=True)
    answer = _ids_for(answer_ids, stack.shape[1:-1], "answer_ids")
    wrong = None if wrong_ids is None else _ids_for(wrong_ids, stack.shape[1:-1], "wrong_ids")
    values = cache.logit_attrs(stack, answer, wrong)
    off = cache.unembed_offset().to(stack.device, stack.dtype)
    offset = off[answer] - (off[wrong] if wrong is not None else 0)
    return LogitAttribution(values=values, labels=labels, offset=offset, by=by)


def _ids_for(ids, shape: torch.Size, what: str) -> torch.Tensor:
    ids = torch.as_tensor(ids)
    if ids.is_floating_point():
        raise ValueError(f"{what} must be integer token ids, got dtype {ids.dtype}.")
    try:
        return ids.expand(shape)
    except RuntimeError as err:
        raise ValueError(
            f"{what} has shape {list(ids.shape)}; expected one id or ids shaped "
            f"{list(shape)} (one per prompt{'' if len(shape) == 1 else ' and position'})."
        ) from err


# The answer's logit at ``pos``, minus the wrong id's when given: the patching metric.
logit_metric = logit_diff


# ---- gradients through a hook point ----------------------------------------------


@dataclass(frozen=True)
class GradientAttribution:
    """A gradient attribution over the positions of the input.

    attributions ``[batch, pos]``; per_dim ``[batch, pos, d_model]`` before reducing over
    d_model; f_input ``[batch]``: the metric on the input; method: its name.
    """

    attributions: torch.Tensor
    per_dim: torch.Tensor = field(repr=False)
    f_input: torch.Tensor
    method: str


@dataclass(frozen=True)
class IGResult:
    """Integrated gradients (Sundararajan et al. 2017) at a hook point.

    attributions ``[batch, pos]`` (summed over d_model); per_dim ``[batch, pos, d_model]``;
    f_input / f_baseline ``[batch]``: the metric at the input and at the baseline;
    completeness_error ``[batch]``: ``|sum(attributions) - (f_input - f_baseline)|``
    relative to ``|f_input - f_baseline|``; steps and method of the quadrature.
    """

    attributions: torch.Tensor
    per_dim: torch.Tensor = field(repr=False)
    f_input: torch.Tensor
    f_baseline: torch.Tensor
    completeness_error: torch.Tensor
    steps: int
    method: str

    @property
    def delta(self) -> torch.Tensor:
        """``sum(attributions) - (f_input - f_baseline)``, ``[batch]`` (Captum's convergence delta)."""
        return self.attributions.sum(-1) - (self.f_input - self.f_baseline)


def _check_at(model, at: str) -> None:
    names = model.hook_names()
    if at not in names:
        from .hooks import unknown_name_error

        raise unknown_name_error(at, names)


def _tokens(model, tokens) -> torch.Tensor:
    if isinstance(tokens, str):
        tokens = model.to_tokens(tokens)
    tokens = torch.as_tensor(tokens)
    if tokens.dim() == 1:
        tokens = tokens[None]
    if tokens.dim() != 2 or tokens.is_floating_point():
        raise ValueError(
            f"tokens must be integer ids [batch, pos] (or [pos]), got shape "
            f"{list(tokens.shape)} dtype {tokens.dtype}. Use model.to_tokens(text)."
        )
    return tokens


def _call_metric(metric: Metric, logits: torch.Tensor, batch: int) -> torch.Tensor:
    out = metric(logits)
    if not isinstance(out, torch.Tensor) or out.shape != (batch,):
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"metric returned {got}; expected one number per prompt, shape [{batch}]. "
            f"Return e.g. logits[:, -1, answer] (no .mean() over the batch)."
        )
    return out


def _record(
    model,
    tokens: torch.Tensor,
    at: str,
    metric: Metric | None = None,
    replace=None,
    baseline: bool = False,
):
    """One no-grad forward: the activation at ``at`` (detached) and, with ``metric``, the
    metric ``[batch]`` (None otherwise). ``replace``: an activation written in at ``at``.
    ``baseline``: the tokens are a baseline, attended to even where they are pad ids."""
    store = {}

    def save(act, hook):
        store["x"] = act.detach()
        return replace

    kwargs = {}
    if baseline and "attention_mask" in inspect.signature(model.forward).parameters:
        # A pad baseline is meant as real tokens: every position is attended to (a wrapped
        # HF model refuses unmasked padding otherwise). The input itself gets no mask, so
        # padded prompts still fail loudly, in the same way as in the gradient passes.
        kwargs["attention_mask"] = torch.ones_like(tokens)
    with torch.no_grad(), model.hooks([(at, save)]):
        logits = model(tokens, **kwargs)
        f = None if metric is None else _call_metric(metric, logits, tokens.shape[0]).detach()
    return store["x"], f


@contextlib.contextmanager
def _frozen(model):
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


def _grad_at(model, tokens, at: str, values: torch.Tensor, metric: Metric, batch: int):
    """Metric and its gradient w.r.t. the activation at ``at``, replaced by ``values``.

    values ``[k * batch, pos, d]`` (k copies of the batch, copy-major). Returns
    (metric ``[k * batch]``, grad ``[k * batch, pos, d]``). Parameters get no ``.grad``.
    """
    leaf = values.detach().requires_grad_(True)

    def replace(act, hook):
        return leaf

    k = leaf.shape[0] // batch
    rows = tokens.repeat(k, 1) if k > 1 else tokens
    with torch.enable_grad(), _frozen(model), model.hooks([(at, replace)]):
        logits = model(rows)
        # unbind, not slicing: the backward of k slices would allocate k zero tensors the
        # size of all the logits; unbind's backward stacks the k gradients once.
        parts = logits.view(k, batch, *logits.shape[1:]).unbind(0)
        f = torch.cat([_call_metric(metric, part, batch) for part in parts])
        (grad,) = torch.autograd.grad(f.sum(), leaf)
    return f.detach(), grad


def _gradient(model, tokens, metric: Metric, at: str):
    tokens = _tokens(model, tokens)
    _check_at(model, at)
    x, _ = _record(model, tokens, at)
    f, grad = _grad_at(model, tokens, at, x, metric, tokens.shape[0])
    return x, f, grad


def saliency(model, tokens, metric: Metric, *, at: str = "hook_embed") -> GradientAttribution:
    """Gradient saliency (Simonyan et al. 2014): ``|d metric / d x|`` at the embeddings.

    tokens ``[batch, pos]``; metric ``logits -> [batch]``. attributions ``[batch, pos]``
    is the L2 norm over d_model of the gradient (unsigned: how sensitive, not which way);
    per_dim ``[batch, pos, d_model]`` the gradient itself.
    """
    _, f, grad = _gradient(model, tokens, metric, at)
    return GradientAttribution(grad.norm(dim=-1), grad, f, "saliency")


def gradient_x_input(
    model, tokens, metric: Metric, *, at: str = "hook_embed"
) -> GradientAttribution:
    """Gradient x input (Shrikumar et al. 2016; Denil et al. 2014): ``x * d metric / d x``.

    tokens ``[batch, pos]``; metric ``logits -> [batch]``. attributions ``[batch, pos]``
    (signed, summed over d_model); per_dim ``[batch, pos, d_model]``. Equals integrated
    gradients with a zero baseline when the metric is linear in ``x``.
    """
    x, f, grad = _gradient(model, tokens, metric, at)
    per_dim = grad * x
    return GradientAttribution(per_dim.sum(-1), per_dim, f, "gradient_x_input")


# ---- integrated gradients ---------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _quadrature(steps: int, method: str) -> tuple[torch.Tensor, torch.Tensor]:
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


def _baseline(model, tokens: torch.Tensor, x: torch.Tensor, baseline, at: str, metric: Metric):
    """The baseline activation ``[batch, pos, d]`` at ``at`` and the metric on it ``[batch]``."""
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
        return _record(model, torch.full_like(tokens, baseline), at, metric, baseline=True)
    baseline = torch.as_tensor(baseline)
    if not baseline.is_floating_point():  # baseline tokens
        if baseline.shape != tokens.shape and baseline.dim() == 1:
            baseline = baseline.expand_as(tokens)
        if baseline.shape != tokens.shape:
            raise ValueError(
                f"baseline tokens have shape {list(baseline.shape)}; expected the tokens' "
                f"shape {list(tokens.shape)}."
            )
        return _record(model, baseline.to(tokens.device), at, metric, baseline=True)
    try:
        base = baseline.to(x.device, x.dtype).expand_as(x).contiguous()
    except RuntimeError as err:
        raise ValueError(
            f"baseline activation has shape {list(baseline.shape)}; expected {list(x.shape)} "
            f"(the activation at {at!r}) or something that broadcasts to it."
        ) from err
    return base, _record(model, tokens, at, metric, replace=base)[1]


def integrated_gradients(
    model,
    tokens,
    metric: Metric,
    *,
    baseline="zeros",
    steps: int = 50,
    method: str = "gausslegendre",
    at: str = "hook_embed",
    chunk_size: int | None = None,
    tol: float = 0.01,
) -> IGResult:
    """Integrated gradients (Sundararajan et al. 2017) over the activation at ``at``.

    ``IG_i = (x_i - x'_i) * integral_0^1 d metric / d x_i (x' + a (x - x')) da``, the
    integral by a quadrature of ``steps`` points: ``"gausslegendre"`` (Captum's default)
    or ``"riemann_trapezoid"`` / ``"riemann_left"`` / ``"riemann_middle"`` /
    ``"riemann_right"``. tokens ``[batch, pos]``; metric ``logits -> [batch]``.

    baseline ``x'``: ``"zeros"``; ``"pad"`` (every token replaced by the tokenizer's pad id,
    0 without one); a token id; baseline tokens ``[batch, pos]``; or an activation
    ``[batch, pos, d_model]``. Token baselines go through the model up to ``at``, as in
    Captum's ``LayerIntegratedGradients``.

    All steps of all prompts run as one forward and backward pass of ``steps * batch`` rows,
    or in chunks of ``chunk_size`` rows (memory); ``f(input)`` and ``f(baseline)`` for the
    completeness check come from the no-grad passes that record ``x`` and ``x'``.
    Returns an :class:`IGResult`; warns when a completeness error exceeds ``tol``
    (relative) -- then raise ``steps``.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}; expected a positive integer (e.g. 50).")
    alphas, weights = _quadrature(steps, method)
    tokens = _tokens(model, tokens)
    _check_at(model, at)
    batch = tokens.shape[0]
    # f(input) and f(baseline) come from the forwards that record x and x' (no grad).
    x, f_in = _record(model, tokens, at, metric)
    base, f_base = _baseline(model, tokens, x, baseline, at, metric)
    diff = x - base

    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size}; expected a positive number of rows or None.")
    per_chunk = max(1, (chunk_size or steps * batch) // batch)
    total = torch.zeros_like(x)
    for start in range(0, steps, per_chunk):
        a = alphas[start : start + per_chunk].to(x.device, x.dtype)  # [k]
        w = weights[start : start + per_chunk].to(x.device, x.dtype)  # [k]
        values = (base[None] + a[:, None, None, None] * diff[None]).flatten(0, 1)
        _, grad = _grad_at(model, tokens, at, values, metric, batch)
        total = total + torch.einsum("k,kbpd->bpd", w, grad.view(len(a), *x.shape))
    per_dim = diff * total
    attributions = per_dim.sum(-1)
    gap = f_in - f_base
    err = (attributions.sum(-1) - gap).abs() / gap.abs().clamp_min(1e-12)
    res = IGResult(attributions, per_dim, f_in, f_base, err, steps, method)
    bad = [i for i in range(batch) if err[i] > tol and gap[i].abs() > 1e-6]
    if bad:
        worst = float(err[bad].max())
        warnings.warn(
            f"integrated_gradients: completeness error {worst:.2%} > tol {tol:.0%} for "
            f"prompt(s) {bad[:10]} (attributions should sum to f(input) - f(baseline)); "
            f"the integral is under-resolved with steps={steps}: raise the step count "
            f"(e.g. steps={max(2 * steps, 100)}).",
            stacklevel=2,
        )
    return res
