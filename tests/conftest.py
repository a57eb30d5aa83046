import os

import pytest
import torch

from mechscope.models import Transformer, TransformerConfig, WordTokenizer

# No test may reach a model hub: CI and classrooms are offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def tiny_cfg():
    return TransformerConfig(
        n_layers=2, d_model=16, n_heads=2, d_head=8, d_vocab=11, n_ctx=12, d_mlp=32, seed=3
    )


@pytest.fixture
def tiny(tiny_cfg):
    words = "a b c d e f g h i j".split()
    return Transformer(tiny_cfg, tokenizer=WordTokenizer(words)).eval()


@pytest.fixture
def tokens():
    return torch.tensor([[0, 1, 2, 3, 4, 5, 1, 2, 3], [0, 9, 8, 7, 6, 5, 4, 3, 2]])


@pytest.fixture(scope="module")
def mlp_model():
    """3 layers with MLPs and LayerNorm, large init so patches move the output (patching tests)."""
    cfg = TransformerConfig(
        n_layers=3,
        d_model=16,
        n_heads=2,
        d_head=8,
        d_vocab=11,
        n_ctx=12,
        d_mlp=32,
        seed=5,
        init_std=0.4,
    )
    return Transformer(cfg, tokenizer=WordTokenizer("a b c d e f g h i j".split())).eval()


@pytest.fixture(scope="module")
def induction():
    """The shipped induction-2l zoo model."""
    import mechscope

    return mechscope.load("induction-2l")
