"""Exercises of notebook 25 (vision): the Sobel edge score, total variation, class purity.

Olah, Mordvintsev & Schubert (2017), "Feature Visualization"; Olah et al. (2020), "An
Overview of Early Vision in InceptionV1".
"""

from __future__ import annotations

import torch

from . import exercise

NB = "25_vision"

_GX = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def _edge_cases():
    gen = torch.Generator().manual_seed(0)
    return {
        "random filters with an offset": (torch.randn(6, 3, 3, generator=gen) + 0.7,),
        "a Sobel filter, a blob and a noisy edge": (
            torch.stack([_GX, torch.tensor([[1.0, 0, 1], [0, -4, 0], [1, 0, 1]]),
                         _GX.T + 0.3 * torch.randn(3, 3, generator=gen)]),
        ),
    }  # fmt: skip


def _sobel_basis() -> torch.Tensor:
    return torch.stack([_GX, _GX.T]).reshape(2, 9)


@exercise(
    "25.sobel_edge_score",
    notebook=NB,
    title="The edge score: a filter's share in the plane of the Sobel filters",
    difficulty=2,
    minutes=8,
    cases=_edge_cases,
    mistakes=[
        (
            "the filter's mean was not removed first (a constant offset is brightness, not an edge)",
            lambda f: (
                (
                    f.reshape(-1, 9) @ (_sobel_basis() / _sobel_basis().norm(dim=1, keepdim=True)).T
                ).norm(dim=-1)
                / f.reshape(-1, 9).norm(dim=-1)
            ),
        ),
        (
            "the Sobel filters were not normalised to unit length (the score can pass 1)",
            lambda f: (
                (
                    (w := f.reshape(-1, 9) - f.reshape(-1, 9).mean(-1, keepdim=True))
                    @ _sobel_basis().T
                ).norm(dim=-1)
                / w.norm(dim=-1)
            ),
        ),
        (
            "only the two axis-aligned edges: max |cos| with Gx or Gy, not the best orientation",
            lambda f: (
                (
                    (w := f.reshape(-1, 9) - f.reshape(-1, 9).mean(-1, keepdim=True))
                    @ (_sobel_basis() / _sobel_basis().norm(dim=1, keepdim=True)).T
                )
                .abs()
                .max(-1)
                .values
                / w.norm(dim=-1)
            ),
        ),
    ],  # fmt: skip
)
def sobel_edge_score(filters) -> torch.Tensor:
    """``filters [n, 3, 3]`` -> ``[n]``: ``|projection of w onto span(Gx, Gy)| / |w|`` with
    ``w`` the filter minus its mean and ``Gx``, ``Gy`` the unit-length Sobel filters."""
    w = filters.reshape(-1, 9)
    w = w - w.mean(-1, keepdim=True)
    basis = _sobel_basis()
    basis = basis / basis.norm(dim=1, keepdim=True)
    return (w @ basis.T).norm(dim=-1) / w.norm(dim=-1)


def _tv_cases():
    gen = torch.Generator().manual_seed(1)
    return {
        "one 3x3 image": (torch.tensor([[0.0, 1.0, 1.0], [3.0, 1.0, 0.0], [0.0, 0.0, 2.0]]),),
        "a batch [4, 1, 8, 8]": (torch.randn(4, 1, 8, 8, generator=gen),),
    }


@exercise(
    "25.total_variation",
    notebook=NB,
    title="Total variation: the regulariser against high-frequency noise",
    difficulty=1,
    minutes=5,
    cases=_tv_cases,
    mistakes=[
        (
            "squared differences (that is the smooth, L2 variant); use the absolute value",
            lambda x: (
                (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum((-2, -1))
                + (x[..., :, 1:] - x[..., :, :-1]).pow(2).sum((-2, -1))
            ),
        ),
        (
            "only the vertical neighbours: add the horizontal differences too",
            lambda x: (x[..., 1:, :] - x[..., :-1, :]).abs().sum((-2, -1)),
        ),
        (
            "a mean over pixels, not a sum",
            lambda x: (
                (x[..., 1:, :] - x[..., :-1, :]).abs().mean((-2, -1))
                + (x[..., :, 1:] - x[..., :, :-1]).abs().mean((-2, -1))
            ),
        ),
    ],  # fmt: skip
)
def total_variation(images) -> torch.Tensor:
    """``images [..., h, w]`` -> ``[...]``: the sum over the image of ``|x[i+1, j] - x[i, j]|``
    and ``|x[i, j+1] - x[i, j]|``."""
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().sum((-2, -1))
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().sum((-2, -1))
    return dy + dx


def _purity_cases():
    gen = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 10, (300,), generator=gen)
    acts = torch.rand(300, 6, generator=gen)
    acts[:, 0] += 2.0 * (labels == 3)  # one unit that fires on class 3
    acts[:, 1] += 1.0 * (labels == 7)
    labels[labels == 5] = 0  # class 0 is the most common in the data
    return {"300 examples, 6 units, top-20": (acts, labels, 20),
            "the same, top-5": (acts, labels, 5)}  # fmt: skip


def _modal_count(top_labels: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.bincount(row).max() for row in top_labels]).float()


@exercise(
    "25.purity",
    notebook=NB,
    title="Class purity of a unit's max-activating examples",
    difficulty=1,
    minutes=6,
    cases=_purity_cases,
    mistakes=[
        (
            "the k *smallest* activations: topk(k, dim=0) gives the largest (or largest=True)",
            lambda a, y, k: _modal_count(y[a.topk(k, dim=0, largest=False).indices.T]) / k,
        ),
        (
            "the share of the dataset's most common class, not the top-k's own most common class",
            lambda a, y, k: (
                (y[a.topk(k, dim=0).indices.T] == torch.bincount(y).argmax()).float().mean(-1)
            ),
        ),
        (
            "divided by the number of examples, not by k",
            lambda a, y, k: _modal_count(y[a.topk(k, dim=0).indices.T]) / len(y),
        ),
    ],  # fmt: skip
)
def purity(acts, labels, k) -> torch.Tensor:
    """``acts [n, unit]``, ``labels [n]``, ``k`` -> ``[unit]``: for each unit, the fraction of
    its ``k`` highest-activating examples that share their most common label."""
    top = acts.topk(k, dim=0).indices.T  # [unit, k]
    return _modal_count(labels[top]) / k
