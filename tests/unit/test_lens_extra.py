"""Attention lens: heads' vocabulary projections sum (with the rest) to DLA's numbers; ranks.
Linear shortcut: exact when the map is learnable, beats the logit lens on a random model."""

import pytest
import torch

from mechscope.attribution import direct_logit_attribution
from mechscope.lens import logit_lens
from mechscope.lens_extra import attention_lens, fit_linear_shortcut, linear_shortcut_lens


@pytest.fixture(scope="module")
def model(small_transformer):
    return small_transformer(5, n_ctx=12)


def test_attention_lens_matches_dla_and_ranks(model):
    tokens = torch.tensor([[1, 5, 7, 3, 2], [4, 9, 6, 3, 8]])
    a = attention_lens(model, tokens)
    assert a.values.shape == (2, 2, 2, 20) and a.labels[:2] == ["L0H0", "L0H1"]
    _, cache = model.run_with_cache(tokens)
    dla = direct_logit_attribution(cache, [4, 11], [7, 7])
    mine = a.values[..., [4, 11]].diagonal(dim1=-2, dim2=-1) - a.values[..., 7]
    assert torch.allclose(mine.reshape(4, 2), dla.values, atol=1e-4)
    top = a.top_k(1)[1][..., 0]
    assert torch.all(a.rank(top[0, 0, 0]).select(2, 0)[0, 0] == 0)
    ranks = a.rank(3)
    assert ranks.shape == (2, 2, 2) and int(ranks.min()) >= 0 and int(ranks.max()) <= 19
    with pytest.raises(ValueError, match="pos="):
        attention_lens(model, tokens, pos=5)
    with pytest.raises(ValueError, match="answer_ids"):
        a.rank([1, 2, 3])


def test_linear_shortcut_beats_logit_lens_and_keeps_final_row(model):
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, 20, (64, 12), generator=gen)
    held = torch.randint(0, 20, (32, 12), generator=gen)
    lens = fit_linear_shortcut(model, train)
    assert lens.values.shape == (2, 33, 32)
    lin, ll = linear_shortcut_lens(model, held, lens), logit_lens(model, held)
    assert torch.allclose(lin.logits[-1], ll.logits[-1], atol=1e-4)
    assert torch.all(lin.mean_kl()[:-1] < ll.mean_kl()[:-1])
    with pytest.raises(ValueError, match="l2="):
        fit_linear_shortcut(model, train, l2=-1.0)
    with pytest.raises(TypeError, match="lens is"):
        linear_shortcut_lens(model, held, "not a lens")
