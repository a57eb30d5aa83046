import math

import pytest
import torch

from mechscope.toy import modadd


def test_all_pairs_layout():
    tokens, answers = modadd.all_pairs(7)
    assert tokens.shape == (49, 3)
    a, b = 3, 5
    row = a * 7 + b
    assert tokens[row].tolist() == [a + 1, b + 1, 8]  # ids shift by one for BOS; "=" is p + 1
    assert answers[row] == (a + b) % 7
    tok = modadd.tokenizer(7)
    assert tok.words[tokens[row, 0]] == "3" and tok.words[tokens[row, 2]] == "="


def test_split_is_disjoint_and_seeded():
    tr, te = modadd.train_test_split(11, 0.3, seed=0)
    assert len(tr) == int(0.3 * 121) and len(set(tr.tolist()) | set(te.tolist())) == 121
    assert torch.equal(tr, modadd.train_test_split(11, 0.3, seed=0)[0])


def test_fourier_basis_orthonormal():
    basis, names = modadd.fourier_basis(13)
    assert torch.allclose(basis @ basis.T, torch.eye(13), atol=1e-5)
    assert names[:3] == ["const", "cos 1", "sin 1"]


def test_key_frequencies_of_planted_embedding():
    p = 23
    x = torch.arange(p, dtype=torch.float32)
    W = torch.zeros(p, 8)
    for j, k in enumerate([3, 7]):
        W[:, 2 * j] = torch.cos(2 * math.pi * k * x / p)
        W[:, 2 * j + 1] = torch.sin(2 * math.pi * k * x / p)
    W += 0.01 * torch.randn(p, 8, generator=torch.Generator().manual_seed(0))
    assert modadd.key_frequencies(W) == [3, 7]


def test_restricted_and_excluded_loss_on_the_ideal_algorithm():
    """Logits that are exactly sum_k cos(w_k (a + b - c)) lose nothing when restricted to the key
    frequencies and lose everything when those are excluded."""
    p, freqs = 17, [2, 5]
    tokens, answers = modadd.all_pairs(p)
    a = (tokens[:, 0] - 1).double()
    b = (tokens[:, 1] - 1).double()
    c = torch.arange(p, dtype=torch.float64)
    logits = (
        sum(torch.cos(2 * math.pi * k * (a[:, None] + b[:, None] - c[None]) / p) for k in freqs)
        * 10
    )
    full = float(torch.nn.functional.cross_entropy(logits, answers))
    assert modadd.restricted_loss(logits, answers, freqs) == pytest.approx(full, abs=1e-6)
    train = torch.arange(0, p * p, 3)
    assert modadd.excluded_loss(logits, answers, freqs, train) == pytest.approx(
        math.log(p), abs=1e-6
    )
    with pytest.raises(ValueError, match="all 17\\*17"):
        modadd.split_logits(logits[:10], freqs)


def test_fast_training_forward_equals_model():
    from mechscope.models import Transformer, TransformerConfig
    from mechscope.zoo.recipes_circuits import last_position_logits

    cfg = TransformerConfig(
        n_layers=1,
        d_model=16,
        n_heads=2,
        d_head=8,
        d_vocab=9,
        n_ctx=3,
        d_mlp=32,
        act_fn="relu",
        normalization=None,
        init_std=0.3,
    )
    model = Transformer(cfg)
    tokens, _ = modadd.all_pairs(7)
    assert torch.allclose(last_position_logits(model, tokens), model(tokens)[:, -1], atol=1e-5)


def test_circle_fit_on_planted_circle():
    p, k = 31, 4
    a = torch.arange(p, dtype=torch.float32)
    d = 6
    W = torch.zeros(p, d)
    W[:, 0] = torch.cos(2 * math.pi * k * a / p) * 3
    W[:, 1] = torch.sin(2 * math.pi * k * a / p) * 3
    W[:, 2:] = 0.01 * torch.randn(p, d - 2, generator=torch.Generator().manual_seed(1))
    pts = modadd.frequency_plane(W, k)
    fit = modadd.circle_fit(pts, k)
    assert fit["radius_cv"] < 0.02 and fit["angle_error"] < 0.02
    scrambled = modadd.circle_fit(
        pts[torch.randperm(p, generator=torch.Generator().manual_seed(0))], k
    )
    assert scrambled["angle_error"] > 0.5
