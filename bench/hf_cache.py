"""Cached runs on a GPT-2-small-sized HF model: plain HF vs mechscope vs TransformerLens' bridge.

Run by hand:  .venv/bin/python bench/hf_cache.py [--repeats 5] [--threads 1] [--vocab 50257]

One randomly initialised ``GPT2LMHeadModel`` (12 layers, d_model 768, 12 heads; built
locally, nothing downloaded) and one fixed batch of random token ids. For three name
sets (every ``attn.hook_pattern``, every ``hook_resid_post``, every hook point) it
measures, in one process and interleaved round by round so that load from other
processes hits every variant alike:

- plain HF forward (``eval``, ``no_grad``, ``use_cache=False``) with sdpa and eager attention;
- ``mechscope.wrap(model, tok).run_with_cache(tokens, names=...)``, as called (grad mode
  on, what a user gets by default) and inside ``torch.no_grad()``;
- ``TransformerBridge.boot_transformers(dir, hf_model=model, tokenizer=tok)`` and its
  ``run_with_cache(tokens, names_filter=...)``, the same two ways.

Booting the bridge replaces the HF model's submodules *in place* (e.g. ``h[i].attn``
becomes a ``JointQKVAttentionBridge``) and forces eager attention, so after the boot the
instance no longer runs plain HF code and mechscope's hooks on it would see nothing.
Hence: the parity reference is taken with mechscope on the instance before the boot; a
deep copy (same weights, same modules) is taken before the boot too, and the timed
plain-HF and mechscope runs use that copy while the bridge runs on the original, all
interleaved round by round. Time is reported as wall time and as process CPU time (one
thread: CPU time is less disturbed by other processes on a shared machine).

Memory: bytes of the cached tensors (unique storages: the bridge stores every activation
under two names that share a tensor) against the theoretical size of the requested
activations (numel x 4 bytes from the DESIGN.md shapes), and the peak RSS increase during
the call (VmHWM after the call minus VmRSS before it; VmHWM is reset before each call via
/proc/self/clear_refs). Writes bench/out/hf_cache.json.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may touch the network

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

OUT = Path(__file__).resolve().parent / "out"
NAME_SETS = ("pattern", "resid_post", "all")


# ---- model and tokenizer, built locally ---------------------------------------------


def build(n_layer: int, vocab: int, seed: int):
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers

    cfg = tf.GPT2Config(n_layer=n_layer, n_embd=768, n_head=12, vocab_size=vocab)
    torch.manual_seed(seed)
    model = tf.GPT2LMHeadModel._from_config(cfg, attn_implementation="sdpa").eval()
    # A word-level tokenizer over the model's vocabulary: the benchmark feeds token ids, but
    # the bridge needs a tokenizer that save_pretrained/from_pretrained round-trips.
    eot = "<|endoftext|>"
    words = {f"w{i}": i for i in range(vocab - 1)} | {eot: vocab - 1}
    tk = Tokenizer(models.WordLevel(words, unk_token=eot))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = tf.PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token=eot, eos_token=eot, unk_token=eot, pad_token=eot
    )
    folder = Path(tempfile.mkdtemp(prefix="mechscope_bench_gpt2_"))
    cfg.save_pretrained(folder)
    tok.save_pretrained(folder)
    tok = tf.AutoTokenizer.from_pretrained(folder)  # sets name_or_path, which the bridge reads
    return model, tok, folder


def theoretical_bytes(names: list[str], batch: int, pos: int, cfg) -> int:
    """Size of the requested activations at their DESIGN.md shapes, float32."""
    d, h, dh, dm = cfg.n_embd, cfg.n_head, cfg.n_embd // cfg.n_head, 4 * cfg.n_embd
    per_tok = {
        "hook_attn_scores": h * pos,  # [batch, head, q, k] = per query position: head * key
        "hook_pattern": h * pos,
        "hook_q": h * dh,
        "hook_k": h * dh,
        "hook_v": h * dh,
        "hook_z": h * dh,
        "hook_pre": dm,
        "hook_post": dm,
        "hook_scale": 1,
    }
    return sum(batch * pos * per_tok.get(n.rsplit(".", 1)[-1], d) * 4 for n in names)


def storage_bytes(tensors) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


# ---- measuring one call ------------------------------------------------------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


_LIBC = ctypes.CDLL("libc.so.6") if platform.system() == "Linux" else None


def measure(fn) -> dict:
    """Run ``fn()`` once: wall time, peak RSS increase, bytes of what it cached."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)  # hand freed arenas back so the RSS before the call is honest
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    rss0 = _status_kb("VmRSS")
    c0, t0 = time.process_time(), time.perf_counter()
    out, cache = fn()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _status_kb("VmHWM") - rss0
    cached = storage_bytes(cache.values()) if cache is not None else 0
    del out, cache
    return {"s": dt, "cpu_s": cpu, "peak_rss_mb": peak / 1024, "cached_mb": cached / 2**20}


# ---- the variants --------------------------------------------------------------------


def hf_forward(model, tokens, impl: str):
    def run():
        model.set_attn_implementation(impl)
        with torch.no_grad():
            return model(input_ids=tokens, use_cache=False).logits, None

    return run


def ms_cached(model, ms, tokens, names, grad: bool):
    def run():
        model.set_attn_implementation("sdpa")  # the user's model as loaded
        ctx = contextlib.nullcontext() if grad else torch.no_grad()
        with ctx:
            return ms.run_with_cache(tokens, names=names)

    return run


def tl_cached(bridge, tokens, names, grad: bool):
    def run():
        ctx = contextlib.nullcontext() if grad else torch.no_grad()
        with ctx:
            return bridge.run_with_cache(tokens, names_filter=names)

    return run


def tl_forward(bridge, tokens):
    def run():
        with torch.no_grad():
            return bridge(tokens), None

    return run


def interleaved(variants: dict, repeats: int, warmup: int) -> dict[str, list[dict]]:
    for fn in variants.values():
        for _ in range(warmup):
            measure(fn)
    results: dict[str, list[dict]] = {k: [] for k in variants}
    for r in range(repeats):
        for key, fn in variants.items():
            results[key].append(measure(fn))
        print(f"  round {r + 1}/{repeats} done", flush=True)
    return results


def med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


# ---- main -------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--pos", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from transformer_lens.model_bridge import TransformerBridge

    import mechscope

    model, tok, folder = build(args.layers, args.vocab, args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    tokens = torch.randint(0, args.vocab, (args.batch, args.pos), generator=gen)

    # Parity reference: mechscope on the very instance the bridge will boot on (sdpa, no grad).
    ms_same = mechscope.wrap(model, tok)
    all_names = ms_same.hook_names()
    name_sets = {
        "pattern": [n for n in all_names if n.endswith("attn.hook_pattern")],
        "resid_post": [n for n in all_names if n.endswith("hook_resid_post")],
        "all": all_names,
    }
    print(
        f"GPT-2-small-sized random init: {args.layers} layers, d_model 768, 12 heads, vocab "
        f"{args.vocab}; batch {args.batch} x {args.pos}; torch threads {args.threads}; "
        f"{len(all_names)} hook points; {args.repeats} rounds",
        flush=True,
    )
    with torch.no_grad():
        _, ref_cache = ms_same.run_with_cache(tokens, names=all_names)
        ref_logits = model(input_ids=tokens, use_cache=False).logits
    ref = {n: ref_cache[n].clone() for n in all_names}
    del ref_cache, ms_same

    twin = copy.deepcopy(model)  # untouched by the boot: plain HF and mechscope run on it
    ms = mechscope.wrap(twin, tok)
    t0 = time.perf_counter()
    bridge = TransformerBridge.boot_transformers(str(folder), hf_model=model, tokenizer=tok)
    boot_s = time.perf_counter() - t0
    mutated = type(model.transformer.h[0].attn).__name__

    variants = {
        "hf_sdpa": hf_forward(twin, tokens, "sdpa"),
        "hf_eager": hf_forward(twin, tokens, "eager"),
        "tl_forward": tl_forward(bridge, tokens),
    }
    for s, names in name_sets.items():
        for grad in ("grad", "nograd"):
            variants[f"ms_{s}_{grad}"] = ms_cached(twin, ms, tokens, names, grad=grad == "grad")
            variants[f"tl_{s}_{grad}"] = tl_cached(bridge, tokens, names, grad=grad == "grad")
    results = interleaved(variants, args.repeats, args.warmup)

    # Parity: the bridge's activations against mechscope's reference, name by name.
    with torch.no_grad():
        tl_logits, tl_cache = bridge.run_with_cache(tokens, names_filter=all_names)
    diffs = {
        s: max((tl_cache[n] - ref[n]).abs().max().item() for n in names)
        for s, names in name_sets.items()
    }
    diffs["logits"] = (tl_logits - ref_logits).abs().max().item()
    del tl_cache

    report(args, name_sets, model.config, results, diffs, boot_s, mutated)


def report(args, name_sets, cfg, res, diffs, boot_s, mutated) -> None:
    rows = []
    hf, he = med(res["hf_sdpa"], "s"), med(res["hf_eager"], "s")
    hfc, hec = med(res["hf_sdpa"], "cpu_s"), med(res["hf_eager"], "cpu_s")
    hf_peak = med(res["hf_sdpa"], "peak_rss_mb")
    tlf = med(res["tl_forward"], "s")
    print()
    print(
        f"HF forward (no_grad), median: sdpa {hf:.3f} s wall / {hfc:.3f} s CPU; eager {he:.3f} s "
        f"wall / {hec:.3f} s CPU; peak RSS +{hf_peak:.0f} MB (logits alone: "
        f"{args.batch * args.pos * args.vocab * 4 / 2**20:.0f} MB)"
    )
    print(
        f"TL bridge: boot {boot_s:.2f} s; it replaced h[0].attn of the HF model by {mutated}; "
        f"its forward without hooks {tlf:.3f} s = {tlf / he:.2f}x HF eager"
    )
    print()
    head = (
        f"{'name set':<11}| {'grad':<6}| {'metric':<24}| {'HF sdpa':>8} | {'HF eager':>8} | "
        f"{'mechscope':>9} | {'TL bridge':>9} | {'ms/HFsdpa':>9} | {'ms/HFeag':>8} | "
        f"{'TL/HFeag':>8} | {'ms/TL':>6}"
    )
    print(head)
    print("-" * len(head))

    def line(label, metric, h, e, m, t, base_s, base_e, fmt):
        print(
            f"{label}{metric:<24}| {h:>8{fmt}} | {e:>8{fmt}} | {m:>9{fmt}} | {t:>9{fmt}} | "
            f"{m / base_s:>9.2f} | {m / base_e:>8.2f} | {t / base_e:>8.2f} | {m / t:>6.2f}"
        )

    for s, names in name_sets.items():
        theo = theoretical_bytes(names, args.batch, args.pos, cfg) / 2**20
        for grad in ("grad", "nograd"):
            m, t = res[f"ms_{s}_{grad}"], res[f"tl_{s}_{grad}"]
            row = {
                "name_set": s,
                "n_names": len(names),
                "grad_mode": grad == "grad",
                "hf_sdpa_s": hf,
                "hf_eager_s": he,
                "ms_s": med(m, "s"),
                "tl_s": med(t, "s"),
                "hf_sdpa_cpu_s": hfc,
                "hf_eager_cpu_s": hec,
                "ms_cpu_s": med(m, "cpu_s"),
                "tl_cpu_s": med(t, "cpu_s"),
                "theoretical_mb": theo,
                "ms_cached_mb": med(m, "cached_mb"),
                "tl_cached_mb": med(t, "cached_mb"),
                "hf_peak_rss_mb": hf_peak,
                "ms_peak_rss_mb": med(m, "peak_rss_mb"),
                "tl_peak_rss_mb": med(t, "peak_rss_mb"),
                "max_abs_diff_tl_vs_ms": diffs[s],
            }
            row["ms_over_hf_sdpa"] = row["ms_s"] / hf
            row["ms_over_hf_eager"] = row["ms_s"] / he
            row["tl_over_hf_eager"] = row["tl_s"] / he
            row["ms_cpu_over_hf_sdpa"] = row["ms_cpu_s"] / hfc
            row["tl_cpu_over_hf_eager"] = row["tl_cpu_s"] / hec
            rows.append(row)
            label = f"{s:<11}| {grad:<6}| "
            line(label, "wall s (median)", hf, he, row["ms_s"], row["tl_s"], hf, he, ".3f")
            line(
                label, "CPU s (median)", hfc, hec, row["ms_cpu_s"], row["tl_cpu_s"], hfc, hec, ".3f"
            )
            print(
                f"{label}{'cached MB':<24}| {'theory':>8} | {theo:>8.1f} | "
                f"{row['ms_cached_mb']:>9.1f} | {row['tl_cached_mb']:>9.1f} | "
                f"{row['ms_cached_mb'] / theo:>9.2f} |"
            )
            need = hf_peak + theo
            print(
                f"{label}{'peak RSS +MB (HF+theory)':<24}| {hf_peak:>8.0f} | {need:>8.0f} | "
                f"{row['ms_peak_rss_mb']:>9.0f} | {row['tl_peak_rss_mb']:>9.0f} | "
                f"{row['ms_peak_rss_mb'] / need:>9.2f} | {'':>8} | "
                f"{row['tl_peak_rss_mb'] / need:>8.2f} |"
            )
        print(f"{s:<11}| parity: max |TL bridge - mechscope| = {diffs[s]:.2e}")
    print(f"logits: max |TL bridge - HF| = {diffs['logits']:.2e}")
    print("(peak RSS row: the ratio columns divide by HF's peak + the theoretical cache size)")
    OUT.mkdir(exist_ok=True)
    path = OUT / "hf_cache.json"
    path.write_text(
        json.dumps(
            {
                "model": f"GPT2LMHeadModel random init, {args.layers} layers, d_model 768, "
                f"12 heads, vocab {args.vocab}",
                "batch": args.batch,
                "pos": args.pos,
                "threads": args.threads,
                "repeats": args.repeats,
                "torch": torch.__version__,
                "platform": platform.platform(),
                "bridge_boot_s": boot_s,
                "bridge_replaced_attention_with": mutated,
                "tl_forward_s": tlf,
                "max_abs_diff": diffs,
                "rows": rows,
                "raw": res,
            },
            indent=1,
        )
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
