"""mechscope.explore, driven from Python without a browser: set an input trait, read the data
the panels now hold; bad input gives a message, not an exception; the model is untouched."""

from __future__ import annotations

import asyncio
import html
import re
from pathlib import Path

import pytest
import torch

import mechscope
from mechscope import direct_logit_attribution, logit_lens
from mechscope.explore import ExploreApp, explore
from mechscope.metrics import logit_diff, normalized
from mechscope.sae import SAE, SAEConfig

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "red fox sun cup red fox"
CORRUPTED = "red fox sun cup blue fox"


@pytest.fixture(scope="module")
def model():
    return mechscope.load("induction-2l")


@pytest.fixture
def app(model):
    return explore(model, PROMPT, corrupted=CORRUPTED)


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_setting_the_prompt_updates_every_panel(model, app):
    widgets = (app.attention, app.lens, app.dla_heads, app.dla_components)
    assert app.top_k[0][0] == "sun" and app.generation == 0
    assert app.attention.tokens == ["<bos>", *PROMPT.split()]
    app.prompt = "cat dog owl cat"  # the corrupted prompt no longer lines up: a warning only
    assert app.generation == 1 and "patching needs positions that line up" in app.message
    tokens = ["<bos>", "cat", "dog", "owl", "cat"]
    assert app.str_tokens == tokens and app.attention.tokens == tokens
    assert app.lens.tokens == tokens and app.lens.n_layers == model.cfg.n_layers + 1
    # the same widgets, refreshed in place (no new comm, no new view in the page)
    assert (app.attention, app.lens, app.dla_heads, app.dla_components) == widgets
    # every number is the library's, on the new prompt
    with torch.no_grad():
        logits, cache = model.run_with_cache(model.to_tokens("cat dog owl cat"))
    probs = logits[0, -1].softmax(-1)
    assert app.top_k[0][0] == model.to_str_tokens(probs.argmax()[None])[0]
    assert app.top_k[0][1] == pytest.approx(float(probs.max()), abs=1e-6)
    answer = int(probs.argmax())
    dla = direct_logit_attribution(cache, answer).values[:, 0].reshape(2, 4)
    assert torch.allclose(torch.as_tensor(app.dla_heads.values_array()[0]), dla, atol=1e-5)
    comp = direct_logit_attribution(cache, answer, by="component")
    assert app.dla_components.col_labels == comp.labels
    lens = logit_lens(model, model.to_tokens("cat dog owl cat"))
    want = lens.to_widget(k=5)
    got = app.lens.top_k_at(1, 3)
    assert [t for t, _ in got] == [t for t, _ in want.top_k_at(1, 3)]
    assert [p for _, p in got] == pytest.approx([p for _, p in want.top_k_at(1, 3)], abs=1e-6)
    patterns = app.attention.pattern()
    assert torch.allclose(torch.as_tensor(patterns[1]), cache["pattern", 1][0], atol=1e-6)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("prompt", "", "prompt is empty"),
        ("prompt", " ".join(["red"] * 70), "context of 64 tokens"),
        ("answer", "zebra", "not in this model's vocabulary"),
        ("answer", "red fox", "is 2 tokens"),
        ("wrong", "zebra", "not in this model's vocabulary"),
    ],
)
def test_bad_input_is_a_message_and_leaves_the_panels_and_the_model(model, app, name, value, says):
    model.train()  # a mode the app must not change
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks, shown, top = _hooks(model), list(app.attention.tokens), list(app.top_k)
    try:
        setattr(app, name, value)  # no exception
        assert says in app.message
        assert app.attention.tokens == shown and app.top_k == top and app.generation == 0
        assert model.training and _hooks(model) == hooks
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        setattr(app, name, {"prompt": PROMPT}.get(name, ""))  # fixed: the message goes
        assert app.message == "" and app.generation == 2
    finally:
        model.eval()


def test_explore_refuses_a_bad_first_prompt_with_a_value_error(model):
    with pytest.raises(ValueError, match="explore: The prompt is empty"):
        explore(model, "  ")


def test_patching_runs_on_request_and_matches_the_library(model, app):
    assert app.patching is None and not app.patched
    app.run_patching()
    assert app.patched and app.message == ""
    clean, corrupted = model.to_tokens(PROMPT), model.to_tokens(CORRUPTED)
    answer = int(model(clean)[0, -1].argmax())
    wrong = int(model(corrupted)[0, -1].argmax())
    wrong = None if wrong == answer else wrong  # the app's default: the corrupted top-1, if other
    metric = logit_diff(answer, wrong)
    with torch.no_grad():
        scaled = normalized(metric, metric(model(clean)), metric(model(corrupted)))
    want = mechscope.activation_patch(model, clean, corrupted, scaled, "resid_pre").values
    got = torch.as_tensor(app.patching.values_array()[0])
    assert app.patching.panel_titles == ["resid_pre", "attn_out"]  # attention-only: no mlp_out
    assert torch.allclose(got, want, atol=1e-5)
    # clicking a cell shows that layer and position in the lens: attn_out of layer 1 at
    # pos 5 writes into the final residual stream (lens row 2)
    app.patching.selected = [1, 1, 5]
    assert app.lens.selected == [2, 5]
    app.patching.selected = [0, 1, 3]  # resid_pre of layer 1: the stream entering block 1
    assert app.lens.selected == [1, 3]
    app.answer = "cup"  # new inputs: the sweep is stale and is taken down
    assert not app.patched and app.patching is not None


def test_a_stale_patching_result_never_overwrites_newer_inputs(model, app, monkeypatch):
    from mechscope.explore import _compute

    real = _compute.activation_patch

    def slow(*args, **kwargs):  # the user types while the sweep runs
        result = real(*args, **kwargs)
        if app.prompt == PROMPT:
            app.prompt = "red fox sun cup red owl"
        return result

    monkeypatch.setattr(_compute, "activation_patch", slow)
    app.run_patching()
    assert app.prompt == "red fox sun cup red owl" and app.generation == 1
    assert not app.patched and app.patching is None  # the old sweep was dropped


def test_clicking_a_head_in_attribution_focuses_it_in_attention(app):
    app.dla_heads.selected = [0, 1, 2]
    assert app.attention.selected == [1, 2]
    app.attention.selected = [0, 3]  # and back
    assert app.dla_heads.selected == [0, 0, 3]
    app.prompt = "cat dog owl cat dog owl"
    assert app.attention.selected == [0, 3]  # the focus survives a new prompt


def test_hover_links_every_per_position_view(app):
    app.run_patching()
    pairs = {(link.source[1], link.target[1], type(link.target[0]).__name__) for link in app.links}
    assert pairs == {
        ("highlight_token", "highlight_token", "LogitLens"),
        ("highlight_token", "highlight_token", "Heatmap"),
    }
    assert all(link.source[0] is app.attention for link in app.links)
    app.lens.highlight_token = 6
    app.prompt = "cat dog owl"  # out of range after the new prompt: cleared
    assert app.lens.highlight_token == -1


async def _until(predicate, timeout: float = 15.0) -> None:
    """Let the event loop run until ``predicate()`` holds (the debounced recompute landed).

    Polling, not one fixed sleep: on a loaded CI machine a recompute can take longer than any
    fixed wait, and these tests assert how many recomputes ran, not how fast."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate() and loop.time() < deadline:
        await asyncio.sleep(0.02)


def test_typing_is_debounced_to_one_recompute(model):
    # keys 5 ms apart against a 0.5 s debounce: a margin no scheduler hiccup closes
    app = explore(model, PROMPT, debounce_s=0.5)

    async def type_keys():
        for text in ("c", "ca", "cat", "cat dog"):
            app.boxes["prompt"].value = text
            await asyncio.sleep(0.005)
        assert app.generation == 0  # nothing yet: still typing
        await _until(lambda: app.generation >= 1)
        await asyncio.sleep(0.6)  # long enough for a second (wrong) recompute to show up

    asyncio.run(type_keys())
    assert app.generation == 1 and app.str_tokens == ["<bos>", "cat", "dog"]


def test_a_slow_model_waits_longer_before_recomputing(model):
    """After a slow computation a pause mid-word (longer than debounce_s, shorter than a
    quarter of the last computation) starts nothing; the last keystroke's text is computed."""
    app = explore(model, PROMPT, debounce_s=0.02)
    app._last_compute_s = 8.0  # as if the model took 8 s: wait 2 s after a keystroke

    async def type_keys():
        app.boxes["prompt"].value = "red fox"
        await asyncio.sleep(0.3)  # a pause much longer than debounce_s
        assert app.generation == 0
        app.boxes["prompt"].value = "red fox sun"
        await _until(lambda: app.generation >= 1)
        await asyncio.sleep(0.3)

    asyncio.run(type_keys())
    assert app.generation == 1 and app.str_tokens == ["<bos>", "red", "fox", "sun"]
    assert 0 < app._last_compute_s < 8.0  # measured again on the real computation


def test_features_panel_for_a_spliced_sae(model):
    sae = SAE(SAEConfig(d_in=64, d_sae=32, site="blocks.0.hook_resid_post", seed=3))
    spliced = mechscope.splice(model, sae)
    app = explore(spliced, PROMPT)
    names = app.features.feature_names
    assert len(names) == 8 and all(n.startswith("blocks.0.hook_resid_post[") for n in names)
    _, cache = spliced.run_with_cache(spliced.to_tokens(PROMPT))
    acts = cache["blocks.0.hook_resid_post.hook_sae_acts"][0]
    first = int(re.search(r"\[(\d+)\]", names[0]).group(1))
    assert float(acts[:, first].max()) == pytest.approx(float(acts.max(0).values.max()), abs=1e-6)
    got = torch.as_tensor(app.features.values_array()[0, :, 0])
    assert torch.allclose(got, acts[:, first], atol=1e-5)
    assert {type(link.target[0]).__name__ for link in app.links} == {
        "LogitLens",
        "TokenActivations",
    }


def test_a_wrapped_hugging_face_model(tiny_hf):
    model, hf = tiny_hf
    app = explore(model, "the cat sat on the mat", answer="dog", wrong="cat")
    with torch.no_grad():
        probs = hf(model.to_tokens("the cat sat on the mat")).logits[0, -1].softmax(-1)
    assert app.top_k[0][1] == pytest.approx(float(probs.max()), abs=1e-5)
    assert "logit('dog') - logit('cat')" in html.unescape(app._status.value)
    app.answer = "zebra"  # the WordLevel tokenizer maps it to its unknown token
    assert "not in this model's vocabulary" in app.message
    assert isinstance(app, ExploreApp) and app.attention.n_layers == 2


@pytest.fixture(scope="module")
def tiny_hf():
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = "<|endoftext|> the cat sat on mat and dog ran".split()
    level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=words[0]))
    level.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=level, bos_token=words[0], eos_token=words[0], unk_token=words[0]
    )
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        n_layer=2, n_head=2, n_embd=16, n_positions=16, vocab_size=len(words)
    )
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    return mechscope.wrap(hf, tok), hf


@pytest.mark.parametrize("name", ["attention", "heatmap", "logit_lens", "token_activations"])
def test_typescript_model_lists_exactly_the_synced_traits(name):
    import importlib

    import ipywidgets

    ts = (ROOT / "widgets" / name / "index.ts").read_text()
    body = re.search(r"export interface Model(?: extends \w+)? \{(.*?)\n\}", ts, re.S).group(1)
    keys = set(re.findall(r"^\s+(\w+)\??:", body, re.M))
    if name == "logit_lens":  # Model extends LensPayload (data.ts)
        data = (ROOT / "widgets" / name / "data.ts").read_text()
        payload = re.search(r"export interface LensPayload \{(.*?)\n\}", data, re.S).group(1)
        keys |= set(re.findall(r"^\s+(\w+)\??:", payload, re.M))
    module = importlib.import_module(f"mechscope.widgets.{name}")
    cls = {"attention": "AttentionPatterns", "heatmap": "Heatmap", "logit_lens": "LogitLens",
           "token_activations": "TokenActivations"}[name]  # fmt: skip
    base = set(ipywidgets.DOMWidget.class_trait_names(sync=True))
    synced = set(getattr(module, cls).class_trait_names(sync=True)) - base
    assert "highlight_token" in keys and keys == synced


def test_edits_compute_on_one_thread_and_restore_the_setting(model, app, monkeypatch):
    """An edit is a few tokens: the app computes on one torch thread (thread sync dominates on
    a busy CPU) and leaves the user's setting as it was, even when the compute fails."""
    from mechscope.explore import _compute

    outer = torch.get_num_threads()
    torch.set_num_threads(2)  # the user's setting (CI runs with OMP_NUM_THREADS=1)
    before = torch.get_num_threads()
    seen = []
    real = _compute._compute

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(_compute, "_compute", spy)
    app.prompt = "red fox sun cup red owl"
    assert seen == [1] and torch.get_num_threads() == before

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(_compute, "_compute", boom)
    app.prompt = "red fox sun cup red cat"
    try:
        assert "boom" in app.message and torch.get_num_threads() == before == 2
    finally:
        torch.set_num_threads(outer)
