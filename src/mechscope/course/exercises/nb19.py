"""Exercises of notebook 19 (intrinsic interpretability): SoLU, features per neuron, and a
scale-proof activation L1 penalty.

Elhage et al. (2022), "Softmax Linear Units"; Elhage et al. (2022), "Toy Models of
Superposition".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ... import monosemanticity
from . import exercise

NB = "19_intrinsic_interpretability"


def _solu_cases():
    gen = torch.Generator().manual_seed(0)
    return {
        "[token, d_mlp] with one big neuron per row": (torch.randn(6, 10, generator=gen) * 2,),
        "[batch, pos, d_mlp]": (torch.randn(2, 3, 8, generator=gen),),
    }


@exercise(
    "19.solu",
    notebook=NB,
    title="The Softmax Linear Unit",
    difficulty=1,
    minutes=4,
    cases=_solu_cases,
    mistakes=[
        ("the softmax is over the wrong dim: neurons are the last dim", lambda x: x * x.softmax(0)),
        ("only the softmax: SoLU multiplies it by x", lambda x: x.softmax(-1)),
        (
            "that is SiLU, x * sigmoid(x): SoLU's softmax makes neurons compete",
            lambda x: x * torch.sigmoid(x),
        ),
    ],  # fmt: skip
)
def solu(pre) -> torch.Tensor:
    """``pre [..., d_mlp]`` -> ``x * softmax(x)`` over the last (neuron) dim."""
    return pre * pre.softmax(dim=-1)


def _fpn_cases():
    gen = torch.Generator().manual_seed(1)
    labels = torch.arange(5).repeat(40)  # 5 features, 40 inputs each
    onehot = F.one_hot(labels, 5).float()
    tuning = torch.tensor([[3.0, 0, 0, 0, 0], [2, 2, 0, 0, 0], [1, 1, 1, 1, 0.2],
                           [0, 0, 0, 4, 1.5], [-0.5, 0, 0, 0, 0]])  # fmt: skip
    acts = onehot @ tuning.T + 0.05 * torch.randn(200, 5, generator=gen) - 0.2
    acts[2, 1] += 10.0  # one outlier on neuron 1 (labels[2] == 2): a spike, not a response
    return {"5 neurons x 5 features (one tuned below its floor, one spike)": (acts, labels, 5)}


def _from_zero(acts, labels, n_classes):
    means = torch.stack([acts[labels == c].mean(0) for c in range(n_classes)], 1)
    return (means >= 0.5 * means.max(1, keepdim=True).values).sum(1)


def _max_not_mean(acts, labels, n_classes):
    peaks = torch.stack([acts[labels == c].max(0).values for c in range(n_classes)], 1)
    r = peaks - peaks.min(1, keepdim=True).values
    return (r >= 0.5 * r.max(1, keepdim=True).values).sum(1)


def _global_max(acts, labels, n_classes):
    means = torch.stack([acts[labels == c].mean(0) for c in range(n_classes)], 1)
    r = means - means.min(1, keepdim=True).values
    return (r >= 0.5 * r.max()).sum(1)


@exercise(
    "19.features_per_neuron",
    notebook=NB,
    title="Count the features each neuron responds to",
    difficulty=2,
    minutes=10,
    cases=_fpn_cases,
    mistakes=[
        (
            "responses measured from zero: measure them from the neuron's quietest feature",
            _from_zero,
        ),
        (
            "each feature's peak activation: use its mean (one outlier is not a response)",
            _max_not_mean,
        ),
        (
            "the threshold is half the strongest response of the whole layer: use each neuron's own",
            _global_max,
        ),
    ],  # fmt: skip
)
def features_per_neuron(acts, labels, n_classes) -> torch.Tensor:
    """``acts [n, neuron]``, ``labels [n]`` in ``0..n_classes-1`` -> ``[neuron]`` ints: how many
    features have a class mean at least half-way from the neuron's lowest to its highest."""
    return monosemanticity.features_per_neuron(acts, labels, n_classes=n_classes).values


def _l1_cases():
    gen = torch.Generator().manual_seed(2)
    return {
        "[batch, pos, d_mlp] with uneven W_out rows": (
            torch.randn(3, 4, 6, generator=gen),
            torch.randn(6, 5, generator=gen) * torch.arange(1.0, 7.0)[:, None],
        ),
    }


@exercise(
    "19.weighted_l1",
    notebook=NB,
    title="An activation L1 penalty the model cannot dodge by rescaling",
    difficulty=1,
    minutes=6,
    cases=_l1_cases,
    mistakes=[
        (
            "bare |post|: the model halves its activations and doubles W_out for free",
            lambda post, w: post.abs().sum(-1).mean(),
        ),
        (
            "the squared norm ||W_out[i]||^2: the product |post_i| * ||W_out[i]|| is what rescaling keeps",
            lambda post, w: (post.abs() * w.pow(2).sum(1)).sum(-1).mean(),
        ),
        (
            "summed over tokens: take the mean over tokens, the sum over neurons",
            lambda post, w: (post.abs() * w.norm(dim=1)).sum(),
        ),
    ],  # fmt: skip
)
def weighted_l1(post, W_out) -> torch.Tensor:  # noqa: N803 (the weight's usual name)
    """``post [..., d_mlp]``, ``W_out [d_mlp, d_model]`` -> scalar: mean over tokens of
    ``sum_i |post_i| * ||W_out[i]||``."""
    return (post.abs() * W_out.norm(dim=1)).sum(-1).mean()
