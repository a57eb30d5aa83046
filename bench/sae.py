"""SAE training: mechscope vs SAELens, side by side on the same cached activations.

Run by hand (not a test):

    .venv-bench/bin/python bench/sae.py            # writes bench/out/sae.json

SAELens lives in a SEPARATE venv, ``.venv-bench`` (torch 2.13.0 CPU first, then
``pip install sae-lens``, then ``pip install -e . --no-deps``): installing it into the
main ``.venv`` would not replace torch or transformers, but it pulls in ~40 packages
(transformer-lens, datasets, pandas, wandb, ...) that the project does not need.

What is compared: one TopK SAE (Gao et al. 2024) per library, d_in 256 -> d_sae 256,
k = 8, batch 1024, Adam lr 1e-3, AuxK dead-latent loss (coefficient 1/32, k_aux =
d_in / 2, dead after the same number of inputs), on the activations of
``grammar-2l``'s ``blocks.0.mlp.hook_post`` (the shipped SAE's data), one CPU thread.
SAELens' side is its ``TopKTrainingSAE.training_forward_pass`` driven by a loop that
repeats ``SAETrainer._train_step`` (fired-latent tracking, backward, its grad-norm clip
at 1.0, Adam step); mechscope's is ``mechscope.sae_train.train_sae``. Both see the same
batches in the same order, in float32 on one thread (``torch.set_num_threads(1)``, set once
for the whole process). Quality is measured by one function on held-out activations.

Timing: each arm first trains a short warm-up run (untimed), then ``REPEATS`` full runs with
the arms alternating (mechscope first on even repeats, SAELens first on odd ones) so that
load from other work on the machine falls on both; the table shows the median throughput
per arm, and the ratio is of the medians. Only the training loop is timed (mechscope's own
``card["training"]["wall_time_s"]``; the same span around SAELens' loop). Both runs are
seeded, so every repeat gives the same weights: quality is from the first.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch

import mechscope
from mechscope.sae import SAEConfig
from mechscope.sae_train import train_sae
from mechscope.zoo.recipes_features import sae_eval_data

OUT = Path(__file__).parent / "out"
SITE = "blocks.0.mlp.hook_post"
D_SAE, K, BATCH, LR, STEPS, DEAD_STEPS = 256, 8, 1024, 1e-3, 600, 20
WARMUP_STEPS, REPEATS = 20, 3


@torch.no_grad()
def quality(encode, decode, acts: torch.Tensor) -> dict:
    f = encode(acts)
    err = (decode(f) - acts).pow(2).sum(-1)
    var = (acts - acts.mean(0)).pow(2).sum(-1)
    return {
        "mse": float(err.mean()),
        "explained_variance": float(1 - err.sum() / var.sum()),
        "l0": float((f > 0).float().sum(-1).mean()),
        "dead_fraction": float(((f > 0).sum(0) == 0).float().mean()),
    }


def run_mechscope(train: torch.Tensor, steps: int = STEPS) -> tuple[dict, object]:
    cfg = SAEConfig(d_in=train.shape[1], d_sae=D_SAE, activation="topk", k=K, site=SITE, seed=0)
    sae = train_sae(
        train,
        cfg,
        steps=steps,
        batch_size=BATCH,
        lr=LR,
        # SAELens calls a latent dead once it has not fired for MORE than DEAD_STEPS steps;
        # mechscope once it has not fired for AT LEAST dead_window inputs.
        dead_window=(DEAD_STEPS + 1) * BATCH,
        progress=False,
    )
    wall = sae.card["training"]["wall_time_s"]  # the training loop only, as for SAELens
    return {"wall_s": wall, "acts_per_s": steps * BATCH / wall}, sae


def run_saelens(
    train: torch.Tensor, order: torch.Tensor, steps: int = STEPS
) -> tuple[dict, object]:
    from sae_lens.saes.sae import TrainStepInput
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    cfg = TopKTrainingSAEConfig(
        d_in=train.shape[1],
        d_sae=D_SAE,
        k=K,
        dtype="float32",
        device="cpu",
        rescale_acts_by_decoder_norm=True,
        aux_loss_coefficient=1 / 32,
    )
    torch.manual_seed(0)
    sae = TopKTrainingSAE(cfg)
    with torch.no_grad():
        sae.b_dec.copy_(train.mean(0))  # same start for the bias as mechscope
    opt = torch.optim.Adam(sae.parameters(), lr=LR)
    since_fired = torch.zeros(D_SAE)
    start = time.perf_counter()
    for step in range(steps):
        x = train[order[step]]
        sae.train()
        out = sae.training_forward_pass(
            TrainStepInput(
                sae_in=x,
                coefficients={},
                dead_neuron_mask=(since_fired > DEAD_STEPS).bool(),
                n_training_steps=step,
                is_logging_step=False,
            )
        )
        with torch.no_grad():
            did_fire = out.feature_acts.bool().float().sum(-2).bool()
            since_fired += 1
            since_fired[did_fire] = 0
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    wall = time.perf_counter() - start
    sae.eval()
    return {"wall_s": wall, "acts_per_s": steps * BATCH / wall}, sae


def main() -> None:
    torch.set_num_threads(1)
    model = mechscope.load("grammar-2l")
    _, train = sae_eval_data(model, SITE, 2048, 777)
    _, held_out = sae_eval_data(model, SITE, 512, 12345)
    # mechscope shuffles with torch.randperm(n, generator=seed + 1) once per pass; give SAELens
    # exactly the same batches.
    gen = torch.Generator().manual_seed(1)
    perm, batches, pos = torch.randperm(len(train), generator=gen), [], 0
    for _ in range(STEPS):
        if pos + BATCH > len(train):
            perm, pos = torch.randperm(len(train), generator=gen), 0
        batches.append(perm[pos : pos + BATCH])
        pos += BATCH
    order = torch.stack(batches)

    arms = {
        "mechscope": lambda **kw: run_mechscope(train, **kw),
        "sae_lens": lambda **kw: run_saelens(train, order, **kw),
    }
    for run in arms.values():
        run(steps=WARMUP_STEPS)  # warm-up: first-call allocations and dispatch, not timed
    speeds = {name: [] for name in arms}
    rows = {}
    for r in range(REPEATS):
        for name in arms if r % 2 == 0 else reversed(arms):
            speed, sae = arms[name]()
            speeds[name].append(speed)
            if name not in rows:
                rows[name] = quality(sae.encode, sae.decode, held_out)
    for name, runs in speeds.items():
        acts = sorted(s["acts_per_s"] for s in runs)
        rows[name] = {
            "acts_per_s": statistics.median(acts),
            "wall_s": statistics.median(s["wall_s"] for s in runs),
            "acts_per_s_runs": [round(s["acts_per_s"]) for s in runs],
        } | rows[name]

    m, p = rows["mechscope"], rows["sae_lens"]
    ratios = {
        "throughput (mechscope / SAELens, higher is better)": m["acts_per_s"] / p["acts_per_s"],
        "mse (mechscope / SAELens, lower is better)": m["mse"] / p["mse"],
        "l0 (mechscope / SAELens)": m["l0"] / p["l0"],
    }
    print(
        f"TopK SAE d_in={train.shape[1]} d_sae={D_SAE} k={K} batch={BATCH} steps={STEPS}, "
        f"{len(train)} train / {len(held_out)} held-out activations, float32, "
        f"{torch.get_num_threads()} thread(s), median of {REPEATS} alternating runs "
        f"after a {WARMUP_STEPS}-step warm-up"
    )
    print(
        f"{'':12}{'acts/s':>10}{'wall s':>9}{'mse':>9}{'EV':>8}{'L0':>6}{'dead':>7}  runs (acts/s)"
    )
    for name, r in rows.items():
        print(
            f"{name:12}{r['acts_per_s']:>10.0f}{r['wall_s']:>9.2f}{r['mse']:>9.4f}"
            f"{r['explained_variance']:>8.4f}{r['l0']:>6.2f}{r['dead_fraction']:>7.3f}"
            f"  {r['acts_per_s_runs']}"
        )
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    import sae_lens

    OUT.mkdir(exist_ok=True)
    (OUT / "sae.json").write_text(
        json.dumps(
            {
                "config": {
                    "d_in": train.shape[1],
                    "d_sae": D_SAE,
                    "k": K,
                    "batch": BATCH,
                    "lr": LR,
                    "steps": STEPS,
                    "dead_steps": DEAD_STEPS,
                    "warmup_steps": WARMUP_STEPS,
                    "repeats": REPEATS,
                    "threads": torch.get_num_threads(),
                    "dtype": "float32",
                    "site": SITE,
                    "model": "grammar-2l",
                },
                "results": rows,
                "ratios": ratios,
                "versions": {
                    "sae_lens": sae_lens.__version__,
                    "torch": torch.__version__,
                    "python": platform.python_version(),
                },
            },
            indent=2,
        )
        + "\n"
    )
    print("wrote", OUT / "sae.json")


if __name__ == "__main__":
    main()
