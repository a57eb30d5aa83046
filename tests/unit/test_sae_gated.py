"""Gated SAEs (Rajamanoharan et al. 2024), shrinkage, and single-feature property detectors
(Karvonen et al. 2024): mechscope.sae / mechscope.sae_train additions."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from mechscope._sae_gated import gate_loss
from mechscope.sae import (
    SAE,
    SAEConfig,
    load_zoo_sae,
    property_f1,
    relative_reconstruction_bias,
    zoo_sae_dir,
    zoo_saes,
)
from mechscope.sae_train import synthetic_coefficients, synthetic_superposition, train_sae


def _identity_sae(d: int, scale: float, activation: str = "relu") -> SAE:
    """An SAE whose features are ±x (d_sae = 2d): x̂ - b_dec = scale * (x - b_dec) exactly."""
    sae = SAE(SAEConfig(d_in=d, d_sae=2 * d, activation=activation))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(scale * torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_enc.zero_()
        sae.b_dec.copy_(torch.linspace(-1, 1, d))
    return sae


def test_gated_encoder_is_gate_times_magnitude():
    sae = SAE(SAEConfig(d_in=4, d_sae=6, activation="gated", seed=3))
    with torch.no_grad():
        sae.b_enc.copy_(torch.tensor([0.5, -0.5, 0.0, 1.0, -1.0, 0.2]))
        sae.r_mag.copy_(torch.tensor([0.0, 1.0, -1.0, 0.3, 0.0, 2.0]))
        sae.b_mag.copy_(torch.tensor([-0.2, 0.1, 0.4, -3.0, 0.0, 0.0]))
        sae.b_dec.copy_(torch.tensor([0.1, -0.1, 0.2, 0.0]))
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(0))
    proj = (x - sae.b_dec) @ sae.W_enc  # [7, 6]
    gate = (proj + sae.b_enc) > 0
    mag = torch.relu(proj * sae.r_mag.exp() + sae.b_mag)
    f = sae.encode(x)
    torch.testing.assert_close(f, gate * mag)
    assert ((f > 0) <= gate).all() and 0 < int((f > 0).sum()) < f.numel()


def test_shipped_saes_load_bit_identically_with_four_tensors():
    for name in zoo_saes():
        sae = load_zoo_sae(name)
        stored = load_file(str(zoo_sae_dir() / f"{name}.safetensors"))
        state = sae.state_dict()
        assert set(state) == set(stored) == {"W_enc", "b_enc", "W_dec", "b_dec"}, name
        for k, v in stored.items():
            assert torch.equal(state[k], v), (name, k)


def test_gated_save_load_round_trip(tmp_path):
    sae = SAE(SAEConfig(d_in=4, d_sae=8, activation="gated"))
    with torch.no_grad():
        sae.r_mag.normal_()
        sae.b_mag.normal_()
    sae.save(tmp_path / "g")
    back = SAE.load(tmp_path / "g")
    assert back.cfg.activation == "gated"
    for k, v in sae.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k


def test_relative_reconstruction_bias_reads_the_scale():
    x = torch.randn(500, 6, generator=torch.Generator().manual_seed(1))
    assert relative_reconstruction_bias(_identity_sae(6, 1.0), x) == pytest.approx(1.0, abs=1e-5)
    assert relative_reconstruction_bias(_identity_sae(6, 0.8), x) == pytest.approx(0.8, abs=1e-5)
    assert relative_reconstruction_bias(_identity_sae(6, 1.25), x, batch_size=7) == pytest.approx(
        1.25, abs=1e-5
    )
    with pytest.raises(ValueError, match=r"E <x̂, x> <= 0"):
        relative_reconstruction_bias(_identity_sae(6, -1.0), x)
    with pytest.raises(TypeError, match="float tensor"):
        relative_reconstruction_bias(_identity_sae(6, 1.0), x.long())


def test_gate_loss_leaves_the_decoder_alone():
    sae = SAE(SAEConfig(d_in=5, d_sae=10, activation="gated"))
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(2))
    pre = sae.pre_activations(x)
    gate_loss(sae, x, pre, 0.1).backward()
    assert sae.W_dec.grad is None and sae.b_dec.grad is not None  # b_dec: via pre only
    assert sae.W_enc.grad.abs().sum() > 0 and sae.b_enc.grad.abs().sum() > 0
    assert sae.r_mag.grad is None and sae.b_mag.grad is None  # magnitudes feel no penalty


def test_gated_sae_does_not_shrink_where_relu_l1_does():
    kw = {"n_features": 24, "d": 12, "n_samples": 4000, "p_active": 0.08, "seed": 1}
    acts, true = synthetic_superposition(**kw)
    coeff = synthetic_coefficients(**kw)
    assert torch.allclose(coeff @ true, acts)  # the coefficients behind the activations
    train = {"steps": 500, "batch_size": 256, "lr": 3e-3, "l1_coefficient": 0.5, "progress": False}
    gamma = {}
    for act in ("relu", "gated"):
        sae = train_sae(acts, SAEConfig(d_in=12, d_sae=48, activation=act), **train)
        gamma[act] = relative_reconstruction_bias(sae, acts)
    assert gamma["relu"] < 0.9, gamma
    assert gamma["gated"] > 0.97, gamma


def test_property_f1_finds_the_detector_and_scores_it_held_out():
    gen = torch.Generator().manual_seed(0)
    labels = torch.rand(400, 3, generator=gen) < torch.tensor([0.2, 0.5, 0.8])
    noise = torch.rand(400, 5, generator=gen)
    feats = torch.cat([noise, 2 * labels[:, [2, 0, 1]].float()], 1)  # features 5, 6, 7
    sel = property_f1(feats, labels)
    assert sel.feature.tolist() == [6, 7, 5]
    assert sel.f1.tolist() == [1.0, 1.0, 1.0] and sel.coverage == 1.0
    flipped = labels.clone()
    flipped[:100, 0] = ~flipped[:100, 0]
    held = property_f1(feats, flipped, selected=sel)
    assert held.feature.tolist() == [6, 7, 5] and held.f1[0] < 0.9 and held.f1[1] == 1.0
    with pytest.raises(ValueError, match=r"labels must be .* n = 400"):
        property_f1(feats, labels[:10])
    with pytest.raises(ValueError, match="feature_acts must be a 2-d"):
        property_f1(feats[0], labels)
