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
Any other hook point works too (``hook="blocks.0.hook_resid_pre"``: the whole input
residual). Integrated gradients batches the interpolation steps into as few forward and
backward passes as ``batch_size`` allows.

A metric is ``metric(logits) -> [batch]``: one number per prompt, e.g.
``mechscope.metrics.logit_diff(answer_ids, wrong_ids)``. It is always called on a
batch shaped like ``tokens``, so per-prompt answer ids work.

The model is left as it came: hooks are removed in a ``finally``; parameters get no
``.grad`` and keep their ``requires_grad``; the mode (train/eval) is not touched.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ._attribution_grad import (
    baseline_activation,
    check_hook,
    grad_at,
    gradient,
    int_tokens,
    quadrature,
    record,
)
from .metrics import logit_diff

__all__ = [
    "GradientAttribution",
    "IGResult",
    "LogitAttributionResult",
    "direct_logit_attribution",
    "gradient_x_input",
    "integrated_gradients",
    "logit_metric",
    "saliency",
]

Metric = Callable[[torch.Tensor], torch.Tensor]


# ---- direct logit attribution ---------------------------------------------------


@dataclass(frozen=True)
class LogitAttributionResult:
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
) -> LogitAttributionResult:
    """Direct logit attribution (Elhage et al. 2021) from an :class:`ActivationCache`.

    by: ``"head"``: each head's write ``z @ W_O`` (needs every ``attn.hook_z``);
    ``"component"``: embeddings, each attention and MLP output (needs ``hook_embed``,
    ``hook_pos_embed``, ``hook_attn_out``, ``hook_mlp_out``). Both divide by the real
    final residual's norm scale (``ln_final.hook_scale`` or the last ``hook_resid_post``).
    ``model.run_with_cache(tokens)`` (all names) has everything.

    answer_ids / wrong_ids: one id, or ``[batch]`` ids (``[batch, pos]`` with
    ``pos=None``). With ``wrong_ids`` the values are logit differences.
    pos: the position scored (default the last); None scores every position.
    Returns a :class:`LogitAttributionResult` with values ``[component, batch]``
    (``[component, batch, pos]`` for ``pos=None``).
    """
    if by not in ("head", "component"):
        raise ValueError(f"by={by!r}; expected 'head' or 'component'.")
    if not cache.has_batch_dim:
        raise ValueError(
            "direct_logit_attribution needs a cache with its batch axis; run_with_cache "
            "without remove_batch_dim=True."
        )
    if getattr(cache.model, "weightless", False):  # remote nnsight: a few KB from the server
        return _weightless_dla(cache, answer_ids, wrong_ids, by, pos)
    if by == "head":
        stack, labels = cache.stack_head_results(pos_slice=pos, apply_ln=True)
    else:
        stack, labels = cache.decompose_resid(pos_slice=pos, apply_ln=True)
    off = cache.unembed_offset().to(stack.device, stack.dtype)
    shape, n_vocab = stack.shape[1:-1], off.shape[0]
    answer = _ids_for(answer_ids, shape, "answer_ids", n_vocab)
    wrong = None if wrong_ids is None else _ids_for(wrong_ids, shape, "wrong_ids", n_vocab)
    values = cache.logit_attrs(stack, answer, wrong)
    offset = off[answer] - (off[wrong] if wrong is not None else 0)
    return LogitAttributionResult(values=values, labels=labels, offset=offset, by=by)


def _weightless_dla(cache, answer_ids, wrong_ids, by: str, pos) -> LogitAttributionResult:
    """DLA of a weightless (remote nnsight) model: the answer and wrong ids' readout rows,
    offsets and (by head) ``W_O`` projected on them come from one trace on the server."""
    from .models import _nnsight_readout

    z = cache[f"blocks.{cache.model.cfg.n_layers - 1}.hook_resid_post"]
    shape = z[:, pos].shape[:-1] if pos is not None else z.shape[:-1]
    n_vocab = cache.model.cfg.d_vocab
    answer = _ids_for(answer_ids, shape, "answer_ids", n_vocab)
    wrong = None if wrong_ids is None else _ids_for(wrong_ids, shape, "wrong_ids", n_vocab)
    values, labels, offset = _nnsight_readout.direct_logit_attribution(
        cache, answer, wrong, by, pos
    )
    return LogitAttributionResult(values=values, labels=labels, offset=offset, by=by)


def _ids_for(ids, shape: torch.Size, what: str, n_vocab: int) -> torch.Tensor:
    try:
        ids = torch.as_tensor(ids)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{what}={ids!r}; expected integer token ids (one, or one per prompt), e.g. "
            f"model.to_single_token(' Mary')."
        ) from err
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(f"{what} must be integer token ids, got dtype {ids.dtype}.")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n_vocab):
        raise ValueError(
            f"{what} holds ids {ids.flatten().tolist()[:8]} outside the vocabulary 0.."
            f"{n_vocab - 1}; pass token ids of this model (model.to_tokens / to_single_token)."
        )
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


def saliency(model, tokens, metric: Metric, *, hook: str = "hook_embed") -> GradientAttribution:
    """Gradient saliency (Simonyan et al. 2014): ``|d metric / d x|`` at the embeddings.

    tokens ``[batch, pos]``; metric ``logits -> [batch]``. attributions ``[batch, pos]``
    is the L2 norm over d_model of the gradient (unsigned: how sensitive, not which way);
    per_dim ``[batch, pos, d_model]`` the gradient itself.
    """
    _, f, grad = gradient(model, tokens, metric, hook)
    return GradientAttribution(grad.norm(dim=-1), grad, f, "saliency")


def gradient_x_input(
    model, tokens, metric: Metric, *, hook: str = "hook_embed"
) -> GradientAttribution:
    """Gradient x input (Shrikumar et al. 2016; Denil et al. 2014): ``x * d metric / d x``.

    tokens ``[batch, pos]``; metric ``logits -> [batch]``. attributions ``[batch, pos]``
    (signed, summed over d_model); per_dim ``[batch, pos, d_model]``. Equals integrated
    gradients with a zero baseline when the metric is linear in ``x``.
    """
    x, f, grad = gradient(model, tokens, metric, hook)
    per_dim = grad * x
    return GradientAttribution(per_dim.sum(-1), per_dim, f, "gradient_x_input")


def smoothgrad(
    model,
    tokens,
    metric: Metric,
    *,
    n_samples: int = 32,
    sigma: float = 0.15,
    hook: str = "hook_embed",
    seed: int = 0,
) -> GradientAttribution:
    """SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy copies of ``x``.

    Raw gradients of a ReLU/GELU network are noisy: they jump between nearby inputs.
    SmoothGrad averages ``d metric / d x`` over ``n_samples`` points ``x + eps``,
    ``eps ~ N(0, (sigma * (max x - min x))^2)`` per prompt (the paper's noise level,
    10-20% of the input's range). attributions ``[batch, pos]``: the signed mean gradient
    times ``x``, summed over d_model (SmoothGrad applied to gradient x input, so it is
    comparable with integrated gradients); per_dim ``[batch, pos, d_model]`` the mean
    gradient. All samples run as one forward and backward pass. Seeded; the global RNG is
    untouched.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples={n_samples!r}; expected a positive integer (e.g. 32).")
    if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or sigma < 0:
        raise ValueError(
            f"sigma={sigma!r}; expected a noise level >= 0 as a fraction of the input's range "
            f"(Smilkov et al. use 0.1-0.2)."
        )
    tokens = int_tokens(model, tokens)
    check_hook(model, hook)
    x, f = record(model, tokens, hook, metric)
    batch = tokens.shape[0]
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(batch, 1, 1)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn((n_samples, *x.shape), generator=gen, dtype=x.dtype).to(x.device)
    values = (x[None] + sigma * span[None] * noise).flatten(0, 1)
    _, grad = grad_at(model, tokens, hook, values, metric, batch)
    mean = grad.view(n_samples, *x.shape).mean(0)
    return GradientAttribution((mean * x).sum(-1), mean, f, "smoothgrad")


# ---- integrated gradients ---------------------------------------------------------


def integrated_gradients(
    model,
    tokens,
    metric: Metric,
    *,
    baseline="zeros",
    steps: int = 50,
    method: str = "gausslegendre",
    hook: str = "hook_embed",
    batch_size: int | None = None,
    tol: float = 0.01,
) -> IGResult:
    """Integrated gradients (Sundararajan et al. 2017) over the activation at ``hook``.

    ``IG_i = (x_i - x'_i) * integral_0^1 d metric / d x_i (x' + a (x - x')) da``, the
    integral by a quadrature of ``steps`` points: ``"gausslegendre"`` (Captum's default)
    or ``"riemann_trapezoid"`` / ``"riemann_left"`` / ``"riemann_middle"`` /
    ``"riemann_right"``. tokens ``[batch, pos]``; metric ``logits -> [batch]``.

    baseline ``x'``: ``"zeros"``; ``"pad"`` (every token replaced by the tokenizer's pad id,
    0 without one); a token id; baseline tokens ``[batch, pos]``; or an activation
    ``[batch, pos, d_model]``. Token baselines go through the model up to ``hook``, as in
    Captum's ``LayerIntegratedGradients``.

    All steps of all prompts run as one forward and backward pass of ``steps * batch`` rows,
    or in passes of ``batch_size`` rows (memory); ``f(input)`` and ``f(baseline)`` for the
    completeness check come from the no-grad passes that record ``x`` and ``x'``.
    Returns an :class:`IGResult`; warns when a completeness error exceeds ``tol``
    (relative) -- then raise ``steps``.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}; expected a positive integer (e.g. 50).")
    alphas, weights = quadrature(steps, method)
    tokens = int_tokens(model, tokens)
    check_hook(model, hook)
    batch = tokens.shape[0]
    # f(input) and f(baseline) come from the forwards that record x and x' (no grad).
    x, f_in = record(model, tokens, hook, metric)
    base, f_base = baseline_activation(model, tokens, x, baseline, hook, metric)
    diff = x - base

    if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(
            f"batch_size={batch_size!r}; expected a positive number of rows per pass, or None."
        )
    per_chunk = max(1, (batch_size or steps * batch) // batch)
    total = torch.zeros_like(x)
    for start in range(0, steps, per_chunk):
        a = alphas[start : start + per_chunk].to(x.device, x.dtype)  # [k]
        w = weights[start : start + per_chunk].to(x.device, x.dtype)  # [k]
        values = (base[None] + a[:, None, None, None] * diff[None]).flatten(0, 1)
        _, grad = grad_at(model, tokens, hook, values, metric, batch)
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
