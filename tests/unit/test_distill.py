"""mechscope.distill: fidelity, a tree that recovers a known program and prints it as code that
computes its predictions, the probes' held-out split, the readout leaving the model as it was,
the gridworld agent's distilled policy against its controls, and errors that name the argument."""

from __future__ import annotations

import re

import pytest
import torch

from mechscope.distill import distill_tree, fidelity, policy_readout
from mechscope.probes import fit_probe
from mechscope.rl import ACTIONS, AgentConfig, GridAgent, GridWorld, load_zoo_agent


def _grid_program(n=600, seed=0):
    """Integer features x0, x1 in 0..9 and a 0/1 flag; the target is a known 3-leaf program."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 10, (n, 2), generator=gen).float()
    flag = torch.randint(0, 2, (n, 1), generator=gen).float()
    y = torch.where(x[:, 0] <= 2, 0, torch.where(flag[:, 0] == 0, 1, 2))
    return torch.cat([x, flag], 1), y


def _run(source: str, features, names):
    ns: dict = {}
    exec(source, ns)  # the printed program, run as Python
    used = re.match(r"def program\((.*)\):", source).group(1).split(", ")
    rows = [dict(zip(names, r, strict=True)) for r in features.tolist()]
    return [ns["program"](**{k: row[k] for k in used}) for row in rows]


def test_fidelity_is_the_agreement_fraction():
    assert fidelity(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 0, 0])) == 0.5
    assert fidelity([1, 1, 1], [1, 1, 1]) == 1.0


def test_tree_recovers_a_known_program_and_prints_it_exactly():
    x, y = _grid_program()
    tree = distill_tree(x, y, max_depth=2, feature_names=["a", "b", "door"],
                        class_names=["stay", "walk", "run"])  # fmt: skip
    assert tree.test_fidelity == 1.0 and tree.train_fidelity == 1.0
    assert tree.n_leaves == 3 and tree.depth == 2 and tree.used_features == ("a", "door")
    assert abs(tree.majority - (y[tree.test_index] == torch.bincount(
        y[tree.train_index]).argmax()).float().mean().item()) < 1e-9  # fmt: skip
    assert tree.rules() == (
        "def program(a, door):\n"
        "    if a <= 2:\n"
        "        return 'stay'\n"
        "    if not door:\n"
        "        return 'walk'\n"
        "    return 'run'"
    )
    assert _run(tree.rules(), x, ["a", "b", "door"]) == [tree.class_names[i] for i in y]


def test_printed_program_computes_the_predictions_on_real_valued_features():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(500, 5, generator=gen)
    y = ((x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()).clamp(max=1)
    tree = distill_tree(x, y, max_depth=4)
    names = [f"x{i}" for i in range(5)]
    printed = torch.tensor([int(c) for c in _run(tree.rules(), x, names)])
    assert fidelity(printed, tree.predict(x)) >= 0.99  # thresholds printed to 4 digits
    assert tree.test_fidelity > 0.85 > tree.majority  # learnable, and not by the majority alone
    deeper = distill_tree(x, y, max_depth=None)
    assert deeper.train_fidelity == 1.0 and deeper.n_leaves > tree.n_leaves


def test_shuffled_targets_give_no_more_than_the_majority():
    x, y = _grid_program(seed=2)
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    tree = distill_tree(x, y, max_depth=3)
    assert tree.test_fidelity < tree.majority + 0.08


def test_split_is_the_probes_held_out_split():
    x, y = _grid_program()
    probe = fit_probe(x, y, kind="lstsq", test_frac=0.25, seed=3)
    tree = distill_tree(x, y, test_frac=0.25, seed=3)
    assert torch.equal(tree.test_index, probe.test_index)
    assert torch.equal(tree.train_index, probe.train_index)


def _small():
    world = GridWorld.random(4, n_walls=2, seed=0)
    agent = GridAgent(AgentConfig(size=4, d_model=8, d_mlp=16, seed=0))
    pos, goal = world.states()
    return agent, world, pos, goal, world.observe(pos, goal)


def _hooks_left(agent) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in agent.modules())


def test_readout_matches_a_cached_run_and_leaves_the_agent_as_it_was():
    agent, world, pos, goal, obs = _small()
    hook = "blocks.1.hook_resid_pre"
    logits, cache = agent.run_with_cache(obs, names=[hook])
    probe = fit_probe(cache[hook], world.cell_index(goal), kind="lstsq")
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    agent.train()
    r = policy_readout(agent, obs, hook, probes={"goal": probe})
    assert torch.equal(r.acts, cache[hook]) and torch.equal(r.actions, logits.argmax(-1))
    assert torch.equal(r.decoded["goal"], probe.predict(cache[hook]))
    with pytest.raises(KeyError):
        policy_readout(agent, obs, "blocks.1.hook_nope")
    assert agent.training and _hooks_left(agent) == 0
    assert all(torch.equal(before[k], v) for k, v in agent.state_dict().items())
    assert not r.acts.requires_grad


def test_shipped_agent_distils_from_its_units_not_from_a_random_init():
    agent, world = load_zoo_agent()
    pos, goal = world.states()
    obs, hook = world.observe(pos, goal), "blocks.1.hook_resid_pre"
    trained = policy_readout(agent, obs, hook)
    untrained = policy_readout(GridAgent(AgentConfig(seed=1)), obs, hook)
    units = distill_tree(trained.acts, trained.actions, max_depth=3, class_names=ACTIONS)
    control = distill_tree(untrained.acts, trained.actions, max_depth=3)
    positions = torch.cat([pos, goal, goal - pos], 1)  # the true cells, an upper bound for probes
    cells = distill_tree(positions, trained.actions, max_depth=3)
    assert units.test_fidelity > 0.9 and units.n_leaves <= 8
    assert control.test_fidelity < 0.6 and cells.test_fidelity < 0.8
    assert min(units.majority, control.majority) < 0.4  # four actions, none dominant


def test_bad_arguments_name_the_argument_and_the_fix():
    x, y = _grid_program(n=50)
    cases = [
        (lambda: distill_tree(x, y, max_depth=0), "max_depth=0"),
        (lambda: distill_tree(x, y, max_depth=True), "max_depth=True"),
        (lambda: distill_tree(x, y, feature_names=["a", "b"]), "feature_names="),
        (lambda: distill_tree(x, y, feature_names=["a", "b", "not ok"]), "identifiers"),
        (lambda: distill_tree(x, y, class_names=["one"]), "class_names has 1"),
        (lambda: distill_tree(x, y.float()), "targets has shape"),
        (lambda: distill_tree(x, y[:-1]), "49"),
        (lambda: distill_tree(x[:, 0], y), "features has shape"),
        (lambda: distill_tree(x * float("nan"), y), "NaN"),
        (lambda: distill_tree(x, y, test_frac=1.0), "test_frac"),
        (lambda: fidelity([0, 1], [0]), "same n"),
    ]
    for fn, needle in cases:
        with pytest.raises(ValueError, match=re.escape(needle)):
            fn()
    agent, world, pos, goal, obs = _small()
    with pytest.raises(TypeError, match="probes="):
        policy_readout(agent, obs, "hook_embed", probes=[1])
    with pytest.raises(TypeError, match="hook="):
        policy_readout(agent, obs, ["hook_embed"])
    wide = fit_probe(torch.randn(40, 3), torch.arange(40) % 2, kind="lstsq")
    with pytest.raises(ValueError, match="reads 3 dimensions"):
        policy_readout(agent, obs, "hook_embed", probes={"p": wide})
    assert _hooks_left(agent) == 0
