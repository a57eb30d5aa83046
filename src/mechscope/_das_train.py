"""Private: the parts of DAS (:mod:`mechscope.das`) behind its public functions: the model
frozen and restored, input checks, the intervened forward pass and the rotation's training."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._intervene import check_hook, select


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Eval mode and no parameter gradients inside; the exact prior state restored after."""
    modes = [(m, m.training) for m in model.modules()]
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    try:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag, grad in zip(params, flags, grads, strict=True):
            p.requires_grad_(flag)
            p.grad = grad
        for m, mode in modes:
            m.training = mode


def check_model(model, hook) -> None:
    if not (hasattr(model, "hooks") and hasattr(model, "hook_names")):
        raise TypeError(
            f"model: {type(model).__name__} has no hook points; interchange interventions need "
            "a HookedModel (mechscope.load / mechscope.wrap / Transformer) or any module "
            "with .hooks() and .hook_names()."
        )
    check_hook(model, hook)


def check_basis(basis, d: int, hook: str) -> torch.Tensor:
    basis = torch.as_tensor(basis, dtype=torch.float32)
    if basis.dim() != 2 or basis.shape[0] != d or not 1 <= basis.shape[1] <= d:
        raise ValueError(
            f"basis has shape {list(basis.shape)}; hook {hook!r} has d={d}, so expected "
            f"[{d}, k] with 1 <= k <= {d} (orthonormal columns spanning the subspace)."
        )
    gram = basis.T @ basis
    err = float((gram - torch.eye(basis.shape[1])).abs().max())
    if not err <= 1e-3:
        raise ValueError(
            f"basis columns are not orthonormal (max |B^T B - I| = {err:.3g}). Orthonormalise "
            "them first: torch.linalg.qr(basis).Q."
        )
    return basis


def check_pair(base: torch.Tensor, source: torch.Tensor, labels=None) -> None:
    nb, ns = len(base), len(source)
    if nb != ns or base.shape[1:] != source.shape[1:]:
        raise ValueError(
            f"base has shape {list(base.shape)} and source {list(source.shape)}; interchange "
            "interventions pair them one to one, position by position, so pass the same "
            "number of inputs of the same length."
        )
    if nb == 0:
        raise ValueError("base and source are empty; pass at least one (base, source) pair.")
    if labels is not None:
        labels = torch.as_tensor(labels)
        if labels.shape != (nb,) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(
                f"labels must be [n] = [{nb}] integer class ids (the causal model's "
                f"counterfactual outputs), got shape {list(labels.shape)} dtype {labels.dtype}."
            )


def readout(logits: torch.Tensor, answer_ids: Sequence[int] | None) -> torch.Tensor:
    """Logits ``[batch, pos, d_vocab]`` (last position used) or ``[batch, classes]`` ->
    ``[batch, classes]``, restricted to ``answer_ids`` when given."""
    if logits.dim() == 3:
        logits = logits[:, -1]
    return logits if answer_ids is None else logits[:, list(answer_ids)]


def check_labels(labels, n_classes: int) -> torch.Tensor:
    labels = torch.as_tensor(labels).long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"labels range over [{int(labels.min())}, {int(labels.max())}] but the read-out has "
            f"{n_classes} classes: labels index answer_ids (or the logits), so expected values "
            f"in [0, {n_classes})."
        )
    return labels


def check_answer_ids(answer_ids, model) -> list[int] | None:
    if answer_ids is None:
        return None
    ids = torch.as_tensor(answer_ids)
    if ids.dtype == torch.bool or ids.dtype.is_floating_point or ids.dim() > 1 or not ids.numel():
        raise ValueError(
            f"answer_ids must be a non-empty list of token ids (the read-out classes), got "
            f"{answer_ids!r}."
        )
    ids = ids.reshape(-1).tolist()
    d_vocab = getattr(getattr(model, "cfg", None), "d_vocab", None)
    if d_vocab and any(not 0 <= i < d_vocab for i in ids):
        raise ValueError(f"answer_ids {ids} has ids outside the vocabulary [0, {d_vocab}).")
    return ids


def intervened_logits(model, base, hook, pos, src_act, basis):
    """Forward on ``base`` with the hook's vector replaced (whole, or within ``basis``)."""

    def swap(act, hook_point):
        h = select(act, hook, pos)
        if basis is None:
            new = src_act.to(h.dtype)
        else:
            b = basis.to(h.dtype)  # the rotation trains in float32; the model may be half
            new = h + (src_act.to(h.dtype) - h) @ b @ b.T
        if act.dim() == 2:
            return new
        act = act.clone()
        act[:, pos if isinstance(pos, int) else list(pos)] = new
        return act

    with model.hooks([(hook, swap)]):
        return model(base)


def train_rotation(
    model,
    base,
    src,
    labels,
    hook,
    k,
    pos,
    answer_ids,
    steps,
    lr,
    batch_size,
    seed,
    init: torch.Tensor,
):
    """Adam on the cross-entropy of the intervened read-out: the ``[d, k]`` basis and losses.
    ``init``: the starting ``[d, k]`` basis (``random_basis(d, k, seed=seed)``)."""
    d = src.shape[-1]
    gen = torch.Generator().manual_seed(seed)
    # [k, d] weight = the first k rows of R; skip_init: no draw from the global RNG.
    rot = nn.utils.skip_init(nn.Linear, d, k, bias=False, device=src.device)
    with torch.no_grad():
        rot.weight.copy_(init.T)
    # Keeps the rows orthonormal while training. Registration draws a random completion of
    # the basis from the global RNG: seed it there, and give the user's RNG state back.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        nn.utils.parametrizations.orthogonal(rot)
    opt = torch.optim.Adam(rot.parameters(), lr=lr)
    losses = []
    with frozen(model):
        for _ in range(steps):
            idx = torch.randint(len(labels), (min(batch_size, len(labels)),), generator=gen)
            b_idx = idx.to(src.device)
            logits = intervened_logits(model, base[idx], hook, pos, src[b_idx], rot.weight.T)
            out = readout(logits, answer_ids)
            loss = F.cross_entropy(out, check_labels(labels[b_idx], out.shape[-1]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return rot.weight.detach().T.contiguous(), losses
