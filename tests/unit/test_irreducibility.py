import math

import pytest
import torch

from mechscope.irreducibility import mixture_index, separability_index


def _circle(n=120):
    theta = 2 * math.pi * torch.arange(n) / n
    return torch.stack([theta.cos(), theta.sin()], dim=1)


def test_circle_is_not_separable_but_independent_coordinates_are():
    circle = _circle()
    perm = torch.randperm(len(circle), generator=torch.Generator().manual_seed(0))
    shuffled = torch.stack([circle[:, 0], circle[perm, 1]], dim=1)
    assert separability_index(circle) > 0.5
    assert separability_index(shuffled) < 0.15


def test_separability_is_rotation_invariant_for_a_rotated_independent_pair():
    gen = torch.Generator().manual_seed(1)
    pts = torch.rand(400, 2, generator=gen)  # independent uniform coordinates
    c, s = math.cos(0.6), math.sin(0.6)
    rotated = pts @ torch.tensor([[c, -s], [s, c]])  # dependent in this basis, not in the best one
    assert separability_index(rotated) < 0.1


def test_mixture_index_high_for_two_lines_low_for_a_circle():
    gen = torch.Generator().manual_seed(2)
    v = torch.rand(120, generator=gen) + 0.1
    lines = torch.zeros(120, 2)
    lines[:60, 0], lines[60:, 1] = v[:60], v[60:]
    assert mixture_index(lines) > 0.45
    assert mixture_index(_circle()) < 0.3


def test_bad_shapes_and_arguments_are_named():
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        separability_index(torch.zeros(10, 3))
    with pytest.raises(ValueError, match="epsilon"):
        mixture_index(_circle(), epsilon=0)
