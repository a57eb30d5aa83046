"""The bad-input catalogue: shared models and the hygiene check run after every case.

Each case calls one public function with one bad input and asserts (1) the error type and
(2) that the message names the offending argument; then :func:`check_clean` asserts that the
model is exactly as it came: no hook left installed, every parameter and buffer bit-identical,
the same train/eval mode on every module, the same attention implementation, the same grad
mode. Files: ``test_bad_models.py`` (models, hooks, cache, loaders), ``test_bad_patching.py``
(patching, path patching, attribution patching, ACDC, scrubbing),
``test_bad_intervention.py`` (ablation, steering, DAS, world models),
``test_bad_observation.py`` (attribution, probes, SAEs, lenses, heads, widgets).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))


def snapshot(model) -> dict:
    """Everything a call must leave unchanged."""
    mods = list(model.modules()) if isinstance(model, torch.nn.Module) else []
    inner = getattr(model, "hf_model", None)
    if isinstance(inner, torch.nn.Module):
        mods += list(inner.modules())
    state = {}
    for m in [model, inner]:
        if isinstance(m, torch.nn.Module):
            for k, v in m.state_dict(keep_vars=False).items():
                state[f"{id(m)}.{k}"] = v.detach().clone()
    hooks = sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in mods
    )
    cfg = getattr(inner, "config", None)
    return {
        "state": state,
        "hooks": hooks,
        "training": [m.training for m in mods],
        "attn": getattr(cfg, "_attn_implementation", None),
        "grad": torch.is_grad_enabled(),
        "requires_grad": [p.requires_grad for m in mods for p in m.parameters(recurse=False)],
    }


def check_clean(model, before: dict) -> None:
    after = snapshot(model)
    assert after["hooks"] == before["hooks"], "a hook was left installed"
    assert after["training"] == before["training"], "train/eval mode changed"
    assert after["attn"] == before["attn"], "attention implementation changed"
    assert after["grad"] == before["grad"], "grad mode changed"
    assert after["requires_grad"] == before["requires_grad"], "requires_grad changed"
    assert before["state"].keys() == after["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), f"parameter/buffer {k} changed"


def expect_error(model, fn, exc, names, *args, **kwargs):
    """Call ``fn``; assert it raises ``exc`` whose message contains every string in ``names``
    (the argument's name, and where useful the bad value); then check the model is clean."""
    names = [names] if isinstance(names, str) else list(names)
    before = snapshot(model) if model is not None else None
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    for n in names:
        assert re.search(re.escape(n), msg), f"message does not name {n!r}: {msg}"
    if model is not None:
        check_clean(model, before)
    return msg


@pytest.fixture(scope="session")
def induction_model():
    import mechscope

    return mechscope.load("induction-2l")


@pytest.fixture(scope="session")
def facts_model():
    import mechscope

    return mechscope.load("facts-ioi-2l")


@pytest.fixture(scope="session")
def hf_gpt2():
    """A wrapped tiny random-init GPT-2 (tests/integration/hf_tiny.py), left in train mode on
    purpose: a freshly built HF model is in train mode, and no call may change that."""
    import hf_tiny

    import mechscope

    hf = hf_tiny.build_hf("gpt2").train()
    return mechscope.wrap(hf, hf_tiny.make_tokenizer())


@pytest.fixture
def bad():
    """``bad(model, fn, ExcType, [names...], *args, **kwargs)``: see :func:`expect_error`."""
    return expect_error
