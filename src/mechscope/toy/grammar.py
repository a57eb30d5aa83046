"""A tiny templated language with nameable word classes, for feature work.

Sentences follow one template,

    DET [ADJ] [COLOUR] NOUN VERB [ADV] .

e.g. ``two big red foxes run fast .`` or ``a key falls .``. Nouns are animals or
objects, singular or plural; the verb must agree with the noun in number *and*
class (animals run / sleep / eat, objects fall / break / shine); the determiner
fixes the number (``a``, ``one``: singular; ``two``..``five``: plural; ``the``:
either), which the noun must respect even with adjectives in between, so the
model has to look back (attention), not just at the last word.

Every word belongs to a named class, so features a sparse autoencoder finds in a
model trained on this can be named ("plural animal subject", "after a colour",
...), and every position has a known set of grammatical next words, so accuracy
needs no reference model.
"""

from __future__ import annotations

import random

import torch

ANIMALS = [
    ("cat", "cats"),
    ("dog", "dogs"),
    ("fox", "foxes"),
    ("owl", "owls"),
    ("bee", "bees"),
    ("cow", "cows"),
    ("pig", "pigs"),
    ("hen", "hens"),
]
OBJECTS = [
    ("cup", "cups"),
    ("pen", "pens"),
    ("box", "boxes"),
    ("key", "keys"),
    ("hat", "hats"),
    ("map", "maps"),
    ("bag", "bags"),
    ("car", "cars"),
]
ANIMAL_VERBS = [("runs", "run"), ("sleeps", "sleep"), ("eats", "eat")]
OBJECT_VERBS = [("falls", "fall"), ("breaks", "break"), ("shines", "shine")]
DET_SINGULAR = ["a", "one"]
DET_PLURAL = ["two", "three", "four", "five"]
DET_ANY = ["the"]
ADJECTIVES = ["big", "small", "old", "young"]
COLOURS = ["red", "blue", "green", "gold", "pink", "gray"]
ADVERBS = ["fast", "slowly", "today"]
END = "."

# Word classes by name: what a feature can be named after.
CLASSES: dict[str, list[str]] = {
    "det_singular": DET_SINGULAR,
    "det_plural": DET_PLURAL,
    "det_the": DET_ANY,
    "adjective": ADJECTIVES,
    "colour": COLOURS,
    "animal_singular": [s for s, _ in ANIMALS],
    "animal_plural": [p for _, p in ANIMALS],
    "object_singular": [s for s, _ in OBJECTS],
    "object_plural": [p for _, p in OBJECTS],
    "animal_verb_singular": [s for s, _ in ANIMAL_VERBS],
    "animal_verb_plural": [p for _, p in ANIMAL_VERBS],
    "object_verb_singular": [s for s, _ in OBJECT_VERBS],
    "object_verb_plural": [p for _, p in OBJECT_VERBS],
    "adverb": ADVERBS,
    "end": [END],
}
VOCAB: list[str] = [w for words in CLASSES.values() for w in words]
WORD_CLASS: dict[str, str] = {w: c for c, words in CLASSES.items() for w in words}

P_ADJ, P_COLOUR, P_ADV = 0.4, 0.5, 0.3


def _sentence(rng: random.Random) -> list[tuple[str, list[str]]]:
    """One sentence as ``(word, allowed words at this slot)`` pairs."""
    det = rng.choice(DET_SINGULAR + DET_PLURAL + DET_ANY * 2)
    if det in DET_SINGULAR:
        plurals = [False]
    elif det in DET_PLURAL:
        plurals = [True]
    else:
        plurals = [False, True]
    plural = rng.choice(plurals)
    nouns_ok = [
        w
        for cls in ("animal", "object")
        for p in plurals
        for w in CLASSES[f"{cls}_{'plural' if p else 'singular'}"]
    ]
    out = [(det, DET_SINGULAR + DET_PLURAL + DET_ANY)]
    slot = ADJECTIVES + COLOURS + nouns_ok  # what may follow the determiner
    if rng.random() < P_ADJ:
        out.append((rng.choice(ADJECTIVES), slot))
        slot = COLOURS + nouns_ok
    if rng.random() < P_COLOUR:
        out.append((rng.choice(COLOURS), slot))
        slot = nouns_ok
    animal = rng.random() < 0.5
    noun = rng.choice(ANIMALS if animal else OBJECTS)[int(plural)]
    out.append((noun, slot))
    verbs = ANIMAL_VERBS if animal else OBJECT_VERBS
    out.append((rng.choice(verbs)[int(plural)], [v[int(plural)] for v in verbs]))
    if rng.random() < P_ADV:
        out.append((rng.choice(ADVERBS), ADVERBS + [END]))
        out.append((END, [END]))
    else:
        out.append((END, ADVERBS + [END]))
    return out


def grammar_batch(
    batch: int, seq_len: int, seed: int, vocab: list[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens [batch, seq_len], allowed [batch, seq_len - 1, d_vocab])``.

    ``tokens`` are ids of a WordTokenizer over ``vocab`` (default :data:`VOCAB`; id 0 is BOS):
    BOS then sentences, cut at ``seq_len``. ``allowed[b, i, w]`` is True when word ``w`` is a
    grammatical next word after position ``i`` (so a prediction can be scored by the grammar).
    """
    vocab = VOCAB if vocab is None else vocab
    ids = {w: i + 1 for i, w in enumerate(vocab)}
    rng = random.Random(seed)
    tokens = torch.zeros(batch, seq_len, dtype=torch.long)
    allowed = torch.zeros(batch, seq_len - 1, len(vocab) + 1, dtype=torch.bool)
    for b in range(batch):
        words: list[tuple[str, list[str]]] = []
        while len(words) < seq_len - 1:
            words += _sentence(rng)
        for i, (w, ok) in enumerate(words[: seq_len - 1]):
            tokens[b, i + 1] = ids[w]
            allowed[b, i, [ids[x] for x in ok]] = True
    return tokens, allowed


def word_classes(str_tokens: list[str]) -> list[str]:
    """The class name of each word (``"bos"`` for anything not in the grammar)."""
    return [WORD_CLASS.get(w, "bos") for w in str_tokens]
