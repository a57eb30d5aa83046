"""The sound core (issue 12): no hook input or cached tensor aliases a parameter, one model is
run by one thread at a time, a wrapped train-mode model runs in eval mode and keeps its mode,
and an interrupt inside a hook leaves the model clean."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import torch

import mechscope
from mechscope.protocols import HookedModel, PerHeadWeights

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import hf_tiny  # noqa: E402

ZOO = mechscope.zoo_models()


def _zoo(name):
    model = mechscope.load(name)
    gen = torch.Generator().manual_seed(0)
    return model, torch.randint(0, model.cfg.d_vocab, (1, min(5, model.cfg.n_ctx)), generator=gen)


def _hf(kind):
    model = mechscope.wrap(
        hf_tiny.build_hf(kind), hf_tiny.make_tokenizer(encoder=kind.startswith("bert"))
    )
    return model, torch.tensor([[1, 5, 6, 7, 8, 9]])


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same(model, before):
    after = model.state_dict()
    assert before.keys() == after.keys()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    assert not changed, f"parameters changed: {changed}"


CASES = [pytest.param(("zoo", n), id=n) for n in ZOO] + [
    pytest.param(("hf", k), id=f"hf-{k}") for k in hf_tiny.ALL_KINDS
]


def _build(case):
    kind, name = case
    return _zoo(name) if kind == "zoo" else _hf(name)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("op", ["add_", "mul_"])
def test_in_place_edit_in_every_hook_leaves_the_weights(case, op):
    model, toks = _build(case)
    before = _params(model)
    seen = []

    def edit(act, hook):
        seen.append(hook.name)
        getattr(act, op)(1.5)

    with torch.no_grad():
        model.run_with_hooks(toks, [(lambda n: True, edit)])
    assert set(seen) == set(model.hook_names())
    _assert_same(model, before)


@pytest.mark.parametrize("case", CASES)
def test_in_place_edit_of_every_cached_tensor_leaves_the_weights(case):
    model, toks = _build(case)
    before = _params(model)
    logits0 = model(toks)
    _, cache = model.run_with_cache(toks)
    assert set(cache) == set(model.hook_names())
    for v in cache.values():
        v.add_(1.0)
        v.mul_(3.0)
    _assert_same(model, before)
    assert torch.equal(model(toks), logits0)


def test_pos_embed_hook_is_not_a_view_of_W_pos(tiny):
    got = {}
    tiny.run_with_hooks(
        torch.tensor([[0, 1, 2]]), [("hook_pos_embed", lambda a, h: got.update(a=a))]
    )
    assert got["a"].untyped_storage().data_ptr() != tiny.W_pos.untyped_storage().data_ptr()
    assert torch.equal(got["a"][0], tiny.W_pos[:3])


@pytest.mark.parametrize("case", [CASES[0], pytest.param(("hf", "gpt2"), id="hf-gpt2")])
def test_two_threads_never_share_a_cache(case):
    model, _ = _build(case)
    gen = torch.Generator().manual_seed(1)
    n_pos = min(5, model.cfg.n_ctx)
    hi = min(20, model.cfg.d_vocab)
    inputs = [torch.randint(3, hi, (1, n_pos), generator=gen) for _ in range(2)]
    names = [n for n in model.hook_names() if n.startswith("blocks.0")]
    refs = [model.run_with_cache(t, names) for t in inputs]
    errors = []

    def hammer(i):
        try:
            for _ in range(25):
                logits, cache = model.run_with_cache(inputs[i], names)
                assert torch.equal(logits, refs[i][0])
                for n in names:
                    assert torch.equal(cache[n], refs[i][1][n]), n
                with model.hooks([(names[0], lambda a, h: None)]):
                    assert torch.equal(model(inputs[i]), refs[i][0])
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_wrapped_train_mode_model_runs_in_eval_and_keeps_its_mode():
    hf = hf_tiny.build_hf("gpt2")
    hf.config.resid_pdrop = hf.config.embd_pdrop = hf.config.attn_pdrop = 0.5
    for m in hf.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.5
    hf.train()
    hf.transformer.h[1].eval()  # a mixed mode must come back exactly as it was
    modes = [m.training for m in hf.modules()]
    model = mechscope.wrap(hf, hf_tiny.make_tokenizer())
    toks = torch.tensor([[1, 5, 6, 7, 8]])
    a, b = model(toks), model(toks)
    assert torch.equal(a, b)
    logits, cache = model.run_with_cache(toks, lambda n: "pattern" in n)
    assert torch.equal(logits, a)
    assert torch.equal(model.run_with_hooks(toks, [("hook_embed", lambda x, h: None)]), a)
    assert hf.training is True and [m.training for m in hf.modules()] == modes
    hf_logits = hf.eval()(toks).logits
    torch.testing.assert_close(a, hf_logits)


@pytest.mark.parametrize("which", ["tiny", "hf"])
def test_keyboard_interrupt_in_a_hook_leaves_the_model_clean(tiny, which):
    if which == "tiny":
        model, toks = tiny, torch.tensor([[0, 1, 2]])
    else:
        model, toks = _hf("gpt2")
        model.hf_model.train()
    modes = [m.training for m in model.modules()]
    before = _params(model)

    def interrupt(act, hook):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with model.hooks([("blocks.1.hook_resid_pre", interrupt)]):
            model.run_with_cache(toks, ["blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post"])
    with pytest.raises(KeyboardInterrupt):
        model.run_with_hooks(toks, [("blocks.0.attn.hook_q", interrupt)])
    assert hf_tiny.hook_count(model) == 0
    assert [m.training for m in model.modules()] == modes
    _assert_same(model, before)
    # the lock was released: another thread can run the model
    t = threading.Thread(target=model, args=(toks,))
    t.start()
    t.join(timeout=20)
    assert not t.is_alive()


@pytest.mark.parametrize("which", ["tiny", "hf"])
def test_providers_satisfy_the_protocols(tiny, which):
    model = tiny if which == "tiny" else _hf("gpt2")[0]
    assert isinstance(model, HookedModel) and isinstance(model, PerHeadWeights)
    assert mechscope.HookedModel is HookedModel
