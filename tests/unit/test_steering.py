"""Steering: difference-of-means vectors, activation addition, batched strength sweeps."""

import pytest
import torch

from mechscope.steering import (
    SteeringSweepResult,
    random_direction,
    steer,
    steering_hooks,
    steering_sweep,
    steering_vector,
)

SITE = "blocks.1.hook_resid_pre"


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def rand_tokens(batch, n_pos, seed):
    t = torch.randint(1, 11, (batch, n_pos), generator=torch.Generator().manual_seed(seed))
    t[:, 0] = 0
    return t


@pytest.fixture(scope="module")
def toks():
    return rand_tokens(3, 8, 0)


@pytest.fixture(scope="module")
def vec(mlp_model):
    return steering_vector(mlp_model, rand_tokens(5, 8, 1), rand_tokens(4, 6, 2), SITE)


def test_strength_zero_is_the_identity(mlp_model, toks, vec):
    with torch.no_grad():
        clean = mlp_model(toks)
    assert torch.equal(steer(mlp_model, toks, vec, SITE, strength=0.0), clean)
    assert torch.equal(steer(mlp_model, toks, vec, SITE, strength=0.0, pos=[1, -1]), clean)
    res = steering_sweep(mlp_model, toks, vec, SITE, strengths=[0.0, 1.0])
    assert res.kl[0].item() == pytest.approx(0.0, abs=1e-9)
    assert not torch.allclose(steer(mlp_model, toks, vec, SITE, strength=1.0), clean)


def test_steering_adds_strength_times_vector_at_positions(mlp_model, toks, vec):
    with torch.no_grad():
        _, clean = mlp_model.run_with_cache(toks, names=[SITE])
        with steering_hooks(mlp_model, vec, SITE, strength=2.5, pos=[2, -1]):
            _, steered = mlp_model.run_with_cache(toks, names=[SITE])
    delta = steered[SITE] - clean[SITE]  # [batch, pos, d_model]
    assert torch.allclose(delta[:, [2, 7]], (2.5 * vec).expand(3, 2, -1), atol=1e-5)
    assert torch.equal(delta[:, [0, 1, 3, 4, 5, 6]], torch.zeros(3, 6, 16))


def test_vector_is_a_difference_of_means(mlp_model):
    a, b = rand_tokens(5, 8, 1), rand_tokens(4, 6, 2)
    with torch.no_grad():
        _, ca = mlp_model.run_with_cache(a, names=[SITE])
        _, cb = mlp_model.run_with_cache(b, names=[SITE])
    v = steering_vector(mlp_model, a, b, SITE)
    assert v.shape == (16,)
    assert torch.allclose(v, ca[SITE][:, -1].mean(0) - cb[SITE][:, -1].mean(0), atol=1e-6)
    vm = steering_vector(mlp_model, a, b, SITE, pos="mean")
    assert torch.allclose(vm, ca[SITE].mean((0, 1)) - cb[SITE].mean((0, 1)), atol=1e-6)
    assert torch.equal(steering_vector(mlp_model, a, a, SITE), torch.zeros(16))


def test_random_direction_has_the_norm_and_is_seeded(vec):
    r0, r0b, r1 = (
        random_direction(vec, seed=0),
        random_direction(vec, seed=0),
        random_direction(vec, seed=1),
    )
    assert r0.norm().item() == pytest.approx(vec.norm().item(), rel=1e-5)
    assert torch.equal(r0, r0b) and not torch.equal(r0, r1)
    assert abs(torch.cosine_similarity(r0, vec, dim=0).item()) < 0.9


@pytest.mark.parametrize("site", [SITE, "blocks.2.hook_mlp_out", "hook_embed"])
def test_sweep_matches_one_steered_run_per_strength(mlp_model, toks, vec, site):
    strengths = [-1.0, 0.0, 0.5, 3.0]
    res = steering_sweep(
        mlp_model,
        toks,
        vec,
        site,
        strengths=strengths,
        answer_ids=[3, 4],
        pos=[-1, 3],
        batch_size=6,
    )
    assert isinstance(res, SteeringSweepResult) and res.probs.shape == (4, 11)
    with torch.no_grad():
        base = mlp_model(toks)[:, -1].double().log_softmax(-1)
    for i, s in enumerate(strengths):
        logp = steer(mlp_model, toks, vec, site, strength=s, pos=[-1, 3])[:, -1].double()
        logp = logp.log_softmax(-1)
        p = logp.exp()
        assert torch.allclose(res.probs[i], p.mean(0).float(), atol=1e-5)
        kl = (p * (logp - base)).sum(-1).mean()
        assert res.kl[i].item() == pytest.approx(kl.item(), abs=1e-5)
        assert torch.allclose(res.values[i], p.mean(0)[[3, 4]].float(), atol=1e-5)
        top = [tok for tok, _ in res.top_tokens[i]]
        assert top[0] == mlp_model.to_str_tokens(p.mean(0).argmax()[None], prepend_bos=False)[0]
    assert res.answer_labels == ["c", "d"]  # ids 3, 4 of the words a..j (0 is BOS)


def test_sweep_plot_has_one_line_per_target_and_kl(mlp_model, toks, vec):
    res = steering_sweep(
        mlp_model, toks, vec, SITE, strengths=[0, 1, 2], answer_ids=["a", "b", "c"]
    )
    assert res.answer_ids == [1, 2, 3]
    fig = res.plot()
    assert len(fig.data) == 4 and list(fig.data[-1].y) == res.kl.tolist()


def test_errors_name_the_problem(mlp_model, toks, vec):
    with pytest.raises(KeyError, match="blocks.1.hook_resid_pre"):
        steer(mlp_model, toks, vec, "blocks.1.hook_resid_pr")
    with pytest.raises(ValueError, match=r"needs \[batch, pos, d_model\]"):
        steer(mlp_model, toks, vec, "blocks.1.attn.hook_z")
    with pytest.raises(ValueError, match="vector has 8 entries but hook .* has width 16"):
        steer(mlp_model, toks, vec[:8], SITE)
    with pytest.raises(ValueError, match="shape \\[d_model\\]"):
        steer(mlp_model, toks, vec[None], SITE)
    with pytest.raises(ValueError, match=r"pos=8 is out of range: the prompts \(8 tokens\)"):
        steering_sweep(mlp_model, toks, vec, SITE, strengths=[1.0], pos=8)
    with pytest.raises(ValueError, match="read_pos=8"):
        steering_sweep(mlp_model, toks, vec, SITE, strengths=[1.0], read_pos=8)
    with pytest.raises(ValueError, match="2 tokens"):
        steering_sweep(mlp_model, toks, vec, SITE, strengths=[1.0], answer_ids=["a b"])
    with pytest.raises(ValueError, match="'mean'"):
        steering_vector(mlp_model, toks, toks, SITE, pos="last")


def test_model_left_as_it_came_even_on_errors(mlp_model, toks, vec):
    before = hook_count(mlp_model)
    weights = {k: v.clone() for k, v in mlp_model.state_dict().items()}
    grads = {k: p.requires_grad for k, p in mlp_model.named_parameters()}
    mlp_model.train()
    try:
        with pytest.raises(ValueError, match="8 entries"):  # raises inside the forward pass
            steering_sweep(mlp_model, toks, vec[:8], SITE, strengths=[0.0, 1.0])
        with pytest.raises(RuntimeError, match="boom"):
            with steering_hooks(mlp_model, vec, SITE, strength=1.0):
                mlp_model(toks)
                raise RuntimeError("boom")
        steering_sweep(mlp_model, toks, vec, "blocks.0.hook_resid_post", strengths=[0.0, 2.0])
        assert mlp_model.training
    finally:
        mlp_model.eval()
    assert hook_count(mlp_model) == before
    assert all(torch.equal(v, mlp_model.state_dict()[k]) for k, v in weights.items())
    assert grads == {k: p.requires_grad for k, p in mlp_model.named_parameters()}


def test_texts_and_ids_are_one_coercion(mlp_model):
    pos_texts, neg_texts = ["a b c", "d e f"], ["g h i"]
    from_texts = steering_vector(mlp_model, pos_texts, neg_texts, SITE)
    ids = steering_vector(
        mlp_model, mlp_model.to_tokens(pos_texts), mlp_model.to_tokens(neg_texts), SITE
    )
    assert torch.equal(from_texts, ids) and from_texts.norm() > 0
    one = steer(mlp_model, "a b c", from_texts, SITE)
    assert torch.equal(one, steer(mlp_model, mlp_model.to_tokens("a b c"), from_texts, SITE))


def test_bad_vectors_and_positions(mlp_model, toks, vec):
    with pytest.raises(ValueError, match="non-finite"):
        steer(mlp_model, toks, vec * float("inf"), SITE)
    with pytest.raises(TypeError, match="pos=True is a bool"):
        steer(mlp_model, toks, vec, SITE, pos=True)
    with pytest.raises(ValueError, match="strengths must be a non-empty"):
        steering_sweep(mlp_model, toks, vec, SITE, strengths=[])
