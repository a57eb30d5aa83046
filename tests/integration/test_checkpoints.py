"""induction-2l's shipped training checkpoints: they load, and re-measure as the card says."""

import hashlib

import pytest
import torch

import mechscope
from mechscope.dynamics import crossing_step, steepest_interval
from mechscope.models import zoo
from mechscope.zoo.train import checkpoint_metrics


def test_checkpoint_file_matches_card():
    card = zoo.card("induction-2l")
    blob = (zoo.zoo_dir() / "induction-2l.checkpoints.safetensors").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == card["checkpoints"]["sha256"]
    steps = zoo.checkpoint_steps("induction-2l")
    assert steps[0] == 0 and steps[-1] == card["training"]["steps"] and len(steps) >= 15


def test_checkpoints_remeasure_as_the_card_says():
    """First, the phase-change interval, and the last (all 20 take a minute on 2 cores)."""
    card = zoo.card("induction-2l")
    steps = zoo.checkpoint_steps("induction-2l")
    m = card["checkpoints"]["metrics"]
    a, b = steepest_interval(steps, [m[str(s)]["repeated_loss"] for s in steps])
    for step in sorted({steps[0], a, b, steps[-1]}):
        got = checkpoint_metrics(zoo.load_checkpoint("induction-2l", step), card["data"])
        want = card["checkpoints"]["metrics"][str(step)]
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=2e-3), (step, key)


def test_last_checkpoint_is_the_shipped_model_in_float16():
    final = mechscope.load("induction-2l")
    last = zoo.load_checkpoint("induction-2l", zoo.checkpoint_steps("induction-2l")[-1])
    for (name, a), b in zip(final.state_dict().items(), last.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=2e-3 * max(1.0, float(a.abs().max()))), name


def test_phase_change_is_one_interval():
    """The repeated-part loss drops and the induction head forms over the same checkpoint interval."""
    m = zoo.card("induction-2l")["checkpoints"]["metrics"]
    steps = sorted(int(s) for s in m)
    loss = [m[str(s)]["repeated_loss"] for s in steps]
    ind = [m[str(s)]["induction_score"] for s in steps]
    prev = [m[str(s)]["previous_token_score"] for s in steps]
    window = steepest_interval(steps, loss)
    assert window == steepest_interval(steps, ind)
    a, b = steps.index(window[0]), steps.index(window[1])
    assert prev[b] - prev[a] > 0.1  # the previous-token head starts in the same interval
    assert crossing_step(steps, prev) > window[1]  # ...and keeps sharpening afterwards


def test_unknown_checkpoint_lists_steps():
    with pytest.raises(ValueError, match="Available steps: \\[0, 10"):
        zoo.load_checkpoint("induction-2l", 7)


def test_dynamics_helpers():
    assert crossing_step([0, 1, 2, 3], [0.0, 0.1, 0.6, 1.0]) == 2
    assert crossing_step([0, 1, 2], [3.0, 2.0, 0.0]) == 2  # halfway down is 1.5
    assert steepest_interval([0, 1, 2, 3], [3.0, 2.9, 0.5, 0.4]) == (1, 2)
    with pytest.raises(ValueError, match="at least two"):
        steepest_interval([0], [1.0])
