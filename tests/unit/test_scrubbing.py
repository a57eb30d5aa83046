"""Causal scrubbing (Chan et al. 2022): limits, a hand-checked case, sampling, errors, hygiene."""

import math

import pytest
import torch

from mechscope.models import Transformer, TransformerConfig
from mechscope.scrubbing import (
    EVERYTHING,
    Claim,
    Feature,
    Hypothesis,
    ScrubResult,
    _Scrubber,
    induction_target,
    position,
    scrub,
    token,
    validate,
)

Z = "blocks.{}.attn.hook_z".format
Q = "blocks.{}.attn.hook_q".format
K = "blocks.{}.attn.hook_k".format
V = "blocks.{}.attn.hook_v".format


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def big_model(attn_only: bool, normalization="ln", seed=5) -> Transformer:
    """2 layers, large init so that resampling moves the loss far from the full model's."""
    cfg = TransformerConfig(
        n_layers=2,
        d_model=16,
        n_heads=2,
        d_head=8,
        d_vocab=11,
        n_ctx=12,
        d_mlp=None if attn_only else 32,
        normalization=normalization,
        seed=seed,
        init_std=0.5,
    )
    return Transformer(cfg).eval()


def data(batch=24, pos=10, seed=0):
    tokens = torch.randint(0, 11, (batch, pos), generator=torch.Generator().manual_seed(seed))
    return tokens, torch.ones(batch, pos - 1, dtype=torch.bool)


def own_text(model, batch=24, pos=10, prompt=3, seed=0):
    """Random prompts continued greedily by ``model``: text the full model predicts well, so
    resampling its activations visibly costs loss. The mask covers the greedy part."""
    tokens, _ = data(batch, pos, seed)
    tokens %= model.cfg.d_vocab
    with torch.no_grad():
        for i in range(prompt, pos):
            tokens[:, i] = model(tokens[:, :i])[:, -1].argmax(-1)
    mask = torch.zeros(batch, pos - 1, dtype=torch.bool)
    mask[:, prompt - 1 :] = True
    return tokens, mask


@pytest.mark.parametrize("attn_only", [True, False])
def test_trivial_hypothesis_recovers_the_full_model_exactly(attn_only):
    model = big_model(attn_only)
    tokens, mask = own_text(model)
    r = scrub(model, Hypothesis.full(model), tokens, mask)
    with torch.no_grad():
        logits = model(tokens)[:, :-1][mask]
    direct = torch.nn.functional.cross_entropy(logits, tokens[:, 1:][mask])
    assert r.loss_full == pytest.approx(direct.item(), abs=1e-6)
    assert r.loss_scrubbed == pytest.approx(r.loss_full, abs=1e-5)
    assert r.recovered == pytest.approx(1.0, abs=1e-5)
    assert r.loss_random_baseline > r.loss_full + 1.0  # the baseline is far away
    assert r.n_contexts == mask.sum()


@pytest.mark.parametrize("attn_only", [True, False])
def test_exact_treeified_mode_has_the_same_limits(attn_only):
    model = big_model(attn_only)
    tokens, mask = own_text(model, batch=3, pos=8)
    r = scrub(model, Hypothesis.full(model), tokens, mask, exact=True)
    assert r.loss_scrubbed == pytest.approx(r.loss_full, abs=1e-5)
    empty = scrub(model, Hypothesis({}), tokens, mask, exact=True, seed=2)
    assert empty.loss_scrubbed == scrub(model, Hypothesis({}), tokens, mask, seed=2).loss_scrubbed


@pytest.mark.parametrize("attn_only", [True, False])
def test_empty_hypothesis_scrubs_to_the_random_baseline(attn_only):
    # The baseline comes from a hooked forward pass of the real model (independent code);
    # both are means over random draws, so they agree up to sampling noise.
    model = big_model(attn_only)
    tokens, mask = own_text(model, batch=128)
    r = scrub(model, Hypothesis({}), tokens, mask, seed=1)
    gap = r.loss_random_baseline - r.loss_full
    assert gap > 1.0
    assert abs(r.recovered) < 0.1  # seeds 0-5 measured within +-0.08 at batch 64
    # "logits" claimed with no parents is the same empty hypothesis, same draws.
    r2 = scrub(model, Hypothesis({"logits": Claim()}), tokens, mask, seed=1)
    assert r2.loss_scrubbed == r.loss_scrubbed


def test_hand_checked_uniform_attention_model():
    """1 layer, no LayerNorm, no position embedding, W_Q = 0 (uniform causal attention), head 1
    writes nothing. Then the logits are a function of the tokens alone, computed below by hand,
    and a hypothesis that claims only token features must reproduce them while resampling the
    (irrelevant) query, key and head-1 paths."""
    cfg = TransformerConfig(
        n_layers=1, d_model=8, n_heads=2, d_head=4, d_vocab=7, n_ctx=8, normalization=None,
        seed=2, init_std=0.6,
    )  # fmt: skip
    model = Transformer(cfg).eval()
    attn = model.blocks[0].attn
    with torch.no_grad():
        model.W_pos.zero_()
        attn.W_Q.zero_()
        attn.b_Q.zero_()  # q = 0: every score is 0
        attn.W_O[1] = 0.0
        attn.b_V.normal_(generator=torch.Generator().manual_seed(1))
    tokens, mask = own_text(model, batch=32, pos=8, seed=3)
    with torch.no_grad():
        e = model.W_E[tokens]  # [batch, pos, d_model]
        v = e @ attn.W_V[0] + attn.b_V[0]
        mean_v = v.cumsum(1) / torch.arange(1, 9)[None, :, None]  # uniform over j <= i
        resid = e + mean_v @ attn.W_O[0] + attn.b_O
        logits = resid @ model.W_U + model.b_U
    by_hand = torch.nn.functional.cross_entropy(logits[:, :-1][mask], tokens[:, 1:][mask])
    hyp = Hypothesis(
        {
            "logits": Claim(parents=["embed", (Z(0), 0)]),
            "embed": Claim(token()),
            (Z(0), 0): Claim(EVERYTHING, [(V(0), 0)]),
            (V(0), 0): Claim(token(), ["embed"]),
        }
    )
    r = scrub(model, hyp, tokens, mask, seed=4)
    assert r.loss_scrubbed == pytest.approx(by_hand.item(), abs=1e-5)
    assert r.loss_full == pytest.approx(by_hand.item(), abs=1e-5)
    # Claiming the value depends on the position only (wrong here) loses the loss.
    wrong = dict(hyp.claims)
    wrong[(V(0), 0)] = Claim(position(), ["embed"])
    assert scrub(model, Hypothesis(wrong), tokens, mask, seed=4).recovered < 0.8


def test_unclaimed_input_matters_when_the_model_uses_it():
    model = big_model(attn_only=True)
    tokens, mask = data()
    claims = dict(Hypothesis.full(model).claims)
    claims[(K(1), 0)] = Claim(EVERYTHING, [])  # head L1H0's key reads only random contexts
    r = scrub(model, Hypothesis(claims), tokens, mask)
    assert 0.0 < r.recovered < 0.999


def test_resampled_contexts_agree_on_the_feature():
    model = big_model(attn_only=True)
    tokens, _ = data()
    feat = token(-1) & position()
    claims = {("logits",): (EVERYTHING, []), ("embed",): (feat, [])}
    s = _Scrubber(model, claims, tokens, torch.Generator().manual_seed(0))
    ctx = torch.arange(tokens.numel()).repeat(20)
    drawn = s._equivalent(feat, ctx)
    flat_prev, flat_pos = token(-1)(tokens).flatten(), position()(tokens).flatten()
    assert torch.equal(flat_prev[drawn], flat_prev[ctx])
    assert torch.equal(flat_pos[drawn], flat_pos[ctx])
    assert (drawn != ctx).float().mean() > 0.5  # it really resamples
    assert torch.equal(s._equivalent(EVERYTHING, ctx), ctx)


def test_recovered_is_nan_when_there_is_nothing_to_recover():
    assert math.isnan(ScrubResult(1.5, 1.2, 1.5, 10).recovered)
    assert ScrubResult(1.0, 2.0, 3.0, 10).recovered == pytest.approx(0.5)


def test_features_on_a_known_sequence():
    t = torch.tensor([[0, 5, 6, 7, 5, 6, 9, 5]])
    assert token()(t).tolist() == t.tolist()
    assert token(-1)(t).tolist() == [[-1, 0, 5, 6, 7, 5, 6, 9]]
    assert token(2)(t).tolist() == [[6, 7, 5, 6, 9, 5, -1, -1]]
    assert position()(t).tolist() == [[0, 1, 2, 3, 4, 5, 6, 7]]
    # After the last earlier 5 (position 4) comes 6; 6 at position 5 was followed by 7 before.
    assert induction_target()(t).tolist() == [[-1, -1, -1, -1, 6, 7, -1, 6]]
    both = (token() & position())(t)
    assert len(both.unique()) == 8


def test_seeded():
    model = big_model(attn_only=False)
    tokens, mask = data()
    hyp = Hypothesis(
        {
            "logits": Claim(parents=["embed", (Z(1), 0)]),
            "embed": Claim(token()),
            (Z(1), 0): Claim(token(), [(Q(1), 0)]),
            (Q(1), 0): Claim(token(), ["embed"]),
        }
    )
    a, b = scrub(model, hyp, tokens, mask, seed=3), scrub(model, hyp, tokens, mask, seed=3)
    c = scrub(model, hyp, tokens, mask, seed=4)
    assert a == b and a.loss_scrubbed != c.loss_scrubbed


def test_unknown_component_is_named():
    model = big_model(attn_only=True)
    tokens, mask = data()
    for bad in [(Z(1), 5), (Z(3), 0), "blocks.0.hook_mlp_out", "unembed"]:
        with pytest.raises(KeyError, match="hypothesis node") as err:
            scrub(model, Hypothesis({"logits": Claim(parents=[bad]), bad: Claim()}), tokens, mask)
        assert repr(bad) in err.value.args[0]
    with pytest.raises(KeyError, match=r"Closest valid names: .*blocks\.1\.attn\.hook_z"):
        scrub(model, Hypothesis({("blocks.1.attn.hook_zz", 0): Claim()}), tokens, mask)


def test_cycle_is_named():
    model = big_model(attn_only=True)
    tokens, mask = data()
    hyp = Hypothesis(
        {
            "logits": Claim(parents=[(Z(0), 1)]),
            (Z(0), 1): Claim(token(), [(K(0), 1)]),
            (K(0), 1): Claim(token(), [(Z(1), 0)]),
            (Z(1), 0): Claim(token(), [(Q(1), 0)]),
            (Q(1), 0): Claim(token(), [(Z(0), 1)]),
        }
    )
    with pytest.raises(ValueError, match="cyclic") as err:
        scrub(model, hyp, tokens, mask)
    msg = str(err.value)
    assert all(repr(n) in msg for n in [(Z(0), 1), (K(0), 1), (Z(1), 0), (Q(1), 0)])


def test_other_bad_hypotheses():
    model = big_model(attn_only=True)
    tokens, mask = data()

    def fails(claims, match, exc=ValueError):
        with pytest.raises(exc, match=match):
            scrub(model, Hypothesis(claims), tokens, mask)

    # A layer-1 head cannot feed a layer-0 key (not a model edge).
    fails(
        {"logits": Claim(parents=[(Z(0), 0)]), (Z(0), 0): Claim(token(), [(K(0), 0)]),
         (K(0), 0): Claim(token(), [(Z(1), 1)]), (Z(1), 1): Claim()},
        r"cannot feed \('blocks.0.attn.hook_k', 0\)",
    )  # fmt: skip
    fails({"logits": Claim(parents=["embed"])}, "'embed' is a claimed parent.*has no claim")
    fails({"logits": Claim(), "embed": Claim()}, r"\['embed'\] are not connected")
    fails({"logits": Claim(parents=["embed"]), "embed": "token"}, "expected Claim", TypeError)
    fails({"logits": Claim(parents="embed"), "embed": Claim()}, r"parents=\['embed'\]", TypeError)
    fails(
        {"logits": Claim(parents=(Z(1), 0)), (Z(1), 0): Claim()}, "Wrap a single parent", TypeError
    )
    fails({"logits": Claim(parents=["embed"]), "embed": Claim(3)}, "expected a Feature", TypeError)
    with pytest.raises(ValueError, match=r"loss_mask has shape \[24, 10\]"):
        scrub(model, Hypothesis({}), tokens, torch.ones(24, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="selects no position"):
        scrub(model, Hypothesis({}), tokens, torch.zeros_like(mask))
    with pytest.raises(TypeError, match="ReadableBlocks capability.*lacks W_E"):
        scrub(torch.nn.Linear(2, 2), Hypothesis({}), tokens, mask)
    with pytest.raises(TypeError, match="must be a Hypothesis"):
        scrub(model, {"logits": Claim()}, tokens, mask)
    bad_feature = Feature(lambda t: t[:, :2], "short")
    fails({"logits": Claim(parents=["embed"]), "embed": Claim(bad_feature)}, "returned \\[24, 2\\]")


def test_model_left_exactly_as_it_came_also_when_a_call_raises():
    model = big_model(attn_only=False).train()
    model.blocks[0].attn.W_Q.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {k: p.requires_grad for k, p in model.named_parameters()}
    tokens, mask = data()

    def check():
        assert hook_count(model) == 0
        assert model.training and all(m.training for m in model.modules())
        assert grads == {k: p.requires_grad for k, p in model.named_parameters()}
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    scrub(model, Hypothesis.full(model), tokens, mask)
    check()

    def explode(t):
        raise RuntimeError("feature failed")

    hyp = Hypothesis({"logits": Claim(parents=["embed"]), "embed": Claim(Feature(explode, "x"))})
    with pytest.raises(RuntimeError, match="feature failed"):
        scrub(model, hyp, tokens, mask)
    check()


def test_validate_returns_internal_graph():
    model = big_model(attn_only=False)
    claims = validate(model, Hypothesis.full(model))
    # An MLP reads the heads of its own layer too; a key only earlier layers.
    assert set(claims[("mlp", 1)][1]) == {
        ("embed",), ("z", 0, 0), ("z", 0, 1), ("mlp", 0), ("z", 1, 0), ("z", 1, 1)
    }  # fmt: skip
    assert claims[("k", 1, 1)][1] == [("embed",), ("z", 0, 0), ("z", 0, 1), ("mlp", 0)]
    assert claims[("z", 0, 1)][1] == [("q", 0, 1), ("k", 0, 1), ("v", 0, 1)]
