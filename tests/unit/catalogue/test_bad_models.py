"""Bad inputs to models, hooks, caches, loaders and the token coercion: each a clear error,
and the model exactly as it came (the ``bad`` fixture's hygiene check)."""

from __future__ import annotations

import pickle

import pytest
import torch

import mechscope
from mechscope._core import as_tokens
from mechscope.cache import cached_run
from mechscope.models import zoo

MODELS = ["induction_model", "facts_model", "hf_gpt2"]
TWO = ["induction_model", "hf_gpt2"]
TEXT = {"induction_model": "red cat", "facts_model": None, "hf_gpt2": "the cat"}


def _toks(model):
    return torch.tensor([[1, 2, 3, 4]])


def _enter(model, fwd_hooks):
    with model.hooks(fwd_hooks):
        model(_toks(model))


def _raise(exc):
    def hook(act, hook):
        raise exc

    return hook


# ---- token coercion (forward, run_with_cache, as_tokens) --------------------------------

TOKEN_CASES = {
    "empty-str": ("", ValueError, ["tokens", "empty"]),
    "empty-str-list": (["", ""], ValueError, ["tokens", "empty"]),
    "zero-length-ids": (torch.zeros(1, 0, dtype=torch.long), ValueError, ["tokens", "empty"]),
    "empty-list": ([], ValueError, ["tokens", "empty"]),
    "float-ids": (torch.zeros(1, 3), TypeError, ["tokens", "float32"]),
    "bool-tensor": (torch.ones(1, 3, dtype=torch.bool), TypeError, ["tokens", "bool"]),
    "bool-list": ([True, False, True], TypeError, ["tokens", "bools"]),
    "3-d": (torch.zeros(1, 1, 3, dtype=torch.long), ValueError, ["tokens", "[batch, pos]"]),
    "negative-id": (torch.tensor([[1, -1, 2]]), ValueError, ["tokens", "-1", "d_vocab"]),
    "id-past-vocab": (torch.tensor([[1, 10_000]]), ValueError, ["tokens", "10000", "d_vocab"]),
}


@pytest.mark.parametrize("case", list(TOKEN_CASES))
@pytest.mark.parametrize("which", MODELS)
def test_bad_tokens_to_forward(bad, request, which, case):
    model = request.getfixturevalue(which)
    toks, exc, names = TOKEN_CASES[case]
    bad(model, model, exc, names, toks)


@pytest.mark.parametrize("case", ["empty-str", "zero-length-ids", "float-ids", "negative-id"])
@pytest.mark.parametrize("which", TWO)
def test_bad_tokens_to_run_with_cache(bad, request, which, case):
    model = request.getfixturevalue(which)
    toks, exc, names = TOKEN_CASES[case]
    bad(model, model.run_with_cache, exc, names, toks)


@pytest.mark.parametrize("which", TWO)
def test_too_long_names_n_ctx(bad, request, which):
    model = request.getfixturevalue(which)
    toks = torch.ones(1, model.cfg.n_ctx + 1, dtype=torch.long)
    bad(model, model, ValueError, ["tokens", "n_ctx", str(model.cfg.n_ctx)], toks)


@pytest.mark.parametrize("which", TWO)
def test_as_tokens_names_the_callers_argument(bad, request, which):
    model = request.getfixturevalue(which)
    bad(model, as_tokens, ValueError, ["clean", "empty"], model, "  ", name="clean")
    bad(model, as_tokens, TypeError, ["corrupted", "float"], model, [[1.5]], name="corrupted")


def test_a_dict_is_not_tokens_for_our_transformer(bad, induction_model):
    bad(induction_model, induction_model, TypeError, ["tokens", "dict"], {"input_ids": [[1]]})


# ---- to_str_tokens -------------------------------------------------------------------

STR_CASES = {
    "negative": (torch.tensor([1, -2]), ValueError, ["tokens", "-2"]),
    "past-vocab": (torch.tensor([1, 5000]), ValueError, ["tokens", "5000"]),
    "batch": (torch.tensor([[1, 2], [3, 4]]), ValueError, ["to_str_tokens", "batch of 2"]),
    "bools": ([True, False], TypeError, ["tokens", "bool"]),
    "floats": (torch.tensor([1.0, 2.0]), TypeError, ["tokens", "float"]),
}


@pytest.mark.parametrize("case", list(STR_CASES))
@pytest.mark.parametrize("which", TWO)
def test_bad_ids_to_str_tokens(bad, request, which, case):
    model = request.getfixturevalue(which)
    toks, exc, names = STR_CASES[case]
    bad(model, model.to_str_tokens, exc, names, toks)


# ---- hooks ---------------------------------------------------------------------------

HOOK_CASES = {
    "predicate-matches-nothing": (
        lambda m: _enter(m, [(lambda n: False, lambda a, h: None)]),
        ValueError,
        ["fwd_hooks", "matches no hook point", "hook_embed"],
    ),
    "unknown-name": (
        lambda m: _enter(m, [("blocks.0.attn.hook_patern", lambda a, h: None)]),
        KeyError,
        ["fwd_hooks", "blocks.0.attn.hook_pattern"],
    ),
    "run_with_hooks-nothing": (
        lambda m: m.run_with_hooks(_toks(m), [(lambda n: "nope" in n, lambda a, h: None)]),
        ValueError,
        ["fwd_hooks", "matches no hook point"],
    ),
    "one-pair-not-a-list": (
        lambda m: _enter(m, ("hook_embed", lambda a, h: None)),
        TypeError,
        ["fwd_hooks", "list of (name or predicate, fn) pairs"],
    ),
    "fn-not-callable": (
        lambda m: _enter(m, [("hook_embed", "zero")]),
        TypeError,
        ["fwd_hooks", "hook_embed", "str"],
    ),
    "returns-other-dtype": (
        lambda m: _enter(m, [("blocks.0.hook_resid_post", lambda a, h: a.double())]),
        ValueError,
        ["blocks.0.hook_resid_post", "dtype torch.float64", "torch.float32"],
    ),
    "returns-other-shape": (
        lambda m: _enter(m, [("blocks.1.hook_attn_out", lambda a, h: a[:, :1])]),
        ValueError,
        ["blocks.1.hook_attn_out", "expected a tensor of shape (1, 4,"],
    ),
    "returns-non-tensor": (
        lambda m: _enter(m, [("blocks.0.attn.hook_pattern", lambda a, h: 0.0)]),
        ValueError,
        ["blocks.0.attn.hook_pattern", "float", "or None"],
    ),
    "hook-raises": (
        lambda m: _enter(m, [("blocks.0.attn.hook_q", _raise(RuntimeError("boom in hook")))]),
        RuntimeError,
        ["boom in hook"],
    ),
}


@pytest.mark.parametrize("case", list(HOOK_CASES))
@pytest.mark.parametrize("which", TWO)
def test_bad_hooks(bad, request, which, case):
    model = request.getfixturevalue(which)
    fn, exc, names = HOOK_CASES[case]
    bad(model, fn, exc, names, model)


@pytest.mark.parametrize("where", ["hooks", "run_with_cache", "run_with_hooks"])
@pytest.mark.parametrize("which", MODELS)
def test_keyboard_interrupt_in_a_hook(bad, request, which, where):
    model = request.getfixturevalue(which)
    stop = [("blocks.0.hook_resid_post", _raise(KeyboardInterrupt("stop in hook")))]
    fns = {
        "hooks": lambda: _enter(model, stop),
        "run_with_hooks": lambda: model.run_with_hooks(_toks(model), stop),
        "run_with_cache": lambda: _cache_under(model, stop),
    }
    bad(model, fns[where], KeyboardInterrupt, ["stop in hook"])


def _cache_under(model, fwd_hooks):
    with model.hooks(fwd_hooks):
        model.run_with_cache(_toks(model), lambda n: "pattern" in n)


# ---- caching -------------------------------------------------------------------------

CACHE_CASES = {
    "names-predicate-nothing": (dict(names=lambda n: False), ValueError, ["names", "no hook"]),
    "names-empty-list": (dict(names=[]), ValueError, ["names", "matches no hook point"]),
    "names-unknown": (dict(names=["blocks.0.hook_resid_prex"]), KeyError, ["names", "resid_pre"]),
    "names-not-str": (dict(names=[3]), TypeError, ["names", "predicate"]),
    "dtype-int64": (dict(dtype=torch.int64), TypeError, ["dtype", "int64", "floating"]),
    "dtype-bool": (dict(dtype=torch.bool), TypeError, ["dtype", "bool"]),
    "dtype-str": (dict(dtype="float16"), TypeError, ["dtype", "float16"]),
    "remove-batch-dim-batch-2": (
        dict(tokens=torch.ones(2, 3, dtype=torch.long), remove_batch_dim=True),
        ValueError,
        ["remove_batch_dim", "batch size 1"],
    ),
    "remove-batch-dim-not-bool": (dict(remove_batch_dim="yes"), TypeError, ["remove_batch_dim"]),
}


@pytest.mark.parametrize("case", list(CACHE_CASES))
@pytest.mark.parametrize("which", TWO)
def test_bad_run_with_cache(bad, request, which, case):
    model = request.getfixturevalue(which)
    kw, exc, names = CACHE_CASES[case]
    kw = dict(kw)
    toks = kw.pop("tokens", _toks(model))
    args = (kw.pop("names"),) if "names" in kw else ()  # positional: `bad` has its own `names`
    bad(model, model.run_with_cache, exc, names, toks, *args, **kw)


@pytest.mark.parametrize("which", TWO)
def test_cached_run_names_matching_nothing(bad, request, which):
    model = request.getfixturevalue(which)
    bad(model, cached_run, ValueError, ["names"], model, _toks(model), lambda n: n == "x")


@pytest.mark.parametrize(
    "key, names",
    [
        ("blocks.0.hook_resid_prex", ["Unknown cached activation", "blocks.0.hook_resid_pre"]),
        ("blocks.0.hook_attn_out", ["was not cached", "names="]),
        (("patern", 0), ["cache shorthand", "pattern"]),
        (("resid_pre", True), ["layer", "True"]),
    ],
    ids=["unknown", "not-cached", "bad-shorthand", "bool-layer"],
)
def test_bad_cache_lookup(bad, induction_model, key, names):
    _, cache = induction_model.run_with_cache(_toks(induction_model), "blocks.0.hook_resid_pre")
    exc = TypeError if key == ("resid_pre", True) else KeyError
    bad(induction_model, cache.__getitem__, exc, names, key)


# ---- loaders and wrap ----------------------------------------------------------------


def test_load_empty_name(bad):
    bad(None, mechscope.load, ValueError, ["name", "empty", "induction-2l"], "")


def test_load_not_a_name(bad):
    bad(None, mechscope.load, TypeError, ["str", "int"], 123)


def test_load_empty_directory(bad, tmp_path):
    bad(None, mechscope.load, ValueError, ["config.json", "save_pretrained"], str(tmp_path))


def test_load_missing_path(bad, tmp_path):
    missing = str(tmp_path / "nope")
    bad(None, mechscope.load, ValueError, ["no directory", "save_pretrained"], missing)


def test_load_unknown_name_offline(bad, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bad(
        None,
        mechscope.load,
        ValueError,
        ["no-such-model", "not a zoo model", "wrap"],
        "no-such-model",
    )


def test_load_pickle_named_safetensors(bad, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    (tmp_path / "model.safetensors").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    bad(
        None,
        mechscope.load,
        ValueError,
        ["model.safetensors", "not a safetensors", "pickle"],
        str(tmp_path),
    )


def test_load_zoo_with_hf_kwargs(bad):
    bad(None, mechscope.load, TypeError, ["induction-2l", "revision"], "induction-2l", revision="x")


@pytest.mark.parametrize(
    "step, exc, names",
    [
        (True, TypeError, ["step", "True"]),
        (1.5, TypeError, ["step", "1.5"]),
        (123_456_789, ValueError, ["123456789", "Available steps"]),
    ],
    ids=["bool", "float", "missing"],
)
def test_load_checkpoint_bad_step(bad, step, exc, names):
    bad(None, zoo.load_checkpoint, exc, names, "induction-2l", step)


def test_load_checkpoint_unknown_model(bad):
    bad(None, zoo.load_checkpoint, ValueError, ["no-such", "Available offline"], "no-such", 1)


def test_wrap_not_a_model(bad):
    bad(None, mechscope.wrap, TypeError, ["PreTrainedModel", "str", "mechscope.load"], "gpt2")


def test_wrap_dict_as_tokenizer(bad, hf_gpt2):
    bad(hf_gpt2, mechscope.wrap, TypeError, ["tokenizer"], hf_gpt2.hf_model, {"a": 1})
