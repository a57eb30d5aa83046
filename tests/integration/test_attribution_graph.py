"""Transcoders and attribution graphs on facts-ioi-2l (issue 14 items 2 and 3).

The shipped transcoders' card values are re-measured from the weights; every graph target is
exactly the sum of its incoming edges plus its bias; the replacement model reproduces the real
one; and small interventions on graph features in the real model move the target logit as the
graph predicts once LayerNorm scales are frozen (the graph's one linearisation the real model
undoes: see test_interventions_agree_with_the_graph).
"""

import pytest
import torch

import mechscope
from mechscope.attribution_graph import attribution_graph
from mechscope.splice import splice
from mechscope.transcoder import load_zoo_transcoder, zoo_transcoders
from mechscope.zoo.recipes_transcoders import transcoder_metrics

PROMPTS = [
    "The Colosseum is in",
    "When Mary and John went to the store , John gave a drink to",
]


@pytest.fixture(scope="module")
def model():
    return mechscope.load("facts-ioi-2l")


@pytest.fixture(scope="module")
def tcs():
    return [load_zoo_transcoder(f"facts-ioi-2l-tc{layer}") for layer in range(2)]


@pytest.fixture(scope="module")
def graphs(model, tcs):
    return {p: attribution_graph(model, tcs, p) for p in PROMPTS}


@pytest.mark.parametrize("layer", [0, 1])
def test_transcoder_cards_are_remeasured(model, tcs, layer):
    tc = tcs[layer]
    assert f"facts-ioi-2l-tc{layer}" in zoo_transcoders()
    assert tc.card["model_sha256"] == model.card["sha256"]
    measured = transcoder_metrics(model, tc, layer)
    for key, value in tc.card["metrics"].items():
        assert measured[key] == pytest.approx(value, abs=2e-3), key
    m = tc.card["metrics"]
    assert m["fvu"] <= 0.05 and m["l0"] <= tc.cfg.k and m["dead_fraction"] <= 0.3
    assert m["ce_loss_score"] >= 0.8


@pytest.mark.parametrize("prompt", PROMPTS)
def test_every_target_is_its_edges_plus_bias(graphs, model, prompt):
    g = graphs[prompt]
    targets = torch.cat([g.nodes_of("feature"), g.nodes_of("logit")])
    total = g.adjacency.sum(1) + g.bias
    torch.testing.assert_close(total[targets], g.target_value[targets], atol=1e-4, rtol=1e-5)
    feats = g.nodes_of("feature")
    # the replacement model reproduces the real run: pre-activation = real activation,
    # replacement logits = real logits
    torch.testing.assert_close(g.target_value[feats], g.activation[feats], atol=1e-4, rtol=1e-5)
    logits = g.nodes_of("logit")
    with torch.no_grad():
        real = model(model.to_tokens(prompt))[0, -1]
    torch.testing.assert_close(g.target_value[logits], real[g.index[logits]], atol=1e-4, rtol=0)
    # sources only: embeddings and errors have no incoming edges; logits no outgoing ones
    for kind in ("embed", "error"):
        assert g.adjacency[g.nodes_of(kind)].abs().sum() == 0
    assert g.adjacency[:, logits].abs().sum() == 0
    # a feature never feeds a feature of its own or an earlier layer
    f_layer = g.layer[feats]
    block = g.adjacency[feats][:, feats]
    assert block[f_layer[:, None] <= f_layer[None, :]].abs().sum() == 0


@pytest.mark.parametrize("prompt", PROMPTS)
def test_the_default_target_is_the_models_answer(graphs, model, prompt):
    g = graphs[prompt]
    logits = g.nodes_of("logit")
    answer = {"The Colosseum is in": "Rome"}.get(prompt, "Mary")
    assert g.index[logits[0]] == model.to_single_token(answer)
    assert g.activation[logits].sum() >= 0.95  # the targets hold 95% of the probability


def test_pruning_keeps_the_influence_it_promises(graphs):
    g = graphs[PROMPTS[1]]
    prunable = torch.tensor([k in ("feature", "error") for k in g.kind])
    total = g.influence[prunable].sum()
    kept = g.influence[prunable & g.kept].sum()
    assert kept >= 0.8 * total and int((prunable & g.kept).sum()) < int(prunable.sum()) // 2
    loose = g.prune(node_threshold=0.95, edge_threshold=0.99)
    tight = g.prune(node_threshold=0.5, edge_threshold=0.9)
    assert int(tight.kept.sum()) < int(g.kept.sum()) < int(loose.kept.sum())
    assert int((tight.values != 0).sum()) < int((loose.values != 0).sum())
    # pruned edges are a subset of the full graph, with the same weights
    nz = g.values != 0
    assert torch.equal(g.values[nz], g.adjacency[nz])
    assert not g.values[~(g.kept[:, None] & g.kept[None, :])].any()
    # the prompt's subject reaches the answer: the Colosseum's embedding has the most influence
    g0 = graphs[PROMPTS[0]]
    top = int(torch.argmax(g0.influence))
    assert g0.kind[top] == "embed" and g0.str_tokens[int(g0.pos[top])].strip() == "Colosseum"


def _frozen_norm_hooks(model, spliced, tokens):
    """Hooks that freeze every LayerNorm scale of ``spliced`` at its value on ``tokens``."""
    inputs = {"ln_final": f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"}
    for layer in range(model.cfg.n_layers):
        inputs[f"blocks.{layer}.ln1"] = f"blocks.{layer}.hook_resid_pre"
        inputs[f"blocks.{layer}.ln2"] = f"blocks.{layer}.hook_resid_mid"
    with torch.no_grad():
        _, cache = spliced.run_with_cache(tokens, names=list(inputs.values()))

    def centred(x):
        return x - x.mean(-1, keepdim=True)

    scales = {k: (centred(cache[v]).pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()
              for k, v in inputs.items()}  # fmt: skip
    seen = {}
    hooks = []
    for norm, source in inputs.items():
        hooks.append((source, lambda act, hook, n=norm: seen.__setitem__(n, act)))
        hooks.append((f"{norm}.hook_normalized",
                      lambda act, hook, n=norm: centred(seen[n]) / scales[n]))  # fmt: skip
    return hooks


@pytest.mark.parametrize("prompt", PROMPTS)
def test_interventions_agree_with_the_graph(graphs, model, tcs, prompt):
    """Scale each of the 12 most influential features of each layer by 0.98 in the real
    (spliced) model, attention and MLPs live, and compare the target logit's change with the
    graph's prediction (direct plus indirect effects through later features).

    With LayerNorm scales frozen as in the graph, they agree (correlation >= 0.95, total
    size within 15%). With LayerNorm live the real logit hardly moves (measured: summed
    change 0.007 vs 0.214 predicted on the Colosseum prompt): a final LayerNorm renormalises
    a residual stream that already points at the answer, which a frozen-scale linear graph
    cannot show.
    """
    g = graphs[prompt]
    feats, logit = g.nodes_of("feature"), int(g.nodes_of("logit")[0])
    a = g.activation[feats]
    deriv = g.adjacency[:, feats] / a  # d target / d activation
    total = deriv[logit] @ torch.linalg.inv(torch.eye(len(feats)) - deriv[feats])
    tokens = model.to_tokens(prompt)
    spliced = splice(model, tcs)
    frozen = _frozen_norm_hooks(model, spliced, tokens)
    answer, eps = int(g.index[logit]), 0.02
    with torch.no_grad(), spliced.hooks(frozen):
        base = spliced(tokens)[0, -1, answer]
    for layer in (0, 1):
        mine = [i for i in range(len(feats)) if int(g.layer[feats[i]]) == layer]
        mine = sorted(mine, key=lambda i: -abs(float(total[i] * a[i])))[:12]
        predicted, measured = [], []
        for i in mine:
            n = int(feats[i])
            p, j = int(g.pos[n]), int(g.index[n])

            def shrink(act, hook, p=p, j=j):
                act = act.clone()
                act[0, p, j] *= 1 - eps
                return act

            hooks = frozen + [(f"blocks.{layer}.hook_mlp_out.hook_sae_acts", shrink)]
            with torch.no_grad(), spliced.hooks(hooks):
                measured.append(float(spliced(tokens)[0, -1, answer] - base))
            predicted.append(float(-eps * a[i] * total[i]))
        predicted, measured = torch.tensor(predicted), torch.tensor(measured)
        corr = torch.corrcoef(torch.stack([predicted, measured]))[0, 1]
        assert corr >= 0.95, (layer, corr)
        assert float(measured.abs().sum()) == pytest.approx(float(predicted.abs().sum()), rel=0.15)


def test_bad_input_is_named_and_the_model_is_untouched(model, tcs):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    with pytest.raises(ValueError, match="transcoders"):
        attribution_graph(model, tcs[::-1], PROMPTS[0])
    with pytest.raises(ValueError, match="transcoders"):
        attribution_graph(model, tcs[:1], PROMPTS[0])
    with pytest.raises(ValueError, match="answer_ids"):
        attribution_graph(model, tcs, PROMPTS[0], answer_ids=[10_000])
    for bad in (0, 1.5, -0.1, True):
        with pytest.raises(ValueError, match="node_threshold"):
            attribution_graph(model, tcs, PROMPTS[0], node_threshold=bad)
    with pytest.raises(ValueError, match="edge_threshold"):
        attribution_graph(model, tcs, PROMPTS[0], edge_threshold=2)
    with pytest.raises(ValueError, match="tokens"):
        attribution_graph(model, tcs, model.to_tokens(PROMPTS[0]).repeat(2, 1))
    with pytest.raises(ValueError):
        attribution_graph(model, tcs, torch.zeros(1, model.cfg.n_ctx + 1, dtype=torch.long))
    with pytest.raises(TypeError, match="ReadableBlocks"):
        attribution_graph(object(), tcs, PROMPTS[0])
    assert [p.requires_grad for p in model.parameters()] == flags
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0
