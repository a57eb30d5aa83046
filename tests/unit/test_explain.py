"""mechscope.explain: the simulation score, the rule explainer and the LLM explainer stub."""

from __future__ import annotations

import pytest
import torch

from mechscope.explain import (
    LLMExplainer,
    RuleExplainer,
    RuleExplanation,
    format_prompt,
    rule_labels,
    simulate_score,
)

SOURCE = [
    "def f(x):\n    # add one\n    return (x + 1) * 2\n",
    'def g(a, b):\n    """Doc string."""\n    s = "text"  # note\n    return [a, (b)]\n',
    "class C:\n    def m(self):\n        if self:\n            return {'k': (1, 2)}\n",
]
TEXTS = [[*s] for s in SOURCE * 4]  # one character per token: the rules still apply


def test_perfect_shuffled_and_scaled_scores():
    real = rule_labels(TEXTS)["in_string"]
    assert simulate_score(RuleExplanation("in_string"), TEXTS, real).score == pytest.approx(1.0)
    scaled = [3 * a + 1 for a in real]
    assert simulate_score(RuleExplanation("in_string"), TEXTS, scaled).score == pytest.approx(1.0)
    gen = torch.Generator().manual_seed(0)
    noise = [torch.rand(len(t), generator=gen) for t in TEXTS]
    shuffled = simulate_score(lambda texts: [torch.rand(len(t), generator=gen) for t in texts],
                              TEXTS, noise)  # fmt: skip
    assert abs(shuffled.score) < 0.1 and not shuffled.constant


def test_constant_scores_zero_and_says_so():
    real = rule_labels(TEXTS)["bracket_depth"]
    flat = simulate_score(lambda texts: [torch.zeros(len(t)) for t in texts], TEXTS, real)
    assert flat.score == 0.0 and flat.constant and flat.n_tokens == sum(map(len, TEXTS))
    dead = simulate_score(RuleExplanation("in_string"), TEXTS, [torch.zeros(len(t)) for t in TEXTS])
    assert dead.score == 0.0 and dead.constant and float(dead) == 0.0


@pytest.mark.parametrize("rule", ["in_comment", "bracket_depth", "after_def"])
def test_rule_explainer_recovers_a_planted_rule(rule):
    gen = torch.Generator().manual_seed(1)
    lab = rule_labels(TEXTS)[rule]
    acts = [2 * a + 0.3 * torch.rand(len(a), generator=gen) for a in lab]
    explainer = RuleExplainer()
    explanation = explainer(list(zip(TEXTS[:6], acts[:6], strict=True)))
    assert explanation.rule == rule and rule in explanation.text
    assert explainer.scores[rule] == max(explainer.scores.values())
    assert simulate_score(explanation, TEXTS[6:], acts[6:]).score > 0.9


def test_llm_explainer_with_a_fake_completion():
    lab = rule_labels(TEXTS)["in_comment"]
    prompts = []

    def complete(prompt):
        prompts.append(prompt)
        return "in_comment."

    explanation = LLMExplainer(complete)(list(zip(TEXTS[:2], lab[:2], strict=True)))
    assert explanation.rule == "in_comment" and explanation.text == "in_comment."
    assert prompts == [format_prompt(list(zip(TEXTS[:2], lab[:2], strict=True)))]
    assert "'#'\t10" in prompts[0] and "'d'\t0" in prompts[0] and "in_comment" in prompts[0]
    assert simulate_score(explanation, TEXTS, lab).score == pytest.approx(1.0)
    free = LLMExplainer(lambda p: "fires on digits",
                        simulator=lambda text, texts: [torch.tensor([c.isdigit() for c in t]).float()
                                                       for t in texts])  # fmt: skip
    e = free([(TEXTS[0], lab[0])])
    assert e.text == "fires on digits" and simulate_score(e, TEXTS, lab).score < 0.2
    with pytest.raises(ValueError, match="simulator="):
        LLMExplainer(lambda p: "something else")([(TEXTS[0], lab[0])])


def test_bad_inputs_name_the_argument():
    real = rule_labels(TEXTS)["in_string"]
    with pytest.raises(TypeError, match="token_texts"):
        simulate_score(RuleExplanation("in_string"), "def f(): pass", real)
    with pytest.raises(ValueError, match="acts"):
        simulate_score(RuleExplanation("in_string"), TEXTS, real[:-1])
    with pytest.raises(ValueError, match=r"acts\[0\]"):
        simulate_score(RuleExplanation("in_string"), TEXTS, [a[:-1] for a in real])
    with pytest.raises(TypeError, match="explanation"):
        simulate_score(42, TEXTS, real)
    with pytest.raises(ValueError, match="rules"):
        RuleExplainer(rules=("in_string", "is_keyword"))
    with pytest.raises(ValueError, match="examples"):
        RuleExplainer()([])
    with pytest.raises(ValueError, match=r"examples\[0\]"):
        RuleExplainer()([(TEXTS[0], real[0][:-1])])
    with pytest.raises(TypeError, match="complete"):
        LLMExplainer("gpt-4")
    with pytest.raises(TypeError, match="complete returned"):
        LLMExplainer(lambda p: None)([(TEXTS[0], real[0])])
