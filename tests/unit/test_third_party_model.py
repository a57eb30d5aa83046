"""A model that is neither mechscope's Transformer nor a wrapped HF model: the protocol suffices.

``TokenMLP`` is a 2-layer "token model" written against the public helpers only
(``HookPoint``, ``name_hook_points``, ``installed_hooks``, ``cached_run``): each block mixes
the causal running mean of the residual stream into every position and adds an MLP. It has
no attention heads (``cfg.n_heads = 0``) and none of the optional capabilities, so every
analysis takes its generic path (full forward passes). Each test compares a library call
with the same computation written by hand.
"""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mechscope import HookPoint
from mechscope.ablation import ablate
from mechscope.cache import cached_run
from mechscope.hooks import installed_hooks, name_hook_points
from mechscope.metrics import logit_diff
from mechscope.patching import activation_patch
from mechscope.patching_attr import attribution_patch
from mechscope.probes import fit_probe
from mechscope.protocols import HookedModel, PerHeadWeights, PrefixReuse
from mechscope.steering import steer

VOCAB = "abcdefghijkl"


class Block(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.mix = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model)
        )
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x):  # [batch, pos, d_model]
        x = self.hook_resid_pre(x)
        count = torch.arange(1, x.shape[1] + 1, device=x.device)[None, :, None]
        x = x + self.mix(x.cumsum(1) / count)  # causal: position p sees positions <= p
        return self.hook_resid_post(x + self.hook_mlp_out(self.mlp(x)))


class TokenMLP(nn.Module):
    def __init__(self, d_model: int = 16, n_layers: int = 2, n_ctx: int = 16, seed: int = 0):
        super().__init__()
        self.cfg = SimpleNamespace(
            n_layers=n_layers, n_heads=0, d_model=d_model, d_head=0, d_vocab=len(VOCAB),
            n_ctx=n_ctx,
        )  # fmt: skip
        with torch.random.fork_rng():  # seeded weights, the global RNG left alone
            torch.manual_seed(seed)
            self.embed = nn.Embedding(len(VOCAB), d_model)
            self.blocks = nn.ModuleList(Block(d_model) for _ in range(n_layers))
            self.unembed = nn.Linear(d_model, len(VOCAB))
        self._points = name_hook_points(self)
        self.eval()

    def to_tokens(self, text):
        texts = [text] if isinstance(text, str) else list(text)
        return torch.tensor([[VOCAB.index(c) for c in t] for t in texts])

    def to_str_tokens(self, tokens):
        return [VOCAB[int(i)] for i in torch.as_tensor(tokens).flatten()]

    def forward(self, tokens):
        if isinstance(tokens, str) or (isinstance(tokens, list) and isinstance(tokens[0], str)):
            tokens = self.to_tokens(tokens)
        x = self.embed(torch.as_tensor(tokens))
        for block in self.blocks:
            x = block(x)
        return self.unembed(x)

    def hook_names(self):
        return list(self._points)

    def hooks(self, fwd_hooks):
        return installed_hooks(self._points, fwd_hooks)

    def run_with_cache(self, tokens, names=None, **kwargs):
        return cached_run(self, tokens, names, **kwargs)


@pytest.fixture(scope="module")
def model():
    return TokenMLP()


CLEAN = ["abcdefgh", "hgfedcba"]
CORRUPTED = ["abcjefkh", "hgfldcba"]  # differ at positions 3 and 6 / 3


def test_satisfies_the_protocol_and_no_capability(model):
    assert isinstance(model, HookedModel)
    assert not isinstance(model, PrefixReuse) and not isinstance(model, PerHeadWeights)
    assert model.hook_names()[:3] == [
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_mlp_out",
        "blocks.0.hook_resid_post",
    ]


def test_run_with_cache(model):
    tokens = model.to_tokens(CLEAN)
    logits, cache = model.run_with_cache(tokens, names=lambda n: "resid" in n)
    with torch.no_grad():
        assert torch.equal(logits, model(tokens))
        assert torch.equal(cache["blocks.0.hook_resid_pre"], model.embed(tokens))
        assert torch.equal(model.unembed(cache["blocks.1.hook_resid_post"]), logits)
    assert sorted(cache) == sorted(n for n in model.hook_names() if "resid" in n)


def _manual(model, tokens, hook, fn):
    with torch.no_grad(), model.hooks([(hook, fn)]):
        return model(tokens)


def test_ablate_zero_equals_a_manual_hook(model):
    tokens = model.to_tokens(CLEAN)
    got = ablate(model, tokens, "blocks.0.hook_mlp_out", kind="zero")
    want = _manual(model, tokens, "blocks.0.hook_mlp_out", lambda a, h: torch.zeros_like(a))
    assert torch.equal(got, want)

    def zero_last(a, h):
        a = a.clone()
        a[:, -1] = 0
        return a

    got = ablate(model, tokens, "blocks.1.hook_mlp_out", kind="zero", pos=-1)
    assert torch.equal(got, _manual(model, tokens, "blocks.1.hook_mlp_out", zero_last))
    with torch.no_grad():
        clean = model(tokens)
    assert torch.equal(got[:, :-1], clean[:, :-1]) and not torch.equal(got, clean)


def test_steer_equals_a_manual_hook(model):
    tokens = model.to_tokens(CLEAN)
    vector = torch.linspace(-1, 1, model.cfg.d_model)
    got = steer(model, tokens, vector, "blocks.1.hook_resid_pre", strength=2.0)
    want = _manual(model, tokens, "blocks.1.hook_resid_pre", lambda a, h: a + 2.0 * vector)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    with torch.no_grad():
        clean = model(tokens)
    assert torch.equal(steer(model, tokens, vector, "blocks.1.hook_resid_pre", strength=0.0), clean)
    assert (got - clean).abs().max() > 0.1


def test_probe_on_cached_activations(model):
    # The block-0 input is the token embedding: 12 vectors in 16 dimensions, so "is the token
    # in the first half of the alphabet" is linearly separable, and a probe finds it.
    gen = torch.Generator().manual_seed(0)
    tokens = torch.stack([torch.randperm(len(VOCAB), generator=gen) for _ in range(8)])
    _, cache = model.run_with_cache(tokens, names="blocks.0.hook_resid_pre")
    acts = cache["blocks.0.hook_resid_pre"].reshape(-1, model.cfg.d_model)
    labels = (tokens.flatten() < len(VOCAB) // 2).long()
    probe = fit_probe(acts, labels, steps=300, seed=0)
    assert probe.train_accuracy == 1.0 and probe.test_accuracy == 1.0


def _naive_patch(model, clean, corrupted, metric, hook):
    """One forward pass per (layer, position): the clean activation into the corrupted run."""
    _, cache = model.run_with_cache(clean)
    n_pos = clean.shape[1]
    out = torch.empty(model.cfg.n_layers, n_pos)
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.{hook}"
        for p in range(n_pos):

            def put(a, h, p=p, name=name):
                a = a.clone()
                a[:, p] = cache[name][:, p]
                return a

            out[layer, p] = metric(_manual(model, corrupted, name, put)).mean()
    return out


@pytest.mark.parametrize(
    "site, hook", [("resid_pre", "hook_resid_pre"), ("mlp_out", "hook_mlp_out")]
)
def test_activation_patch_equals_one_pass_per_patch(model, site, hook):
    clean, corrupted = model.to_tokens(CLEAN), model.to_tokens(CORRUPTED)
    metric = logit_diff([0, 7], [1, 6])
    got = activation_patch(model, CLEAN, CORRUPTED, metric, site, batch_size=6)
    want = _naive_patch(model, clean, corrupted, metric, hook)
    torch.testing.assert_close(got.values, want, atol=1e-5, rtol=0)
    assert got.values.std() > 1e-3 and got.dims == ("layer", "pos")
    assert got.col_labels[3] == "3: d"
    with torch.no_grad():
        assert got.corrupted_value == pytest.approx(
            metric(model(corrupted)).mean().item(), abs=1e-6
        )
    # Before the first differing position the runs agree, so the patch changes nothing.
    torch.testing.assert_close(got.values[:, :3], torch.full((2, 3), got.corrupted_value))
    again = activation_patch(model, clean, corrupted, metric, site, memory_mb=0.001)
    torch.testing.assert_close(again.values, got.values, atol=1e-6, rtol=0)


def test_attribution_patch_is_exact_where_the_metric_is_linear(model):
    # logits = unembed(last resid_post): a logit difference is linear in it.
    metric = logit_diff([0, 7], [1, 6])
    attr = attribution_patch(model, CLEAN, CORRUPTED, metric, "resid_post")
    exact = activation_patch(model, CLEAN, CORRUPTED, metric, "resid_post")
    torch.testing.assert_close(attr.values[-1], exact.values[-1], atol=1e-5, rtol=0)


def test_sites_the_model_lacks_are_named(model):
    with pytest.raises(KeyError, match="'z'"):
        activation_patch(model, CLEAN, CORRUPTED, logit_diff(0, 1), "z")
    assert all(not p._forward_hooks for p in model._points.values())
