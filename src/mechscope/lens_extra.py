"""Two more lenses: each attention head read in the vocabulary, and a linear shortcut.

Attention lens (after Sakarvadia et al. 2023, "Attention Lens: A Tool for Mechanistically
Interpreting the Attention Head Information Retrieval Mechanism"; their lenses are trained,
this is the untrained version the review describes): project each head's write to the
residual stream, ``z[l, h] @ W_O[l, h]``, through the final norm (centred, divided by the real
final residual's scale, as direct logit attribution does) and the unembedding. The top tokens
say what a head moves; the rank of the answer says whether it moves *that*.

Linear shortcut (Din et al. 2023, "Jump to Conclusions: Short-Cutting Transformers with
Linear Transformations"): fit one affine map per layer, ``h_L ~ h_l A_l + b_l``, by least
squares from the residual stream entering block ``l`` to the final one, on some text; then
read out ``h_l A_l + b_l`` with the final norm and unembedding. A closed-form cousin of the
tuned lens (which minimises KL instead); compare both against the logit lens on held-out text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._core import as_tokens, str_tokens_of
from .cache import ActivationCache
from .lens import LensResult

__all__ = [
    "AttentionLensResult",
    "LinearShortcut",
    "attention_lens",
    "fit_linear_shortcut",
    "linear_shortcut_lens",
]


def _folded_unembed(model) -> torch.Tensor:
    """``[d_model, d_vocab]``: W_U with the final norm's weight folded in."""
    w_u = model.unembed_weights().detach().float()
    norm = model.final_norm()
    if norm is not None and norm["weight"] is not None:
        w_u = norm["weight"].detach().float()[:, None] * w_u
    return w_u


@dataclass(frozen=True)
class AttentionLensResult:
    """values: ``[layer, head, batch, d_vocab]``, each head's direct contribution to every
    logit at position ``pos``. labels: ``"L0H0"``, ... (layer-major)."""

    values: torch.Tensor
    labels: list[str]
    pos: int

    def top_k(self, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, ids)``, each ``[layer, head, batch, k]``, largest first."""
        return self.values.topk(k, dim=-1)

    def rank(self, answer_ids) -> torch.Tensor:
        """``[layer, head, batch]``: the answer's rank among a head's logits (0 = top).

        answer_ids: one id, or ``[batch]`` ids."""
        ids = torch.as_tensor(answer_ids).reshape(-1).to(self.values.device)
        batch = self.values.shape[2]
        if ids.numel() not in (1, batch):
            raise ValueError(
                f"answer_ids has {ids.numel()} ids for {batch} prompts; give one id or one per prompt."
            )
        ids = ids.expand(batch)
        answer = self.values.gather(-1, ids[None, None, :, None].expand(*self.values.shape[:3], 1))
        return (self.values > answer).sum(-1)

    def __repr__(self) -> str:
        return f"AttentionLensResult(values[layer, head, batch, d_vocab]={list(self.values.shape)}, pos={self.pos})"


def attention_lens(model, tokens, *, pos: int = -1) -> AttentionLensResult:
    """Each head's output at ``pos`` projected to the vocabulary (see the module docstring).

    tokens: ``[batch, pos]`` ids or text. Returns :class:`AttentionLensResult`
    ``[layer, head, batch, d_vocab]``. Needs ``head_output_weights``; the model is unchanged.
    """
    toks = as_tokens(model, tokens)
    n_pos = toks.shape[1]
    if isinstance(pos, bool) or not isinstance(pos, int) or not -n_pos <= pos < n_pos:
        raise ValueError(f"pos={pos!r}; give one int position in [{-n_pos}, {n_pos}).")
    n = model.cfg.n_layers
    names = [f"blocks.{i}.attn.hook_z" for i in range(n)] + [f"blocks.{n - 1}.hook_resid_post"]
    with torch.no_grad():
        _, cache = model.run_with_cache(toks, names=names)
        stack, labels = cache.stack_head_results(pos_slice=pos, apply_ln=True)
        logits = stack.float() @ _folded_unembed(model).to(stack.device)  # [l*h, batch, d_vocab]
    values = logits.reshape(n, -1, *logits.shape[1:])
    return AttentionLensResult(values=values, labels=labels, pos=pos % n_pos)


@dataclass(frozen=True)
class LinearShortcut:
    """values: ``[layer, d_model + 1, d_model]``, one affine map per residual layer
    (``blocks.{l}.hook_resid_pre``), the last row of each the bias."""

    values: torch.Tensor
    l2: float

    def __call__(self, stack: torch.Tensor) -> torch.Tensor:
        """``[layer, ..., d_model]`` residuals -> the predicted final residual, same shape."""
        w, b = self.values[:, :-1], self.values[:, -1]
        shape = stack.shape
        flat = stack.reshape(shape[0], -1, shape[-1]).float()
        return (torch.bmm(flat, w.to(flat.device)) + b[:, None].to(flat.device)).reshape(shape)


def _resid(model, toks) -> torch.Tensor:
    """``[layer + 1, batch, pos, d_model]``: every resid_pre and the final resid_post."""
    n = model.cfg.n_layers
    names = [f"blocks.{i}.hook_resid_pre" for i in range(n)] + [f"blocks.{n - 1}.hook_resid_post"]
    with torch.no_grad():
        _, cache = model.run_with_cache(toks, names=names)
    return torch.stack([cache[name] for name in names]).float()


def fit_linear_shortcut(model, tokens, *, l2: float = 1e-4) -> LinearShortcut:
    """Din et al.'s shortcut: per layer, ridge regression (penalty ``l2`` times the mean
    squared activation) from ``resid_pre`` to the final residual over every position of
    ``tokens``. Closed form, float64; returns a :class:`LinearShortcut`."""
    if isinstance(l2, bool) or not float(l2) >= 0:
        raise ValueError(f"l2={l2!r}; give a non-negative ridge penalty, e.g. 1e-4.")
    stack = _resid(model, as_tokens(model, tokens)).double()
    d = stack.shape[-1]
    y = stack[-1].reshape(-1, d)
    maps = []
    for layer in range(stack.shape[0] - 1):
        x = stack[layer].reshape(-1, d)
        x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)  # bias column
        gram = x1.T @ x1
        penalty = float(l2) * gram.diagonal()[:-1].mean() * torch.eye(d + 1, dtype=x.dtype)
        penalty[-1, -1] = 0  # the bias is not penalised
        maps.append(torch.linalg.solve(gram + penalty, x1.T @ y))
    return LinearShortcut(values=torch.stack(maps).float(), l2=float(l2))


def linear_shortcut_lens(model, tokens, lens: LinearShortcut) -> LensResult:
    """Read every layer through ``lens`` and the final norm + unembedding: a
    :class:`mechscope.lens.LensResult` (``kind="linear"``; the last row is the model's output)."""
    if not isinstance(lens, LinearShortcut):
        raise TypeError(
            f"lens is {type(lens).__name__}; fit one with fit_linear_shortcut(model, tokens)."
        )
    toks = as_tokens(model, tokens)
    stack = _resid(model, toks)
    if lens.values.shape[0] != stack.shape[0] - 1 or lens.values.shape[-1] != stack.shape[-1]:
        raise ValueError(
            f"lens maps {lens.values.shape[0]} layers of width {lens.values.shape[-1]}; this model "
            f"has {stack.shape[0] - 1} of width {stack.shape[-1]}. Fit it on this model."
        )
    mapped = torch.cat([lens(stack[:-1]), stack[-1:]])
    analysis = ActivationCache({}, model=model)
    normed = analysis.apply_ln_to_stack(mapped, recompute_scale=True)
    logits = normed @ _folded_unembed(model) + analysis.unembed_offset().float()
    n = model.cfg.n_layers
    return LensResult(
        logits=logits,
        labels=[f"{i}_pre" for i in range(n)] + ["final_post"],
        tokens=toks,
        str_tokens=[str_tokens_of(model, toks[b : b + 1]) for b in range(toks.shape[0])],
        kind="linear",
    )
