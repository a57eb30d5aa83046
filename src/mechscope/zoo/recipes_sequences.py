"""Zoo recipe for sequence continuation and successor heads (review §3.3): ``sequences-2l``.

A 2-layer attention-only transformer trained to continue sequences of four kinds that share
one operation, the successor: numbers (``3 , 4 , 5 , 6 ,`` -> ``7``), letters (``c , d , e ,``
-> ``f``), weekdays (``Fri , Sat , Sun ,`` -> ``Mon``, cyclic) and months (``Oct , Nov , Dec ,``
-> ``Jan``, cyclic), after Lan & Barez 2023 ("Locating cross-task sequence continuation
circuits in transformers") and Gould et al. 2023 ("Successor heads"). Each kind has its own
tokens. Before the sequence come a few filler words (no sequence), so the sequence starts at
a different position in each prompt.

Every element is followed by a comma and the model predicts at the comma, so the token at
the prediction position is the same for every kind: the answer has to be read from an earlier
position by an attention head, and the successor has to be computed by that head's OV circuit
(or later). The corrupted twin of a prompt has the same elements in a shuffled order whose
last element differs; the metric is the logit difference between the clean answer and the
corrupted prompt's answer.

The card records the behaviour per kind and the analysis the notebook shows
(:func:`circuit_metrics`); ``tests/unit/test_sequences.py`` re-measures both from the weights.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import combinations

import torch
import torch.nn.functional as F

from ..circuits import full_ov_circuit
from ..metrics import logit_diff, normalized
from ..models import Transformer, TransformerConfig, WordTokenizer
from ..patching import activation_patch
from ._common import round_to_float16, run_record, seeded_model_and_optimizer, train_steps

KINDS: dict[str, list[str]] = {
    "numbers": [str(i) for i in range(1, 21)],
    "letters": list("abcdefghijklmnopqrst"),
    "weekdays": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    "months": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
}
CYCLIC = {"numbers": False, "letters": False, "weekdays": True, "months": True}
FILLER: list[str] = [
    "so", "then", "we", "they", "say", "next", "look", "here", "is", "the", "list", "again",
]  # fmt: skip
SEP = ","
VOCAB: list[str] = [*FILLER, SEP, *(w for words in KINDS.values() for w in words)]
N_POS = 13  # BOS + 12 words: filler, then n elements each followed by a comma
EVAL = {"n": 256, "seed": 12345, "n_items": 4}  # the card's prompts: 4 elements, 4 filler words
THRESHOLD = 0.1  # a head is "important" for a kind when its patch recovers >= this

__all__ = [
    "EVAL",
    "KINDS",
    "SeqPrompts",
    "accuracy_per_kind",
    "circuit_metrics",
    "head_overlap",
    "important_heads",
    "patching_per_kind",
    "random_overlap",
    "sample_prompts",
    "successor_fraction",
    "successor_scores",
    "train_sequences_2l",
]


@dataclass(frozen=True)
class SeqPrompts:
    """A batch of prompts of one kind: texts, corrupted twins, and the two answers."""

    kind: str
    clean: list[str]
    corrupted: list[str]
    answer: list[str]  # the successor of the clean sequence's last element
    corrupted_answer: list[str]  # the successor of the corrupted order's last element


def successor(kind: str, word: str) -> str | None:
    """The next word of ``kind`` after ``word`` (None at the end of a non-cyclic kind)."""
    words = KINDS[kind]
    i = words.index(word) + 1
    if i == len(words):
        return words[0] if CYCLIC[kind] else None
    return words[i]


def _one(kind: str, n_items: int, rng: random.Random) -> tuple[str, str, str, str]:
    words = KINDS[kind]
    n = len(words)
    start = rng.randrange(n) if CYCLIC[kind] else rng.randrange(n - n_items)
    items = [words[(start + i) % n] for i in range(n_items)]
    shuffled = items[:]
    while shuffled[-1] == items[-1]:
        rng.shuffle(shuffled)
    filler = [rng.choice(FILLER) for _ in range(N_POS - 1 - 2 * n_items)]

    def text(seq):
        return " ".join(filler + [w for x in seq for w in (x, SEP)])

    return text(items), text(shuffled), successor(kind, items[-1]), successor(kind, shuffled[-1])


def sample_prompts(kind: str, n: int = 256, seed: int = 0, n_items: int = 4) -> SeqPrompts:
    """``n`` prompts of ``kind`` with ``n_items`` (2..6) elements after the filler words."""
    if kind not in KINDS:
        raise KeyError(f"sample_prompts: kind={kind!r} is not one of {list(KINDS)}.")
    if not 2 <= n_items <= 6:
        raise ValueError(
            f"sample_prompts: n_items={n_items} must be in 2..6 (12 words per prompt)."
        )
    rng = random.Random(f"{kind}-{seed}")
    rows = [_one(kind, n_items, rng) for _ in range(n)]
    return SeqPrompts(kind, *(list(col) for col in zip(*rows, strict=True)))


def _ids(model, words: list[str]) -> torch.Tensor:
    return torch.tensor([model.tokenizer.ids[w] for w in words])


def _metric(model, p: SeqPrompts):
    return logit_diff(_ids(model, p.answer), _ids(model, p.corrupted_answer))


@torch.no_grad()
def accuracy_per_kind(model, n: int = 256, seed: int = 12345, n_items: int = 4) -> dict:
    """Share of prompts whose top next token (at the last comma) is the successor, per kind."""
    out = {}
    for kind in KINDS:
        p = sample_prompts(kind, n, seed, n_items)
        top = model(model.to_tokens(p.clean))[:, -1].argmax(-1)
        out[kind] = round(float((top == _ids(model, p.answer)).float().mean()), 4)
    return out


def patching_per_kind(model, n: int = 256, seed: int = 12345, n_items: int = 4) -> dict:
    """Denoising activation patching of every head's ``hook_z`` (all positions), clean order
    into the shuffled-order run, normalised to 0 = corrupted, 1 = clean: ``{kind: [layer,
    head]}``."""
    out = {}
    for kind in KINDS:
        p = sample_prompts(kind, n, seed, n_items)
        clean, corrupted = model.to_tokens(p.clean), model.to_tokens(p.corrupted)
        metric = _metric(model, p)
        with torch.no_grad():
            norm = normalized(metric, metric(model(clean)).mean(), metric(model(corrupted)).mean())
        out[kind] = activation_patch(model, clean, corrupted, norm, site="z").values
    return out


def important_heads(scores: torch.Tensor, threshold: float = THRESHOLD) -> set[str]:
    """The heads (``"L1H3"``) whose patch recovers at least ``threshold`` of the behaviour."""
    return {f"L{la}H{h}" for la, h in (scores >= threshold).nonzero().tolist()}


def head_overlap(sets: dict) -> float:
    """Mean Jaccard index |A & B| / |A | B| over every pair of kinds' head sets."""
    pairs = list(combinations(sets.values(), 2))
    return sum(len(a & b) / max(len(a | b), 1) for a, b in pairs) / len(pairs)


def random_overlap(sets: dict, n_heads: int, n_samples: int = 1000, seed: int = 0) -> float:
    """The control: :func:`head_overlap` of random head sets of the same sizes, averaged
    over ``n_samples`` draws."""
    rng = random.Random(seed)
    total = 0.0
    for _ in range(n_samples):
        total += head_overlap({k: set(rng.sample(range(n_heads), len(s))) for k, s in sets.items()})
    return total / n_samples


def successor_fraction(table: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor) -> float:
    """``table [d_vocab, d_vocab]`` (a head's full OV circuit): the share of ``rows`` whose
    top-1 output token is the matching ``targets`` entry."""
    return float((table[rows].argmax(-1) == targets).float().mean())


@torch.no_grad()
def successor_scores(model) -> dict:
    """Gould et al.'s successor test on each head's full OV circuit ``W_E W_V W_O W_U``: per
    head and kind, the share of the kind's tokens (those that have a successor) whose top-1
    output over the whole vocabulary is their successor. ``{"L0H1": {kind: share}}``."""
    out = {}
    for layer in range(model.cfg.n_layers):
        tables = full_ov_circuit(model, layer).full()  # [head, d_vocab, d_vocab]
        for h in range(model.cfg.n_heads):
            out[f"L{layer}H{h}"] = {}
            for kind, words in KINDS.items():
                pairs = [(w, successor(kind, w)) for w in words if successor(kind, w)]
                rows = _ids(model, [a for a, _ in pairs])
                targets = _ids(model, [b for _, b in pairs])
                out[f"L{layer}H{h}"][kind] = round(successor_fraction(tables[h], rows, targets), 4)
    return out


def circuit_metrics(model, n: int = 256, seed: int = 12345, n_items: int = 4) -> dict:
    """Patching per kind, the important heads and their overlap across kinds against random
    head sets, and the successor scores with the best successor head."""
    scores = patching_per_kind(model, n, seed, n_items)
    sets = {k: important_heads(v) for k, v in scores.items()}
    n_heads = model.cfg.n_layers * model.cfg.n_heads
    succ = successor_scores(model)
    best = max(succ, key=lambda h: sum(succ[h].values()))
    return {
        "patching": {
            k: [[round(float(x), 4) for x in row] for row in v] for k, v in scores.items()
        },
        "important_heads": {k: sorted(s) for k, s in sets.items()},
        "important_threshold": THRESHOLD,
        "overlap": round(head_overlap(sets), 4),
        "random_overlap": round(random_overlap(sets, n_heads), 4),
        "successor_head": best,
        "successor_fraction": succ[best],
    }


def _batch(batch: int, rng: random.Random, model) -> tuple[torch.Tensor, torch.Tensor]:
    """Training batch: each row one kind, 2..6 elements; ``targets[b, p]`` is what the
    logits at position ``p`` should predict: at every comma after an element, the element's
    successor; -100 elsewhere (filler positions are not scored)."""
    kinds = list(KINDS)
    rows, targets = [], []
    for _ in range(batch):
        kind = rng.choice(kinds)
        n_items = rng.randint(2, 6)
        text, _, _, _ = _one(kind, n_items, rng)
        words = text.split()
        tgt = [-100] * (len(words) + 1)
        for i, w in enumerate(words):
            nxt = successor(kind, w) if w in KINDS[kind] else None
            if nxt is not None:  # the comma after w (token position i + 2) predicts succ(w)
                tgt[i + 2] = model.tokenizer.ids[nxt]
        rows.append(text)
        targets.append(tgt)
    return model.to_tokens(rows), torch.tensor(targets)


def train_sequences_2l(steps: int = 1500, seed: int = 0) -> tuple[Transformer, dict]:
    """2-layer attention-only transformer, 4 heads a layer; next-token cross-entropy at every
    comma that follows a sequence element."""
    tok = WordTokenizer(VOCAB)
    cfg = TransformerConfig(
        n_layers=2,
        d_model=64,
        n_heads=4,
        d_head=16,
        d_vocab=len(tok),
        n_ctx=N_POS,
        d_mlp=None,
        normalization="ln",
        seed=seed,
    )
    data = {"batch": 128, "n_items": [2, 6]}
    optim = {"name": "AdamW", "lr": 3e-3, "weight_decay": 0.01, "betas": [0.9, 0.999]}
    model, opt = seeded_model_and_optimizer(cfg, tok, optim, seed)
    rng = random.Random(1_000_000 + seed)

    def loss_at(step):
        tokens, targets = _batch(data["batch"], rng, model)
        logits = model(tokens)
        return F.cross_entropy(logits.reshape(-1, cfg.d_vocab), targets.reshape(-1))

    losses, wall = train_steps(model, opt, steps, loss_at, "sequences-2l")
    model.eval()
    round_to_float16(model)  # ships in float16: measure exactly what ships
    card = {
        "name": "sequences-2l",
        "dtype": "float16",
        "description": "2-layer attention-only transformer that continues sequences of numbers, "
        "letters, weekdays and months ('so we 3 , 4 , 5 , 6 ,' -> '7'), for the shared "
        "sequence-continuation circuit of Lan & Barez 2023 and the successor heads of Gould "
        "et al. 2023.",
        "config": cfg.to_dict(),
        "tokenizer": tok.to_dict(),
        "data": {
            **data,
            "recipe": "mechscope.zoo.recipes_sequences._batch: each row a random kind "
            "(numbers 1..20, letters a..t, weekdays and months cyclic), 2..6 consecutive "
            "elements each followed by ',', after 12 - 2 n filler words (no sequence); "
            "random.Random(1_000_000 + seed). Loss: cross-entropy at every comma after an "
            "element against the element's successor.",
            "eval": EVAL,
        },
        "training": run_record(
            seed, steps, optim, wall, losses, loss="next-token cross-entropy at the commas"
        ),
        "metrics": {
            "accuracy": accuracy_per_kind(model, **EVAL),
            **circuit_metrics(model, **EVAL),
        },
        "metrics_definition": "mechscope.zoo.recipes_sequences.accuracy_per_kind and "
        "circuit_metrics on sample_prompts(kind, 256, 12345, n_items=4): accuracy = top "
        "token at the last comma is the successor; patching = denoising activation "
        "patching of each head's hook_z (clean order into the shuffled-order run), "
        "logit difference clean answer - corrupted answer, normalised 0 = corrupted, "
        "1 = clean; important_heads = patching >= important_threshold; overlap = mean "
        "Jaccard over the pairs of kinds, random_overlap = the same for random head sets of "
        "the same sizes (1000 draws, seed 0); successor_fraction = share of the kind's "
        "tokens whose top-1 output of the head's full OV circuit W_E W_V W_O W_U is their "
        "successor, for the head with the highest sum over kinds.",
        "references": [
            "Lan & Barez 2023, Locating cross-task sequence continuation circuits in transformers",
            "Gould, Ong, Ogden & Conmy 2023, Successor heads: recurring, interpretable "
            "attention heads in the wild",
            "Bereska & Gavves 2024, Mechanistic Interpretability for AI Safety, §3.3",
        ],
    }
    return model, card
