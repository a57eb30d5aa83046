"""Exercises of notebook 09 (path and attribution patching): gradient x difference.

Nanda (2023), "Attribution Patching: Activation Patching at Industrial Scale"; Syed, Rager &
Conmy (2023), "Attribution Patching Outperforms Automated Circuit Discovery".
"""

from __future__ import annotations

from functools import cache

import torch

from . import exercise

NB = "09_path_and_attribution_patching"


@cache
def _model():
    import mechscope

    return mechscope.load("facts-ioi-2l")


@cache
def _ioi(n: int = 4):
    """``n`` IOI prompts of one length (as in the notebook): clean and corrupted tokens
    ``[n, pos]`` and the normalised logit difference (1 = clean, 0 = corrupted, per prompt)."""
    from mechscope.metrics import logit_diff, normalized
    from mechscope.toy.facts import sample_pairs

    model = _model()
    pairs = [p for p in sample_pairs("ioi", "train", 400, seed=0) if p.clean.startswith("When")]
    length = len(model.to_tokens(pairs[0].clean)[0])
    pairs = [p for p in pairs if len(model.to_tokens(p.clean)[0]) == length][:n]
    clean = model.to_tokens([p.clean for p in pairs])
    corrupted = model.to_tokens([p.corrupted for p in pairs])
    ids = model.tokenizer.ids
    ld = logit_diff([ids[p.answer] for p in pairs], [ids[p.wrong] for p in pairs])
    with torch.no_grad():
        metric = normalized(ld, ld(model(clean)), ld(model(corrupted)))
    return clean, corrupted, metric


def _random_tokens(seed: int, shape=(3, 6)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, _model().cfg.d_vocab, shape, generator=gen)


def _hooks(model) -> list[str]:
    return [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]


# ---- 1. the first-order term -------------------------------------------------------------


def _term_cases():
    gen = torch.Generator().manual_seed(0)
    return {
        "random [2, 5, 16] each": tuple(torch.randn(2, 5, 16, generator=gen) for _ in range(3)),
        "random [4, 7, 32] each": tuple(torch.randn(4, 7, 32, generator=gen) for _ in range(3)),
    }


@exercise(
    "09.attribution_term",
    notebook=NB,
    title="Gradient times difference",
    difficulty=1,
    minutes=5,
    cases=_term_cases,
    mistakes=[
        (
            "the wrong sign: (corrupted - clean) is the noising difference, not denoising's",
            lambda grad, clean_acts, corrupted_acts: (grad * (corrupted_acts - clean_acts)).sum(-1),
        ),
        (
            "summed over positions instead of over d_model",
            lambda grad, clean_acts, corrupted_acts: (grad * (clean_acts - corrupted_acts)).sum(1),
        ),
        (
            "forgot the difference: gradient times the clean activation alone",
            lambda grad, clean_acts, corrupted_acts: (grad * clean_acts).sum(-1),
        ),
    ],
)
def attribution_term(grad: torch.Tensor, clean_acts: torch.Tensor, corrupted_acts: torch.Tensor):
    """grad, clean_acts, corrupted_acts ``[batch, pos, d_model]`` (the gradient taken on the
    corrupted run) -> ``[batch, pos]``: the first-order change of the metric when the clean
    activation is written in at each position, ``(clean - corrupted) . grad`` summed over
    ``d_model`` (Nanda 2023)."""
    return (grad * (clean_acts - corrupted_acts)).sum(-1)


# ---- 2. the gradients --------------------------------------------------------------------


def _grad_cases():
    from mechscope.metrics import logit_diff

    clean, corrupted, metric = _ioi()
    return {
        "random tokens [3, 6], logit 3 - logit 7": (_model(), _random_tokens(0), logit_diff(3, 7)),
        "4 corrupted IOI prompts, normalised logit difference": (_model(), corrupted, metric),
    }


def _detached_grads(model, tokens, metric):
    leaves = {}

    def cut(act, hook_point):
        leaves[hook_point.name] = act.detach().requires_grad_(True)
        return leaves[hook_point.name]

    hooks = _hooks(model)
    with torch.enable_grad(), model.hooks([(h, cut) for h in hooks]):
        value = metric(model(tokens)).mean()
        grads = torch.autograd.grad(value, [leaves[h] for h in hooks], allow_unused=True)
    return torch.stack(
        [torch.zeros_like(leaves[h]) if g is None else g for h, g in zip(hooks, grads, strict=True)]
    )


def _grads(model, tokens, metric, reduce):
    leaves = {}

    def add_leaf(act, hook_point):
        leaves[hook_point.name] = torch.zeros_like(act, requires_grad=True)
        return act + leaves[hook_point.name]

    hooks = _hooks(model)
    with torch.enable_grad(), model.hooks([(h, add_leaf) for h in hooks]):
        value = reduce(metric(model(tokens)))
        return torch.stack(torch.autograd.grad(value, [leaves[h] for h in hooks]))


@exercise(
    "09.resid_grads",
    notebook=NB,
    title="The metric's gradient at every layer's residual stream",
    difficulty=3,
    minutes=20,
    cases=_grad_cases,
    mistakes=[
        (
            "the gradient of the sum over prompts, not the mean (batch times too large)",
            lambda model, tokens, metric: _grads(model, tokens, metric, torch.sum),
        ),
        (
            "each activation detached: the gradient of an early layer then misses every path "
            "through the later hook points (it comes out zero)",
            _detached_grads,
        ),
    ],
)
def resid_grads(model, tokens, metric) -> torch.Tensor:
    """``[layer, batch, pos, d_model]``: the gradient of ``metric(model(tokens)).mean()`` with
    respect to ``blocks.{layer}.hook_resid_pre`` for every layer (``tokens`` ``[batch, pos]``,
    ``metric``: logits -> ``[batch]``). Works whether or not the weights require grad."""
    hooks = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
    leaves = {}

    def add_leaf(act, hook_point):  # a zero leaf keeps the activation on the graph
        leaves[hook_point.name] = torch.zeros_like(act, requires_grad=True)
        return act + leaves[hook_point.name]

    with torch.enable_grad(), model.hooks([(h, add_leaf) for h in hooks]):
        value = metric(model(tokens)).mean()
        grads = torch.autograd.grad(value, [leaves[h] for h in hooks])
    return torch.stack(grads)


# ---- 3. attribution patching of the residual stream ---------------------------------------


def _patch_cases():
    from mechscope.metrics import logit_diff

    clean, corrupted, metric = _ioi()
    return {
        "random tokens [3, 6] each, logit 3 - logit 7": (
            _model(),
            _random_tokens(1),
            _random_tokens(2),
            logit_diff(3, 7),
        ),
        "4 IOI prompts, normalised logit difference": (_model(), clean, corrupted, metric),
    }


def _estimate(model, clean, corrupted, metric, *, at="corrupted", base=True, mean_terms=False):
    hooks = _hooks(model)
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean, names=hooks)
        logits, corrupted_cache = model.run_with_cache(corrupted, names=hooks)
    diff = torch.stack([clean_cache[h] - corrupted_cache[h] for h in hooks])
    grads = resid_grads(model, corrupted if at == "corrupted" else clean, metric)
    terms = (grads * diff).sum(-1)  # [layer, batch, pos]
    terms = terms.mean(1) if mean_terms else terms.sum(1)
    return metric(logits).mean() + terms if base else terms


@exercise(
    "09.attribution_patch_resid",
    notebook=NB,
    title="Attribution patching of the residual stream",
    difficulty=2,
    minutes=15,
    cases=_patch_cases,
    mistakes=[
        (
            "the gradient taken on the clean run: denoising linearises around the corrupted run",
            lambda model, clean, corrupted, metric: _estimate(
                model, clean, corrupted, metric, at="clean"
            ),
        ),
        (
            "forgot the corrupted run's metric: returned only the estimated change",
            lambda model, clean, corrupted, metric: _estimate(
                model, clean, corrupted, metric, base=False
            ),
        ),
        (
            "averaged the terms over prompts although the gradient is already of the mean",
            lambda model, clean, corrupted, metric: _estimate(
                model, clean, corrupted, metric, mean_terms=True
            ),
        ),
    ],
)
def attribution_patch_resid(model, clean, corrupted, metric) -> torch.Tensor:
    """``[layer, pos]``: the attribution-patching estimate of denoising ``resid_pre`` at each
    layer and position, ``metric(corrupted) + (clean - corrupted) . grad`` with the gradient of
    the batch-mean metric on the corrupted run, summed over prompts (so it estimates the mean
    metric of the patched runs, like ``activation_patch(...).values``)."""
    hooks = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean, names=hooks)
        logits, corrupted_cache = model.run_with_cache(corrupted, names=hooks)
    grads = resid_grads(model, corrupted, metric)  # [layer, batch, pos, d_model]
    terms = torch.stack(
        [
            attribution_term(grads[layer], clean_cache[h], corrupted_cache[h])
            for layer, h in enumerate(hooks)
        ]
    )  # [layer, batch, pos]
    return metric(logits).mean() + terms.sum(1)


# ---- 4. how close to exact ---------------------------------------------------------------


def _correlation_cases():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(2, 15, generator=gen)
    return {
        "two random grids [2, 15], offset by 3": (
            a + 3,
            a + 0.5 * torch.randn(2, 15, generator=gen),
        ),
        "two random grids [2, 4]": (
            torch.randn(2, 4, generator=gen),
            torch.randn(2, 4, generator=gen),
        ),
    }


def _cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


@exercise(
    "09.correlation",
    notebook=NB,
    title="How well does the estimate track exact patching?",
    difficulty=1,
    minutes=5,
    cases=_correlation_cases,
    mistakes=[
        (
            "forgot to subtract the means: that is the cosine similarity, not the correlation",
            _cosine,
        ),
        (
            "squared: that is R^2, which hides the sign",
            lambda a, b: float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]) ** 2,
        ),
    ],
)
def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two grids of the same shape (e.g. attribution and exact patching,
    ``[layer, pos]``), over all their entries: a float in [-1, 1]."""
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))
