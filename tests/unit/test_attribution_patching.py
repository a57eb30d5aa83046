"""Attribution patching: the first-order estimate of activation patching (Nanda 2023)."""

import pytest
import torch

import mechscope
from mechscope.metrics import logit_diff
from mechscope.models import Transformer, TransformerConfig
from mechscope.patching import SITES, PatchResult, activation_patch
from mechscope.patching_attr import attribution_patch, attribution_patch_sites, compare_to_exact


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def small(normalization="ln", seed=3, init_std=0.4):
    cfg = TransformerConfig(
        n_layers=2,
        d_model=16,
        n_heads=2,
        d_head=8,
        d_vocab=11,
        n_ctx=12,
        d_mlp=32,
        seed=seed,
        init_std=init_std,
        normalization=normalization,
    )
    return Transformer(cfg).eval()


CLEAN = torch.tensor([[0, 1, 2, 3, 4, 5, 1, 2], [0, 9, 8, 7, 6, 5, 4, 3]])
CORRUPTED = torch.tensor([[0, 1, 7, 3, 4, 5, 6, 2], [0, 9, 2, 7, 6, 1, 4, 3]])


def induction_prompts(model, batch=8, period=10):
    gen = torch.Generator().manual_seed(0)
    seq = torch.randint(1, model.cfg.d_vocab, (batch, period), generator=gen)
    clean = torch.cat([torch.zeros(batch, 1, dtype=torch.long), seq, seq], dim=1)
    corrupted = clean.clone()
    corrupted[:, 1 : period + 1] = torch.randint(
        1, model.cfg.d_vocab, (batch, period), generator=gen
    )
    # [BOS, s, s minus its last token]: the answer is s's last token, the corrupted one its own.
    return clean[:, :-1], corrupted[:, :-1], seq[:, -1], corrupted[:, period]


@pytest.mark.parametrize("direction", ["denoising", "noising"])
@pytest.mark.parametrize("site", ["resid_post", "mlp_out"])
def test_exact_where_the_metric_is_linear(site, direction):
    # No final LayerNorm: the last block's resid_post / mlp_out reach the logits linearly.
    model = small(normalization=None, init_std=0.25)  # logits ~1-10: float32 rounding < 1e-5
    metric = logit_diff([3, 4], [5, 6])
    attr = attribution_patch(model, CLEAN, CORRUPTED, metric, site, direction=direction)
    exact = activation_patch(model, CLEAN, CORRUPTED, metric, site, direction=direction)
    torch.testing.assert_close(attr.values[-1], exact.values[-1], atol=1e-5, rtol=0)
    assert exact.values[-1].max() - exact.values[-1].min() > 0.02  # the patches do something
    assert attr.dims == exact.dims and attr.row_labels == exact.row_labels
    assert attr.col_labels == exact.col_labels
    assert (attr.clean_value, attr.corrupted_value) == pytest.approx(
        (exact.clean_value, exact.corrupted_value), abs=1e-5
    )


@pytest.mark.parametrize("direction", ["denoising", "noising"])
def test_first_order_exact_for_small_differences(direction):
    # Corrupted tokens whose embeddings differ from the clean ones by ~1e-3: the Taylor
    # estimate matches exact patching at every site (measured pearson >= 0.99998).
    model = small()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.W_E[7] = model.W_E[2] + 1e-3 * torch.randn(16, generator=gen)
        model.W_E[6] = model.W_E[1] + 1e-3 * torch.randn(16, generator=gen)
    clean, corrupted = (
        torch.tensor([[0, 1, 2, 3, 4, 5, 1, 2]]),
        torch.tensor([[0, 6, 7, 3, 4, 5, 6, 7]]),
    )
    metric = logit_diff(3, 5)
    attrs = attribution_patch_sites(model, clean, corrupted, metric, direction=direction)
    assert set(attrs) == set(SITES)
    for site, attr in attrs.items():
        exact = activation_patch(model, clean, corrupted, metric, site, direction=direction)
        assert attr.values.shape == exact.values.shape
        cmp = compare_to_exact(attr, exact)
        assert cmp["pearson"] > 0.999, (site, cmp)
        assert cmp["max_abs_diff"] < 1e-4, (site, cmp)


def test_induction_correlation_with_exact(induction):
    # Measured (8 prompts, period 10, noising): pearson resid_pre 0.70, attn_out 0.96, z 0.91.
    # Denoising resid_pre is poor (about 0): swapping whole token embeddings moves the
    # LayerNorm scales and attention patterns far outside the linear regime.
    clean, corrupted, answer, wrong = induction_prompts(induction)
    metric = logit_diff(answer, wrong)
    want = {"resid_pre": 0.55, "attn_out": 0.9, "z": 0.8}
    attrs = attribution_patch_sites(
        induction, clean, corrupted, metric, list(want), direction="noising"
    )
    for site, threshold in want.items():
        exact = activation_patch(induction, clean, corrupted, metric, site, direction="noising")
        cmp = compare_to_exact(attrs[site], exact, k=3)
        assert cmp["pearson"] > threshold, (site, cmp)
    # The induction head (L1H2 in this model) and the previous-token head it reads from
    # (L0H2) are the two heads that matter most, in both estimates.
    exact_z = activation_patch(induction, clean, corrupted, metric, "z", direction="noising")
    for res in (attrs["z"], exact_z):
        drop = (res.clean_value - res.values).flatten()
        assert set(drop.topk(2).indices.tolist()) == {2, 6}


def test_compare_to_exact_labels_and_errors():
    def result(values, site="z", direction="denoising"):
        return PatchResult(
            values=torch.tensor(values),
            site=site,
            dims=("layer", "head"),
            row_labels=["L0", "L1"],
            col_labels=["H0", "H1"],
            str_tokens=[],
            direction=direction,
            clean_value=1.0,
            corrupted_value=0.0,
        )

    exact = result([[0.0, 1.0], [2.0, 3.0]])
    attr = result([[0.0, 1.5], [2.0, 2.0]])
    cmp = compare_to_exact(attr, exact, k=2)
    assert cmp["max_abs_diff"] == pytest.approx(1.0)
    assert cmp["mean_abs_diff"] == pytest.approx(0.375)
    assert [w["label"] for w in cmp["worst"]] == ["L1 H1", "L0 H1"]
    assert cmp["worst"][0] == {"label": "L1 H1", "attribution": 2.0, "exact": 3.0, "diff": -1.0}
    a, e = torch.tensor([0.0, 1.5, 2.0, 2.0]), torch.tensor([0.0, 1.0, 2.0, 3.0])
    assert cmp["pearson"] == pytest.approx(
        float(torch.corrcoef(torch.stack([a, e]))[0, 1]), abs=1e-6
    )
    assert compare_to_exact(exact, exact)["pearson"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same site"):
        compare_to_exact(result([[0.0, 1.0], [2.0, 3.0]], site="pattern"), exact)
    with pytest.raises(ValueError, match="same direction"):
        compare_to_exact(result([[0.0, 1.0], [2.0, 3.0]], direction="noising"), exact)


def test_model_left_unmodified_when_metric_raises():
    model = small()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    marker = torch.full_like(model.W_U, 7.0)
    model.W_U.grad = marker
    calls = []

    def flaky(logits):
        calls.append(1)
        if len(calls) > 1:  # past the source run, inside the differentiated target run
            raise RuntimeError("metric failed")
        return logits[:, -1, 3]

    with pytest.raises(RuntimeError, match="metric failed"):
        attribution_patch(model, CLEAN, CORRUPTED, flaky, "resid_pre")
    assert hook_count(model) == 0
    assert not model.training
    assert model.W_U.grad is marker and torch.equal(marker, torch.full_like(marker, 7.0))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "W_U")
    # A successful run writes no gradients either, and keeps the mode (train mode here).
    model.train()
    attribution_patch(model, CLEAN, CORRUPTED, logit_diff(3, 5), "z")
    assert model.training and hook_count(model) == 0
    assert model.W_U.grad is marker
    assert all(p.grad is None for n, p in model.named_parameters() if n != "W_U")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_frozen_parameters_and_bad_metric():
    model = small()
    for p in model.parameters():
        p.requires_grad_(False)
    metric = logit_diff([3, 4], [5, 6])
    attr = attribution_patch(model, CLEAN, CORRUPTED, metric, "resid_post")
    want = attribution_patch(small(), CLEAN, CORRUPTED, metric, "resid_post")
    torch.testing.assert_close(attr.values, want.values)
    with pytest.raises(ValueError, match="differentiable"):
        attribution_patch(model, CLEAN, CORRUPTED, lambda lg: lg[:, -1].argmax(-1).float(), "z")
    with pytest.raises(ValueError, match=r"shape \[batch\]"):
        attribution_patch(model, CLEAN, CORRUPTED, lambda lg: lg[:, -1, 3].sum(), "z")
    with pytest.raises(KeyError, match="resid_pre"):
        attribution_patch(model, CLEAN, CORRUPTED, metric, "resid_pree")
    with pytest.raises(ValueError, match="direction"):
        attribution_patch(model, CLEAN, CORRUPTED, metric, "z", direction="sideways")


def test_wrapped_hf_gpt2():
    tf = pytest.importorskip("transformers")
    config = tf.GPT2Config(n_layer=2, n_head=4, n_embd=16, n_positions=16, vocab_size=32)
    hf = tf.GPT2LMHeadModel(config).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in hf.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model = mechscope.wrap(hf)
    clean = torch.tensor([[5, 6, 7, 8, 9, 10]])
    corrupted = torch.tensor([[5, 11, 7, 8, 12, 10]])
    metric = logit_diff(3, 4)
    for site in ["resid_pre", "z_by_pos", "pattern"]:
        attr = attribution_patch(model, clean, corrupted, metric, site)
        exact = activation_patch(model, clean, corrupted, metric, site)
        assert attr.values.shape == exact.values.shape and attr.col_labels == exact.col_labels
        assert attr.corrupted_value == pytest.approx(exact.corrupted_value, abs=1e-4)
        assert torch.isfinite(attr.values).all()
    assert hook_count(hf) == 0
    assert all(p.grad is None for p in hf.parameters())
    assert not hf.training
