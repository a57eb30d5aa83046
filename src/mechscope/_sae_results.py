"""The results of mechscope.sae's evaluations (kept here so sae.py stays one concept)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class SAEEvalResult:
    """Reconstruction and sparsity of an SAE on some activations (:func:`mechscope.sae.evaluate`).

    mse: mean over inputs of ``||x - x̂||^2`` (summed over d_in, as SAELens reports it).
    explained_variance: ``1 - sum ||x - x̂||^2 / sum ||x - mean(x)||^2``.
    l0: mean number of active features per input.
    dead_fraction: fraction of features that fire on none of the inputs.
    values: the four as a tensor ``[4]``, in that order.
    """

    mse: float
    explained_variance: float
    l0: float
    dead_fraction: float

    @property
    def values(self) -> torch.Tensor:
        return torch.tensor([self.mse, self.explained_variance, self.l0, self.dead_fraction])

    def as_dict(self) -> dict[str, float]:
        """For a card or a table: ``{"mse": ..., "explained_variance": ..., ...}``."""
        return asdict(self)


@dataclass(frozen=True)
class CELossResult:
    """Next-token cross-entropy with an SAE spliced in (:func:`mechscope.sae.ce_loss_recovered`).

    ce_clean, ce_spliced, ce_zero_ablated: mean next-token cross-entropy (nats) of the clean
    model, with the hook replaced by the SAE's reconstruction, and with the hook zeroed.
    ce_loss_score: ``(ce_zero_ablated - ce_spliced) / (ce_zero_ablated - ce_clean)`` (SAELens'
    "CE loss score"): 1 = nothing lost, 0 = as bad as deleting the activation; NaN when
    zeroing does not raise the loss.
    values: the four as a tensor ``[4]``, in that order.
    """

    ce_clean: float
    ce_spliced: float
    ce_zero_ablated: float
    ce_loss_score: float

    @property
    def values(self) -> torch.Tensor:
        return torch.tensor(
            [self.ce_clean, self.ce_spliced, self.ce_zero_ablated, self.ce_loss_score]
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
