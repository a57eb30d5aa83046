"""Every zoo recipe still runs end to end (a few steps), saves, and loads back.

The shipped weights are re-measured elsewhere; this guards the code that reproduces them.
"""

import json

import pytest
import torch

from mechscope.models.zoo import build
from mechscope.zoo.train import RECIPES, save


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_runs_saves_and_loads(name, tmp_path):
    from safetensors.torch import load_file

    model, card, *rest = RECIPES[name](steps=3)
    save(model, card, tmp_path, checkpoints=rest[0] if rest else None)
    card_back = json.loads((tmp_path / f"{card['name']}.json").read_text())
    for key in ("config", "data", "training", "metrics", "sha256"):
        assert key in card_back, key
    again = build(card_back)
    again.load_state_dict(load_file(str(tmp_path / f"{card['name']}.safetensors")))
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
