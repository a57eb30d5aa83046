"""mechscope.edge_attribution: each EAP score is the derivative of patching one edge (checked
by finite differences of hand-made edge patches), EAP-IG approaches exact edge patching where
EAP cannot, the model is left as it came, and bad arguments are named."""

from __future__ import annotations

import pytest
import torch

from mechscope import Transformer
from mechscope.edge_attribution import edge_attribution_patch
from mechscope.ground_truth import frac_prevs, induction
from mechscope.metrics import normalized
from mechscope.models.transformer import TransformerConfig
from mechscope.path_patching import path_patch


def _model(d_mlp=16):
    cfg = TransformerConfig(n_layers=3, d_model=12, n_heads=2, d_head=4, d_vocab=11, n_ctx=6,
                            d_mlp=d_mlp, init_std=0.4, seed=3)  # fmt: skip
    return Transformer(cfg).double()


def _data():
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(11, (3, 6), generator=gen)
    corrupted = torch.randint(11, (3, 6), generator=gen)

    def metric(logits):  # nonlinear in everything: a log-probability
        return logits[:, -1].log_softmax(-1)[:, 2] + logits[:, -2].log_softmax(-1)[:, 5]

    return clean, corrupted, metric


def _z(model, tokens):
    names = [f"blocks.{la}.attn.hook_z" for la in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens, names=names)
    return [cache[n] for n in names]


def _receiver(model, label):
    """``"L1H0.k"`` -> (hook name, head); ``"logits"`` -> (final resid hook, None)."""
    if label == "logits":
        return f"blocks.{model.cfg.n_layers - 1}.hook_resid_post", None
    head, c = label.split(".")  # "L1H0", "k"
    la, h = head[1:].split("H")
    return f"blocks.{int(la)}.attn.hook_{c}", int(h)


def _direct_patch(model, corrupted, metric, label, delta):
    """Metric when ``delta`` (the sender's output difference) is added into ONLY the
    receiver's input: its q / k / v recomputed from ``resid_pre + delta`` through ln1 and
    W_[qkv][head], or ``delta`` added to the final residual stream."""
    hook, head = _receiver(model, label)
    if head is None:
        fwd = [(hook, lambda act, hook: act + delta)]
    else:
        layer = int(hook.split(".")[1])
        block, c = model.blocks[layer], hook[-1]
        W = getattr(block.attn, f"W_{c.upper()}")[head]  # [d_model, d_head]
        b = getattr(block.attn, f"b_{c.upper()}")[head]
        seen = {}

        def grab(act, hook):
            seen["resid"] = act

        def replace(act, hook):
            act = act.clone()
            act[:, :, head] = block.ln1(seen["resid"] + delta) @ W + b
            return act

        fwd = [(f"blocks.{layer}.hook_resid_pre", grab), (hook, replace)]
    with torch.no_grad(), model.hooks(fwd):
        return float(metric(model(corrupted)).mean())


def _fold_patch(model, corrupted, metric, sender, label, dz):
    """Path patching with the sender's z moved by ``dz``: every other head's z frozen at its
    corrupted value, MLPs recompute; the receiver's input is recorded and written into an
    otherwise normal corrupted run."""
    la, hs = sender
    frozen = _z(model, corrupted)
    hook, head = _receiver(model, label)
    rec = {}

    def freeze(layer):
        def fn(z, hook):
            z = frozen[layer].clone()
            if layer == la:
                z[:, :, hs] += dz
            return z

        return fn

    def record(act, hook):
        rec["x"] = act.clone()

    fwd = [(f"blocks.{i}.attn.hook_z", freeze(i)) for i in range(model.cfg.n_layers)]
    with torch.no_grad(), model.hooks([*fwd, (hook, record)]):
        model(corrupted)

    def write(act, hook):
        if head is None:
            return rec["x"]
        act = act.clone()
        act[:, :, head] = rec["x"][:, :, head]
        return act

    with torch.no_grad(), model.hooks([(hook, write)]):
        return float(metric(model(corrupted)).mean())


@pytest.mark.parametrize("mlps", ["direct", "fold"])
def test_eap_equals_finite_difference_of_each_edge(mlps):
    model = _model()
    clean, corrupted, metric = _data()
    res = edge_attribution_patch(model, clean, corrupted, metric, mlps=mlps)
    assert len(res.edges) == 2 * (4 * 3 + 1) + 2 * (2 * 3 + 1) + 2 * 1
    z_clean, z_corr = _z(model, clean), _z(model, corrupted)
    eps, worst, scale = 1e-4, 0.0, 0.0
    for (sender, label), score in res.as_dict().items():
        la, hs = (int(x) for x in sender[1:].split("H"))
        dz = z_clean[la][:, :, hs] - z_corr[la][:, :, hs]
        if mlps == "direct":
            delta = dz @ model.blocks[la].attn.W_O[hs].detach()
            up, down = (
                _direct_patch(model, corrupted, metric, label, e * delta) for e in (eps, -eps)
            )
        else:
            up, down = (
                _fold_patch(model, corrupted, metric, (la, hs), label, e * dz) for e in (eps, -eps)
            )
        fd = (up - down) / (2 * eps)
        worst, scale = max(worst, abs(fd - score)), max(scale, abs(fd))
    assert scale > 0.05  # the edges do carry signal
    assert worst < 1e-4


def test_fold_and_direct_agree_without_mlps_and_differ_with_them():
    clean, corrupted, metric = _data()
    attn_only = _model(d_mlp=None)
    a = edge_attribution_patch(attn_only, clean, corrupted, metric, mlps="fold")
    b = edge_attribution_patch(attn_only, clean, corrupted, metric, mlps="direct")
    assert torch.allclose(a.values, b.values, atol=1e-12)
    model = _model()
    a = edge_attribution_patch(model, clean, corrupted, metric, mlps="fold")
    b = edge_attribution_patch(model, clean, corrupted, metric, mlps="direct")
    assert (a.values - b.values).abs().max() > 1e-3


def test_noising_is_denoising_with_the_runs_swapped():
    model = _model()
    clean, corrupted, metric = _data()
    a = edge_attribution_patch(model, clean, corrupted, metric, direction="noising")
    b = edge_attribution_patch(model, corrupted, clean, metric)
    assert torch.allclose(a.values, b.values, atol=1e-12)
    assert (a.clean_value, a.corrupted_value) == (b.corrupted_value, b.clean_value)
    top = a.top(3)
    assert [abs(s) for _, s in top] == sorted((abs(s) for _, s in top), reverse=True)
    assert abs(top[0][1]) == float(a.values.abs().max())


def _normalized(cp, n):
    clean, corrupted = cp.sample(n, seed=0), cp.sample(n, seed=1)
    raw = cp.metric(clean)
    with torch.no_grad():
        metric = normalized(raw, raw(cp.model(clean)).mean(), raw(cp.model(corrupted)).mean())
    return clean, corrupted, metric


def test_eap_ig_approaches_exact_edge_patching_where_eap_fails():
    # Induction's K-composition edge acts through a softmax saturated at scores ~1000: its
    # gradient at the corrupted run is ~0, while patching the edge moves the metric by ~0.2.
    # EAP-IG sees it once its steps hit the sliver of the path where the attention flips;
    # its limit is not the edge's exact effect (it integrates along all inputs at once).
    cp = induction()
    clean, corrupted, metric = _normalized(cp, 16)
    prev, ind = cp.place["prev_token"], cp.place["induction"]
    edge = (f"L{prev[0]}H{prev[1]}", f"L{ind[0]}H{ind[1]}.k")
    exact = path_patch(cp.model, clean, corrupted, metric, sender=prev,
                       hooks=[(f"blocks.{ind[0]}.attn.hook_k", ind[1])])  # fmt: skip
    with torch.no_grad():
        exact -= float(metric(cp.model(corrupted)).mean())
    eap = edge_attribution_patch(cp.model, clean, corrupted, metric).as_dict()[edge]
    ig = {s: edge_attribution_patch(cp.model, clean, corrupted, metric, method="eap-ig",
                                    steps=s).as_dict()[edge] for s in (5, 25, 100)}  # fmt: skip
    assert exact > 0.15 and abs(eap) < 1e-6 and abs(ig[5]) < 1e-3
    for s in (25, 100):
        assert exact / 1.5 < ig[s] < 1.5 * exact
    # frac_prevs: a squared-error metric, quadratic in the head's output. EAP doubles the
    # effect (2.0 for 1.0); EAP-IG's right Riemann sum is off by 1 / steps.
    cp = frac_prevs()
    clean, corrupted, metric = _normalized(cp, 16)
    edge = (f"L{cp.place['frac_prevs'][0]}H{cp.place['frac_prevs'][1]}", "logits")
    got = {s: edge_attribution_patch(cp.model, clean, corrupted, metric, method="eap-ig",
                                     steps=s).as_dict()[edge] for s in (4, 40)}  # fmt: skip
    eap = edge_attribution_patch(cp.model, clean, corrupted, metric).as_dict()[edge]
    assert abs(eap - 2.0) < 1e-3
    assert abs(got[4] - 0.75) < 1e-3 and abs(got[40] - 0.975) < 1e-3


def _snapshot(model):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [p.requires_grad for p in model.parameters()],
        model.training,
    )


def _same(model, snap):
    state, flags, training = snap
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert model.training == training
    assert not any(hp._forward_hooks for hp in model._hook_points.values())


def test_model_unchanged_even_on_error():
    model = _model()
    model.blocks[0].attn.W_Q.requires_grad_(False)  # a user's partly frozen model
    clean, corrupted, metric = _data()
    snap = _snapshot(model)
    edge_attribution_patch(model, clean, corrupted, metric, method="eap-ig", steps=2)
    _same(model, snap)
    calls = []

    def fails_in_backward_pass(logits):
        calls.append(1)
        if len(calls) == 3:  # after the two no-grad runs, inside the gradient pass
            raise RuntimeError("metric failed")
        return metric(logits)

    with pytest.raises(RuntimeError, match="metric failed"):
        edge_attribution_patch(model, clean, corrupted, fails_in_backward_pass)
    _same(model, snap)


def test_bad_arguments_are_named():
    model = _model()
    clean, corrupted, metric = _data()
    with pytest.raises(ValueError, match="method='acdc'"):
        edge_attribution_patch(model, clean, corrupted, metric, method="acdc")
    with pytest.raises(ValueError, match="steps=0"):
        edge_attribution_patch(model, clean, corrupted, metric, method="eap-ig", steps=0)
    with pytest.raises(ValueError, match="steps=3 with method='eap'"):
        edge_attribution_patch(model, clean, corrupted, metric, steps=3)
    with pytest.raises(ValueError, match="mlps='none'"):
        edge_attribution_patch(model, clean, corrupted, metric, mlps="none")
    with pytest.raises(ValueError, match="direction='up'"):
        edge_attribution_patch(model, clean, corrupted, metric, direction="up")
    with pytest.raises(ValueError, match="same shape"):
        edge_attribution_patch(model, clean, corrupted[:, :4], metric)
    with pytest.raises(TypeError, match="supports mechscope.Transformer.*got Linear"):
        edge_attribution_patch(torch.nn.Linear(2, 2), clean, corrupted, metric)
    with pytest.raises(ValueError, match="k=0"):
        edge_attribution_patch(model, clean, corrupted, metric).top(0)
