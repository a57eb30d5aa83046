"""mechscope.monosemanticity.features_per_neuron on activations whose tuning is known."""

import pytest
import torch
import torch.nn.functional as F

from mechscope.models import Transformer, TransformerConfig
from mechscope.models.transformer import solu
from mechscope.monosemanticity import features_per_neuron


def _tuned(tuning, n_per=50, noise=0.05, seed=0):
    """acts [n, neuron] = one-hot(labels) @ tuning.T + noise, labels cycling over features."""
    tuning = torch.as_tensor(tuning, dtype=torch.float)
    labels = torch.arange(tuning.shape[1]).repeat(n_per)
    gen = torch.Generator().manual_seed(seed)
    acts = F.one_hot(labels).float() @ tuning.T
    return acts + noise * torch.randn(acts.shape, generator=gen), labels


def test_counts_match_the_tuning():
    tuning = [[3, 0, 0, 0], [2, 2, 0, 0], [1, 1, 1, 0.2], [-0.17, -0.17, 2, -0.17]]
    acts, labels = _tuned(tuning)
    r = features_per_neuron(acts, labels, feature_names=list("abcd"))
    assert r.values.tolist() == [1, 2, 3, 1]
    assert r.monosemantic_fraction == 0.5 and r.mean_features_per_neuron == 1.75
    assert r.responds[1].tolist() == [True, True, False, False]
    assert r.class_means.shape == (4, 4) and r.feature_names == ("a", "b", "c", "d")


def test_measured_from_the_floor_not_from_zero():
    """A LayerNorm after the activation shifts every neuron; the count must not move."""
    acts, labels = _tuned([[3, 0, 0], [2, 2, 0]])
    shifted = features_per_neuron(acts - 5.0, labels)
    assert shifted.values.tolist() == features_per_neuron(acts, labels).values.tolist() == [1, 2]


def test_threshold_and_dead_neurons():
    acts, labels = _tuned([[2, 1.2, 0], [1, 1, 1], [0, 0, 0], [0, 3, 0]], noise=0.0)
    r = features_per_neuron(acts, labels, threshold=0.5)
    assert r.dead.tolist() == [False, True, True, False] and r.values.tolist() == [2, 0, 0, 1]
    assert r.n_live == 2  # a neuron with equal class means is as uninformative as a dead one
    assert r.mean_features_per_neuron == 1.5  # dead neurons left out
    assert features_per_neuron(acts, labels, threshold=0.7).values.tolist()[0] == 1


def test_random_neurons_are_polysemantic_and_labels_minus_one_skipped():
    gen = torch.Generator().manual_seed(3)
    acts = torch.randn(3000, 16, generator=gen)
    labels = torch.randint(0, 10, (3000,), generator=gen)
    labels[:100] = -1
    r = features_per_neuron(acts, labels, n_classes=10)
    assert r.mean_features_per_neuron > 3  # class means of noise: many near the top
    assert r.monosemantic_fraction < 0.3


def test_bad_inputs_say_what_to_do():
    acts, labels = _tuned([[1, 0]])
    with pytest.raises(ValueError, match=r"\[n, neuron\].*reshape"):
        features_per_neuron(acts[None], labels)
    with pytest.raises(TypeError, match="labels"):
        features_per_neuron(acts, labels.float())
    with pytest.raises(ValueError, match="one label per activation"):
        features_per_neuron(acts, labels[:-1])
    with pytest.raises(ValueError, match="threshold"):
        features_per_neuron(acts, labels, threshold=0)
    with pytest.raises(ValueError, match=r"classes \[2\] have no inputs"):
        features_per_neuron(acts, labels, n_classes=3)
    with pytest.raises(ValueError, match="feature_names"):
        features_per_neuron(acts, labels, feature_names=["x"])


def test_solu_mlp_hooks_and_layernorm():
    cfg = TransformerConfig(n_layers=1, d_model=8, n_heads=2, d_head=4, d_vocab=5, n_ctx=4,
                            d_mlp=6, act_fn="solu")  # fmt: skip
    model = Transformer(cfg)
    names = model.hook_names()
    i = names.index
    assert i("blocks.0.mlp.hook_pre") < i("blocks.0.mlp.hook_mid") < i("blocks.0.mlp.hook_post")
    _, cache = model.run_with_cache(torch.tensor([[1, 2, 3]]))
    pre, mid, post = (cache[f"blocks.0.mlp.hook_{k}"] for k in ("pre", "mid", "post"))
    assert torch.allclose(mid, pre * pre.softmax(-1)) and torch.allclose(solu(pre), mid)
    assert torch.allclose(post.mean(-1), torch.zeros(1, 3), atol=1e-5)  # the LayerNorm centres
    assert torch.allclose(model.blocks[0].mlp.act(pre), post)  # what scrubbing recomputes
    with pytest.raises(ValueError, match="'solu'"):
        TransformerConfig(n_layers=1, d_model=8, n_heads=2, d_head=4, d_vocab=5, n_ctx=4,
                          d_mlp=6, act_fn="solu_ln")  # fmt: skip


def test_transformerlens_config_maps_solu_ln_and_refuses_bare_solu():
    from mechscope.compat import HookedTransformerConfig

    kw = dict(n_layers=1, d_model=8, n_ctx=4, d_head=4, d_vocab=5)
    assert HookedTransformerConfig(**kw, act_fn="solu_ln").act_fn == "solu"
    with pytest.raises(ValueError, match="solu_ln"):
        HookedTransformerConfig(**kw, act_fn="solu")
