"""Bad inputs to patching, path patching, attribution patching, ACDC, scrubbing and the metrics.

One parametrised id per bad input: the error type, the argument named in the message, and
(via the ``bad`` fixture) the model left exactly as it came.
"""

from __future__ import annotations

import pytest
import torch

from mechscope.acdc import acdc
from mechscope.metrics import logit_diff, normalized
from mechscope.patching import activation_patch
from mechscope.patching_attr import attribution_patch, attribution_patch_sites
from mechscope.path_patching import path_patch, path_patch_all
from mechscope.scrubbing import Claim, Hypothesis, scrub

A = torch.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]])  # valid ids for every model here
B = torch.tensor([[1, 2, 9, 4, 5, 6], [6, 5, 9, 3, 2, 1]])
METRIC = logit_diff([3, 4], [5, 6])


def wrong_shape(logits):
    return logits[:, -1, 3].mean()  # reduced over the batch


def a_float(logits):
    return 1.0


def never(name):
    return False


def zeros(*shape):
    return torch.zeros(*shape, dtype=torch.long)


# (id, model fixture, exception, strings the message must contain, args after model, kwargs)
ACTIVATION = [
    ("unknown_site", "induction_model", KeyError, ["resid_pree"], (A, B, METRIC, "resid_pree"), {}),
    ("site_model_lacks", "induction_model", KeyError, ["mlp_out"], (A, B, METRIC, "mlp_out"), {}),
    ("unequal_lengths", "induction_model", ValueError, ["clean", "corrupted"], (A, B[:, :5], METRIC), {}),
    ("unequal_batch", "facts_model", ValueError, ["clean", "corrupted"], (A, B[:1], METRIC), {}),
    ("bad_direction", "induction_model", ValueError, ["direction", "denoise"], (A, B, METRIC), {"direction": "denoise"}),
    ("metric_reduces_batch", "induction_model", ValueError, ["metric", "[batch]"], (A, B, wrong_shape), {}),
    ("metric_returns_float", "facts_model", ValueError, ["metric", "float"], (A, B, a_float), {}),
    ("empty_text", "facts_model", ValueError, ["clean", "empty"], ("", "", METRIC), {}),
    ("empty_ids", "induction_model", ValueError, ["clean", "empty"], (zeros(1, 0), zeros(1, 0), METRIC), {}),
    ("float_ids", "induction_model", TypeError, ["corrupted", "float"], (A, B.float(), METRIC), {}),
    ("ids_outside_vocab", "induction_model", ValueError, ["clean", "vocabulary"], (A + 1000, B, METRIC), {}),
    ("batch_size_too_small", "induction_model", ValueError, ["batch_size=1", "2 prompts"], (A, B, METRIC), {"batch_size": 1}),
    ("batch_size_bool", "facts_model", ValueError, ["batch_size=True"], (A, B, METRIC), {"batch_size": True}),
    ("memory_mb_zero", "facts_model", ValueError, ["memory_mb"], (A, B, METRIC), {"memory_mb": 0}),
    ("extra_positional", "induction_model", TypeError, ["positional"], (A, B, METRIC, "z", "noising"), {}),
    ("hf_unknown_site", "hf_gpt2", KeyError, ["attn_outt"], (A, B, METRIC, "attn_outt"), {}),
    ("hf_bad_direction", "hf_gpt2", ValueError, ["direction"], (A, B, METRIC), {"direction": "both"}),
    ("hf_unequal_lengths", "hf_gpt2", ValueError, ["clean", "corrupted"], (A, B[:, :4], METRIC), {}),
    ("hf_metric_reduces_batch", "hf_gpt2", ValueError, ["metric"], (A, B, wrong_shape, "z"), {}),
    ("hf_batch_size_too_small", "hf_gpt2", ValueError, ["batch_size"], (A, B, METRIC), {"batch_size": 1}),
]  # fmt: skip


@pytest.mark.parametrize(
    "model_name, exc, names, args, kwargs",
    [c[1:] for c in ACTIVATION],
    ids=[c[0] for c in ACTIVATION],
)
def test_activation_patch(bad, request, model_name, exc, names, args, kwargs):
    model = request.getfixturevalue(model_name)
    bad(model, activation_patch, exc, names, model, *args, **kwargs)


K1 = "blocks.1.attn.hook_k"
PATH = [
    ("sender_out_of_range", "induction_model", ValueError, ["sender", "out of range"], {"sender": (5, 0), "hooks": [K1]}),
    ("sender_not_a_pair", "induction_model", TypeError, ["sender", "L0H1"], {"sender": "L0H1", "hooks": [K1]}),
    ("sender_bools", "facts_model", TypeError, ["sender", "bools"], {"sender": (True, 0), "hooks": [K1]}),
    ("sender_missing", "induction_model", TypeError, ["sender"], {"hooks": [K1]}),
    ("hooks_unknown", "induction_model", KeyError, ["hooks", "blocks.1.attn.hook_kk"], {"sender": (0, 0), "hooks": ["blocks.1.attn.hook_kk"]}),
    ("hooks_empty", "facts_model", ValueError, ["hooks is empty"], {"sender": (0, 0), "hooks": []}),
    ("hooks_before_sender", "induction_model", ValueError, ["hooks", "come before"], {"sender": (1, 0), "hooks": ["blocks.0.attn.hook_k"]}),
    ("hooks_head_on_headless", "facts_model", ValueError, ["hooks", "no head"], {"sender": (0, 0), "hooks": [("blocks.1.hook_resid_pre", 0)]}),
    ("hooks_head_out_of_range", "induction_model", ValueError, ["hooks", "out of range"], {"sender": (0, 0), "hooks": [(K1, 99)]}),
    ("hooks_head_bool", "induction_model", TypeError, ["hooks", "int"], {"sender": (0, 0), "hooks": [(K1, True)]}),
    ("hooks_bad_entry", "facts_model", TypeError, ["hooks", "(hook name, head)"], {"sender": (0, 0), "hooks": [3]}),
    ("hooks_predicate_matches_nothing", "induction_model", ValueError, ["hooks"], {"sender": (0, 0), "hooks": never}),
    ("bad_direction", "induction_model", ValueError, ["direction", "sideways"], {"sender": (0, 0), "hooks": [K1], "direction": "sideways"}),
    ("hf_hooks_unknown", "hf_gpt2", KeyError, ["hooks", "ln_final.hook_norm"], {"sender": (0, 0), "hooks": ["ln_final.hook_norm"]}),
    ("hf_sender_out_of_range", "hf_gpt2", ValueError, ["sender"], {"sender": (0, 9), "hooks": [K1]}),
]  # fmt: skip


@pytest.mark.parametrize(
    "model_name, exc, names, kwargs", [c[1:] for c in PATH], ids=[c[0] for c in PATH]
)
def test_path_patch(bad, request, model_name, exc, names, kwargs):
    model = request.getfixturevalue(model_name)
    bad(model, path_patch, exc, names, model, A, B, METRIC, **kwargs)


PATH_ALL = [
    ("batch_size_too_small", ValueError, ["batch_size"], {"hooks": [K1], "batch_size": 1}),
    ("bad_direction", ValueError, ["direction"], {"hooks": [K1], "direction": "noise"}),
    ("old_positional_receivers", TypeError, ["positional"], {}),
]


@pytest.mark.parametrize(
    "exc, names, kwargs", [c[1:] for c in PATH_ALL], ids=[c[0] for c in PATH_ALL]
)
def test_path_patch_all(bad, induction_model, exc, names, kwargs):
    args = (A, B, METRIC) if kwargs else (A, B, METRIC, [K1])
    bad(induction_model, path_patch_all, exc, names, induction_model, *args, **kwargs)


ATTRIBUTION = [
    ("unknown_site", "induction_model", attribution_patch, KeyError, ["patching site", "zz"], (A, B, METRIC, "zz"), {}),
    ("site_model_lacks", "induction_model", attribution_patch, KeyError, ["mlp_out"], (A, B, METRIC, "mlp_out"), {}),
    ("bad_direction", "facts_model", attribution_patch, ValueError, ["direction"], (A, B, METRIC), {"direction": "up"}),
    ("unequal_lengths", "facts_model", attribution_patch, ValueError, ["clean", "corrupted"], (A, B[:, :3], METRIC), {}),
    ("metric_reduces_batch", "facts_model", attribution_patch, ValueError, ["metric"], (A, B, wrong_shape), {}),
    ("no_sites", "facts_model", attribution_patch_sites, ValueError, ["sites"], (A, B, METRIC, []), {}),
    ("hf_bad_direction", "hf_gpt2", attribution_patch, ValueError, ["direction"], (A, B, METRIC), {"direction": "x"}),
    ("hf_float_ids", "hf_gpt2", attribution_patch, TypeError, ["clean"], (A.float(), B, METRIC), {}),
]  # fmt: skip


@pytest.mark.parametrize(
    "model_name, fn, exc, names, args, kwargs",
    [c[1:] for c in ATTRIBUTION],
    ids=[c[0] for c in ATTRIBUTION],
)
def test_attribution_patch(bad, request, model_name, fn, exc, names, args, kwargs):
    model = request.getfixturevalue(model_name)
    bad(model, fn, exc, names, model, *args, **kwargs)


ACDC = [
    ("unknown_metric", "induction_model", ValueError, ["metric", "l2"], (A, B, "l2"), {}),
    ("tau_string", "induction_model", TypeError, ["tau", "0.1"], (A, B), {"tau": "0.1"}),
    ("tau_positional", "induction_model", TypeError, ["positional"], (A, B, "kl", 0.1), {}),
    ("unequal_lengths", "facts_model", ValueError, ["clean", "corrupted"], (A, B[:, :2]), {}),
    ("hf_metric_reduces_batch", "hf_gpt2", ValueError, ["metric"], (A, B, wrong_shape), {}),
]  # fmt: skip


@pytest.mark.parametrize(
    "model_name, exc, names, args, kwargs", [c[1:] for c in ACDC], ids=[c[0] for c in ACDC]
)
def test_acdc(bad, request, model_name, exc, names, args, kwargs):
    model = request.getfixturevalue(model_name)
    bad(model, acdc, exc, names, model, *args, **kwargs)


MASK = torch.ones(2, 5, dtype=torch.bool)
SCRUB = [
    ("hf_lacks_readable_blocks", "hf_gpt2", TypeError, ["ReadableBlocks", "forward_from"], (Hypothesis({}), A, MASK)),
    ("loss_mask_shape", "induction_model", ValueError, ["loss_mask", "[2, 5]"], (Hypothesis({}), A, MASK[:, :3])),
    ("loss_mask_empty", "induction_model", ValueError, ["loss_mask"], (Hypothesis({}), A, ~MASK)),
    ("loss_mask_float", "induction_model", TypeError, ["loss_mask", "float"], (Hypothesis({}), A, MASK.float())),
    ("hypothesis_a_dict", "induction_model", TypeError, ["hypothesis", "Hypothesis"], ({"logits": Claim()}, A, MASK)),
    ("empty_tokens", "induction_model", ValueError, ["tokens", "empty"], (Hypothesis({}), zeros(2, 0), MASK)),
]  # fmt: skip


@pytest.mark.parametrize(
    "model_name, exc, names, args", [c[1:] for c in SCRUB], ids=[c[0] for c in SCRUB]
)
def test_scrub(bad, request, model_name, exc, names, args):
    model = request.getfixturevalue(model_name)
    bad(model, scrub, exc, names, model, *args)


METRICS = [
    ("logit_diff_float_ids", logit_diff, ValueError, ["answer_ids", "float"], ([1.5, 2.0],)),
    ("logit_diff_2d_wrong_ids", logit_diff, ValueError, ["wrong_ids", "shape"], (3, [[1, 2]])),
    ("normalized_equal_values", normalized, ValueError, ["clean_value", "corrupted_value"], (METRIC, 1.0, 1.0)),
    ("normalized_equal_for_one_prompt", normalized, ValueError, ["clean_value"], (METRIC, [1.0, 2.0], [0.0, 2.0])),
]  # fmt: skip


@pytest.mark.parametrize(
    "fn, exc, names, args", [c[1:] for c in METRICS], ids=[c[0] for c in METRICS]
)
def test_metrics(bad, fn, exc, names, args):
    bad(None, fn, exc, names, *args)
