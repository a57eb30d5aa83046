"""Live exploration of a model: ``mechscope.explore(model, prompt)`` (see :mod:`.app`)."""

from .app import ExploreApp, explore

__all__ = ["ExploreApp", "explore"]
