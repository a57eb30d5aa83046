"""Re-measure facts-truth-2l (notebook 23's model) from its shipped weights."""

import pytest
import torch

import mechscope
from mechscope.models.zoo import build
from mechscope.toy import facts_truth as ft
from mechscope.zoo.recipes_truth import TRUTH_EVAL, concept_metrics, truth_accuracy

NAME = "facts-truth-2l"


def test_weights_are_the_carded_ones_and_tiny(model, check_shipped):
    blob = check_shipped(model)
    assert model.cfg.d_model <= 64 and len(blob) < 150_000


def test_truth_accuracy_reproduces_and_generalises(model):
    for split in ("train", "heldout"):
        m = truth_accuracy(model, split, **TRUTH_EVAL)
        for key, value in m.items():
            assert value == pytest.approx(model.card["metrics"][f"truth_{split}_{key}"], abs=2e-3)
    assert model.card["metrics"]["truth_heldout_accuracy"] >= 0.9  # new prefix / wrong answers
    texts = ["The Colosseum is in Rome .", "The Colosseum is not in Rome .",
             "They say Lena Marsh does not play the piano ."]  # fmt: skip
    assert (ft.truth_logits(model, texts).sign() == torch.tensor([1.0, -1.0, 1.0])).all()


def test_ccs_and_probe_per_layer_reproduce(model):
    measured = concept_metrics(model)
    for key, value in measured.items():
        assert value == pytest.approx(model.card["metrics"][key], abs=1e-3), key
    # CCS, without labels, reads truth in layer 1 as well as a supervised probe
    assert measured["ccs_blocks.1.hook_resid_post"] >= 0.95
    assert measured["ccs_blocks.0.hook_resid_mid"] < 0.6  # before any MLP: not yet


def test_random_init_control_has_no_truth_for_ccs(model):
    rand = build(model.card).eval()
    pos, neg, labels = ft.contrast_pairs(n_wrong=1, seed=0)
    hook = "blocks.1.hook_resid_post"
    xp = ft.statement_activations(rand, [s.text for s in pos], [hook])[hook]
    xn = ft.statement_activations(rand, [s.text for s in neg], [hook])[hook]
    res = mechscope.ccs.fit_ccs(xp[::2], xn[::2], seed=0)
    assert res.accuracy(xp[1::2], xn[1::2], labels[1::2]) < 0.62
