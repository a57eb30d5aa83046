"""Ablations: zero / mean / resample values, selections, batched sweeps, and hygiene."""

import pytest
import torch

from mechscope.ablation import (
    AblationResult,
    ablate,
    ablation_hooks,
    ablation_sweep,
    ablation_values,
)

Z1 = "blocks.1.attn.hook_z"


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.fixture(scope="module")
def toks():
    gen = torch.Generator().manual_seed(0)
    t = torch.randint(1, 11, (4, 9), generator=gen)
    t[:, 0] = 0
    return t


@pytest.fixture(scope="module")
def ref():
    gen = torch.Generator().manual_seed(1)
    t = torch.randint(1, 11, (6, 9), generator=gen)
    t[:, 0] = 0
    return t


def last_logit(logits):
    """A metric that depends on everything: the mean last-position logit of token 3."""
    return logits[:, -1, 3] - logits[:, -1].mean(-1)


def manual(model, toks, name, replace):
    """Reference: one forward pass with a hand-written hook ``act -> replace(act)``."""
    with torch.no_grad(), model.hooks([(name, lambda act, hook: replace(act.clone()))]):
        return model(toks)


# ---- the identity the issue asks for ------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["blocks.0.hook_resid_pre", Z1, "blocks.1.attn.hook_pattern", "blocks.0.hook_mlp_out"]
)
def test_resample_from_identical_inputs_is_identity(mlp_model, toks, name):
    with torch.no_grad():
        clean = mlp_model(toks)
    out = ablate(mlp_model, toks, name, kind="resample", reference=toks.clone())
    assert torch.equal(out, clean)
    assert not torch.equal(ablate(mlp_model, toks, name, kind="zero"), clean)


@pytest.mark.parametrize("site", ["z", "z_by_pos", "resid_pre", "pattern"])
def test_resample_sweep_from_identical_inputs_is_identity(mlp_model, toks, site):
    res = ablation_sweep(mlp_model, toks, last_logit, site, kind="resample", reference=toks)
    assert torch.allclose(res.values, torch.full_like(res.values, res.baseline_value), atol=1e-5)


# ---- values match hand-written hooks ------------------------------------------------------


def test_zero_ablation_of_one_head_at_one_position(mlp_model, toks):
    def replace(z):
        z[:, 5, 1] = 0
        return z

    out = ablate(mlp_model, toks, Z1, kind="zero", head=1, pos=5)
    assert torch.equal(out, manual(mlp_model, toks, Z1, replace))


def test_mean_ablation_uses_reference_mean_per_position(mlp_model, toks, ref):
    with torch.no_grad():
        _, cache = mlp_model.run_with_cache(ref, names=[Z1])
    mean = cache[Z1].mean(0)  # [pos, head, d_head]

    def replace(z):
        z[:, :, [0, 1]] = mean[None, :, [0, 1]]
        return z

    out = ablate(mlp_model, toks, Z1, kind="mean", head=[0, 1], reference=ref[:, :9])
    assert torch.allclose(out, manual(mlp_model, toks, Z1, replace), atol=1e-6)
    vals = ablation_values(mlp_model, Z1, kind="mean", reference=ref)
    assert vals[Z1].shape == (1, 9, 2, 8) and torch.allclose(vals[Z1][0], mean)


def test_mean_ablation_defaults_to_the_batch_itself(mlp_model, toks):
    name = "blocks.1.hook_resid_pre"
    with torch.no_grad():
        _, cache = mlp_model.run_with_cache(toks, names=[name])
    mean = cache[name].mean(0)

    def replace(x):
        x[:, -1] = mean[-1]
        return x

    out = ablate(mlp_model, toks, name, kind="mean", pos=-1)
    assert torch.allclose(out, manual(mlp_model, toks, name, replace), atol=1e-6)


def test_resample_default_is_a_seeded_derangement(mlp_model, toks):
    outs = [ablate(mlp_model, toks, Z1, kind="resample", seed=s) for s in (0, 0, 1)]
    assert torch.equal(outs[0], outs[1])
    # Which rows did seed 0 use? Recover them by trying each as a full reference.
    with torch.no_grad():
        _, cache = mlp_model.run_with_cache(toks, names=[Z1])
    donors = []
    for b in range(4):
        for d in range(4):
            src = cache[Z1][d]
            out = manual(mlp_model, toks[b : b + 1], Z1, lambda z, src=src: src[None].clone())
            if torch.allclose(out, outs[0][b : b + 1], atol=1e-5):
                donors.append(d)
    assert len(donors) == 4
    assert sorted(donors) == [0, 1, 2, 3]  # a permutation
    assert all(d != b for b, d in enumerate(donors))  # no prompt keeps its own


def test_resample_with_larger_reference_draws_rows(mlp_model, toks, ref):
    out = ablate(mlp_model, toks, Z1, kind="resample", reference=ref, seed=3)
    rows = torch.randint(6, (4,), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        _, cache = mlp_model.run_with_cache(ref, names=[Z1])
    want = manual(mlp_model, toks, Z1, lambda z: cache[Z1][rows].clone())
    assert torch.allclose(out, want, atol=1e-6)


def test_ablation_hooks_compose_with_run_with_cache(mlp_model, toks):
    with ablation_hooks(mlp_model, [Z1, "blocks.0.attn.hook_z"], head=[0]):
        _, cache = mlp_model.run_with_cache(toks, names=[Z1, "blocks.0.attn.hook_z"])
    for n in (Z1, "blocks.0.attn.hook_z"):
        assert cache[n][:, :, 0].abs().max() == 0 and cache[n][:, :, 1].abs().max() > 0


# ---- sweep equals one ablated forward per cell --------------------------------------------


@pytest.mark.parametrize(
    "site,kind",
    [("z", "zero"), ("z_by_pos", "mean"), ("resid_pre", "resample"), ("pattern", "mean")],
)
def test_sweep_matches_single_ablations(mlp_model, toks, ref, site, kind):
    reference = ref[:4] if kind != "zero" else None
    res = ablation_sweep(
        mlp_model, toks, last_logit, site, kind=kind, reference=reference, batch_size=8
    )
    assert isinstance(res, AblationResult) and res.kind == kind
    hook = {"z": "attn.hook_z", "z_by_pos": "attn.hook_z", "resid_pre": "hook_resid_pre"}.get(
        site, "attn.hook_pattern"
    )
    for layer in range(3):
        name = f"blocks.{layer}.{hook}"
        for h in range(2):
            if site in ("z", "pattern"):
                logits = ablate(mlp_model, toks, name, kind=kind, head=h, reference=reference)
                want = last_logit(logits).mean()
                assert res.values[layer, h] == pytest.approx(want.item(), abs=1e-4)
        if site == "z_by_pos":
            logits = ablate(mlp_model, toks, name, kind=kind, head=1, pos=4, reference=reference)
            assert res.values[layer, 1, 4] == pytest.approx(
                last_logit(logits).mean().item(), abs=1e-4
            )
        if site == "resid_pre":
            for p in (0, 8):
                logits = ablate(mlp_model, toks, name, kind=kind, pos=p, reference=reference)
                want = last_logit(logits).mean().item()
                assert res.values[layer, p] == pytest.approx(want, abs=1e-4)
    with torch.no_grad():
        assert res.baseline_value == pytest.approx(
            last_logit(mlp_model(toks)).mean().item(), abs=1e-5
        )


def test_sweep_chunking_does_not_change_values(mlp_model, toks):
    a = ablation_sweep(mlp_model, toks, last_logit, "z_by_pos", batch_size=4)
    b = ablation_sweep(mlp_model, toks, last_logit, "z_by_pos")
    assert torch.allclose(a.values, b.values, atol=1e-5)
    assert a.values.shape == (3, 2, 9) and len(a.row_labels) == 6


# ---- errors say what was given and the fix ------------------------------------------------


def test_unknown_hook_name_lists_closest(mlp_model, toks):
    with pytest.raises(KeyError, match="blocks.1.attn.hook_z"):
        ablate(mlp_model, toks, "blocks.1.attn.hook_zz")


def test_bad_kind_and_site(mlp_model, toks):
    with pytest.raises(ValueError, match="expected one of 'zero', 'mean', 'resample'"):
        ablate(mlp_model, toks, Z1, kind="random")
    with pytest.raises(KeyError, match="resid_pre"):
        ablation_sweep(mlp_model, toks, last_logit, "resid_pr")


def test_heads_on_a_hook_without_heads(mlp_model, toks):
    with pytest.raises(ValueError, match="has no head axis"):
        ablate(mlp_model, toks, "blocks.0.hook_resid_pre", head=0)
    with pytest.raises(ValueError, match=r"head=2 is out of range"):
        ablate(mlp_model, toks, Z1, head=2)


def test_reference_of_wrong_length(mlp_model, toks, ref):
    with pytest.raises(ValueError, match="same number of positions"):
        ablate(mlp_model, toks, Z1, kind="mean", reference=ref[:, :7])


def test_resample_needs_two_prompts_or_reference(mlp_model, toks):
    with pytest.raises(ValueError, match="at least 2 prompts"):
        ablate(mlp_model, toks[:1], Z1, kind="resample")


def test_hooks_need_reference_for_mean(mlp_model):
    with pytest.raises(ValueError, match="needs reference tokens"):
        with ablation_hooks(mlp_model, Z1, kind="mean"):
            pass


# ---- the model leaves as it came ----------------------------------------------------------


def test_model_left_as_it_came_even_on_errors(mlp_model, toks, ref):
    before_hooks = hook_count(mlp_model)
    weights = {k: v.clone() for k, v in mlp_model.state_dict().items()}
    grads = {k: p.requires_grad for k, p in mlp_model.named_parameters()}
    mlp_model.train()
    try:
        # A hook that raises mid-forward: reference of another length inside ablation_hooks.
        with pytest.raises(ValueError, match="same number of positions"):
            with ablation_hooks(mlp_model, Z1, kind="mean", reference=ref[:, :7]):
                mlp_model(toks)
        with pytest.raises(ValueError, match="expected a tensor of shape"):
            ablation_sweep(mlp_model, toks, lambda lg: lg.sum(), "z")
        ablation_sweep(mlp_model, toks, last_logit, "resid_pre", kind="resample")
        assert mlp_model.training
    finally:
        mlp_model.eval()
    assert hook_count(mlp_model) == before_hooks
    assert all(torch.equal(v, mlp_model.state_dict()[k]) for k, v in weights.items())
    assert grads == {k: p.requires_grad for k, p in mlp_model.named_parameters()}


def test_heads_and_positions_accept_numpy_and_tensor_ints(mlp_model, toks):
    import numpy as np

    want = ablate(mlp_model, toks, Z1, head=[1], pos=[2, 3])
    got = ablate(mlp_model, toks, Z1, head=np.int64(1), pos=torch.tensor([2, 3]))
    assert torch.equal(want, got)
    with pytest.raises(TypeError, match="non-empty list of ints"):
        ablate(mlp_model, toks, Z1, head=[])


def test_bools_are_not_indices(mlp_model, toks):
    # head=True once meant head 1, silently.
    for kw in ({"head": True}, {"pos": False}, {"head": [0, True]}, {"pos": torch.tensor(True)}):
        with pytest.raises(TypeError, match="is a bool"):
            ablate(mlp_model, toks, Z1, **kw)


def test_pos_out_of_range_names_pos(mlp_model, toks):
    with pytest.raises(ValueError, match=r"pos=9 is out of range"):
        ablate(mlp_model, toks, Z1, pos=9)


def test_result_heatmap_is_labelled(mlp_model, toks):
    res = ablation_sweep(mlp_model, toks, last_logit, "z")
    assert res.dims == ("layer", "head") and res.row_labels == ["L0", "L1", "L2"]
    w = res.to_widget()
    assert w.row_labels == ["L0", "L1", "L2"] and w.col_labels == ["H0", "H1"]
    assert res.kind == "zero" and "kind='zero'" in repr(res)
