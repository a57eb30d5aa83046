"""What the small non-transformer models share (``mechscope.vision``'s CNNs and
``mechscope.rl``'s agent): the protocol's attention fields, a hooked conv layer, and reading a
shipped model's weights and card. Their hook methods are ``cache.HookPointsMixin``."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .hooks import HookPoint


class NoAttentionFields:
    """The HookedModel protocol's config fields, for tools that read them, on a model with no
    attention heads and no positions: all 0 (a mixin of a frozen config dataclass)."""

    @property
    def n_heads(self) -> int:
        return 0

    @property
    def d_head(self) -> int:
        return 0

    @property
    def n_ctx(self) -> int:
        return 0


class ConvLayer(nn.Module):
    """``conv`` (``kernel`` x ``kernel``, same padding), then ``hook_pre``, ReLU, ``hook_post``."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [batch, c_in, h, w]
        return self.hook_post(F.relu(self.hook_pre(self.conv(x))))  # [batch, c_out, h, w]


def zoo_card(directory: Path, name, what: str, recipe: str) -> tuple[Path, dict]:
    """``(weights path, card)`` of the shipped ``directory/NAME.safetensors``; a ValueError
    listing the available names (``what``: "agent", ...) and the recipe that retrains one."""
    path = directory / f"{name}.safetensors"
    if not isinstance(name, str) or not path.exists():
        have = sorted(p.stem for p in directory.glob("*.safetensors"))
        raise ValueError(
            f"name={name!r}: no shipped {what} of that name; available: {have}. "
            f"Retrain one with python -m mechscope.zoo.train {recipe}."
        )
    return path, json.loads(path.with_suffix(".json").read_text())


def with_weights(model: nn.Module, path: Path, card: dict) -> nn.Module:
    """``model`` with the weights of ``path`` loaded and ``card`` attached, in eval mode."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))
    model.card = card
    return model.eval()
