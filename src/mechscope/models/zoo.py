"""The embedded zoo: small models trained by this project and shipped in the package.

Each model is ``zoo/<name>.safetensors`` (weights) plus ``zoo/<name>.json`` (its
card: architecture, tokenizer, data recipe, seed, steps, wall time and measured
behaviour). ``python -m mechscope.zoo.train <name>`` reproduces both. Nothing is
downloaded; weights load with safetensors (never unpickled).
"""

from __future__ import annotations

import json
import numbers
from importlib import resources
from pathlib import Path

from safetensors import safe_open
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
    if tok and tok.get("kind") == "bpe":  # real text (stdlib-lm): a byte-level BPE
        from .bpe_tokenizer import BPETokenizer

        tokenizer = BPETokenizer.from_dict(tok)
    else:
        tokenizer = WordTokenizer.from_dict(tok) if tok else None
    return Transformer(TransformerConfig.from_dict(c["config"]), tokenizer=tokenizer)


def load_zoo(name: str, device: str = "cpu") -> Transformer:
    """Load zoo model ``name`` from the package (offline), in eval mode."""
    if not isinstance(name, str) or name not in available():
        raise _unknown(name)
    model = build(card(name))
    state = load_file(str(zoo_dir() / f"{name}.safetensors"), device=str(device))
    model.load_state_dict(state)
    model.card = card(name)
    return model.to(device).eval()


def checkpoint_steps(name: str) -> list[int]:
    """Training steps at which zoo model ``name`` has a shipped checkpoint ([] if none)."""
    return list(card(name).get("checkpoints", {}).get("steps", []))


def load_checkpoint(name: str, step: int, device: str = "cpu") -> Transformer:
    """Zoo model ``name`` as it was at training step ``step`` (eval mode, float32).

    Checkpoints ship in float16 (``NAME.checkpoints.safetensors``, keys ``step{N}/{param}``);
    the card's checkpoint metrics were measured from exactly these weights.
    """
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step must be an int training step, got {step!r}.")
    steps = checkpoint_steps(name)
    step = int(step)
    if step not in steps:
        raise ValueError(
            f"{name!r} has no checkpoint at step {step}. "
            f"Available steps: {steps or '(none: this model ships no checkpoints)'}."
        )
    path = zoo_dir() / f"{name}.checkpoints.safetensors"
    prefix = f"step{step}/"
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        state = {
            k[len(prefix) :]: f.get_tensor(k).float() for k in f.keys() if k.startswith(prefix)
        }
    model = build(card(name))
    model.load_state_dict(state)
    model.card = card(name)
    model.step = step
    return model.to(device).eval()
