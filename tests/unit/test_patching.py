"""Activation patching: batched, prefix-reusing results equal one forward pass per patch."""

import pytest
import torch

from mechscope.metrics import logit_diff, normalized
from mechscope.patching import SITES, PatchResult, activation_patch


def naive_patch(model, clean, corrupted, metric, site, direction):
    """Reference: one plain forward pass per patch, hooks by hand (what TransformerLens does)."""
    src_t, tgt_t = (clean, corrupted) if direction == "denoising" else (corrupted, clean)
    hook = {
        "resid_pre": "hook_resid_pre",
        "resid_mid": "hook_resid_mid",
        "resid_post": "hook_resid_post",
        "attn_out": "hook_attn_out",
        "mlp_out": "hook_mlp_out",
        "z": "attn.hook_z",
        "z_by_pos": "attn.hook_z",
        "pattern": "attn.hook_pattern",
    }[site]
    n_layers, n_heads, n_pos = model.cfg.n_layers, model.cfg.n_heads, tgt_t.shape[1]
    names = [f"blocks.{la}.{hook}" for la in range(n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(src_t, names=names)
    if site in ("z", "pattern"):
        shape = (n_layers, n_heads)
    elif site == "z_by_pos":
        shape = (n_layers, n_heads, n_pos)
    else:
        shape = (n_layers, n_pos)
    out = torch.empty(shape)
    for idx in torch.cartesian_prod(*[torch.arange(s) for s in shape]).tolist():
        layer, rest = idx[0], idx[1:]
        src = cache[names[layer]]

        def fn(act, hook, rest=rest, src=src):
            act = act.clone()
            if site in ("z", "pattern"):
                if site == "z":
                    act[:, :, rest[0]] = src[:, :, rest[0]]
                else:
                    act[:, rest[0]] = src[:, rest[0]]
            elif site == "z_by_pos":
                act[:, rest[1], rest[0]] = src[:, rest[1], rest[0]]
            else:
                act[:, rest[0]] = src[:, rest[0]]
            return act

        with torch.no_grad(), model.hooks([(names[layer], fn)]):
            out[tuple(idx)] = metric(model(tgt_t)).mean()
    return out


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.fixture(scope="module")
def mlp_prompts():
    clean = torch.tensor([[0, 1, 2, 3, 4, 5, 1, 2], [0, 9, 8, 7, 6, 5, 4, 3]])
    corrupted = torch.tensor([[0, 1, 7, 3, 4, 5, 6, 2], [0, 9, 2, 7, 6, 1, 4, 3]])
    return clean, corrupted


def induction_prompts(model):
    gen = torch.Generator().manual_seed(0)
    seq = torch.randint(1, model.cfg.d_vocab, (2, 5), generator=gen)
    clean = torch.cat([torch.zeros(2, 1, dtype=torch.long), seq, seq], dim=1)
    corrupted = clean.clone()
    corrupted[:, 1:6] = torch.randint(1, model.cfg.d_vocab, (2, 5), generator=gen)
    # [BOS, s1..s5, s1..s4]: the induction answer is s5; the corrupted run's is its own 5th token.
    return clean[:, :-1], corrupted[:, :-1], seq[:, 4], corrupted[:, 5]


@pytest.mark.parametrize("direction", ["denoising", "noising"])
@pytest.mark.parametrize("site", list(SITES))
def test_exact_on_mlp_transformer(mlp_model, mlp_prompts, site, direction):
    clean, corrupted = mlp_prompts
    metric = logit_diff([3, 4], [5, 6])
    got = activation_patch(
        mlp_model, clean, corrupted, metric, site, direction=direction, batch_size=6
    )
    want = naive_patch(mlp_model, clean, corrupted, metric, site, direction)
    assert got.values.shape == want.shape
    torch.testing.assert_close(got.values, want, atol=1e-5, rtol=0)
    assert got.values.std() > 1e-3  # the patches do something


@pytest.mark.parametrize("direction", ["denoising", "noising"])
@pytest.mark.parametrize(
    "site", ["resid_pre", "resid_post", "attn_out", "z", "z_by_pos", "pattern"]
)
def test_exact_on_induction_model(induction, site, direction):
    clean, corrupted, answer, wrong = induction_prompts(induction)
    metric = logit_diff(answer, wrong)
    got = activation_patch(induction, clean, corrupted, metric, site, direction=direction)
    want = naive_patch(induction, clean, corrupted, metric, site, direction)
    torch.testing.assert_close(got.values, want, atol=1e-5, rtol=0)


def test_induction_denoising_finds_the_induction_path(induction):
    clean, corrupted, answer, wrong = induction_prompts(induction)
    metric = logit_diff(answer, wrong)
    with torch.no_grad():
        clean_v, corr_v = metric(induction(clean)), metric(induction(corrupted))
    assert (clean_v > corr_v).all()
    norm = normalized(metric, clean_v, corr_v)
    post = activation_patch(induction, clean, corrupted, norm, "resid_post")
    # Restoring the whole last-position residual of the last layer restores the clean run.
    assert post.values[-1, -1].item() == pytest.approx(1.0, abs=1e-4)
    assert post.clean_value == pytest.approx(1.0, abs=1e-5)
    assert post.corrupted_value == pytest.approx(0.0, abs=1e-5)
    pre = activation_patch(induction, clean, corrupted, norm, "resid_pre")
    # After layer 0 (previous-token head), position 5 = the answer's first occurrence carries
    # "s4 came before me"; restoring it there lets the layer-1 induction head find it.
    assert pre.values[1, 5].item() > 0.9
    # Same token (BOS) in both runs: patching it changes nothing.
    assert pre.values[:, 0].abs().max().item() < 1e-4


def test_chunking_does_not_change_results(mlp_model, mlp_prompts):
    clean, corrupted = mlp_prompts
    metric = logit_diff(3, 5)
    a = activation_patch(mlp_model, clean, corrupted, metric, "z_by_pos", batch_size=2)
    b = activation_patch(mlp_model, clean, corrupted, metric, "z_by_pos", memory_mb=1000)
    c = activation_patch(mlp_model, clean, corrupted, metric, "z_by_pos", memory_mb=1e-3)
    torch.testing.assert_close(a.values, b.values, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.values, c.values, atol=1e-5, rtol=0)


def test_result_labels_and_heatmap(mlp_model, mlp_prompts):
    clean, corrupted = mlp_prompts
    res = activation_patch(mlp_model, clean, corrupted, logit_diff(3, 5), "resid_pre")
    assert isinstance(res, PatchResult)
    assert res.dims == ("layer", "pos") and res.values.shape == (3, 8)
    assert res.row_labels == ["L0", "L1", "L2"]
    assert res.str_tokens == mlp_model.to_str_tokens(clean[0])
    assert res.col_labels[1] == f"1: {res.str_tokens[1]}"
    assert res.direction == "denoising"
    assert "resid_pre" in repr(res)
    w = res.to_widget()
    assert (w.n_rows, w.n_cols) == (3, 8)
    byp = activation_patch(mlp_model, clean, corrupted, logit_diff(3, 5), "z_by_pos")
    assert byp.dims == ("layer", "head", "pos") and byp.values.shape == (3, 2, 8)
    assert byp.grid().shape == (6, 8) and byp.row_labels[:3] == ["L0H0", "L0H1", "L1H0"]
    torch.testing.assert_close(byp.grid()[3], byp.values[1, 1])
    assert byp.to_widget().n_rows == 6
    heads = activation_patch(mlp_model, clean, corrupted, logit_diff(3, 5), "pattern")
    assert heads.col_labels == ["H0", "H1"]


def test_text_prompts_and_single_prompt(mlp_model):
    metric = logit_diff(3, 5)
    res = activation_patch(mlp_model, "a b c d", "a e c d", metric, "attn_out")
    want = naive_patch(
        mlp_model,
        mlp_model.to_tokens("a b c d"),
        mlp_model.to_tokens("a e c d"),
        metric,
        "attn_out",
        "denoising",
    )
    torch.testing.assert_close(res.values, want, atol=1e-5, rtol=0)


def test_metric_helpers():
    logits = torch.zeros(2, 3, 5)
    logits[0, -1, 1], logits[0, -1, 2] = 3.0, 1.0
    logits[1, -1, 4], logits[1, 0, 4] = 2.0, 7.0
    assert logit_diff(1, 2)(logits).tolist() == [2.0, 0.0]
    assert logit_diff([1, 4], [2, 0])(logits).tolist() == [2.0, 2.0]
    assert logit_diff([1, 4], [2, 0], pos=0)(logits).tolist() == [0.0, 7.0]
    m = normalized(logit_diff([1, 4], [2, 0]), clean_value=4.0, corrupted_value=0.0)
    assert m(logits).tolist() == [0.5, 0.5]
    m = normalized(logit_diff([1, 4], [2, 0]), torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0]))
    assert m(logits).tolist() == [1.0, 0.5]
    with pytest.raises(ValueError, match="no gap"):
        normalized(logit_diff(1, 2), 1.0, 1.0)
    with pytest.raises(ValueError, match="one token id per prompt"):
        logit_diff([[1, 2]], 0)


# ---- bad input --------------------------------------------------------------------------------


def test_different_lengths_show_both_tokenisations(mlp_model):
    with pytest.raises(ValueError) as e:
        activation_patch(mlp_model, "a b c d", "a b c", logit_diff(3, 5))
    msg = str(e.value)
    assert "[1, 5]" in msg and "[1, 4]" in msg
    assert "['<bos>', 'a', 'b', 'c', 'd']" in msg and "['<bos>', 'a', 'b', 'c']" in msg


def test_unknown_and_missing_sites(mlp_model, induction):
    with pytest.raises(KeyError, match="resid_pre"):
        activation_patch(mlp_model, "a b", "a c", logit_diff(3, 5), "resid_pr")
    with pytest.raises(KeyError, match="Closest valid names: z_by_pos"):
        activation_patch(mlp_model, "a b", "a c", logit_diff(3, 5), "z_by_po")
    with pytest.raises(KeyError, match="blocks.0.hook_mlp_out"):
        activation_patch(
            induction, torch.tensor([1, 2]), torch.tensor([1, 3]), logit_diff(3, 5), "mlp_out"
        )
    with pytest.raises(ValueError, match="direction="):
        activation_patch(mlp_model, "a b", "a c", logit_diff(3, 5), direction="clean")


@pytest.mark.parametrize(
    "bad", [lambda lg: lg[:, -1, 3].sum(), lambda lg: lg[:, -1, :3], lambda lg: 1.0]
)
def test_metric_wrong_shape(mlp_model, bad):
    with pytest.raises(ValueError, match=r"expected a tensor of shape \[batch\] = \[2\]"):
        activation_patch(
            mlp_model,
            torch.tensor([[0, 1, 2], [0, 2, 1]]),
            torch.tensor([[0, 3, 2], [0, 2, 3]]),
            bad,
        )


@pytest.mark.parametrize("site", ["resid_pre", "pattern"])
def test_model_left_unmodified_when_metric_raises(mlp_model, mlp_prompts, site):
    clean, corrupted = mlp_prompts
    before = {k: v.clone() for k, v in mlp_model.state_dict().items()}
    hooks_before = hook_count(mlp_model)
    calls = []

    def flaky(logits):
        calls.append(1)
        if len(calls) > 4:  # past the baselines, inside the batched patch runs
            raise RuntimeError("metric failed")
        return logits[:, -1, 3]

    with pytest.raises(RuntimeError, match="metric failed"):
        activation_patch(mlp_model, clean, corrupted, flaky, site, batch_size=4)
    assert hook_count(mlp_model) == hooks_before == 0
    assert not mlp_model.training
    for k, v in mlp_model.state_dict().items():
        assert torch.equal(v, before[k]), k
    ok = activation_patch(mlp_model, clean, corrupted, logit_diff(3, 5), site)
    want = naive_patch(mlp_model, clean, corrupted, logit_diff(3, 5), site, "denoising")
    torch.testing.assert_close(ok.values, want, atol=1e-5, rtol=0)
