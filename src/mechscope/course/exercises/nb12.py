"""Exercises of notebook 12 (steering and ablation): add a direction, take an activation away.

Turner et al. (2023), "Activation Addition"; Zou et al. (2023), "Representation Engineering";
Rimsky et al. (2024), "Steering Llama 2 via Contrastive Activation Addition"; Arditi et al.
(2024), "Refusal in Language Models Is Mediated by a Single Direction" (directional
ablation); Chan et al. (2022), "Causal Scrubbing"; Heimersheim & Nanda (2024), "How to use
and interpret activation patching" (zero, mean and resample ablation).
"""

from __future__ import annotations

from functools import cache

import torch

from . import exercise

NB = "12_steering"
SITE = "blocks.1.hook_resid_pre"


@cache
def _grammar():
    """grammar-2l, the number vector at ``SITE`` and the tokens of the notebook's prompts."""
    import mechscope
    from mechscope.steering import steering_vector
    from mechscope.toy import grammar as g

    model = mechscope.load("grammar-2l")

    def phrases(dets):
        return [f"{d} {a} {c}" for d in dets for a in g.ADJECTIVES for c in g.COLOURS]

    positive = model.to_tokens(phrases(g.DET_PLURAL))
    negative = model.to_tokens(phrases(g.DET_SINGULAR))
    vector = steering_vector(model, positive, negative, SITE)
    return model, vector, positive, negative


@cache
def _grammar_acts() -> tuple[torch.Tensor, torch.Tensor]:
    model, _, positive, negative = _grammar()
    with torch.no_grad():
        _, pos_cache = model.run_with_cache(positive, names=[SITE])
        _, neg_cache = model.run_with_cache(negative, names=[SITE])
    return pos_cache[SITE], neg_cache[SITE]


def _randn(seed: int, *shape) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---- the steering vector ----------------------------------------------------------------


def _means_cases():
    positive, negative = _grammar_acts()
    return {
        "random activations [5, 4, 8] and [3, 6, 8]": (_randn(0, 5, 4, 8), _randn(1, 3, 6, 8)),
        "grammar-2l at blocks.1.hook_resid_pre: plural vs singular prompts": (positive, negative),
    }


@exercise(
    "12.difference_of_means",
    notebook=NB,
    title="The steering vector: a difference of means",
    difficulty=1,
    minutes=5,
    cases=_means_cases,
    mistakes=[
        (
            "wrong sign: negative minus positive",
            lambda positive, negative: negative[:, -1].mean(0) - positive[:, -1].mean(0),
        ),
        (
            "averaged over every position, not the last one (where the next word is predicted)",
            lambda positive, negative: positive.mean((0, 1)) - negative.mean((0, 1)),
        ),
        (
            "read the first position instead of the last",
            lambda positive, negative: positive[:, 0].mean(0) - negative[:, 0].mean(0),
        ),
    ],
)
def difference_of_means(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Cached activations ``positive [batch_p, pos_p, d_model]``, ``negative [batch_n, pos_n,
    d_model]`` -> ``[d_model]``: the mean at the last position over ``positive`` minus that
    over ``negative``."""
    return positive[:, -1].mean(0) - negative[:, -1].mean(0)


# ---- a steering hook --------------------------------------------------------------------


def _steered(model, tokens, vector, hook, strength, pos, *, sign=1.0, every=False, scale=True):
    def add(resid, hook):
        resid = resid.clone()
        where = slice(None) if (pos is None or every) else pos
        resid[:, where] = resid[:, where] + sign * (strength if scale else 1.0) * vector
        return resid

    with torch.no_grad(), model.hooks([(hook, add)]):
        return model(tokens)


def _steer_cases():
    model, vector, positive, negative = _grammar()
    import mechscope
    from mechscope.toy.induction import repeated_random_tokens

    induction = mechscope.load("induction-2l")
    rep = repeated_random_tokens(4, 5, induction.cfg.d_vocab, seed=0)
    return {
        "grammar-2l, 6 singular prompts, a random vector, strength 2.0 at pos [3]": {
            "model": model,
            "tokens": negative[:6],
            "vector": 0.5 * _randn(2, vector.shape[0]),
            "hook": SITE,
            "strength": 2.0,
            "pos": [3],
        },
        "grammar-2l, 6 singular prompts, the number vector, strength 0.5 at every position": {
            "model": model,
            "tokens": negative[:6],
            "vector": vector,
            "hook": SITE,
            "strength": 0.5,
            "pos": None,
        },
        "induction-2l, 4 repeated sequences, a random vector at blocks.0.hook_resid_post, "
        "strength -1.5 at pos [0, 2, 7]": {
            "model": induction,
            "tokens": rep,
            "vector": _randn(3, induction.cfg.d_model),
            "hook": "blocks.0.hook_resid_post",
            "strength": -1.5,
            "pos": [0, 2, 7],
        },
    }


@exercise(
    "12.steered_logits",
    notebook=NB,
    title="A steering hook",
    difficulty=2,
    minutes=10,
    cases=_steer_cases,
    mistakes=[
        (
            "added the vector at every position, ignoring pos",
            lambda model, tokens, vector, hook, *, strength, pos: _steered(
                model, tokens, vector, hook, strength, pos, every=True
            ),
        ),
        (
            "wrong sign: subtracted strength * vector",
            lambda model, tokens, vector, hook, *, strength, pos: _steered(
                model, tokens, vector, hook, strength, pos, sign=-1.0
            ),
        ),
        (
            "forgot to multiply by strength",
            lambda model, tokens, vector, hook, *, strength, pos: _steered(
                model, tokens, vector, hook, strength, pos, scale=False
            ),
        ),
    ],
)
def steered_logits(model, tokens, vector, hook, *, strength, pos):
    """Logits ``[batch, pos, d_vocab]`` of ``tokens [batch, pos]`` with ``strength * vector``
    (``vector [d_model]``) added to the activation ``[batch, pos, d_model]`` at ``hook``, at
    the positions ``pos`` (a list of ints, or None for every position)."""

    def add(resid, hook):
        resid = resid.clone()  # leave the model's own tensor alone
        where = slice(None) if pos is None else pos
        resid[:, where] = resid[:, where] + strength * vector
        return resid

    with torch.no_grad(), model.hooks([(hook, add)]):
        return model(tokens)


# ---- directional ablation -----------------------------------------------------------------


def _project_cases():
    _, vector, _, _ = _grammar()
    positive, _ = _grammar_acts()
    return {
        "random resid [4, 5, 16], random vector [16]": (_randn(4, 4, 5, 16), 3 * _randn(5, 16)),
        "grammar-2l plural prompts at blocks.1.hook_resid_pre, the number vector": (
            positive,
            vector,
        ),
    }


@exercise(
    "12.project_out",
    notebook=NB,
    title="Directional ablation: project a direction out",
    difficulty=2,
    minutes=5,
    cases=_project_cases,
    mistakes=[
        (
            "did not normalise the vector: subtracted (resid . v) v, not (resid . v_hat) v_hat",
            lambda resid, vector: resid - (resid @ vector)[..., None] * vector,
        ),
        (
            "kept only the component along the vector (projected onto it, not out of it)",
            lambda resid, vector: (
                (resid @ (vector / vector.norm()))[..., None] * (vector / vector.norm())
            ),
        ),
        (
            "subtracted the vector itself (that is steering with strength -1)",
            lambda resid, vector: resid - vector,
        ),
    ],
)
def project_out(resid: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """``resid [..., d_model]``, ``vector [d_model]`` -> ``resid`` minus its component along
    ``vector``: ``resid - (resid . v_hat) v_hat`` with ``v_hat = vector / |vector|``."""
    unit = vector / vector.norm()
    return resid - (resid @ unit)[..., None] * unit


# ---- mean ablation of one head ------------------------------------------------------------


def _mean_ablated(
    model, tokens, layer, head, reference, *, over_pos=False, zero=False, every=False
):
    hook = f"blocks.{layer}.attn.hook_z"
    _, ref_cache = model.run_with_cache(reference, names=[hook])
    mean = ref_cache[hook].mean((0, 1) if over_pos else 0)  # [pos, head, d_head] or [head, ..]
    if over_pos:
        mean = mean.expand(tokens.shape[1], *mean.shape)

    def fn(z, hook):
        z = z.clone()
        which = slice(None) if every else head
        z[:, :, which] = 0.0 if zero else mean[:, which]
        return z

    with torch.no_grad(), model.hooks([(hook, fn)]):
        return model(tokens)


@cache
def _induction():
    import mechscope
    from mechscope.toy.induction import repeated_random_tokens

    model = mechscope.load("induction-2l")
    d_vocab = model.cfg.d_vocab
    return (
        model,
        repeated_random_tokens(6, 10, d_vocab, seed=3),
        repeated_random_tokens(16, 10, d_vocab, seed=4),
    )


def _ablate_cases():
    model, tokens, reference = _induction()
    return {
        "induction-2l, 6 random repeated sequences, L1H3, reference: 16 others": {
            "model": model,
            "tokens": tokens,
            "layer": 1,
            "head": 3,
            "reference": reference,
        },
        "induction-2l, the same, L0H2 (the previous-token head)": {
            "model": model,
            "tokens": tokens,
            "layer": 0,
            "head": 2,
            "reference": reference,
        },
    }


@exercise(
    "12.mean_ablated_logits",
    notebook=NB,
    title="Mean-ablate one head",
    difficulty=3,
    minutes=15,
    cases=_ablate_cases,
    mistakes=[
        (
            "one mean over the batch *and* the positions, not a mean per position",
            lambda model, tokens, layer, head, *, reference: _mean_ablated(
                model, tokens, layer, head, reference, over_pos=True
            ),
        ),
        (
            "zero ablation: set the head's z to 0 instead of the reference mean",
            lambda model, tokens, layer, head, *, reference: _mean_ablated(
                model, tokens, layer, head, reference, zero=True
            ),
        ),
        (
            "replaced every head of the layer, not only `head`",
            lambda model, tokens, layer, head, *, reference: _mean_ablated(
                model, tokens, layer, head, reference, every=True
            ),
        ),
    ],
)
def mean_ablated_logits(model, tokens, layer, head, *, reference):
    """Logits ``[batch, pos, d_vocab]`` of ``tokens [batch, pos]`` with head ``head``'s output
    ``blocks.{layer}.attn.hook_z`` (``[batch, pos, head, d_head]``) replaced, at every
    position, by its mean over the ``reference [ref_batch, pos]`` batch at that position."""
    hook = f"blocks.{layer}.attn.hook_z"
    with torch.no_grad():
        _, ref_cache = model.run_with_cache(reference, names=[hook])
    mean = ref_cache[hook].mean(0)  # [pos, head, d_head]

    def replace(z, hook):
        z = z.clone()
        z[:, :, head] = mean[:, head]  # broadcast over the batch
        return z

    with torch.no_grad(), model.hooks([(hook, replace)]):
        return model(tokens)
