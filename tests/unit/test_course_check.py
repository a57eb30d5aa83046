"""mechscope.course.check / use: a right answer passes, a stub says "not implemented yet",
each wrong-but-plausible answer gets the failing case and the likely mistake in words."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mechscope.course import CheckResult, check, use


def masked_scores(q, k, *, offset=0):
    n = q.shape[-2]
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    future = torch.ones(n, n, dtype=torch.bool).triu(1 + offset)
    return scores.masked_fill(future, float("-inf"))


def reference(q, k):
    return masked_scores(q, k).softmax(-1)


def student_right(q, k):
    scores = torch.einsum("bqd,bkd->bqk", q, k) / q.shape[-1] ** 0.5
    n = q.shape[1]
    scores = scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), -1e9)
    return torch.softmax(scores, dim=-1)


def stub(q, k):
    # YOUR CODE HERE
    raise NotImplementedError()


WRONG = {
    "transposed": lambda q, k: reference(q, k).transpose(-1, -2),
    "wrong softmax dim": lambda q, k: masked_scores(q, k).softmax(-2),
    "off by one": lambda q, k: masked_scores(q, k, offset=1).softmax(-1),
    "no causal mask": lambda q, k: (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).softmax(-1),
}
MISTAKES = [
    ("the pattern is transposed (keys on the rows)", WRONG["transposed"]),
    ("softmax over queries (dim -2) instead of keys", WRONG["wrong softmax dim"]),
    ("off by one: each query also sees the next key", WRONG["off by one"]),
    ("forgot the causal mask", WRONG["no causal mask"]),
]


def cases():
    g = torch.Generator().manual_seed(0)
    return {
        "batch 1, 4 positions": (
            torch.randn(1, 4, 8, generator=g),
            torch.randn(1, 4, 8, generator=g),
        ),
        "batch 2, 6 positions": (
            torch.randn(2, 6, 4, generator=g),
            torch.randn(2, 6, 4, generator=g),
        ),
    }


def run(fn, capsys, **kw):
    result = check(fn, reference, cases(), name="attention_pattern", mistakes=MISTAKES, **kw)
    printed = capsys.readouterr().out.strip()
    assert isinstance(result, CheckResult)
    assert printed == result.message
    assert result.name == "attention_pattern"
    return result


def test_right_answer_passes(capsys):
    result = run(student_right, capsys)
    assert result.passed
    assert result.message == "✓ attention_pattern: all 2 cases pass"


def test_stub_reports_not_implemented_and_does_not_raise(capsys):
    result = run(stub, capsys)
    assert not result.passed
    assert result.message == (
        "attention_pattern: not implemented yet — write your code in the cell above"
    )


@pytest.mark.parametrize("kind", list(WRONG))
def test_wrong_but_plausible_answers_name_the_case_and_the_mistake(kind, capsys):
    result = run(WRONG[kind], capsys)
    assert not result.passed
    assert "case 'batch 1, 4 positions' fails" in result.message
    assert "max abs error" in result.message and "first at index (0," in result.message
    label = dict(zip(WRONG, (m[0] for m in MISTAKES), strict=True))[kind]
    assert f"This looks like: {label}." in result.message
    assert "\n" not in result.message and "Traceback" not in result.message


def test_unknown_mistake_gets_values_but_no_guess(capsys):
    result = run(lambda q, k: reference(q, k) * 0.5, capsys)
    assert not result.passed and "This looks like" not in result.message
    assert "expected" in result.message and "got" in result.message


def test_student_exception_is_one_line_with_type_message_and_line(capsys):
    def broken(q, k):
        scores = q @ k  # wrong: k is not transposed
        return scores.softmax(-1)

    result = run(broken, capsys)
    assert not result.passed
    assert "\n" not in result.message and "Traceback" not in result.message
    assert "case 'batch 1, 4 positions': your code raised RuntimeError:" in result.message
    assert "`scores = q @ k  # wrong: k is not transposed`" in result.message


def test_shape_mismatch_names_both_shapes(capsys):
    result = run(lambda q, k: reference(q, k)[:, -1], capsys)
    assert not result.passed
    assert "expected shape [1, 4, 4], got shape [1, 4]" in result.message


def test_dtype_and_type_mismatches_are_named(capsys):
    result = run(lambda q, k: reference(q, k).argmax(-1), capsys)
    assert "expected shape [1, 4, 4], got shape [1, 4]" in result.message
    result = run(lambda q, k: reference(q, k) > 0.5, capsys)
    assert "expected dtype float32, got dtype bool" in result.message
    result = run(lambda q, k: None, capsys)
    assert "got None" in result.message and "forget `return`" in result.message
    result = run(lambda q, k: reference(q, k).tolist(), capsys)
    assert "expected a tensor of shape [1, 4, 4] (float32), got a list" in result.message


def test_a_missing_function_is_reported_not_raised(capsys):
    result = check(None, reference, cases(), name="attention_pattern")
    assert not result.passed and "expected a function" in result.message


def test_case_forms_and_outputs_of_other_types(capsys):
    def ref(x, *, scale=1.0):
        return {"total": float(x.sum()) * scale, "parts": (x * scale, int(x.numel()))}

    x = torch.arange(6.0).reshape(2, 3)
    cases_ = [("one argument", x), ("positional", (x,)), ("keywords", {"x": x, "scale": 2.0})]
    assert check(ref, ref, cases_, name="ref").passed

    def off(x, *, scale=1.0):
        out = ref(x, scale=scale)
        out["parts"] = (out["parts"][0], out["parts"][1] + 1)
        return out

    result = check(off, ref, cases_, name="ref")
    assert "output['parts'][1]: expected 6, got 7" in result.message
    assert check(lambda x, scale=1.0: 3.0, ref, cases_, name="ref").message.startswith(
        "✗ ref: case 'one argument' fails: expected a dict"
    )
    with pytest.raises(TypeError, match="label, args"):
        check(ref, ref, [x], name="ref")


def test_inputs_written_in_place_do_not_leak_between_calls(capsys):
    def in_place(x):
        return x.mul_(2)

    x = torch.ones(3)
    result = check(in_place, lambda x: x * 2, {"ones": (x,)}, name="double")
    assert result.passed and torch.equal(x, torch.ones(3))


def test_no_model_is_left_modified(capsys):
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 3)
    rng = torch.random.get_rng_state()

    def reference_fn(model, x):
        return model(x)

    def vandal(model, x):
        model[0].register_forward_hook(lambda m, i, o: o * 0)
        model[2].register_forward_pre_hook(lambda m, i: None)
        model.train()
        with torch.no_grad():
            model[0].weight.add_(1.0)
        model[2].weight.requires_grad_(False)
        model(x).sum().backward()
        torch.randn(10)
        raise ValueError("oops")

    result = check(vandal, reference_fn, {"model": (model, x)}, name="run")
    assert "your code raised ValueError: oops" in result.message
    assert "(line " in result.message and "raise ValueError" in result.message
    assert not model.training and not model[0].training
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_both_functions_see_the_same_random_numbers(capsys):
    def noisy(x):
        return x + torch.randn(x.shape)

    assert check(noisy, noisy, {"x": (torch.zeros(5),)}, name="noisy").passed


def test_use_picks_the_students_function_only_when_it_passes(capsys):
    passed = CheckResult(passed=True, message="", name="induction_score")
    failed = CheckResult(passed=False, message="", name="induction_score")
    assert use(student_right, reference, passed) is student_right
    assert capsys.readouterr().out == "using your induction_score\n"
    assert use(stub, reference, failed) is reference
    assert capsys.readouterr().out == (
        "using mechscope's reference induction_score: your version does not pass yet\n"
    )
    with pytest.raises(TypeError, match="CheckResult"):
        use(stub, reference, True)


def test_result_is_frozen_and_short():
    result = CheckResult(passed=True, message="✓ x: all 1 case pass", name="x")
    with pytest.raises(AttributeError):
        result.passed = False
    assert repr(result) == "CheckResult(name='x', passed=True)"


def test_a_hooked_model_case_and_a_leaked_hook_is_removed(capsys):
    from mechscope import Transformer, TransformerConfig

    cfg = TransformerConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_vocab=11, n_ctx=8)
    model = Transformer(cfg).eval()
    tokens = torch.randint(0, 11, (2, 5), generator=torch.Generator().manual_seed(0))
    clean = model(tokens)

    def zero_head(z, hook):
        z = z.clone()
        z[:, :, 0] = 0
        return z

    def reference_fn(model, tokens):
        with model.hooks([("blocks.0.attn.hook_z", zero_head)]):
            return model(tokens)

    def leaky(model, tokens):  # right numbers, but the hook stays installed
        point = model.get_submodule("blocks.0.attn.hook_z")
        point.register_forward_hook(lambda module, inputs, z: zero_head(z, module))
        return model(tokens)

    def wrong_head(model, tokens):
        def zero_other(z, hook):
            z = z.clone()
            z[:, :, 1] = 0
            return z

        with model.hooks([("blocks.0.attn.hook_z", zero_other)]):
            return model(tokens)

    cases_ = {"2 prompts of 5 tokens": (model, tokens)}
    assert check(leaky, reference_fn, cases_, name="ablated_logits").passed
    assert torch.equal(model(tokens), clean)
    result = check(
        wrong_head,
        reference_fn,
        cases_,
        name="ablated_logits",
        mistakes=[("ablated head 1 instead of head 0", wrong_head)],
    )
    assert "This looks like: ablated head 1 instead of head 0." in result.message
    assert torch.equal(model(tokens), clean)


def test_bool_outputs_are_compared_not_crashed():
    def ref(x):
        return x > 0

    def wrong(x):
        return x >= 0

    result = check(
        wrong, ref, {"zeros and signs": (torch.tensor([-1.0, 0.0, 2.0]),)}, name="positive"
    )
    assert (
        not result.passed
        and "index (1,)" in result.message
        and "expected False, got True" in result.message
    )
