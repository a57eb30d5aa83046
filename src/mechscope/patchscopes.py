"""Patchscopes (Ghandeharioun et al. 2024, "Patchscopes: A Unifying Framework for Inspecting
Hidden Representations of Language Models").

Let the model itself decode a hidden state: take the residual stream of a *source* prompt at
one position and layer, write it into a *target* (inspection) prompt at ``target_pos`` and
the same layer, run the rest of the target prompt, and read what it predicts. With a target
prompt that asks a question about a placeholder (``"the store is in"``), the prediction is the
answer for whatever the patched state encodes. The logit lens is the special case where the
target is the source and nothing runs after the patch.

Layer ``l`` < ``n_layers`` patches ``blocks.{l}.hook_resid_pre``; layer ``n_layers`` patches
the final ``blocks.{n-1}.hook_resid_post`` (labels ``"0_pre"`` ... ``"final_post"``, as in
:mod:`mechscope.lens`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._core import as_tokens, str_tokens_of

__all__ = ["PatchscopeResult", "patchscope"]


def _resid_names(n_layers: int) -> list[str]:
    return [f"blocks.{i}.hook_resid_pre" for i in range(n_layers)] + [
        f"blocks.{n_layers - 1}.hook_resid_post"
    ]


@dataclass(frozen=True)
class PatchscopeResult:
    """values: ``[layer, batch, d_vocab]`` logits of the target prompt's last position with
    source prompt ``b``'s state patched in at that layer. labels: one per layer row.
    baseline: ``[batch, d_vocab]`` logits of the target prompt with nothing patched."""

    values: torch.Tensor
    labels: list[str]
    baseline: torch.Tensor
    pos: int
    target_pos: int
    target_str_tokens: list[str]

    def predictions(self) -> torch.Tensor:
        """``[layer, batch]`` top-1 token ids."""
        return self.values.argmax(-1)

    def accuracy(self, answer_ids) -> torch.Tensor:
        """``[layer]``: fraction of source prompts whose top-1 decoded token is its answer.

        answer_ids: one id per source prompt, ``[batch]`` (a list or tensor of ints)."""
        ids = torch.as_tensor(answer_ids).reshape(-1)
        if ids.numel() != self.values.shape[1]:
            raise ValueError(
                f"answer_ids has {ids.numel()} ids for {self.values.shape[1]} source prompts; "
                f"give one answer id per source prompt."
            )
        return (self.predictions() == ids.to(self.values.device)).float().mean(-1)

    def __repr__(self) -> str:
        return (
            f"PatchscopeResult(values[layer, batch, d_vocab]={list(self.values.shape)}, "
            f"pos={self.pos}, target_pos={self.target_pos}, labels={self.labels})"
        )


def _check_pos(pos, n_pos: int, what: str) -> int:
    if isinstance(pos, bool) or not isinstance(pos, int) or not -n_pos <= pos < n_pos:
        raise ValueError(
            f"{what}={pos!r}: expected one int position of a {n_pos}-token prompt, in "
            f"[{-n_pos}, {n_pos}) (negative counts from the end)."
        )
    return pos % n_pos


def patchscope(model, source, target, *, pos: int, target_pos: int) -> PatchscopeResult:
    """Decode ``source``'s residual stream at ``pos`` by patching it into ``target``.

    source: prompts ``[batch, pos]`` (text or ids) whose states are inspected, one per row.
    target: the inspection prompt, one prompt (used for every source row) or ``batch`` prompts.
    pos: the position read in ``source``; target_pos: the position written in ``target``.

    Returns a :class:`PatchscopeResult` with ``values [layer, batch, d_vocab]``, one row per
    residual-stream layer (``n_layers + 1``). The model is unchanged (hooks removed).
    """
    src = as_tokens(model, source, name="source")
    tgt = as_tokens(model, target, name="target")
    batch = src.shape[0]
    if tgt.shape[0] == 1:
        tgt = tgt.expand(batch, -1)
    elif tgt.shape[0] != batch:
        raise ValueError(
            f"target has {tgt.shape[0]} prompts for {batch} source prompts; give one target "
            f"prompt (used for every source) or one per source prompt."
        )
    p = _check_pos(pos, src.shape[1], "pos")
    tp = _check_pos(target_pos, tgt.shape[1], "target_pos")
    names = _resid_names(model.cfg.n_layers)
    rows = []
    with torch.no_grad():
        _, cache = model.run_with_cache(src, names=names)
        baseline = model(tgt)[:, -1].float()
        for name in names:
            state = cache[name][:, p]  # [batch, d_model]

            def write(act, hook_point, state=state):
                act = act.clone()
                act[:, tp] = state.to(act.dtype)
                return act

            with model.hooks([(name, write)]):
                rows.append(model(tgt)[:, -1].float())
    labels = [f"{i}_pre" for i in range(model.cfg.n_layers)] + ["final_post"]
    return PatchscopeResult(
        values=torch.stack(rows),
        labels=labels,
        baseline=baseline,
        pos=p,
        target_pos=tp,
        target_str_tokens=str_tokens_of(model, tgt),
    )
