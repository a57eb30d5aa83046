"""Models with named hook points: our own readable Transformer (zoo models)."""

from .tokenizer import WordTokenizer
from .transformer import Transformer, TransformerConfig

__all__ = ["Transformer", "TransformerConfig", "WordTokenizer"]
