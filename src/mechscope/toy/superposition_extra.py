"""More toys around superposition: rotations, dropout, computing in superposition, polytopes.

Companions of :mod:`mechscope.toy.superposition` (Elhage et al. 2022) for notebook 02:

- :func:`rotate_hidden`: the same model in another hidden basis. Without a hidden ReLU the
  loss cannot tell (the basis is not privileged), so which unit reads which feature is
  arbitrary: polysemanticity without superposition (review §3.2, hypothesis 1).
- :func:`train_with_dropout` and :func:`neurons_per_feature_pr`: dropout on the hidden
  neurons spreads each feature over more neurons, redundancy against losing one
  (Marshall & Kirchner 2024, "Understanding polysemanticity in neural networks through
  coding theory").
- :func:`uand_layer` and :func:`and_accuracy`: one ReLU layer with fewer neurons than pairs
  of features from which every pairwise AND reads out linearly, the "universal AND" of
  Vaintrob, Mendel & Hänni (2024) / Hänni et al. (2024), "Mathematical models of
  computation in superposition".
- :func:`activation_regions`: how many linear regions (polytopes, Black et al. 2022,
  "Interpreting neural networks through the polytope lens") a toy model cuts a plane of
  input space into.
"""

from __future__ import annotations

import copy
import itertools

import torch

from mechscope.toy.superposition import ToyModel, ToyModelConfig


def rotate_hidden(model: ToyModel, rotation: torch.Tensor) -> ToyModel:
    """A copy of ``model`` with every instance's hidden space rotated: ``W -> R W``.

    ``rotation``: ``[d_hidden, d_hidden]`` orthogonal (or ``[instance, d_hidden, d_hidden]``).
    ``W^T W`` is unchanged, so a model without a hidden ReLU computes exactly the same function.
    """
    R = torch.as_tensor(rotation, dtype=model.W.dtype)
    m = model.cfg.d_hidden
    if R.shape[-2:] != (m, m):
        raise ValueError(
            f"rotation has shape {list(R.shape)}; expected [{m}, {m}] (d_hidden x d_hidden)."
        )
    eye = torch.eye(m, dtype=R.dtype)
    if not torch.allclose(R @ R.transpose(-1, -2), eye.expand_as(R), atol=1e-4):
        raise ValueError("rotation is not orthogonal (R R^T != I); use torch.linalg.qr(...)[0].")
    out = copy.deepcopy(model)
    with torch.no_grad():
        out.W.copy_(torch.einsum("...mk,ikf->imf", R, model.W))
    return out


def align_to_basis(model: ToyModel, instance: int = 0) -> torch.Tensor:
    """The rotation ``R`` (``[d_hidden, d_hidden]``) that makes ``R W`` symmetric positive
    semi-definite (polar decomposition, ``W = U S V^T`` -> ``R = V U^T``); for ``n_features =
    d_hidden`` and orthonormal feature directions it puts each feature on its own unit."""
    U, _, Vh = torch.linalg.svd(model.W.detach()[instance])
    return Vh.T @ U.T


def train_with_dropout(
    cfg: ToyModelConfig,
    dropout: float,
    steps: int = 1500,
    batch_size: int = 512,
    lr: float = 5e-3,
) -> ToyModel:
    """Train a ReLU-hidden toy model with dropout on its hidden neurons (inverted dropout).

    ``h = ReLU(W x)``, each neuron zeroed with probability ``dropout`` during training only
    (Marshall & Kirchner 2024). Seeded by ``cfg.seed``; AdamW, weight decay 0.01.
    """
    if not cfg.hidden_relu:
        raise ValueError("train_with_dropout needs hidden_relu=True: dropout acts on neurons.")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout={dropout}; expected a probability in [0, 1).")
    model = ToyModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    for _ in range(steps):
        x = model.generate_batch(batch_size, gen)
        h = model.hidden(x)  # [batch, instance, neuron]
        if dropout > 0:
            keep = torch.rand(h.shape, generator=gen) > dropout
            h = h * keep / (1 - dropout)
        out = torch.relu(torch.einsum("bim,imf->bif", h, model.W) + model.b)
        loss = (model.importance * (x - out) ** 2).mean(dim=(0, 2)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def neurons_per_feature_pr(model: ToyModel) -> torch.Tensor:
    """Effective number of neurons carrying each feature, ``[instance, feature]``.

    The participation ratio ``(sum_n w_n^2)^2 / sum_n w_n^4`` of feature ``i``'s positive
    weights ``w_n = max(W[n, i], 0)`` (a ReLU neuron with a negative weight never carries the
    feature): 1 = one neuron, k = spread evenly over k neurons.
    """
    w2 = model.W.detach().clamp_min(0) ** 2  # [instance, neuron, feature]
    return w2.sum(1) ** 2 / (w2**2).sum(1).clamp_min(1e-12)


# ---- computation in superposition: the universal AND --------------------------


def all_pairs(n_features: int) -> torch.Tensor:
    """``[n_pairs, 2]``: every pair ``i < j`` of features."""
    return torch.tensor(list(itertools.combinations(range(n_features), 2)))


def sparse_boolean_batch(n_features: int, n_active: int, batch: int, seed: int = 0) -> torch.Tensor:
    """``[batch, feature]`` of 0/1 with exactly ``n_active`` ones per row, seeded."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.rand(batch, n_features, generator=gen).argsort(-1)[:, :n_active]
    return torch.zeros(batch, n_features).scatter_(1, idx, 1.0)


def uand_layer(
    n_features: int, d_mlp: int, connect_prob: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A ReLU layer that computes every pairwise AND in superposition (Vaintrob et al. 2024).

    Each neuron reads a random subset of the features (each with probability
    ``connect_prob``, weight 1, bias -1), so it fires when two or more of them are on.
    AND(i, j) is read out *linearly*: the mean of the neurons that read both i and j.
    Returns ``(W_in [d_mlp, feature], W_out [d_mlp, pair])``; pairs ordered as
    :func:`all_pairs`. Use ``relu(x @ W_in.T - 1) @ W_out``.
    """
    gen = torch.Generator().manual_seed(seed)
    W_in = (torch.rand(d_mlp, n_features, generator=gen) < connect_prob).float()
    pairs = all_pairs(n_features)
    both = W_in[:, pairs[:, 0]] * W_in[:, pairs[:, 1]]  # [neuron, pair]
    return W_in, both / both.sum(0).clamp_min(1)


def and_accuracy(predicted: torch.Tensor, truth: torch.Tensor) -> dict:
    """Read-outs ``[batch, pair]`` against true ANDs (0/1), thresholded at 1/2.

    ``recall`` (true ANDs read as on), ``false_positive`` (false ANDs read as on) and
    ``balanced`` = (recall + 1 - false_positive) / 2: 0.5 for a read-out that ignores the input.
    """
    on, true = predicted > 0.5, truth > 0.5
    recall = float((on & true).sum() / true.sum().clamp_min(1))
    false_pos = float((on & ~true).sum() / (~true).sum().clamp_min(1))
    return {"recall": recall, "false_positive": false_pos, "balanced": (recall + 1 - false_pos) / 2}


# ---- the polytope lens ---------------------------------------------------------


def activation_regions(
    model: ToyModel, instance: int = 0, features: tuple[int, int] = (0, 1), resolution: int = 200
) -> tuple[int, torch.Tensor]:
    """Count the linear regions (polytopes) a toy model cuts the square
    ``x_features[0], x_features[1] in [0, 1]`` (all other features 0) into.

    A region is a set of inputs with the same on/off pattern of every ReLU (the hidden ones
    if ``hidden_relu``, and the outputs); within one the model is linear (Black et al. 2022).
    Counted on a ``resolution x resolution`` grid, so regions thinner than a grid step can be
    missed. Returns ``(n_regions, pattern_id [resolution, resolution])``.
    """
    i, j = features
    n = model.cfg.n_features
    if not (0 <= i < n and 0 <= j < n and i != j):
        raise ValueError(f"features={features}; expected two different indices in [0, {n}).")
    grid = torch.linspace(0, 1, resolution)
    a, b = torch.meshgrid(grid, grid, indexing="ij")
    x = torch.zeros(resolution * resolution, model.cfg.n_instances, n)
    x[:, instance, i], x[:, instance, j] = a.flatten(), b.flatten()
    with torch.no_grad():
        pre_h = torch.einsum("bif,imf->bim", x, model.W)[:, instance]
        h = torch.relu(pre_h) if model.cfg.hidden_relu else pre_h
        pre_out = h @ model.W[instance] + model.b[instance]
    parts = [pre_out > 0] + ([pre_h > 0] if model.cfg.hidden_relu else [])
    pattern = torch.cat(parts, dim=-1)
    _, ids = torch.unique(pattern, dim=0, return_inverse=True)
    return int(ids.max()) + 1, ids.reshape(resolution, resolution)


def random_rotation(d_hidden: int, seed: int = 0) -> torch.Tensor:
    """A random orthogonal ``[d_hidden, d_hidden]`` matrix (QR of a Gaussian), seeded."""
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d_hidden, d_hidden, generator=gen))
    return q * torch.sign(torch.diagonal(r))  # a unique, uniformly random Q
