"""Widgets at the scale of an 8B model: first paint and saved-notebook bytes (issue 17 item 4).

Run by hand:  .venv/bin/python bench/widget_scale.py [--repeats 3] [--skip-lab] [--cv-cap 120]

Synthetic, seeded data of the shapes an 8B model gives on a 512-token prompt:
  - AttentionPatterns, 32 layers x 32 heads x 512 tokens (268 M weights, 1 GiB of float32);
  - LogitLens, 80 layers x 512 positions, top-5;
  - Heatmap, 80 layers x 512 positions (e.g. an activation-patching sweep).
For each: the Python build, the bytes the widget state saves into a notebook (JSON state incl.
ESM+CSS, plus base64 buffers; the static SVG fallback of the mimebundle separately), and the
first paint in headless Chromium (/usr/bin/chromium, offline: non-loopback requests blocked
and counted), from navigation start until the frame showing the widget's data-rendered root,
in a plain page with a small fake anywidget model (bench/harness.html).
Then, in a real JupyterLab kernel (tests/browser/_lab.py): the 32 x 32 x 512 widget is shown
and thumbnails are clicked; each click's full-resolution head is fetched over the comm; the
time from the click until the focused view shows it at full resolution is reported.
CircuitsVis (attention_heads, offline through its packaged iife.js) is run on one layer's 32
heads; the whole model's HTML would be 32 times that, so it is not attempted. It has no view
like LogitLens or Heatmap. Prints metric | circuitsvis | mechscope | ratio per widget, and
writes bench/out/widget_scale.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

import _harness  # noqa: E402

from mechscope.widgets import AttentionPatterns, Heatmap, LogitLens  # noqa: E402

N_LAYERS, N_HEADS, N_TOKENS = 32, 32, 512
LENS_LAYERS, K, SEED = 80, 5, 0
STATIC = ROOT / "src" / "mechscope" / "widgets" / "static"
GOAL_MS, GOAL_BYTES = 1000.0, 5_000_000


def causal_pattern(n_layers: int, n_heads: int, n: int, seed: int = SEED) -> np.ndarray:
    """[layer, head, q, k] causal softmax of seeded Gaussian scores, made a layer at a time."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_layers, n_heads, n, n), np.float32)
    future = np.triu(np.ones((n, n), bool), 1)
    for layer in range(n_layers):
        s = rng.standard_normal((n_heads, n, n), dtype=np.float32) * 2
        s[:, future] = -np.inf
        s -= s.max(-1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(-1, keepdims=True)
        out[layer] = s
    return out


def tokens(n: int) -> list[str]:
    words = "the quick brown fox jumps over a lazy dog while".split()
    return ["<|endoftext|>"] + [f" {words[i % len(words)]}" for i in range(n - 1)]


def lens_data(n_layers: int, n: int) -> tuple[np.ndarray, list, list[str]]:
    rng = np.random.default_rng(SEED)
    probs = -np.sort(-rng.dirichlet(np.ones(40), size=(n_layers, n)), -1)[..., :K]
    vocab = [f" w{i}" for i in range(5000)]
    ids = rng.integers(0, len(vocab), size=(n_layers, n, K))
    top = [[[vocab[i] for i in ids[layer, p]] for p in range(n)] for layer in range(n_layers)]
    return probs.astype(np.float32), top, tokens(n)


def measure(name: str, build, repeats: int) -> dict:
    """Build a widget, size its state and static picture, and time its first paint."""
    t0 = time.perf_counter()
    widget = build()
    build_ms = (time.perf_counter() - t0) * 1000
    payload = _harness.widget_payload(widget)
    t0 = time.perf_counter()
    svg = widget._render_svg()
    svg_ms = (time.perf_counter() - t0) * 1000
    esm = STATIC / f"{name}.js"
    folder = _harness.OUT / "widget_scale" / name
    _harness.stage_widget(folder, esm, esm.with_suffix(".css"), payload)
    root = {"attention": "ms-attention", "logit_lens": "ms-logit-lens", "heatmap": "ms-heatmap"}
    rendered = f"document.querySelector('.{root[name]}[data-rendered=\"true\"]')"
    runs = []
    with _harness.serve(folder) as url:
        for i in range(repeats):
            shot = folder / "paint.png" if i == 0 else None
            r = _harness.first_paint(
                url, rendered_js=rendered, harness=True, cap_s=120, screenshot=shot
            )
            if r.ms is None:
                raise SystemExit(f"{name} did not render: {r.error}\n{r.console_errors[:5]}")
            runs.append(r)
    return {
        "repr": repr(widget),
        "build_ms": build_ms,
        "state_json_bytes": payload.json_bytes,
        "buffer_bytes": payload.buffer_bytes,
        "notebook_bytes": payload.notebook_bytes,
        "svg_bytes": len(svg.encode()),
        "svg_ms": svg_ms,
        "paint_ms": statistics.median(r.ms for r in runs),
        "paint_runs_ms": [r.ms for r in runs],
        "blocked": sorted({u for r in runs for u in r.blocked}),
    }


def circuitsvis_one_layer(pattern: np.ndarray, cap_s: float) -> dict:
    """CircuitsVis attention_heads on layer 0's heads, offline (its packaged iife.js inlined)."""
    import circuitsvis.attention
    import torch

    toks = tokens(pattern.shape[-1])
    t0 = time.perf_counter()
    rendered = circuitsvis.attention.attention_heads(
        attention=torch.from_numpy(pattern[0]), tokens=toks
    )
    html = rendered.local_src
    build_ms = (time.perf_counter() - t0) * 1000
    folder = _harness.OUT / "widget_scale" / "circuitsvis"
    folder.mkdir(parents=True, exist_ok=True)
    page = f'<!doctype html><html><head><meta charset="utf-8"></head><body>{html}</body></html>'
    (folder / "index.html").write_text(page, encoding="utf-8")
    n_heads = pattern.shape[1]
    rendered_js = (
        "(() => { const r = document.querySelector('[id^=\"circuits-vis-\"]');"
        f" return r && r.querySelectorAll('canvas').length >= {n_heads + 1}; }})()"
    )
    with _harness.serve(folder) as url:
        run = _harness.first_paint(url, rendered_js=rendered_js, cap_s=cap_s)
    return {
        "heads": n_heads,
        "html_bytes": len(html.encode()),
        "build_ms": build_ms,
        "paint_ms": run.ms,
        "error": run.error,
        "blocked": sorted(set(run.blocked)),
    }


# The kernel side of the lab measurement: the same data, built in the kernel.
_LAB_CELLS = [
    "import sys, time\nsys.path.insert(0, {bench!r})\n"
    "from widget_scale import causal_pattern, tokens\n"
    "from mechscope.widgets import AttentionPatterns\n"
    "pattern = causal_pattern({shape})",
    "t0 = time.perf_counter()\nw = AttentionPatterns(pattern, tokens({n}), title='scale')\n"
    "build_ms = (time.perf_counter() - t0) * 1000",
    "w",
]


def lab_round_trip(clicks: int) -> dict:
    """Show the big widget in a real JupyterLab and time full-resolution fetches on click."""
    import importlib.util

    from playwright.sync_api import sync_playwright

    spec = importlib.util.spec_from_file_location("_lab", ROOT / "tests" / "browser" / "_lab.py")
    lab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lab)
    shape = f"{N_LAYERS}, {N_HEADS}, {N_TOKENS}"
    cells = [c.format(bench=str(ROOT / "bench"), shape=shape, n=N_TOKENS) for c in _LAB_CELLS]
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "source": c,
                "outputs": [],
                "execution_count": None,
            }
            for c in cells
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root, work = Path(tmp) / "root", Path(tmp) / "work"
        root.mkdir()
        (root / "scale.ipynb").write_text(json.dumps(nb))
        server = lab.LabServer(root, work, pythonpath=[ROOT / "src"])
        with server, sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=_harness.CHROMIUM, args=_harness.CHROMIUM_ARGS
            )
            blocked: list[str] = []
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            def route(r) -> None:
                if _harness._is_local(r.request.url):
                    r.continue_()
                else:
                    blocked.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(server.notebook_url("scale.ipynb"), wait_until="domcontentloaded")
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell", timeout=60_000
            )
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.wait_for_function(
                "() => { const w = window.jupyterapp.shell.currentWidget;"
                " return w && w.sessionContext && w.sessionContext.session"
                " && w.sessionContext.session.kernel"
                " && w.sessionContext.session.kernel.status === 'idle'; }",
                timeout=60_000,
            )
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            root_sel = '.ms-attention[data-rendered="true"]'
            page.wait_for_selector(root_sel, timeout=120_000)
            widget = page.locator(root_sel)
            times = []
            for i in range(clicks):
                layer, head = (3 + 7 * i) % N_LAYERS, (5 + 11 * i) % N_HEADS
                t = page.evaluate(
                    """([el, l, h]) => new Promise((done) => {
                         const t0 = performance.now();
                         const check = () => el.dataset.resolution === "full"
                           && el.dataset.selected === `${l},${h}`;
                         const obs = new MutationObserver(() => {
                           if (check()) { obs.disconnect(); done(performance.now() - t0); }
                         });
                         obs.observe(el, { attributes: true });
                         // 32 x 32 heads: one canvas of thumbnails; click head (l, h) on it
                         const atlas = el.querySelector(".ms-attn-atlas-canvas");
                         const pitch = Number(el.querySelector(".ms-attn-atlas").dataset.pitch);
                         const r = atlas.getBoundingClientRect();
                         atlas.dispatchEvent(new MouseEvent("click", { bubbles: true,
                           clientX: r.left + h * pitch + 5, clientY: r.top + l * pitch + 5 }));
                         if (check()) { obs.disconnect(); done(performance.now() - t0); }
                       })""",
                    [widget.element_handle(), layer, head],
                )
                times.append(t)
            width = widget.locator("canvas.ms-attn-focus").evaluate("c => c.width * c.height")
            page.screenshot(path=str(_harness.OUT / "widget_scale" / "lab.png"))
            browser.close()
    return {
        "click_to_full_ms": statistics.median(times),
        "runs_ms": times,
        "focus_cells": width,
        "blocked": sorted(set(blocked)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="first-paint runs per widget (median)")
    ap.add_argument("--cv-cap", type=float, default=120.0, help="seconds to wait for CircuitsVis")
    ap.add_argument("--skip-circuitsvis", action="store_true")
    ap.add_argument("--skip-lab", action="store_true", help="skip the real-kernel round trip")
    ap.add_argument("--lab-only", action="store_true", help="only the real-kernel round trip")
    args = ap.parse_args()
    if args.lab_only:
        print(json.dumps(lab_round_trip(clicks=5), indent=2))
        return

    t0 = time.perf_counter()
    pattern = causal_pattern(N_LAYERS, N_HEADS, N_TOKENS)
    gen_s = time.perf_counter() - t0
    probs, top, toks = lens_data(LENS_LAYERS, N_TOKENS)
    grid = np.random.default_rng(SEED).standard_normal((LENS_LAYERS, N_TOKENS)).astype(np.float32)
    builds = {
        "attention": lambda: AttentionPatterns(pattern, tokens(N_TOKENS), title="scale"),
        "logit_lens": lambda: LogitLens(probs, top, toks, title="scale"),
        "heatmap": lambda: Heatmap(
            grid,
            row_labels=[f"L{i}" for i in range(LENS_LAYERS)],
            col_labels=toks,
            row_title="layer",
            col_title="pos",
            title="scale",
        ),
    }
    results = {name: measure(name, build, args.repeats) for name, build in builds.items()}
    cv = None if args.skip_circuitsvis else circuitsvis_one_layer(pattern, args.cv_cap)
    pattern = None  # frees 1 GiB before the lab run
    lab = None if args.skip_lab else lab_round_trip(clicks=5)

    def ratio(a, b) -> str:
        return f"{a / b:.1f}x" if a and b else "n/a"

    shapes = {
        "attention": f"AttentionPatterns {N_LAYERS} x {N_HEADS} heads x {N_TOKENS} tokens",
        "logit_lens": f"LogitLens {LENS_LAYERS} layers x {N_TOKENS} positions x top-{K}",
        "heatmap": f"Heatmap {LENS_LAYERS} x {N_TOKENS}",
    }
    header = ("metric", "circuitsvis", "mechscope", "ratio (cv / ms)")
    for name, r in results.items():
        rows = [
            ("Python build, ms", "-", f"{r['build_ms']:.0f}", ""),
            ("first paint, ms (median)", "-", f"{r['paint_ms']:.0f}", ""),
            ("saved state, bytes (b64)", "-", f"{r['notebook_bytes']:,}", ""),
            ("  of which buffers (raw)", "-", f"{r['buffer_bytes']:,}", ""),
            ("static SVG fallback, bytes", "-", f"{r['svg_bytes']:,}", ""),
            ("blocked requests", "-", str(len(r["blocked"])), ""),
        ]
        if name == "attention" and cv is not None:
            whole = cv["html_bytes"] * N_LAYERS
            cv_paint = f"{cv['paint_ms']:.0f}" if cv["paint_ms"] else f"> {args.cv_cap:.0f} s"
            rows = [
                ("Python build, ms", f"{cv['build_ms']:.0f} (1 layer)", rows[0][2], ""),
                (
                    "first paint, ms (median)",
                    f"{cv_paint} (1 layer)",
                    rows[1][2],
                    ratio(cv["paint_ms"], r["paint_ms"]),
                ),
                (
                    "saved bytes (HTML / state)",
                    f"{cv['html_bytes']:,} (1 layer); ~{whole / 1e9:.1f} GB all",
                    rows[2][2],
                    ratio(whole, r["notebook_bytes"]),
                ),
                *rows[3:5],
                ("blocked requests", str(len(cv["blocked"])), rows[5][2], ""),
            ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
        print(f"\n{shapes[name]}  ({r['repr']})")
        for row in [header, tuple("-" * w for w in widths), *rows]:
            print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    if lab is not None:
        print(
            f"\nJupyterLab, real kernel, 32 x 32 x 512: click a thumbnail -> full-resolution head "
            f"shown: median {lab['click_to_full_ms']:.0f} ms over {len(lab['runs_ms'])} clicks "
            f"({', '.join(f'{t:.0f}' for t in lab['runs_ms'])}); focused canvas "
            f"{lab['focus_cells']:,} cells; blocked requests: {len(lab['blocked'])}"
        )
    a = results["attention"]
    ok = a["paint_ms"] <= GOAL_MS and a["notebook_bytes"] <= GOAL_BYTES
    print(
        f"\ngoal at 32 x 32 x 512 (<= {GOAL_MS:.0f} ms first paint, <= {GOAL_BYTES / 1e6:.0f} MB "
        f"saved state): {'met' if ok else 'NOT met'} ({a['paint_ms']:.0f} ms, "
        f"{a['notebook_bytes'] / 1e6:.2f} MB; + {a['svg_bytes'] / 1e6:.2f} MB static SVG)"
    )
    print(f"(synthetic data generated in {gen_s:.1f} s; not counted)")
    out = {
        "platform": platform.platform(),
        "seed": SEED,
        "widgets": results,
        "circuitsvis_one_layer": cv,
        "lab_round_trip": lab,
    }
    _harness.OUT.mkdir(parents=True, exist_ok=True)
    (_harness.OUT / "widget_scale.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {_harness.OUT / 'widget_scale.json'}")


if __name__ == "__main__":
    main()
