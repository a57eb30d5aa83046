"""Private helpers shared by the analyses (one home each): token coercion, paired-input and
site checks, metric checks, and the copies-per-pass budget. Public modules import these by
their plain names; nothing here is part of the public API."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._patching_sites import SITES, bytes_per_sequence, hook_name
from .hooks import unknown_name_error
from .metrics import Metric


def as_tokens(model, prompt) -> torch.Tensor:
    if isinstance(prompt, str) or (
        isinstance(prompt, Sequence) and prompt and isinstance(prompt[0], str)
    ):
        prompt = model.to_tokens(prompt)
    t = torch.as_tensor(prompt)
    return t[None] if t.dim() == 1 else t


def str_tokens_of(model, tokens: torch.Tensor) -> list[str]:
    try:
        return [str(s) for s in model.to_str_tokens(tokens[0])]
    except Exception:  # no tokenizer: show ids
        return [str(i) for i in tokens[0].tolist()]


def check_pair(model, clean: torch.Tensor, corrupted: torch.Tensor) -> None:
    if clean.shape == corrupted.shape:
        return
    raise ValueError(
        "Clean and corrupted prompts must have the same shape [batch, pos] so that positions "
        f"line up, got clean {list(clean.shape)} and corrupted {list(corrupted.shape)}.\n"
        f"  clean tokens:     {str_tokens_of(model, clean)}\n"
        f"  corrupted tokens: {str_tokens_of(model, corrupted)}\n"
        "Reword one prompt so both tokenise to the same number of tokens (and pass the same "
        "number of prompts)."
    )


def check_site(model, site: str) -> None:
    names = set(model.hook_names())
    present = [s for s in SITES if hook_name(s, 0) in names]
    if site not in present:
        err = unknown_name_error(site, present, what="patching site")
        if site in SITES:
            err = KeyError(
                f"This model has no {hook_name(site, 0)!r} (e.g. an attention-only model has no "
                f"resid_mid / mlp_out), so site {site!r} cannot be patched. "
                f"Sites it has: {', '.join(present)}."
            )
        raise err


def metric_values(metric: Metric, logits: torch.Tensor, batch: int) -> torch.Tensor:
    v = metric(logits)
    if not isinstance(v, torch.Tensor) or v.shape != (batch,):
        got = list(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(
            f"metric(logits) returned {got}; expected a tensor of shape [batch] = [{batch}], one "
            f"number per prompt (logits were {list(logits.shape)}). Reduce over positions and "
            "the vocabulary but not over the batch, e.g. logits[:, -1, answer] - "
            "logits[:, -1, wrong], or use mechscope.metrics.logit_diff."
        )
    return v


def copies_per_chunk(model, batch: int, n_pos: int, max_batch, memory_mb) -> int:
    if max_batch is not None:
        if int(max_batch) < batch:
            raise ValueError(
                f"max_batch={max_batch} is smaller than the {batch} prompts of one patched copy; "
                f"use max_batch >= {batch}."
            )
        return int(max_batch) // batch
    budget = (memory_mb if memory_mb is not None else 512) * 2**20
    return max(1, int(budget // (bytes_per_sequence(model, n_pos) * batch)))
