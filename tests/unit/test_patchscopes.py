"""Patchscopes: patching a prompt's own state into itself reproduces its output at every
layer; at layer 0 a patched token embedding acts as that token; bad inputs name the argument."""

import pytest
import torch

from mechscope.patchscopes import patchscope


@pytest.fixture(scope="module")
def model(small_transformer):
    return small_transformer(2)


def test_self_patch_is_identity_and_layer0_swaps_the_token(model):
    source = torch.tensor([[1, 5, 7, 3], [2, 8, 6, 4]])
    r = patchscope(model, source, source, pos=1, target_pos=1)
    with torch.no_grad():
        out = model(source)[:, -1]
    assert r.values.shape == (3, 2, 20) and r.labels == ["0_pre", "1_pre", "final_post"]
    assert torch.allclose(r.values, out.expand(3, -1, -1), atol=1e-5)
    # one target prompt for every source: at layer 0 (same position) it is the source's run
    target = torch.tensor([[1, 9, 7, 3]])
    r = patchscope(model, source[:1], target, pos=1, target_pos=1)
    assert torch.allclose(r.values[0], out[:1], atol=1e-5)
    assert not torch.allclose(r.baseline, out[:1], atol=1e-3)
    # patching a position before the last at the final residual cannot reach the output
    assert torch.allclose(r.values[-1], r.baseline, atol=1e-5)
    assert r.accuracy([int(out[0].argmax())]).tolist()[0] == 1.0


def test_errors_name_the_argument(model):
    source = torch.tensor([[1, 5, 7, 3], [2, 8, 6, 4]])
    with pytest.raises(ValueError, match="target_pos="):
        patchscope(model, source, source, pos=1, target_pos=7)
    with pytest.raises(ValueError, match="pos="):
        patchscope(model, source, source, pos=True, target_pos=1)
    with pytest.raises(ValueError, match="target has 3 prompts"):
        patchscope(model, source, torch.ones(3, 4, dtype=torch.long), pos=1, target_pos=1)
    r = patchscope(model, source, source, pos=1, target_pos=1)
    with pytest.raises(ValueError, match="answer_ids"):
        r.accuracy([1, 2, 3])
    assert all(not m._forward_hooks for m in model.modules())
