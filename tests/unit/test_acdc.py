"""ACDC-style greedy discovery: right kept set on a constructed model; finds induction-2l's circuit."""

import pytest
import torch

import mechscope
from mechscope.acdc import acdc
from mechscope.heads import best_head
from mechscope.metrics import logit_diff
from mechscope.models import Transformer, TransformerConfig
from mechscope.toy.induction import repeated_random_tokens


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.fixture
def dead_head_model():
    """A random 2-layer model in which heads L0H1, L1H0 and L1H2 write nothing (W_O = 0)."""
    cfg = TransformerConfig(
        n_layers=2, d_model=32, n_heads=3, d_head=8, d_vocab=20, n_ctx=16, init_std=0.3, seed=3
    )
    model = Transformer(cfg).eval()
    with torch.no_grad():
        for la, h in [(0, 1), (1, 0), (1, 2)]:
            model.blocks[la].attn.W_O[h] = 0.0
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 20, (4, 10), generator=gen)
    corrupted = torch.randint(0, 20, (4, 10), generator=gen)
    return model, clean, corrupted


def test_constructed_case_keeps_exactly_the_live_heads(dead_head_model):
    model, clean, corrupted = dead_head_model
    result = acdc(model, clean, corrupted, tau=1e-9)
    assert result.removed == [(0, 1), (1, 0), (1, 2)]
    assert result.kept == [(0, 0), (0, 2), (1, 1)]
    assert result.metric_full == 0.0 and result.metric_kept == pytest.approx(0.0, abs=1e-12)
    assert result.metric_empty > 0 and result.recovered == pytest.approx(1.0)
    # Visited in reverse topological order: layer 1 before layer 0.
    assert [s["head"] for s in result.history] == [(1, 0), (1, 1), (1, 2), (0, 0), (0, 1), (0, 2)]
    assert result.mask().tolist() == [[True, False, True], [False, True, False]]
    assert hook_count(model) == 0
    widget = result.to_widget()  # each head's delta, [layer, head]
    assert widget.n_rows == 2 and widget.n_cols == 3


def test_tau_extremes_and_callable_metric(dead_head_model):
    model, clean, corrupted = dead_head_model
    everything = acdc(model, clean, corrupted, tau=float("inf"))
    assert everything.kept == [] and everything.metric_kept == pytest.approx(
        everything.metric_empty
    )
    metric = logit_diff(clean[:, -1], corrupted[:, -1])
    result = acdc(model, clean, corrupted, metric=metric, tau=1e-9)
    assert {(0, 1), (1, 0), (1, 2)} <= set(result.removed)
    with pytest.raises(ValueError, match="metric"):
        acdc(model, clean, corrupted, metric="l2")


def test_metric_kept_matches_a_fresh_patched_run(dead_head_model):
    model, clean, corrupted = dead_head_model
    result = acdc(model, clean, corrupted, tau=0.05)
    names = [f"blocks.{la}.attn.hook_z" for la in range(2)]
    with torch.no_grad():
        full = model(clean)
        _, cache = model.run_with_cache(corrupted, names=names)

        def fn(act, hook):
            act = act.clone()
            la = names.index(hook.name)
            for rl, h in result.removed:
                if rl == la:
                    act[:, :, h] = cache[hook.name][:, :, h]
            return act

        with model.hooks([(n, fn) for n in names]):
            logits = model(clean)
    p, q = full.log_softmax(-1).double(), logits.log_softmax(-1).double()
    kl = (p.exp() * (p - q)).sum(-1).mean()
    assert result.metric_kept == pytest.approx(float(kl), rel=1e-6, abs=1e-9)


def test_induction_circuit_found():
    model = mechscope.load("induction-2l")
    clean = repeated_random_tokens(16, 20, model.cfg.d_vocab, seed=1)
    corrupted = repeated_random_tokens(16, 20, model.cfg.d_vocab, seed=2)
    scores = mechscope.head_scores(model)
    prev = best_head(scores.previous_token)[:2]
    ind = best_head(scores.induction)[:2]
    result = acdc(model, clean, corrupted, tau=0.3, pos=slice(21, None))
    assert prev in result.kept and ind in result.kept
    assert len(result.kept) < model.cfg.n_layers * model.cfg.n_heads
    assert result.recovered > 0.9
