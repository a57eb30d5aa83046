"""Screenshots of the widgets in a real browser, offline, without a Jupyter server.

Each widget is built in Python (so its traits are exactly what a notebook would send), and its
synced state is handed to the committed bundle (``src/mechscope/widgets/static/<name>.js``) on a
page whose ``model`` is a minimal stand-in for anywidget's (get / set / on / off /
save_changes; Bytes traits arrive as DataView, as in Jupyter). The page and the bundle are
served from memory by Playwright's request routing; every other request is aborted, and the
script fails if any was attempted.

    .venv/bin/python tools/screenshots.py --tag after            # docs/screenshots/*_after.png
    .venv/bin/python tools/screenshots.py --tag after --dark     # + JupyterLab dark variables
    .venv/bin/python tools/screenshots.py --tag after --attention-png docs/attention.png
    # "before" pictures from an older commit's bundles:
    mkdir /tmp/old && for f in heatmap feature_dashboard attention; do for e in js css; do
      git show HEAD~1:src/mechscope/widgets/static/$f.$e > /tmp/old/$f.$e; done; done
    .venv/bin/python tools/screenshots.py --tag before --static /tmp/old

Writes ``{heatmap,dashboard,attention}_{tag}.png`` (``_{tag}_dark.png`` with ``--dark``).
Chromium: $MECHSCOPE_CHROMIUM, else /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "src" / "mechscope" / "widgets" / "static"
BASE = "http://127.0.0.1:9/"  # never contacted: every request is answered by the route below

# JupyterLab's own values of the variables the widgets read (light theme is the fallbacks).
DARK = {
    "--jp-layout-color0": "#111111",
    "--jp-ui-font-color0": "rgba(255, 255, 255, 1)",
    "--jp-ui-font-color1": "rgba(255, 255, 255, 0.87)",
    "--jp-ui-font-color2": "rgba(255, 255, 255, 0.54)",
    "--jp-border-color1": "#616161",
    "--jp-border-color2": "#424242",
}

PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>{css}
body {{ margin: 0; padding: 12px; background: var(--jp-layout-color0, #fff);
       color: var(--jp-ui-font-color1, #222); {theme} }}
#root {{ display: inline-block; padding: 4px 8px; }}
</style></head><body><div id="root"></div><script type="module">
const state = {state};
for (const [k, v] of Object.entries(state)) {{
  if (v && typeof v === "object" && "$bytes" in v) {{
    const raw = atob(v.$bytes);
    const buf = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) buf[i] = raw.charCodeAt(i);
    state[k] = new DataView(buf.buffer);
  }}
}}
const subs = new Map();
const model = {{
  get: (k) => state[k],
  set: (k, v) => {{ state[k] = v; for (const f of subs.get("change:" + k) || []) f(); }},
  on: (ev, f) => {{ if (!subs.has(ev)) subs.set(ev, new Set()); subs.get(ev).add(f); }},
  off: (ev, f) => {{ subs.get(ev)?.delete(f); }},
  save_changes: () => {{}},
}};
const mod = await import("{base}{name}.js");
mod.default.render({{ model, el: document.getElementById("root") }});
</script></body></html>
"""


def widget_state(widget) -> dict:
    """The synced traits a frontend would receive (private ones like ``_esm`` left out)."""
    state = {}
    for name in widget.trait_names(sync=True):
        if name.startswith("_") or name in {"layout", "tabbable", "tooltip", "comm", "keys"}:
            continue
        value = getattr(widget, name)
        if isinstance(value, bytes | bytearray | memoryview):
            value = {"$bytes": base64.b64encode(bytes(value)).decode()}
        state[name] = value
    return state


def page_html(name: str, widget, dark: bool, static: Path = STATIC) -> str:
    theme = " ".join(f"{k}: {v};" for k, v in DARK.items()) if dark else ""
    return PAGE.format(
        css=(static / f"{name}.css").read_text(),
        theme=theme,
        state=json.dumps(widget_state(widget)),
        base=BASE,
        name=name,
    )


def heatmap_widget():
    """A 2 x 5 activation-patching map: mostly zero cells, as real patching maps are."""
    from mechscope.widgets import Heatmap

    values = np.array(
        [[0.0, 0.0, 0.03, 0.0, 0.0], [0.0, 0.0, 0.0, 0.91, -0.12]],
        dtype=np.float32,
    )
    return Heatmap(
        values,
        row_labels=["L0", "L1"],
        col_labels=["<bos>", " When", " Mary", " and", " John went to the store"],
        row_title="layer",
        col_title="pos",
        value_label="logit diff recovered",
        title="Activation patching, resid_pre",
    )


def dashboard_widget():
    """A FeatureDashboard on synthetic activations with uneven logit decimals."""
    from mechscope.widgets import FeatureDashboard

    rng = np.random.default_rng(0)
    words = [
        " the",
        " cat",
        " sat",
        " on",
        " mat",
        " dog",
        " ran",
        "\n",
        " away",
        " supercalifragilistic",
    ]
    contexts = [[words[(3 * c + p) % len(words)] for p in range(8)] for c in range(40)]
    acts = np.maximum(rng.normal(-0.6, 1.0, size=(40, 8, 2)), 0).astype(np.float32)
    acts[5, 3, 0] = 4.2
    acts[11, 6, 0] = 3.1
    weights = rng.normal(scale=0.3, size=(2, len(words))).astype(np.float32)
    weights[0, 1] = 0.2528
    weights[0, 2] = 0.234
    weights[0, 3] = -0.42
    return FeatureDashboard(
        acts, contexts, weights, words, k=5, bins=24, n_logits=5, title="feature 0"
    )


def attention_widget():
    """The README's picture: induction-2l on a repeated sentence, focused on the induction head."""
    import mechscope
    from mechscope.heads import best_head
    from mechscope.widgets import AttentionPatterns

    model = mechscope.load("induction-2l")
    text = "red fox sun cup run two owl snow"
    tokens = model.to_tokens(text + " " + text)
    _, cache = model.run_with_cache(tokens, names=lambda name: name.endswith("hook_pattern"))
    layer, head, _ = best_head(mechscope.head_scores(model).induction)
    return AttentionPatterns.from_cache(cache, model.to_str_tokens(tokens), selected=[layer, head])


def shoot(browser, name: str, widget, path: Path, dark: bool, hover: str, static: Path) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    blocked: list[str] = []
    errors: list[str] = []
    html = page_html(name, widget, dark, static)

    def route(r):
        url = r.request.url
        if url == BASE + "page.html":
            r.fulfill(body=html, content_type="text/html")
        elif url == f"{BASE}{name}.js":
            r.fulfill(body=(static / f"{name}.js").read_text(), content_type="text/javascript")
        else:
            blocked.append(url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(BASE + "page.html")
    root = page.locator('#root[data-rendered="true"]')
    root.wait_for(timeout=10_000)
    page.locator(hover).hover()
    page.wait_for_timeout(100)
    root.screenshot(path=str(path))
    page.close()
    if blocked or errors:
        sys.exit(f"{name}: requests attempted {blocked}, page errors {errors}")
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tag", default="after", help="file-name suffix, e.g. before / after")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    ap.add_argument(
        "--dark", action="store_true", help="also shoot with JupyterLab's dark variables"
    )
    ap.add_argument("--attention-png", type=Path, help="also copy the attention shot here")
    ap.add_argument("--static", type=Path, default=STATIC, help="folder of the bundles to show")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    exe = os.environ.get("MECHSCOPE_CHROMIUM", "/usr/bin/chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    shots = [
        ("heatmap", "heatmap", heatmap_widget(), '.ms-hm-cell[data-row="1"][data-col="3"]'),
        ("feature_dashboard", "dashboard", dashboard_widget(), ".ms-tok-max >> nth=0"),
        ("attention", "attention", attention_widget(), ".ms-attn-token >> nth=12"),
    ]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        for bundle, stem, widget, hover in shots:
            for dark in [False, True] if args.dark else [False]:
                path = args.out / f"{stem}_{args.tag}{'_dark' if dark else ''}.png"
                shoot(browser, bundle, widget, path, dark, hover, args.static)
                if stem == "attention" and args.attention_png and not dark:
                    args.attention_png.write_bytes(path.read_bytes())
                    print(f"wrote {args.attention_png}")
        browser.close()


if __name__ == "__main__":
    main()
