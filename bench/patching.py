"""Activation patching on a GPT-2-small-sized HF model: mechscope vs TransformerLens' bridge.

Run by hand:  .venv/bin/python bench/patching.py [--vocab 5000] [--threads 1] [--repeats 1]

One randomly initialised ``GPT2LMHeadModel`` (12 layers, d_model 768, 12 heads; built
locally as in bench/hf_cache.py, nothing downloaded). The vocabulary defaults to 5000
(GPT-2's is 50257) to keep the CPU run short: it only changes the size of the unembedding,
which both libraries compute the same way; pass ``--vocab 50257`` for the real size.

A 20-token clean prompt (random ids) and a corrupted prompt differing in one token; the
metric is the logit difference ``logits[-1, answer] - logits[-1, wrong]`` (not normalised:
both libraries return the patched metric per site, so the values compare like with like;
TL's metric returns a scalar, mechscope's ``logit_diff`` a ``[batch]`` tensor it averages,
with batch 1 these are the same number).

Denoising (clean activations into the corrupted run), sites:

==================  ==============================================  ==========================
mechscope site      TransformerLens 4.x                             values
==================  ==============================================  ==========================
resid_pre           patching.get_act_patch_resid_pre                [layer, pos] = [12, 20]
z                   patching.get_act_patch_attn_head_out_all_pos    [layer, head] = [12, 12]
mlp_out             patching.get_act_patch_mlp_out                  [layer, pos] = [12, 20]
==================  ==============================================  ==========================

Booting the bridge replaces the HF model's submodules in place, so mechscope runs on a deep
copy taken *before* the boot (same weights). One torch thread for both; a warm-up (a
forward, a cached run and a small sweep of each library) is excluded from the times. Each
timed call includes the library's clean cached run (TL: ``bridge.run_with_cache(clean)``;
mechscope does its own inside ``activation_patch``). TL runs under ``torch.no_grad()``
(its sweep does not turn grad off itself; this is the faster way to call it).

Where the speed comes from (see ``mechscope.patching``): TL runs one full forward pass per
patch; mechscope batches the patched copies, starts each at its patched block and position
(blocks and positions before it are the target run's, keys and values through HF's
``past_key_values``), skips patches that change nothing (before the first differing token,
or writing what is already there), and unembeds only the positions the metric reads.

Also times ``mechscope.attribution_patch_sites`` (the three sites from one forward and one
backward pass) and reports its Pearson correlation with exact patching
(``mechscope.compare_to_exact``). Writes bench/out/patching.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may touch the network
os.environ.setdefault("TQDM_DISABLE", "1")  # TL's sweep prints a progress bar per call

import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from hf_cache import build  # noqa: E402  (same locally built model and tokenizer)

OUT = HERE / "out"
SITES = {  # mechscope site -> TransformerLens function name
    "resid_pre": "get_act_patch_resid_pre",
    "z": "get_act_patch_attn_head_out_all_pos",
    "mlp_out": "get_act_patch_mlp_out",
}


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--pos", type=int, default=20)
    ap.add_argument("--corrupt-pos", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from transformer_lens import patching as tlp
    from transformer_lens.model_bridge import TransformerBridge

    import mechscope
    import mechscope.metrics

    model, tok, folder = build(12, args.vocab, args.seed)
    twin = copy.deepcopy(model)  # before the boot: mechscope runs on this one
    ms = mechscope.wrap(twin, tok)
    bridge = TransformerBridge.boot_transformers(str(folder), hf_model=model, tokenizer=tok)

    gen = torch.Generator().manual_seed(args.seed)
    clean = torch.randint(0, args.vocab - 1, (1, args.pos), generator=gen)
    corrupted = clean.clone()
    corrupted[0, args.corrupt_pos] = (clean[0, args.corrupt_pos] + 1) % (args.vocab - 1)
    with torch.no_grad():
        lc, lx = (
            twin(clean, use_cache=False).logits[0, -1],
            twin(corrupted, use_cache=False).logits[0, -1],
        )
    # Answer = the token the clean run favours most over the corrupted run, wrong = the reverse.
    answer, wrong = int((lc - lx).argmax()), int((lc - lx).argmin())
    ms_metric = mechscope.metrics.logit_diff(answer, wrong)

    def tl_metric(logits):
        return ms_metric(logits).mean()

    with torch.no_grad():
        clean_v = ms_metric(ms(clean)).item()
        corrupted_v = ms_metric(ms(corrupted)).item()
        tl_clean_v = tl_metric(bridge(clean)).item()
    print(
        f"GPT-2-small-sized random init: 12 layers, d_model 768, 12 heads, vocab {args.vocab}; "
        f"{args.pos}-token prompts differing at position {args.corrupt_pos}; torch threads "
        f"{args.threads}; median of {args.repeats} timed run(s)\n"
        f"metric: logit diff at the last position, answer {answer} vs wrong {wrong}: clean "
        f"{clean_v:.4f} (TL bridge {tl_clean_v:.4f}), corrupted {corrupted_v:.4f}",
        flush=True,
    )

    def tl_run(site):
        fn = getattr(tlp, SITES[site])

        def run():
            with torch.no_grad():
                _, cache = bridge.run_with_cache(clean)
                return fn(bridge, corrupted, cache, tl_metric)

        return run

    def ms_run(site):
        return lambda: mechscope.activation_patch(ms, clean, corrupted, ms_metric, site=site)

    # Warm-up (excluded): forwards, cached runs, a short sweep of each library.
    with torch.no_grad():
        for _ in range(2):
            bridge.run_with_cache(clean)
            ms.run_with_cache(clean)
            ms(corrupted.repeat(args.pos, 1))
        _, warm_cache = bridge.run_with_cache(clean)
        tlp.get_act_patch_resid_pre(bridge, corrupted[:, :3], warm_cache, lambda x: x[0, -1, 0])
    mechscope.activation_patch(ms, clean[:, :3], corrupted[:, :3], ms_metric, site="z")
    mechscope.attribution_patch(ms, clean, corrupted, ms_metric, site="resid_pre")

    rows, exact = [], {}
    for site, tl_name in SITES.items():
        tl_s, tl_all, tl_vals = timed(tl_run(site), args.repeats)
        ms_s, ms_all, res = timed(ms_run(site), args.repeats)
        exact[site] = res
        diff = (res.values - tl_vals.float().cpu()).abs().max().item()
        rows.append(
            {
                "site": site,
                "tl_function": tl_name,
                "shape": list(res.values.shape),
                "n_patches": res.values.numel(),
                "tl_s": tl_s,
                "ms_s": ms_s,
                "speedup": tl_s / ms_s,
                "max_abs_diff": diff,
                "value_range": [res.values.min().item(), res.values.max().item()],
                "tl_s_all": tl_all,
                "ms_s_all": ms_all,
            }
        )
        print(
            f"  {site}: TL {tl_s:.2f} s, mechscope {ms_s:.2f} s, max|diff| {diff:.2e}", flush=True
        )

    attr_s, attr_all, attr = timed(
        lambda: mechscope.patching_attr.attribution_patch_sites(
            ms, clean, corrupted, ms_metric, list(SITES)
        ),
        args.repeats,
    )
    attr_cmp = {s: mechscope.compare_to_exact(attr[s], exact[s]) for s in SITES}

    tl_tot, ms_tot = sum(r["tl_s"] for r in rows), sum(r["ms_s"] for r in rows)
    print()
    head = (
        f"{'site':<10}| {'TL function':<36}| {'values':<8}| {'TL s':>7} | {'mechscope s':>11} | "
        f"{'TL/ms':>6} | {'max|diff|':>9} | {'attr pearson':>12}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        print(
            f"{r['site']:<10}| {r['tl_function']:<36}| {shape:<8}| {r['tl_s']:>7.2f} | "
            f"{r['ms_s']:>11.2f} | {r['speedup']:>6.2f} | {r['max_abs_diff']:>9.2e} | "
            f"{attr_cmp[r['site']]['pearson']:>12.4f}"
        )
    worst = max(r["max_abs_diff"] for r in rows)
    print(
        f"{'total':<10}| {'':<36}| {'':<8}| {tl_tot:>7.2f} | {ms_tot:>11.2f} | "
        f"{tl_tot / ms_tot:>6.2f} | {worst:>9.2e} |"
    )
    print(
        f"attribution patching (3 sites, one forward + one backward): {attr_s:.3f} s = "
        f"{tl_tot / attr_s:.0f}x faster than TL exact, {ms_tot / attr_s:.0f}x faster than "
        "mechscope exact"
    )
    goal = tl_tot / ms_tot >= 10 and worst <= 1e-4
    print(
        f"goal (>= 10x faster than TL, max|diff| <= 1e-4): "
        f"{'MET' if goal else 'NOT MET'} ({tl_tot / ms_tot:.2f}x, {worst:.1e})"
    )

    OUT.mkdir(exist_ok=True)
    path = OUT / "patching.json"
    path.write_text(
        json.dumps(
            {
                "model": f"GPT2LMHeadModel random init, 12 layers, d_model 768, 12 heads, "
                f"vocab {args.vocab}",
                "pos": args.pos,
                "corrupt_pos": args.corrupt_pos,
                "direction": "denoising",
                "metric": {
                    "answer": answer,
                    "wrong": wrong,
                    "clean": clean_v,
                    "corrupted": corrupted_v,
                },
                "threads": args.threads,
                "repeats": args.repeats,
                "torch": torch.__version__,
                "platform": platform.platform(),
                "tl_runs_under_no_grad": True,
                "rows": rows,
                "total": {
                    "tl_s": tl_tot,
                    "ms_s": ms_tot,
                    "speedup": tl_tot / ms_tot,
                    "max_abs_diff": worst,
                    "goal_met": goal,
                },
                "attribution": {"s": attr_s, "s_all": attr_all, "compare_to_exact": attr_cmp},
            },
            indent=1,
        )
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
