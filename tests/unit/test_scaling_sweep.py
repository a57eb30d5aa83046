"""The scaling-law fit of mechscope.zoo.scaling_sweep (notebook 11) and its saved sweep."""

import math

import pytest
import torch

from mechscope.models import Transformer
from mechscope.zoo import scaling_sweep


def test_fit_recovers_known_law():
    n = torch.tensor([500.0, 1e3, 2e3, 4e3, 8e3, 16e3, 32e3, 64e3])
    loss = 40.0 * n.pow(-0.6) + 1.5
    fit = scaling_sweep.fit_power_law(n, loss)
    assert fit["alpha"] == pytest.approx(0.6, abs=1e-4)
    assert fit["a"] == pytest.approx(40.0, rel=1e-3)
    assert fit["c"] == pytest.approx(1.5, abs=1e-4)
    assert fit["rmse"] < 1e-6
    assert float(scaling_sweep.predict(fit, 1e6)) == pytest.approx(40 * 1e6**-0.6 + 1.5, abs=1e-5)


def test_fit_with_noise_and_without_offset():
    gen = torch.Generator().manual_seed(0)
    n = torch.logspace(3, 5, 10, dtype=torch.float64)
    loss = 200.0 * n.pow(-1.2) + 2.0 + 1e-4 * torch.randn(10, generator=gen, dtype=torch.float64)
    assert scaling_sweep.fit_power_law(n, loss)["alpha"] == pytest.approx(1.2, abs=0.05)
    pure_law = 3.0 * n.pow(-0.3)
    pure = scaling_sweep.fit_power_law(n, pure_law, offset=False)
    assert pure["c"] == 0.0 and pure["alpha"] == pytest.approx(0.3, abs=1e-4)
    # a pure power law fit to data with a floor fits worse than the law with the floor
    assert scaling_sweep.fit_power_law(n, loss, offset=False)["rmse"] > 10 * 1e-4


@pytest.mark.parametrize(
    ("n", "loss", "match"),
    [
        ([1e3, 2e3, 4e3], [2.0, 1.5], "one loss per size"),
        ([1e3, 2e3], [2.0, 1.5], "at least 3"),
        ([0.0, 2e3, 4e3], [2.0, 1.5, 1.2], "n_params must be > 0"),
        ([1e3, 2e3, 4e3], [2.0, math.nan, 1.2], "loss finite"),
    ],
)
def test_fit_rejects_bad_input(n, loss, match):
    with pytest.raises(ValueError, match=match):
        scaling_sweep.fit_power_law(n, loss)


def test_train_width_rejects_wrong_data():
    with pytest.raises(ValueError, match="training_data"):
        scaling_sweep.train_width(4, torch.zeros(3, 24, dtype=torch.long), torch.zeros(2, 24))


def test_saved_sweep_matches_recipe():
    """The JSON is the recipe's output: sizes re-derived from the configs, losses fall with N,
    and the smallest width retrained (a few seconds) reproduces its saved loss."""
    sweep = scaling_sweep.saved()
    rows = sweep["rows"]
    assert [r["d_model"] for r in rows] == scaling_sweep.WIDTHS
    for r in rows:
        model = Transformer(scaling_sweep.config(r["d_model"]))
        assert scaling_sweep.non_embedding_params(model) == r["n_params"]
    assert sweep["settings"] == scaling_sweep.SETTINGS
    losses = [r["loss"] for r in rows]
    assert all(a > b for a, b in zip(losses, losses[1:], strict=False))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        again = scaling_sweep.train_width(
            rows[0]["d_model"], scaling_sweep.training_data(), scaling_sweep.eval_data()
        )
    finally:
        torch.set_num_threads(threads)
    assert again["n_params"] == rows[0]["n_params"]
    assert again["loss"] == pytest.approx(rows[0]["loss"], abs=2e-3)
