"""Which known properties have an SAE feature that detects them: the *coverage* of Karvonen et
al. 2024, "Measuring Progress in Dictionary Learning for Language Model Interpretability with
Board Game Models" (their board-state properties of chess and Othello).

A feature detects a binary property when thresholding its activation predicts the property
with a high F1. For each property we pick the feature and threshold (a fraction of the
feature's largest activation) with the best F1 on one set of inputs, and can score that same
choice on held-out inputs, so the selection is not graded on the data that made it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FRACTIONS = tuple(i / 10 for i in range(10))  # thresholds: 0, 0.1, ..., 0.9 of a feature's max


@dataclass(frozen=True)
class PropertyF1Result:
    """Per property ``[n_props]``: ``f1`` of its chosen feature, the ``feature`` index and the
    activation ``threshold`` (the feature predicts the property where it is ``> threshold``).
    ``coverage``: the mean F1 over properties (Karvonen et al. 2024)."""

    f1: torch.Tensor
    feature: torch.Tensor
    threshold: torch.Tensor

    @property
    def coverage(self) -> float:
        return float(self.f1.mean())


def _f1(pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``pred [n, a]`` and ``labels [n, b]`` (0 / 1 floats) -> F1 of every pair ``[a, b]``."""
    tp = pred.T @ labels
    return 2 * tp / (pred.sum(0)[:, None] + labels.sum(0)[None, :]).clamp(min=1)


@torch.no_grad()
def property_f1(
    feature_acts: torch.Tensor, labels: torch.Tensor, *, selected: PropertyF1Result | None = None
) -> PropertyF1Result:
    """Best single-feature detector of each binary property.

    feature_acts: ``[n, d_sae]`` (e.g. ``sae.encode(acts)``); labels: ``[n, n_props]`` bool
    (e.g. "square c3 is mine"). With ``selected=None``, for every property the feature and
    threshold (``FRACTIONS`` of each feature's max over these inputs) of highest F1; with
    ``selected`` (an earlier result, from other inputs), the F1 of that same choice here.
    """
    if not isinstance(feature_acts, torch.Tensor) or feature_acts.dim() != 2:
        raise ValueError(
            f"feature_acts must be a 2-d tensor [n, d_sae], got "
            f"{getattr(feature_acts, 'shape', type(feature_acts).__name__)}. Flatten batch and "
            f"position first: feats.reshape(-1, feats.shape[-1])."
        )
    if (
        not isinstance(labels, torch.Tensor)
        or labels.dim() != 2
        or len(labels) != len(feature_acts)
    ):
        raise ValueError(
            f"labels must be a bool tensor [n, n_props] with n = {len(feature_acts)} rows like "
            f"feature_acts, got {getattr(labels, 'shape', type(labels).__name__)}."
        )
    acts, y = feature_acts.float(), labels.float()
    if selected is not None:
        pred = (acts[:, selected.feature] > selected.threshold).float()  # [n, n_props]
        tp = (pred * y).sum(0)
        f1 = 2 * tp / (pred.sum(0) + y.sum(0)).clamp(min=1)
        return PropertyF1Result(f1, selected.feature, selected.threshold)
    top = acts.max(0).values.clamp(min=0)  # [d_sae]
    best = torch.full((y.shape[1],), -1.0)
    feature = torch.zeros(y.shape[1], dtype=torch.long)
    threshold = torch.zeros(y.shape[1])
    for frac in FRACTIONS:
        f1 = _f1((acts > frac * top).float(), y)  # [d_sae, n_props]
        value, idx = f1.max(0)
        better = value > best
        best = torch.where(better, value, best)
        feature = torch.where(better, idx, feature)
        threshold = torch.where(better, frac * top[idx], threshold)
    return PropertyF1Result(best, feature, threshold)
