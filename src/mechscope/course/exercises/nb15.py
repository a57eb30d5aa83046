"""Exercises of notebook 15 (feature circuits): one edge by hand, total effects, pruning.

Ameisen et al. (2025), "Circuit Tracing: Revealing Computational Graphs in Language Models";
Marks et al. (2024), "Sparse Feature Circuits"; Bereska & Gavves (2024), §4.4.
"""

from __future__ import annotations

import torch

from . import exercise

NB = "15_feature_circuits"


def _edge_cases():
    gen = torch.Generator().manual_seed(0)
    d = 8
    return {
        "random vectors, d_model 8": (
            2.5, torch.randn(d, generator=gen), torch.randn(d, generator=gen) * 3,
            torch.rand(d, generator=gen) + 0.5, torch.randn(d, generator=gen),
        ),
        "a decoder row with a large mean": (
            0.7, torch.randn(d, generator=gen) + 4.0, torch.randn(d, generator=gen),
            torch.ones(d), torch.randn(d, generator=gen),
        ),
    }  # fmt: skip


def _frozen_scale(resid, eps=1e-5):
    c = resid - resid.mean()
    return (c.pow(2).mean() + eps).sqrt()


@exercise(
    "15.logit_edge",
    notebook=NB,
    title="One edge by hand: a last-layer feature's direct effect on a logit",
    difficulty=2,
    minutes=12,
    cases=_edge_cases,
    mistakes=[
        (
            "the decoder row was not centred (LayerNorm subtracts the mean first)",
            lambda a, w, r, g, u: a * ((w / _frozen_scale(r)) * g) @ u,
        ),
        (
            "not divided by the frozen LayerNorm scale of the residual stream",
            lambda a, w, r, g, u: a * ((w - w.mean()) * g) @ u,
        ),
        (
            "the LayerNorm weight ln_w was left out",
            lambda a, w, r, g, u: a * ((w - w.mean()) / _frozen_scale(r)) @ u,
        ),
        (
            "the feature's activation a was left out (an edge is activation x derivative)",
            lambda a, w, r, g, u: (((w - w.mean()) / _frozen_scale(r)) * g) @ u,
        ),
    ],  # fmt: skip
)
def logit_edge(a, w_dec_row, resid, ln_w, w_u_col) -> torch.Tensor:
    """The edge from a feature (activation ``a``, decoder row ``w_dec_row [d_model]``) written
    at the last position to a logit (unembedding column ``w_u_col [d_model]``) through the
    final LayerNorm (weight ``ln_w``) with its scale frozen at the residual stream ``resid
    [d_model]`` it normalised in the real run: ``a * ((w - mean w) / scale * ln_w) @ w_u``,
    ``scale = sqrt(mean((resid - mean resid)^2) + 1e-5)``. A 0-d tensor."""
    w = w_dec_row - w_dec_row.mean()
    return a * ((w / _frozen_scale(resid)) * ln_w) @ w_u_col


def _effect_cases():
    gen = torch.Generator().manual_seed(1)
    n, f = 9, [2, 3, 4, 5, 6]
    adjacency = torch.zeros(n, n)
    for i, t in enumerate(f):  # features feed only later features, and the logit (node 8)
        adjacency[t, f[:i]] = torch.randn(i, generator=gen)
        adjacency[t, :2] = torch.randn(2, generator=gen)
    adjacency[8, :8] = torch.randn(8, generator=gen)
    activation = torch.zeros(n)
    activation[f] = torch.rand(len(f), generator=gen) + 0.5
    return {
        "a 9-node graph: 2 embeddings, 5 features, an error node, one logit": (
            adjacency, activation, torch.tensor(f), 8),
    }  # fmt: skip


def _direct(adjacency, activation, feats, logit):
    return adjacency[logit, feats] / activation[feats]


@exercise(
    "15.total_effects",
    notebook=NB,
    title="Total effects: direct plus every path through later features",
    difficulty=3,
    minutes=15,
    cases=_effect_cases,
    mistakes=[
        (
            "direct effects only: the paths through later features are missing (use (I - D_ff)^-1)",
            _direct,
        ),
        (
            "edges were not divided by the source's activation (an edge is a * d target / d a)",
            lambda A, act, f, lg: (
                A[lg, f] @ torch.linalg.inv(torch.eye(len(f)) - A[f][:, f] / act[f])
            ),
        ),
    ],  # fmt: skip
)
def total_effects(adjacency, activation, feats, logit) -> torch.Tensor:
    """``adjacency [node, node]`` (target, source), ``activation [node]``, feature node ids
    ``feats [n]``, a logit node id -> ``[n]``: d logit / d activation of each feature, through
    every path (features are linear in the local replacement model).
    ``D = adjacency[:, feats] / activation[feats]``; total = ``D[logit] (I - D[feats])^-1``."""
    D = adjacency[:, feats] / activation[feats]
    return D[logit] @ torch.linalg.inv(torch.eye(len(feats)) - D[feats])


def _keep_cases():
    gen = torch.Generator().manual_seed(2)
    return {
        "30 random influences, threshold 0.8": (torch.rand(30, generator=gen) ** 3, 0.8),
        "one node holds everything, threshold 0.5": (torch.tensor([0.0, 1.0, 0.0]), 0.5),
        "equal influences, threshold 0.5 (exactly half)": (torch.ones(10), 0.5),
    }


@exercise(
    "15.nodes_to_keep",
    notebook=NB,
    title="Pruning: the fewest nodes that carry a fraction of the influence",
    difficulty=1,
    minutes=6,
    cases=_keep_cases,
    mistakes=[
        (
            "sorted ascending: keep the MOST influential nodes first",
            lambda inf, th: int((inf.sort().values.cumsum(0) < th * inf.sum()).sum()) + 1,
        ),
        (
            "one node too many when the threshold is met exactly (stop as soon as the sum "
            "reaches threshold * total)",
            lambda inf, th: (
                int((inf.sort(descending=True).values.cumsum(0) <= th * inf.sum()).sum()) + 1
            ),
        ),
    ],  # fmt: skip
)
def nodes_to_keep(influence, threshold) -> int:
    """``influence [node]`` (non-negative), ``threshold`` in (0, 1] -> the fewest nodes, taken
    from the most influential down, whose summed influence reaches ``threshold`` of the total."""
    cum = influence.sort(descending=True).values.cumsum(0)
    return int((cum < threshold * influence.sum()).sum()) + 1
