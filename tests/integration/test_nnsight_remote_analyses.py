"""Analyses beyond run_with_cache and activation_patch on a remote nnsight model (issue 17).

Each runs through the stand-in NDIF server (``ndif_server``: nnsight's own request
serialization, the body run on the server's copies) with ``remote=True``, and through
nnsight's dry run ``remote="local"``, and must give the numbers of the local torch-hook
wrapper ``mechscope.wrap(hf, tok)`` to 1e-5. Traces are counted and bytes measured at
nnsight's boundary (``LanguageModel.trace``, ``RemoteBackend.request``).
"""

import nnsight
import pytest
import torch
import transformers
from hf_tiny import build_hf, hook_count
from test_nnsight_provider import (  # noqa: F401  (fixtures)
    CLEAN,
    CORRUPTED,
    METRIC,
    TOK,
    TOL,
    _diff,
    _lm,
    counted,
    ndif,
    ndif_server,
)

import mechscope
from mechscope._patching_sites import bytes_per_sequence
from mechscope.feature_circuits import feature_attribution
from mechscope.metrics import logit_diff
from mechscope.models import nnsight as nnsight_backend
from mechscope.patching_attr import attribution_patch_sites


@pytest.fixture(params=[True, "local"])
def remote(request, ndif_server, monkeypatch):  # noqa: F811
    """``(remote model, local torch-hook model, hf)`` of a tiny Llama (GQA)."""
    hf = build_hf("llama")
    if request.param == "local":
        monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", None)  # the dry run needs no key
        model = mechscope.load(_lm(hf), backend="nnsight", remote="local")
    else:
        model = mechscope.load(ndif_server(hf), backend="nnsight", remote=True)
    return model, mechscope.wrap(hf, TOK), hf


def _untouched(model, hf, grads_before=None):
    assert hook_count(hf) == 0 and not any(p._forward_hooks for p in model._hook_points.values())
    if grads_before is not None:
        assert all(p.grad is g for p, g in zip(hf.parameters(), grads_before, strict=True))


def test_attribution_patching_takes_its_gradient_in_the_trace(remote, counted):  # noqa: F811
    """The backward pass runs where the forward ran: 2 traces (source cache, target + grad)."""
    model, local, hf = remote
    grads = [p.grad for p in hf.parameters()]
    sites = ["resid_pre", "attn_out", "z", "pattern", "mlp_out"]
    got = attribution_patch_sites(model, CLEAN, CORRUPTED, METRIC, sites)
    assert len(counted) == 2 and {k["remote"] for k in counted} == {model.remote}
    want = attribution_patch_sites(local, CLEAN, CORRUPTED, METRIC, sites)
    for site in sites:
        assert _diff(got[site].values, want[site].values) <= TOL, site
    assert got["z"].values.abs().max() > 0.1  # something to compare
    _untouched(model, hf, grads)
    with pytest.raises(ValueError, match="not differentiable"):
        mechscope.attribution_patch(model, CLEAN, CORRUPTED, lambda lg: lg[:, -1, 0].detach())


@pytest.mark.filterwarnings("ignore:integrated_gradients. completeness")  # random weights
def test_integrated_gradients_and_saliency(remote):
    model, local, hf = remote
    metric = logit_diff(torch.tensor([7, 11]), torch.tensor([13, 14]))
    cases = [{"baseline": "pad", "hook": "blocks.1.hook_resid_pre", "steps": 4}]
    if model.remote is True:  # the dry run is slower per trace: one case there
        cases.append({"steps": 8})
    for kw in cases:
        got = mechscope.integrated_gradients(model, CLEAN, metric, **kw)
        want = mechscope.integrated_gradients(local, CLEAN, metric, **kw)
        assert _diff(got.attributions, want.attributions) <= TOL
    got, want = mechscope.saliency(model, CLEAN, metric), mechscope.saliency(local, CLEAN, metric)
    assert _diff(got.attributions, want.attributions) <= TOL
    _untouched(model, hf)


def test_path_patching_and_direct_logit_attribution(remote, counted):  # noqa: F811
    model, local, hf = remote
    receivers = ["blocks.1.attn.hook_v", "ln_final.hook_normalized"]
    got = mechscope.path_patch_all(model, CLEAN, CORRUPTED, METRIC, hooks=receivers)
    # clean + corrupted caches, then 2 traces (record, put) for all 4 senders in one batch
    assert len(counted) == 4, len(counted)
    want = mechscope.path_patch_all(local, CLEAN, CORRUPTED, METRIC, hooks=receivers)
    assert _diff(got.values, want.values) <= TOL and got.values.std() > 0
    _untouched(model, hf)


def test_lens_and_dla_read_weights_on_the_server(remote, counted, ndif_server):  # noqa: F811
    """The client holds no weights (meta): the logit lens reads out in its one trace, DLA
    fetches the answer rows (and W_O projected on them) in one more, a few KB."""
    model, local, hf = remote
    assert model.weightless is (model.remote is True)
    ndif_server.traffic.clear()
    got = mechscope.logit_lens(model, CLEAN)
    assert len(counted) == 1  # the residual streams never come back, only the lens logits
    want = mechscope.logit_lens(local, CLEAN)
    assert got.labels == want.labels and _diff(got.logits, want.logits) <= TOL
    lens_bytes = [r for _, r in ndif_server.traffic]
    _, cache = model.run_with_cache(CLEAN)
    _, ref_cache = local.run_with_cache(CLEAN)
    dla_bytes = []
    for by, pos, answer, wrong in [("head", -1, [7, 11], [13, 14]), ("component", None, 7, None)]:
        counted.clear()
        ndif_server.traffic.clear()
        got = mechscope.direct_logit_attribution(cache, answer, wrong, by=by, pos=pos)
        assert len(counted) == int(model.weightless), (by, len(counted))
        dla_bytes += [r for _, r in ndif_server.traffic]
        want = mechscope.direct_logit_attribution(ref_cache, answer, wrong, by=by, pos=pos)
        assert got.labels == want.labels and _diff(got.values, want.values) <= TOL, by
        assert _diff(got.offset, want.offset) <= TOL and got.values.abs().max() > 0.1
    if model.weightless:
        lens = (model.cfg.n_layers + 1) * CLEAN.numel() * model.cfg.d_vocab * 4
        print(f"logit lens: 1 trace, {lens_bytes} bytes back (fp32 lens logits {lens:,})")
        print(f"DLA by head / by component: 1 trace each, {dla_bytes} bytes back")
        assert lens_bytes[0] < lens + 20_000 and max(dla_bytes) < 20_000
        with pytest.raises(ValueError, match="weightless.*model.fetch"):
            model.unembed_weights()
    _untouched(model, hf)


def test_weight_analyses_name_the_fix_or_fetch_a_layer(remote, counted):  # noqa: F811
    from mechscope import circuits

    model, local, _ = remote
    want = circuits.qk_circuit(local, 1)
    if model.weightless:
        for fn in (circuits.qk_circuit, circuits.full_ov_circuit, circuits.copying_scores):
            with pytest.raises(ValueError, match=f"{fn.__name__}.*weightless.*model.fetch"):
                fn(model, 1)
        with pytest.raises(ValueError, match="composition_scores.*weightless"):
            circuits.composition_scores(model, "K", 0, 1)
        assert counted == []  # raised before any request
    got = model.fetch(circuits.qk_circuit, 1)  # one layer's QK circuit, computed on the server
    assert len(counted) == 1 and _diff(got.full(), want.full()) <= TOL


def test_sweeps_pack_by_the_request_budget(ndif_server, counted, monkeypatch):  # noqa: F811
    """Steering and path-patching sweeps read request_memory_mb (not the CPU's 512 MB): with
    the budget set to 3 copies of the prompts, 9 strengths take 3 traces (512 MB: 1)."""
    hf = build_hf("llama")
    model = mechscope.load(ndif_server(hf), backend="nnsight", remote=True)
    local = mechscope.wrap(hf, TOK)
    batch, n_pos = CLEAN.shape
    mb = 3.5 * bytes_per_sequence(model, n_pos) * batch / 2**20  # room for 3 copies
    monkeypatch.setattr(nnsight_backend, "REMOTE_MEMORY_MB", mb)
    v = torch.linspace(-1, 1, model.cfg.d_model)
    strengths = [0.0, 0.5, 1, 2, 3, 4, 5, 6, 8]
    got = mechscope.steering_sweep(model, CLEAN, v, "blocks.1.hook_resid_pre", strengths=strengths)
    assert len(counted) == 1 + 3, len(counted)  # the unsteered run, then 3 x 3 strengths
    want = mechscope.steering_sweep(local, CLEAN, v, "blocks.1.hook_resid_pre", strengths=strengths)
    assert _diff(got.probs, want.probs) <= TOL and _diff(got.kl, want.kl) <= TOL
    counted.clear()
    mechscope.path_patch_all(model, CLEAN, CORRUPTED, METRIC, hooks=["ln_final.hook_normalized"])
    senders = model.cfg.n_layers * model.cfg.n_heads
    assert len(counted) == 2 + 2 * -(-senders // 3), len(counted)  # 2 caches, 2 per batch


def _wide_llama(vocab: int):
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
        tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    hf = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in hf.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return hf.eval()


def test_sweep_answers_hold_metric_values_not_logits(ndif_server, counted, monkeypatch):  # noqa: F811
    """A patching sweep's copies come back as one metric value each (computed in the trace),
    not as their logits at every position: bytes measured at the stand-in's response."""
    hf = _wide_llama(vocab=2048)
    monkeypatch.setattr(nnsight.CONFIG.API, "COMPRESS", False)  # raw bytes (NDIF: zstd)
    model = mechscope.load(ndif_server(hf), backend="nnsight", remote=True)
    want = mechscope.activation_patch(mechscope.wrap(hf, TOK), CLEAN, CORRUPTED, METRIC, "z")
    got = mechscope.activation_patch(model, CLEAN, CORRUPTED, METRIC, "z")
    assert _diff(got.values, want.values) <= TOL and len(counted) == 3
    rows = counted[-1]["input_ids"].shape[0]  # copies x prompts in the one patched pass
    after = [r for _, r in ndif_server.traffic]
    ndif_server.traffic.clear()
    # The same sweep with the copies' logits brought back (before: no copy_metric).
    monkeypatch.delattr(nnsight_backend.NNsightModel, "copy_metric")
    again = mechscope.activation_patch(model, CLEAN, CORRUPTED, METRIC, "z")
    before = [r for _, r in ndif_server.traffic]
    assert _diff(again.values, want.values) <= TOL
    logits = rows * CLEAN.shape[1] * 2048 * 4
    print(
        f"z sweep, {rows // 2} copies of 2 x 7 tokens, vocab 2048: the copies' answer "
        f"{before[-1]:,} -> {after[-1]:,} bytes (their fp32 logits: {logits:,}); clean and "
        f"corrupted runs {after[0]:,} + {after[1]:,}"
    )
    assert before[-1] >= logits and after[-1] < 5_000  # one float per copy, pickle overhead
    assert after[:2] == before[:2]  # the two cached runs are unchanged


def _sae(model, hook: str):
    from mechscope.sae import SAE, SAEConfig

    sae = SAE(SAEConfig(d_in=model.cfg.d_model, d_sae=24, site=hook, seed=0))
    with torch.no_grad():  # a random dictionary with features that fire on these prompts
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.3)
    return sae


def test_feature_circuits_refuse_a_remote_model_before_any_request(remote, counted):  # noqa: F811
    """The spliced SAE's points fire on the server's copies: refuse, naming why and the fix."""
    from mechscope.feature_circuits import FeatureCircuitResult, faithfulness

    model, local, hf = remote
    sae = _sae(model, "blocks.1.hook_resid_pre")
    with pytest.raises(NotImplementedError, match="remote nnsight model.*remote=False"):
        feature_attribution(model, sae, CLEAN, CORRUPTED, METRIC)
    saes = {"blocks.1.hook_resid_pre": sae}
    circuit = FeatureCircuitResult(torch.zeros(0), [], [], [], 0, saes)
    with pytest.raises(NotImplementedError, match="remote nnsight model"):
        faithfulness(model, circuit, CLEAN, METRIC)
    assert counted == []
    if model.remote is True:  # the control: the same call runs locally (once)
        got = feature_attribution(local, sae, CLEAN, CORRUPTED, METRIC)
        assert got.values.abs().max() > 0.01
    _untouched(model, hf)
