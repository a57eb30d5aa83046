"""Adversarial examples and adversarial training on the digits CNN (the review's §8 and §3.1).

An adversarial example is an input changed by a perturbation too small to matter to a person
(here: no pixel moves more than ``eps``, in [0, 1] pixel units) that changes the model's answer
(Szegedy et al. 2014). Three perturbations of the same size, so their success rates compare:

- :func:`fgsm`: one step along the sign of the input gradient of the loss (Goodfellow, Shlens &
  Szegedy 2015, "Explaining and Harnessing Adversarial Examples");
- :func:`pgd`: ``steps`` such steps of size ``step``, each projected back into the ``eps`` box,
  from a seeded random start (Madry et al. 2018, "Towards Deep Learning Models Resistant to
  Adversarial Attacks");
- :func:`random_noise`: a random sign pattern of the same ``eps`` (the same L-inf *and* L2
  norm as FGSM's perturbation): the control that says the direction, not the size, matters.

``targets`` (optional, ``[n]`` class ids) turns each attack into a targeted one: push towards
``targets`` instead of away from ``labels``. All perturbed images are clipped to [0, 1].

:func:`adversarial_training` trains a fresh :class:`~mechscope.vision.DigitsCNN` on
random-start FGSM examples (Wong, Rice & Kolter 2020, "Fast is better than free"); ``eps=0``
is standard training with the identical recipe, the control. :func:`input_gradient` and
:func:`saliency_alignment` measure what Tsipras et al. (2019, "Robustness May Be at Odds with
Accuracy") and Engstrom et al. (2019, "Adversarial Robustness as a Prior for Learned
Representations") report: a robust model's input gradients look like the digit.

The model is never changed: gradients are taken with ``torch.autograd.grad`` with respect to
the images only (parameters' ``.grad`` untouched) and the model's train/eval mode is restored.
Shapes: ``images [n, 1, 8, 8]`` (or ``[n, 8, 8]``) in [0, 1], ``labels`` / ``targets [n]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .cnn import CNNConfig, DigitsCNN

__all__ = [
    "AttackResult",
    "adversarial_training",
    "fgsm",
    "input_gradient",
    "pgd",
    "random_noise",
    "saliency_alignment",
]


@dataclass(frozen=True)
class AttackResult:
    """``values [n, 1, h, w]``: the perturbed images; ``delta``: ``values - images`` (each
    pixel within ``[-eps, eps]``); ``success [n]`` bool: the answer is no longer the label
    (untargeted) or is the target (targeted); ``kind``: ``"fgsm"``, ``"pgd"`` or ``"random"``."""

    values: torch.Tensor
    delta: torch.Tensor
    success: torch.Tensor
    eps: float
    kind: str

    def success_rate(self) -> float:
        return float(self.success.float().mean())


def _check(model, images, labels, eps, targets):
    x = model.to_tokens(images).detach().float()  # [n, 1, h, w], or a ValueError naming the shape
    y = torch.as_tensor(labels)
    if y.shape != (x.shape[0],) or y.is_floating_point():
        raise ValueError(
            f"labels has shape {list(y.shape)} dtype {y.dtype}; expected int [{x.shape[0]}], "
            "one class per image (load_digits returns them)."
        )
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps <= 1:
        raise ValueError(f"eps={eps!r}; expected a perturbation size in [0, 1] pixel units.")
    if targets is not None:
        t = torch.as_tensor(targets)
        if t.shape != y.shape or t.is_floating_point():
            raise ValueError(
                f"targets has shape {list(t.shape)} dtype {t.dtype}; expected int "
                f"[{x.shape[0]}], e.g. (labels + 1) % 10."
            )
        targets = t.long()
    return x, y.long(), float(eps), targets


def _grad(model, x, labels, targets) -> torch.Tensor:
    """The input gradient of the attack's objective: the loss on ``labels`` (to increase), or
    minus the loss on ``targets`` (to decrease); ``[n, 1, h, w]``."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    loss = (
        -F.cross_entropy(logits, targets)
        if targets is not None
        else F.cross_entropy(logits, labels)
    )
    return torch.autograd.grad(loss, x)[0]


def _result(model, images, adv, labels, targets, eps, kind) -> AttackResult:
    with torch.no_grad():
        pred = model(adv).argmax(-1)
    success = pred == targets if targets is not None else pred != labels
    return AttackResult(adv.detach(), (adv - images).detach(), success, eps, kind)


class _eval_mode:
    """Put the model in eval mode for the attack; restore its mode after, even on error."""

    def __init__(self, model):
        self.model, self.was = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was)


def fgsm(model, images, labels, *, eps: float = 0.1, targets=None) -> AttackResult:
    """Fast gradient sign method (Goodfellow et al. 2015): ``x + eps * sign(grad)``, clipped to
    [0, 1]; towards ``targets`` when given."""
    x, y, eps, t = _check(model, images, labels, eps, targets)
    with _eval_mode(model):
        g = _grad(model, x, y, t)
        adv = (x + eps * g.sign()).clamp(0, 1)
        return _result(model, x, adv, y, t, eps, "fgsm")


def pgd(
    model,
    images,
    labels,
    *,
    eps: float = 0.1,
    steps: int = 10,
    step: float | None = None,
    targets=None,
    seed: int = 0,
) -> AttackResult:
    """Projected gradient descent in the L-inf ball (Madry et al. 2018): a seeded uniform start
    in ``[-eps, eps]``, then ``steps`` sign-gradient steps of size ``step`` (default
    ``2.5 * eps / steps``), each projected back into the ball and into [0, 1]."""
    x, y, eps, t = _check(model, images, labels, eps, targets)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}; expected a number of PGD steps >= 1, e.g. 10.")
    step = 2.5 * eps / steps if step is None else float(step)
    gen = torch.Generator().manual_seed(seed)
    adv = (x + eps * (2 * torch.rand(x.shape, generator=gen) - 1)).clamp(0, 1)
    with _eval_mode(model):
        for _ in range(steps):
            adv = adv + step * _grad(model, adv, y, t).sign()
            adv = torch.minimum(torch.maximum(adv, x - eps), x + eps).clamp(0, 1)
        return _result(model, x, adv, y, t, eps, "pgd")


def random_noise(model, images, labels, *, eps: float = 0.1, targets=None, seed: int = 0):
    """The control: ``x + eps * s`` with ``s`` a seeded random sign pattern (the same norm as
    FGSM's perturbation), clipped to [0, 1]; scored as the attacks are."""
    x, y, eps, t = _check(model, images, labels, eps, targets)
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, x.shape, generator=gen).float() * 2 - 1
    with _eval_mode(model):
        return _result(model, x, (x + eps * signs).clamp(0, 1), y, t, eps, "random")


def adversarial_training(
    images,
    labels,
    *,
    eps: float = 0.1,
    steps: int = 600,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> DigitsCNN:
    """A fresh :class:`DigitsCNN` (``CNNConfig(seed=seed)``) trained by AdamW on minibatches,
    each replaced by random-start FGSM examples of size ``eps`` against the current weights
    (Wong et al. 2020: a uniform start in the ball, one step of ``1.25 * eps``). ``eps=0`` is
    standard training with the same data order, steps and optimiser: the control. Seeded;
    the global RNG is left alone. Returns the model in eval mode."""
    model = DigitsCNN(CNNConfig(seed=seed)).train()
    x, y, eps, _ = _check(model, images, labels, eps, None)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    gen = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        idx = torch.randint(len(y), (batch_size,), generator=gen)
        xb, yb = x[idx], y[idx]
        if eps > 0:
            start = eps * (2 * torch.rand(xb.shape, generator=gen) - 1)
            adv = (xb + start).clamp(0, 1)
            adv = adv + 1.25 * eps * _grad(model, adv, yb, None).sign()
            xb = torch.minimum(torch.maximum(adv, xb - eps), xb + eps).clamp(0, 1).detach()
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def input_gradient(model, images, labels) -> torch.Tensor:
    """``[n, 1, h, w]``: the gradient of each image's label logit with respect to its pixels
    (the saliency map of Simonyan et al. 2014, signed)."""
    x, y, _, _ = _check(model, images, labels, 0.0, None)
    with _eval_mode(model):
        x = x.requires_grad_(True)
        logit = model(x).gather(1, y[:, None]).sum()
        return torch.autograd.grad(logit, x)[0].detach()


def saliency_alignment(model, images, labels, *, kind: str = "abs") -> torch.Tensor:
    """``[n]``: the Pearson correlation, over the pixels of each image, between its saliency
    map and the image itself: near 1 when the saliency sits on the digit's own strokes (as for
    robust models, Tsipras et al. 2019), near 0 when it is spread like noise.

    kind: ``"abs"`` (default) correlates ``|input_gradient|`` (Simonyan et al.'s saliency
    map: where the model is sensitive); ``"signed"`` the signed gradient (whether raising the
    digit's own pixels raises its logit)."""
    if kind not in ("abs", "signed"):
        raise ValueError(f"kind={kind!r}; expected 'abs' (|gradient|) or 'signed'.")
    g = input_gradient(model, images, labels).flatten(1)
    g = g.abs() if kind == "abs" else g
    x = model.to_tokens(images).float().flatten(1)
    g, x = g - g.mean(1, keepdim=True), x - x.mean(1, keepdim=True)
    return (g * x).sum(1) / (g.norm(dim=1) * x.norm(dim=1)).clamp_min(1e-12)
