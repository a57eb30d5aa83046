import pytest
import torch


def test_cache_keeps_only_requested(tiny, tokens):
    names = ["blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post"]
    logits, cache = tiny.run_with_cache(tokens, names=names)
    assert list(cache) == names
    assert torch.allclose(logits, tiny(tokens))


def test_not_requested_names_say_so(tiny, tokens):
    _, cache = tiny.run_with_cache(tokens, names="blocks.0.attn.hook_pattern")
    with pytest.raises(KeyError, match="was not cached"):
        cache["blocks.1.attn.hook_pattern"]
    with pytest.raises(KeyError, match="Closest valid names: blocks.0.attn.hook_pattern"):
        cache["blocks.0.attn.hook_patern"]


def test_shorthand_keys(tiny, tokens):
    _, cache = tiny.run_with_cache(tokens)
    assert cache["pattern", 1] is cache["blocks.1.attn.hook_pattern"]
    assert cache["resid_post", 0] is cache["blocks.0.hook_resid_post"]
    with pytest.raises(KeyError, match="cache shorthand"):
        cache["patern", 0]


def test_remove_batch_dim_dtype_and_device(tiny, tokens):
    _, c = tiny.run_with_cache(
        tokens[:1], names="blocks.0.attn.hook_z", remove_batch_dim=True, dtype=torch.float16
    )
    z = c["blocks.0.attn.hook_z"]
    assert z.shape == (tokens.shape[1], 2, 8) and z.dtype == torch.float16
    assert c.has_batch_dim is False
    with pytest.raises(ValueError, match="batch size 1"):
        tiny.run_with_cache(tokens, remove_batch_dim=True)
    _, c2 = tiny.run_with_cache(tokens, names="blocks.0.attn.hook_z", device="cpu")
    assert c2["blocks.0.attn.hook_z"].device.type == "cpu"


def test_cached_values_are_detached_copies(tiny, tokens):
    _, cache = tiny.run_with_cache(tokens, names="hook_embed")
    assert not cache["hook_embed"].requires_grad


def test_repr_lists_shapes(tiny, tokens):
    _, cache = tiny.run_with_cache(tokens, names="blocks.0.attn.hook_pattern")
    assert repr(cache) == "ActivationCache({blocks.0.attn.hook_pattern: [2, 2, 9, 9]})"


def test_run_with_cache_runs_without_autograd_unless_asked(tiny, tokens):
    logits, cache = tiny.run_with_cache(tokens, names="hook_embed")
    assert not logits.requires_grad  # no graph: memory is the model plus the cache
    logits, _ = tiny.run_with_cache(tokens, names="hook_embed", grad=True)
    assert logits.requires_grad
    logits.sum().backward()
    assert tiny.W_E.grad is not None
    tiny.zero_grad(set_to_none=True)


def test_hook_points_that_never_fire_are_an_error(tiny, tokens):
    """A model patched after construction must not return a silently empty cache."""
    original = tiny.blocks[1].attn.hook_pattern.forward
    tiny.blocks[1].attn.forward = lambda x: torch.zeros_like(x)  # bypasses its hook points
    try:
        with pytest.raises(RuntimeError, match="never fired.*blocks.1.attn.hook_pattern"):
            tiny.run_with_cache(tokens, names=lambda n: n.endswith("hook_pattern"))
    finally:
        del tiny.blocks[1].attn.forward
    assert tiny.blocks[1].attn.hook_pattern.forward == original


def test_to_str_tokens_accepts_one_id(tiny):
    assert tiny.to_str_tokens(torch.tensor(3)) == ["c"]


def test_integer_cache_dtype_is_refused(tiny, tokens):
    with pytest.raises(TypeError, match=r"dtype=torch.int64: cached activations need a floating"):
        tiny.run_with_cache(tokens, "blocks.0.hook_resid_pre", dtype=torch.int64)
    _, cache = tiny.run_with_cache(tokens, "blocks.0.hook_resid_pre", dtype=torch.float16)
    assert cache["blocks.0.hook_resid_pre"].dtype == torch.float16
