"""BooleanNet: exact truth table, and the review's AND/OR point about patching direction."""

import pytest
import torch

from mechscope.toy.boolean import NODES, BooleanNet, truth_table


def patched(net, target, source, node):
    """Output of ``net(target)`` with ``node`` replaced by its value on ``source``."""
    _, cache = net.run_with_cache(source, names=[node])
    with net.hooks([(node, lambda act, hook: cache[hook.name])]):
        return float(net(target))


def test_truth_table_exact():
    net = BooleanNet()
    x, y = truth_table()
    assert torch.equal(net(x), y)
    assert y.tolist() == [0, 1, 0, 1, 0, 1, 1, 1]


def test_hook_names_and_cache():
    net = BooleanNet()
    assert net.hook_names() == NODES
    out, cache = net.run_with_cache(torch.tensor([1.0, 1.0, 0.0]))
    assert float(out) == 1.0 and float(cache["hook_and"]) == 1.0 and float(cache["hook_c"]) == 0.0
    assert all(not p._forward_hooks for p in net.modules())  # hooks removed


def test_bad_shape_and_name():
    net = BooleanNet()
    with pytest.raises(ValueError, match=r"\[batch, 3\]"):
        net(torch.zeros(2, 2))
    with pytest.raises(KeyError, match="hook_and"):
        net.run_with_cache(torch.zeros(3), names=["hook_andd"])


# OR: clean (1, 1, 1), corrupted (0, 0, 0). The two OR inputs (and, c) are each sufficient
# (denoising one restores y = 1) but neither is necessary (noising one leaves y = 1).
OR_DENOISE = {"hook_a": 0.0, "hook_b": 0.0, "hook_c": 1.0, "hook_and": 1.0}
OR_NOISE = {"hook_a": 1.0, "hook_b": 1.0, "hook_c": 1.0, "hook_and": 1.0}
# AND: clean (1, 1, 0), corrupted (0, 0, 0). a and b are each necessary (noising one breaks
# y) but neither is sufficient (denoising one leaves y = 0).
AND_DENOISE = {"hook_a": 0.0, "hook_b": 0.0, "hook_c": 0.0, "hook_and": 1.0}
AND_NOISE = {"hook_a": 0.0, "hook_b": 0.0, "hook_c": 1.0, "hook_and": 0.0}


@pytest.mark.parametrize(
    "clean, denoise, noise",
    [([1.0, 1.0, 1.0], OR_DENOISE, OR_NOISE), ([1.0, 1.0, 0.0], AND_DENOISE, AND_NOISE)],
    ids=["or", "and"],
)
def test_noising_vs_denoising(clean, denoise, noise):
    net = BooleanNet()
    clean, corrupted = torch.tensor(clean), torch.zeros(3)
    assert float(net(clean)) == 1.0 and float(net(corrupted)) == 0.0
    for node in denoise:
        assert patched(net, corrupted, clean, node) == denoise[node], node
        assert patched(net, clean, corrupted, node) == noise[node], node
    # patching the output node itself moves everything, in both directions
    assert patched(net, corrupted, clean, "hook_out") == 1.0
    assert patched(net, clean, corrupted, "hook_out") == 0.0
