"""Curve-detector recipe (review §3.3 motifs, notebook 25 §9): ``curves-cnn``.

``python -m mechscope.zoo.train curves-cnn`` writes ``zoo/vision/curves-cnn.safetensors`` and
its card: a two-branch CNN (:class:`mechscope.vision.curves.CurveCNN`) trained to tell which way
a generated curve bulges (8 classes), or that the image is a line or a blob. Seeded and
single-threaded, so a rerun gives the same weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..vision.cnn import accuracy
from ..vision.curves import CurveCNN, CurveConfig, branch_ablation, curve_dataset, tuning_curves
from ._common import adamw, run_record, train_steps

N_TRAIN, N_TEST = 20_000, 2_000
TEST_SEED = 12345  # the held-out images: a different generator seed from training's
L1 = 0.01  # activation penalty on hook_pooled (0 gives the dense-code control)


def train_curves_cnn(steps: int = 3000, seed: int = 0, l1: float = L1, name: str = "curves-cnn"):
    """AdamW on minibatches of 20,000 generated images; returns ``(model, card)``.

    The card's metrics are re-measured from the shipped weights by tests/unit/test_curves.py.
    """
    cfg = CurveConfig(seed=seed)
    images, labels = curve_dataset(N_TRAIN, seed=seed)
    test_images, test_labels = curve_dataset(N_TEST, seed=TEST_SEED)
    optim = {"name": "AdamW", "lr": 3e-3, "weight_decay": 0.01, "betas": [0.9, 0.999]}
    data = {"batch": 128, "n_train": N_TRAIN, "recipe": "mechscope.vision.curves.curve_dataset"}
    torch.manual_seed(seed)
    model = CurveCNN(cfg).train()
    opt = adamw(model, optim)
    gen = torch.Generator().manual_seed(seed + 1)

    pooled = []

    def keep(act, hook):
        pooled.append(act)

    def loss_at(step):
        idx = torch.randint(N_TRAIN, (data["batch"],), generator=gen)
        pooled.clear()
        with model.hooks([("hook_pooled", keep)]):
            logits = model(images[idx])
        # An L1 penalty on the pooled channels: few channels per image, so each must answer alone
        return F.cross_entropy(logits, labels[idx]) + l1 * pooled[0].abs().sum(-1).mean()

    losses, wall = train_steps(model, opt, steps, loss_at, name)
    model.eval()
    tuning = tuning_curves(model, "hook_layer2")
    ablation = branch_ablation(model, test_images, test_labels)
    card = {
        "name": name,
        "architecture": "CurveCNN",
        "description": "A 5x5 conv (8 channels), 2x2 max-pool, two parallel 3x3 conv branches "
        "(8 channels each, concatenated), a global max-pool and a linear readout, on generated 16x16 "
        "curves (8 orientations), lines and blobs.",
        "config": cfg.to_dict(),
        "data": data,
        "training": run_record(
            seed,
            steps,
            optim,
            wall,
            loss="cross-entropy over 10 classes (8 curve orientations, line, blob) + l1 * "
            "sum |hook_pooled| (mean over the batch)",
            l1=l1,
            final_loss_mean_last_100=sum(losses[-100:]) / 100,
        ),
        "metrics": {
            "test_accuracy": round(accuracy(model, test_images, test_labels), 4),
            "n_test": N_TEST,
            "test_seed": TEST_SEED,
            "layer2_curve_detectors": len(tuning.detectors()),
            "layer2_mean_tuning_index": round(float(tuning.tuning_index.nanmean()), 4),
            "branch_ablation": {
                k: {f: round(v, 4) for f, v in d.items()} for k, d in ablation.items()
            },
        },
        "references": [
            "Cammarata et al. 2020, Curve Detectors (Distill)",
            "Voss et al. 2021, Branch Specialization (Distill)",
        ],
    }
    return model, card


def train_curves_cnn_dense(steps: int = 3000, seed: int = 0):
    """The control: the same recipe without the activation penalty (a dense code)."""
    return train_curves_cnn(steps, seed, l1=0.0, name="curves-cnn-dense")
