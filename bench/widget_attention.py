"""AttentionPatterns vs CircuitsVis attention_heads, at GPT-2-small size (12 x 12 heads, 128 tokens).

Run by hand:  .venv/bin/python bench/widget_attention.py [--cap 300] [--repeats 5]

Measures, on one seeded causal-softmax attention tensor:
  1. output size: mechscope's widget state (JSON incl. ESM+CSS, plus raw buffers) vs the
     HTML string CircuitsVis produces (its offline path, with iife.js inlined);
  2. first paint in headless Chromium (offline: non-loopback requests blocked and counted),
     from navigation start until the widget's root has rendered content.
Prints metric | circuitsvis | mechscope | ratio, and writes bench/out/widget_attention.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import _harness  # noqa: E402

from mechscope.widgets import AttentionPatterns  # noqa: E402

N_LAYERS, N_HEADS, N_TOKENS, SEED = 12, 12, 128, 0

# "Rendered" for each side: every head drawn. mechscope sets data-rendered once the
# thumbnails, focused heatmap and token strip are drawn. CircuitsVis draws each head with
# Chart.js into its own <canvas>: 144 thumbnails + 1 zoomed head.
MS_RENDERED = "document.querySelector('.ms-attention[data-rendered=\"true\"]')"
CV_RENDERED = (
    "(() => { const r = document.querySelector('[id^=\"circuits-vis-\"]');"
    f" return r && r.querySelectorAll('canvas').length >= {N_LAYERS * N_HEADS + 1}; }})()"
)


def attention_tensor() -> torch.Tensor:
    """[layer, head, q, k] causal softmax of seeded Gaussian scores."""
    g = torch.Generator().manual_seed(SEED)
    scores = torch.randn(N_LAYERS, N_HEADS, N_TOKENS, N_TOKENS, generator=g) * 2
    mask = torch.ones(N_TOKENS, N_TOKENS, dtype=torch.bool).triu(1)
    return scores.masked_fill(mask, float("-inf")).softmax(-1)


def tokens() -> list[str]:
    words = "the quick brown fox jumps over a lazy dog while".split()
    return ["<|endoftext|>"] + [f" {words[i % len(words)]}" for i in range(N_TOKENS - 1)]


def circuitsvis_html(attn: torch.Tensor, toks: list[str]) -> tuple[str, str]:
    """CircuitsVis's offline HTML for all 144 heads, and which render path produced it."""
    import circuitsvis.attention

    heads = attn.reshape(N_LAYERS * N_HEADS, N_TOKENS, N_TOKENS)  # layers concatenated
    names = [f"L{layer}H{head}" for layer in range(N_LAYERS) for head in range(N_HEADS)]
    rendered = circuitsvis.attention.attention_heads(
        attention=heads, tokens=toks, attention_head_names=names
    )
    # str(rendered) / show_code() import from unpkg.com, and _repr_html_() probes
    # http://google.com before choosing. local_src inlines the packaged dist/cdn/iife.js.
    cdn = str(rendered)
    path = "local_src (inlined circuitsvis/dist/cdn/iife.js)"
    if "unpkg.com" in cdn:
        path += "; default str()/show_code() HTML imports from https://unpkg.com (CDN)"
    return rendered.local_src, path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cap", type=float, default=300.0, help="seconds to wait for CircuitsVis")
    ap.add_argument("--repeats", type=int, default=5, help="mechscope first-paint runs (median)")
    ap.add_argument("--skip-circuitsvis-paint", action="store_true")
    args = ap.parse_args()

    out = _harness.OUT / "widget_attention"
    attn, toks = attention_tensor(), tokens()

    # ---- sizes ----------------------------------------------------------------------------
    t0 = time.perf_counter()
    widget = AttentionPatterns(attn, toks, title="bench: 12 layers x 12 heads x 128 tokens")
    build_ms = (time.perf_counter() - t0) * 1000
    payload = _harness.widget_payload(widget)
    esm_css = len(payload.state["_esm"].encode()) + len(payload.state["_css"].encode())

    t0 = time.perf_counter()
    cv_html, cv_path = circuitsvis_html(attn, toks)
    cv_build_ms = (time.perf_counter() - t0) * 1000
    cv_bytes = len(cv_html.encode())

    # ---- first paint ------------------------------------------------------------------------
    esm_path = Path(__file__).resolve().parents[1] / "src/mechscope/widgets/static/attention.js"
    css_path = esm_path.with_suffix(".css")
    ms_folder = out / "mechscope"
    _harness.stage_widget(ms_folder, esm_path, css_path, payload)
    ms_runs: list[_harness.PaintResult] = []
    with _harness.serve(ms_folder) as url:
        for i in range(args.repeats):
            shot = out / "mechscope.png" if i == 0 else None
            ms_runs.append(
                _harness.first_paint(
                    url, rendered_js=MS_RENDERED, harness=True, cap_s=60, screenshot=shot
                )
            )
    for r in ms_runs:
        if r.ms is None:
            raise SystemExit(f"mechscope did not render: {r.error}\n{r.console_errors}")
    ms_paint = statistics.median(r.ms for r in ms_runs)

    cv_folder = out / "circuitsvis"
    cv_folder.mkdir(parents=True, exist_ok=True)
    (cv_folder / "index.html").write_text(
        f'<!doctype html><html><head><meta charset="utf-8"></head><body>{cv_html}</body></html>',
        encoding="utf-8",
    )
    if args.skip_circuitsvis_paint:
        cv_run = _harness.PaintResult(None, [], "skipped")
    else:
        with _harness.serve(cv_folder) as url:
            cv_run = _harness.first_paint(
                url, rendered_js=CV_RENDERED, cap_s=args.cap, screenshot=out / "circuitsvis.png"
            )

    # ---- report ------------------------------------------------------------------------------
    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.1f}x" if a and b else "n/a"

    cv_paint_txt = (
        f"{cv_run.ms:.0f}" if cv_run.ms is not None else f">{args.cap:.0f} s ({cv_run.error})"
    )
    rows = [
        (
            "output size, bytes (raw)",
            f"{cv_bytes:,}",
            f"{payload.raw_bytes:,}",
            ratio(cv_bytes, payload.raw_bytes),
        ),
        ("  of which data buffers", "-", f"{payload.buffer_bytes:,} ({widget.dtype})", ""),
        ("  of which JSON state (incl. ESM+CSS)", "-", f"{payload.json_bytes:,} ({esm_css:,})", ""),
        (
            "saved-notebook size (base64 buffers)",
            f"{cv_bytes:,}",
            f"{payload.notebook_bytes:,}",
            ratio(cv_bytes, payload.notebook_bytes),
        ),
        (
            "first paint, ms (headless Chromium)",
            cv_paint_txt,
            f"{ms_paint:.0f} (median of {len(ms_runs)})",
            ratio(cv_run.ms, ms_paint),
        ),
        (
            "blocked non-loopback requests",
            str(len(cv_run.blocked)),
            str(max(len(r.blocked) for r in ms_runs)),
            "",
        ),
        (
            "Python build of the view, ms",
            f"{cv_build_ms:.0f}",
            f"{build_ms:.0f}",
            ratio(cv_build_ms, build_ms),
        ),
    ]
    widths = [
        max(len(r[i]) for r in rows + [("metric", "circuitsvis", "mechscope", "ratio")])
        for i in range(4)
    ]
    header = ("metric", "circuitsvis", "mechscope", "ratio (cv / ms)")
    print(
        f"\nAttention patterns, {N_LAYERS} layers x {N_HEADS} heads x {N_TOKENS} tokens (seed {SEED})"
    )
    print(f"circuitsvis render path: {cv_path}\n")
    for r in [header, tuple("-" * w for w in widths)] + rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    if cv_run.blocked:
        print(f"\ncircuitsvis blocked requests: {sorted(set(cv_run.blocked))[:5]}")

    result = {
        "shape": [N_LAYERS, N_HEADS, N_TOKENS, N_TOKENS],
        "seed": SEED,
        "platform": platform.platform(),
        "circuitsvis": {
            "render_path": cv_path,
            "html_bytes": cv_bytes,
            "first_paint_ms": cv_run.ms,
            "cap_s": args.cap,
            "error": cv_run.error,
            "blocked_requests": cv_run.blocked,
            "console_errors": cv_run.console_errors[:10],
            "python_build_ms": cv_build_ms,
        },
        "mechscope": {
            "dtype": widget.dtype,
            "json_state_bytes": payload.json_bytes,
            "esm_css_bytes": esm_css,
            "buffer_bytes": payload.buffer_bytes,
            "raw_bytes": payload.raw_bytes,
            "notebook_bytes": payload.notebook_bytes,
            "first_paint_ms": ms_paint,
            "first_paint_runs_ms": [r.ms for r in ms_runs],
            "blocked_requests": sorted({u for r in ms_runs for u in r.blocked}),
            "console_errors": ms_runs[0].console_errors[:10],
            "python_build_ms": build_ms,
        },
        "ratios": {
            "size_raw": cv_bytes / payload.raw_bytes,
            "first_paint": (cv_run.ms / ms_paint) if cv_run.ms else None,
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    (_harness.OUT / "widget_attention.json").write_text(json.dumps(result, indent=2))
    print(f"\nwrote {_harness.OUT / 'widget_attention.json'}; screenshots in {out}")


if __name__ == "__main__":
    main()
