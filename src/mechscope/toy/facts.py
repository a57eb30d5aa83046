"""Made-up facts and IOI-style sentences with known answers, for patching tutorials.

Two tasks, both one-word answers, both with a corrupted prompt of the same token length:

- **facts** (factual recall, the review's Fig. 9a): ``The Colosseum is in`` -> ``Rome``;
  ``Lena Marsh plays the`` -> ``violin``. A fact's corrupted prompt swaps the subject for
  another subject of the same word length with a different answer
  (``The Louvre is in`` -> ``Paris``). Facts are memorised by design; what is held out
  is *phrasings*: each prompt is ``PREFIX + BODY``, and some (prefix, body) combinations
  are never trained on.
- **ioi** (indirect object identification, Wang et al. 2022):
  ``When Mary and John went to the store , John gave a drink to`` -> ``Mary``. The
  corrupted prompt repeats the other name (``..., Mary gave a drink to`` -> ``John``), so
  the answer flips and the logit difference ``logit(IO) - logit(S)`` changes sign. Held
  out: some name pairs (never seen together in training) and some (intro, action)
  template combinations.

Every prompt is whitespace-separated words (punctuation is its own word) for
:class:`mechscope.models.WordTokenizer`; :data:`VOCAB` is the whole vocabulary.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# ---- facts -------------------------------------------------------------------------

# (landmark, city): real landmarks, plus a few made-up ones (so no one mistakes the model
# for a source of world knowledge: it knows what it was told).
LANDMARKS: list[tuple[str, str]] = [
    ("Colosseum", "Rome"),
    ("Louvre", "Paris"),
    ("Kremlin", "Moscow"),
    ("Acropolis", "Athens"),
    ("Pantheon", "Rome"),
    ("Alhambra", "Granada"),
    ("Reichstag", "Berlin"),
    ("Rijksmuseum", "Amsterdam"),
    ("Zorvath", "Velmora"),
    ("Eiffel Tower", "Paris"),
    ("Buckingham Palace", "London"),
    ("Brandenburg Gate", "Berlin"),
    ("Blue Mosque", "Istanbul"),
    ("Charles Bridge", "Prague"),
    ("Rialto Bridge", "Venice"),
    ("Forbidden City", "Beijing"),
    ("Sagrada Familia", "Barcelona"),
    ("Trevi Fountain", "Rome"),
    ("Tower Bridge", "London"),
    ("Amber Spire", "Quillon"),
    ("Glass Citadel", "Velmora"),
]
# (person, instrument): made-up people, two words each.
PEOPLE: list[tuple[str, str]] = [
    ("Lena Marsh", "violin"),
    ("Omar Vance", "piano"),
    ("Ivy Holt", "guitar"),
    ("Rex Dunmore", "drums"),
    ("Nora Quill", "flute"),
    ("Hugo Brandt", "cello"),
    ("Tessa Lark", "trumpet"),
    ("Felix Orrin", "harp"),
    ("Maya Pell", "violin"),
    ("Jonas Reed", "piano"),
    ("Zara Fenn", "cello"),
    ("Otto Crane", "guitar"),
]
FACT_PREFIXES = ["", "I think", "Everyone knows that", "As you know ,", "It is true that"]
LANDMARK_BODIES = [
    "the {s} is in",
    "the {s} is located in",
    "the {s} stands in",
    "the {s} can be found in",
    "you can visit the {s} in",
]
PERSON_BODIES = [
    "{s} plays the",
    "{s} loves to play the",
    "{s} is famous for playing the",
    "{s} practises the",
    "every day {s} plays the",
]

# ---- IOI -----------------------------------------------------------------------------

NAMES = [
    "Mary", "John", "Alice", "Bob", "Emma", "David", "Sarah", "Tom",
    "Laura", "James", "Anna", "Peter", "Kate", "Mark", "Lucy", "Paul",
]  # fmt: skip
PLACES = ["store", "park", "school", "beach", "office", "garden", "station", "market"]
OBJECTS = ["drink", "book", "ball", "gift", "letter", "key", "ring", "bag"]
IOI_INTROS = [
    "When {a} and {b} went to the {place} ,",
    "After {a} and {b} arrived at the {place} ,",
    "While {a} and {b} were at the {place} ,",
    "Then {a} and {b} walked to the {place} ,",
]
IOI_ACTIONS = [
    "{s} gave a {obj} to",
    "{s} handed a {obj} to",
    "{s} passed the {obj} to",
    "{s} threw a {obj} to",
]

CANONICAL_FACTS = [("Colosseum", "Louvre"), ("Eiffel Tower", "Buckingham Palace")]
CANONICAL_IOI = [("Mary", "John", 0, 0, "store", "drink")]  # (IO, S, intro, action, place, obj)


@dataclass(frozen=True)
class PromptPair:
    """A clean prompt and its corrupted twin (same number of words), with both answers."""

    task: str  # "facts" or "ioi"
    clean: str
    corrupted: str
    answer: str  # the clean prompt's answer
    wrong: str  # the corrupted prompt's answer (the clean metric's "wrong" token)


def _fact_answer() -> dict[str, str]:
    return dict(LANDMARKS) | dict(PEOPLE)


def _words(*groups) -> list[str]:
    out: list[str] = []
    for text in groups:
        for w in text.split():
            if "{" not in w and w not in out:
                out.append(w)
    return out


def build_vocab() -> list[str]:
    """Every word any prompt or answer uses, in a fixed order."""
    words = _words(
        *FACT_PREFIXES,
        *LANDMARK_BODIES,
        *PERSON_BODIES,
        *(b[0].upper() + b[1:] for b in LANDMARK_BODIES + PERSON_BODIES),
        *IOI_INTROS,
        *IOI_ACTIONS,
        *(s for s, _ in LANDMARKS),
        *(a for _, a in LANDMARKS),
        *(s for s, _ in PEOPLE),
        *(a for _, a in PEOPLE),
        *NAMES,
        *PLACES,
        *OBJECTS,
        ".",
    )
    return words


VOCAB: list[str] = build_vocab()


# ---- splits --------------------------------------------------------------------------


def fact_template_is_heldout(prefix: int, body: int) -> bool:
    """Held-out phrasings: one body per prefix, never the canonical ``The {s} is in`` (0, 0)."""
    return body == (prefix + 2) % len(LANDMARK_BODIES)


def ioi_pair_is_heldout(a: str, b: str) -> bool:
    """Name pairs (unordered) never seen together in training; Mary/John is a training pair."""
    i, j = NAMES.index(a), NAMES.index(b)
    return (i + j) % 5 == 2 and {a, b} != {"Mary", "John"}


def ioi_template_is_heldout(intro: int, action: int) -> bool:
    """Held-out (intro, action) combinations; the canonical (0, 0) is trained on."""
    return action == (intro + 1) % len(IOI_ACTIONS)


def fact_prompt(subject: str, prefix: int, body: int) -> str:
    bodies = LANDMARK_BODIES if subject in dict(LANDMARKS) else PERSON_BODIES
    text = bodies[body].format(s=subject)
    pre = FACT_PREFIXES[prefix]
    return f"{pre} {text}" if pre else text[0].upper() + text[1:]


def fact_partner(subject: str, k: int = 0) -> str:
    """The ``k``-th subject of the same kind and word length with a different answer."""
    answers = _fact_answer()
    pool = LANDMARKS if subject in dict(LANDMARKS) else PEOPLE
    n = len(subject.split())
    cands = [s for s, a in pool if len(s.split()) == n and a != answers[subject]]
    start = [s for s, _ in pool].index(subject)
    # rotate so that different subjects get different partners
    order = sorted(cands, key=lambda s: ([p for p, _ in pool].index(s) - start) % len(pool))
    return order[k % len(order)]


def fact_pair(
    subject: str, prefix: int = 0, body: int = 0, partner: str | None = None
) -> PromptPair:
    partner = partner or fact_partner(subject)
    answers = _fact_answer()
    return PromptPair(
        "facts",
        fact_prompt(subject, prefix, body),
        fact_prompt(partner, prefix, body),
        answers[subject],
        answers[partner],
    )


def ioi_prompt(a: str, b: str, s: str, intro: int, action: int, place: str, obj: str) -> str:
    return (
        IOI_INTROS[intro].format(a=a, b=b, place=place)
        + " "
        + IOI_ACTIONS[action].format(s=s, obj=obj)
    )


def ioi_pair(
    io: str,
    s: str,
    intro: int = 0,
    action: int = 0,
    place: str = "store",
    obj: str = "drink",
    order: str = "ABB",
) -> PromptPair:
    """Clean: ``io`` and ``s`` introduced (in ``order``: ABB = IO first, BAB = S first), then
    ``s`` repeated; answer ``io``. Corrupted: the same sentence with ``io`` repeated instead;
    answer ``s``."""
    if io == s:
        raise ValueError(f"IOI needs two different names, got {io!r} twice.")
    a, b = (io, s) if order == "ABB" else (s, io)
    return PromptPair(
        "ioi",
        ioi_prompt(a, b, s, intro, action, place, obj),
        ioi_prompt(a, b, io, intro, action, place, obj),
        io,
        s,
    )


def _fact_space(split: str) -> list[tuple[str, int, int]]:
    out = []
    for subject in [s for s, _ in LANDMARKS] + [s for s, _ in PEOPLE]:
        for p in range(len(FACT_PREFIXES)):
            for b in range(len(LANDMARK_BODIES)):
                if fact_template_is_heldout(p, b) == (split == "heldout"):
                    out.append((subject, p, b))
    return out


def ioi_split_of(io: str, s: str, intro: int, action: int) -> str:
    held = ioi_pair_is_heldout(io, s) or ioi_template_is_heldout(intro, action)
    return "heldout" if held else "train"


def sample_pairs(task: str, split: str, n: int, seed: int) -> list[PromptPair]:
    """``n`` random prompt pairs of ``task`` ("facts" / "ioi") from ``split`` ("train" / "heldout").

    Held-out facts are the training facts in never-trained phrasings; held-out IOI prompts
    use a never-trained name pair, or a never-trained (intro, action) template, or both.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split={split!r}; expected 'train' or 'heldout'.")
    rng = random.Random(seed)
    out = []
    if task == "facts":
        space = _fact_space(split)
        for _ in range(n):
            subject, p, b = rng.choice(space)
            out.append(fact_pair(subject, p, b, fact_partner(subject, rng.randrange(8))))
        return out
    if task != "ioi":
        raise ValueError(f"task={task!r}; expected 'facts' or 'ioi'.")
    while len(out) < n:
        io, s = rng.sample(NAMES, 2)
        intro, action = rng.randrange(len(IOI_INTROS)), rng.randrange(len(IOI_ACTIONS))
        if ioi_split_of(io, s, intro, action) != split:
            continue
        order = rng.choice(["ABB", "BAB"])
        out.append(ioi_pair(io, s, intro, action, rng.choice(PLACES), rng.choice(OBJECTS), order))
    return out


def canonical_pairs() -> list[PromptPair]:
    """The tutorials' pairs: Colosseum / Louvre, Eiffel Tower / Buckingham Palace, Mary / John."""
    pairs = [fact_pair(s, 0, 0, partner=p) for s, p in CANONICAL_FACTS]
    pairs += [ioi_pair(io, s, i, a, pl, ob) for io, s, i, a, pl, ob in CANONICAL_IOI]
    return pairs
