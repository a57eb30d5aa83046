"""Interchange interventions and DAS (mechscope.das) on hand-built and tiny random networks.

The planted network (mechscope.toy.equality.PlantedEqualityNet) writes V1 and V2 into known
random subspaces of its hidden layer, so DAS has a ground truth to recover.
"""

import pytest
import torch

from mechscope.das import (
    das,
    interchange_accuracy,
    interchange_intervention,
    random_basis,
    subspace_overlap,
)
from mechscope.hooks import HookPoint, installed_hooks, name_hook_points
from mechscope.models import Transformer, TransformerConfig, WordTokenizer
from mechscope.toy import equality as eq
from mechscope.world import activations_at

SITE = "hook_hidden"


@pytest.fixture(scope="module")
def planted():
    torch.set_num_threads(1)
    return eq.PlantedEqualityNet(d=16, k=3, seed=0)


@pytest.fixture(scope="module")
def pairs():
    return {
        "train": eq.counterfactual_pairs(2000, "V1", "train", seed=0),
        "heldout": eq.counterfactual_pairs(1000, "V1", "heldout", seed=1),
    }


def _iia(net, p, basis=None):
    return interchange_accuracy(net, p.base, p.source, p.label, hook=SITE, basis=basis)


def test_planted_net_runs_the_causal_model(planted, pairs):
    x = pairs["heldout"].base
    assert torch.equal(planted(x).argmax(-1), eq.causal_model(x)["out"].long())


def test_planted_subspace_is_the_whole_answer(planted, pairs):
    p = pairs["heldout"]
    assert _iia(planted, p, planted.basis("V1")) == 1.0
    # Neither the whole vector, nor V2's subspace, nor one direction of V1's does it.
    assert _iia(planted, p) < 0.6
    assert _iia(planted, p, planted.basis("V2")) < 0.6
    assert _iia(planted, p, planted.basis("V1")[:, :1]) < 0.8
    # Half the pairs need the output flipped: doing nothing scores about one half.
    assert 0.4 < float(p.changes.float().mean()) < 0.6


def test_das_recovers_the_planted_subspace(planted, pairs):
    p, h = pairs["train"], pairs["heldout"]
    result = das(planted, p.base, p.source, p.label, hook=SITE, k=3, steps=400, lr=2e-2, seed=0)
    assert result.basis.shape == (16, 3)
    assert torch.allclose(result.basis.T @ result.basis, torch.eye(3), atol=1e-4)
    assert subspace_overlap(result.basis, planted.basis("V1")) > 0.98
    assert subspace_overlap(result.basis, planted.basis("V2")) < 0.02
    assert _iia(planted, h, result.basis) >= 0.99
    assert result.train_accuracy >= 0.99
    assert result.losses[-1] < 0.2 * result.losses[0]
    # The control: a random 3-dim subspace of the same site.
    assert _iia(planted, h, random_basis(16, 3, seed=1)) < 0.6


def test_das_tells_the_two_variables_apart(planted):
    p = eq.counterfactual_pairs(2000, "V2", "train", seed=0)
    result = das(planted, p.base, p.source, p.label, hook=SITE, k=3, steps=400, lr=2e-2, seed=0)
    assert subspace_overlap(result.basis, planted.basis("V2")) > 0.98
    assert subspace_overlap(result.basis, planted.basis("V1")) < 0.02


def test_das_is_seeded(planted, pairs):
    p = pairs["train"]
    rng = torch.get_rng_state()
    a = das(planted, p.base[:500], p.source[:500], p.label[:500], hook=SITE, k=1, steps=20, seed=3)
    assert torch.equal(torch.get_rng_state(), rng)  # the user's global RNG is left alone
    b = das(planted, p.base[:500], p.source[:500], p.label[:500], hook=SITE, k=1, steps=20, seed=3)
    assert torch.equal(a.basis, b.basis) and a.losses == b.losses


def test_subspace_too_large_names_the_valid_range(planted, pairs):
    p = pairs["train"]
    with pytest.raises(ValueError, match=r"k=17 .*d=16.*1 <= k <= 16"):
        das(planted, p.base, p.source, p.label, hook=SITE, k=17, steps=1)
    with pytest.raises(ValueError, match=r"1 <= k <= 16"):
        das(planted, p.base, p.source, p.label, hook=SITE, k=0, steps=1)


def test_bad_inputs_say_what_and_how(planted, pairs):
    p = pairs["train"]
    with pytest.raises(KeyError, match="hook_hidden"):
        das(planted, p.base, p.source, p.label, hook="hook_hiden", k=1)
    with pytest.raises(ValueError, match="same number"):
        interchange_accuracy(planted, p.base[:5], p.source[:4], p.label[:5], hook=SITE)
    with pytest.raises(ValueError, match=r"labels must be \[n\]"):
        interchange_accuracy(planted, p.base[:5], p.source[:5], p.label[:4], hook=SITE)
    with pytest.raises(ValueError, match=r"in \[0, 2\)"):
        interchange_accuracy(planted, p.base[:5], p.source[:5], p.label[:5] + 2, hook=SITE)
    with pytest.raises(ValueError, match="not orthonormal"):
        interchange_accuracy(planted, p.base, p.source, p.label, hook=SITE, basis=torch.ones(16, 2))
    with pytest.raises(ValueError, match=r"expected \[16, k\]"):
        interchange_accuracy(planted, p.base, p.source, p.label, hook=SITE, basis=torch.eye(8))
    with pytest.raises(ValueError, match="pos=None"):
        interchange_accuracy(planted, p.base, p.source, p.label, hook=SITE, pos=1)
    with pytest.raises(TypeError, match="no hook points"):
        das(torch.nn.Linear(4, 2), p.base, p.source, p.label, hook=SITE, k=1)
    with pytest.raises(ValueError, match="split"):
        eq.sample_inputs(3, split="test")
    with pytest.raises(ValueError, match="Unknown variables"):
        eq.causal_model(p.base, V3=p.base[:, 0] > 0)


# ---- on a transformer: positions, the full-vector swap, and the model left as it came --------


@pytest.fixture
def tiny():
    tok = WordTokenizer(eq.VOCAB)
    cfg = TransformerConfig(
        n_layers=1, d_model=16, n_heads=2, d_head=8, d_vocab=len(tok), n_ctx=5, d_mlp=32, seed=0
    )
    return Transformer(cfg, tokenizer=tok)


class _Passthrough(torch.nn.Module):
    """Outputs its hook point's value, so a test sees exactly what an intervention wrote."""

    def __init__(self):
        super().__init__()
        self.hook_hidden = HookPoint()
        self._points = name_hook_points(self)

    def forward(self, x):
        return self.hook_hidden(x * 1.0)

    def hook_names(self):
        return list(self._points)

    def hooks(self, fwd_hooks):
        return installed_hooks(self._points, fwd_hooks)


def test_subspace_swap_is_the_projection_formula():
    gen = torch.Generator().manual_seed(0)
    h_base, h_src = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    basis = random_basis(8, 3, seed=2)
    out = interchange_intervention(_Passthrough(), h_base, h_src, hook=SITE, basis=basis)
    torch.testing.assert_close(out, h_base + (h_src - h_base) @ basis @ basis.T)
    # The whole space is the full swap; the rotated coordinates outside B keep the base's.
    full = interchange_intervention(_Passthrough(), h_base, h_src, hook=SITE, basis=torch.eye(8))
    torch.testing.assert_close(full, h_src)
    torch.testing.assert_close(out @ basis, h_src @ basis)
    rest = torch.linalg.qr(torch.cat([basis, torch.randn(8, 5, generator=gen)], 1)).Q[:, 3:]
    torch.testing.assert_close(out @ rest, h_base @ rest)


def test_full_swap_at_last_position_gives_the_source_logits(tiny, pairs):
    p = pairs["train"]
    base, source = eq.to_tokens(p.base[:8]), eq.to_tokens(p.source[:8])
    patched = interchange_intervention(tiny, base, source, hook="blocks.0.hook_resid_post", pos=-1)
    with torch.no_grad():
        want, unchanged = tiny(source)[:, -1], tiny(base)[:, :-1]
    torch.testing.assert_close(patched[:, -1], want)
    torch.testing.assert_close(patched[:, :-1], unchanged)  # earlier positions untouched
    assert activations_at(tiny, base, "blocks.0.hook_resid_post", pos=-1).shape == (8, 16)


def test_das_leaves_the_model_as_it_came(tiny, pairs, snapshot):
    p = pairs["train"]
    tiny.train()  # a user's model in train mode, one parameter frozen, one with a gradient
    tiny.W_pos.requires_grad_(False)
    tiny.W_E.grad = torch.ones_like(tiny.W_E)
    before = snapshot(tiny)
    base, source = eq.to_tokens(p.base[:64]), eq.to_tokens(p.source[:64])
    result = das(
        tiny, base, source, p.label[:64], hook="blocks.0.hook_resid_post", k=2, pos=-1,
        answer_ids=eq.answer_ids(), steps=5, batch_size=16,
    )  # fmt: skip
    assert result.basis.shape == (16, 2)
    before.assert_unchanged()


def test_das_leaves_the_model_as_it_came_when_it_raises(tiny, pairs, snapshot):
    p = pairs["train"]
    tiny.train()
    before = snapshot(tiny)
    base, source = eq.to_tokens(p.base[:64]), eq.to_tokens(p.source[:64])
    bad = p.label[:64].clone()
    bad[-1] = 7  # out of range for 2 answers: raises inside the training loop, hooks installed
    with pytest.raises(ValueError, match=r"in \[0, 2\)"):
        das(
            tiny, base, source, bad, hook="blocks.0.hook_resid_post", k=2, pos=-1,
            answer_ids=eq.answer_ids(), steps=50, batch_size=64,
        )  # fmt: skip
    before.assert_unchanged()
    with pytest.raises(ValueError, match="say which position"):
        das(tiny, base, source, p.label[:64], hook="blocks.0.hook_resid_post", k=2)
    with pytest.raises(ValueError, match="out of range"):
        das(tiny, base, source, p.label[:64], hook="blocks.0.hook_resid_post", k=2, pos=5)
    before.assert_unchanged()


def test_several_positions_at_once(tiny, pairs):
    p = pairs["train"]
    base, source = eq.to_tokens(p.base[:8]), eq.to_tokens(p.source[:8])
    site = "blocks.0.hook_resid_post"
    assert activations_at(tiny, base, site, pos=[2, 4]).shape == (8, 2, 16)
    # Every position swapped whole: the source's logits everywhere.
    patched = interchange_intervention(tiny, base, source, hook=site, pos=[0, 1, 2, 3, 4])
    torch.testing.assert_close(patched, tiny(source).detach())
    with pytest.raises(ValueError, match="twice"):
        interchange_intervention(tiny, base, source, hook=site, pos=[4, -1])
    result = das(tiny, base, source, p.label[:8], hook=site, k=1, pos=[2, 4],
                 answer_ids=eq.answer_ids(), steps=2)  # fmt: skip
    assert result.basis.shape == (16, 1) and result.pos == [2, 4]


# ---- the task and its causal model ----------------------------------------------------------


def test_causal_model_and_counterfactual_labels():
    x = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 2], [3, 4, 5, 6], [3, 4, 5, 5]])
    v = eq.causal_model(x)
    assert v["V1"].tolist() == [True, True, False, False]
    assert v["V2"].tolist() == [True, False, False, True]
    assert v["out"].tolist() == [True, False, True, False]
    setv1 = eq.causal_model(x, V1=torch.tensor([False, False, True, True]))["out"]
    assert setv1.tolist() == [False, True, False, True]
    p = eq.counterfactual_pairs(500, "V2", "heldout", seed=3)
    want = (eq.causal_model(p.base)["V1"] == eq.causal_model(p.source)["V2"]).long()
    assert torch.equal(p.label, want)
    assert bool(eq.is_heldout(p.base).all() and eq.is_heldout(p.source).all())


def test_inputs_are_balanced_and_splits_disjoint():
    x = eq.sample_inputs(4000, "train", seed=0)
    v = eq.causal_model(x)
    for key in ("V1", "V2", "out"):
        assert 0.45 < float(v[key].float().mean()) < 0.55, key
    assert not bool(eq.is_heldout(x).any())
    assert torch.equal(x, eq.sample_inputs(4000, "train", seed=0))  # seeded
    every = torch.cartesian_prod(*[torch.arange(len(eq.OBJECTS))] * 4)
    assert 0.19 < float(eq.is_heldout(every).float().mean()) < 0.21
    assert eq.prompts(x[:1])[0].split() == [eq.OBJECTS[i] for i in x[0].tolist()]
    assert eq.to_tokens(x[:2]).shape == (2, 5)
