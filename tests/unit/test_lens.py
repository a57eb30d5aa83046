"""Logit lens and tuned lens: exactness of the last row, KL ordering, save/load, hygiene."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import mechscope
from mechscope.lens import (
    LensResult,
    TunedLens,
    compare_lenses,
    logit_lens,
    train_tuned_lens,
    tuned_lens,
)
from mechscope.toy.grammar import grammar_batch

torch.set_num_threads(1)

HF_TINY = Path(__file__).resolve().parents[1] / "integration" / "hf_tiny.py"


def _hf_tiny():
    spec = importlib.util.spec_from_file_location("mechscope_tests_hf_tiny", HF_TINY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def grammar():
    return mechscope.load("grammar-2l")


@pytest.fixture(scope="module")
def grammar_data():
    train, _ = grammar_batch(128, 32, seed=1)
    test, _ = grammar_batch(64, 32, seed=2)
    return train, test


@pytest.fixture(scope="module")
def trained(grammar, grammar_data):
    return train_tuned_lens(grammar, grammar_data[0], steps=60, seed=0)


def snapshot(model: torch.nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "mode": [m.training for m in model.modules()],
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
    }


def assert_unchanged(model, before: dict) -> None:
    after = snapshot(model)
    assert after["grad"] == before["grad"] and after["mode"] == before["mode"]
    assert after["hooks"] == before["hooks"]
    for k, v in before["state"].items():
        assert torch.equal(after["state"][k], v), k


# ---- logit lens ---------------------------------------------------------------------------------


def test_logit_lens_last_row_is_the_model_output(tiny, tokens):
    res = logit_lens(tiny, tokens)
    assert isinstance(res, LensResult) and res.kind == "logit"
    assert res.logits.shape == (3, 2, 9, 11)
    assert res.labels == ["0_pre", "1_pre", "final_post"]
    assert torch.allclose(res.logits[-1], tiny(tokens), atol=1e-5)
    kl = res.kl_to_final()
    assert kl.shape == (3, 2, 9) and kl[-1].abs().max() < 1e-5 and (kl[:-1] > 0).all()
    assert torch.allclose(res.probs().sum(-1), torch.ones(()), atol=1e-5)


def test_logit_lens_row_equals_a_manual_readout(tiny, tokens):
    """Row l = ln_final(resid_pre[l]) @ W_U + b_U, with ln_final's weight and bias."""
    _, cache = tiny.run_with_cache(tokens, names="blocks.1.hook_resid_pre")
    manual = tiny.ln_final(cache["resid_pre", 1]) @ tiny.W_U + tiny.b_U
    assert torch.allclose(logit_lens(tiny, tokens).logits[1], manual, atol=1e-5)


def test_top_k_and_text_input(grammar):
    res = logit_lens(grammar, "two big red foxes run fast . a key")
    probs, ids = res.top_k(3)
    assert probs.shape == ids.shape == (3, 1, 10, 3)
    assert (probs[..., :-1] >= probs[..., 1:]).all()
    assert res.str_tokens[0][:3] == ["<bos>", "two", "big"]
    # the model's own argmax is the final row's top-1
    assert torch.equal(ids[-1, ..., 0], grammar(res.tokens).argmax(-1))
    with pytest.raises(ValueError, match=r"k=0; expected an int in 1\.\.66"):
        res.top_k(0)


def test_logit_lens_on_wrapped_hf_gpt2_matches_hf_logits():
    hf_tiny = _hf_tiny()
    hf = hf_tiny.build_hf("gpt2")
    model = mechscope.wrap(hf, hf_tiny.make_tokenizer())
    toks = torch.randint(4, hf_tiny.VOCAB, (2, 7), generator=torch.Generator().manual_seed(0))
    before = hf_tiny.hook_count(hf)
    res = logit_lens(model, toks)
    assert res.logits.shape == (3, 2, 7, hf_tiny.VOCAB)
    with torch.no_grad():
        ref = hf(toks).logits
    assert torch.allclose(res.logits[-1], ref, atol=1e-4)
    assert hf_tiny.hook_count(hf) == before
    # the widget decodes ids with the HF tokenizer
    w = res.to_widget(batch_index=1, k=3)
    assert w.tokens == model.to_str_tokens(toks[1])
    top_id = int(res.logits[-1, 1, 0].argmax())
    assert w.top_k_at(2, 0)[0][0] == model.to_str_tokens(torch.tensor([top_id]))[0]
    # and a tuned lens trains on it (two translators, KL drops on the training tokens)
    lens = train_tuned_lens(model, toks, steps=40, lr=3e-2)
    kl = compare_lenses(model, toks, lens)
    assert all(t < lo for t, lo in zip(kl.tuned[:2], kl.logit[:2], strict=True))


def test_encoder_without_unembedding_is_refused_with_a_fix():
    hf_tiny = _hf_tiny()
    model = mechscope.wrap(hf_tiny.build_hf("bert"), hf_tiny.make_tokenizer(encoder=True))
    with pytest.raises(ValueError, match=r"post-norm encoder.*probes"):
        logit_lens(model, torch.tensor([[1, 5, 6, 2]]))


def test_bad_model_type():
    with pytest.raises(TypeError, match=r"takes a HookedModel.*got Linear"):
        logit_lens(torch.nn.Linear(2, 2), torch.tensor([[0]]))


# ---- tuned lens ---------------------------------------------------------------------------------


def test_untrained_tuned_lens_is_the_logit_lens(grammar, grammar_data):
    test = grammar_data[1][:4]
    fresh = TunedLens(grammar.cfg.n_layers, grammar.cfg.d_model)
    assert torch.allclose(
        tuned_lens(grammar, test, fresh).logits, logit_lens(grammar, test).logits, atol=1e-4
    )


def test_tuned_lens_beats_logit_lens_on_held_out_data(grammar, grammar_data, trained):
    kl = compare_lenses(grammar, grammar_data[1], trained)
    logit, tuned = kl.logit, kl.tuned
    assert kl.labels == ["0_pre", "1_pre", "final_post"]
    # measured (60 steps, seeds 0-2): logit [0.807, 0.030, 0], tuned [0.073, 0.0005, 0] (nats)
    assert logit[0] > 0.5 and tuned[0] < 0.2 * logit[0]
    assert tuned[1] < 0.1 * logit[1]
    assert logit[2] < 1e-6 and tuned[2] < 1e-6
    assert trained.meta["n_seq"] == 128 and trained.meta["steps"] == 60


def test_training_is_seeded(grammar, grammar_data):
    a = train_tuned_lens(grammar, grammar_data[0][:16], steps=5, seed=3)
    b = train_tuned_lens(grammar, grammar_data[0][:16], steps=5, seed=3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_save_and_load_round_trip(tmp_path, grammar, grammar_data, trained):
    path = tmp_path / "grammar-2l.lens.safetensors"
    trained.save(path)
    back = TunedLens.load(path)
    assert (back.n_layers, back.d_model) == (2, 64) and back.meta == trained.meta
    test = grammar_data[1][:4]
    assert torch.equal(
        tuned_lens(grammar, test, back).logits, tuned_lens(grammar, test, trained).logits
    )


def test_load_refuses_a_foreign_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match=r"not a tuned lens"):
        TunedLens.load(path)


def test_lens_for_another_model_shape_is_refused(tiny, tokens, trained):
    with pytest.raises(ValueError, match=r"d_model=64.*d_model=16.*train_tuned_lens"):
        tuned_lens(tiny, tokens, trained)
    with pytest.raises(TypeError, match=r"lens must be a TunedLens"):
        tuned_lens(tiny, tokens, "lens.safetensors")


def test_bad_training_tokens(grammar):
    with pytest.raises(ValueError, match=r"tokens must be integer ids \[n_seq, pos\].*\[5\]"):
        train_tuned_lens(grammar, torch.arange(5))


# ---- the user's model is left as it came ---------------------------------------------------------


def test_model_untouched_by_training_and_lensing(grammar_data):
    model = mechscope.load("grammar-2l")
    model.blocks[0].requires_grad_(False)  # a user's odd but deliberate state
    model.blocks[1].train()
    before = snapshot(model)
    lens = train_tuned_lens(model, grammar_data[0][:8], steps=3)
    tuned_lens(model, grammar_data[1][:2], lens)
    logit_lens(model, grammar_data[1][:2])
    assert_unchanged(model, before)


def test_model_untouched_when_a_call_raises(tiny):
    before = snapshot(tiny)
    with pytest.raises(ValueError, match=r"vocabulary \[0, 11\)"):
        logit_lens(tiny, torch.tensor([[0, 99]]))
    with pytest.raises(ValueError):
        train_tuned_lens(tiny, torch.tensor([[0, 99]]), steps=2)
    assert_unchanged(tiny, before)
