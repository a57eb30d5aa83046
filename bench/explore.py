"""mechscope.explore latency in a real browser: keystroke -> every panel re-rendered.

Run by hand:  .venv/bin/python bench/explore.py [--edits 12] [--skip-gpt2]

Starts an isolated JupyterLab on 127.0.0.1 (tests/browser/_lab.py's LabServer), opens a
notebook with two explorers, and drives Debian's Chromium with Playwright (every
non-loopback request blocked and counted):

  1. induction-2l (zoo; goal <= 150 ms);
  2. a GPT-2-small-sized Hugging Face model with random weights (12 layers, 12 heads,
     d_model 768, 50257 words), on 16 tokens, CPU (goal <= 1 s).

Each edit fills the prompt box with all but the last character and then *presses* the last
one. The clock starts at that keydown (in the page) and stops when the DOM shows the new
prompt everywhere: the status line's ``data-prompt`` is the typed text, the top-k list has the
status's generation, the attention strip and the logit lens have one column per token; then
one animation frame (so the frame is painted). Prints median and p90 per model and writes
bench/out/explore.json. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": f"c{i}",
            "metadata": {},
            "outputs": [],
            "source": src,
        }
        for i, src in enumerate(
            [
                "import sys\n"
                f"sys.path.insert(0, {str(ROOT / 'bench')!r})\n"
                "import mechscope\n"
                "from explore import gpt2_small_random\n"
                "zoo = mechscope.explore(mechscope.load('induction-2l'), 'red fox sun cup red fox')\n"
                "zoo",
                "big = mechscope.explore(gpt2_small_random(), ' '.join(f'w{i}' for i in range(1, 17)))\n"
                "big",
            ]
        )
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}

# Installed once: the keydown time, and a check run on every DOM mutation of the app.
_WATCH = r"""
([index, prompt]) => {
  const app = document.querySelectorAll('.ms-explore')[index];
  window.__msT0 = null; window.__msT1 = null;
  const box = app.querySelector('.ms-explore-prompt input');
  box.addEventListener('keydown', () => { window.__msT0 = performance.now(); }, { once: true, capture: true });
  const done = () => {
    const s = app.querySelector('.ms-explore-status');
    if (!s || s.dataset.prompt !== prompt) return false;
    const n = Number(s.dataset.tokens);
    const top = app.querySelector('.ms-explore-topk');
    const strip = app.querySelectorAll('.ms-attention .ms-attn-token').length;
    const lens = app.querySelector('.ms-logit-lens');
    const cols = lens ? lens.querySelectorAll('.ms-ll-collabel').length : n;
    return top && top.dataset.generation === s.dataset.generation && strip === n && cols === n;
  };
  const obs = new MutationObserver(() => {
    if (window.__msT1 === null && window.__msT0 !== null && done()) {
      obs.disconnect();
      requestAnimationFrame(() => { window.__msT1 = performance.now(); });
    }
  });
  obs.observe(app, { subtree: true, childList: true, attributes: true, characterData: true });
}
"""


def gpt2_small_random(seed: int = 0):
    """GPT-2 small's shape (12 layers x 12 heads, d_model 768, 50257 words), random weights,
    with a word-level tokenizer ``w1 .. w50256`` (no download)."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    import mechscope

    words = ["<|endoftext|>"] + [f"w{i}" for i in range(1, 50257)]
    level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=words[0]))
    level.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=level, bos_token=words[0], eos_token=words[0], unk_token=words[0]
    )
    torch.manual_seed(seed)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval()
    return mechscope.wrap(hf, tok)


def _edits(kind: str, n: int) -> list[str]:
    if kind == "zoo":  # the last word alternates: each edit is a new, valid prompt
        words = ["cup", "owl", "sun", "cat"]
        return [f"red fox sun cup red {words[i % len(words)]}" for i in range(n)]
    base = " ".join(f"w{i}" for i in range(1, 16))
    return [f"{base} w{17 + i % 2}" for i in range(n)]  # ends in w17 / w18: 16 tokens


def _measure(page, index: int, text: str, timeout_s: float) -> float:
    page.evaluate(_WATCH, [index, text])
    box = page.locator(".ms-explore").nth(index).locator(".ms-explore-prompt input")
    box.fill(text[:-1])
    box.press(text[-1])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        t = page.evaluate("() => [window.__msT0, window.__msT1]")
        if t[1] is not None:
            return t[1] - t[0]
        time.sleep(0.005)
    raise TimeoutError(f"the explorer never showed {text!r} within {timeout_s} s")


def _kernel_ms(page, index: int) -> float:
    """The kernel's compute time for the edit on screen, from the app's status line."""
    text = page.locator(".ms-explore").nth(index).locator(".ms-explore-status").inner_text()
    return float(text.rsplit("·", 1)[1].strip().removesuffix("ms").strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edits", type=int, default=12, help="edits per model (>= 10)")
    parser.add_argument("--skip-gpt2", action="store_true", help="only induction-2l")
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("_lab", ROOT / "tests" / "browser" / "_lab.py")
    lab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lab)
    from playwright.sync_api import sync_playwright

    nb = json.loads(json.dumps(NOTEBOOK))
    if args.skip_gpt2:
        nb["cells"] = nb["cells"][:1]
    models = [("induction-2l (zoo)", "zoo", 0.150), ("GPT-2-small size, random (HF)", "big", 1.0)]
    models = models[: len(nb["cells"])]
    blocked: list[str] = []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        (root / "explore_bench.ipynb").write_text(json.dumps(nb))
        with lab.LabServer(root, Path(tmp), pythonpath=[SRC]) as server:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1400, "height": 1000})

                def guard(route):
                    if lab.LOOPBACK in route.request.url or "localhost" in route.request.url:
                        route.fallback()
                    else:
                        blocked.append(route.request.url)
                        route.abort()

                page.route("**/*", guard)
                page.goto(server.notebook_url("explore_bench.ipynb"))
                page.wait_for_function("() => !!window.jupyterapp", timeout=60_000)
                page.evaluate("() => window.jupyterapp.restored")
                page.wait_for_timeout(3000)  # the kernel starts
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
                page.wait_for_function(
                    f"() => document.querySelectorAll('.ms-explore .ms-attention"
                    f'[data-rendered="true"]\').length === {len(models)}',
                    timeout=300_000,
                )
                for index, (label, kind, goal) in enumerate(models):
                    _measure(page, index, _edits(kind, 2)[1], 60)  # warm-up
                    ms, kernel = [], []
                    for t in _edits(kind, args.edits):
                        ms.append(_measure(page, index, t, 60))
                        kernel.append(_kernel_ms(page, index))
                    ms.sort()
                    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
                    med_k = statistics.median(kernel)
                    rows.append((label, len(ms), statistics.median(ms), p90, goal * 1000, med_k))
                browser.close()
    print(
        f"\nmechscope.explore, keystroke -> every panel rendered ({platform.processor() or platform.machine()})"
    )
    print(
        f"{'model':34} {'edits':>5} {'median ms':>10} {'p90 ms':>8} {'goal ms':>8} "
        f"{'of which compute':>17}"
    )
    for label, n, med, p90, goal, med_k in rows:
        print(f"{label:34} {n:5d} {med:10.0f} {p90:8.0f} {goal:8.0f} {med_k:17.0f}")
    print("compute: the kernel's analyses for one edit (the app's status line); the rest is the")
    print("typing wait, the widget messages and the browser's rendering.")
    print(f"non-loopback requests blocked: {len(blocked)}")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "explore.json").write_text(
        json.dumps(
            [
                dict(
                    zip(
                        ("model", "edits", "median_ms", "p90_ms", "goal_ms", "compute_ms"),
                        r,
                        strict=True,
                    )
                )
                for r in rows
            ],
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
