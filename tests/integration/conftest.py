"""Integration tests: no downloads (HF_HUB_OFFLINE), tiny models from hf_tiny.py."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from hf_tiny import VOCAB


@pytest.fixture
def tokens():
    gen = torch.Generator().manual_seed(1)
    return torch.randint(4, VOCAB, (2, 9), generator=gen)
