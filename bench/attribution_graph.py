"""Attribution graphs: mechscope against a plain float64 reference (circuit-tracer cannot run here).

Run by hand:  .venv/bin/python bench/attribution_graph.py [--repeats 3] [--threads 1]

Peer: circuit-tracer 0.5.0 (PyPI ``circuit-tracer``, Hanna et al., the Ameisen et al. 2025
graphs) cannot run in this environment; checked 2026-12 on this machine:

1. Install: ``pip download --no-deps circuit-tracer==0.5.0`` works, but its metadata requires
   ``transformers<=4.57.3,>=4.56.0``, ``huggingface-hub<1.0.0`` and ``nnsight>=0.6.0``; this
   venv has transformers 5.25.0 and huggingface_hub 2.4.0 (and no nnsight), so installing it
   would downgrade transformers; it is not installed.
2. Running it from the unpacked wheel anyway (``PYTHONPATH=<wheel dir>``):
   ``from circuit_tracer import ReplacementModel`` fails with ``ImportError: cannot import name
   'HF_HUB_ENABLE_HF_TRANSFER' from 'huggingface_hub.constants'`` (circuit_tracer/utils/
   hf_utils.py line 13, a constant huggingface_hub 1.x removed).
3. Its models are TransformerLens ``HookedTransformer`` s loaded by hub name
   (``ReplacementModel.from_pretrained_and_transcoders(model_name, ...)``) or nnsight
   ``LanguageModel`` s, with transcoders from the hub; running ours would need converting
   facts-ioi-2l into a HookedTransformer and our TopK-then-ReLU transcoders into its
   ``SingleLayerTranscoder`` (its ``TopK`` has no ReLU): not a like-for-like setup offline.

So, as issue 14 item 7 allows, mechscope is compared with a plain reference written here,
independently of ``mechscope.attribution_graph``: the local replacement model of the same
prompt (attention patterns and LayerNorm denominators frozen from the real run, transcoder
features, error nodes) built in float64 from the model's weights, and **one backward pass per
target node** (each active feature's pre-activation, each target logit), no batching. Edge
``A[t, s] = value_s . d target_t / d value_s`` over the same nodes in the same order.

Model: the zoo's facts-ioi-2l (2 layers, d_model 128, n_ctx 16) with its shipped transcoders
facts-ioi-2l-tc0 / -tc1 (1024 features, TopK k=16). Prompts: the canonical IOI prompt (15
tokens with BOS) and a 16-token one (the model's whole context). Reported: the node counts,
the largest |edge difference| (goal <= 1e-4), median process-CPU and wall time of
``--repeats`` runs after a warm-up, each in a fresh subprocess so peak memory is its own:
peak RSS growth (VmHWM after a reset through /proc/self/clear_refs, minus RSS before the
first run) and tracemalloc's Python-heap peak; ratio reference / mechscope (> 1: mechscope
faster). Goal: a 16-token prompt in <= 5 s CPU. Writes bench/out/attribution_graph.json.

A third row, ``sketch`` (:func:`residual_seeded`), is not mechscope's code: the same edges with
the batched gradients taken at each layer's MLP output ``[pos, d_model]`` rather than at the
``[pos, d_sae]`` features, sources read through their decoder rows; it shows what moving
mechscope's ``_attribution_graph_core.build`` to that scheme would gain.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may touch the network

import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
OUT = HERE / "out"
IMPLS = ("mechscope", "reference", "sketch")
PROMPTS = {
    "ioi-15": "When Mary and John went to the store , John gave a drink to",
    "ioi-16": "When Mary and John went to the store , John gave a drink to Mary",
}


def load():
    import mechscope
    from mechscope.transcoder import load_zoo_transcoder

    model = mechscope.load("facts-ioi-2l")
    return model, [load_zoo_transcoder(f"facts-ioi-2l-tc{layer}") for layer in range(2)]


def reference_graph(model, tcs, tokens, result):
    """The reference adjacency over ``result``'s nodes: float64, one backward per target."""
    L = model.cfg.n_layers
    names = ["hook_embed", "hook_pos_embed", f"blocks.{L - 1}.hook_resid_post"]
    for layer in range(L):
        names += [f"blocks.{layer}.{n}" for n in ("attn.hook_pattern", "hook_resid_pre",
                  "hook_resid_mid", "ln2.hook_normalized", "hook_mlp_out")]  # fmt: skip
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names=names)

    def c(x):  # a cached activation of the one prompt, float64
        return x.detach()[0].double()

    def d(x):  # a weight, float64
        return x.detach().double()

    def std(x, eps):  # LayerNorm's denominator, frozen
        x = x - x.mean(-1, keepdim=True)
        return (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()

    embed = c(cache["hook_embed"]) + c(cache["hook_pos_embed"])
    acts, errors = [], []
    for layer, tc in enumerate(tcs):
        a = tc.encode(cache[f"blocks.{layer}.ln2.hook_normalized"][0]).detach().double()
        acts.append(a)
        errors.append(c(cache[f"blocks.{layer}.hook_mlp_out"]) - (a @ d(tc.W_dec) + d(tc.b_dec)))
    leaves = [embed.clone().requires_grad_(True)]
    leaves += [a.clone().requires_grad_(True) for a in acts]
    leaves += [e.clone().requires_grad_(True) for e in errors]
    with torch.enable_grad():
        r = leaves[0]
        pres = []
        for layer, (block, tc) in enumerate(zip(model.blocks, tcs, strict=True)):
            at = block.attn
            s1 = std(c(cache[f"blocks.{layer}.hook_resid_pre"]), block.ln1.eps)
            x = (r - r.mean(-1, keepdim=True)) / s1 * d(block.ln1.w) + d(block.ln1.b)
            v = torch.einsum("pd,hde->hpe", x, d(at.W_V)) + d(at.b_V)[:, None]
            z = torch.einsum("hqk,hke->hqe", c(cache[f"blocks.{layer}.attn.hook_pattern"]), v)
            r = r + torch.einsum("hqe,hed->qd", z, d(at.W_O)) + d(at.b_O)
            s2 = std(c(cache[f"blocks.{layer}.hook_resid_mid"]), block.ln2.eps)
            pres.append((r - r.mean(-1, keepdim=True)) / s2 @ d(tc.W_enc) + d(tc.b_enc))
            r = r + leaves[1 + layer] @ d(tc.W_dec) + d(tc.b_dec) + leaves[1 + L + layer]
        sf = std(c(cache[f"blocks.{L - 1}.hook_resid_post"]), model.ln_final.eps)[-1]
        last = (r[-1] - r[-1].mean()) / sf * d(model.ln_final.w) + d(model.ln_final.b)
        logits = last @ d(model.W_U) + d(model.b_U)
        kind, lay, pos, idx = result.kind, result.layer.tolist(), result.pos.tolist(), result.index
        N = len(kind)
        A = torch.zeros(N, N, dtype=torch.float64)
        values = [leaves[0].detach(), *acts, *errors]
        for t in range(N):  # one backward per target, no batching
            if kind[t] == "feature":
                target = pres[lay[t]][pos[t], int(idx[t])]
            elif kind[t] == "logit":
                target = logits[int(idx[t])]
            else:
                continue
            g = torch.autograd.grad(target, leaves, retain_graph=True, allow_unused=True,
                                    materialize_grads=True)  # fmt: skip
            for s in range(N):
                if kind[s] == "embed":
                    A[t, s] = g[0][pos[s]] @ values[0][pos[s]]
                elif kind[s] == "feature":
                    A[t, s] = g[1 + lay[s]][pos[s], int(idx[s])] * acts[lay[s]][pos[s], int(idx[s])]
                elif kind[s] == "error":
                    A[t, s] = g[1 + L + lay[s]][pos[s]] @ errors[lay[s]][pos[s]]
    active = {(li, p, j) for li in range(L) for p, j in (acts[li] > 0).nonzero().tolist()}
    return A, active


def residual_seeded(model, tcs, tokens, result):
    """A sketch for mechscope (not its code): the same edges with gradients taken w.r.t. each
    layer's MLP *output vector* ``[pos, d_model]`` instead of the ``[pos, d_sae]`` features,
    and only the active features' pre-activations as targets; a source feature's edge is then
    ``a_s * (grad . W_dec[s])`` (Ameisen et al.'s reading through decoder rows). One batched
    backward of ``[targets, pos, d_model]``. float32, like mechscope."""
    L = model.cfg.n_layers
    names = ["hook_embed", "hook_pos_embed", f"blocks.{L - 1}.hook_resid_post"]
    for layer in range(L):
        names += [f"blocks.{layer}.{n}" for n in ("attn.hook_pattern", "hook_resid_pre",
                  "hook_resid_mid", "ln2.hook_normalized", "hook_mlp_out")]  # fmt: skip
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names=names)

    def std(x, eps):
        x = x - x.mean(-1, keepdim=True)
        return (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()

    kind, lay, pos, idx = result.kind, result.layer, result.pos, result.index
    feats = [i for i, k in enumerate(kind) if k == "feature"]
    targets = feats + [i for i, k in enumerate(kind) if k == "logit"]
    with torch.no_grad():
        acts = [
            tc.encode(cache[f"blocks.{li}.ln2.hook_normalized"][0]) for li, tc in enumerate(tcs)
        ]
    embed = (cache["hook_embed"] + cache["hook_pos_embed"])[0].detach().requires_grad_(True)
    outs = [cache[f"blocks.{li}.hook_mlp_out"][0].detach().requires_grad_(True) for li in range(L)]
    with torch.enable_grad():
        r, vals = embed, []
        for li, (block, tc) in enumerate(zip(model.blocks, tcs, strict=True)):
            at = block.attn
            s1 = std(cache[f"blocks.{li}.hook_resid_pre"][0], block.ln1.eps)
            x = (r - r.mean(-1, keepdim=True)) / s1 * block.ln1.w + block.ln1.b
            v = torch.einsum("pd,hde->hpe", x, at.W_V) + at.b_V[:, None]
            z = torch.einsum("hqk,hke->hqe", cache[f"blocks.{li}.attn.hook_pattern"][0], v)
            r = r + torch.einsum("hqe,hed->qd", z, at.W_O) + at.b_O
            n = (r - r.mean(-1, keepdim=True)) / std(cache[f"blocks.{li}.hook_resid_mid"][0],
                                                      block.ln2.eps)  # fmt: skip
            mine = [i for i in feats if int(lay[i]) == li]
            ps, js = pos[mine], idx[mine]
            vals.append((n[ps] * tc.W_enc[:, js].T).sum(-1) + tc.b_enc[js])
            r = r + outs[li]
        sf = std(cache[f"blocks.{L - 1}.hook_resid_post"][0], model.ln_final.eps)[-1]
        last = (r[-1] - r[-1].mean()) / sf * model.ln_final.w + model.ln_final.b
        logits = last @ model.W_U + model.b_U
        T = torch.cat([*vals, logits[idx[targets[len(feats) :]]]])
        eye = torch.eye(len(T))
        g = torch.autograd.grad(T, [embed, *outs], eye, is_grads_batched=True)
    N = len(kind)
    A = torch.zeros(N, N)
    rows = torch.tensor(targets)
    with torch.no_grad():
        A[rows[:, None], result.nodes_of("embed")[None]] = (g[0] * embed).sum(-1)
        for li, tc in enumerate(tcs):
            src = [i for i in feats if int(lay[i]) == li]
            ps, js = pos[src], idx[src]
            # [targets, sources]: grad at the source's position . its decoder row, times a_s
            read = torch.einsum("tsd,sd->ts", g[1 + li][:, ps], tc.W_dec[js])
            A[rows[:, None], torch.tensor(src)[None]] = read * acts[li][ps, js]
            err = cache[f"blocks.{li}.hook_mlp_out"][0] - tc.decode(acts[li])
            e_nodes = [i for i, k in enumerate(kind) if k == "error" and int(lay[i]) == li]
            A[rows[:, None], torch.tensor(e_nodes)[None]] = (
                g[1 + li][:, pos[e_nodes]] * err[pos[e_nodes]]
            ).sum(-1)
    return A


def peak_rss_reset() -> int | None:
    """Reset the kernel's peak-RSS mark; return the current RSS in bytes (None: not Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status("VmRSS")
    except OSError:
        return None


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def worker(which: str, prompt: str, repeats: int, threads: int) -> dict:
    """One implementation on one prompt, in this (fresh) process."""
    from mechscope.attribution_graph import attribution_graph

    torch.set_num_threads(threads)
    model, tcs = load()
    tokens = model.to_tokens(prompt)
    graph = attribution_graph(model, tcs, tokens)  # the nodes (and targets) both use
    run = {
        "mechscope": lambda: attribution_graph(model, tcs, tokens).adjacency,
        "reference": lambda: reference_graph(model, tcs, tokens, graph),
        "sketch": lambda: residual_seeded(model, tcs, tokens, graph),
    }[which]
    rss0 = peak_rss_reset()
    tracemalloc.start()
    out = run()
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak = None if rss0 is None else _status("VmHWM") - rss0
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = run()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    res = {"wall": statistics.median(wall), "cpu": statistics.median(cpu),
           "rss_peak": rss_peak, "py_peak": py_peak, "n_tokens": tokens.shape[1]}  # fmt: skip
    if which == "reference":
        A, active = out
        g = attribution_graph(model, tcs, tokens)
        feats = g.nodes_of("feature").tolist()
        mine = {(int(g.layer[i]), int(g.pos[i]), int(g.index[i])) for i in feats}
        res |= {
            "max_abs_diff": float((g.adjacency.double() - A).abs().max()),
            "max_abs_edge": float(A.abs().max()),
            "same_feature_set": mine == active,
            "nodes": {k: len(g.nodes_of(k)) for k in ("embed", "feature", "error", "logit")},
            "edges": int((A != 0).sum()),
            "sketch_max_abs_diff": float(
                (residual_seeded(model, tcs, tokens, g).double() - A).abs().max()
            ),
        }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "PROMPT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], PROMPTS[args.worker[1]], args.repeats,
                                args.threads)))  # fmt: skip
        return
    results = {}
    for name in PROMPTS:
        for impl in IMPLS:
            cmd = [sys.executable, __file__, "--worker", impl, name, "--repeats",
                   str(args.repeats), "--threads", str(args.threads)]  # fmt: skip
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            results[f"{name}/{impl}"] = json.loads(done.stdout.strip().splitlines()[-1])
    mib = 2**20
    print(f"attribution graphs on facts-ioi-2l + facts-ioi-2l-tc0/-tc1, {args.threads} thread(s), "
          f"median of {args.repeats} (CPU = process CPU time)")  # fmt: skip
    head = f"{'prompt':<8} {'impl':<10} {'CPU s':>7} {'wall s':>7} {'RSS+ MiB':>9} {'py MiB':>7}"
    print(head)
    for name in PROMPTS:
        for impl in IMPLS:
            r = results[f"{name}/{impl}"]
            rss = "n/a" if r["rss_peak"] is None else f"{r['rss_peak'] / mib:.1f}"
            print(f"{name:<8} {impl:<10} {r['cpu']:>7.3f} {r['wall']:>7.3f} {rss:>9} "
                  f"{r['py_peak'] / mib:>7.2f}")  # fmt: skip
        ms, ref = results[f"{name}/mechscope"], results[f"{name}/reference"]
        print(f"{name:<8} {'ratio':<10} {ref['cpu'] / ms['cpu']:>7.1f} "
              f"{ref['wall'] / ms['wall']:>7.1f}   (reference / mechscope)")  # fmt: skip
        sk = results[f"{name}/sketch"]
        print(f"{name:<8} {'ratio':<10} {ms['cpu'] / sk['cpu']:>7.1f} "
              f"{ms['wall'] / sk['wall']:>7.1f}   (mechscope / sketch; sketch max |edge diff| "
              f"{ref['sketch_max_abs_diff']:.1e})")  # fmt: skip
        print(f"         {ref['n_tokens']} tokens; nodes {ref['nodes']}; {ref['edges']} non-zero "
              f"edges; max |edge diff| {ref['max_abs_diff']:.2e} (largest edge "
              f"{ref['max_abs_edge']:.2f}); same active features: {ref['same_feature_set']}")  # fmt: skip
    r16 = results["ioi-16/mechscope"]
    worst = max(results[f"{n}/reference"]["max_abs_diff"] for n in PROMPTS)
    print(f"goal edges agree to 1e-4: {'PASS' if worst <= 1e-4 else 'FAIL'} ({worst:.1e}); "
          f"goal 16-token prompt <= 5 s CPU: {'PASS' if r16['cpu'] <= 5 else 'FAIL'} "
          f"({r16['cpu']:.3f} s)")  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / "attribution_graph.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
