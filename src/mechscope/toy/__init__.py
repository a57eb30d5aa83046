"""Synthetic tasks and their data (generated, seeded; nothing is downloaded)."""

from .induction import WORDS, random_period_batch, repeated_random_tokens
from .superposition import ToyModel, ToyModelConfig, train_toy_model

__all__ = [
    "WORDS",
    "ToyModel",
    "ToyModelConfig",
    "random_period_batch",
    "repeated_random_tokens",
    "train_toy_model",
]
