"""Integrated gradients: mechscope vs Captum's LayerIntegratedGradients, in one process.

Run by hand:  .venv/bin/python bench/attribution.py [--vocab 5000] [--threads 1] [--repeats 3]
(needs ``pip install captum``; it is in the ``bench`` extra.)

Two models, the same inputs, step count and quadrature (Gauss-Legendre, Captum's default)
for both libraries:

* ``gpt2-small-size``: a randomly initialised ``GPT2LMHeadModel`` (12 layers, d_model 768,
  12 heads; built locally as in bench/hf_cache.py, nothing downloaded), wrapped with
  ``mechscope.wrap``. Captum attributes to the token-embedding layer
  (``transformer.wte``); mechscope to ``hook_embed``, the same tensor.
* ``induction-2l``: the zoo's 2-layer attention-only model (mechscope's ``Transformer``);
  Captum attributes to its ``hook_embed`` module.

Inputs: ``--batch`` prompts of ``--pos`` random tokens; the metric is the logit
difference at the last position between two fixed tokens; the baseline is a pad token at
every position (Captum: baseline token ids, whose embeddings its layer hook reads;
mechscope: ``baseline=pad_id``). Both report completeness (Captum with
``return_convergence_delta=True``); neither chunks the steps (Captum
``internal_batch_size=None``, mechscope ``batch_size=None``). Captum's forward function
calls the HF model with ``use_cache=False`` (no KV cache; the faster way to call it).

Reported per model: median time of ``--repeats`` runs after a warm-up (the libraries
alternate; process CPU time on a CPU, wall time on a GPU; both are in the JSON), the ratio
Captum / mechscope (> 1: mechscope faster), the max |difference| of the per-dimension
attributions ``[batch, pos, d_model]`` and of the per-token sums, and each library's
completeness error. Goal: max |diff| <= 1e-4 and mechscope at least as fast.
Writes bench/out/attribution.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may touch the network

import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from hf_cache import build  # noqa: E402  (same locally built model and tokenizer)

OUT = HERE / "out"


def timed(fn, repeats: int):
    """Median wall and process-CPU seconds of ``repeats`` calls, and the last result.

    On a shared CPU machine wall time swings with the other processes' load; process CPU
    time (``time.process_time``, all threads of this process) does not, so the goal line
    uses it on CPU and wall time on a GPU.
    """
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu), wall, cpu, out


def compare(name, ms_model, forward_ids, layer, tokens, pad, answer, wrong, args):
    """Time and compare one model. forward_ids: ids -> logits (for Captum)."""
    from captum.attr import LayerIntegratedGradients

    import mechscope.attribution as msa
    from mechscope.metrics import logit_diff

    metric = logit_diff(answer, wrong)

    def captum_forward(ids):
        return metric(forward_ids(ids))  # [rows]

    lig = LayerIntegratedGradients(captum_forward, layer)
    base_ids = torch.full_like(tokens, pad)

    def run_captum():
        return lig.attribute(
            tokens,
            baselines=base_ids,
            n_steps=args.steps,
            method="gausslegendre",
            internal_batch_size=None,
            return_convergence_delta=True,
        )

    def run_ms():
        return msa.integrated_gradients(
            ms_model, tokens, metric, baseline=pad, steps=args.steps, method="gausslegendre"
        )

    run_captum(), run_ms()  # warm-up (excluded)
    # Alternate the two libraries so a change in the machine's load hits both alike.
    c_w, c_c, m_w, m_c = [], [], [], []
    for _ in range(args.repeats):
        _, _, cw, cc, (c_attr, c_delta) = timed(run_captum, 1)
        _, _, mw, mc, res = timed(run_ms, 1)
        c_w, c_c, m_w, m_c = c_w + cw, c_c + cc, m_w + mw, m_c + mc
    on_cpu = tokens.device.type == "cpu"
    med = statistics.median
    c_s, m_s = (med(c_c), med(m_c)) if on_cpu else (med(c_w), med(m_w))
    c_attr = c_attr.detach().float().cpu()
    per_dim = res.per_dim.float().cpu()
    diff = (c_attr - per_dim).abs().max().item()
    diff_tok = (c_attr.sum(-1) - res.attributions.float().cpu()).abs().max().item()
    gap = (res.f_input - res.f_baseline).abs().float().cpu()
    c_err = (c_delta.detach().float().cpu().abs() / gap).max().item()
    row = {
        "model": name,
        "batch": tokens.shape[0],
        "pos": tokens.shape[1],
        "steps": args.steps,
        "clock": "process CPU time" if on_cpu else "wall time",
        "captum_s": c_s,
        "ms_s": m_s,
        "speedup": c_s / m_s,
        "captum_wall_s": med(c_w),
        "ms_wall_s": med(m_w),
        "wall_speedup": med(c_w) / med(m_w),
        "max_abs_diff": diff,
        "max_abs_diff_per_token": diff_tok,
        "attr_range": [per_dim.min().item(), per_dim.max().item()],
        "f_input": res.f_input.tolist(),
        "f_baseline": res.f_baseline.tolist(),
        "ms_completeness_error": res.completeness_error.max().item(),
        "captum_completeness_error": c_err,
        "captum_wall_all": c_w,
        "ms_wall_all": m_w,
        "captum_cpu_all": c_c,
        "ms_cpu_all": m_c,
    }
    print(
        f"  {name}: Captum {c_s:.3f} s, mechscope {m_s:.3f} s ({row['clock']}; wall "
        f"{med(c_w):.3f} / {med(m_w):.3f} s), max|diff| {diff:.2e}",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--pos", type=int, default=20)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    import captum

    import mechscope

    gen = torch.Generator().manual_seed(args.seed)
    rows = []

    # GPT-2-small-sized HF model.
    hf, tok, _ = build(12, args.vocab, args.seed)
    hf = hf.to(dev)
    ms = mechscope.wrap(hf, tok)
    tokens = torch.randint(0, args.vocab - 1, (args.batch, args.pos), generator=gen).to(dev)
    rows.append(
        compare(
            "gpt2-small-size (HF, wrapped)",
            ms,
            lambda ids: hf(input_ids=ids, use_cache=False).logits,
            hf.transformer.wte,
            tokens,
            tok.pad_token_id,
            answer=1,
            wrong=2,
            args=args,
        )
    )

    # The zoo's induction model (mechscope's own Transformer).
    ind = mechscope.load("induction-2l").to(dev)
    v = ind.cfg.d_vocab
    half = torch.randint(1, v, (args.batch, args.pos // 2), generator=gen)
    tokens = torch.cat([half, half], 1).to(dev)
    rows.append(compare("induction-2l (zoo)", ind, ind, ind.hook_embed, tokens, 0, 3, 4, args))

    print()
    head = (
        f"{'model':<30}| {'Captum s':>9} | {'mechscope s':>11} | {'Captum/ms':>9} | "
        f"{'max|diff|':>9} | {'per token':>9} | {'compl. err ms / Captum':>22}"
    )
    print(
        f"integrated gradients, {args.steps} Gauss-Legendre steps, batch {args.batch} x "
        f"{args.pos} tokens, pad baseline; device {dev}, torch threads {args.threads}, "
        f"median of {args.repeats} alternated runs; captum {captum.__version__}, torch {torch.__version__}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['model']:<30}| {r['captum_s']:>9.3f} | {r['ms_s']:>11.3f} | "
            f"{r['speedup']:>9.2f} | {r['max_abs_diff']:>9.2e} | "
            f"{r['max_abs_diff_per_token']:>9.2e} | "
            f"{r['ms_completeness_error']:>9.1e} / {r['captum_completeness_error']:.1e}"
        )
    print(
        f"times: {rows[0]['clock']} (wall-clock ratios: "
        + ", ".join(f"{r['model']} {r['wall_speedup']:.2f}x" for r in rows)
        + ")"
    )
    worst = max(r["max_abs_diff"] for r in rows)
    slowest = min(r["speedup"] for r in rows)
    goal = worst <= 1e-4 and slowest >= 1.0
    print(
        f"goal (max|diff| <= 1e-4, at least Captum's speed): {'MET' if goal else 'NOT MET'} "
        f"(max|diff| {worst:.1e}, slowest ratio {slowest:.2f}x)"
    )

    OUT.mkdir(exist_ok=True)
    path = OUT / "attribution.json"
    path.write_text(
        json.dumps(
            {
                "method": "integrated gradients, gausslegendre",
                "steps": args.steps,
                "baseline": "pad token at every position",
                "metric": "logit difference at the last position",
                "device": str(dev),
                "threads": args.threads,
                "repeats": args.repeats,
                "torch": torch.__version__,
                "captum": captum.__version__,
                "platform": platform.platform(),
                "vocab": args.vocab,
                "rows": rows,
                "goal_met": goal,
                "max_abs_diff": worst,
                "slowest_speedup": slowest,
            },
            indent=1,
        )
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
