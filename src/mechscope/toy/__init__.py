"""Synthetic tasks and their data (generated, seeded; nothing is downloaded)."""

from .induction import WORDS, random_period_batch, repeated_random_tokens

__all__ = ["WORDS", "random_period_batch", "repeated_random_tokens"]
