"""Exercises of notebook 08 (activation patching): the metric, patching hooks, both directions.

Meng et al. (2022) (causal tracing, denoising); Vig et al. (2020) (causal mediation, noising);
Heimersheim & Nanda (2024), "How to use and interpret activation patching"; Zhang & Nanda
(2024), "Towards Best Practices of Activation Patching in Language Models".
"""

from __future__ import annotations

from functools import cache

import torch

from . import exercise

NB = "08_activation_patching"


@cache
def _model():
    import mechscope

    return mechscope.load("facts-ioi-2l")


@cache
def _facts() -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Colosseum / Louvre as ``[1, pos]`` tokens, and the ids of Rome and Paris."""
    from mechscope.toy.facts import canonical_pairs

    model, pair = _model(), canonical_pairs()[0]
    ids = model.tokenizer.ids
    return (
        model.to_tokens(pair.clean),
        model.to_tokens(pair.corrupted),
        ids[pair.answer],
        ids[pair.wrong],
    )


def _random_pair(seed: int, shape=(2, 5)) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    d_vocab = _model().cfg.d_vocab
    return (
        torch.randint(0, d_vocab, shape, generator=gen),
        torch.randint(0, d_vocab, shape, generator=gen),
    )


# ---- 1. the normalised metric ------------------------------------------------------------


def _metric_cases():
    gen = torch.Generator().manual_seed(0)
    return {
        "values [6], clean 12.7, corrupted -12.5": (
            torch.randn(6, generator=gen) * 10,
            12.7,
            -12.5,
        ),
        "values [4], per-prompt clean and corrupted [4]": (
            torch.randn(4, generator=gen),
            torch.rand(4, generator=gen) + 2,
            -torch.rand(4, generator=gen) - 1,
        ),
    }


@exercise(
    "08.normalized_metric",
    notebook=NB,
    title="The normalised metric",
    difficulty=1,
    minutes=5,
    cases=_metric_cases,
    mistakes=[
        (
            "1 minus the answer: 0 must be the corrupted run and 1 the clean run, not the reverse",
            lambda values, clean_value, corrupted_value: (
                (values - clean_value) / (corrupted_value - clean_value)
            ),
        ),
        (
            "the wrong sign: divided by (corrupted - clean)",
            lambda values, clean_value, corrupted_value: (
                (values - corrupted_value) / (corrupted_value - clean_value)
            ),
        ),
        (
            "forgot to subtract the corrupted value before dividing",
            lambda values, clean_value, corrupted_value: values / (clean_value - corrupted_value),
        ),
    ],
)
def normalized_metric(values, clean_value, corrupted_value):
    """values ``[batch]`` (a metric on patched runs), clean_value and corrupted_value (floats or
    ``[batch]``) -> ``[batch]``: ``(values - corrupted) / (clean - corrupted)``, so 0 = the
    corrupted run and 1 = the clean run."""
    return (values - corrupted_value) / (clean_value - corrupted_value)


# ---- 2. a patching hook at one position --------------------------------------------------


def _position_cases():
    clean, corrupted, _, _ = _facts()
    return {
        "random tokens [2, 5], blocks.1.hook_resid_pre, pos 2": (
            _model(),
            *_random_pair(1),
            "blocks.1.hook_resid_pre",
            2,
        ),
        "Colosseum -> Louvre, blocks.0.hook_resid_pre, pos 2 (the subject)": (
            _model(),
            clean,
            corrupted,
            "blocks.0.hook_resid_pre",
            2,
        ),
        "Colosseum -> Louvre, blocks.0.hook_attn_out, pos -1": (
            _model(),
            clean,
            corrupted,
            "blocks.0.hook_attn_out",
            -1,
        ),
    }


def _patched(model, source, target, hook, where):
    _, cache_ = model.run_with_cache(source, names=[hook])
    value = cache_[hook]

    def write(act, hook_point):
        act = act.clone()
        act[:, where] = value[:, where]
        return act

    with model.hooks([(hook, write)]):
        return model(target)


@exercise(
    "08.patch_position",
    notebook=NB,
    title="A patching hook: the clean activation at one position",
    difficulty=2,
    minutes=15,
    cases=_position_cases,
    mistakes=[
        (
            "patched every position, not only pos",
            lambda model, clean, corrupted, hook, pos: _patched(
                model, clean, corrupted, hook, slice(None)
            ),
        ),
        (
            "off by one: patched position pos + 1",
            lambda model, clean, corrupted, hook, pos: _patched(
                model, clean, corrupted, hook, pos + 1
            ),
        ),
        (
            "noising, not denoising: ran the clean prompt with the corrupted activation",
            lambda model, clean, corrupted, hook, pos: _patched(model, corrupted, clean, hook, pos),
        ),
    ],
)
def patch_position(model, clean, corrupted, hook: str, pos: int) -> torch.Tensor:
    """Denoising at one site: logits ``[batch, pos, d_vocab]`` of ``model`` on ``corrupted``
    (``[batch, pos]`` tokens) with the activation at ``hook``, position ``pos``, replaced by
    its value on ``clean``."""
    _, clean_cache = model.run_with_cache(clean, names=[hook])
    clean_act = clean_cache[hook]  # [batch, pos, ...]

    def write_clean(act, hook_point):
        act = act.clone()
        act[:, pos] = clean_act[:, pos]
        return act

    with model.hooks([(hook, write_clean)]):
        return model(corrupted)


# ---- 3. one head ---------------------------------------------------------------------------


def _head_cases():
    clean, corrupted, _, _ = _facts()
    return {
        "random tokens [2, 5], layer 1, head 2": (_model(), *_random_pair(2), 1, 2),
        "Colosseum -> Louvre, layer 0, head 0": (_model(), clean, corrupted, 0, 0),
        "Colosseum -> Louvre, layer 0, head 3": (_model(), clean, corrupted, 0, 3),
    }


def _head_patched(model, source, target, layer, where):
    hook = f"blocks.{layer}.attn.hook_z"
    _, cache_ = model.run_with_cache(source, names=[hook])
    value = cache_[hook]

    def write(act, hook_point):
        act = act.clone()
        act[where] = value[where]
        return act

    with model.hooks([(hook, write)]):
        return model(target)


@exercise(
    "08.patch_head",
    notebook=NB,
    title="Patch one head's output",
    difficulty=2,
    minutes=10,
    cases=_head_cases,
    mistakes=[
        (
            "indexed the position axis (z[:, head]) instead of the head axis (z[:, :, head])",
            lambda model, clean, corrupted, layer, head: _head_patched(
                model, clean, corrupted, layer, (slice(None), head)
            ),
        ),
        (
            "patched every head of the layer",
            lambda model, clean, corrupted, layer, head: _head_patched(
                model, clean, corrupted, layer, (slice(None),)
            ),
        ),
        (
            "noising, not denoising: ran the clean prompt with the corrupted head",
            lambda model, clean, corrupted, layer, head: _head_patched(
                model, corrupted, clean, layer, (slice(None), slice(None), head)
            ),
        ),
    ],
)
def patch_head(model, clean, corrupted, layer: int, head: int) -> torch.Tensor:
    """Denoising one head: logits ``[batch, pos, d_vocab]`` of ``model`` on ``corrupted`` with
    head ``head``'s output ``blocks.{layer}.attn.hook_z`` (``[batch, pos, head, d_head]``)
    replaced, at every position, by its value on ``clean``."""
    hook = f"blocks.{layer}.attn.hook_z"
    _, clean_cache = model.run_with_cache(clean, names=[hook])
    clean_z = clean_cache[hook]

    def write_clean(z, hook_point):
        z = z.clone()
        z[:, :, head] = clean_z[:, :, head]
        return z

    with model.hooks([(hook, write_clean)]):
        return model(corrupted)


# ---- 4. both directions ------------------------------------------------------------------


def _both_cases():
    from mechscope.metrics import logit_diff, normalized

    model = _model()
    clean, corrupted, rome, paris = _facts()
    ld = logit_diff(rome, paris)
    with torch.no_grad():
        score = normalized(ld, ld(model(clean)), ld(model(corrupted)))
    return {
        "random tokens [2, 5], logit 3 - logit 7, blocks.0.hook_mlp_out, pos 4": dict(
            model=model,
            clean=_random_pair(3)[0],
            corrupted=_random_pair(3)[1],
            metric=logit_diff(3, 7),
            hook="blocks.0.hook_mlp_out",
            pos=4,
        ),
        "Colosseum -> Louvre, normalised Rome - Paris, blocks.0.hook_mlp_out, pos -1": dict(
            model=model,
            clean=clean,
            corrupted=corrupted,
            metric=score,
            hook="blocks.0.hook_mlp_out",
            pos=-1,
        ),
    }


def _both(model, clean, corrupted, metric, hook, pos, order):
    runs = {
        "den": _patched(model, clean, corrupted, hook, pos),
        "noi": _patched(model, corrupted, clean, hook, pos),
    }
    return torch.stack([metric(runs[k]).mean() for k in order])


@exercise(
    "08.patch_both_ways",
    notebook=NB,
    title="Noising and denoising one site by hand",
    difficulty=2,
    minutes=10,
    cases=_both_cases,
    mistakes=[
        (
            "the two directions swapped: [noising, denoising]",
            lambda model, clean, corrupted, metric, hook, *, pos: _both(
                model, clean, corrupted, metric, hook, pos, ("noi", "den")
            ),
        ),
        (
            "both runs denoise: noising runs the *clean* prompt with the *corrupted* activation",
            lambda model, clean, corrupted, metric, hook, *, pos: _both(
                model, clean, corrupted, metric, hook, pos, ("den", "den")
            ),
        ),
    ],
)
def patch_both_ways(model, clean, corrupted, metric, hook: str, *, pos: int) -> torch.Tensor:
    """``[2]``: ``metric`` (``logits -> [batch]``, averaged over the batch) of the denoised run
    (``corrupted`` with ``clean``'s activation at ``hook``, ``pos``) and of the noised run
    (``clean`` with ``corrupted``'s activation there)."""

    def run(source, target):
        _, source_cache = model.run_with_cache(source, names=[hook])
        value = source_cache[hook]

        def write(act, hook_point):
            act = act.clone()
            act[:, pos] = value[:, pos]
            return act

        with model.hooks([(hook, write)]):
            return metric(model(target)).mean()

    return torch.stack([run(clean, corrupted), run(corrupted, clean)])
