"""Zoo recipe ``stdlib-lm``: a real (small) language model, trained on the Python standard
library's own source (``mechscope.toy.stdlib_corpus``), offline.

Every other zoo model learns a templated or synthetic task; this one learns real code, with
features a student can name and check (inside a string or comment, indentation, an open
bracket waiting to close, an identifier that will repeat) and induction on real identifiers
(Olsson et al. 2022). Byte-level BPE of 4,096 tokens trained on the training files
(``mechscope.models.bpe_tokenizer``); our ``Transformer`` with 4 layers, d_model 192, MLPs.
Weights ship in float16; the card's numbers are measured from exactly those weights.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

from ..models import Transformer, TransformerConfig
from ..models.bpe_tokenizer import BPETokenizer, train_bpe
from ..toy.stdlib_corpus import StdlibCorpus, load_corpus
from ._common import run_record, seeded_model_and_optimizer, train_steps

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
CLOSERS = (")", "]", "}")
CHECKPOINT_STEPS = (150, 600)  # plus step 0 (the seeded init, rebuilt from cfg.seed) and the end


def token_stream(tok: BPETokenizer, files: list[tuple[str, str]]) -> torch.Tensor:
    """Every file's ids, each file preceded by ``<bos>`` (id 0), concatenated: ``[n_tokens]``."""
    ids: list[int] = []
    for _, text in files:
        ids.append(0)
        ids.extend(tok.tk.encode(text).ids)
    return torch.tensor(ids, dtype=torch.int32)


def windows(stream: torch.Tensor, n_ctx: int, starts: torch.Tensor) -> torch.Tensor:
    """``[len(starts), n_ctx]`` windows: ``<bos>`` then ``n_ctx - 1`` tokens from each start."""
    idx = starts[:, None] + torch.arange(n_ctx - 1)[None]
    body = stream[idx].long()
    return torch.cat([torch.zeros(len(starts), 1, dtype=torch.long), body], dim=1)


def heldout_windows(stream: torch.Tensor, n_ctx: int, n: int) -> torch.Tensor:
    """The first ``n`` non-overlapping windows of the held-out stream (deterministic)."""
    step = n_ctx - 1
    n = min(n, (len(stream) - 1) // step)
    return windows(stream, n_ctx, torch.arange(n) * step)


def behaviour(model: Transformer, tok: BPETokenizer, tokens: torch.Tensor) -> dict:
    """Held-out loss and accuracy, closing-bracket accuracy, and repeated- vs first-occurrence
    identifier accuracy (the induction signature on real code), on ``tokens [batch, pos]``.

    Closing bracket: targets whose text (leading whitespace stripped) starts with ``)]}``.
    Repeated identifier: targets that are identifiers (3+ characters) whose bigram (previous
    token, target) already occurred earlier in the window, so copying can predict them;
    first-occurrence identifiers are the control.
    """
    texts = [tok.token_text(i).lstrip() for i in range(len(tok))]
    closer = torch.tensor([t.startswith(CLOSERS) for t in texts])
    ident = torch.tensor([bool(IDENT.fullmatch(t)) for t in texts])
    losses, hits = [], []
    with torch.no_grad():
        for chunk in tokens.split(32):
            logits = model(chunk)[:, :-1]
            targets = chunk[:, 1:]
            losses.append(F.cross_entropy(logits.transpose(1, 2), targets, reduction="none"))
            hits.append(logits.argmax(-1) == targets)
    loss, hit = torch.cat(losses), torch.cat(hits)
    targets, prev = tokens[:, 1:], tokens[:, :-1]
    repeated = torch.zeros_like(targets, dtype=torch.bool)
    for b in range(targets.shape[0]):
        seen: set[tuple[int, int]] = set()
        for i, pair in enumerate(zip(prev[b].tolist(), targets[b].tolist(), strict=True)):
            repeated[b, i] = pair in seen
            seen.add(pair)
    is_ident, is_closer = ident[targets], closer[targets]

    def acc(mask):
        return round(float(hit[mask].float().mean()), 4)

    return {
        "heldout_loss": round(float(loss.mean()), 4),
        "heldout_accuracy": acc(torch.ones_like(hit)),
        "closing_bracket_accuracy": acc(is_closer),
        "repeated_identifier_accuracy": acc(is_ident & repeated),
        "first_identifier_accuracy": acc(is_ident & ~repeated),
        "n_positions": int(hit.numel()),
        "n_closing_bracket": int(is_closer.sum()),
        "n_repeated_identifier": int((is_ident & repeated).sum()),
    }


def _half_rounded(state: dict) -> dict:
    return {k: v.detach().to(torch.float16).float() for k, v in state.items()}


def train_stdlib_lm(
    steps: int = 2000, seed: int = 0, corpus: StdlibCorpus | None = None, until: int | None = None
):
    """Train ``stdlib-lm``; returns ``(model, card, checkpoints)`` (weights rounded to float16).

    until: stop after this many steps of the ``steps``-step schedule and return ``(model, None,
    checkpoints)`` with the weights that step ``until`` would start from, rounded to float16
    like a shipped checkpoint (``tools/check_stdlib_retrain.py`` re-checks checkpoint 150
    this way without the full run).
    """
    corpus = corpus if corpus is not None else load_corpus()
    tok = train_bpe((text for _, text in corpus.train), vocab_size=4096)
    train, heldout = token_stream(tok, corpus.train), token_stream(tok, corpus.heldout)
    cfg = TransformerConfig(
        n_layers=4,
        d_model=192,
        n_heads=6,
        d_head=32,
        d_vocab=len(tok),
        n_ctx=256,
        d_mlp=768,
        normalization="ln",
        seed=seed,
    )
    data = {"batch": 16, "seq_len": cfg.n_ctx, "heldout_windows": 128}
    optim = {"name": "AdamW", "lr": 2e-3, "weight_decay": 0.1, "betas": [0.9, 0.95]}
    warmup = min(100, steps // 10 + 1)
    model, opt = seeded_model_and_optimizer(cfg, tok, optim, seed)
    # Linear warmup, then cosine decay to a tenth of the peak.
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / warmup
            if s < warmup
            else 0.1 + 0.45 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))
        ),
    )
    gen = torch.Generator().manual_seed(seed + 1)
    save_at = {s for s in CHECKPOINT_STEPS if s < steps}
    checkpoints: dict[int, dict] = {}

    def save_checkpoint(step):
        if step in save_at:
            checkpoints[step] = _half_rounded(model.state_dict())

    def loss_at(step):
        starts = torch.randint(0, len(train) - cfg.n_ctx, (data["batch"],), generator=gen)
        tokens = windows(train, cfg.n_ctx, starts)
        logits = model(tokens)
        return F.cross_entropy(logits[:, :-1].reshape(-1, cfg.d_vocab), tokens[:, 1:].reshape(-1))

    losses, wall = train_steps(
        model, opt, until or steps, loss_at, "stdlib-lm", sched=sched, before_step=save_checkpoint
    )
    if until is not None:
        model.load_state_dict(_half_rounded(model.state_dict()))
        return model, None, checkpoints
    model.load_state_dict(_half_rounded(model.state_dict()))  # measure what ships
    model.eval()
    eval_tokens = heldout_windows(heldout, cfg.n_ctx, data["heldout_windows"])
    probe = Transformer(cfg, tokenizer=tok).eval()
    ckpt_metrics = {"0": behaviour(probe, tok, eval_tokens)}
    for step, sd in sorted(checkpoints.items()):
        probe.load_state_dict(sd)
        ckpt_metrics[str(step)] = behaviour(probe, tok, eval_tokens)
    metrics = behaviour(model, tok, eval_tokens)
    ckpt_metrics[str(steps)] = metrics
    card = {
        "name": "stdlib-lm",
        "description": "4-layer transformer language model trained on the Python standard "
        "library's own source (code, docstrings, comments), byte-level BPE of 4,096 tokens.",
        "config": cfg.to_dict(),
        "tokenizer": tok.to_dict(),
        "dtype": "float16",
        "data": {
            **data,
            "recipe": "mechscope.toy.stdlib_corpus.load_corpus(): the running Python's stdlib "
            ".py files (no site-packages, __pycache__, pydoc_data, encodings; none over 256 KB), "
            "sorted; one file in 20 held out by a hash of its path. Training windows: <bos> then "
            "255 tokens from a uniformly random offset of the concatenated training files.",
            "python": corpus.python,
            "manifest_sha256": corpus.manifest_sha256,
            "files": {"train": len(corpus.train), "heldout": len(corpus.heldout)},
            "tokens": {"train": len(train), "heldout": len(heldout)},
        },
        "training": run_record(
            seed,
            steps,
            optim,
            wall,
            schedule=f"linear warmup {warmup} steps, cosine to 0.1x",
            loss="next-token cross-entropy, all positions",
            final_loss_mean_last_100=round(sum(losses[-100:]) / len(losses[-100:]), 4),
        ),
        "checkpoints": {"metrics": ckpt_metrics, "step0": "the seeded init (cfg.seed)"},
        "metrics": metrics,
        "references": [
            "Olsson et al. 2022, In-context Learning and Induction Heads",
            "Bereska & Gavves 2024, Mechanistic Interpretability for AI Safety: A Review (§7, streetlight interpretability)",
        ],
    }
    return model, card, checkpoints
