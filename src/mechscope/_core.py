"""Private helpers shared by the analyses (one home each): token coercion, paired-input and
site checks, metric checks, and the copies-per-pass budget. Public modules import these by
their plain names; nothing here is part of the public API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ._patching_sites import SITES, bytes_per_sequence, hook_name
from .hooks import unknown_name_error
from .metrics import Metric


def as_tokens(model, tokens, *, name: str = "tokens", check_ctx: bool = True) -> torch.Tensor:
    """THE token coercion: ``tokens`` -> ``[batch, pos]`` int64 ids, validated.

    Accepts a str, a list of str (equal token lengths), a list of ints, a list of lists of
    ints, or a ``[pos]`` / ``[batch, pos]`` integer tensor (or array). Rejects empty input,
    floats, bools, other ranks and ids outside ``[0, cfg.d_vocab)`` with a message naming
    ``name`` (the caller's argument: ``"tokens"``, ``"clean"``, ...). ``check_ctx=False``
    allows more than ``cfg.n_ctx`` ids (decoding ids to strings needs no context window).
    """
    if isinstance(tokens, str) or (
        isinstance(tokens, Sequence) and tokens and all(isinstance(t, str) for t in tokens)
    ):
        texts = [tokens] if isinstance(tokens, str) else list(tokens)
        if any(not t.strip() for t in texts):
            raise ValueError(
                f"{name} contains an empty prompt ({tokens!r}); give at least one word."
            )
        tokens = model.to_tokens(tokens)
    elif isinstance(tokens, Mapping):
        raise TypeError(
            f"{name} is a dict (a tokenizer's output?); pass token ids or text. For a padded "
            f"batch, run the model on the dict directly: model(model.tokenize(texts))."
        )
    if isinstance(tokens, Sequence) and not isinstance(tokens, str) and _has_bool(tokens):
        raise TypeError(f"{name} holds bools ({tokens!r}); token ids are ints.")
    try:
        t = torch.as_tensor(tokens)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{name} must be a str, a list of str, or integer ids [batch, pos]; got "
            f"{type(tokens).__name__} ({err})."
        ) from err
    if t.numel() == 0:
        raise ValueError(
            f"{name} is empty (shape {list(t.shape)}); give at least one token per prompt."
        )
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise TypeError(
            f"{name} must be integer ids, got dtype {t.dtype}. Use model.to_tokens(text), "
            f"or .long() on ids stored as floats."
        )
    if t.dim() == 1:
        t = t[None]
    if t.dim() != 2:
        raise ValueError(f"{name} must be [pos] or [batch, pos] ids, got shape {list(t.shape)}.")
    cfg = getattr(model, "cfg", None)
    d_vocab, n_ctx = getattr(cfg, "d_vocab", None), getattr(cfg, "n_ctx", None)
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or (d_vocab and hi >= d_vocab):
        raise ValueError(
            f"{name} has ids in [{lo}, {hi}], outside this model's vocabulary "
            f"[0, {d_vocab}) (cfg.d_vocab)."
        )
    if check_ctx and n_ctx and t.shape[1] > n_ctx:
        raise ValueError(
            f"{name} has {t.shape[1]} tokens: longer than this model's context of {n_ctx} "
            f"tokens (cfg.n_ctx). Truncate, e.g. {name}[:, :{n_ctx}]."
        )
    return t.long()


def _has_bool(seq) -> bool:
    for x in seq:
        if isinstance(x, bool):
            return True
        if isinstance(x, Sequence) and not isinstance(x, str) and _has_bool(x):
            return True
    return False


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


def copies_per_chunk(model, batch: int, n_pos: int, batch_size, memory_mb) -> int:
    """How many patched copies of ``batch`` prompts go into one forward pass: at most
    ``batch_size`` sequences, or as many as fit ``memory_mb`` (default 512 MB)."""
    if batch_size is not None:
        if isinstance(batch_size, bool) or int(batch_size) < batch:
            raise ValueError(
                f"batch_size={batch_size!r} is smaller than the {batch} prompts of one patched "
                f"copy; use batch_size >= {batch} (or leave it None and set memory_mb)."
            )
        return int(batch_size) // batch
    if memory_mb is not None and not memory_mb > 0:
        raise ValueError(f"memory_mb={memory_mb!r}; expected a positive number of megabytes.")
    budget = (memory_mb if memory_mb is not None else 512) * 2**20
    return max(1, int(budget // (bytes_per_sequence(model, n_pos) * batch)))
