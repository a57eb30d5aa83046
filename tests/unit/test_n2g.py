"""Neuron-to-graph (Foote et al. 2023): on a model whose neuron is known exactly, N2G recovers
its token patterns (wildcards included) and predicts it perfectly on new text; on a real
transformer each pruned context re-measures as the shortest that keeps the activation; the
model is left as it was, also on error; bad arguments are named."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import mechscope
from mechscope import HookPoint
from mechscope.explain import RuleExplanation, simulate_score
from mechscope.hooks import installed_hooks, name_hook_points
from mechscope.n2g import NeuronGraph, fire_score, neuron_to_graph

VOCAB = ["<bos>", *"abcdefghijkl"]


class KnownNeurons(nn.Module):
    """Unit 0 = 2.0 where 'c' follows 'b' + 1.0 where 'e' comes two after 'd' (a skip-gram);
    unit 1 = 1.0 on every 'a'. Causal by construction; one hook, ``hook_neurons``."""

    def __init__(self):
        super().__init__()
        self.cfg = SimpleNamespace(n_layers=1, n_heads=0, d_model=2, d_head=0,
                                   d_vocab=len(VOCAB), n_ctx=32)  # fmt: skip
        self.tokenizer = SimpleNamespace(bos_id=0, token_text=lambda i: VOCAB[i])
        self.hook_neurons = HookPoint()
        self._points = name_hook_points(self)
        self.calls = 0

    def to_tokens(self, text):
        texts = [text] if isinstance(text, str) else list(text)
        return torch.tensor([[0] + [VOCAB.index(c) for c in t] for t in texts])

    def to_str_tokens(self, tokens):
        return [VOCAB[int(i)] for i in torch.as_tensor(tokens).flatten()]

    def forward(self, tokens):
        self.calls += 1
        t = torch.as_tensor(tokens)
        prev = torch.nn.functional.pad(t, (1, 0), value=-1)[:, :-1]
        prev2 = torch.nn.functional.pad(t, (2, 0), value=-1)[:, :-2]
        bc = (t == VOCAB.index("c")) & (prev == VOCAB.index("b"))
        de = (t == VOCAB.index("e")) & (prev2 == VOCAB.index("d"))
        unit0 = 2.0 * bc.float() + 1.0 * de.float()
        unit1 = (t == VOCAB.index("a")).float()
        return self.hook_neurons(torch.stack([unit0, unit1], -1))

    def hook_names(self):
        return list(self._points)

    def hooks(self, fwd_hooks):
        return installed_hooks(self._points, fwd_hooks)


def _texts(n=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    filler = "afghijkl"
    out = []
    for i in range(n):
        s = [filler[int(j)] for j in torch.randint(0, len(filler), (16,), generator=gen)]
        p = int(torch.randint(3, 14, (1,), generator=gen))
        if i % 3 == 0:
            s[p - 1 : p + 1] = ["b", "c"]
        elif i % 3 == 1:
            s[p - 2], s[p] = "d", "e"
        out.append("".join(s))
    return out


def test_recovers_known_patterns_and_predicts_exactly():
    model = KnownNeurons()
    graph = neuron_to_graph(model, _texts(), "hook_neurons", 0, k=40)
    # the bigram needs 'b' (2 tokens kept); the skip-gram keeps 'd', a wildcard, then 'e'
    assert [(p, v) for p, v, _ in graph.end_patterns] == [
        (("b", "c"), 2.0),
        (("d", None, "e"), 1.0),
    ]
    assert sum(n for *_, n in graph.end_patterns) == len(graph.patterns) == 27  # 40 texts, 2/3 fire
    assert graph.max_act == 2.0 and graph.n_nodes == 5
    assert "'d' * ['e'] -> 1.00" in graph.text
    # new text: predicted == real at every token
    held = _texts(30, seed=1)
    tokens = model.to_tokens(held)
    real = model(tokens)[:, 1:, 0]
    token_texts = [[VOCAB[int(i)] for i in row[1:]] for row in tokens]
    pred = torch.stack(graph.simulate(token_texts))
    assert torch.equal(pred, real)
    score = fire_score(graph, token_texts, real)
    assert (score.precision, score.recall, score.f1) == (1.0, 1.0, 1.0)
    assert score.r == pytest.approx(1.0) and score.n_fires == int((real > 1.0).sum()) > 5
    # the control: the same graph against another unit (the 'a' detector) predicts nothing
    other = fire_score(graph, token_texts, model(tokens)[:, 1:, 1], threshold=0.25)
    assert abs(other.r) < 0.2 and other.precision == 0.0
    # and as an explanation it scores by simulation like any other
    assert simulate_score(graph, token_texts, real).score == pytest.approx(1.0)


def test_wildcards_anchor_at_the_activating_token_and_take_the_max():
    g = NeuronGraph([(("x", None, "z"), 3.0), (("z",), 1.0), (("y", "z"), 2.0)], 3.0)
    pred = g.simulate([["x", "y", "z", "z", "w", "x", "q", "z"]])[0]
    # z at 2: x*z (3) and yz (2) and z (1) match -> max 3; z at 3: only z; z at 7: x*z
    assert pred.tolist() == [0.0, 0.0, 3.0, 1.0, 0.0, 0.0, 0.0, 3.0]
    # a pattern longer than the text so far does not match; a wildcard never starts a pattern
    assert g.simulate([["z"]])[0].tolist() == [1.0]
    assert NeuronGraph([((None, "z"), 1.0)], 1.0).simulate([["a", "b"]])[0].tolist() == [0, 0]
    with pytest.raises(TypeError, match="token_texts"):
        g.simulate("xyz")


@pytest.fixture(scope="module")
def tiny():
    cfg = mechscope.TransformerConfig(n_layers=2, d_model=32, n_heads=2, d_head=16, d_vocab=50,
                                      n_ctx=24, d_mlp=64, seed=3)  # fmt: skip
    model = mechscope.Transformer(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 50, (24, 24), generator=gen)
    tokens[:, 0] = 0  # a <bos> column (no tokenizer: kept as an ordinary first token)
    return model, tokens


def _acts(model, tokens, hook, unit):
    _, cache = model.run_with_cache(tokens, names=hook)
    return cache[hook][..., unit]


def test_pruned_contexts_re_measure_on_a_transformer(tiny):
    model, tokens = tiny
    hook, unit = "blocks.1.mlp.hook_post", 5
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph = neuron_to_graph(model, tokens, hook, unit, k=6, frac=0.8, n_ctx=10)
    peaks = _acts(model, tokens, hook, unit).amax(1).sort(descending=True).values[:6]
    assert [v for _, v in graph.patterns] == pytest.approx(peaks.tolist())
    for ctx, (pattern, a) in zip(graph.contexts, graph.patterns, strict=True):
        assert 1 <= len(ctx) <= 10 and len(pattern) <= len(ctx)
        assert pattern[-1] == str(int(ctx[-1])) and pattern[0] is not None
        kept = float(_acts(model, ctx[None], hook, unit)[0, -1])
        if len(ctx) < 10:
            assert kept >= 0.8 * a - 1e-5  # keeps the fraction ...
        if len(ctx) > 1:  # ... and is the shortest suffix that does
            assert float(_acts(model, ctx[None, 1:], hook, unit)[0, -1]) < 0.8 * a
    # each pattern matches the context it was cut from, at its last token
    own = graph.simulate([[str(int(t)) for t in c] for c in graph.contexts])
    assert all(float(p[-1]) > 0 for p in own)
    # the model is unchanged: weights bit-identical, no hook left, mode kept
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules()) and not model.training
    # a list of features: one graph each, the same as one at a time
    both = neuron_to_graph(model, tokens, hook, [unit, 7], k=6, frac=0.8, n_ctx=10)
    assert both[0].patterns == graph.patterns and both[1].feature == 7


def test_model_left_clean_on_error(tiny):
    model, tokens = tiny
    model.train()
    try:
        with pytest.raises(ValueError, match="feature 999 but blocks.0.mlp.hook_post has 64"):
            neuron_to_graph(model, tokens, "blocks.0.mlp.hook_post", 999)
        assert not any(m._forward_hooks for m in model.modules()) and model.training
    finally:
        model.eval()


def test_bad_arguments_are_named(tiny):
    model, tokens = tiny
    hook = "blocks.0.mlp.hook_post"
    with pytest.raises(KeyError, match="blocks.0.mlp.hook_pots"):
        neuron_to_graph(model, tokens, "blocks.0.mlp.hook_pots", 0)
    for bad in (True, -1, "3", []):
        with pytest.raises(TypeError, match="feature="):
            neuron_to_graph(model, tokens, hook, bad)
    for name, bad in (("frac", 0), ("frac", 1.5), ("importance", -0.1)):
        with pytest.raises(ValueError, match=f"{name}="):
            neuron_to_graph(model, tokens, hook, 0, **{name: bad})
    with pytest.raises(ValueError, match="k=0"):
        neuron_to_graph(model, tokens, hook, 0, k=0)
    with pytest.raises(TypeError, match="baseline="):
        neuron_to_graph(model, tokens, hook, 0, baseline=1.5)
    sae = SimpleNamespace(cfg=SimpleNamespace(site="blocks.1.mlp.hook_post"))
    with pytest.raises(ValueError, match="pass hook='blocks.1.mlp.hook_post'"):
        neuron_to_graph(model, tokens, hook, 0, sae=sae)
    known = KnownNeurons()
    with pytest.raises(ValueError, match="never activates"):
        neuron_to_graph(known, ["fghij"], "hook_neurons", 0)
    g = NeuronGraph([(("z",), 1.0)], 1.0)
    with pytest.raises(ValueError, match="threshold="):
        fire_score(g, [["z"]], [[1.0]], threshold=0)
    with pytest.raises(TypeError, match="max_act"):
        fire_score(RuleExplanation("in_string"), [["z"]], [[1.0]])
