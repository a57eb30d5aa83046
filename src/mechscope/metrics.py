"""Metrics: what a patching, ablation or attribution run measures.

A metric maps logits ``[batch, pos, d_vocab]`` to one number per prompt, ``[batch]``
(review section 4.3; Wang et al. 2022 use the logit difference between the right and a
wrong answer; Heimersheim & Nanda 2024 recommend it and its normalised form). Every method
in mechscope that takes ``metric=`` takes these.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Metric = Callable[[torch.Tensor], torch.Tensor]  # logits [batch, pos, d_vocab] -> [batch]

__all__ = ["Metric", "logit_diff", "normalized"]


def _ids(ids, what: str) -> torch.Tensor:
    t = torch.as_tensor(ids)
    if t.dtype.is_floating_point or t.dim() > 1:
        raise ValueError(
            f"{what} must be one token id per prompt (an int, or a list / [batch] tensor of "
            f"ints), got {'dtype ' + str(t.dtype) if t.dtype.is_floating_point else 'shape ' + str(list(t.shape))}."
        )
    return t.long()


def logit_diff(answer_ids, wrong_ids=None, pos: int = -1) -> Metric:
    """Metric: ``logits[b, pos, answer_b] - logits[b, pos, wrong_b]``, shape ``[batch]``.

    answer_ids, wrong_ids: one token id for all prompts, or one per prompt (``[batch]``).
        Without ``wrong_ids``, the answer's logit alone.
    pos: the position whose prediction is scored (default the last).
    """
    ans = _ids(answer_ids, "answer_ids")
    wrong = None if wrong_ids is None else _ids(wrong_ids, "wrong_ids")

    def metric(logits: torch.Tensor) -> torch.Tensor:
        last = logits[:, pos]  # [batch, d_vocab]
        b = torch.arange(last.shape[0], device=last.device)
        out = last[b, ans.to(last.device)]
        return out if wrong is None else out - last[b, wrong.to(last.device)]

    return metric


def normalized(metric: Metric, clean_value, corrupted_value) -> Metric:
    """``(metric - corrupted_value) / (clean_value - corrupted_value)``: 0 = corrupted, 1 = clean.

    clean_value, corrupted_value: the metric on the unpatched clean and corrupted runs,
    as numbers or ``[batch]`` tensors (per prompt). Equal values would divide by zero,
    so they raise.
    """
    clean = torch.as_tensor(clean_value, dtype=torch.float32).detach()
    corrupted = torch.as_tensor(corrupted_value, dtype=torch.float32).detach()
    gap = clean - corrupted
    if (gap == 0).any():
        raise ValueError(
            f"normalized: clean_value ({clean.tolist()}) equals corrupted_value "
            f"({corrupted.tolist()}) for some prompt, so there is no gap to normalise by. "
            "Pick prompts or a metric on which the clean and corrupted runs differ."
        )

    def metric_normalized(logits: torch.Tensor) -> torch.Tensor:
        v = metric(logits)
        return (v - corrupted.to(v.device, v.dtype)) / gap.to(v.device, v.dtype)

    return metric_normalized
