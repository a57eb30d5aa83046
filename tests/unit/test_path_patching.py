"""Path patching: a sender head's effect along chosen paths only (Wang et al. 2022)."""

import pytest
import torch

from mechscope.heads import head_scores
from mechscope.metrics import logit_diff, normalized
from mechscope.patching import activation_patch
from mechscope.path_patching import path_patch, path_patch_all


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def naive_path_patch(model, clean, corrupted, metric, sender, receivers, direction):
    """Reference: one sender, one prompt set, plain hooks, three steps written out."""
    src_t, tgt_t = (clean, corrupted) if direction == "denoising" else (corrupted, clean)
    z_names = [f"blocks.{la}.attn.hook_z" for la in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, src = model.run_with_cache(src_t, names=z_names)
        _, tgt = model.run_with_cache(tgt_t, names=z_names)
    layer, head = sender
    seen = {}

    def freeze(act, hook):
        out = tgt[hook.name].clone()
        if hook.name == z_names[layer]:
            out[:, :, head] = src[hook.name][:, :, head]
        return out

    def record(act, hook):
        seen[hook.name] = act.clone()

    names = sorted({n for n, _ in receivers})
    with torch.no_grad():
        with model.hooks([(n, record) for n in names] + [(z, freeze) for z in z_names]):
            model(tgt_t)

    def put(act, hook):
        out = act.clone()
        for name, h in receivers:
            if name != hook.name:
                continue
            if h is None:
                out = seen[name].clone()
            elif "pattern" in name or "scores" in name:
                out[:, h] = seen[name][:, h]
            else:
                out[:, :, h] = seen[name][:, :, h]
        return out

    with torch.no_grad(), model.hooks([(n, put) for n in names]):
        return metric(model(tgt_t)).mean().item()


CLEAN = torch.tensor([[0, 1, 2, 3, 4, 5, 1, 2], [0, 9, 8, 7, 6, 5, 4, 3]])
CORRUPTED = torch.tensor([[0, 1, 7, 3, 4, 5, 6, 2], [0, 9, 2, 7, 6, 1, 4, 3]])

RECEIVER_SETS = {
    "keys_of_one_head": [("blocks.2.attn.hook_k", 1)],
    "ln_final": [("ln_final.hook_normalized", None)],
    "mixed": [
        ("blocks.1.attn.hook_q", 0),
        ("blocks.2.attn.hook_v", None),
        ("blocks.2.attn.hook_z", 1),
    ],
    "pattern": [("blocks.2.attn.hook_pattern", 0), ("blocks.1.hook_mlp_out", None)],
}


@pytest.mark.parametrize(
    "which, direction",
    [(w, "noising") for w in RECEIVER_SETS] + [("mixed", "denoising")],
)
def test_sweep_equals_naive_reference(mlp_model, which, direction):
    receivers = RECEIVER_SETS[which]
    metric = logit_diff([3, 4], [5, 6])
    arg = [n if h is None else (n, h) for n, h in receivers]
    got = path_patch_all(
        mlp_model, CLEAN, CORRUPTED, metric, hooks=arg, direction=direction, batch_size=6
    )
    order = mlp_model.hook_names()
    want = torch.full((3, 2), got.clean_value if direction == "noising" else got.corrupted_value)
    for layer in range(3):
        if all(order.index(n) <= order.index(f"blocks.{layer}.attn.hook_z") for n, _ in receivers):
            continue  # no path from this sender: the target metric
        for head in range(2):
            want[layer, head] = naive_path_patch(
                mlp_model, CLEAN, CORRUPTED, metric, (layer, head), receivers, direction
            )
    torch.testing.assert_close(got.values, want, atol=1e-5, rtol=0)
    assert got.values.std() > 1e-3  # the paths do something
    assert got.dims == ("layer", "head") and got.row_labels == ["L0", "L1", "L2"]
    assert got.col_labels == ["H0", "H1"] and got.site.startswith("path z -> ")
    one = path_patch(
        mlp_model, CLEAN, CORRUPTED, metric, sender=(0, 1), hooks=arg, direction=direction
    )
    assert one == pytest.approx(float(want[0, 1]), abs=1e-5)
    assert hook_count(mlp_model) == 0


def test_next_residual_receiver_equals_activation_patching(mlp_model):
    # Receiver = the whole residual stream entering layer 1: every path from a layer-0
    # sender goes through it, so path patching equals activation patching of its z.
    metric = logit_diff([3, 4], [5, 6])
    got = path_patch_all(
        mlp_model, CLEAN, CORRUPTED, metric, hooks=["blocks.1.hook_resid_pre"], direction="noising"
    )
    exact = activation_patch(mlp_model, CLEAN, CORRUPTED, metric, "z", direction="noising")
    torch.testing.assert_close(got.values[0], exact.values[0], atol=1e-5, rtol=0)


def test_previous_token_head_composes_with_induction_keys(induction):
    scores = head_scores(induction)
    prev = int(scores.previous_token[0].argmax())
    ind = int(scores.induction[1].argmax())
    gen = torch.Generator().manual_seed(0)
    batch, period = 8, 10
    seq = torch.randint(1, induction.cfg.d_vocab, (batch, period), generator=gen)
    clean = torch.cat([torch.zeros(batch, 1, dtype=torch.long), seq, seq], dim=1)[:, :-1]
    corrupted = clean.clone()
    corrupted[:, 1 : period + 1] = torch.randint(
        1, induction.cfg.d_vocab, (batch, period), generator=gen
    )
    base = logit_diff(seq[:, -1], corrupted[:, period])
    with torch.no_grad():
        metric = normalized(base, base(induction(clean)), base(induction(corrupted)))

    def effect(hook):  # noising: 1 = clean behaviour kept, 0 = corrupted behaviour
        return 1 - path_patch(
            induction,
            clean,
            corrupted,
            metric,
            sender=(0, prev),
            hooks=[(hook, ind)],
            direction="noising",
        )

    # Measured: keys 0.62 (K-composition), queries 0.00, values -0.01.
    assert effect("blocks.1.attn.hook_k") > 0.4
    assert abs(effect("blocks.1.attn.hook_q")) < 0.05
    assert abs(effect("blocks.1.attn.hook_v")) < 0.05
    sweep = path_patch_all(
        induction,
        clean,
        corrupted,
        metric,
        hooks=[("blocks.1.attn.hook_k", ind)],
        direction="noising",
    )
    drop = sweep.clean_value - sweep.values
    assert int(drop.flatten().argmax()) == prev  # the previous-token head carries the most
    torch.testing.assert_close(sweep.values[1], torch.full((4,), sweep.clean_value))


def test_bad_receivers_and_senders(mlp_model):
    metric = logit_diff(3, 5)
    with pytest.raises(ValueError, match="come before the sender"):
        path_patch(
            mlp_model, CLEAN, CORRUPTED, metric, sender=(1, 0), hooks=["blocks.1.attn.hook_k"]
        )
    with pytest.raises(ValueError, match="no head"):
        path_patch(
            mlp_model,
            CLEAN,
            CORRUPTED,
            metric,
            sender=(0, 0),
            hooks=[("blocks.1.hook_resid_pre", 0)],
        )
    with pytest.raises(KeyError, match="blocks.1.attn.hook_k"):
        path_patch(
            mlp_model, CLEAN, CORRUPTED, metric, sender=(0, 0), hooks=["blocks.1.attn.hook_kk"]
        )
    with pytest.raises(ValueError, match="out of range"):
        path_patch(
            mlp_model, CLEAN, CORRUPTED, metric, sender=(0, 2), hooks=["ln_final.hook_normalized"]
        )
    with pytest.raises(ValueError, match="out of range"):
        path_patch(
            mlp_model, CLEAN, CORRUPTED, metric, sender=(0, 0), hooks=[("blocks.1.attn.hook_k", 5)]
        )
    with pytest.raises(ValueError, match="same shape"):
        path_patch(
            mlp_model,
            CLEAN,
            CORRUPTED[:, :5],
            metric,
            sender=(0, 0),
            hooks=["ln_final.hook_normalized"],
        )
    with pytest.raises(ValueError, match="direction"):
        path_patch_all(
            mlp_model, CLEAN, CORRUPTED, metric, hooks=["ln_final.hook_normalized"], direction="x"
        )
    assert hook_count(mlp_model) == 0


def test_model_left_unmodified_when_metric_raises(mlp_model):
    before = {k: v.clone() for k, v in mlp_model.state_dict().items()}
    calls = []

    def flaky(logits):
        calls.append(1)
        if len(calls) > 2:  # past the baselines, inside the patched runs
            raise RuntimeError("metric failed")
        return logits[:, -1, 3]

    with pytest.raises(RuntimeError, match="metric failed"):
        path_patch_all(mlp_model, CLEAN, CORRUPTED, flaky, hooks=["ln_final.hook_normalized"])
    assert hook_count(mlp_model) == 0 and not mlp_model.training
    for k, v in mlp_model.state_dict().items():
        assert torch.equal(v, before[k]), k
