"""How polysemantic are a layer's neurons? Features per neuron against ground-truth labels.

A neuron is *monosemantic* when it responds to one feature of the input and *polysemantic*
when it responds to several unrelated ones (Olah et al. 2020, "Zoom In"; Elhage et al. 2022,
"Toy Models of Superposition"). Where every input carries a ground-truth feature label
(a toy task's word class, say) this is a number, not a judgement:

1. For neuron ``i`` and feature ``c``, the class mean ``m[i, c] = mean(acts[labels == c, i])``.
2. Its response above the neuron's quietest feature: ``r[i, c] = m[i, c] - min_c m[i, c]``.
3. Neuron ``i`` *responds to* ``c`` when ``r[i, c] >= threshold * max_c r[i, c]``
   (default ``threshold = 0.5``: at least half its strongest response).
4. Features per neuron = how many features it responds to; monosemantic = exactly one.

Measuring from the quietest feature (not from zero) makes the count work for any
activation function: GELU's floor is about -0.17, and a LayerNorm after the activation
(SoLU, Elhage et al. 2022, "Softmax Linear Units") centres every token's activations. The
count is scale-free, so a neuron whose class means barely differ (``max_c r < dead_tol``
times the median over neurons) is reported *dead* and left out of the averages.

The count depends on the labels chosen: a neuron for "plural" that fires on plural
determiners, nouns and verbs counts three word classes. Compare models on the same labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PolysemanticityResult:
    """Features per neuron.

    values: ``[neuron]`` ints, how many features each neuron responds to (0 if dead).
    class_means: ``[neuron, feature]``, mean activation on the inputs of each feature.
    responds: ``[neuron, feature]`` bools, the responses counted in ``values``.
    dead: ``[neuron]`` bools, neurons whose class means barely differ (left out of averages).
    feature_names: one name per feature. threshold: the fraction of the strongest response.
    """

    values: torch.Tensor
    class_means: torch.Tensor
    responds: torch.Tensor
    dead: torch.Tensor
    feature_names: tuple[str, ...]
    threshold: float

    @property
    def n_live(self) -> int:
        return int((~self.dead).sum())

    @property
    def mean_features_per_neuron(self) -> float:
        """Mean of ``values`` over live neurons (1.0 = every live neuron monosemantic)."""
        live = self.values[~self.dead]
        return float(live.float().mean()) if len(live) else float("nan")

    @property
    def monosemantic_fraction(self) -> float:
        """Fraction of live neurons that respond to exactly one feature."""
        live = self.values[~self.dead]
        return float((live == 1).float().mean()) if len(live) else float("nan")

    def as_dict(self) -> dict:
        return {
            "mean_features_per_neuron": round(self.mean_features_per_neuron, 4),
            "monosemantic_fraction": round(self.monosemantic_fraction, 4),
            "n_live": self.n_live,
            "n_dead": int(self.dead.sum()),
        }


def features_per_neuron(
    acts: torch.Tensor,
    labels: torch.Tensor,
    *,
    threshold: float = 0.5,
    feature_names: Sequence[str] | None = None,
    n_classes: int | None = None,
) -> PolysemanticityResult:
    """How many ground-truth features each neuron responds to (see the module docstring).

    acts: ``[n, neuron]`` activations (e.g. ``blocks.0.mlp.hook_post`` flattened over batch
    and pos). labels: ``[n]`` ints in ``0 .. n_classes - 1``, the feature of each input;
    ``-1`` marks inputs to skip (e.g. BOS). threshold: in (0, 1], the fraction of a neuron's
    strongest response (above its quietest feature) that counts as responding.
    n_classes: default ``max(labels) + 1``; every class needs at least one input.
    """
    if not isinstance(acts, torch.Tensor) or acts.dim() != 2:
        shape = tuple(acts.shape) if isinstance(acts, torch.Tensor) else type(acts).__name__
        raise ValueError(
            f"acts: expected a [n, neuron] tensor, got {shape}; flatten batch and pos first, "
            f"e.g. acts.reshape(-1, acts.shape[-1])."
        )
    labels = torch.as_tensor(labels)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.dim() != 1:
        raise TypeError(f"labels: expected [n] ints, got dtype {labels.dtype}, shape "
                        f"{tuple(labels.shape)}.")  # fmt: skip
    if len(labels) != len(acts):
        raise ValueError(
            f"labels has {len(labels)} entries but acts has {len(acts)} rows; give one label "
            f"per activation row (the same flattening of batch and pos)."
        )
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold={threshold!r}; expected a fraction in (0, 1], e.g. 0.5.")
    keep = labels >= 0
    acts, labels = acts[keep].detach().float(), labels[keep].to(acts.device)
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    if len(labels) == 0 or int(labels.max()) >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1} (n_classes={n_classes}).")
    counts = torch.bincount(labels, minlength=n_classes)
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(
            f"classes {missing} have no inputs; pass more data or a smaller n_classes."
        )
    sums = torch.zeros(n_classes, acts.shape[1], dtype=acts.dtype).index_add_(0, labels, acts)
    means = (sums / counts[:, None]).T  # [neuron, feature]
    resp = means - means.min(1, keepdim=True).values
    span = resp.max(1).values  # [neuron]
    dead = span <= 1e-2 * span.median().clamp_min(1e-12)
    responds = (resp >= threshold * span[:, None]) & ~dead[:, None]
    names = feature_names if feature_names is not None else [str(c) for c in range(n_classes)]
    if len(names) != n_classes:
        raise ValueError(f"feature_names has {len(names)} names for {n_classes} classes.")
    return PolysemanticityResult(
        values=responds.sum(1),
        class_means=means,
        responds=responds,
        dead=dead,
        feature_names=tuple(names),
        threshold=float(threshold),
    )
