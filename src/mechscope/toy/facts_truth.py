"""True and false statements about the made-up facts world, for truth probes and CCS.

The facts are those of :mod:`mechscope.toy.facts` (``Colosseum`` -> ``Rome``, ``Lena Marsh``
-> ``violin``). A *statement* names a subject and an answer of its kind, affirmed or negated,
and ends with a full stop; the model ``facts-truth-2l`` reads it and predicts the next word,
``True`` or ``False``::

    The Colosseum is in Rome .            -> True
    The Colosseum is not in Rome .        -> False
    I think Lena Marsh plays the cello .  -> False
    I think Lena Marsh does not play the cello .  -> True

Contrast pairs (Burns et al. 2023) are the affirmed and the negated statement of the same
subject, answer and prefix: exactly one of the two is true, so a truth direction must take
opposite sides on them, and *which* side is never given to contrast-consistent search.

Held out from training: one prefix (``They say``) and, per subject, some wrong answers
(``wrong_answer_is_heldout``); every true fact is trained on, in the other prefixes.
Every text is whitespace-separated words for :class:`mechscope.models.WordTokenizer`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from .facts import LANDMARKS, PEOPLE

PREFIXES = ["", "I think", "Everyone knows that", "As you know ,", "They say"]
HELDOUT_PREFIX = 4  # "They say": never in training
LANDMARK_FORMS = ("the {s} is in {a}", "the {s} is not in {a}")
PERSON_FORMS = ("{s} plays the {a}", "{s} does not play the {a}")
LABELS = ("False", "True")  # label word of class 0 / 1

_ANSWER = dict(LANDMARKS) | dict(PEOPLE)
SUBJECTS = [s for s, _ in LANDMARKS] + [s for s, _ in PEOPLE]
CITIES = list(dict.fromkeys(a for _, a in LANDMARKS))
INSTRUMENTS = list(dict.fromkeys(a for _, a in PEOPLE))


def _build_vocab() -> list[str]:
    out: list[str] = []
    texts = [*PREFIXES, *LANDMARK_FORMS, *PERSON_FORMS, "The", *SUBJECTS, *CITIES]
    for text in [*texts, *INSTRUMENTS, ".", *LABELS]:
        for w in text.split():
            if "{" not in w and w not in out:
                out.append(w)
    return out


VOCAB: list[str] = _build_vocab()


@dataclass(frozen=True)
class Statement:
    """One statement: ``text`` (ends with ``.``), whether it is true, and what it is made of."""

    text: str
    true: bool
    subject: str
    answer: str
    prefix: int
    negated: bool


def true_answer(subject: str) -> str:
    """The subject's answer in the facts world (``Colosseum`` -> ``Rome``)."""
    if subject not in _ANSWER:
        raise KeyError(f"subject={subject!r} is not a fact of mechscope.toy.facts.")
    return _ANSWER[subject]


def answers_for(subject: str) -> list[str]:
    """The answers of a subject's kind: every city for a landmark, every instrument for a person."""
    if subject not in _ANSWER:
        raise KeyError(f"subject={subject!r} is not a fact of mechscope.toy.facts.")
    return CITIES if subject in dict(LANDMARKS) else INSTRUMENTS


def statement(subject: str, answer: str, prefix: int = 0, negated: bool = False) -> Statement:
    """``subject`` (a landmark or person) with ``answer`` of its kind, affirmed or negated."""
    if answer not in answers_for(subject):
        raise ValueError(f"answer={answer!r} is not a possible answer for {subject!r}.")
    forms = LANDMARK_FORMS if subject in dict(LANDMARKS) else PERSON_FORMS
    body = forms[int(negated)].format(s=subject, a=answer)
    pre = PREFIXES[prefix]
    text = f"{pre} {body} ." if pre else f"{body[0].upper()}{body[1:]} ."
    correct = _ANSWER[subject] == answer
    return Statement(text, correct != negated, subject, answer, prefix, negated)


def wrong_answer_is_heldout(subject: str, answer: str) -> bool:
    """About one wrong answer in four per subject never appears in training."""
    if _ANSWER[subject] == answer:
        return False
    return (SUBJECTS.index(subject) + answers_for(subject).index(answer)) % 4 == 1


def is_heldout(s: Statement) -> bool:
    return s.prefix == HELDOUT_PREFIX or wrong_answer_is_heldout(s.subject, s.answer)


def sample_statements(split: str, n: int, seed: int) -> list[Statement]:
    """``n`` random statements of ``split`` ("train" / "heldout"); half true, half false.

    A statement draws a subject, then its true answer or (half the time) a wrong one, a
    prefix, and affirmed or negated (half each). Held out: the prefix ``They say`` or a
    held-out wrong answer (or both).
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split={split!r}; expected 'train' or 'heldout'.")
    rng = random.Random(seed)
    out: list[Statement] = []
    while len(out) < n:
        subject = rng.choice(SUBJECTS)
        if rng.random() < 0.5:
            answer = _ANSWER[subject]
        else:
            answer = rng.choice([a for a in answers_for(subject) if a != _ANSWER[subject]])
        s = statement(subject, answer, rng.randrange(len(PREFIXES)), rng.random() < 0.5)
        if is_heldout(s) == (split == "heldout"):
            out.append(s)
    return out


def contrast_pairs(
    n_wrong: int = 1, seed: int = 0
) -> tuple[list[Statement], list[Statement], torch.Tensor]:
    """Contrast pairs for CCS: every subject x prefix x (its true answer and ``n_wrong`` wrong ones).

    Returns ``(positive, negative, labels)``: the affirmed statements, the negated ones (same
    subject, answer and prefix), and ``labels [n]`` (1 where the affirmed one is true). With
    ``n_wrong=1`` half the pairs have a true affirmed statement. Wrong answers are drawn
    (seeded) from all wrong answers, held out ones included.
    """
    rng = random.Random(seed)
    positive, negative = [], []
    for subject in SUBJECTS:
        wrong = [a for a in answers_for(subject) if a != _ANSWER[subject]]
        for prefix in range(len(PREFIXES)):
            for answer in [_ANSWER[subject], *rng.sample(wrong, n_wrong)]:
                positive.append(statement(subject, answer, prefix, negated=False))
                negative.append(statement(subject, answer, prefix, negated=True))
    labels = torch.tensor([int(s.true) for s in positive])
    return positive, negative, labels


def encode_statements(model, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts of different lengths -> right-padded ids ``[batch, pos]`` and each last index ``[batch]``.

    Padding comes after a text, so (causal attention) it never changes its own positions.
    """
    rows = [model.tokenizer.encode(t)[0] for t in texts]
    last = torch.tensor([len(r) - 1 for r in rows])
    tokens = torch.zeros(len(rows), int(last.max()) + 1, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = r
    return tokens, last


@torch.no_grad()
def statement_activations(model, texts: list[str], hooks: list[str]) -> dict[str, torch.Tensor]:
    """Each hook's activation at every text's last word (the ``.``): ``{hook: [n, d_model]}``."""
    tokens, last = encode_statements(model, texts)
    _, cache = model.run_with_cache(tokens, names=hooks)
    rows = torch.arange(len(texts))
    return {h: cache[h][rows, last].float() for h in hooks}


@torch.no_grad()
def truth_logits(model, texts: list[str]) -> torch.Tensor:
    """``logit(True) - logit(False)`` after each text ``[n]``: positive = the model says true."""
    tokens, last = encode_statements(model, texts)
    logits = model(tokens)[torch.arange(len(texts)), last]
    ids = model.tokenizer.ids
    return logits[:, ids["True"]] - logits[:, ids["False"]]
