"""The embedded zoo: small models trained by this project and shipped in the package.

Each model is ``zoo/<name>.safetensors`` (weights) plus ``zoo/<name>.json`` (its
card: architecture, tokenizer, data recipe, seed, steps, wall time and measured
behaviour). ``python -m mechscope.zoo.train <name>`` reproduces both. Nothing is
downloaded; weights load with safetensors (never unpickled).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from safetensors.torch import load_file

from .tokenizer import WordTokenizer
from .transformer import Transformer, TransformerConfig


def zoo_dir() -> Path:
    return Path(str(resources.files("mechscope") / "zoo"))


def available() -> list[str]:
    """Names of the shipped zoo models."""
    d = zoo_dir()
    return sorted(p.stem for p in d.glob("*.json") if (d / f"{p.stem}.safetensors").exists())


def card(name: str) -> dict:
    """The JSON card of zoo model ``name``."""
    path = zoo_dir() / f"{name}.json"
    if not path.exists():
        raise _unknown(name)
    return json.loads(path.read_text())


def _unknown(name: str) -> ValueError:
    return ValueError(
        f"No zoo model named {name!r}. Available offline: {', '.join(available()) or '(none)'}. "
        f"See mechscope.zoo_models() and the cards in {zoo_dir()}."
    )


def build(c: dict) -> Transformer:
    """An untrained model with the architecture and tokenizer of card ``c``."""
    tok = c.get("tokenizer")
    tokenizer = WordTokenizer.from_dict(tok) if tok else None
    return Transformer(TransformerConfig.from_dict(c["config"]), tokenizer=tokenizer)


def load_zoo(name: str, device: str = "cpu") -> Transformer:
    """Load zoo model ``name`` from the package (offline), in eval mode."""
    if name not in available():
        raise _unknown(name)
    model = build(card(name))
    state = load_file(str(zoo_dir() / f"{name}.safetensors"), device=str(device))
    model.load_state_dict(state)
    model.card = card(name)
    return model.to(device).eval()
