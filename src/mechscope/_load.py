"""``mechscope.load``: one entry point for every model a user can name."""

from __future__ import annotations

from .models import zoo


def load(name: str, device: str = "cpu"):
    """Load a model by name. Zoo models (shipped, offline) first.

    >>> model = mechscope.load("induction-2l")
    """
    if not isinstance(name, str):
        raise TypeError(f"load() takes a model name (str), got {type(name).__name__}.")
    if name in zoo.available():
        return zoo.load_zoo(name, device=device)
    raise ValueError(
        f"Unknown model {name!r}. Zoo models available offline: {', '.join(zoo.available())}."
    )


def zoo_models() -> list[str]:
    """Names of the zoo models shipped with the package (all load offline)."""
    return zoo.available()
