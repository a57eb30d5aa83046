"""A scaling-law sweep: held-out loss against model size on the grammar task (notebook 11).

``python -m mechscope.zoo.scaling_sweep [--out PATH]`` (default: ``scaling_sweep.json`` beside
this file) trains 1-layer transformers of several widths (``WIDTHS``; ``d_mlp = 4 d_model``,
two heads) for the same number of steps on the same seeded stream of
mechscope.toy.grammar sentences, measures each one's held-out next-word loss, and writes one
JSON file. Notebook 11 fits ``L(N) = a N^-alpha + c`` to it (Kaplan et al. 2020; Hoffmann et al.
2022), with ``N`` the non-embedding parameter count as in Kaplan et al., and retrains the
smallest model to check that it matches. Seeded: reruns are bit-identical on one machine (CPU,
one thread).

:func:`fit_power_law` is the fit: for a fixed ``alpha`` the best ``a`` and ``c`` are a linear
least-squares problem, so it scans ``alpha`` on a grid and refines the best by golden section.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..models import Transformer, TransformerConfig
from ..models.tokenizer import WordTokenizer
from ..toy.grammar import VOCAB, grammar_batch

SAVED = Path(__file__).with_suffix(".json")

WIDTHS = [4, 6, 8, 12, 16, 24, 32, 48]
SETTINGS = {
    "n_layers": 1, "n_heads": 2, "mlp_ratio": 4, "seq_len": 24, "batch": 32, "steps": 500,
    "lr": 3e-3, "weight_decay": 0.0, "data_n": 4096, "data_seed": 1_000_000, "eval_n": 512,
    "eval_seed": 12345,
}  # fmt: skip
EMBEDDING_PARAMS = ("embed", "pos_embed", "unembed")


def config(d_model: int, seed: int = 0) -> TransformerConfig:
    """The sweep's 1-layer model of width ``d_model``."""
    n_heads = SETTINGS["n_heads"]
    return TransformerConfig(
        n_layers=SETTINGS["n_layers"], d_model=d_model, n_heads=n_heads,
        d_head=d_model // n_heads, d_vocab=len(VOCAB) + 1, n_ctx=SETTINGS["seq_len"],
        d_mlp=SETTINGS["mlp_ratio"] * d_model, act_fn="gelu", normalization="ln", seed=seed,
    )  # fmt: skip


def non_embedding_params(model: torch.nn.Module) -> int:
    """Parameters outside the token/position embeddings and the unembedding (Kaplan's ``N``)."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if name.split(".")[0] not in EMBEDDING_PARAMS
    )


def training_data() -> torch.Tensor:
    """The pool every width trains on: ``[data_n, seq_len]`` token ids, generated once and
    shared by all widths; batch ``i`` is rows ``i * batch`` onwards, wrapping round the pool."""
    s = SETTINGS
    tokens, _ = grammar_batch(s["data_n"], s["seq_len"], seed=s["data_seed"])
    return tokens


def eval_data() -> torch.Tensor:
    """Held-out sequences (another seed) the sweep's loss is measured on."""
    tokens, _ = grammar_batch(SETTINGS["eval_n"], SETTINGS["seq_len"], seed=SETTINGS["eval_seed"])
    return tokens


def _loss(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    logits = model(tokens)[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def train_width(d_model: int, data: torch.Tensor, held_out: torch.Tensor, seed: int = 0) -> dict:
    """Train one width on ``data`` (from :func:`training_data`) with the sweep's settings;
    returns ``{"d_model", "n_params", "loss", "seconds"}`` (held-out loss in nats/token)."""
    s = SETTINGS
    if data.shape != (s["data_n"], s["seq_len"]):
        raise ValueError(
            f"data has shape {list(data.shape)}; expected {[s['data_n'], s['seq_len']]}: "
            "pass scaling_sweep.training_data()"
        )
    torch.manual_seed(seed)
    model = Transformer(config(d_model, seed), tokenizer=WordTokenizer(VOCAB))
    opt = torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=s["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / s["steps"]))
    )
    start = time.perf_counter()
    model.train()
    for step in range(s["steps"]):
        rows = torch.arange(step * s["batch"], (step + 1) * s["batch"]) % s["data_n"]
        loss = _loss(model, data[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        held = float(_loss(model, held_out))
    return {
        "d_model": d_model, "n_params": non_embedding_params(model), "loss": round(held, 5),
        "seconds": round(time.perf_counter() - start, 2),
    }  # fmt: skip


def _check_points(n_params, loss, minimum: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = torch.as_tensor(n_params, dtype=torch.float64).flatten()
    y = torch.as_tensor(loss, dtype=torch.float64).flatten()
    if n.numel() != y.numel():
        raise ValueError(
            f"n_params has {n.numel()} values and loss {y.numel()}: give one loss per size"
        )
    if n.numel() < minimum:
        raise ValueError(
            f"{n.numel()} points given; the fit needs at least {minimum} (one per free parameter)"
        )
    if not bool((n > 0).all()) or not bool(torch.isfinite(y).all()):
        raise ValueError(
            f"n_params must be > 0 and loss finite; got n_params={n.tolist()}, loss={y.tolist()}"
        )
    return n, y


def _solve(n: torch.Tensor, y: torch.Tensor, alpha: float, offset: bool) -> tuple[float, ...]:
    x = n.pow(-alpha)
    cols = [x, torch.ones_like(x)] if offset else [x]
    design = torch.stack(cols, 1)
    coef = torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
    sse = float(((design @ coef - y) ** 2).sum())
    return sse, float(coef[0]), float(coef[1]) if offset else 0.0


def fit_power_law(n_params, loss, offset: bool = True) -> dict:
    """Least-squares fit of ``loss = a * n_params^-alpha + c`` (``c = 0`` when not ``offset``).

    Returns ``{"a", "alpha", "c", "rmse"}``. ``alpha`` is searched in ``[0.01, 3]`` (a grid of
    300 log-spaced values, then golden-section refinement around the best)."""
    n, y = _check_points(n_params, loss, 3 if offset else 2)

    def sse(alpha: float) -> float:
        return _solve(n, y, alpha, offset)[0]

    grid = torch.logspace(math.log10(0.01), math.log10(3.0), 300, dtype=torch.float64).tolist()
    i = min(range(len(grid)), key=lambda k: sse(grid[k]))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    g = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        m1, m2 = hi - g * (hi - lo), lo + g * (hi - lo)
        if sse(m1) < sse(m2):
            hi = m2
        else:
            lo = m1
    alpha = (lo + hi) / 2
    err, a, c = _solve(n, y, alpha, offset)
    return {"a": a, "alpha": alpha, "c": c, "rmse": math.sqrt(err / n.numel())}


def predict(fit: dict, n_params) -> torch.Tensor:
    """The fitted law at ``n_params``: ``a * n_params^-alpha + c``."""
    n = torch.as_tensor(n_params, dtype=torch.float64)
    return fit["a"] * n.pow(-fit["alpha"]) + fit["c"]


def saved() -> dict:
    """The sweep's saved numbers (``scaling_sweep.json``, written by :func:`main`)."""
    return json.loads(SAVED.read_text())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(SAVED))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data, held_out = training_data(), eval_data()
    out = {"settings": SETTINGS, "torch": torch.__version__, "rows": []}
    for width in WIDTHS:
        out["rows"].append(train_width(width, data, held_out))
        print(out["rows"][-1], flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
