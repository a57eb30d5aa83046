"""A small hooked CNN on scikit-learn's bundled 8x8 digits (the review's §8, beyond language).

The digits (1,797 handwritten 8x8 images, ten classes) ship inside the scikit-learn wheel, so
nothing is downloaded. :func:`load_digits` gives a fixed, seeded train / test split scaled to
[0, 1]; :class:`DigitsCNN` is two 3x3 convolutions and a linear readout (5,050 weights) with
TransformerLens-style hook points, so ``model.run_with_cache``, ``model.hooks`` and the rest
of mechscope work on it as on a transformer::

    hook_input        [batch, 1, 8, 8]    the image
    conv1.hook_pre    [batch, 16, 8, 8]    conv1 output before its ReLU (channel, row, col)
    conv1.hook_post   [batch, 16, 8, 8]    after the ReLU
    conv2.hook_pre    [batch, 16, 8, 8]
    conv2.hook_post   [batch, 16, 8, 8]
    hook_pooled       [batch, 16, 4, 4]   2x2 max-pool of conv2.hook_post
    hook_logits       [batch, 10]         the class logits (= the output)

The hook points are mechscope's own :class:`~mechscope.HookPoint` modules (not bare torch
forward hooks on ``nn.Conv2d``), so a name is the module's address and every hook is removed
in a ``finally`` (``mechscope.hooks.installed_hooks``).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._small_models import ConvLayer, NoAttentionFields, with_weights, zoo_card
from ..cache import HookPointsMixin
from ..hooks import HookPoint, name_hook_points

SPLITS = ("train", "test", "all")
TEST_FRAC = 0.2  # 359 of the 1,797 images, held out
SPLIT_SEED = 0


@dataclass(frozen=True)
class CNNConfig(NoAttentionFields):
    channels: tuple[int, int] = (16, 16)  # conv1, conv2 output channels
    kernel: int = 3  # both convolutions; padding keeps 8x8
    image_size: int = 8
    n_classes: int = 10
    seed: int = 0  # seeds the initial weights (torch's default init, from a private generator)

    # The HookedModel protocol's fields, for tools that read them (n_heads, d_head and n_ctx
    # are 0: NoAttentionFields).
    @property
    def n_layers(self) -> int:
        return 2

    @property
    def d_model(self) -> int:
        return self.channels[-1]

    @property
    def d_vocab(self) -> int:
        return self.n_classes

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, d: dict) -> CNNConfig:
        return cls(**{**d, "channels": tuple(d["channels"])})


class DigitsCNN(HookPointsMixin, nn.Module):
    """Two conv layers, a 2x2 max-pool and a linear readout; hook names in the module docstring.

    ``model(images)``: ``images`` ``[batch, 1, 8, 8]`` (or ``[batch, 8, 8]``, or one ``[8, 8]``
    image) in [0, 1] -> logits ``[batch, 10]``.
    """

    def __init__(self, cfg: CNNConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or CNNConfig()
        c1, c2 = cfg.channels
        with torch.random.fork_rng(devices=[]):  # seeded weights, the global RNG left as it was
            torch.manual_seed(cfg.seed)
            self.hook_input = HookPoint()
            self.conv1 = ConvLayer(1, c1, cfg.kernel)
            self.conv2 = ConvLayer(c1, c2, cfg.kernel)
            self.hook_pooled = HookPoint()
            self.readout = nn.Linear(c2 * (cfg.image_size // 2) ** 2, cfg.n_classes)
            self.hook_logits = HookPoint()
        self._points = name_hook_points(self)
        self.card: dict = {}
        self.eval()

    def to_tokens(self, images) -> torch.Tensor:
        """``images`` as a float ``[batch, 1, 8, 8]`` tensor (the protocol's input coercion)."""
        return _as_images(images, self.cfg.image_size)

    def to_str_tokens(self, tokens) -> list[str]:
        raise TypeError(
            "DigitsCNN reads images, which have no tokens; label images by their class "
            "(load_digits returns the labels) or their index."
        )

    def forward(self, images) -> torch.Tensor:
        x = self.hook_input(_as_images(images, self.cfg.image_size))
        x = self.conv2(self.conv1(x))
        x = self.hook_pooled(F.max_pool2d(x, 2))  # [batch, c2, 4, 4]
        return self.hook_logits(self.readout(x.flatten(1)))  # [batch, n_classes]


def _as_images(images, size: int = 8) -> torch.Tensor:
    """``[h, w]``, ``[batch, h, w]`` or ``[batch, 1, h, w]`` (tensor or numpy) -> float
    ``[batch, 1, h, w]``; a ValueError naming the shape otherwise."""
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    if not x.is_floating_point():
        x = x.float()
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1 or tuple(x.shape[2:]) != (size, size):
        raise ValueError(
            f"images has shape {tuple(torch.as_tensor(images).shape)}; expected [batch, 1, "
            f"{size}, {size}], [batch, {size}, {size}] or one [{size}, {size}] image in [0, 1]. "
            "Fix: load them with mechscope.vision.load_digits()."
        )
    return x


def load_digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits: ``(images [n, 1, 8, 8] in [0, 1], labels [n])``.

    split: ``"train"`` (1,438 images), ``"test"`` (359: a seeded 20% held out, the same on
    every machine) or ``"all"`` (1,797, in the dataset's order). Needs scikit-learn installed
    (the data ship in its wheel; nothing is downloaded), and gives exactly the arrays of
    ``sklearn.datasets.load_digits()`` (``images / 16``, ``target``).
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {', '.join(map(repr, SPLITS))}.")
    pixels, target = _digits_table()
    images = torch.tensor(pixels, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    labels = torch.tensor(target, dtype=torch.long)
    if split == "all":
        return images, labels
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_test = round(TEST_FRAC * len(labels))
    idx = order[:n_test] if split == "test" else order[n_test:]
    idx = idx.sort().values
    return images[idx], labels[idx]


@functools.cache
def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    """The digits as scikit-learn ships them (``sklearn/datasets/data/digits.csv.gz``: 64 pixel
    values 0..16 and the label per row), read without importing scikit-learn (seconds saved:
    ``sklearn.datasets.load_digits`` reads the same file)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "mechscope.vision.load_digits needs scikit-learn, whose wheel ships the 8x8 digits "
            "(nothing is downloaded): pip install scikit-learn"
        )
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :-1], table[:, -1]


@torch.no_grad()
def accuracy(model: DigitsCNN, images, labels) -> float:
    """Fraction of ``images`` whose top logit is the label."""
    return float((model(images).argmax(-1) == torch.as_tensor(labels)).float().mean())


def zoo_vision_dir() -> Path:
    return Path(str(resources.files("mechscope") / "zoo" / "vision"))


def load_zoo_cnn(name: str = "digits-cnn") -> DigitsCNN:
    """A shipped vision model (``zoo/vision/NAME.safetensors`` + card), in eval mode."""
    path, card = zoo_card(zoo_vision_dir(), name, "vision model", "digits-cnn")
    if card.get("architecture") == "CurveCNN":
        raise ValueError(
            f"name={name!r} is a CurveCNN; load it with mechscope.vision.curves.load_curve_cnn."
        )
    return with_weights(DigitsCNN(CNNConfig.from_dict(card["config"])), path, card)


def spatial_rows(acts: torch.Tensor) -> torch.Tensor:
    """Conv activations ``[batch, channel, h, w]`` -> ``[batch * h * w, channel]``: one row per
    image and position (row ``i`` is image ``i // (h * w)``), e.g. to train an SAE on."""
    if acts.ndim != 4:
        raise ValueError(
            f"acts has shape {tuple(acts.shape)}; expected conv activations [batch, channel, "
            "h, w], e.g. cache['conv2.hook_post']."
        )
    return acts.permute(0, 2, 3, 1).reshape(-1, acts.shape[1])
