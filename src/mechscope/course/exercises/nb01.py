"""Exercises of notebook 01 (paradigms): a logit difference, integrated gradients and its
completeness, direct logit attribution per head.

Sundararajan et al. (2017), "Axiomatic Attribution for Deep Networks"; Elhage et al. (2021),
"A Mathematical Framework for Transformer Circuits".
"""

from __future__ import annotations

from functools import cache

import torch

from . import exercise

NB = "01_paradigms"


@cache
def _ioi() -> tuple:
    """facts-ioi-2l, 4 held-out IOI prompts ``[4, 15]``, their answer / wrong ids ``[4]``,
    logits ``[4, 15, d_vocab]`` and a full cache."""
    import mechscope
    from mechscope.toy.facts import sample_pairs

    model = mechscope.load("facts-ioi-2l")
    ids = model.tokenizer.ids
    pairs = sample_pairs("ioi", "heldout", 4, seed=5)
    tokens = torch.cat([model.to_tokens(p.clean) for p in pairs])
    answers = torch.tensor([ids[p.answer] for p in pairs])
    wrongs = torch.tensor([ids[p.wrong] for p in pairs])
    with torch.no_grad():
        logits, cache_ = model.run_with_cache(tokens)
    return model, tokens, answers, wrongs, logits, cache_


# ---- 01.logit_difference ------------------------------------------------------------


def _logit_cases():
    gen = torch.Generator().manual_seed(0)
    _, _, answers, wrongs, logits, _ = _ioi()
    return {
        "random logits [3, 5, 11], answers [3], wrong [3]": (
            torch.randn(3, 5, 11, generator=gen),
            torch.tensor([1, 4, 7]),
            torch.tensor([2, 0, 9]),
        ),
        "facts-ioi-2l on 4 held-out IOI prompts": (logits, answers, wrongs),
    }


def _at(logits: torch.Tensor, pos: int, ids: torch.Tensor) -> torch.Tensor:
    return logits[torch.arange(logits.shape[0]), pos, ids]


@exercise(
    "01.logit_difference",
    notebook=NB,
    title="The logit difference",
    difficulty=1,
    minutes=5,
    cases=_logit_cases,
    mistakes=[
        (
            "the wrong answer minus the right one (sign swapped)",
            lambda lg, a, w: _at(lg, -1, w) - _at(lg, -1, a),
        ),
        (
            "read at the first position, not the last (the prediction after the whole prompt)",
            lambda lg, a, w: _at(lg, 0, a) - _at(lg, 0, w),
        ),
        (
            "one shared id per batch: indexed logits[:, -1, answer_ids] ([batch, batch], "
            "not one answer per prompt)",
            lambda lg, a, w: lg[:, -1, a] - lg[:, -1, w],
        ),
    ],
)
def logit_difference(
    logits: torch.Tensor, answer_ids: torch.Tensor, wrong_ids: torch.Tensor
) -> torch.Tensor:
    """``logits [batch, pos, d_vocab]``, ``answer_ids``, ``wrong_ids`` ``[batch]`` ->
    ``[batch]``: ``logit(answer) - logit(wrong)`` at the last position of each prompt."""
    last = logits[:, -1]  # [batch, d_vocab]
    rows = torch.arange(last.shape[0])
    return last[rows, answer_ids] - last[rows, wrong_ids]


# ---- 01.ig_trapezoid ----------------------------------------------------------------


def _toy_f(z: torch.Tensor) -> torch.Tensor:
    """A small nonlinear function ``[n, 6] -> [n]`` (so the path matters)."""
    w = torch.linspace(-1.0, 1.5, z.shape[-1])
    return (torch.tanh(z) * w).sum(-1) + z[..., 0] * z[..., 1] + 0.5 * z[..., 2] ** 2


def _toy_g(z: torch.Tensor) -> torch.Tensor:
    """``[n, 2, 3] -> [n]``: a softplus of a bilinear form."""
    return torch.nn.functional.softplus(z[..., 0, :] * z[..., 1, :]).sum(-1)


def _ig_cases():
    gen = torch.Generator().manual_seed(1)
    return {
        "toy f: R^6 -> R, zero baseline, 8 steps": (
            _toy_f,
            torch.randn(6, generator=gen),
            torch.zeros(6),
            8,
        ),
        "toy g: R^(2x3) -> R, random baseline, 20 steps": (
            _toy_g,
            torch.randn(2, 3, generator=gen),
            torch.randn(2, 3, generator=gen),
            20,
        ),
    }


def _ig_left(f, x, baseline, steps):
    alphas = torch.arange(steps, dtype=x.dtype) / steps
    path = (baseline + alphas.view(-1, *[1] * x.dim()) * (x - baseline)).requires_grad_(True)
    (grads,) = torch.autograd.grad(f(path).sum(), path)
    return (x - baseline) * grads.mean(0)


def _ig_no_diff(f, x, baseline, steps):
    return ig_trapezoid(f, x, baseline, steps) / (x - baseline)


def _grad_times_diff(f, x, baseline, steps):
    point = x[None].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(point).sum(), point)
    return (x - baseline) * grad[0]


@exercise(
    "01.ig_trapezoid",
    notebook=NB,
    title="Integrated gradients by the trapezoid rule",
    difficulty=2,
    minutes=15,
    cases=_ig_cases,
    mistakes=[
        (
            "a left Riemann sum (alphas 0, 1/steps, ..., never the input itself), not the "
            "trapezoid rule",
            _ig_left,
        ),
        ("forgot to multiply the averaged gradient by (x - baseline)", _ig_no_diff),
        (
            "the gradient at the input only, times (x - baseline): no path integral",
            _grad_times_diff,
        ),
    ],
)
def ig_trapezoid(f, x: torch.Tensor, baseline: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrated gradients of ``f`` at ``x`` from ``baseline`` (both ``[*shape]``), the
    integral over ``alpha`` in [0, 1] by the trapezoid rule on ``steps`` equally spaced
    points. ``f`` maps a batch ``[n, *shape]`` to ``[n]``. Returns ``[*shape]``."""
    alphas = torch.linspace(0, 1, steps, dtype=x.dtype)
    weights = torch.full((steps,), 1.0 / (steps - 1), dtype=x.dtype)
    weights[0] = weights[-1] = 0.5 / (steps - 1)
    shape = (steps,) + (1,) * x.dim()
    path = baseline + alphas.view(shape) * (x - baseline)  # [steps, *shape]
    path.requires_grad_(True)
    (grads,) = torch.autograd.grad(f(path).sum(), path)
    return (x - baseline) * (weights.view(shape) * grads).sum(0)


# ---- 01.completeness_gap ------------------------------------------------------------


def _gap_cases():
    gen = torch.Generator().manual_seed(2)
    return {
        "random attributions [4, 7], f_input [4], f_baseline [4]": (
            torch.randn(4, 7, generator=gen),
            torch.randn(4, generator=gen) * 3,
            torch.randn(4, generator=gen),
        ),
        "random attributions [2, 15]": (
            torch.randn(2, 15, generator=gen),
            torch.tensor([11.4, -2.0]),
            torch.tensor([2.9, 1.0]),
        ),
    }


@exercise(
    "01.completeness_gap",
    notebook=NB,
    title="The completeness gap",
    difficulty=1,
    minutes=5,
    cases=_gap_cases,
    mistakes=[
        (
            "the absolute gap, not divided by |f(input) - f(baseline)|",
            lambda a, fi, fb: (a.sum(-1) - (fi - fb)).abs(),
        ),
        (
            "the signed gap: forgot the absolute value",
            lambda a, fi, fb: (a.sum(-1) - (fi - fb)) / (fi - fb).abs(),
        ),
        (
            "compared with f(baseline) - f(input) (sign swapped)",
            lambda a, fi, fb: (a.sum(-1) - (fb - fi)).abs() / (fi - fb).abs(),
        ),
    ],
)
def completeness_gap(
    attributions: torch.Tensor, f_input: torch.Tensor, f_baseline: torch.Tensor
) -> torch.Tensor:
    """``attributions [batch, pos]``, ``f_input``, ``f_baseline`` ``[batch]`` -> ``[batch]``:
    ``|sum_pos attributions - (f_input - f_baseline)| / |f_input - f_baseline|``."""
    gap = f_input - f_baseline
    return (attributions.sum(-1) - gap).abs() / gap.abs()


# ---- 01.head_logit_attribution --------------------------------------------------------


def _dla_cases():
    model, tokens, answers, wrongs, _, cache_ = _ioi()
    untrained = _untrained(model)
    with torch.no_grad():
        _, untrained_cache = untrained.run_with_cache(tokens)
    return {
        "facts-ioi-2l on 4 held-out IOI prompts (IO vs S)": (cache_, model, answers, wrongs),
        "the same architecture, untrained, same prompts": (
            untrained_cache,
            untrained,
            answers,
            wrongs,
        ),
    }


@cache
def _untrained(model):
    import mechscope

    return mechscope.Transformer(model.cfg, tokenizer=model.tokenizer).eval()


def _dla(cache_, model, answer_ids, wrong_ids, *, centre=True, scale=True, gain=True):
    n = model.cfg.n_layers
    resid = cache_["resid_post", n - 1][:, -1]  # [batch, d_model]
    ln = model.ln_final
    sd = (resid - resid.mean(-1, keepdim=True)).pow(2).mean(-1, keepdim=True).add(ln.eps).sqrt()
    direction = model.W_U[:, answer_ids] - model.W_U[:, wrong_ids]  # [d_model, batch]
    if gain:
        direction = ln.w[:, None] * direction
    out = []
    for layer in range(n):
        z = cache_["z", layer][:, -1]  # [batch, head, d_head]
        heads = torch.einsum("bhe,hed->bhd", z, model.blocks[layer].attn.W_O)
        if centre:
            heads = heads - heads.mean(-1, keepdim=True)
        if scale:
            heads = heads / sd[:, None]
        out.append(torch.einsum("bhd,db->bh", heads, direction))
    return torch.stack(out, 1).detach()  # [batch, layer, head]


@exercise(
    "01.head_logit_attribution",
    notebook=NB,
    title="Direct logit attribution per head",
    difficulty=3,
    minutes=20,
    cases=_dla_cases,
    atol=1e-4,
    mistakes=[
        (
            "forgot to divide by the final LayerNorm's scale (of the real final residual)",
            lambda c, m, a, w: _dla(c, m, a, w, scale=False),
        ),
        (
            "forgot to centre each head's output (LayerNorm subtracts the mean over d_model)",
            lambda c, m, a, w: _dla(c, m, a, w, centre=False),
        ),
        (
            "forgot the final LayerNorm's weight ln_final.w",
            lambda c, m, a, w: _dla(c, m, a, w, gain=False),
        ),
    ],
)
def head_logit_attribution(cache, model, answer_ids, wrong_ids) -> torch.Tensor:
    """Each head's direct contribution to ``logit(answer) - logit(wrong)`` at the last
    position: ``cache`` from ``model.run_with_cache(tokens)`` (``[batch, pos]``),
    ``answer_ids``, ``wrong_ids`` ``[batch]`` -> ``[batch, layer, head]``. A head writes
    ``z @ W_O``; the final LayerNorm is linear once its scale (that of the real final
    residual) is fixed: centre, divide by the scale, multiply by ``ln_final.w``, unembed."""
    n = model.cfg.n_layers
    resid = cache["resid_post", n - 1][:, -1]  # [batch, d_model]
    centred = resid - resid.mean(-1, keepdim=True)
    scale = (centred.pow(2).mean(-1, keepdim=True) + model.ln_final.eps).sqrt()  # [batch, 1]
    w_u = model.ln_final.w[:, None] * model.W_U  # [d_model, d_vocab]
    direction = w_u[:, answer_ids] - w_u[:, wrong_ids]  # [d_model, batch]
    per_layer = []
    for layer in range(n):
        z = cache["z", layer][:, -1]  # [batch, head, d_head]
        heads = torch.einsum("bhe,hed->bhd", z, model.blocks[layer].attn.W_O)
        heads = (heads - heads.mean(-1, keepdim=True)) / scale[:, None]
        per_layer.append(torch.einsum("bhd,db->bh", heads, direction))
    return torch.stack(per_layer, 1).detach()  # [batch, layer, head]
