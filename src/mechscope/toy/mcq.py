"""Multiple-choice questions about the made-up facts world, after Lieberum et al. (2023).

"Does circuit analysis interpretability scale? Evidence from multiple choice capabilities in
Chinchilla" gives Chinchilla 70B a question, four options labelled ``A`` .. ``D`` and
``Answer:``, and finds *correct-letter heads*: at the last position they attend to the label of
the correct option and copy it. Here the questions ask about the facts of
:mod:`mechscope.toy.facts` (two-word landmarks -> city, people -> instrument)::

    Where is the Eiffel Tower located ? A Rome B Paris C Berlin D London Answer :   -> B

Every prompt has 17 words (18 tokens with BOS): a 7-word question, four (label, option) pairs
at fixed positions (:data:`LABEL_POS`, :data:`OPTION_POS`), then ``Answer :``. Labels come
from :data:`LETTERS` (``A`` .. ``H``): training uses ``A B C D`` half the time and four other
letters *in alphabetical order* the other half, so the model must read the label in front of
the right option rather than name the n-th letter. Held out: one question template per kind
(:data:`HELDOUT_TEMPLATE`) and every label order that is not alphabetical (``shuffled``).
The corrupted twin of a prompt moves the correct answer to another option (contents swapped),
so the correct letter changes and the length does not.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from .facts import LANDMARKS, PEOPLE

# two-word subjects only, so every question has the same length
SUBJECTS: dict[str, str] = {s: a for s, a in LANDMARKS if len(s.split()) == 2}
SUBJECTS |= dict(PEOPLE)
CITIES = list(dict.fromkeys(a for s, a in LANDMARKS if s in SUBJECTS))
INSTRUMENTS = list(dict.fromkeys(a for _, a in PEOPLE))
LANDMARK_TEMPLATES = [
    "Where is the {s} located ?",
    "Which city has the {s} ?",
    "Where does the {s} stand ?",
]
PERSON_TEMPLATES = [
    "What instrument does {s} play ?",
    "Which instrument does {s} play ?",
    "What does {s} play best ?",
]
HELDOUT_TEMPLATE = 2  # the third template of each kind is never trained on
LETTERS = ["A", "B", "C", "D", "E", "F", "G", "H"]
LABEL_SETS = ("abcd", "letters", "shuffled")  # A B C D / other letters, sorted / any order
N_POS = 18  # tokens per prompt, BOS included
LABEL_POS = [8, 10, 12, 14]  # position of each option's label
OPTION_POS = [9, 11, 13, 15]  # position of each option's text


def _build_vocab() -> list[str]:
    out: list[str] = []
    texts = [*LANDMARK_TEMPLATES, *PERSON_TEMPLATES, *SUBJECTS, *CITIES, *INSTRUMENTS]
    for text in [*texts, *LETTERS, "Answer :"]:
        for w in text.split():
            if "{" not in w and w not in out:
                out.append(w)
    return out


VOCAB: list[str] = _build_vocab()

__all__ = [
    "LABEL_POS",
    "LABEL_SETS",
    "LETTERS",
    "OPTION_POS",
    "VOCAB",
    "Question",
    "accuracy",
    "answer_ids",
    "label_ids",
    "logit_diff_metric",
    "question",
    "sample_questions",
    "tokens_of",
]


@dataclass(frozen=True)
class Question:
    """One question: clean and corrupted text, labels, options, the correct option's index in
    the clean (``answer``) and corrupted (``corrupted_answer``) prompt."""

    clean: str
    corrupted: str
    labels: tuple[str, ...]
    options: tuple[str, ...]
    answer: int
    corrupted_answer: int
    subject: str
    template: int

    @property
    def letter(self) -> str:
        return self.labels[self.answer]

    @property
    def corrupted_letter(self) -> str:
        return self.labels[self.corrupted_answer]


def _text(subject, template, labels, options) -> str:
    temps = LANDMARK_TEMPLATES if subject in dict(LANDMARKS) else PERSON_TEMPLATES
    opts = " ".join(f"{lab} {opt}" for lab, opt in zip(labels, options, strict=True))
    return f"{temps[template].format(s=subject)} {opts} Answer :"


def question(
    subject: str, options, labels=("A", "B", "C", "D"), template: int = 0, swap: int = 1
) -> Question:
    """The question about ``subject`` with ``options`` (4 answers of its kind, its true answer
    among them) labelled ``labels``; the corrupted twin swaps the correct option with the one
    ``swap`` places after it (cyclically)."""
    if subject not in SUBJECTS:
        raise KeyError(f"subject={subject!r}; expected one of {list(SUBJECTS)}.")
    options, labels = tuple(options), tuple(labels)
    if len(options) != 4 or len(set(options)) != 4 or SUBJECTS[subject] not in options:
        raise ValueError(
            f"options={list(options)}; expected 4 distinct answers including {SUBJECTS[subject]!r}."
        )
    if len(labels) != 4 or len(set(labels)) != 4 or not set(labels) <= set(LETTERS):
        raise ValueError(f"labels={list(labels)}; expected 4 distinct letters of {LETTERS}.")
    answer = options.index(SUBJECTS[subject])
    other = (answer + swap) % 4
    if other == answer:
        raise ValueError(f"swap={swap}; must move the answer to another option (1, 2 or 3).")
    swapped = list(options)
    swapped[answer], swapped[other] = swapped[other], swapped[answer]
    return Question(
        _text(subject, template, labels, options),
        _text(subject, template, labels, swapped),
        labels, options, answer, other, subject, template,
    )  # fmt: skip


def _labels(rng: random.Random, label_set: str) -> tuple[str, ...]:
    if label_set == "abcd":
        return ("A", "B", "C", "D")
    while True:
        picked = rng.sample(LETTERS, 4)
        if label_set == "shuffled":
            if picked != sorted(picked):
                return tuple(picked)
        elif sorted(picked) != ["A", "B", "C", "D"]:
            return tuple(sorted(picked))


def sample_questions(split: str, n: int, seed: int, label_set: str = "abcd") -> list[Question]:
    """``n`` random questions of ``split`` ("train" / "heldout" question templates) with labels
    from ``label_set``: ``"abcd"``, ``"letters"`` (4 other letters of A..H, alphabetical) or
    ``"shuffled"`` (4 letters in a non-alphabetical order, never trained). The correct option's
    place is uniform over the four."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split={split!r}; expected 'train' or 'heldout'.")
    if label_set not in LABEL_SETS:
        raise ValueError(f"label_set={label_set!r}; expected one of {LABEL_SETS}.")
    rng = random.Random(seed)
    subjects = list(SUBJECTS)
    out = []
    for _ in range(n):
        subject = rng.choice(subjects)
        pool = CITIES if subject in dict(LANDMARKS) else INSTRUMENTS
        wrong = rng.sample([a for a in pool if a != SUBJECTS[subject]], 3)
        options = wrong[:]
        options.insert(rng.randrange(4), SUBJECTS[subject])
        template = HELDOUT_TEMPLATE if split == "heldout" else rng.randrange(2)
        labels = _labels(rng, label_set)
        out.append(question(subject, options, labels, template, swap=rng.randint(1, 3)))
    return out


def tokens_of(model, questions: list[Question], corrupted: bool = False) -> torch.Tensor:
    """``[batch, 18]`` token ids of the clean (or corrupted) prompts."""
    return model.to_tokens([q.corrupted if corrupted else q.clean for q in questions])


def label_ids(model, questions: list[Question]) -> torch.Tensor:
    """``[batch, 4]``: the token id of each question's four labels, in option order."""
    return torch.tensor([[model.tokenizer.ids[lab] for lab in q.labels] for q in questions])


def answer_ids(model, questions: list[Question], corrupted: bool = False) -> torch.Tensor:
    """``[batch]``: the token id of the correct letter (of the corrupted prompt with ``corrupted``)."""
    return torch.tensor(
        [model.tokenizer.ids[q.corrupted_letter if corrupted else q.letter] for q in questions]
    )


def accuracy(logits: torch.Tensor, model, questions: list[Question]) -> torch.Tensor:
    """``[batch]`` bool: the top token at the last position (over the whole vocabulary) is the
    correct letter."""
    return logits[:, -1].argmax(-1).cpu() == answer_ids(model, questions)


def logit_diff_metric(model, questions: list[Question]):
    """A mechscope metric ``logits [batch, pos, d_vocab] -> [batch]``: at the last position,
    the logit of the clean prompt's correct letter minus that of the corrupted prompt's."""
    right, wrong = answer_ids(model, questions), answer_ids(model, questions, corrupted=True)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[0] != len(right):
            raise ValueError(
                f"logit_diff_metric was built for {len(right)} questions but got logits for "
                f"{logits.shape[0]}; build one metric per batch of questions."
            )
        last = logits[:, -1]
        rows = torch.arange(len(right), device=last.device)
        return last[rows, right.to(last.device)] - last[rows, wrong.to(last.device)]

    return metric
