"""Feature visualisation by activation maximisation (Olah, Mordvintsev & Schubert 2017).

Start from a random image and follow the gradient of one unit's activation with respect to the
*input*. Unregularised, the optimum is a high-frequency pattern no digit looks like ("adversarial
noise"); Olah et al. show that regularisers pull it back towards natural images. Three families,
all here and all seeded:

- **penalties**: ``l2`` (image energy, ``mean x^2``) and ``tv`` (total variation, the summed
  absolute difference of neighbouring pixels, :func:`total_variation`);
- **transformation robustness**: ``jitter`` shifts the image by up to that many pixels (zero
  padded, never wrapped) before each step, so the pattern must work at every offset;
- **frequency penalty**: ``blur`` mixes a 3x3 Gaussian blur of the image back in after each
  step (``x <- (1 - blur) x + blur * blur3x3(x)``), damping high frequencies.

:func:`high_frequency_energy` measures the result: the share of an image's (mean-free) spectral
energy above half the Nyquist frequency. Only the image is optimised; the model's weights,
gradients and mode are left as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class FeatureVisResult:
    """``values [n, 1, h, w]``: the optimised images; ``objective [steps + 1, n]``: the unit's
    activation at the start and after each step (before the penalties); ``hook``, ``feature``."""

    values: torch.Tensor
    objective: torch.Tensor
    hook: str
    feature: int

    @property
    def start(self) -> torch.Tensor:
        """``[n]``: the activation of the random starting images."""
        return self.objective[0]

    @property
    def final(self) -> torch.Tensor:
        """``[n]``: the activation of the optimised images."""
        return self.objective[-1]


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """``[..., h, w]`` -> ``[...]``: sum of ``|x[i+1, j] - x[i, j]|`` and ``|x[i, j+1] - x[i, j]|``
    over the image (anisotropic, L1 total variation)."""
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().sum((-2, -1))
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().sum((-2, -1))
    return dy + dx


def high_frequency_energy(images: torch.Tensor) -> torch.Tensor:
    """``[..., h, w]`` -> ``[...]``: the fraction of each image's spectral energy (its mean
    removed) at spatial frequencies above half the Nyquist frequency (radius > 0.25 cycles
    per pixel). 0 for a smooth image; about 0.6 for white noise on 8x8."""
    x = torch.as_tensor(images).float()
    x = x - x.mean((-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().pow(2)
    fy = torch.fft.fftfreq(x.shape[-2])[:, None]
    fx = torch.fft.fftfreq(x.shape[-1])[None, :]
    high = (fy**2 + fx**2).sqrt() > 0.25
    return (power * high).sum((-2, -1)) / power.sum((-2, -1)).clamp_min(1e-12)


def _blur3(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :]) / 16.0
    return F.conv2d(x, k[None, None].to(x), padding=1)


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` moved by ``(dy, dx)`` pixels, zeros shifted in."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + h, left : left + w]


def _objective(act: torch.Tensor, feature: int, hook: str) -> torch.Tensor:
    """``[n]``: the channel's mean over space (conv activations) or the unit (vectors)."""
    if not 0 <= feature < act.shape[1]:
        raise ValueError(
            f"feature={feature} is out of range for {hook!r}, which has {act.shape[1]} "
            f"channels/units (shape {tuple(act.shape)}); expected 0..{act.shape[1] - 1}."
        )
    a = act[:, feature]
    return a.flatten(1).mean(-1) if a.ndim > 1 else a


def visualize(
    model,
    hook: str,
    feature: int,
    *,
    n: int = 1,
    steps: int = 256,
    lr: float = 0.05,
    l2: float = 0.0,
    tv: float = 0.0,
    jitter: int = 0,
    blur: float = 0.0,
    seed: int = 0,
) -> FeatureVisResult:
    """Images ``[n, 1, h, w]`` that maximise ``feature`` (a channel, or a unit / class logit)
    of ``hook`` (e.g. ``"conv2.hook_post"``, ``"hook_logits"``) of an image model.

    Adam on the pixels from ``n`` random images ``U(0, 0.5)`` (seeded), maximising the
    activation minus ``l2 * mean(x^2) - tv * total_variation(x) / pixels``; ``jitter`` and
    ``blur`` as in the module docstring. The model is only read: weights, ``.grad`` and mode
    are as before.
    """
    if isinstance(feature, bool) or not isinstance(feature, int):
        raise TypeError(f"feature={feature!r}; expected an int (a channel or unit index).")
    for name, v in (("n", n), ("steps", steps), ("jitter", jitter)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name != "jitter" else 0):
            raise ValueError(f"{name}={v!r}; expected an int >= {1 if name != 'jitter' else 0}.")
    if not 0.0 <= blur <= 1.0:
        raise ValueError(f"blur={blur!r}; expected a mixing weight in [0, 1] (0 = no blur).")
    size = model.cfg.image_size
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, size, size, generator=gen) * 0.5).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    store: dict[str, torch.Tensor] = {}

    def grab(act, point):
        store["act"] = act

    trace = []
    was_training = model.training
    try:
        model.eval()
        with model.hooks([(hook, grab)]):
            for step in range(steps + 1):
                if jitter and step < steps:
                    dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist()
                    model(_shift(x, dy, dx))
                else:
                    model(x)
                obj = _objective(store["act"], feature, hook)
                if not jitter or step == steps:
                    trace.append(obj.detach())
                else:  # record the unshifted image's activation, as the other steps do
                    with torch.no_grad():
                        model(x)
                        trace.append(_objective(store["act"], feature, hook))
                if step == steps:
                    break
                penalty = l2 * x.pow(2).mean() + tv * total_variation(x).mean() / size**2
                loss = -obj.mean() + penalty
                (grad,) = torch.autograd.grad(loss, x)  # never touches the model's .grad
                x.grad = grad
                opt.step()
                if blur:
                    with torch.no_grad():
                        x.mul_(1 - blur).add_(_blur3(x), alpha=blur)
    finally:
        model.train(was_training)
    return FeatureVisResult(x.detach().clone(), torch.stack(trace), hook, feature)
