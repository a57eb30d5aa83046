"""Vision recipe (issue 19, the review's §8): ``digits-cnn``, a small CNN on sklearn's 8x8 digits.

``python -m mechscope.zoo.train digits-cnn`` writes ``zoo/vision/digits-cnn.safetensors`` and
its card. Seeded and single-threaded, so a rerun gives the same weights; it takes seconds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..vision.cnn import CNNConfig, DigitsCNN, accuracy, load_digits
from ..vision.filters import edge_score
from ._common import adamw, run_record, train_steps


def train_digits_cnn(steps: int = 1500, seed: int = 0):
    """Adam on minibatches of the 1,438 training digits; returns ``(model, card)``.

    The card's metrics (test accuracy on the 359 held-out digits, conv1's edge score) are
    re-measured from the shipped weights by tests/integration/test_zoo_vision.py.
    """
    cfg = CNNConfig(seed=seed)
    images, labels = load_digits("train")
    test_images, test_labels = load_digits("test")
    optim = {"name": "AdamW", "lr": 3e-3, "weight_decay": 0.1, "betas": [0.9, 0.999]}
    data = {"batch": 64, "recipe": "sklearn.datasets.load_digits, pixels / 16; seeded 80/20 split"}
    torch.manual_seed(seed)
    model = DigitsCNN(cfg).train()
    opt = adamw(model, optim)
    gen = torch.Generator().manual_seed(seed + 1)

    def loss_at(step):
        idx = torch.randint(len(labels), (data["batch"],), generator=gen)
        return F.cross_entropy(model(images[idx]), labels[idx])

    losses, wall = train_steps(model, opt, steps, loss_at, "digits-cnn")
    model.eval()
    card = {
        "name": "digits-cnn",
        "description": "Two 3x3 conv layers (16 channels each), 2x2 max-pool, linear readout, "
        "on scikit-learn's bundled 8x8 handwritten digits.",
        "config": cfg.to_dict(),
        "data": data,
        "training": run_record(
            seed,
            steps,
            optim,
            wall,
            loss="cross-entropy over the 10 classes",
            final_loss_mean_last_100=sum(losses[-100:]) / 100,
        ),
        "metrics": {
            "test_accuracy": round(accuracy(model, test_images, test_labels), 4),
            "train_accuracy": round(accuracy(model, images, labels), 4),
            "n_test": len(test_labels),
            "conv1_edge_score": round(
                float(edge_score(model.conv1.conv.weight.detach()).values.mean()), 4
            ),
        },
        "references": [
            "Olah, Mordvintsev & Schubert 2017, Feature Visualization (Distill)",
            "Alpaydin & Kaynak 1998, UCI optical recognition of handwritten digits",
        ],
    }
    return model, card
