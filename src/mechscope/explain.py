"""Automated explanations scored by simulation (Bills et al. 2023, "Language models can
explain neurons in language models"; review §5.4).

An **explanation** of a feature is something that *predicts* the feature's activation at each
token of a text it has not seen. Its score is the Pearson correlation between the simulated
activations and the real ones, pooled over every token of many texts (Bills et al.'s
"all at once" scoring). A perfect explanation scores 1, one that carries no information
about the feature scores about 0.

- :func:`simulate_score` scores any explanation (an object with ``.simulate`` or a plain
  callable ``token_texts -> activations``).
- :class:`RuleExplainer` picks, among nameable rules over Python source
  (``mechscope.toy.code_features``: ``in_string``, ``in_comment``, ``indent_depth``,
  ``bracket_depth``, ``after_def``), the one that best matches a feature's top-activating
  examples. It runs offline; no language model is involved.
- :class:`LLMExplainer` builds Bills et al.'s kind of prompt and hands it to a ``complete``
  callable *you* supply (an API client, a local model); this module never opens a network
  connection. Its explanation simulates through the same rules, or a ``simulator`` you pass.

The honest limit: a rule explainer can only say one of a handful of things. Most features of
a real model are not one of five rules, and they score near 0 however good the feature is:
a low score means "not this vocabulary", not "not interpretable".

Constant activations (or a constant simulation) have no correlation: the score is then
``0.0`` and ``ExplanationScore.constant`` is True, so a rule that never fires ranks last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from .toy.code_features import RULES, code_labels

__all__ = [
    "Explainer",
    "Explanation",
    "ExplanationScore",
    "LLMExplainer",
    "RuleExplainer",
    "RuleExplanation",
    "format_prompt",
    "rule_labels",
    "simulate_score",
]


@runtime_checkable
class Explanation(Protocol):
    """What an explainer returns: ``.text`` and ``.simulate(token_texts) -> activations``
    (one sequence of floats per text, one float per token)."""

    text: str

    def simulate(self, token_texts: Sequence[Sequence[str]]) -> list[torch.Tensor]: ...


@runtime_checkable
class Explainer(Protocol):
    """A callable: ``examples`` (``[(token_texts, acts), ...]``, a feature's top-activating
    contexts with its activation at every token) -> an :class:`Explanation`."""

    def __call__(self, examples: Sequence[tuple[Sequence[str], torch.Tensor]]) -> Explanation: ...


@dataclass(frozen=True)
class ExplanationScore:
    """``score``: Pearson r of simulated vs real activations over ``n_tokens`` tokens; 0.0
    when either side is constant (``constant`` True)."""

    score: float
    n_tokens: int
    constant: bool = False

    def __float__(self) -> float:
        return self.score


def _check_texts(token_texts, arg="token_texts") -> list[list[str]]:
    if isinstance(token_texts, str) or not isinstance(token_texts, Sequence):
        raise TypeError(
            f"{arg} must be a list of texts, each a list of token strings; got "
            f"{type(token_texts).__name__}. Wrap one text as [[tok, tok, ...]]."
        )
    out = []
    for i, t in enumerate(token_texts):
        if (
            isinstance(t, str)
            or not isinstance(t, Sequence)
            or not all(isinstance(s, str) for s in t)
        ):
            raise TypeError(
                f"{arg}[{i}] must be a list of token strings; got {type(t).__name__}. "
                f"Pass [[tok, tok, ...], ...] (tokenizer.token_text of each id)."
            )
        out.append(list(t))
    return out


def _flat(values, lengths, arg) -> torch.Tensor:
    if isinstance(values, torch.Tensor) and values.ndim == 2:
        values = list(values)
    if not isinstance(values, Sequence) and not isinstance(values, torch.Tensor):
        raise TypeError(f"{arg} must be one 1-D sequence per text; got {type(values).__name__}.")
    if len(values) != len(lengths):
        raise ValueError(
            f"{arg} has {len(values)} texts but token_texts has {len(lengths)}: pass one "
            f"activation sequence per text."
        )
    parts = []
    for i, (v, n) in enumerate(zip(values, lengths, strict=True)):
        v = torch.as_tensor(v, dtype=torch.float64).flatten()
        if len(v) != n:
            raise ValueError(
                f"{arg}[{i}] has {len(v)} values but token_texts[{i}] has {n} tokens: pass "
                f"one activation per token."
            )
        parts.append(v)
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def _pearson(x: torch.Tensor, y: torch.Tensor) -> tuple[float, bool]:
    x, y = x - x.mean(), y - y.mean()
    nx, ny = x.norm(), y.norm()
    if nx <= 1e-12 * max(1, len(x)) or ny <= 1e-12 * max(1, len(y)):
        return 0.0, True
    return float((x @ y) / (nx * ny)), False


def simulate_score(explanation, token_texts, acts) -> ExplanationScore:
    """Score ``explanation`` by simulation: its predicted activations on ``token_texts``
    (list of texts, each a list of token strings) against the real ``acts`` (one 1-D
    sequence per text, or ``[n_texts, pos]``), Pearson r over all tokens pooled."""
    texts = _check_texts(token_texts)
    if not texts or not sum(len(t) for t in texts):
        raise ValueError("token_texts is empty: pass at least one text with tokens.")
    sim = getattr(explanation, "simulate", None)
    if sim is None:
        if not callable(explanation):
            raise TypeError(
                f"explanation must have .simulate(token_texts) or be callable token_texts -> "
                f"activations; got {type(explanation).__name__}."
            )
        sim = explanation
    lengths = [len(t) for t in texts]
    real = _flat(acts, lengths, "acts")
    pred = _flat(sim(texts), lengths, "explanation's simulated activations")
    r, constant = _pearson(pred, real)
    return ExplanationScore(r, len(real), constant)


def rule_labels(token_texts) -> dict[str, list[torch.Tensor]]:
    """``{rule: [one float tensor per text]}`` from ``code_labels``, each text scanned from
    its first token (texts should start at a file's start, not mid-docstring)."""
    texts = _check_texts(token_texts)
    per_text = [code_labels(t) for t in texts]
    return {
        rule: [torch.tensor(lab[rule], dtype=torch.float32) for lab in per_text] for rule in RULES
    }


def _check_rules(rules) -> tuple[str, ...]:
    if isinstance(rules, str) or not rules:
        raise ValueError(
            f"rules must be a non-empty list of rule names from {RULES}; got {rules!r}."
        )
    bad = [r for r in rules if r not in RULES]
    if bad:
        raise ValueError(f"rules: unknown rule(s) {bad}; choose from {RULES}.")
    return tuple(rules)


@dataclass(frozen=True)
class RuleExplanation:
    """ "The feature is ``rule``": simulates ``rule``'s label value at every token (0/1 for
    ``in_string``, ``in_comment``, ``after_def``; the depth for the two depths)."""

    rule: str
    text: str = ""

    def __post_init__(self):
        _check_rules([self.rule])
        if not self.text:
            object.__setattr__(self, "text", f"fires on tokens where {self.rule}")

    def simulate(self, token_texts) -> list[torch.Tensor]:
        return rule_labels(token_texts)[self.rule]


def _check_examples(examples) -> tuple[list[list[str]], list[torch.Tensor]]:
    if isinstance(examples, str) or not isinstance(examples, Sequence) or not examples:
        raise ValueError(
            f"examples must be a non-empty list of (token_texts, acts) pairs; got {examples!r:.80}."
        )
    texts, acts = [], []
    for i, ex in enumerate(examples):
        if not isinstance(ex, Sequence) or len(ex) != 2:
            raise TypeError(f"examples[{i}] must be a (token_texts, acts) pair; got {ex!r:.80}.")
        texts.append(ex[0])
        acts.append(torch.as_tensor(ex[1], dtype=torch.float32).flatten())
    texts = _check_texts(texts, "examples' token_texts")
    for i, (t, a) in enumerate(zip(texts, acts, strict=True)):
        if len(t) != len(a):
            raise ValueError(
                f"examples[{i}] has {len(t)} tokens but {len(a)} activations: pass one "
                f"activation per token."
            )
    return texts, acts


@dataclass(frozen=True)
class RuleExplainer:
    """Explains a feature by the rule (among ``rules``) whose labels correlate best with its
    activations on the top-activating ``examples``; ``.scores`` of the last call."""

    rules: tuple[str, ...] = RULES
    scores: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "rules", _check_rules(self.rules))

    def __call__(self, examples) -> RuleExplanation:
        texts, acts = _check_examples(examples)
        labels = rule_labels(texts)
        self.scores.clear()
        for rule in self.rules:
            self.scores[rule] = simulate_score(lambda _, r=rule: labels[r], texts, acts).score
        best = max(self.rules, key=lambda r: self.scores[r])  # ties: the first listed
        return RuleExplanation(best)


PROMPT_HEAD = (
    "We're studying features in a language model trained on Python source. Each feature looks "
    "for some particular thing in a short document. Look at the parts of the document the "
    "feature activates for and summarize in a single sentence what the feature is looking "
    "for. Activations are given per token as <token><TAB><activation>, scaled to 0-10.\n"
)


def format_prompt(examples, rules=RULES) -> str:
    """Bills et al.'s explainer prompt: each example's tokens with activations scaled to
    0..10 integers (max over all examples -> 10), then the question; when ``rules`` is
    non-empty the answer may be one of those rule names."""
    texts, acts = _check_examples(examples)
    top = max(float(a.max()) for a in acts if len(a)) if any(len(a) for a in acts) else 0.0
    lines = [PROMPT_HEAD]
    for k, (t, a) in enumerate(zip(texts, acts, strict=True), 1):
        lines.append(f"\nExample {k}:\n<start>")
        for tok, v in zip(t, a.tolist(), strict=True):
            lines.append(f"{tok!r}\t{round(10 * max(v, 0.0) / top) if top > 0 else 0}")
        lines.append("<end>")
    if rules:
        lines.append("\nIf one of these names fits, answer with it alone: " + ", ".join(rules))
    lines.append("\nExplanation of the feature's behavior: the main thing this feature does is")
    return "\n".join(lines)


@dataclass(frozen=True)
class _TextExplanation:
    text: str
    simulator: Callable

    def simulate(self, token_texts) -> list[torch.Tensor]:
        return list(self.simulator(self.text, _check_texts(token_texts)))


@dataclass(frozen=True)
class LLMExplainer:
    """An explainer backed by your language model: ``complete(prompt) -> str`` (any client;
    nothing here touches the network). The answer becomes the explanation's ``.text``. If it
    names one of ``rules`` it simulates as that rule; otherwise ``simulator(text,
    token_texts) -> [acts per text]`` (e.g. a second LLM call, as Bills et al. do) simulates
    it. With neither, the call raises."""

    complete: Callable[[str], str]
    rules: tuple[str, ...] = RULES
    simulator: Callable | None = None

    def __post_init__(self):
        if not callable(self.complete):
            raise TypeError(
                f"complete must be a callable prompt -> str (your LLM client); got "
                f"{type(self.complete).__name__}."
            )
        if self.simulator is not None and not callable(self.simulator):
            raise TypeError(
                f"simulator must be callable (text, token_texts) -> activations; got "
                f"{type(self.simulator).__name__}."
            )
        object.__setattr__(self, "rules", tuple(self.rules) and _check_rules(self.rules))

    def __call__(self, examples):
        answer = self.complete(format_prompt(examples, self.rules))
        if not isinstance(answer, str):
            raise TypeError(f"complete returned {type(answer).__name__}; it must return a str.")
        text = answer.strip()
        named = [r for r in self.rules if r == text.strip(" .`'\"").lower()]
        if not named:
            named = [r for r in self.rules if r in text]
        if len(named) == 1:
            return RuleExplanation(named[0], text)
        if self.simulator is None:
            raise ValueError(
                f"the completion {text!r:.80} names no single rule of {self.rules}; pass "
                f"simulator=(text, token_texts) -> activations to simulate free-text explanations."
            )
        return _TextExplanation(text, self.simulator)
