"""The input check that ``disentangle`` and ``identifiability`` share: a data matrix."""

from __future__ import annotations

import torch


def data_matrix(x, name: str, *, min_rows: int, row: str) -> torch.Tensor:
    """``x`` as a finite float64 ``[n, d]`` tensor with ``n >= min_rows``; a ValueError naming
    ``name``, the shape and what one row is (``row``: "input", "sample") otherwise."""
    t = torch.as_tensor(x)
    if t.dim() != 2 or t.shape[0] < min_rows:
        raise ValueError(
            f"{name} has shape {list(t.shape)}; expected [n, d] with n >= {min_rows} rows "
            f"(one per {row})."
        )
    if not t.is_floating_point():
        t = t.float()
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} has {int((~torch.isfinite(t)).sum())} NaN / Inf entries.")
    return t.detach().double()
