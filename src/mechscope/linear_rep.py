"""Linear representations: word-vector arithmetic and concept directions on a real model.

The linear representation hypothesis (review section 3.2): concepts are directions in
activation space. Its oldest evidence is word arithmetic (Mikolov et al. 2013, "Linguistic
Regularities in Continuous Space Word Representations"): ``king - man + woman`` lands
nearest ``queen``. Park et al. 2023 ("The Linear Representation Hypothesis and the
Geometry of Large Language Models") make it precise: a concept such as male -> female is
one direction, so the differences ``b - a`` of its word pairs are parallel.

Here on all-MiniLM-L6-v2 (``mechscope.load("minilm")``, offline):

- :data:`ANALOGIES`: a built-in list of word pairs in five relations (country -> capital,
  male -> female, singular -> plural, present -> past tense, adjective -> comparative).
  Every word is a single WordPiece token of MiniLM's (uncased) vocabulary, so a word is
  one vector at the embedding layer; deeper layers mean-pool over the whole encoded
  word (``[CLS] word [SEP]``), as sentence-transformers pool MiniLM's sentence embedding.
- :func:`analogy_scores`: ``a : b :: c : ?`` answered by the nearest cosine neighbour of
  ``b - a + c`` among all words of the list (excluding ``a``, ``b``, ``c``), against the
  "only-c" baseline (the nearest neighbour of ``c`` itself; Linzen 2016, "Issues in
  evaluating semantic spaces using word analogies") and chance.
- :func:`relation_consistency`: mean cosine between difference vectors of pairs of the
  same relation vs of different relations (Park et al. 2023's parallel differences).
- :func:`tense_sentences` / :func:`sentence_features`: real sentences labelled by a simple
  property (past vs present tense), and mean-pooled activations per layer, for a probe.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

ANALOGIES: dict[str, list[tuple[str, str]]] = {
    "capital": [
        ("france", "paris"), ("germany", "berlin"), ("italy", "rome"), ("spain", "madrid"),
        ("japan", "tokyo"), ("russia", "moscow"), ("china", "beijing"), ("egypt", "cairo"),
        ("greece", "athens"), ("canada", "ottawa"), ("poland", "warsaw"),
        ("austria", "vienna"), ("portugal", "lisbon"), ("ireland", "dublin"),
        ("sweden", "stockholm"), ("norway", "oslo"), ("cuba", "havana"),
        ("kenya", "nairobi"), ("peru", "lima"), ("thailand", "bangkok"),
        ("turkey", "ankara"), ("iran", "tehran"),
    ],
    "gender": [
        ("man", "woman"), ("king", "queen"), ("boy", "girl"), ("brother", "sister"),
        ("father", "mother"), ("son", "daughter"), ("husband", "wife"), ("uncle", "aunt"),
        ("prince", "princess"), ("he", "she"), ("his", "her"), ("nephew", "niece"),
        ("actor", "actress"), ("male", "female"), ("grandfather", "grandmother"),
        ("dad", "mom"), ("gentleman", "lady"), ("boyfriend", "girlfriend"),
        ("emperor", "empress"), ("god", "goddess"),
    ],
    "plural": [
        ("cat", "cats"), ("dog", "dogs"), ("car", "cars"), ("house", "houses"),
        ("tree", "trees"), ("book", "books"), ("bird", "birds"), ("child", "children"),
        ("mouse", "mice"), ("foot", "feet"), ("tooth", "teeth"), ("city", "cities"),
        ("horse", "horses"), ("apple", "apples"), ("hand", "hands"), ("eye", "eyes"),
        ("day", "days"), ("river", "rivers"), ("song", "songs"), ("door", "doors"),
    ],
    "tense": [
        ("walk", "walked"), ("go", "went"), ("run", "ran"), ("see", "saw"), ("eat", "ate"),
        ("take", "took"), ("give", "gave"), ("write", "wrote"), ("speak", "spoke"),
        ("sing", "sang"), ("swim", "swam"), ("drive", "drove"), ("play", "played"),
        ("say", "said"), ("think", "thought"), ("buy", "bought"), ("come", "came"),
        ("know", "knew"), ("fly", "flew"), ("begin", "began"), ("sleep", "slept"),
        ("find", "found"),
    ],
    "comparative": [
        ("big", "bigger"), ("small", "smaller"), ("fast", "faster"), ("slow", "slower"),
        ("old", "older"), ("young", "younger"), ("strong", "stronger"), ("weak", "weaker"),
        ("tall", "taller"), ("short", "shorter"), ("long", "longer"), ("cold", "colder"),
        ("warm", "warmer"), ("hard", "harder"), ("high", "higher"), ("low", "lower"),
        ("good", "better"), ("bad", "worse"), ("cheap", "cheaper"), ("dark", "darker"),
    ],
}  # fmt: skip


def vocabulary(analogies: dict[str, list[tuple[str, str]]] | None = None) -> list[str]:
    """Every distinct word of ``analogies`` (default :data:`ANALOGIES`), first-seen order:
    the candidate answers of :func:`analogy_scores`."""
    seen: dict[str, None] = {}
    for pairs in (ANALOGIES if analogies is None else analogies).values():
        for a, b in pairs:
            seen.setdefault(a)
            seen.setdefault(b)
    return list(seen)


def _layer_name(model, layer: int) -> str:
    n = model.cfg.n_layers
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer <= n:
        raise ValueError(
            f"layer={layer!r}; expected an int in 0..{n}: 0 = the token embeddings, l >= 1 = "
            f"the output of block l - 1 ({n} = the model's last hidden state)."
        )
    return "hook_embed" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"


@torch.no_grad()
def sentence_features(
    model, texts: list[str], *, layer: int | list[int], batch_size: int = 64
) -> torch.Tensor:
    """Mean-pooled activations of ``texts``: ``[n_texts, d_model]`` at one ``layer``, or
    ``[len(layer), n_texts, d_model]`` for a list of layers (one forward pass for all).

    ``layer`` 0 is the token embedding (``hook_embed``), ``l >= 1`` the output of block
    ``l - 1`` (``blocks.{l-1}.hook_resid_post``). Pooling averages every real token (padding
    masked), ``[CLS]`` and ``[SEP]`` included, as sentence-transformers pool MiniLM.
    """
    if isinstance(texts, str) or not texts:
        raise ValueError(
            f"texts must be a non-empty list of str, got {type(texts).__name__}"
            f"{'' if isinstance(texts, str) else f' of length {len(texts)}'}."
        )
    layers = [layer] if isinstance(layer, int) else list(layer)
    names = [_layer_name(model, lay) for lay in layers]
    out: list[list[torch.Tensor]] = [[] for _ in names]
    for i in range(0, len(texts), batch_size):
        batch = model.tokenize(list(texts[i : i + batch_size]))
        _, cache = model.run_with_cache(batch, names=sorted(set(names)))
        mask = batch["attention_mask"][..., None].float()
        for j, name in enumerate(names):
            act = cache[name].float().cpu()
            out[j].append((act * mask).sum(1) / mask.sum(1))
    stacked = torch.stack([torch.cat(o) for o in out])
    return stacked[0] if isinstance(layer, int) else stacked


def word_vectors(model, words: list[str], *, layer: int | None = None) -> torch.Tensor:
    """``[n_words, d_model]``: one vector per word (see :func:`sentence_features`).

    At ``layer=0`` only the word's own WordPiece embeddings are averaged (``[CLS]``/``[SEP]``
    would add the same vector to every word); deeper layers pool the encoded word.
    ``layer=None``: the last layer.
    """
    layer = model.cfg.n_layers if layer is None else layer
    if layer != 0:
        return sentence_features(model, words, layer=layer)
    _layer_name(model, 0)
    w_e = model.hf_model.get_input_embeddings().weight.detach()
    pieces = model.tokenizer(list(words), add_special_tokens=False)["input_ids"]
    empty = [w for w, ids in zip(words, pieces, strict=True) if not ids]
    if empty:
        raise ValueError(f"words {empty[:5]!r} have no tokens; give non-empty words.")
    if all(len(ids) == 1 for ids in pieces):  # the common case: one row each
        return w_e[[ids[0] for ids in pieces]].float().cpu()
    return torch.stack([w_e[ids].mean(0).float().cpu() for ids in pieces])


def vocab_words(model, *, min_len: int = 2) -> list[str]:
    """The whole-word (no ``##`` continuation), alphabetic tokens of the model's WordPiece
    vocabulary, in id order: an open candidate set for :func:`analogy_scores` (MiniLM: 21,719)."""
    vocab = model.tokenizer.get_vocab()
    return sorted(
        (w for w in vocab if w.isascii() and w.isalpha() and w.islower() and len(w) >= min_len),
        key=vocab.get,
    )


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@dataclass
class AnalogyScores:
    """Accuracy of ``b - a + c`` vs baselines, overall and per relation (fractions in [0, 1])."""

    accuracy: float  # nearest neighbour of b - a + c is d
    only_c: float  # nearest neighbour of c itself is d (the offset ignored)
    chance: float  # 1 / (number of candidates)
    n: int  # analogies scored
    by_relation: dict[str, dict[str, float]]
    layer: int
    examples: list[tuple[str, str, str, str, str]]  # (a, b, c, expected d, predicted)

    def __repr__(self) -> str:
        return (
            f"AnalogyScores(layer={self.layer}, n={self.n}, accuracy={self.accuracy:.3f}, "
            f"only_c={self.only_c:.3f}, chance={self.chance:.3f})"
        )


def analogy_scores(
    model,
    analogies: dict[str, list[tuple[str, str]]] | None = None,
    *,
    layer: int | None = None,
    candidates: list[str] | None = None,
    max_per_relation: int | None = None,
    seed: int = 0,
) -> AnalogyScores:
    """Score ``a : b :: c : d`` for every ordered pair of pairs within each relation.

    The answer is the candidate ``w`` maximising ``cos(w, b - a + c)``, ``a``, ``b`` and
    ``c`` excluded (Mikolov et al. 2013). Candidates: ``None`` = :func:`vocabulary` (the
    words of ``analogies``: a closed set, where the only-c baseline is strong), or a list of
    words (e.g. :func:`vocab_words`: an open set), to which the analogy words are added.
    Baselines: the nearest neighbour of ``c`` alone (``only_c``, same exclusions; Linzen
    2016) and chance.
    ``max_per_relation``: score a seeded random subset of each relation's analogies.
    """
    analogies = ANALOGIES if analogies is None else analogies
    if not isinstance(analogies, dict) or not analogies:
        raise ValueError(
            "analogies must be a non-empty dict {relation: [(a, b), ...]}, e.g. "
            "mechscope.linear_rep.ANALOGIES."
        )
    for rel, pairs in analogies.items():
        if len(pairs) < 2 or any(len(p) != 2 for p in pairs):
            raise ValueError(
                f"relation {rel!r} needs at least two (a, b) word pairs, got {pairs!r}."
            )
    layer = model.cfg.n_layers if layer is None else layer
    vocab = vocabulary(analogies)
    if candidates is not None:
        vocab = list(dict.fromkeys([*vocab, *candidates]))
    index = {w: i for i, w in enumerate(vocab)}
    vecs = _unit(word_vectors(model, vocab, layer=layer))  # [n_candidates, d_model]
    rng = random.Random(seed)
    hits = hits_c = n = 0
    by_relation: dict[str, dict[str, float]] = {}
    examples = []
    for rel, pairs in analogies.items():
        quads = [(a, b, c, d) for a, b in pairs for c, d in pairs if (a, b) != (c, d)]
        if max_per_relation is not None and len(quads) > max_per_relation:
            quads = rng.sample(quads, max_per_relation)
        ia, ib, ic, id_ = (torch.tensor([index[q[j]] for q in quads]) for j in range(4))
        excl = torch.zeros(len(quads), len(vocab), dtype=torch.bool)
        rows = torch.arange(len(quads))
        excl[rows, ia] = excl[rows, ib] = excl[rows, ic] = True
        offset = _unit(vecs[ib] - vecs[ia] + vecs[ic]) @ vecs.T
        pred = offset.masked_fill(excl, -2).argmax(-1)
        pred_c = (vecs[ic] @ vecs.T).masked_fill(excl, -2).argmax(-1)
        h, hc = int((pred == id_).sum()), int((pred_c == id_).sum())
        by_relation[rel] = {"accuracy": h / len(quads), "only_c": hc / len(quads), "n": len(quads)}
        hits, hits_c, n = hits + h, hits_c + hc, n + len(quads)
        examples += [(*quads[i], vocab[int(pred[i])]) for i in range(min(3, len(quads)))]
    return AnalogyScores(
        hits / n, hits_c / n, 1 / (len(vocab) - 3), n, by_relation, layer, examples
    )


def solve_analogy(
    model,
    a: str,
    b: str,
    c: str,
    *,
    candidates: list[str] | None = None,
    layer: int = 0,
    k: int = 5,
) -> list[tuple[str, float]]:
    """The ``k`` candidates nearest (cosine) to ``b - a + c``, ``a``, ``b``, ``c`` excluded:
    ``solve_analogy(model, "man", "king", "woman")`` -> ``[("queen", 0.7), ...]`` (Mikolov
    et al. 2013). ``candidates``: default :func:`vocab_words` (every whole word)."""
    words = vocab_words(model) if candidates is None else list(candidates)
    words = [w for w in dict.fromkeys(words) if w not in (a, b, c)]
    if not words:
        raise ValueError("candidates holds no word other than a, b and c.")
    vecs = _unit(word_vectors(model, words, layer=layer))
    q = word_vectors(model, [a, b, c], layer=layer)
    cos = vecs @ _unit(q[1] - q[0] + q[2])
    top = cos.topk(min(k, len(words)))
    return [(words[i], float(v)) for v, i in zip(top.values, top.indices, strict=True)]


def relation_consistency(
    model, analogies: dict[str, list[tuple[str, str]]] | None = None, *, layer: int | None = None
) -> dict[str, dict[str, float]]:
    """Mean cosine between the difference vectors ``b - a`` of two pairs of the same
    relation (``"within"``) and of one pair of it and one of another relation
    (``"across"``), per relation. Parallel differences (within >> across) are what a
    linear concept direction predicts (Park et al. 2023)."""
    analogies = ANALOGIES if analogies is None else analogies
    layer = model.cfg.n_layers if layer is None else layer
    vocab = vocabulary(analogies)
    index = {w: i for i, w in enumerate(vocab)}
    vecs = word_vectors(model, vocab, layer=layer)
    diffs = {
        rel: _unit(torch.stack([vecs[index[b]] - vecs[index[a]] for a, b in pairs]))
        for rel, pairs in analogies.items()
    }
    out = {}
    for rel, d in diffs.items():
        cos = d @ d.T
        k = len(d)
        within = (cos.sum() - cos.diagonal().sum()) / (k * (k - 1))
        others = torch.cat([o for r, o in diffs.items() if r != rel]) if len(diffs) > 1 else None
        across = float((d @ others.T).mean()) if others is not None else float("nan")
        out[rel] = {"within": float(within), "across": across}
    return out


# ---- a simple property of real sentences: past vs present tense ------------------------

_SUBJECTS = [
    "the old man", "my sister", "the children", "a young doctor", "our teacher", "the farmer",
    "my best friend", "the tired students", "a small dog", "the new manager", "her parents",
    "the pilot", "his grandmother", "the neighbours", "a famous singer", "the team",
]  # fmt: skip
# (present, past) verb phrases; every sentence shares its verb with one of the other tense.
_VERBS = [
    ("walks to the station", "walked to the station"), ("eats breakfast", "ate breakfast"),
    ("writes a long letter", "wrote a long letter"), ("sings in the kitchen", "sang in the kitchen"),
    ("drives to work", "drove to work"), ("reads the newspaper", "read the newspaper"),
    ("plays football", "played football"), ("buys fresh bread", "bought fresh bread"),
    ("visits the museum", "visited the museum"), ("cleans the house", "cleaned the house"),
    ("opens the window", "opened the window"), ("swims in the lake", "swam in the lake"),
    ("speaks to the crowd", "spoke to the crowd"), ("cooks dinner", "cooked dinner"),
    ("watches the game", "watched the game"), ("sleeps on the sofa", "slept on the sofa"),
]  # fmt: skip
_PLURAL_SUBJECTS = {"the children", "the tired students", "her parents", "the neighbours"}
_ENDINGS = ["", " every day", " on sunday", " with a smile", " after lunch", " again"]


def tense_sentences(n: int = 200, seed: int = 0) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """``(sentences, labels [n], verbs [n])``: ``n`` English sentences, label 1 = past,
    0 = present; ``verbs`` is the index of the verb (one of 16), for held-out-verb splits
    and as the word *type* of a control task (Hewitt & Liang 2019).

    Subject, verb phrase and ending are drawn at random (seeded); plural subjects take the
    plural present ("the children walk"). Odd-numbered sentences are past. Subjects and
    endings are drawn independently of tense, so only the verb carries it.
    """
    if n < 2:
        raise ValueError(f"n={n}; need at least 2 sentences (one per tense).")
    rng = random.Random(seed)
    texts, labels, verbs = [], [], []
    for i in range(n):
        subj = rng.choice(_SUBJECTS)
        v = rng.randrange(len(_VERBS))
        present, past = _VERBS[v]
        past_tense = i % 2 == 1
        verb = past if past_tense else present
        if not past_tense and subj in _PLURAL_SUBJECTS:
            verb = _plural_present(verb)
        texts.append(f"{subj} {verb}{rng.choice(_ENDINGS)}.")
        labels.append(int(past_tense))
        verbs.append(v)
    return texts, torch.tensor(labels), torch.tensor(verbs)


def _plural_present(phrase: str) -> str:
    verb, _, rest = phrase.partition(" ")
    for sing, plur in (("ches", "ch"), ("shes", "sh"), ("ies", "y"), ("s", "")):
        if verb.endswith(sing):
            verb = verb[: -len(sing)] + plur
            break
    return f"{verb} {rest}".strip()
