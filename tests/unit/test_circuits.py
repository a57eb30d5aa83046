import pytest
import torch

import mechscope
from mechscope import circuits
from mechscope.circuits import FactoredMatrix
from mechscope.heads import head_scores


def test_factored_matrix_matches_dense():
    g = torch.Generator().manual_seed(0)
    A, B = torch.randn(3, 8, 2, generator=g), torch.randn(3, 2, 8, generator=g)
    fm = FactoredMatrix(A, B)
    dense = A @ B
    assert fm.shape == (3, 8, 8)
    assert torch.allclose(fm.norm(), torch.linalg.matrix_norm(dense), atol=1e-5)
    assert torch.allclose(fm.T.full(), dense.transpose(-1, -2))
    C = torch.randn(8, 5, generator=g)
    assert torch.allclose((fm @ C).full(), dense @ C, atol=1e-5)
    assert torch.allclose((C.T @ fm).full(), C.T @ dense, atol=1e-5)
    # nonzero eigenvalues of AB are those of BA
    eig_dense = torch.linalg.eigvals(dense[0])
    for lam in fm.eigenvalues()[0]:
        assert (eig_dense - lam).abs().min() < 1e-4


def test_factored_matrix_errors():
    with pytest.raises(ValueError, match="do not chain"):
        FactoredMatrix(torch.zeros(4, 2), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="square"):
        FactoredMatrix(torch.zeros(4, 2), torch.zeros(2, 5)).eigenvalues()


def test_identity_ov_copies():
    """A head whose OV circuit is the identity on a model with W_U = W_E^T copies perfectly."""
    cfg = mechscope.TransformerConfig(
        n_layers=1, d_model=8, n_heads=1, d_head=8, d_vocab=6, n_ctx=4
    )
    m = mechscope.Transformer(cfg)
    with torch.no_grad():
        m.blocks[0].attn.W_V.copy_(torch.eye(8)[None])
        m.blocks[0].attn.W_O.copy_(torch.eye(8)[None])
        m.W_U.copy_(m.W_E.T)
    assert circuits.copying_scores(m, 0).item() == pytest.approx(1.0, abs=1e-5)


def test_k_composition_finds_previous_token_to_induction(induction):
    m = induction
    scores = head_scores(m)
    prev_head = int(scores.previous_token[0].argmax())
    ind_head = int(scores.induction[1].argmax())
    k = circuits.composition_scores(m, "K", 0, 1)
    q = circuits.composition_scores(m, "Q", 0, 1)
    assert k.shape == (4, 4)
    # the previous-token head is the layer-0 head the induction head's keys read most
    assert int(k[:, ind_head].argmax()) == prev_head
    assert k[prev_head, ind_head] > 2 * circuits.composition_baseline(m.cfg.d_model, m.cfg.d_head)
    assert k[prev_head, ind_head] > 3 * q[prev_head, ind_head]


def test_induction_heads_copy(induction):
    """Induction heads' OV circuits copy the attended token (positive eigenvalues dominate)."""
    ind = head_scores(induction).induction[1]
    copy = circuits.copying_scores(induction, 1)
    assert copy[int(ind.argmax())] > 0.5


def test_composition_errors(induction):
    with pytest.raises(ValueError, match="early_layer < late_layer"):
        circuits.composition_scores(induction, "K", 1, 0)
    with pytest.raises(ValueError, match="'Q', 'K' or 'V'"):
        circuits.composition_scores(induction, "X", 0, 1)
    with pytest.raises(ValueError, match="layers 0..1"):
        circuits.qk_circuit(induction, 5)
    with pytest.raises(TypeError, match="no attention blocks"):
        circuits.qk_circuit(torch.nn.Linear(2, 2), 0)


def test_head_score_errors(induction):
    with pytest.raises(ValueError, match="minimum is 2"):
        head_scores(induction, period=1)
    with pytest.raises(ValueError, match="period <= 31"):
        head_scores(induction, period=40)


def test_duplicate_token_score_on_planted_pattern():
    """A hand-set pattern that attends to the previous occurrence scores 1 as duplicate-token."""
    from mechscope.heads import diagonal_score

    T = 4
    pat = torch.zeros(1 + 2 * T, 1 + 2 * T)
    pat[0, 0] = 1
    for i in range(1, T + 1):
        pat[i, 0] = 1
    for i in range(T + 1, 2 * T + 1):
        pat[i, i - T] = 1
    assert float(diagonal_score(pat, offset=T, first_query=T + 1, last_query=2 * T)) == 1.0
    assert float(diagonal_score(pat, offset=T - 1, first_query=T + 1, last_query=2 * T)) == 0.0


def test_head_scores_need_attention_layers():
    class NoAttention:
        cfg = mechscope.TransformerConfig(
            n_layers=1, d_model=8, n_heads=1, d_head=8, d_vocab=50, n_ctx=64
        )

        def hook_names(self):
            return ["hook_embed", "blocks.0.mlp.hook_post"]

    with pytest.raises(ValueError, match="no attention hook points"):
        head_scores(NoAttention())


def test_head_scores_result(induction):
    res = head_scores(induction, period=6, n_samples=4, seed=1)
    n = (induction.cfg.n_layers, induction.cfg.n_heads)
    assert res.induction.shape == res.previous_token.shape == res.duplicate_token.shape == n
    assert res.values.shape == (3, *n) and torch.equal(res.values[1], res.induction)
    assert (res.period, res.n_samples, res.seed) == (6, 4, 1)
    assert torch.equal(head_scores(induction, period=6, n_samples=4, seed=1).values, res.values)
    assert res.to_widget().n_panels == 3
