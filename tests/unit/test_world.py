"""Probing a state out of the residual stream and pushing it back in (mechscope.world)."""

import pytest
import torch

from mechscope.world import (
    InterventionResult,
    StateProbe,
    activations_at,
    fit_state_probe,
    intervene_along,
    intervene_to_class,
    push_to_class,
)


def _planted(n=3000, d=12, v=4, c=3, seed=0):
    """Activations whose labels are the argmax of a known linear map (per variable)."""
    g = torch.Generator().manual_seed(seed)
    acts = torch.randn(n, d, generator=g) * 2 + 1
    W = torch.randn(v, c, d, generator=g)
    labels = torch.einsum("nd,vcd->nvc", acts, W).argmax(-1)
    return acts, labels, W


def test_fit_state_probe_recovers_planted_labels():
    acts, labels, _ = _planted(n=2500)
    probe = fit_state_probe(
        acts[:1500], labels[:1500], 3, steps=100, hook="x", classes=("a", "b", "c")
    )
    assert probe.weight.shape == (4, 3, 12) and probe.bias.shape == (4, 3)
    acc = probe.accuracy(acts[1500:], labels[1500:])
    assert acc.shape == (4,) and acc.min() > 0.95
    # A probe on shuffled labels (a control task, Hewitt & Liang 2019) is at chance.
    shuffled = labels[torch.randperm(2500, generator=torch.Generator().manual_seed(1))]
    control = fit_state_probe(acts[:1500], shuffled[:1500], 3, steps=50)
    assert control.accuracy(acts[1500:], shuffled[1500:]).mean() < 0.6


def test_fit_state_probe_missing_and_single_classes():
    acts, labels, _ = _planted(n=600)
    labels[:, 1] = labels[:, 1].clamp(max=1)  # class 2 never seen
    labels[:, 2] = 2  # constant
    probe = fit_state_probe(acts, labels, 3)
    pred = probe.predict(acts)
    assert (pred[:, 1] != 2).all() and (pred[:, 2] == 2).all()
    assert probe.accuracy(acts, labels)[1:3].min() > 0.9


def test_fit_state_probe_bad_inputs():
    acts, labels, _ = _planted(n=50)
    with pytest.raises(ValueError, match=r"same n; got acts \[50, 12\] and labels \[49, 4\]"):
        fit_state_probe(acts, labels[:49], 3)
    with pytest.raises(ValueError, match=r"class ids in \[0, 2\)"):
        fit_state_probe(acts, labels, 2)
    probe = fit_state_probe(acts, labels, 3, steps=5)
    with pytest.raises(ValueError, match=r"d_model=12\], got \[50, 7\]"):
        probe.predict(acts[:, :7])


def test_push_to_class_hits_the_margin_exactly():
    acts, labels, _ = _planted(n=400)
    probe = fit_state_probe(acts, labels, 3)
    variable = torch.arange(400) % 4
    target = (probe.predict(acts)[torch.arange(400), variable] + 1) % 3  # always a change
    unit, amount = push_to_class(probe, acts, variable, target, margin=3.0)
    assert torch.allclose(unit.norm(dim=-1), torch.ones(400), atol=1e-5)
    assert (amount > 0).all()
    rows = torch.arange(400)
    pushed = probe.logits(acts + amount[:, None] * unit)[rows, variable]
    assert (pushed.argmax(-1) == target).all()
    rival = pushed.clone()
    rival[rows, target] = -1e9
    gap = pushed[rows, target] - rival.max(-1).values
    assert (gap > 3.0 - 1e-3).all() and gap.min() < 3.0 + 1e-3  # the margin, no more
    # One rival ahead: one exact push along w[to] - w[from], the Nanda et al. flip.
    before = probe.logits(acts)[rows, variable].argmax(-1)
    single = (gap < 3.0 + 1e-3).nonzero()[0]
    flip = (
        probe.weight[variable[single], target[single]]
        - probe.weight[variable[single], before[single]]
    )
    assert torch.allclose(unit[single], flip / flip.norm(), atol=1e-4)
    # Already the target class (by a margin of 0): no push.
    now = probe.predict(acts)[torch.arange(400), variable]
    _, zero = push_to_class(probe, acts, variable, now, margin=0.0)
    assert (zero == 0).all()
    with pytest.raises(ValueError, match="one per row of acts"):
        push_to_class(probe, acts, variable[:3], target)


def test_direction_is_unit_and_raises_its_class():
    probe = StateProbe(torch.tensor([[[3.0, 4.0], [0.0, 1.0]]]), torch.zeros(1, 2))
    assert torch.allclose(probe.direction(0, 0), torch.tensor([0.6, 0.8]))
    assert torch.allclose(probe.direction(0, 1, from_class=0), torch.tensor([-1.0, -1.0]) / 2**0.5)


def test_activations_at_masks_positions(tiny, tokens):
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[0, 2] = mask[1, 5] = True
    acts = activations_at(tiny, tokens, "blocks.1.hook_resid_post", mask=mask)
    _, cache = tiny.run_with_cache(tokens)
    full = cache["blocks.1.hook_resid_post"]
    assert torch.equal(acts, torch.stack([full[0, 2], full[1, 5]]))
    assert activations_at(tiny, tokens, "blocks.0.hook_resid_post").shape == (18, 16)
    with pytest.raises(ValueError, match="one bool per"):
        activations_at(tiny, tokens, "blocks.0.hook_resid_post", mask=mask[:, :3])


def test_intervene_along_equals_editing_the_stream_by_hand(tiny, tokens):
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(2, 16, generator=g)
    amounts = torch.tensor([2.0, -1.5])
    positions = torch.tensor([3, 6])
    out = intervene_along(
        tiny, tokens, hooks="blocks.0.hook_resid_post", directions=direction, amounts=amounts,
        pos=positions,
    )  # fmt: skip
    _, cache = tiny.run_with_cache(tokens)
    resid = cache["blocks.0.hook_resid_post"].clone()
    resid[torch.arange(2), positions] += amounts[:, None] * direction
    expected = tiny.forward_from(1, resid)
    assert torch.allclose(out, expected, atol=1e-5)
    plain = tiny(tokens)
    # Causal: positions before the edit are untouched, the edited one moves.
    assert torch.equal(out[0, :3], plain[0, :3]) and torch.equal(out[1, :6], plain[1, :6])
    assert not torch.allclose(out[0, 3], plain[0, 3])
    # Zero amount = the plain forward pass; two hooks = two edits.
    assert torch.allclose(
        intervene_along(
            tiny, tokens, hooks="blocks.1.hook_resid_pre", directions=direction, amounts=0.0
        ),
        plain,
    )
    two = intervene_along(
        tiny, tokens, hooks=["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"],
        directions=direction[0], amounts=1.0,
    )  # fmt: skip
    assert not torch.allclose(two[:, -1], plain[:, -1])


def test_intervene_along_leaves_the_model_as_it_came(tiny, tokens):
    tiny.train()
    tiny.W_E.requires_grad_(False)
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    hooks_before = [len(m._forward_hooks) for m in tiny.modules()]
    h = "blocks.0.hook_resid_post"
    with pytest.raises(
        ValueError,
        match="directions has 5 entries but hook 'blocks.0.hook_resid_post' has width 16",
    ):
        intervene_along(tiny, tokens, hooks=h, directions=torch.ones(5), amounts=1.0)
    with pytest.raises(KeyError, match="Unknown hook point"):
        intervene_along(tiny, tokens, hooks=h + "x", directions=torch.ones(16), amounts=1.0)
    with pytest.raises(ValueError, match=r"pos must be an int or \[batch\] = \[2\]"):
        intervene_along(
            tiny, tokens, hooks=h, directions=torch.ones(16), amounts=1.0, pos=[1, 2, 3]
        )
    with pytest.raises(ValueError, match="directions must be"):
        intervene_along(tiny, tokens, hooks=h, directions=torch.ones(3, 16), amounts=1.0)
    intervene_along(tiny, tokens, hooks=h, directions=torch.ones(16), amounts=1.0)
    assert [len(m._forward_hooks) for m in tiny.modules()] == hooks_before
    assert tiny.training and not tiny.W_E.requires_grad and tiny.W_U.requires_grad
    for k, v in tiny.state_dict().items():
        assert torch.equal(v, before[k]), k
    tiny.W_E.requires_grad_(True)
    tiny.eval()


def test_intervene_to_class_is_the_push_computed_on_the_stream(tiny, tokens):
    g = torch.Generator().manual_seed(1)
    hook = "blocks.0.hook_resid_post"
    probe = StateProbe(torch.randn(3, 3, 16, generator=g), torch.zeros(3, 3), hook=hook)
    variable, target, positions = torch.tensor([0, 2]), torch.tensor([1, 2]), torch.tensor([4, 7])
    res = intervene_to_class(
        tiny, tokens, probe, variable, to_class=target, pos=positions, margin=2.5
    )
    out, amounts = res.logits, res.amounts
    assert isinstance(res, InterventionResult) and res.values is res.logits
    acts = activations_at(tiny, tokens, hook)[torch.arange(2) * 9 + positions]
    unit, amount = push_to_class(probe, acts, variable, target, margin=2.5)
    assert amounts.shape == (1, 2) and torch.allclose(amounts[0], amount)
    expected = intervene_along(
        tiny, tokens, hooks=hook, directions=unit, amounts=amount, pos=positions
    )
    assert torch.allclose(out, expected, atol=1e-5)
    # With a second probe one layer up, that layer is pushed on the already-edited stream.
    up = StateProbe(probe.weight, probe.bias, hook="blocks.1.hook_resid_post")
    both = intervene_to_class(
        tiny, tokens, [probe, up], variable, to_class=target, pos=positions, margin=2.5
    ).amounts
    assert both.shape == (2, 2) and torch.allclose(both[0], amount)
    with pytest.raises(ValueError, match="needs its hook"):
        no_hook = StateProbe(probe.weight, probe.bias)
        intervene_to_class(tiny, tokens, no_hook, variable, to_class=target)
    assert all(len(m._forward_hooks) == 0 for m in tiny.modules())


def test_intervene_to_class_cleans_up_when_the_hook_raises(tiny, tokens):
    tiny.train()
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    wrong = StateProbe(torch.zeros(2, 3, 7), torch.zeros(2, 3), hook="blocks.0.hook_resid_post")
    with pytest.raises(ValueError, match=r"d_model=7\], got \[2, 16\]"):
        intervene_to_class(tiny, tokens, wrong, torch.tensor([0, 1]), to_class=torch.tensor([1, 1]))
    assert all(len(m._forward_hooks) == 0 for m in tiny.modules())
    assert tiny.training and all(p.requires_grad for p in tiny.parameters())
    for k, v in tiny.state_dict().items():
        assert torch.equal(v, before[k]), k
    tiny.eval()
