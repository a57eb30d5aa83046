import pytest
import torch

from mechscope.hooks import resolve_names


def _hook_counts(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_hook_can_replace_activation(tiny, tokens):
    clean = tiny(tokens)
    with tiny.hooks([("blocks.1.hook_attn_out", lambda x, hook: torch.zeros_like(x))]):
        ablated = tiny(tokens)
    assert not torch.allclose(clean, ablated)
    assert torch.equal(tiny(tokens), clean)  # hook gone afterwards


def test_hook_receives_its_name(tiny, tokens):
    seen = []
    tiny.run_with_hooks(
        tokens, [(lambda n: n.endswith("hook_pattern"), lambda x, hook: seen.append(hook.name))]
    )
    assert seen == ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"]


def test_no_hook_left_after_exception_and_weights_unchanged(tiny, tokens):
    before_hooks = _hook_counts(tiny)
    before = {k: v.clone() for k, v in tiny.state_dict().items()}

    def boom(x, hook):
        raise RuntimeError("fail inside hook")

    with pytest.raises(RuntimeError, match="fail inside hook"):
        with tiny.hooks(
            [("blocks.0.attn.hook_z", boom), ("blocks.1.hook_resid_post", lambda x, h: x * 2)]
        ):
            tiny(tokens)
    assert _hook_counts(tiny) == before_hooks == 0
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())
    assert tiny.training is False


def test_run_with_cache_leaves_no_hooks_on_bad_input(tiny):
    with pytest.raises(ValueError):
        tiny.run_with_cache(torch.zeros(1, 99, dtype=torch.long))
    with pytest.raises(ValueError):
        tiny.run_with_cache(torch.tensor([[0, 50]]))
    assert _hook_counts(tiny) == 0


def test_unknown_hook_name_lists_closest(tiny, tokens):
    with pytest.raises(KeyError) as err:
        with tiny.hooks([("blocks.0.attn.hook_patern", lambda x, h: None)]):
            pass
    assert "blocks.0.attn.hook_pattern" in str(err.value)
    assert _hook_counts(tiny) == 0


def test_typo_after_valid_name_installs_nothing(tiny):
    with pytest.raises(KeyError):
        with tiny.hooks(
            [
                ("blocks.0.hook_resid_pre", lambda x, h: None),
                ("blocks.9.hook_resid_pre", lambda x, h: None),
            ]
        ):
            pass
    assert _hook_counts(tiny) == 0


def test_hook_returning_wrong_shape_is_an_error(tiny, tokens):
    with pytest.raises(ValueError, match=r"returned shape \(2,\), dtype torch.float32; expected"):
        tiny.run_with_hooks(tokens, [("blocks.0.hook_resid_pre", lambda x, h: torch.zeros(2))])
    assert _hook_counts(tiny) == 0


def test_resolve_names_forms():
    valid = ["a.x", "a.y", "b.x"]
    assert resolve_names(None, valid) == valid
    assert resolve_names("a.y", valid) == ["a.y"]
    assert resolve_names(lambda n: n.endswith("x"), valid) == ["a.x", "b.x"]
    assert resolve_names(["b.x", "a.x", "b.x"], valid) == ["b.x", "a.x"]


def test_resolve_names_refuses_a_filter_that_matches_nothing():
    valid = ["a.x", "a.y"]
    with pytest.raises(ValueError, match=r"names=\[\] matches no hook point.*a\.x, a\.y"):
        resolve_names([], valid)
    with pytest.raises(ValueError, match="fwd_hooks=.*matches no hook point"):
        resolve_names(lambda n: n.startswith("z"), valid, what="fwd_hooks")
    with pytest.raises(KeyError, match="names: Unknown hook point 'a.z'.*a.x"):
        resolve_names(["a.x", "a.z"], valid)


def test_hook_returning_another_dtype_names_the_hook(tiny, tokens):
    with pytest.raises(ValueError, match=r"'blocks.1.hook_mlp_out' returned .*float64.*float32"):
        tiny.run_with_hooks(tokens, [("blocks.1.hook_mlp_out", lambda x, h: x.double())])
    assert _hook_counts(tiny) == 0


def test_model_lock_is_per_model_and_shared_by_wrappers(tiny, mlp_model):
    from mechscope.hooks import model_lock

    assert model_lock(tiny) is model_lock(tiny)
    assert model_lock(tiny) is not model_lock(mlp_model)
    holder = torch.nn.Module()
    holder.hf_model = tiny
    assert model_lock(holder) is model_lock(tiny)
