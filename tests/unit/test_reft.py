"""LoReFT interventions (mechscope.reft, Wu et al. 2024) on a planted network and a tiny
transformer: the edit's formula, orthonormal R, training to a target, the model left as it
came, and errors that name the argument."""

import pytest
import torch

from mechscope.das import random_basis
from mechscope.models import Transformer, TransformerConfig, WordTokenizer
from mechscope.reft import ReFT, train_reft
from mechscope.toy import equality as eq

SITE = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def planted():
    torch.set_num_threads(1)
    return eq.PlantedEqualityNet(d=16, k=3, seed=0)


@pytest.fixture
def tiny():
    tok = WordTokenizer(eq.VOCAB)
    cfg = TransformerConfig(
        n_layers=1, d_model=16, n_heads=2, d_head=8, d_vocab=len(tok), n_ctx=5, d_mlp=32, seed=0
    )
    return Transformer(cfg, tokenizer=tok)


def _flip_data(n, split, seed):
    x = eq.sample_inputs(n, split, seed=seed)
    return x, 1 - eq.causal_model(x)["out"].long()  # the opposite of the model's answer


def _reft(R, W=None, b=None, pos=None, hook=SITE):
    W = R.clone() if W is None else W
    b = torch.zeros(R.shape[0]) if b is None else b
    return ReFT(hook, pos, R, W, b, True, [0.0], 0.0)


def test_edit_is_the_loreft_formula():
    gen = torch.Generator().manual_seed(0)
    R = random_basis(8, 3, seed=1).T
    W, b, h = torch.randn(3, 8, generator=gen), torch.randn(3, generator=gen), torch.randn(5, 8)
    out = _reft(R, W, b).edit(h)
    # Along R's rows the coordinates are W h + b; orthogonal to them h is kept.
    torch.testing.assert_close(out @ R.T, h @ W.T + b)
    rest = torch.eye(8) - R.T @ R
    torch.testing.assert_close(out @ rest, h @ rest)
    # W = R, b = 0: the identity.
    torch.testing.assert_close(_reft(R).edit(h), h)
    assert _reft(R, W, b).n_params == 3 * 8 * 2 + 3
    with pytest.raises(ValueError, match=r"acts has shape \[5, 7\].*d=8"):
        _reft(R).edit(torch.randn(5, 7))


def test_identity_edit_leaves_the_logits(tiny):
    tokens = eq.to_tokens(eq.sample_inputs(6, "train", seed=0))
    with torch.no_grad():
        want = tiny(tokens)
    R = random_basis(16, 2, seed=0).T
    torch.testing.assert_close(_reft(R)(tiny, tokens), want)  # every position
    torch.testing.assert_close(_reft(R, pos=[1, 3])(tiny, tokens), want)
    # A real edit at position 2 changes nothing before it, and position 2 onwards.
    edit = _reft(R, W=torch.zeros(2, 16), b=torch.full((2,), 5.0), pos=2)
    got = edit(tiny, tokens)
    torch.testing.assert_close(got[:, :2], want[:, :2])
    assert (got[:, 2:] - want[:, 2:]).abs().max() > 1e-2


def test_training_flips_the_planted_answer_and_keeps_r_orthonormal(planted):
    x, y = _flip_data(2000, "train", 0)
    xh, yh = _flip_data(1000, "heldout", 1)
    state = torch.random.get_rng_state()
    reft = train_reft(planted, x, y, hook="hook_hidden", rank=3, steps=150, lr=5e-2, seed=0)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    assert reft.trained_basis and reft.n_params == 3 * 16 * 2 + 3
    torch.testing.assert_close(reft.R @ reft.R.T, torch.eye(3), atol=1e-5, rtol=0)
    assert reft.train_accuracy > 0.95
    assert reft.accuracy(planted, xh, yh) > 0.95
    assert float((planted(xh).argmax(-1) == yh).float().mean()) == 0.0  # lacked it before
    # Rank 1 suffices, and its direction lies in one variable's planted subspace (flipping
    # either V1 or V2 flips the answer); a random direction would have 3 / 16 there.
    one = train_reft(planted, x, y, hook="hook_hidden", steps=150, lr=5e-2, seed=0)
    assert one.rank == 1 and one.accuracy(planted, xh, yh) > 0.95
    found = max(float((one.R @ planted.basis(v)).pow(2).sum()) for v in eq.VARIABLES)
    assert found > 0.8, found
    # Control: a fixed random R, only W and b trained, does not get there.
    fixed = train_reft(planted, x, y, hook="hook_hidden", basis=random_basis(16, 1, seed=5),
                       steps=150, lr=5e-2, seed=0)  # fmt: skip
    assert not fixed.trained_basis and fixed.n_params == 16 + 1
    assert torch.equal(fixed.R, random_basis(16, 1, seed=5).T)
    assert fixed.accuracy(planted, xh, yh) < one.accuracy(planted, xh, yh) - 0.2
    # Seeded: the same seed, the same intervention.
    again = train_reft(planted, x[:200], y[:200], hook="hook_hidden", rank=2, steps=5, seed=3)
    twice = train_reft(planted, x[:200], y[:200], hook="hook_hidden", rank=2, steps=5, seed=3)
    assert torch.equal(again.R, twice.R) and torch.equal(again.W, twice.W)


def test_model_left_as_it_came_after_training_use_and_errors(tiny, snapshot):
    x, y = _flip_data(64, "train", 0)
    tokens = eq.to_tokens(x)
    tiny.train()  # a user's model in train mode, one parameter frozen, one with a gradient
    tiny.W_pos.requires_grad_(False)
    tiny.W_E.grad = torch.ones_like(tiny.W_E)
    before = snapshot(tiny)
    reft = train_reft(tiny, tokens, y, hook=SITE, pos=[2, 4], rank=2,
                      answer_ids=eq.answer_ids(), steps=5, batch_size=16)  # fmt: skip
    assert reft.pos == [2, 4] and reft.R.shape == (2, 16)
    one = train_reft(tiny, tokens, y, hook=SITE, pos=2, answer_ids=eq.answer_ids(), steps=3)
    assert one.pos == 2 and len(one.losses) == 3  # one position: a view of the activation
    reft(tiny, tokens)
    before.assert_unchanged()
    with reft.apply(tiny):
        assert sum(len(m._forward_hooks) for m in tiny.modules()) == 1
    before.assert_unchanged()
    with pytest.raises(RuntimeError, match="inside"), reft.apply(tiny):
        raise RuntimeError("raised inside the block")
    before.assert_unchanged()
    bad = y.clone()
    bad[-1] = 7  # out of range for 2 answers: raises inside the training loop, hooks installed
    with pytest.raises(ValueError, match=r"in \[0, 2\)"):
        train_reft(tiny, tokens, bad, hook=SITE, pos=-1, answer_ids=eq.answer_ids(), steps=20,
                   batch_size=64)  # fmt: skip
    before.assert_unchanged()


def test_bad_arguments_are_named(tiny, planted):
    x, y = _flip_data(16, "train", 0)
    tokens = eq.to_tokens(x)

    def call(**kw):
        args = dict(hook=SITE, pos=2, steps=1)
        args.update(kw)
        model = args.pop("model", tiny)
        return train_reft(model, args.pop("tokens", tokens), args.pop("labels", y), **args)

    cases = [
        (dict(hook="blocks.0.hook_resid_pots"), KeyError, "hook_resid_post"),
        (dict(pos=9), ValueError, "pos=9 is out of range"),
        (dict(pos=True), TypeError, "pos=True is a bool"),
        (dict(rank=0), ValueError, "rank=0; expected an int >= 1"),
        (dict(rank=17), ValueError, "rank=17 exceeds the width d=16"),
        (dict(steps=0), ValueError, "steps=0"),
        (dict(lr=-1.0), ValueError, "lr=-1.0"),
        (dict(batch_size=0), ValueError, "batch_size=0"),
        (dict(labels=y[:3]), ValueError, r"labels must be \[n\] = \[16\]"),
        (dict(labels=y.float()), ValueError, "integer class ids"),
        (dict(basis=torch.randn(16, 2)), ValueError, "not orthonormal"),
        (dict(basis=random_basis(8, 2)), ValueError, r"basis has shape \[8, 2\]"),
        (dict(basis=random_basis(16, 2), rank=3), ValueError, "basis has 2 columns but rank=3"),
        (dict(answer_ids=[0, 99]), ValueError, "outside the vocabulary"),
        (dict(model=torch.nn.Linear(4, 4)), TypeError, "no hook points"),
    ]
    for kw, err, match in cases:
        with pytest.raises(err, match=match):
            call(**kw)
    with pytest.raises(ValueError, match="pos=None"):  # a [batch, d] hook has no positions
        train_reft(planted, x, y, hook="hook_hidden", pos=0, steps=1)


def test_per_head_hooks_are_refused_with_the_fix(tiny):
    x, y = _flip_data(8, "train", 0)
    with pytest.raises(ValueError, match="per-head hooks like hook_z"):
        train_reft(tiny, eq.to_tokens(x), y, hook="blocks.0.attn.hook_z", steps=1)
