"""Information-flow routes (Ferrando & Voita 2024): shares are proportions; a head whose
output weights are zero gets no edge; the route follows a planted strong edge."""

import pytest
import torch

from mechscope.information_flow import information_flow
from mechscope.models import Transformer, TransformerConfig


@pytest.fixture(scope="module")
def model(small_transformer):
    m = small_transformer(4, d_mlp=64)
    with torch.no_grad():
        m.blocks[1].attn.W_O[0] = 0.0  # L1H0 writes nothing
    return m


def test_shares_are_proportions_and_dead_head_has_none(model):
    tokens = torch.tensor([[1, 5, 7, 3, 2, 9]])
    r = information_flow(model, tokens)
    assert r.values.shape == (2, 2, 6, 6)
    total = r.values.sum((1, 3)) + r.resid_attn  # [layer, query_pos]
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
    assert torch.all(r.values >= 0) and torch.all(r.mlp >= 0) and torch.all(r.mlp <= 1)
    assert torch.all(r.values[1, 0] == 0)
    assert torch.all(r.values.triu(1) == 0)  # causal: no edge from a later key
    assert "L1H0" not in r.heads_on_route(0.0)


def test_route_is_followed_back_from_the_last_position(model):
    r = information_flow(model, torch.tensor([[1, 5, 7, 3, 2, 9]]))
    edges = r.route(0.05)
    last_layer = [e for e in edges if e[0] == 1]
    assert last_layer and all(q == 5 for _, _, q, _, _ in last_layer)
    reached = {5} | {k for _, _, _, k, _ in last_layer}
    assert all(q in reached for layer, _, q, _, _ in edges if layer == 0)
    assert all(s > 0.05 for *_, s in edges)
    assert len(r.route(0.0)) >= len(edges) >= len(r.route(0.5))


def test_errors(model):
    with pytest.raises(ValueError, match="one prompt"):
        information_flow(model, torch.ones(2, 4, dtype=torch.long))
    r = information_flow(model, torch.tensor([[1, 5, 7]]))
    with pytest.raises(ValueError, match="threshold="):
        r.route(1.5)
    with pytest.raises(ValueError, match="pos="):
        r.route(0.1, pos=4)


def test_attention_only_model_has_no_mlp_share():
    cfg = TransformerConfig(
        n_layers=1, d_model=16, n_heads=2, d_head=8, d_vocab=12, n_ctx=6, init_std=0.3, seed=0
    )
    r = information_flow(Transformer(cfg).eval(), torch.tensor([[1, 2, 3, 4]]))
    assert torch.all(r.mlp == 0)
    total = r.values.sum((1, 3)) + r.resid_attn
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
