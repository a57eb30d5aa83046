"""The bilinear MLP (act_fn="bilinear") and its interaction matrices (mechscope.bilinear)."""

import pytest
import torch

from mechscope.bilinear import interaction_matrix
from mechscope.compat import HookedTransformerConfig
from mechscope.models import Transformer, TransformerConfig


def _model(act_fn="bilinear", seed=0):
    cfg = TransformerConfig(
        n_layers=1, d_model=8, n_heads=2, d_head=4, d_vocab=11, n_ctx=6, d_mlp=12,
        act_fn=act_fn, seed=seed,
    )  # fmt: skip
    return Transformer(cfg).eval()


def test_quadratic_form_is_exact():
    model = _model()
    mlp = model.blocks[0].mlp
    with torch.no_grad():
        mlp.b_in.zero_()
    x = torch.randn(5, 8)
    u = torch.randn(8)
    r = interaction_matrix(model, u)
    with torch.no_grad():
        got = (mlp(x) - mlp.b_out) @ u
    assert torch.allclose(got, torch.einsum("ni,ij,nj->n", x, r.matrix, x), atol=1e-6)
    assert torch.allclose(r.vectors @ torch.diag(r.values) @ r.vectors.T, r.matrix, atol=1e-6)
    assert r.values.abs().diff().le(1e-7).all() and r.explained(8) == pytest.approx(1.0)


def test_hooks_and_existing_models_unchanged():
    model = _model()
    _, cache = model.run_with_cache(torch.tensor([[1, 2, 3]]), names=lambda n: "mlp.hook" in n)
    pre, lin = cache["blocks.0.mlp.hook_pre"], cache["blocks.0.mlp.hook_pre_linear"]
    assert torch.allclose(cache["blocks.0.mlp.hook_post"], pre * lin)
    # a GELU model's initial weights do not depend on the bilinear branch existing
    gelu = _model("gelu")
    assert not hasattr(gelu.blocks[0].mlp, "W_gate")
    assert torch.equal(gelu.W_U, _model("gelu").W_U)
    assert torch.equal(gelu.blocks[0].mlp.W_in, model.blocks[0].mlp.W_in)


def test_clear_errors():
    with pytest.raises(ValueError, match="act_fn is 'gelu'"):
        interaction_matrix(_model("gelu"), torch.randn(8))
    with pytest.raises(ValueError, match=r"expected \(8,\)"):
        interaction_matrix(_model(), torch.randn(7))
    with pytest.raises(ValueError, match="layer=1"):
        interaction_matrix(_model(), torch.randn(8), layer=1)
    with pytest.raises(ValueError, match="no elementwise activation"):
        _model().blocks[0].mlp.act(torch.randn(3, 12))
    with pytest.raises(ValueError, match="TransformerLens has no bilinear MLP"):
        HookedTransformerConfig(
            n_layers=1, d_model=8, n_ctx=4, d_head=4, d_vocab=5, act_fn="bilinear"
        )
