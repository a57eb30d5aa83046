"""Toy models of superposition (Elhage et al. 2022, "Toy Models of Superposition").

``n_features`` sparse features are squeezed through ``d_hidden < n_features``
dimensions and read back out:

    h  = W x                     (or h = ReLU(W x): the ReLU-hidden-layer variant)
    x' = ReLU(W^T h + b)

Each feature is zero with probability ``S`` (its *sparsity*) and else uniform in
[0, 1]; feature ``i`` matters ``importance_decay ** i`` in the loss. Dense features
(``S = 0``): the model keeps the ``d_hidden`` most important ones, orthogonally,
and drops the rest. Sparse features: interference between features is rare, so
the model stores *more* features than dimensions, at angles that are not 90
degrees: superposition. With 5 features in 2 dimensions it makes a pentagon.

Many instances (one per feature probability of a sparsity sweep) train at once:
every weight has a leading ``instance`` axis.

The ReLU-hidden-layer variant gives the hidden units a *privileged basis*
(the ReLU acts per unit), so hidden units are neurons and we can ask whether a
neuron is monosemantic (one feature) or polysemantic (several).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm


@dataclass(frozen=True)
class ToyModelConfig:
    n_features: int = 5
    d_hidden: int = 2
    # One instance per entry; feature probability 1 - S (S = sparsity). The same for all features.
    feature_probability: tuple[float, ...] = (1.0,)
    importance_decay: float = 0.9  # importance of feature i is decay**i (Elhage 2022 use 0.7-0.9)
    hidden_relu: bool = False  # True: h = ReLU(W x), a privileged hidden basis (neurons)
    seed: int = 0  # seeds the initial weights and the data stream

    def __post_init__(self):
        object.__setattr__(
            self, "feature_probability", tuple(float(p) for p in self.feature_probability)
        )
        if self.n_features < 1 or self.d_hidden < 1:
            raise ValueError(
                f"n_features={self.n_features}, d_hidden={self.d_hidden}; both must be >= 1."
            )
        if not self.feature_probability:
            raise ValueError("feature_probability is empty; give one probability per instance.")
        bad = [p for p in self.feature_probability if not 0 < p <= 1]
        if bad:
            raise ValueError(f"feature_probability must lie in (0, 1], got {bad}.")
        if not 0 < self.importance_decay <= 1:
            raise ValueError(f"importance_decay={self.importance_decay}; expected (0, 1].")

    @property
    def n_instances(self) -> int:
        return len(self.feature_probability)

    @property
    def sparsity(self) -> tuple[float, ...]:
        return tuple(1 - p for p in self.feature_probability)


def log_spaced_probabilities(n: int, p_min: float = 1e-3) -> tuple[float, ...]:
    """``n`` feature probabilities from 1 (dense) down to ``p_min``, evenly spaced in log."""
    if n == 1:
        return (1.0,)
    return tuple(float(p_min ** (i / (n - 1))) for i in range(n))


class ToyModel(nn.Module):
    """``x' = ReLU(W^T h + b)`` with ``h = W x`` (or ``ReLU(W x)``), one copy per instance.

    Weights: ``W`` ``[instance, d_hidden, feature]`` (column ``W[:, :, i]`` is feature
    ``i``'s direction), ``b`` ``[instance, feature]``.
    """

    def __init__(self, cfg: ToyModelConfig):
        super().__init__()
        self.cfg = cfg
        inst, m, n = cfg.n_instances, cfg.d_hidden, cfg.n_features
        gen = torch.Generator().manual_seed(cfg.seed)
        std = math.sqrt(2.0 / (m + n))  # Xavier-normal, as in the paper's code
        self.W = nn.Parameter(torch.randn(inst, m, n, generator=gen) * std)
        self.b = nn.Parameter(torch.zeros(inst, n))
        self.register_buffer("importance", cfg.importance_decay ** torch.arange(n).float())
        self.register_buffer("feature_probability", torch.tensor(cfg.feature_probability))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``[batch, instance, feature]`` -> h: ``[batch, instance, d_hidden]``."""
        h = torch.einsum("bif,imf->bim", x, self.W)
        return torch.relu(h) if self.cfg.hidden_relu else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``[batch, instance, feature]`` -> reconstruction of the same shape."""
        out = torch.einsum("bim,imf->bif", self.hidden(x), self.W) + self.b
        return torch.relu(out)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Importance-weighted squared error, mean over batch and features, summed over instances."""
        err = self.importance * (x - self(x)) ** 2
        return err.mean(dim=(0, 2)).sum()

    def generate_batch(self, batch: int, gen: torch.Generator) -> torch.Tensor:
        """``[batch, instance, feature]``: each feature is U[0, 1) with its instance's probability, else 0."""
        shape = (batch, self.cfg.n_instances, self.cfg.n_features)
        values = torch.rand(shape, generator=gen)
        present = torch.rand(shape, generator=gen) < self.feature_probability[None, :, None]
        return values * present


def train_toy_model(
    cfg: ToyModelConfig,
    steps: int = 10_000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    progress: bool = True,
) -> ToyModel:
    """Train every instance of a toy model at once (AdamW, constant lr; Elhage et al. 2022).

    Seeded by ``cfg.seed``. ``model.losses`` holds the per-instance loss every 100 steps,
    ``[steps // 100, instance]``.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps={steps}, batch_size={batch_size}; both must be >= 1.")
    model = ToyModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    history = []
    bar = tqdm(range(steps), desc=f"toy model x{cfg.n_instances}", disable=not progress)
    for step in bar:
        x = model.generate_batch(batch_size, gen)
        err = model.importance * (x - model(x)) ** 2
        per_instance = err.mean(dim=(0, 2))
        opt.zero_grad(set_to_none=True)
        per_instance.sum().backward()
        opt.step()
        if step % 100 == 0:
            history.append(per_instance.detach())
            bar.set_postfix(loss=f"{per_instance.mean().item():.4f}")
    model.losses = torch.stack(history)
    return model.eval()


# ---- feature geometry ---------------------------------------------------------


def _weights(model_or_W) -> torch.Tensor:
    W = model_or_W.W if isinstance(model_or_W, ToyModel) else torch.as_tensor(model_or_W)
    if W.dim() == 2:
        W = W[None]
    if W.dim() != 3:
        raise ValueError(
            f"Expected a ToyModel or weights [instance, d_hidden, feature], got shape {list(W.shape)}."
        )
    return W.detach().float()


def feature_norms(model_or_W) -> torch.Tensor:
    """``||W_i||`` of every feature: ``[instance, feature]``. ~1 = represented, ~0 = dropped."""
    return _weights(model_or_W).norm(dim=1)


def _overlaps(W: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``[instance, feature i, feature j]`` = ``(Ŵ_i · W_j)^2``."""
    unit = W / (W.norm(dim=1, keepdim=True) + eps)
    return torch.einsum("imf,img->ifg", unit, W) ** 2


def interference(model_or_W) -> torch.Tensor:
    """Superposition of each feature with the others: ``sum_{j != i} (Ŵ_i · W_j)^2``, ``[instance, feature]``.

    0 when feature ``i`` has a dimension to itself; Elhage et al. colour the norm bars by it.
    """
    sq = _overlaps(_weights(model_or_W))
    return sq.sum(-1) - sq.diagonal(dim1=1, dim2=2)


def feature_dimensionality(model_or_W, eps: float = 1e-8) -> torch.Tensor:
    """``D_i = ||W_i||^2 / sum_j (Ŵ_i · W_j)^2``: the fraction of a dimension feature ``i`` gets.

    ``[instance, feature]``; 1 = a dimension of its own, 1/2 = shares with one other (an
    antipodal pair), 2/5 = a pentagon in 2 dimensions, 0 = not represented.
    """
    W = _weights(model_or_W)
    denom = _overlaps(W, eps).sum(-1)
    D = W.norm(dim=1) ** 2 / (denom + eps)
    return torch.where(W.norm(dim=1) > 1e-3, D, torch.zeros_like(D))


def dimensions_per_feature(model_or_W) -> torch.Tensor:
    """``d_hidden / ||W||_F^2`` per instance: ~1 without superposition, < 1 with it."""
    W = _weights(model_or_W)
    return W.shape[1] / W.pow(2).sum(dim=(1, 2))


def n_represented(model_or_W, threshold: float = 0.5) -> torch.Tensor:
    """Number of features with ``||W_i|| > threshold``, per instance: ``[instance]``."""
    return (feature_norms(model_or_W) > threshold).sum(-1)


def feature_angles(model_or_W, instance: int = 0, threshold: float = 0.5) -> torch.Tensor:
    """Angles (degrees, sorted, in [0, 360)) of the represented features of a 2-D instance."""
    W = _weights(model_or_W)
    if W.shape[1] != 2:
        raise ValueError(f"feature_angles needs d_hidden = 2, this model has {W.shape[1]}.")
    w = W[instance]
    keep = w.norm(dim=0) > threshold
    angles = torch.rad2deg(torch.atan2(w[1, keep], w[0, keep])) % 360
    return angles.sort().values


def angle_gaps(model_or_W, instance: int = 0, threshold: float = 0.5) -> torch.Tensor:
    """Gaps (degrees) between consecutive represented features around the circle; they sum to 360."""
    a = feature_angles(model_or_W, instance, threshold)
    if len(a) == 0:
        return a
    return torch.diff(torch.cat([a, a[:1] + 360]))


def neurons_per_feature(model, threshold: float = 0.3) -> torch.Tensor:
    """ReLU-hidden-layer variant: how many features each neuron reads strongly, ``[instance, neuron]``.

    A neuron with ``|W[neuron, i]| > threshold`` for one feature is monosemantic; for several,
    polysemantic. (Rows of ``W`` are neurons: the ReLU makes that basis privileged.)
    """
    return (_weights(model).abs() > threshold).sum(-1)


def sweep_summary(model: ToyModel) -> list[dict]:
    """One row per instance: sparsity, features represented, dimensions per feature."""
    rows = []
    norms, dpf = feature_norms(model), dimensions_per_feature(model)
    for i, p in enumerate(model.cfg.feature_probability):
        rows.append(
            {
                "feature_probability": p,
                "sparsity": 1 - p,
                "n_represented": int((norms[i] > 0.5).sum()),
                "dimensions_per_feature": float(dpf[i]),
            }
        )
    return rows
