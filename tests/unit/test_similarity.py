"""CKA (Kornblith et al. 2019): known answers and invariances."""

import pytest
import torch

from mechscope.similarity import cka, cka_matrix
from mechscope.widgets import Heatmap


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("kind", ["linear", "rbf"])
def test_identical_is_one_and_invariances(kind):
    x = rand(200, 8)
    q, _ = torch.linalg.qr(rand(8, 8, seed=1))
    y = torch.tanh(x @ rand(8, 6, seed=2))  # a non-trivial function of x
    assert cka(x, x, kind=kind) == pytest.approx(1.0, abs=1e-9)
    base = cka(x, y, kind=kind)
    assert 0.2 < base < 0.99
    assert cka(x @ q, y, kind=kind) == pytest.approx(base, abs=1e-9)  # orthogonal transform
    assert cka(3.7 * x, y, kind=kind) == pytest.approx(base, abs=1e-9)  # isotropic scaling
    assert cka(x + 5.0, y, kind=kind) == pytest.approx(base, abs=1e-9)  # translation


def test_linear_not_invariant_to_anisotropic_scaling():
    x, y = rand(200, 8), rand(200, 8, seed=5)
    y = x[:, :4] @ rand(4, 8, seed=6) + 0.5 * y
    stretch = torch.ones(8, dtype=torch.float64)
    stretch[0] = 20.0
    assert abs(cka(x * stretch, y) - cka(x, y)) > 0.05


def test_independent_is_near_zero_and_1d_is_r_squared():
    x, y = rand(3000, 4, seed=1), rand(3000, 4, seed=2)
    assert cka(x, y) < 0.01
    assert cka(x[:600], y[:600], kind="rbf") < 0.02  # n x n kernels: fewer rows
    a, b = rand(50, 1, seed=3), rand(50, 1, seed=4)
    b = a + b
    r = torch.corrcoef(torch.cat([a, b], 1).T)[0, 1]
    assert cka(a, b) == pytest.approx(float(r**2), abs=1e-9)


def test_gram_and_feature_forms_agree():
    x, y = rand(10, 30, seed=1), rand(10, 30, seed=2)  # n < d: Gram form
    xt, yt = x[:, :3], y[:, :3]  # n > d: feature form
    xc, yc = xt - xt.mean(0), yt - yt.mean(0)
    k, l_ = xc @ xc.T, yc @ yc.T
    gram = float((k * l_).sum() / ((k * k).sum().sqrt() * (l_ * l_).sum().sqrt()))
    assert cka(xt, yt) == pytest.approx(gram, abs=1e-12)
    assert 0.0 <= cka(x, y) <= 1.0


def test_matrix_and_widget():
    x = rand(100, 6)
    reps = {"a": x, "b": x @ rand(6, 6, seed=1), "c": rand(100, 3, seed=2)}
    res = cka_matrix(reps)
    assert res.values.shape == (3, 3) and res.row_labels == ["a", "b", "c"]
    assert torch.allclose(res.values.diagonal(), torch.ones(3))
    assert torch.allclose(res.values, res.values.T, atol=1e-6)
    assert res.as_dict()["a", "c"] == pytest.approx(cka(x, reps["c"]), abs=1e-6)
    cross = cka_matrix([x, reps["c"]], reps)
    assert cross.values.shape == (2, 3) and cross.row_labels == ["0", "1"]
    w = res.to_widget(row_title="layer")
    assert isinstance(w, Heatmap) and (w.n_rows, w.n_cols) == (3, 3)


def test_errors():
    with pytest.raises(ValueError, match="SAME inputs"):
        cka(rand(10, 3), rand(11, 3))
    with pytest.raises(ValueError, match="kind"):
        cka(rand(10, 3), rand(10, 3), kind="cosine")
    with pytest.raises(TypeError, match="dict"):
        cka_matrix(rand(10, 3))
    assert cka(torch.ones(10, 3), rand(10, 3)) == 0.0  # no variance, no structure
