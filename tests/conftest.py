import os

import pytest
import torch

from mechscope.models import Transformer, TransformerConfig, WordTokenizer

# No test may reach a model hub: CI and classrooms are offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def tiny_cfg():
    return TransformerConfig(
        n_layers=2, d_model=16, n_heads=2, d_head=8, d_vocab=11, n_ctx=12, d_mlp=32, seed=3
    )


@pytest.fixture
def tiny(tiny_cfg):
    words = "a b c d e f g h i j".split()
    return Transformer(tiny_cfg, tokenizer=WordTokenizer(words)).eval()


@pytest.fixture
def attn_only():
    """One attention-only layer, no MLP and no norm: the model without the optional parts."""
    cfg = TransformerConfig(
        n_layers=1,
        d_model=8,
        n_heads=2,
        d_head=4,
        d_vocab=5,
        n_ctx=6,
        d_mlp=None,
        normalization=None,
    )
    return Transformer(cfg)


@pytest.fixture(scope="session")
def small_transformer():
    """Factory ``small_transformer(seed, **config_overrides)``: the random 2-layer, 2-head,
    d_model-32 model the analysis tests share (init_std 0.3, so attention is not uniform)."""

    def make(seed: int, **overrides) -> Transformer:
        kw = dict(n_layers=2, d_model=32, n_heads=2, d_head=16, d_vocab=20, n_ctx=8, init_std=0.3)
        return Transformer(TransformerConfig(**{**kw, **overrides}, seed=seed)).eval()

    return make


class ModelSnapshot:
    """A model's weights, grads, requires_grad flags, modes and hook count at one moment;
    ``assert_unchanged()`` checks the model is exactly as it was (and holds no hooks)."""

    def __init__(self, model):
        self.model, self.state = model, self._take(model)

    @staticmethod
    def _take(model):
        return (
            {k: v.clone() for k, v in model.state_dict().items()},
            [
                (p.requires_grad, None if p.grad is None else p.grad.clone())
                for p in model.parameters()
            ],
            [m.training for m in model.modules()],
            sum(len(m._forward_hooks) for m in model.modules()),
        )

    def assert_unchanged(self) -> None:
        before, after = self.state, self._take(self.model)
        for k, v in before[0].items():
            assert torch.equal(after[0][k], v), k
        for (rg0, g0), (rg1, g1) in zip(before[1], after[1], strict=True):
            assert rg0 == rg1
            assert (g0 is None and g1 is None) or torch.equal(g0, g1)
        assert before[2] == after[2]
        assert before[3] == after[3] == 0


@pytest.fixture
def snapshot():
    """``snapshot(model)`` -> a :class:`ModelSnapshot` to compare the model against later."""
    return ModelSnapshot


@pytest.fixture
def tokens():
    return torch.tensor([[0, 1, 2, 3, 4, 5, 1, 2, 3], [0, 9, 8, 7, 6, 5, 4, 3, 2]])


@pytest.fixture(scope="module")
def mlp_model():
    """3 layers with MLPs and LayerNorm, large init so patches move the output (patching tests)."""
    cfg = TransformerConfig(
        n_layers=3,
        d_model=16,
        n_heads=2,
        d_head=8,
        d_vocab=11,
        n_ctx=12,
        d_mlp=32,
        seed=5,
        init_std=0.4,
    )
    return Transformer(cfg, tokenizer=WordTokenizer("a b c d e f g h i j".split())).eval()


@pytest.fixture(scope="module")
def induction():
    """The shipped induction-2l zoo model."""
    import mechscope

    return mechscope.load("induction-2l")


@pytest.fixture(scope="module")
def model(request):
    """The zoo model a card test module names in ``NAME``: ``mechscope.load(NAME)`` once per
    module, with one thread (the card's numbers re-measure the same on every machine). A module
    that tests another model defines its own ``model`` fixture, which takes precedence."""
    import mechscope

    torch.set_num_threads(1)
    return mechscope.load(request.module.NAME)


@pytest.fixture(scope="session")
def check_shipped():
    """``check_shipped(model, max_deflated=None)`` -> the shipped weights' bytes, after asserting
    that ``zoo/NAME.safetensors`` hashes to the card's sha256 and, with ``max_deflated``, that
    the weights plus the card ``NAME.json`` deflate (zlib level 9) to at most that many bytes."""
    import hashlib
    import zlib

    from mechscope.models.zoo import zoo_dir

    def check(model, max_deflated: int | None = None) -> bytes:
        name = model.card["name"]
        blob = (zoo_dir() / f"{name}.safetensors").read_bytes()
        assert hashlib.sha256(blob).hexdigest() == model.card["sha256"]
        if max_deflated is not None:
            card = (zoo_dir() / f"{name}.json").read_bytes()
            assert len(zlib.compress(blob, 9)) + len(zlib.compress(card, 9)) <= max_deflated
        return blob

    return check
