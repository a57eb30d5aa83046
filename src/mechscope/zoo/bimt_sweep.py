"""BIMT against its controls over seeds (notebook 19, review §5.1 and §5.4).

``python -m mechscope.zoo.bimt_sweep [--out PATH]`` (default: ``bimt_sweep.json`` beside this
file) trains :func:`mechscope.bimt.train_bimt` with kinds ``none`` / ``l1`` / ``bimt`` for
seeds 0-2 (default strength and steps) and records held-out accuracy, wiring cost and the
circuit found by :func:`mechscope.bimt.prune_to_faithfulness` (target 0.98). Notebook 19
retrains seed 0 and checks it matches. Seeded: reruns are bit-identical on one machine (CPU,
one thread).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..bimt import KINDS, accuracy, connection_cost, prune_to_faithfulness, train_bimt

SAVED = Path(__file__).with_suffix(".json")
SEEDS = (0, 1, 2)


def measure(kind: str, seed: int) -> dict:
    """One row of the sweep: train, then accuracy, wiring and the pruned circuit."""
    model = train_bimt(kind, seed=seed)
    c = prune_to_faithfulness(model, 0.98)
    return {
        "kind": kind, "seed": seed, "accuracy": [round(a, 4) for a in accuracy(model)],
        "wire": round(connection_cost(model), 4), "edges": c.n_edges, "n_total": c.n_total,
        "shared_fraction": round(c.shared_fraction, 4), "cross_inputs": c.cross_inputs,
    }  # fmt: skip


def saved() -> dict:
    """The sweep's saved rows (``bimt_sweep.json``, written by :func:`main`)."""
    return json.loads(SAVED.read_text())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(SAVED))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for seed in SEEDS:
        for kind in KINDS:
            rows.append(measure(kind, seed))
            print(rows[-1], flush=True)
    out = {"rows": rows, "torch": torch.__version__}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
