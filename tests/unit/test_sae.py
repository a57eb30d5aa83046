"""Sparse autoencoders: ground-truth recovery, metrics, splicing, save/load, bad input."""

import pytest
import torch

from mechscope.sae import (
    SAE,
    SAEConfig,
    ce_loss_recovered,
    evaluate,
    max_cosine_similarity,
)
from mechscope.sae_train import collect_activations, synthetic_superposition, train_sae


@pytest.fixture(scope="module")
def synthetic():
    torch.set_num_threads(1)
    return synthetic_superposition(n_features=64, d=32, n_samples=20_000, p_active=0.05, seed=0)


@pytest.fixture(scope="module")
def topk_sae(synthetic):
    acts, _ = synthetic
    cfg = SAEConfig(d_in=32, d_sae=128, activation="topk", k=4, seed=0)
    return train_sae(acts, cfg, steps=800, batch_size=1024, progress=False)


def test_topk_sae_recovers_known_features(synthetic, topk_sae):
    acts, true = synthetic
    mmcs = max_cosine_similarity(topk_sae.W_dec, true)
    assert mmcs.mean() >= 0.95
    m = evaluate(topk_sae, acts)
    assert m.l0 == pytest.approx(4, abs=0.2)  # TopK: at most k, ~k on this data
    assert m.explained_variance > 0.85


def test_relu_l1_sae_recovers_known_features(synthetic):
    acts, true = synthetic
    cfg = SAEConfig(d_in=32, d_sae=128, activation="relu", seed=0)
    sae = train_sae(acts, cfg, steps=1000, lr=3e-3, l1_coefficient=0.3, progress=False)
    assert max_cosine_similarity(sae.W_dec, true).mean() >= 0.95
    m = evaluate(sae, acts)
    assert 3 < m.l0 < 10 and m.explained_variance > 0.8


def test_random_dictionary_does_not_recover_them(synthetic):
    """The control: an untrained SAE has no such alignment."""
    _, true = synthetic
    untrained = SAE(SAEConfig(d_in=32, d_sae=128, activation="topk", k=4))
    assert max_cosine_similarity(untrained.W_dec, true).mean() < 0.7


def test_decoder_rows_stay_unit_norm_and_pre_bias_is_decoder_bias(topk_sae):
    assert topk_sae.W_dec.norm(dim=1).tolist() == pytest.approx([1.0] * 128, abs=1e-5)
    x = torch.randn(3, 32)
    pre = (x - topk_sae.b_dec) @ topk_sae.W_enc + topk_sae.b_enc
    assert torch.allclose(topk_sae.pre_activations(x), pre)
    f = topk_sae.encode(x)
    assert ((f > 0).sum(-1) <= 4).all() and (f >= 0).all()
    assert torch.allclose(topk_sae(x), f @ topk_sae.W_dec + topk_sae.b_dec, atol=1e-6)


def test_metrics_of_a_perfect_and_a_useless_reconstruction():
    # Identity dictionary on data in the positive orthant: perfect reconstruction.
    sae = SAE(SAEConfig(d_in=4, d_sae=4, activation="relu"))
    with torch.no_grad():
        sae.W_dec.copy_(torch.eye(4))
        sae.W_enc.copy_(torch.eye(4))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    x = torch.rand(100, 4)
    m = evaluate(sae, x)
    assert m.mse == pytest.approx(0, abs=1e-10) and m.explained_variance == pytest.approx(1)
    assert m.dead_fraction == 0 and m.l0 == pytest.approx(4)
    with torch.no_grad():
        sae.b_enc.fill_(-10)  # nothing fires: every feature dead
        sae.b_dec.copy_(x.mean(0))  # reconstruction = the mean
    m = evaluate(sae, x)
    assert m.dead_fraction == 1 and m.l0 == 0
    assert m.explained_variance == pytest.approx(0, abs=1e-6)


def test_save_load_roundtrip(tmp_path, topk_sae):
    topk_sae.save(tmp_path / "my_sae", card={"note": "test"})
    assert (tmp_path / "my_sae.safetensors").exists() and (tmp_path / "my_sae.json").exists()
    loaded = SAE.load(tmp_path / "my_sae.safetensors")
    assert loaded.cfg == topk_sae.cfg and loaded.card["note"] == "test"
    x = torch.randn(5, 32)
    assert torch.equal(loaded(x), topk_sae(x))
    with pytest.raises(FileNotFoundError, match="SAE.save"):
        SAE.load(tmp_path / "missing")


def test_training_is_seeded(synthetic):
    acts, _ = synthetic
    cfg = SAEConfig(d_in=32, d_sae=64, activation="topk", k=4, seed=1)
    a = train_sae(acts, cfg, steps=20, progress=False)
    b = train_sae(acts, cfg, steps=20, progress=False)
    assert torch.equal(a.W_dec, b.W_dec)
    assert a.card["training"]["inputs_seen"] == 20 * 1024


# ---- on a model -------------------------------------------------------------------


@pytest.fixture
def trained_tiny(tiny, tokens):
    """The tiny model fitted to ``tokens`` for a few steps, so that its MLP matters."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(tiny.parameters(), lr=1e-2)
    for _ in range(20):
        logits = tiny(tokens)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return tiny.eval().requires_grad_(False)


def test_ce_loss_score_brackets(trained_tiny, tokens):
    tiny = trained_tiny
    site = "blocks.1.mlp.hook_post"
    acts = collect_activations(tiny, tokens, site)
    assert acts.shape == (2 * 9, 32)
    hooks_before = [len(p._forward_hooks) for p in tiny.modules()]
    # A perfect "SAE" (identity dictionary, both signs) splices in exactly what was there.
    perfect = SAE(SAEConfig(d_in=32, d_sae=64, activation="relu", site=site))
    with torch.no_grad():
        eye = torch.eye(32)
        perfect.W_dec.copy_(torch.cat([eye, -eye]))
        perfect.W_enc.copy_(torch.cat([eye, -eye]).T)
        perfect.b_enc.zero_()
        perfect.b_dec.zero_()
    out = ce_loss_recovered(tiny, perfect, tokens)
    assert out.ce_zero_ablated > out.ce_clean + 1e-3  # the site matters
    assert out.ce_spliced == pytest.approx(out.ce_clean, abs=1e-5)
    assert out.ce_loss_score == pytest.approx(1.0, abs=1e-3)
    # One that outputs zeros is exactly zero-ablation: score 0.
    dead = SAE(SAEConfig(d_in=32, d_sae=8, activation="relu", site=site))
    with torch.no_grad():
        dead.b_enc.fill_(-1e3)
        dead.b_dec.zero_()
    out = ce_loss_recovered(tiny, dead, tokens)
    assert out.ce_loss_score == pytest.approx(0.0, abs=1e-4)
    assert [len(p._forward_hooks) for p in tiny.modules()] == hooks_before  # hooks removed


# ---- bad input ----------------------------------------------------------------------


def test_nan_in_activations_names_the_site_and_count():
    acts = torch.randn(100, 8)
    acts[3, 2] = float("nan")
    acts[7, 0] = float("nan")
    cfg = SAEConfig(d_in=8, d_sae=16, site="blocks.1.mlp.hook_post")
    with pytest.raises(
        ValueError, match=r"2 NaN .*blocks\.1\.mlp\.hook_post.*first at flattened row 3"
    ):
        train_sae(acts, cfg, steps=1, progress=False)
    with pytest.raises(ValueError, match="2 NaN"):
        evaluate(SAE(cfg), acts)


def test_nan_from_a_model_site_names_the_hook(tiny, tokens):
    def poison(act, hook):
        act = act.clone()
        act[0, 0, :3] = float("nan")
        return act

    with tiny.hooks([("blocks.0.mlp.hook_post", poison)]):
        with pytest.raises(ValueError, match=r"3 NaN .*blocks\.0\.mlp\.hook_post"):
            collect_activations(tiny, tokens, "blocks.0.mlp.hook_post")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"d_sae": 0}, r"1 <= d_sae <= 16777216"),
        ({"d_sae": 16, "activation": "topk", "k": 17}, r"1 <= k <= 16"),
        ({"d_sae": 16, "activation": "topk", "k": 0}, r"1 <= k <= 16"),
        ({"d_sae": 16, "activation": "topk"}, r"1 <= k <= 16"),
        ({"d_sae": 16, "k": 4}, "only used with activation='topk'"),
        ({"d_sae": 16, "activation": "jumprelu"}, "'relu', 'topk' or 'gated'"),
    ],
)
def test_out_of_range_sizes_give_the_valid_range(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SAEConfig(d_in=8, **kwargs)


def test_width_mismatch_says_which_width():
    sae = SAE(SAEConfig(d_in=8, d_sae=16, site="blocks.0.mlp.hook_post"))
    with pytest.raises(ValueError, match=r"width 5 .* d_in=8 from 'blocks\.0\.mlp\.hook_post'"):
        sae.encode(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"SAEConfig\(d_in=5"):
        train_sae(torch.randn(10, 5), SAEConfig(d_in=8, d_sae=16), steps=1, progress=False)


# ---- the training step against a plain reference ----------------------------------


def _reference_training(acts, cfg, steps, batch_size, lr, l1_coefficient, dead_window):
    """The textbook loop, written for clarity: boolean masks, dense decodes, unfused Adam,
    ``(x - b_dec) @ W_enc``. Returns the SAE and the dead-latent count at each step."""
    import torch.nn.functional as F

    sae = SAE(cfg)
    with torch.no_grad():
        sae.b_dec.copy_(acts.mean(0))
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    order, pos = torch.randperm(len(acts), generator=gen), 0
    k_aux = cfg.d_in // 2
    since_fired = torch.zeros(cfg.d_sae, dtype=torch.long)
    n_dead_seen = []
    for _ in range(steps):
        if pos + batch_size > len(acts):
            order, pos = torch.randperm(len(acts), generator=gen), 0
        x = acts[order[pos : pos + batch_size]]
        pos += batch_size
        pre = sae.pre_activations(x)
        if cfg.activation == "relu":
            f = F.relu(pre)
            recon = f @ sae.W_dec + sae.b_dec
            loss = (recon - x).pow(2).sum(-1).mean() + l1_coefficient * f.sum(-1).mean()
        else:
            values, idx = pre.topk(cfg.k, dim=-1, sorted=False)
            f = torch.zeros_like(pre).scatter(-1, idx, F.relu(values))
            recon = f @ sae.W_dec + sae.b_dec
            loss = (recon - x).pow(2).sum(-1).mean()
            dead = since_fired >= dead_window
            n_dead = int(dead.sum())
            n_dead_seen.append(n_dead)
            if n_dead:
                v, j = pre[:, dead].topk(min(k_aux, n_dead), dim=-1, sorted=False)
                aux_f = torch.zeros(len(x), n_dead).scatter(-1, j, F.relu(v))
                aux = (aux_f @ sae.W_dec[dead] - (x - recon).detach()).pow(2).sum(-1).mean()
                loss = loss + (1 / 32) * min(n_dead / k_aux, 1.0) * aux
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            g, w = sae.W_dec.grad, sae.W_dec
            g.sub_((g * w).sum(1, keepdim=True) * w)
        opt.step()
        sae.normalize_decoder()
        since_fired = torch.where((f > 0).any(0), 0, since_fired + batch_size)
    return sae, n_dead_seen


@pytest.mark.parametrize(
    "activation, k, d_sae, batch_size, dead_window, dead_range",
    [
        # AuxK with few dead latents (n_dead <= k_aux = 16: no top-k), some (<= 4 k_aux:
        # dense scatter), many (> 4 k_aux: embedding_bag); ReLU + L1.
        ("topk", 4, 256, 256, 512, (1, 16)),
        ("topk", 4, 256, 128, 256, (17, 64)),
        ("topk", 4, 512, 128, 256, (65, 512)),
        ("relu", None, 256, 128, 256, None),
    ],
)
def test_training_matches_the_reference_loop(
    synthetic, activation, k, d_sae, batch_size, dead_window, dead_range
):
    """train_sae's fast step (folded encoder bias, fixed-size fired tracking, AuxK on the dead
    columns, fused Adam) gives the reference loop's weights."""
    acts = synthetic[0][:4096]
    cfg = SAEConfig(d_in=32, d_sae=d_sae, activation=activation, k=k, seed=0)
    kw = dict(
        steps=40, batch_size=batch_size, lr=1e-3, l1_coefficient=1e-2, dead_window=dead_window
    )
    ref, n_dead = _reference_training(acts, cfg, **kw)
    fast = train_sae(acts, cfg, progress=False, **kw)
    if dead_range:
        lo, hi = dead_range
        assert sum(lo <= n <= hi for n in n_dead) >= 5, n_dead  # the regime is exercised
    for name in ("W_dec", "W_enc", "b_enc", "b_dec"):
        assert torch.allclose(getattr(fast, name), getattr(ref, name), atol=1e-5), name


def test_float64_activations_are_cast_to_the_sae_dtype():
    sae = SAE(SAEConfig(d_in=8, d_sae=16, seed=3))
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    f32 = sae.encode(x)
    f64 = sae.encode(x.double())  # cast, not a dtype error from the matmul
    assert f64.dtype == torch.float32 and torch.equal(f32, f64)
    assert torch.equal(sae.decode(f32.double()), sae.decode(f32))
    assert evaluate(sae, x.double()) == evaluate(sae, x)
