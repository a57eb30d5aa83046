import pytest
import torch

from mechscope.attribution import (
    direct_logit_attribution,
    gradient_x_input,
    integrated_gradients,
    logit_metric,
    saliency,
    smoothgrad,
)
from mechscope.metrics import logit_diff


def _state(model):
    return (
        [(n, p.requires_grad, p.grad) for n, p in model.named_parameters()],
        sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
        model.training,
        {n: p.detach().clone() for n, p in model.named_parameters()},
    )


def _assert_same(model, before):
    grads, hooks, training, weights = before
    now = _state(model)
    assert [(n, r) for n, r, _ in now[0]] == [(n, r) for n, r, _ in grads]
    assert all(g is None for _, _, g in now[0])
    assert now[1] == hooks and now[2] == training
    assert all(torch.equal(weights[n], p) for n, p in model.named_parameters())


# ---- direct logit attribution ---------------------------------------------------


def test_dla_components_sum_to_the_logit_difference(mlp_model, tokens):
    logits, cache = mlp_model.run_with_cache(tokens)
    ans, wrong = torch.tensor([3, 7]), torch.tensor([5, 2])
    res = direct_logit_attribution(cache, ans, wrong, by="component")
    assert res.labels == [
        "embed",
        "pos_embed",
        *[f"{i}_{k}" for i in range(3) for k in ("attn_out", "mlp_out")],
    ]
    assert res.values.shape == (8, 2)
    expected = logits[[0, 1], -1, ans] - logits[[0, 1], -1, wrong]
    assert torch.allclose(res.values.sum(0) + res.offset, expected, atol=1e-4)
    # every position at once, one answer id for all
    allpos = direct_logit_attribution(cache, 4, by="component", pos=None)
    assert allpos.values.shape == (8, 2, tokens.shape[1])
    assert torch.allclose(allpos.values.sum(0) + allpos.offset, logits[..., 4], atol=1e-4)


def test_dla_heads_sum_to_their_layer(mlp_model, tokens):
    _, cache = mlp_model.run_with_cache(tokens)
    heads = direct_logit_attribution(cache, 3, 5, by="head")
    comps = direct_logit_attribution(cache, 3, 5, by="component")
    assert heads.labels == ["L0H0", "L0H1", "L1H0", "L1H1", "L2H0", "L2H1"]
    for layer in range(3):  # b_O is zero in this model, so the heads are the whole layer
        layer_sum = heads.values[2 * layer : 2 * layer + 2].sum(0)
        assert torch.allclose(
            layer_sum, comps.values[comps.labels.index(f"{layer}_attn_out")], atol=1e-5
        )
    assert set(heads.as_dict()) == set(heads.labels)


def test_dla_finds_the_induction_head(induction):
    g = torch.Generator().manual_seed(0)
    half = torch.randint(1, induction.cfg.d_vocab, (16, 10), generator=g)
    tokens = torch.cat([torch.zeros(16, 1, dtype=torch.long), half, half], 1)
    _, cache = induction.run_with_cache(tokens[:, :-1])
    res = direct_logit_attribution(cache, tokens[:, -1], by="head")
    # All four layer-1 heads of this model are induction heads (head_scores > 0.94): they
    # carry the prediction; layer-0 heads (previous-token heads) write almost nothing to it.
    top4 = res.top(4)
    assert {lab for lab, _ in top4} == {"L1H0", "L1H1", "L1H2", "L1H3"}
    assert all(v > 0.3 for _, v in top4)
    assert res.mean()[:4].abs().max() < 0.1
    assert res.mean()[res.labels.index(top4[0][0])] == pytest.approx(top4[0][1])


def test_dla_bad_inputs(mlp_model, tokens):
    _, cache = mlp_model.run_with_cache(tokens, names=["blocks.0.attn.hook_z"])
    with pytest.raises(KeyError, match="blocks.1.attn.hook_z"):
        direct_logit_attribution(cache, 3, by="head")
    _, cache = mlp_model.run_with_cache(tokens)
    with pytest.raises(ValueError, match="by='neuron'"):
        direct_logit_attribution(cache, 3, by="neuron")
    with pytest.raises(ValueError, match=r"answer_ids has shape \[3\]"):
        direct_logit_attribution(cache, [1, 2, 3])


# ---- gradients --------------------------------------------------------------------


LIN = "ln_final.hook_normalized"  # logits are affine in this activation


def test_ig_is_exact_where_the_metric_is_linear(mlp_model, tokens):
    metric = logit_metric(3, 5)
    ig = integrated_gradients(mlp_model, tokens, metric, hook=LIN, steps=3)
    gxi = gradient_x_input(mlp_model, tokens, metric, hook=LIN)
    # affine metric: IG with zero baseline = gradient x input, and completeness is exact
    assert torch.allclose(ig.per_dim, gxi.per_dim, atol=1e-5)
    assert torch.allclose(ig.attributions.sum(-1), ig.f_input - ig.f_baseline, atol=1e-4)
    assert torch.allclose(gxi.f_input, ig.f_input)
    w = mlp_model.ln_final.w * (mlp_model.W_U[:, 3] - mlp_model.W_U[:, 5])
    sal = saliency(mlp_model, tokens, metric, hook=LIN)
    assert torch.allclose(sal.attributions[:, -1], w.norm().expand(2), atol=1e-5)
    assert torch.all(sal.attributions[:, :-1] == 0)  # the metric reads the last position only


def _naive_ig(model, tokens, ans, wrong, steps):
    """Reference: riemann_middle, one forward/backward per step and prompt."""
    x = model.W_E[tokens].detach()
    total = torch.zeros_like(x)
    for b in range(tokens.shape[0]):
        for k in range(steps):
            a = (k + 0.5) / steps
            e = (a * x[b : b + 1]).requires_grad_(True)
            with model.hooks([("hook_embed", lambda act, hook, e=e: e)]):
                logits = model(tokens[b : b + 1])
                f = logits[0, -1, ans[b]] - logits[0, -1, wrong[b]]
            (g,) = torch.autograd.grad(f.sum(), e)
            total[b] += g[0] / steps
    return x * total


def test_ig_batched_and_chunked_equal_a_naive_loop(mlp_model, tokens):
    ans, wrong = torch.tensor([3, 7]), torch.tensor([5, 2])
    metric = logit_diff(ans, wrong)  # per-prompt answers
    ref = _naive_ig(mlp_model, tokens, ans, wrong, steps=6)
    for chunk in (None, 1, 4, 5):
        ig = integrated_gradients(
            mlp_model, tokens, metric, steps=6, method="riemann_middle", batch_size=chunk, tol=1
        )
        assert torch.allclose(ig.per_dim, ref, atol=1e-5), chunk


def test_ig_completeness_within_one_percent_and_methods_agree(mlp_model, tokens):
    metric = logit_metric(3, 5)
    gl = integrated_gradients(mlp_model, tokens, metric, steps=50)
    tr = integrated_gradients(mlp_model, tokens, metric, steps=200, method="riemann_trapezoid")
    assert gl.completeness_error.max() < 0.01 and tr.completeness_error.max() < 0.01
    assert torch.allclose(gl.attributions, tr.attributions, atol=1e-2)
    assert gl.attributions.shape == tokens.shape and gl.per_dim.shape == (*tokens.shape, 16)
    assert torch.allclose(gl.delta, gl.attributions.sum(-1) - (gl.f_input - gl.f_baseline))
    with torch.no_grad():
        f0 = metric(mlp_model.run_with_hooks(tokens, [("hook_embed", lambda a, h: a * 0)]))
    assert torch.allclose(gl.f_baseline, f0, atol=1e-5)
    assert torch.allclose(gl.f_input, metric(mlp_model(tokens)), atol=1e-5)


def test_ig_baselines(mlp_model, tokens):
    metric = logit_metric(3)
    pad = integrated_gradients(mlp_model, tokens, metric, baseline="pad", steps=20)
    tok0 = integrated_gradients(mlp_model, tokens, metric, baseline=0, steps=20)
    assert torch.allclose(pad.attributions, tok0.attributions)  # WordTokenizer: no pad id -> 0
    with torch.no_grad():
        assert torch.allclose(
            pad.f_baseline, metric(mlp_model(torch.zeros_like(tokens))), atol=1e-5
        )
    other = torch.full_like(tokens, 4)
    as_tokens = integrated_gradients(mlp_model, tokens, metric, baseline=other, steps=20)
    as_act = integrated_gradients(mlp_model, tokens, metric, baseline=mlp_model.W_E[4], steps=20)
    assert torch.allclose(as_tokens.per_dim, as_act.per_dim, atol=1e-6)
    # a token equal to its baseline gets exactly zero
    same = tokens.clone()
    same[:, 2] = 4
    assert torch.all(
        integrated_gradients(mlp_model, same, metric, baseline=other).attributions[:, 2] == 0
    )


def test_ig_warns_when_under_resolved(mlp_model, tokens):
    with pytest.warns(UserWarning, match="raise the step count"):
        res = integrated_gradients(
            mlp_model, tokens, logit_metric(3, 5), steps=2, method="riemann_left"
        )
    assert res.completeness_error.max() > 0.01


def test_model_left_exactly_as_it_came(mlp_model, tokens):
    mlp_model.blocks[0].attn.W_Q.requires_grad_(False)  # a frozen parameter stays frozen
    try:
        before = _state(mlp_model)
        with torch.no_grad():  # works, and leaves no trace, inside no_grad
            integrated_gradients(mlp_model, tokens, logit_metric(3), steps=4, tol=100)
        saliency(mlp_model, tokens, logit_metric(3))
        gradient_x_input(mlp_model, tokens, logit_metric(3))
        _assert_same(mlp_model, before)

        def bad_metric(logits):
            return logits[:, -1, 3].mean()  # a scalar, not one number per prompt

        with pytest.raises(ValueError, match=r"metric\(logits\) returned \[\]; expected"):
            integrated_gradients(mlp_model, tokens, bad_metric, steps=4)
        with pytest.raises(ValueError, match=r"expected .* shape \[batch\] = \[2\]"):
            saliency(mlp_model, tokens, bad_metric)
        _assert_same(mlp_model, before)
    finally:
        mlp_model.blocks[0].attn.W_Q.requires_grad_(True)


def test_gradient_bad_inputs(mlp_model, tokens):
    m = logit_metric(3)
    with pytest.raises(KeyError, match="hook_embd"):
        integrated_gradients(mlp_model, tokens, m, hook="hook_embd")
    with pytest.raises(ValueError, match="steps=0"):
        integrated_gradients(mlp_model, tokens, m, steps=0)
    with pytest.raises(ValueError, match="method='simpson'"):
        integrated_gradients(mlp_model, tokens, m, method="simpson")
    with pytest.raises(ValueError, match=r"baseline activation has shape \[3\]"):
        integrated_gradients(mlp_model, tokens, m, baseline=torch.zeros(3))
    with pytest.raises(ValueError, match="baseline='mean'"):
        integrated_gradients(mlp_model, tokens, m, baseline="mean")
    with pytest.raises(TypeError, match="integer"):
        saliency(mlp_model, tokens.float(), m)


# ---- SmoothGrad --------------------------------------------------------------------


def test_smoothgrad_without_noise_is_the_gradient(mlp_model, tokens):
    m = logit_metric(3)
    gxi = gradient_x_input(mlp_model, tokens, m)
    sg = smoothgrad(mlp_model, tokens, m, n_samples=3, sigma=0.0)
    # per_dim is the mean gradient; gradient x input's per_dim is gradient * x
    x = mlp_model.run_with_cache(tokens, names="hook_embed")[1]["hook_embed"]
    torch.testing.assert_close(sg.per_dim * x, gxi.per_dim, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sg.attributions, gxi.attributions, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sg.f_input, gxi.f_input)
    assert sg.method == "smoothgrad"


def test_smoothgrad_averages_the_noisy_gradients(mlp_model, tokens):
    """The mean of n one-sample SmoothGrads with the same noise equals one n-sample run: check
    it against a hand loop over noisy inputs, and that seeds are reproducible and the global
    RNG is untouched."""
    m = logit_metric(3)
    state = torch.random.get_rng_state()
    a = smoothgrad(mlp_model, tokens, m, n_samples=4, sigma=0.2, seed=7)
    b = smoothgrad(mlp_model, tokens, m, n_samples=4, sigma=0.2, seed=7)
    c = smoothgrad(mlp_model, tokens, m, n_samples=4, sigma=0.2, seed=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.per_dim, b.per_dim) and not torch.equal(a.per_dim, c.per_dim)
    # by hand: the same noise, one noisy input at a time
    x = mlp_model.run_with_cache(tokens, names="hook_embed")[1]["hook_embed"]
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1)
    noise = torch.randn((4, *x.shape), generator=torch.Generator().manual_seed(7))
    grads = []
    for k in range(4):
        leaf = (x + 0.2 * span * noise[k]).requires_grad_(True)
        out = mlp_model.run_with_hooks(
            tokens, fwd_hooks=[("hook_embed", lambda act, hook, v=leaf: v)]
        )
        (g,) = torch.autograd.grad(m(out).sum(), leaf)
        grads.append(g)
    torch.testing.assert_close(a.per_dim, torch.stack(grads).mean(0), rtol=1e-4, atol=1e-6)


def test_smoothgrad_bad_inputs_and_hygiene(mlp_model, tokens):
    m = logit_metric(3)
    before = _state(mlp_model)
    with pytest.raises(ValueError, match="n_samples=0"):
        smoothgrad(mlp_model, tokens, m, n_samples=0)
    with pytest.raises(ValueError, match="sigma=-0.1"):
        smoothgrad(mlp_model, tokens, m, sigma=-0.1)
    with pytest.raises(KeyError, match="hook_embd"):
        smoothgrad(mlp_model, tokens, m, hook="hook_embd")
    smoothgrad(mlp_model, tokens, m, n_samples=2)
    _assert_same(mlp_model, before)
