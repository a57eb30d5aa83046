"""A wrapped model leaves every call as it entered: same hooks, weights, attention, mode."""

import functools

import pytest
import torch
from hf_tiny import VOCAB, build_hf, hook_count, make_tokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

import mechscope

torch.set_num_threads(1)


@functools.cache
def _models():
    out = {}
    for kind, impl in [("gpt2", "sdpa"), ("llama", "eager"), ("bert", "sdpa")]:
        hf = build_hf(kind, impl)
        out[kind] = (hf, mechscope.wrap(hf, make_tokenizer(encoder=kind == "bert")))
    return out


class Boom(RuntimeError):
    pass


def _snapshot(hf):
    return (
        hook_count(hf),
        {k: v.clone() for k, v in hf.state_dict().items()},
        hf.config._attn_implementation,
        hf.training,
    )


def _same(hf, snap):
    hooks, state, impl, training = snap
    assert hook_count(hf) == hooks
    assert hf.config._attn_implementation == impl and hf.training == training
    now = hf.state_dict()
    assert now.keys() == state.keys()
    assert all(torch.equal(now[k], v) for k, v in state.items())


SUFFIXES = [
    "hook_q",
    "hook_k",
    "hook_pattern",
    "hook_attn_scores",
    "hook_z",
    "hook_resid_pre",
    "hook_resid_mid",
    "hook_resid_post",
    "hook_attn_out",
    "hook_mlp_out",
    "mlp.hook_post",
    "hook_embed",
    "ln_final.hook_scale",
    "hook_normalized",
]

step = st.tuples(
    st.sampled_from(["cache", "edit", "raise", "raise_in_body", "plain"]),
    st.lists(st.sampled_from(SUFFIXES), min_size=1, max_size=3),
    st.integers(0, 1),  # layer
)


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["gpt2", "llama", "bert"]), steps=st.lists(step, min_size=1, max_size=4)
)
def test_random_call_sequences_leave_the_model_untouched(kind, steps):
    hf, model = _models()[kind]
    snap = _snapshot(hf)
    tokens = torch.arange(4, 11)[None] % VOCAB
    for op, suffixes, layer in steps:
        names = [
            n
            for n in model.hook_names()
            if any(n.endswith(s) for s in suffixes) and (f".{layer}." in n or "blocks" not in n)
        ]
        if not names:
            continue
        with torch.no_grad():
            if op == "cache":
                model.run_with_cache(tokens, names=names)
            elif op == "edit":
                model.run_with_hooks(tokens, [(n, lambda x, hook: x * 0.5) for n in names])
            elif op == "raise":

                def bad(x, hook):
                    raise Boom(hook.name)

                with pytest.raises(Boom):
                    model.run_with_hooks(tokens, [(names[-1], bad)])
            elif op == "raise_in_body":
                with pytest.raises(Boom), model.hooks([(n, lambda x, hook: x) for n in names]):
                    model(tokens)
                    raise Boom("body")
            else:
                model(tokens)
        _same(hf, snap)
        assert all(not p._forward_hooks for p in model._hook_points.values())


def test_a_bad_hook_return_is_reported_and_cleaned_up():
    hf, model = _models()["llama"]
    snap = _snapshot(hf)
    with pytest.raises(ValueError, match="expected a tensor of shape"):
        model.run_with_hooks(
            torch.tensor([[5, 6, 7]]), [("blocks.0.attn.hook_pattern", lambda x, hook: x[0])]
        )
    _same(hf, snap)
