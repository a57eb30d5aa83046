"""Max-activating dataset examples, and how pure they are in class.

For each unit (a channel of a conv layer, reduced over space by its maximum; or an SAE
feature) take the ``k`` inputs it responds to most. Its **purity** is the fraction of those
``k`` that share the most common label: 1.0 for a unit that only fires on one digit, about
the largest class share (~0.1 for ten balanced classes) for a unit blind to class. It is the
example-based counterpart of feature visualisation (Olah et al. 2017, "Dataset examples").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PurityResult:
    """``values [unit]``: purity of each unit's top-``k``; ``classes [unit]``: their most
    common label; ``top [unit, k]``: row indices of the top-``k`` examples, highest first."""

    values: torch.Tensor
    classes: torch.Tensor
    top: torch.Tensor

    def mean(self) -> float:
        return float(self.values.mean())


@torch.no_grad()
def image_acts(model, images: torch.Tensor, hook: str, *, batch_size: int = 512) -> torch.Tensor:
    """``[n_images, unit]``: each channel's largest activation over space at ``hook`` (conv
    activations ``[batch, channel, h, w]``), or the activation itself (``[batch, unit]``)."""
    out = []
    for i in range(0, len(images), batch_size):
        _, cache = model.run_with_cache(images[i : i + batch_size], names=[hook])
        a = cache[hook]
        out.append(a.flatten(2).amax(-1) if a.ndim == 4 else a)
    return torch.cat(out)


def purity(acts: torch.Tensor, labels: torch.Tensor, *, k: int = 20) -> PurityResult:
    """Class purity of the top-``k`` rows of ``acts`` ``[n, unit]`` for each unit (column);
    ``labels [n]`` the class of each row. Units that never fire (all values <= 0) get NaN."""
    acts = torch.as_tensor(acts).float()
    labels = torch.as_tensor(labels).long()
    if acts.ndim != 2 or labels.shape != acts.shape[:1]:
        raise ValueError(
            f"acts has shape {tuple(acts.shape)} and labels {tuple(labels.shape)}; expected "
            "acts [n, unit] and one label per row, labels [n]."
        )
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(acts):
        raise ValueError(f"k={k!r}; expected an int in 1..{len(acts)} (the number of rows).")
    top = acts.topk(k, dim=0).indices.T  # [unit, k]
    top_labels = labels[top]
    n_classes = int(labels.max()) + 1
    counts = torch.zeros(len(top), n_classes).scatter_add_(
        1, top_labels, torch.ones_like(top_labels, dtype=torch.float)
    )
    best, classes = counts.max(-1)
    values = best / k
    values[~(acts.max(0).values > 0)] = float("nan")
    return PurityResult(values, classes, top)
