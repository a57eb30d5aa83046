"""The nnsight backend (issue 17): the same numbers as ``mechscope.wrap(hf_model)``, in few traces.

Every family's tiny random-init model is wrapped twice: by torch hooks (``mechscope.wrap(hf,
tok)``) and through ``nnsight.LanguageModel(hf, tokenizer=tok)``; each analysis must agree to
1e-5. Trace counts and ``remote=`` are checked at nnsight's own boundary: the test wraps or
replaces ``LanguageModel.trace`` (mechscope's code is never mocked).
"""

import io
import os
import socket
import warnings

import nnsight  # required for this tier: a missing nnsight fails, it does not skip
import pytest
import torch
import transformers
from hf_tiny import DECODERS, build_hf, hook_count, make_tokenizer
from nnsight.intervention.backends.remote import RemoteBackend
from nnsight.schema.request import RequestModel

import mechscope
from mechscope.metrics import logit_diff
from mechscope.models import _nnsight_plan
from mechscope.widgets import AttentionPatterns

TOL = 1e-5
TOK = make_tokenizer()


def _lm(hf):
    with warnings.catch_warnings():  # LanguageModel is nnsight 0.8's deprecated alias
        warnings.simplefilter("ignore", FutureWarning)
        return nnsight.LanguageModel(hf, tokenizer=TOK)


def _diff(a, b) -> float:
    return (a.float() - b.float()).abs().max().item()


# Eager attention everywhere, plus SDPA (no pattern tensor inside; Mistral's sliding window
# then arrives as a boolean mask) where the pattern must be recomputed from q and k.
@pytest.fixture(scope="module", params=[*DECODERS, "gpt2:sdpa", "mistral:sdpa"])
def pair(request):
    """(torch-hook wrapper, nnsight wrapper, hf model) of one family."""
    kind, _, impl = request.param.partition(":")
    hf = build_hf(kind, impl=impl or "eager")
    return mechscope.wrap(hf, TOK), mechscope.wrap(_lm(hf)), hf


@pytest.fixture
def counted(monkeypatch):
    """Every entry into ``LanguageModel.trace`` (nnsight's own), with its keyword arguments."""
    calls = []
    original = nnsight.LanguageModel.trace

    def trace(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(nnsight.LanguageModel, "trace", trace)
    return calls


CLEAN = torch.tensor([[1, 4, 5, 6, 7, 8, 9], [1, 10, 5, 6, 11, 8, 12]])
CORRUPTED = torch.tensor([[1, 4, 5, 6, 13, 8, 9], [1, 10, 5, 6, 14, 8, 12]])
METRIC = logit_diff(torch.tensor([7, 11]), torch.tensor([13, 14]))


def test_cache_and_logits_every_hook(pair, tokens):
    ref, nn, hf = pair
    assert type(nn).__name__ == "NNsightModel" and nn.hook_names() == ref.hook_names()
    before = hook_count(hf)
    ref_logits, ref_cache = ref.run_with_cache(tokens)
    logits, cache = nn.run_with_cache(tokens)
    assert _diff(logits, ref_logits) <= TOL and _diff(nn(tokens), hf(input_ids=tokens).logits) == 0
    worst = max(_diff(cache[n], ref_cache[n]) for n in ref_cache.keys())
    print(f"{nn.cfg.family}: max |diff| over {len(ref_cache)} hooks = {worst:.2e}")
    assert worst <= TOL
    assert hook_count(hf) == before  # nothing left installed by the run


def test_analyses_match(pair, counted):
    ref, nn, _ = pair
    n_layers = nn.cfg.n_layers
    for site in ("resid_pre", "attn_out", "z", "pattern"):
        counted.clear()
        got = mechscope.activation_patch(nn, CLEAN, CORRUPTED, METRIC, site)
        assert len(counted) <= n_layers + 1, (site, len(counted))
        want = mechscope.activation_patch(ref, CLEAN, CORRUPTED, METRIC, site)
        assert _diff(got.values, want.values) <= TOL, site
    got = mechscope.attribution_patch(nn, CLEAN, CORRUPTED, METRIC, "resid_pre")
    want = mechscope.attribution_patch(ref, CLEAN, CORRUPTED, METRIC, "resid_pre")
    assert _diff(got.values, want.values) <= TOL
    hook = "blocks.1.hook_resid_pre"
    assert _diff(mechscope.ablate(nn, CLEAN, hook), mechscope.ablate(ref, CLEAN, hook)) <= TOL
    z = "blocks.0.attn.hook_z"
    got = mechscope.ablate(nn, CLEAN, z, kind="mean", head=1)
    assert _diff(got, mechscope.ablate(ref, CLEAN, z, kind="mean", head=1)) <= TOL
    v = torch.linspace(-1, 1, nn.cfg.d_model)
    got = mechscope.steer(nn, CLEAN, v, hook, strength=3.0, pos=-1)
    assert _diff(got, mechscope.steer(ref, CLEAN, v, hook, strength=3.0, pos=-1)) <= TOL
    lens_got, lens_want = mechscope.logit_lens(nn, CLEAN), mechscope.logit_lens(ref, CLEAN)
    assert _diff(lens_got.logits, lens_want.logits) <= TOL
    _, cache = nn.run_with_cache(CLEAN)
    _, ref_cache = ref.run_with_cache(CLEAN)
    for by in ("head", "component"):
        got = mechscope.direct_logit_attribution(cache, [7, 11], [13, 14], by=by)
        want = mechscope.direct_logit_attribution(ref_cache, [7, 11], [13, 14], by=by)
        assert got.labels == want.labels and _diff(got.values, want.values) <= TOL
    acts = cache["blocks.1.hook_resid_post"].reshape(-1, nn.cfg.d_model)
    ref_acts = ref_cache["blocks.1.hook_resid_post"].reshape(-1, nn.cfg.d_model)
    labels = (CLEAN.reshape(-1) % 2).long()
    probe, ref_probe = mechscope.fit_probe(acts, labels), mechscope.fit_probe(ref_acts, labels)
    assert _diff(probe.weight, ref_probe.weight) <= TOL
    assert probe.test_accuracy == ref_probe.test_accuracy
    strs = nn.to_str_tokens(CLEAN[0])
    assert strs == ref.to_str_tokens(CLEAN[0])
    w, w_ref = (
        AttentionPatterns.from_cache(cache, strs),
        AttentionPatterns.from_cache(ref_cache, strs),
    )
    assert w.tokens == w_ref.tokens and w.n_layers == w_ref.n_layers == n_layers
    assert w.attention == w_ref.attention


def test_sweep_packs_layers_into_few_traces(counted):
    """A sweep is the clean run, the corrupted run and one trace per batch of copies."""
    nn = mechscope.wrap(_lm(build_hf("llama")))
    for site in ("resid_pre", "z_by_pos", "mlp_out"):
        counted.clear()
        mechscope.activation_patch(nn, CLEAN, CORRUPTED, METRIC, site)
        print(f"{site}: {len(counted)} traces (n_layers = {nn.cfg.n_layers})")
        assert len(counted) == 3 and all(k["remote"] is False for k in counted)


class _Intercepted(Exception):
    pass


@pytest.fixture
def ndif(monkeypatch):
    """nnsight's CONFIG pointed at a loopback port that accepts connections, with a key."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    monkeypatch.setattr(nnsight.CONFIG.API, "HOST", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", "test-key-not-real")
    yield
    server.close()


def test_remote_true_reaches_every_trace_unchanged(ndif, monkeypatch):
    hf = build_hf("gpt2")
    lm = _lm(hf)
    model = mechscope.load(lm, backend="nnsight", remote=True)
    seen = []

    def intercept(self, *args, **kwargs):  # stands where nnsight would open the connection
        seen.append(kwargs)
        raise _Intercepted

    monkeypatch.setattr(nnsight.LanguageModel, "trace", intercept)
    with pytest.raises(_Intercepted):
        model(CLEAN)
    with pytest.raises(_Intercepted):
        mechscope.activation_patch(model, CLEAN, CORRUPTED, METRIC, "resid_pre")
    assert [k["remote"] for k in seen] == [True, True]
    assert torch.equal(seen[0]["input_ids"], CLEAN)
    assert hook_count(hf) == 0


ON_SERVER = "MECHSCOPE_TEST_ON_FAKE_NDIF"  # set while the "server" runs a trace body


@pytest.fixture
def ndif_server(ndif, monkeypatch, tmp_path):
    """``remote=True`` traces run as on NDIF, with no network. ``host(hf)`` gives the client's
    model as NDIF's users get it: nnsight's weightless copy (every parameter on the meta
    device, as ``LanguageModel(repo_id)`` without ``dispatch``), while the "server" holds
    ``hf`` itself (NDIF's copy of the weights). nnsight's own RemoteBackend serializes each
    trace (mechscope and this module by value, as for NDIF); where it would open the
    connection (``RemoteBackend.request``), the server deserializes the request against ITS
    model's modules (nnsight's persistent ids), runs the deserialized body, so every Python
    object that body uses is the server's copy, and answers with the body's new values as
    ``torch.save`` bytes, which nnsight's own ``finalize`` / push hand back. So a weight read
    on the client sees meta tensors and fails. ``host.traffic`` lists ``(request bytes,
    response bytes)`` per trace."""
    hosted = {}
    traffic = []

    def request(self, request, tracer):
        blob = self._serialize(tracer)
        lm = hosted[self.model_key]
        job = RequestModel.deserialize(blob, lm._remoteable_persistent_objects(), self.compress)
        frame = job.info.frame
        before = dict(frame.f_locals)
        os.environ[ON_SERVER] = "1"
        try:
            job.execute(job.info.code)
        finally:
            del os.environ[ON_SERVER]
        new = {k: v for k, v in frame.f_locals.items() if k not in before or before[k] is not v}
        buffer = io.BytesIO()
        torch.save(new, buffer)
        data = buffer.getvalue()
        if self.compress:
            import zstandard

            data = zstandard.ZstdCompressor().compress(data)
        traffic.append((len(blob), len(data)))
        return self.finalize(data)

    monkeypatch.setattr(RemoteBackend, "request", request)
    # nnsight names a hosted model by its hub id; these local models have none.
    keys = {}
    monkeypatch.setattr(nnsight.LanguageModel, "to_model_key", lambda lm: keys[id(lm)])

    def host(hf):
        where = tmp_path / f"hosted{len(hosted)}"  # what a hub repo gives the client: config
        hf.config.save_pretrained(where)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            client = nnsight.LanguageModel(str(where), tokenizer=TOK)  # no dispatch: meta
        server = _lm(hf)
        keys[id(client)] = keys[id(server)] = f"test:{id(server)}"
        hosted[keys[id(server)]] = server
        assert all(p.is_meta for p in client._module.parameters())
        return client

    host.traffic = traffic
    return host


def test_remote_cache_comes_back_and_patching_runs(ndif_server, counted):
    """On the server, hooks fill the server's copies: run_with_cache's hooks must run here,
    on the activations the trace brings back (before the fix: "never fired")."""
    hf = build_hf("llama")
    remote = mechscope.load(ndif_server(hf), backend="nnsight", remote=True)
    local = mechscope.wrap(_lm(hf))
    seen = []

    def spy(act, hook):  # read-only, like run_with_cache's own hooks
        seen.append((hook.name, os.environ.get(ON_SERVER, "here")))

    spy.mechscope_read_only = True
    with remote.hooks([(lambda name: True, spy)]):
        logits, cache = remote.run_with_cache(CLEAN)
    assert seen == [(n, "here") for n in remote.hook_names()]  # here, in forward order
    want_logits, want = local.run_with_cache(CLEAN)
    assert list(cache) == list(want) == remote.hook_names()
    assert all(torch.equal(cache[n], want[n]) for n in want) and torch.equal(logits, want_logits)
    n_layers = remote.cfg.n_layers
    for site in ("resid_pre", "z"):
        counted.clear()
        got = mechscope.activation_patch(remote, CLEAN, CORRUPTED, METRIC, site)
        assert len(counted) <= n_layers + 1 and all(k["remote"] is True for k in counted)
        want = mechscope.activation_patch(local, CLEAN, CORRUPTED, METRIC, site)
        assert _diff(got.values, want.values) <= TOL, site
    assert hook_count(hf) == 0 and not any(p._forward_hooks for p in remote._hook_points.values())


def test_remote_per_head_sweep_fits_n_layers_plus_one(ndif_server, counted):
    """An 8B-shaped Llama (32 layers x 32 heads, 8 KV heads), narrow: a remote model's passes
    do not run on this CPU, so its copies are packed by REMOTE_MEMORY_MB, not by the CPU cap
    (which split them into 34 traces, one layer's 32 copies each, over n_layers + 1 = 33)."""
    config = transformers.LlamaConfig(
        vocab_size=32, hidden_size=64, intermediate_size=64, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=16,
        tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    hf = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in hf.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model = mechscope.load(ndif_server(hf.eval()), backend="nnsight", remote=True)
    clean = torch.tensor([[1, 4, 5, 6, 7, 8, 9, 10, 11, 5]])
    corrupted = torch.tensor([[1, 4, 5, 6, 7, 8, 12, 10, 11, 5]])
    metric = logit_diff(torch.tensor([7]), torch.tensor([13]))
    got = mechscope.activation_patch(model, clean, corrupted, metric, "z")
    print(f"z sweep, 32 x 32 heads, remote: {len(counted)} traces")
    assert len(counted) == 3 and all(k["remote"] is True for k in counted)  # 1,024 copies in one
    want = mechscope.activation_patch(mechscope.wrap(hf, TOK), clean, corrupted, metric, "z")
    assert _diff(got.values, want.values) <= TOL


def test_remote_local_dry_run_gives_the_same_numbers(counted, monkeypatch):
    """remote="local": nnsight serializes each trace as for NDIF (local modules hidden),
    deserializes and runs it here; no key, no network."""
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", None)
    hf = build_hf("qwen2")
    model = mechscope.load(_lm(hf), backend="nnsight", remote="local")
    got = mechscope.activation_patch(model, CLEAN, CORRUPTED, METRIC, "pattern")
    want = mechscope.activation_patch(mechscope.wrap(hf, TOK), CLEAN, CORRUPTED, METRIC, "pattern")
    assert _diff(got.values, want.values) <= TOL
    assert len(counted) == 3 and all(k["remote"] == "local" for k in counted)


def test_no_key_or_no_network_fails_before_any_trace(ndif, monkeypatch, counted):
    lm = _lm(build_hf("gpt2"))
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", None)
    with pytest.raises(ValueError, match="NDIF_API_KEY"):
        mechscope.load(lm, backend="nnsight", remote=True)
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", "test-key-not-real")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connection refused at once
    monkeypatch.setattr(nnsight.CONFIG.API, "HOST", f"http://127.0.0.1:{port}")
    with pytest.raises(ConnectionError, match="cannot be reached.*remote=False"):
        mechscope.load(lm, backend="nnsight", remote=True)
    assert counted == []


def test_bad_inputs_name_the_fix():
    with pytest.raises(ValueError, match="remote=True needs backend='nnsight'"):
        mechscope.load("induction-2l", remote=True)
    with pytest.raises(ValueError, match="zoo model"):
        mechscope.load("induction-2l", backend="nnsight")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = nnsight.TransformersModel(build_hf("bert"), tokenizer=TOK, task="feature-extraction")
    with pytest.raises(ValueError, match="causal language models.*GPT-2.*Llama"):
        mechscope.wrap(lm)
    mlp = _lm(build_hf("gpt2")).transformer.h[0].mlp  # a module with no attention call
    with pytest.raises(NotImplementedError, match="blocks.0.attn.hook_pattern cannot be reach"):
        _nnsight_plan.attention_call(mlp, "blocks.0.attn.hook_pattern")
