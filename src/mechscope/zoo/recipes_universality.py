"""Zoo recipe for universal neurons (review §3.3, notebook 04 §6).

``grammar-1l-gelu-seed1``: the ``grammar-1l-gelu`` recipe (mechscope.zoo.recipes_intrinsic)
with seed 1 instead of 0: a different initialisation, data order and sequence pool, all else
equal. Its card records how many of its MLP neurons have a partner in ``grammar-1l-gelu``
(Gurnee et al. 2024, "Universal Neurons in GPT2 Language Models": max activation correlation
> 0.5), with the two controls of :mod:`mechscope.universality`; tests/unit/
test_universality_neurons.py re-measures them from the shipped weights.
"""

from __future__ import annotations

import torch

from ..models import Transformer
from ..toy.grammar import grammar_batch
from ..universality import max_correlation, rotate_basis
from .recipes_intrinsic import INTRINSIC_EVAL, config, train_intrinsic

HOOK = "blocks.0.mlp.hook_post"
UNIVERSAL = 0.5  # Gurnee et al. 2024's threshold on the max correlation


@torch.no_grad()
def mlp_acts(model: Transformer, n: int = 256, seed: int = 12345) -> torch.Tensor:
    """``blocks.0.mlp.hook_post`` on ``n`` held-out grammar sequences: ``[n * pos, d_mlp]``."""
    tokens, _ = grammar_batch(n, model.cfg.n_ctx, seed, vocab=model.tokenizer.words[1:])
    _, cache = model.run_with_cache(tokens, names=[HOOK])
    return cache[HOOK].reshape(-1, cache[HOOK].shape[-1])


def universality_metrics(model: Transformer, other: Transformer) -> dict:
    """Fraction of ``model``'s neurons whose max correlation with any neuron of ``other`` is
    > 0.5 (and the mean max correlation), for the trained pair, for two untrained models
    with the same seeds, and for ``other``'s neurons in a random rotated basis."""
    untrained = [
        Transformer(config(m.cfg.act_fn, m.cfg.seed), tokenizer=m.tokenizer).eval()
        for m in (model, other)
    ]
    a, b = mlp_acts(model, **INTRINSIC_EVAL), mlp_acts(other, **INTRINSIC_EVAL)
    pairs = {
        "trained": (a, b),
        "untrained": tuple(mlp_acts(m, **INTRINSIC_EVAL) for m in untrained),
        "rotated": (a, rotate_basis(b, seed=0)),
    }
    out = {}
    for name, (x, y) in pairs.items():
        mc = max_correlation(x, y)
        out[name] = {
            "universal_fraction": round(float((mc > UNIVERSAL).float().mean()), 4),
            "mean_max_correlation": round(float(mc.mean()), 4),
        }
    return out


def train_grammar_1l_gelu_seed1(steps: int = 1200, seed: int = 0):
    """``grammar-1l-gelu`` with seed ``1 + seed`` (``python -m mechscope.zoo.train
    grammar-1l-gelu-seed1`` passes seed 0, so the run uses seed 1); the card adds its
    universality against grammar-1l-gelu (seed 0)."""
    from .. import load

    seed = 1 + seed
    model, card = train_intrinsic("gelu", steps=steps, seed=seed)
    card["name"] = f"grammar-1l-gelu-seed{seed}"
    card["description"] = (
        f"grammar-1l-gelu's recipe with seed {seed} (init, data order and pool): a second run "
        "for universal neurons (Gurnee et al. 2024)"
    )
    card["metrics"]["universality_vs_grammar-1l-gelu"] = universality_metrics(
        model, load("grammar-1l-gelu")
    )
    card["metrics_definition"] += (
        "; universality: mechscope.zoo.recipes_universality.universality_metrics against "
        "grammar-1l-gelu on the same held-out sequences (max Pearson correlation > 0.5)"
    )
    card["references"] = [*card["references"], "Gurnee et al. 2024, Universal Neurons in GPT2 "
                          "Language Models"]  # fmt: skip
    return model, card
