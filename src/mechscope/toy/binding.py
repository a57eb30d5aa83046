"""Entity-attribute binding: made-up contexts, after Feng & Steinhardt (2024).

"How do language models bind entities in context?" asks how a model answers
``Alice lives in Paris. Bob lives in Rome. Bob lives in`` -> ``Rome``: something must tie
``Rome`` to ``Bob`` rather than to ``Alice``. Feng & Steinhardt find *binding ID vectors*:
each entity's and each attribute's activations carry a vector that depends only on its slot
(first or second statement), the model retrieves the attribute whose binding ID matches the
queried entity's, and the vectors are additive (adding the difference between slot 2's and
slot 1's vector to an entity moves it to slot 2).

Here the contexts are the shortest such statements, in the words of the ``induction-2l`` zoo
model (:data:`mechscope.toy.induction.WORDS`): ``cat red dog blue dog`` -> ``blue`` ("the cat
is red, the dog is blue; the dog is ..."). Two statements and a query on one of the two
entities; entities (animals) and attributes (colours and numbers) are distinct and drawn at
random, so the answer can only come from the context. Every prompt is 6 tokens with BOS:
entities at :data:`ENTITY_POS`, attributes at :data:`ATTRIBUTE_POS`, the queried entity at
:data:`QUERY_POS` (the last position, where the answer is predicted).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

ENTITIES: list[str] = ["cat", "dog", "fox", "owl", "bee", "cow", "pig", "hen", "eel", "ant"]
ATTRIBUTES: list[str] = [
    "red", "blue", "green", "gold", "pink", "gray", "one", "two", "three", "four", "five", "six",
]  # fmt: skip
TEMPLATE = "{e0} {a0} {e1} {a1} {q}"
VOCAB: list[str] = [*ENTITIES, *ATTRIBUTES]  # all in mechscope.toy.induction.WORDS
ENTITY_POS = (1, 3)  # token positions (BOS = 0) of the first and second entity
ATTRIBUTE_POS = (2, 4)  # ... of their attributes
QUERY_POS = 5  # the queried entity, the last position
N_POS = 6  # tokens per prompt, BOS included

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_POS",
    "ENTITIES",
    "ENTITY_POS",
    "N_POS",
    "QUERY_POS",
    "VOCAB",
    "BindingContext",
    "attribute_ids",
    "choice",
    "sample_contexts",
    "swapped",
    "tokens_of",
]


@dataclass(frozen=True)
class BindingContext:
    """Two statements ``entities[k] attributes[k]`` and a query on slot ``query``."""

    entities: tuple[str, str]
    attributes: tuple[str, str]
    query: int  # 0 = asks about the first entity, 1 = the second

    @property
    def text(self) -> str:
        e, a = self.entities, self.attributes
        return TEMPLATE.format(e0=e[0], a0=a[0], e1=e[1], a1=a[1], q=e[self.query])

    @property
    def answer(self) -> str:
        return self.attributes[self.query]

    @property
    def wrong(self) -> str:
        """The other attribute in the context (the distractor)."""
        return self.attributes[1 - self.query]


def sample_contexts(n: int, seed: int) -> list[BindingContext]:
    """``n`` random contexts: two distinct entities, two distinct attributes, query slot 0 or 1
    (seeded; the global RNG is not touched)."""
    if n < 1:
        raise ValueError(f"n={n}; need at least one context.")
    rng = random.Random(seed)
    return [
        BindingContext(
            tuple(rng.sample(ENTITIES, 2)), tuple(rng.sample(ATTRIBUTES, 2)), rng.randrange(2)
        )
        for _ in range(n)
    ]


def swapped(ctx: BindingContext, what: str = "entities") -> BindingContext:
    """The same context with the order of its ``entities`` (or ``attributes``) swapped; the query
    names the same entity, so its answer changes: the counterfactual for patching the binding."""
    if what == "entities":
        e = ctx.entities
        return BindingContext((e[1], e[0]), ctx.attributes, 1 - ctx.query)
    if what == "attributes":
        a = ctx.attributes
        return BindingContext(ctx.entities, (a[1], a[0]), ctx.query)
    raise ValueError(f"what={what!r}; expected 'entities' or 'attributes'.")


def tokens_of(model, contexts: list[BindingContext]) -> torch.Tensor:
    """``[batch, 6]`` token ids of the contexts."""
    return model.to_tokens([c.text for c in contexts])


def attribute_ids(model, contexts: list[BindingContext]) -> torch.Tensor:
    """``[batch, 2]``: the token ids of each context's first- and second-slot attribute."""
    ids = model.tokenizer.ids
    return torch.tensor([[ids[a] for a in c.attributes] for c in contexts])


def choice(logits: torch.Tensor, attr_ids: torch.Tensor) -> torch.Tensor:
    """``logits [batch, pos, d_vocab]``, ``attr_ids [batch, 2]`` -> ``[batch]`` (0 or 1): which
    slot's attribute gets the larger logit at the last position."""
    pair = logits[:, -1].gather(-1, attr_ids.to(logits.device))
    return (pair[:, 1] > pair[:, 0]).long()
