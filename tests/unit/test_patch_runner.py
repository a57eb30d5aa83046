"""The patching fast path: grouping patches into passes, reading the metric's positions,
and starting our Transformer at block L and position S."""

import itertools

import pytest
import torch

from mechscope._patch_runner import (
    PASS_OVERHEAD_ROWS,
    first_difference,
    group_by_start,
    read_positions,
)
from mechscope.metrics import logit_diff
from mechscope.patching import activation_patch
from mechscope.protocols import PrefixReuse


def _cost(groups, n_pos, batch):
    return sum(len(m) * (n_pos - s) * batch + PASS_OVERHEAD_ROWS for s, m in groups)


def _brute_force(starts, n_pos, batch, max_copies):
    order = sorted(starts)
    best = float("inf")
    for cuts in itertools.product([0, 1], repeat=len(order) - 1):
        groups, cur = [], [0]
        for i, c in enumerate(cuts, start=1):
            if c:
                groups.append(cur)
                cur = []
            cur.append(i)
        groups.append(cur)
        if any(len(g) > max_copies for g in groups):
            continue
        best = min(best, _cost([(order[g[0]], g) for g in groups], n_pos, batch))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_group_by_start_is_optimal_and_covers_every_patch(seed):
    gen = torch.Generator().manual_seed(seed)
    n_pos = 40
    starts = torch.randint(0, n_pos, (7,), generator=gen).tolist()
    groups = group_by_start(starts, n_pos, batch=2, max_copies=3)
    members = sorted(i for _, m in groups for i in m)
    assert members == list(range(len(starts)))
    for start, m in groups:
        assert len(m) <= 3
        assert start == min(starts[i] for i in m)
    assert _cost(groups, n_pos, 2) == _brute_force(starts, n_pos, 2, 3)


def test_group_by_start_empty_and_huge():
    assert group_by_start([], 10, 1, 4) == []
    groups = group_by_start(list(range(1000)), 1000, 1, 50)
    assert sorted(i for _, m in groups for i in m) == list(range(1000))
    assert max(len(m) for _, m in groups) <= 50


def test_first_difference():
    a = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4]])
    b = a.clone()
    assert first_difference(a, b) == 4
    b[1, 2] = 9
    assert first_difference(a, b) == 2


def test_read_positions():
    logits = torch.randn(2, 6, 11)
    last = logit_diff(3, 4)
    assert read_positions(last, logits) == [5]
    assert read_positions(logit_diff(3, 4, pos=2), logits) == [2]

    def two(x):
        return x[:, 1, 0] + x[:, -1, 2]

    assert read_positions(two, logits) == [1, 5]
    # Reading every position, or a reduction over positions: None (compute everything).
    assert read_positions(lambda x: x.mean((1, 2)), logits) is None

    # An argmax-based metric is seen reading the last position, or gets everything (None);
    # never a set without it.
    def acc(x):
        return (x[:, -1].argmax(-1) == 3).float()

    assert read_positions(acc, logits) in (None, [5])
    logits[:, -1, 3] = 100.0  # now the metric's value is 1, and both probes change it
    assert read_positions(acc, logits) == [5]

    def strict(x):  # refuses NaN anywhere: every probe fails, so everything counts as read
        assert torch.isfinite(x).all()
        return x[:, -1, 0]

    assert read_positions(strict, logits) is None


def test_forward_from_with_past_equals_full_forward(mlp_model):
    tokens = torch.randint(
        1, mlp_model.cfg.d_vocab, (2, 9), generator=torch.Generator().manual_seed(0)
    )
    names = [
        f"blocks.{la}.{h}"
        for la in range(mlp_model.cfg.n_layers)
        for h in ("hook_resid_pre", "attn.hook_k", "attn.hook_v")
    ]
    with torch.no_grad():
        full, cache = mlp_model.run_with_cache(tokens, names=names)
        for layer in range(mlp_model.cfg.n_layers):
            for start in (0, 3, 8):
                past = [
                    (
                        cache[f"blocks.{la}.attn.hook_k"][:, :start],
                        cache[f"blocks.{la}.attn.hook_v"][:, :start],
                    )
                    for la in range(layer, mlp_model.cfg.n_layers)
                ]
                resid = cache[f"blocks.{layer}.hook_resid_pre"][:, start:]
                out = mlp_model.forward_from(layer, resid, past if start else None)
                torch.testing.assert_close(out, full[:, start:], atol=1e-5, rtol=0)
        kept = mlp_model.forward_from(
            1,
            cache["blocks.1.hook_resid_pre"][:, 4:],
            [
                (cache[f"blocks.{la}.attn.hook_k"][:, :4], cache[f"blocks.{la}.attn.hook_v"][:, :4])
                for la in range(1, mlp_model.cfg.n_layers)
            ],
            pos=[0, 4],
        )
        torch.testing.assert_close(kept, full[:, [4, 8]], atol=1e-5, rtol=0)


def test_prefix_reuse_capability_equals_full_forward(mlp_model):
    # Transformer's PrefixReuse: prefix_state + forward_suffix reproduce the full run from
    # any block and position, copies entering at several blocks share one pass.
    assert isinstance(mlp_model, PrefixReuse)
    tokens = torch.randint(
        1, mlp_model.cfg.d_vocab, (2, 9), generator=torch.Generator().manual_seed(5)
    )
    with torch.no_grad():
        full = mlp_model(tokens)
        logits, resid, kv, cache = mlp_model.prefix_state(tokens, ["blocks.1.hook_mlp_out"])
        assert torch.equal(logits, full) and list(cache) == ["blocks.1.hook_mlp_out"]
        for layer in range(mlp_model.cfg.n_layers):
            for start in (0, 1, 5, 8):
                entries = [(layer, resid[layer][:, start:].repeat(3, 1, 1))]
                out = mlp_model.forward_suffix(entries, start, tokens, kv)
                torch.testing.assert_close(out, full[:, start:].repeat(3, 1, 1), atol=1e-5, rtol=0)
        entries = [(0, resid[0][:, 4:]), (2, resid[2][:, 4:].repeat(2, 1, 1))]
        out = mlp_model.forward_suffix(entries, 4, tokens, kv, pos=[4, 8], trim_last_mlp=True)
        torch.testing.assert_close(out, full[:, [4, 8]].repeat(3, 1, 1), atol=1e-5, rtol=0)
    last = mlp_model.blocks[-1].mlp
    assert not last._forward_pre_hooks and not last._forward_hooks


def test_identical_prompts_need_no_patched_run(mlp_model):
    tokens = torch.randint(
        1, mlp_model.cfg.d_vocab, (1, 8), generator=torch.Generator().manual_seed(1)
    )
    calls = []
    mlp_model.blocks[0].register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    try:
        res = activation_patch(mlp_model, tokens, tokens.clone(), logit_diff(2, 3), "z_by_pos")
    finally:
        mlp_model.blocks[0]._forward_pre_hooks.clear()
    with torch.no_grad():
        value = logit_diff(2, 3)(mlp_model(tokens)).item()
    assert torch.all(res.values == value)
    assert calls == [1, 1]  # the source and the target run, no patched copies


def test_patches_before_the_first_difference_are_not_run(mlp_model):
    gen = torch.Generator().manual_seed(2)
    clean = torch.randint(1, mlp_model.cfg.d_vocab, (1, 8), generator=gen)
    corrupted = clean.clone()
    corrupted[0, 5] = (clean[0, 5] % (mlp_model.cfg.d_vocab - 1)) + 1
    rows = []
    hook = mlp_model.blocks[-1].register_forward_pre_hook(lambda m, a: rows.append(a[0].shape[:2]))
    try:
        res = activation_patch(mlp_model, clean, corrupted, logit_diff(2, 3), "resid_pre")
    finally:
        hook.remove()
    with torch.no_grad():
        corrupted_v = logit_diff(2, 3)(mlp_model(corrupted)).item()
    assert torch.all(res.values[:, :5] == corrupted_v)
    # Patched passes compute positions 5.. only (3 of 8), never the whole prompt.
    assert all(r[1] <= 3 for r in rows[2:]) and len(rows) > 2


def test_forward_from_with_copies_entering_later(mlp_model):
    tokens = torch.randint(
        1, mlp_model.cfg.d_vocab, (2, 7), generator=torch.Generator().manual_seed(4)
    )
    with torch.no_grad():
        full, cache = mlp_model.run_with_cache(tokens, names=lambda n: "resid_pre" in n)
        out = mlp_model.forward_from(
            0,
            cache["blocks.0.hook_resid_pre"],
            enter={1: cache["blocks.1.hook_resid_pre"].repeat(2, 1, 1)},
        )
    torch.testing.assert_close(out, full.repeat(3, 1, 1), atol=1e-5, rtol=0)


def test_last_mlp_runs_on_the_read_position_only(mlp_model):
    clean = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7], [0, 9, 8, 7, 6, 1, 4, 3]])
    corrupted = clean.clone()
    corrupted[:, 2] = torch.tensor([7, 2])
    widths = []
    mlp = mlp_model.blocks[-1].mlp
    # Inside the MLP (its first hook point), after any narrowing.
    hook = mlp.hook_pre.register_forward_pre_hook(lambda m, a: widths.append(a[0].shape[1]))
    try:
        res = activation_patch(mlp_model, clean, corrupted, logit_diff(3, 5), "z")
        full = activation_patch(mlp_model, clean, corrupted, lambda x: x.mean((1, 2)), "z")
    finally:
        hook.remove()
    assert len(mlp._forward_pre_hooks) == 0 and len(mlp._forward_hooks) == 0
    n_pos = clean.shape[1]
    # Two unpatched runs see every position; the patched passes of the last-position metric
    # see one; a metric that reads every position gets every computed row.
    assert widths[:2] == [n_pos, n_pos] and 1 in widths
    assert min(widths[len(widths) // 2 + 1 :]) > 1
    assert res.values.std() > 0 and full.values.std() > 0
