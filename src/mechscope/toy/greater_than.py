"""Greater-than: made-up years, after Hanna, Liu & Variengien (2023).

"How does GPT-2 compute greater-than?" studies prompts like ``The war lasted from the year
1732 to the year 17`` and finds that GPT-2 small puts its next-token probability on the
two-digit years *after* 32. The paper's metric is the **probability difference**

    PD = sum_{y > YY} p(y) - sum_{y <= YY} p(y),

over the two-digit year tokens ``00`` .. ``99`` at the last position; its corrupted prompts
replace ``YY`` by ``01`` (so every later year is allowed and the information "YY" is gone)
while keeping everything else, and the metric of a corrupted run is still scored against the
clean ``YY``.

Here the years are words for :class:`mechscope.models.WordTokenizer`: a prompt is

    ``The war lasted from the year 17 32 to the year 17``

(the century and ``YY`` are separate tokens, as in GPT-2's ``17`` ``32``), and the answer is
any two-digit year ``YY' > YY``. Every prompt has 12 words (13 tokens with BOS); ``YY`` is at
position :data:`YY_POS`. Templates combine a verb (:data:`VERBS`) with a connector
(:data:`CONNECTORS`); a quarter of those combinations is never trained on
(:func:`template_is_heldout`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

YEARS: list[str] = [f"{y:02d}" for y in range(100)]  # two-digit year tokens, id order = value
CENTURIES: list[str] = ["11", "12", "13", "14", "15", "16", "17", "18", "19"]
NOUNS: list[str] = [
    "war", "expedition", "siege", "dynasty", "reign", "voyage", "campaign", "drought",
    "famine", "project", "festival", "treaty", "plague", "rebellion", "occupation", "journey",
]  # fmt: skip
VERBS: list[str] = ["lasted", "ran", "continued", "stretched"]
CONNECTORS: list[str] = ["to", "until", "till", "through"]
TEMPLATE = "The {noun} {verb} from the year {century} {yy} {connector} the year {century}"
VOCAB: list[str] = ["The", "the", "from", "year", *NOUNS, *VERBS, *CONNECTORS, *YEARS]
YY_POS = 8  # position of YY in the tokens (BOS = 0)
N_POS = 13  # tokens per prompt, BOS included
CORRUPT_YY = 1  # the paper's corrupted year, "01"

__all__ = [
    "CENTURIES",
    "CONNECTORS",
    "NOUNS",
    "VERBS",
    "VOCAB",
    "YEARS",
    "YearPrompt",
    "accuracy",
    "canonical_prompts",
    "prob_diff",
    "prob_diff_metric",
    "prompt",
    "sample_prompts",
    "template_is_heldout",
    "tokens_of",
    "year_ids",
    "year_probs",
]


@dataclass(frozen=True)
class YearPrompt:
    """A clean prompt with its year ``yy`` and the corrupted twin (``yy`` replaced by 01)."""

    clean: str
    corrupted: str
    yy: int
    template: tuple[int, int]  # (verb, connector) indices


def template_is_heldout(verb: int, connector: int) -> bool:
    """Held-out (verb, connector) combinations: one connector per verb, never (0, 0)."""
    return connector == (verb + 1) % len(CONNECTORS)


def prompt(noun: str, verb: int, connector: int, century: str, yy: int) -> str:
    """``The {noun} {verb} from the year {century} {yy} {connector} the year {century}``."""
    if not 0 <= yy <= 99:
        raise ValueError(f"yy={yy}; a two-digit year is 0..99.")
    return TEMPLATE.format(
        noun=noun,
        verb=VERBS[verb],
        century=century,
        yy=YEARS[yy],
        connector=CONNECTORS[connector],
    )


def _pair(noun, verb, connector, century, yy) -> YearPrompt:
    return YearPrompt(
        prompt(noun, verb, connector, century, yy),
        prompt(noun, verb, connector, century, CORRUPT_YY),
        yy,
        (verb, connector),
    )


def sample_prompts(split: str, n: int, seed: int, low: int = 2, high: int = 98) -> list[YearPrompt]:
    """``n`` random prompts from ``split`` ("train" / "heldout" templates), ``yy`` uniform in
    ``[low, high]`` (the paper's range is 02..98: both a later and an earlier year exist)."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split={split!r}; expected 'train' or 'heldout'.")
    if not 0 <= low <= high <= 98:
        raise ValueError(f"low={low}, high={high}; need 0 <= low <= high <= 98.")
    combos = [
        (v, c)
        for v in range(len(VERBS))
        for c in range(len(CONNECTORS))
        if template_is_heldout(v, c) == (split == "heldout")
    ]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        verb, connector = rng.choice(combos)
        noun, century = rng.choice(NOUNS), rng.choice(CENTURIES)
        out.append(_pair(noun, verb, connector, century, rng.randint(low, high)))
    return out


def canonical_prompts() -> list[YearPrompt]:
    """The paper's running example, ``The war lasted from the year 17 32 to the year 17``,
    and the same sentence with an early and a late year."""
    return [_pair("war", 0, 0, "17", yy) for yy in (32, 10, 80)]


def tokens_of(model, prompts: list[YearPrompt], corrupted: bool = False) -> torch.Tensor:
    """``[batch, 13]`` token ids of the clean (or corrupted) prompts."""
    return model.to_tokens([p.corrupted if corrupted else p.clean for p in prompts])


def year_ids(model) -> torch.Tensor:
    """``[100]``: the token id of ``00`` .. ``99`` in ``model``'s tokenizer."""
    return torch.tensor([model.tokenizer.ids[y] for y in YEARS])


def year_probs(logits: torch.Tensor, ids: torch.Tensor, pos: int = -1) -> torch.Tensor:
    """``logits [batch, pos, d_vocab]`` -> ``[batch, 100]``: the probability (softmax over the
    whole vocabulary, as in the paper) of each two-digit year at position ``pos``."""
    return logits[:, pos].float().softmax(-1)[:, ids.to(logits.device)]


def prob_diff(probs: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
    """The paper's probability difference: ``probs [batch, 100]`` (year 0..99), ``yy
    [batch]`` -> ``[batch]``, ``sum_{y > yy} p(y) - sum_{y <= yy} p(y)``."""
    later = torch.arange(probs.shape[-1], device=probs.device)[None] > yy.to(probs.device)[:, None]
    return (probs * later).sum(-1) - (probs * ~later).sum(-1)


def prob_diff_metric(model, prompts: list[YearPrompt]):
    """A mechscope metric ``logits [batch, pos, d_vocab] -> [batch]``: :func:`prob_diff` at
    the last position, scored against each clean prompt's ``yy`` (also on corrupted runs)."""
    ids = year_ids(model)
    yy = torch.tensor([p.yy for p in prompts])

    def metric(logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[0] != len(yy):
            raise ValueError(
                f"prob_diff_metric was built for {len(yy)} prompts but got logits for "
                f"{logits.shape[0]}; build one metric per batch of prompts."
            )
        return prob_diff(year_probs(logits, ids), yy)

    return metric


def accuracy(logits: torch.Tensor, ids: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
    """``[batch]`` bool: the top token (over the whole vocabulary) is a year after ``yy``."""
    top = logits[:, -1].argmax(-1)
    value = (top[:, None] == ids.to(top.device)[None]).float().argmax(-1)
    is_year = torch.isin(top, ids.to(top.device))
    return is_year & (value > yy.to(top.device))
