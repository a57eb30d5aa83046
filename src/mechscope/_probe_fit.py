"""Checks and solvers behind :mod:`mechscope.probes`: activations and labels validated,
the seeded split, R^2, ridge and multinomial logistic fits, and the univariate neuron
ranking of sparse probing. Private: import by plain names."""

from __future__ import annotations

import math

import torch


def as_acts(acts, what: str = "acts") -> torch.Tensor:
    acts = torch.as_tensor(acts)
    if acts.dim() != 2:
        raise ValueError(
            f"{what} has shape {list(acts.shape)}; expected [n, d] (one row per example). "
            f"Flatten batch and position first, e.g. cache['blocks.1.hook_resid_post']"
            f".reshape(-1, d_model), or index one position: [:, -1]."
        )
    if not acts.is_floating_point():
        acts = acts.float()
    # A finite sum proves every entry finite (NaN and Inf propagate) at a fraction of the
    # cost; an infinite one (overflow, or a bad entry) falls back to the exact check.
    if not torch.isfinite(acts.sum()) and not torch.isfinite(acts).all():
        bad = int((~torch.isfinite(acts)).any(-1).sum())
        raise ValueError(f"{what} has {bad} rows with NaN or Inf; drop or fix them first.")
    return acts.detach()


def as_label_tensor(labels, what: str = "labels") -> torch.Tensor:
    """``labels`` as a tensor; strings (class names) get an error with the fix."""
    if isinstance(labels, str) or (
        not isinstance(labels, torch.Tensor)
        and hasattr(labels, "__len__")
        and len(labels)
        and isinstance(labels[0], str)
    ):
        example = list(dict.fromkeys(labels))[:3] if not isinstance(labels, str) else labels
        raise TypeError(
            f"{what} holds strings ({example!r}...); a probe needs integer classes 0..C-1. "
            f"Map each class to an int first, e.g. classes = sorted(set({what})); "
            f"{what} = torch.tensor([classes.index(x) for x in {what}])."
        )
    try:
        return torch.as_tensor(labels).detach()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{what} of type {type(labels).__name__} is not a tensor of numbers; expected "
            f"[n] integer classes (or float targets for kind='lstsq')."
        ) from err


def as_types(types, n: int) -> torch.Tensor:
    """``types`` (the word type of each of n examples) as a tensor ``[n]``."""
    types = as_label_tensor(types, "types")
    if types.shape != (n,):
        raise ValueError(f"types has shape {list(types.shape)}; expected [{n}], one type per row.")
    return types


def as_labels(labels, n: int, kind: str) -> tuple[torch.Tensor, bool]:
    """Return (labels, is_classification)."""
    labels = as_label_tensor(labels)
    if labels.shape[0:1] != (n,) or labels.dim() > 2:
        raise ValueError(
            f"labels has shape {list(labels.shape)} but acts has {n} rows; expected one label "
            f"per row of acts: shape [{n}] (or [{n}, k] float targets for kind='lstsq'). "
            f"Build labels from the same examples, in the same order, as acts."
        )
    is_cls = not labels.is_floating_point()
    if kind == "logistic" and not is_cls:
        raise ValueError(
            f"kind='logistic' needs integer class labels 0..C-1, got dtype {labels.dtype}. "
            f"Use labels.long() for classes, or kind='lstsq' for real-valued targets."
        )
    if is_cls:
        if labels.dim() != 1:
            raise ValueError(f"class labels must be 1-D [n], got {list(labels.shape)}.")
        labels = labels.long()
        if labels.min() < 0:
            raise ValueError(
                f"labels contain negative classes ({int(labels.min())}); expected 0..C-1."
            )
        n_present = int(torch.unique(labels).numel())
        if n_present < 2:
            raise ValueError(
                f"labels contain one class only ({int(labels[0])}, all {n} examples); a probe "
                f"needs at least 2 classes to separate. Check how the labels were built."
            )
    elif not torch.isfinite(labels).all():
        raise ValueError("regression targets contain NaN or Inf.")
    return labels, is_cls


def split(n: int, test_frac: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not 0.0 <= test_frac < 1.0:
        raise ValueError(f"test_frac={test_frac}; expected 0 <= test_frac < 1 (e.g. 0.2).")
    n_test = int(round(n * test_frac))
    if test_frac > 0 and n_test == 0:
        n_test = 1
    if n - n_test < 2:
        raise ValueError(
            f"{n} examples leave {n - n_test} for training with test_frac={test_frac}; "
            f"give more examples or a smaller test_frac."
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:].sort().values, perm[:n_test].sort().values


def r2(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Coefficient of determination, averaged over target columns."""
    pred, target = pred.double().reshape(len(pred), -1), target.double().reshape(len(target), -1)
    ss_res = (target - pred).pow(2).sum(0)
    ss_tot = (target - target.mean(0)).pow(2).sum(0).clamp_min(1e-30)
    return float((1 - ss_res / ss_tot).mean())


def fit_ridge(x: torch.Tensor, y: torch.Tensor, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge on centred data, closed form. x ``[n, d]``, y ``[n, k]`` -> (w ``[k, d]``, b ``[k]``)."""
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    n, d = x.shape
    gram = xc.T @ xc + (n * l2 + 1e-10) * torch.eye(d, dtype=x.dtype, device=x.device)
    w = torch.linalg.solve(gram, xc.T @ yc).T
    return w, ym - w @ xm


def standardise(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardise float ``x`` in place along ``dim`` (its examples); return the (mean, std) it
    applied, as float64 ``[d]``.

    A feature whose std is below 1e-8 of the largest keeps std 1 (it is only centred)."""
    mu = x.mean(dim, keepdim=True)
    x.sub_(mu)
    sd = torch.linalg.vector_norm(x, dim=dim, keepdim=True) / math.sqrt(x.shape[dim])
    sd = torch.where(sd > 1e-8 * sd.max().clamp_min(1e-30), sd, torch.ones_like(sd))
    sd = sd.to(x.dtype)
    x.div_(sd)
    return mu.double().flatten(), sd.double().flatten()


def fit_logistic(
    xt: torch.Tensor, y: torch.Tensor, n_cls: int, l2: float, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by L-BFGS on ``mean CE + l2 |W|^2``.

    xt ``[d, n]`` float64, one column per example (the layout both products read fastest),
    y ``[n]`` -> (W ``[C, d]``, b ``[C]``). The loss and its gradient are written out, no
    autograd: logits ``W xt + b``, gradient ``(softmax - onehot) xt^T / n + 2 l2 W``. The
    parameters are one flat vector ``[W.flatten(), b]``, the order torch's L-BFGS flattened
    ``[W, b]`` in, so the iterates are those of the autograd fit this replaced (to ~1e-7).
    L-BFGS (history 20, strong-Wolfe line search) stops at ``steps`` iterations, a max
    |gradient| of 1e-7, or a loss change of 1e-10. Float32 products or a looser gradient
    tolerance (1e-5) would be ~1.7x faster but move the weights by ~3e-3 on small probes,
    enough to change a held-out accuracy (a zoo card's probe number): see bench/probes.py.
    """
    d, n = xt.shape
    k = n_cls * d
    theta = torch.zeros(k + n_cls, dtype=xt.dtype, device=xt.device)
    w, b = theta[:k].view(n_cls, d), theta[k:]
    theta.grad = torch.zeros_like(theta)
    grad_w, grad_b = theta.grad[:k].view(n_cls, d), theta.grad[k:]
    onehot = torch.zeros(n_cls, n, dtype=xt.dtype, device=xt.device)
    onehot[y, torch.arange(n, device=xt.device)] = 1.0
    opt = torch.optim.LBFGS(
        [theta],
        lr=1.0,
        max_iter=steps,
        history_size=20,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )

    def closure():
        logp = torch.log_softmax(torch.addmm(b[:, None], w, xt), 0)  # [C, n]
        loss = l2 * w.view(-1).dot(w.view(-1)) - logp.view(-1).dot(onehot.view(-1)) / n
        resid = logp.exp_().sub_(onehot).div_(n)  # (softmax - onehot) / n
        torch.mm(resid, xt.T, out=grad_w).add_(w, alpha=2 * l2)
        torch.sum(resid, 1, out=grad_b)
        return loss

    opt.step(closure)
    return w.clone(), b.clone()


def rank_scores(x: torch.Tensor, y: torch.Tensor, method: str) -> torch.Tensor:
    """Per-neuron univariate score ``[d]`` for class labels y (higher = more informative)."""
    n_cls = int(y.max()) + 1
    onehot = torch.nn.functional.one_hot(y, n_cls).double()  # [n, C]
    counts = onehot.sum(0)  # [C]
    present = counts > 0
    means = (onehot.T @ x) / counts.clamp_min(1)[:, None]  # [C, d]
    if method == "mean_diff":
        # |mean in class - mean elsewhere|, best class (binary: |mu1 - mu0|).
        total = x.sum(0)
        rest = (total - means * counts[:, None]) / (len(x) - counts).clamp_min(1)[:, None]
        return (means - rest).abs()[present].max(0).values
    # One-way ANOVA F statistic: between-class over within-class variance.
    k, n = int(present.sum()), len(x)
    grand = x.mean(0)
    between = (counts[:, None] * (means - grand).pow(2)).sum(0) / max(k - 1, 1)
    within = (x - means[y]).pow(2).sum(0) / max(n - k, 1)
    return between / within.clamp_min(1e-12)
