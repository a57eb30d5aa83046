"""One of each mechscope widget in a marimo app (served by tests/browser/test_frontends.py).

    marimo run tests/browser/marimo_app.py --host 127.0.0.1

``demo_widgets()`` is also what the Jupyter side of the test imports, so JupyterLab, Notebook 7
and marimo show the same five widgets built from the same small arrays. Each widget is wrapped
in ``mo.ui.anywidget`` and an echo cell below them prints the state Python sees
(``<name>: <state>`` in an element with id ``echo-<name>``), so the test can check that a click
in the browser reaches the kernel.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full")

with app.setup:
    import marimo as mo
    import numpy as np

    from mechscope.widgets import (
        AttentionPatterns,
        FeatureDashboard,
        Heatmap,
        LogitLens,
        TokenActivations,
    )


@app.function
def demo_widgets():
    """The five widgets, from small deterministic arrays: ``{name: widget}``."""
    rng = np.random.default_rng(0)
    tokens = ["<bos>", " red", " fox", " runs", " fast"]
    # [layer, head, query, key]: causal softmax of random scores
    scores = rng.normal(size=(2, 2, 5, 5))
    scores[..., np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] = -np.inf
    attention = np.exp(scores - scores.max(-1, keepdims=True))
    attention = (attention / attention.sum(-1, keepdims=True)).astype(np.float32)
    heat = np.array([[[0.8, -0.3, 0.0], [0.1, 0.5, -0.9]]], np.float32)  # [panel, row, col]
    probs = np.array([[[0.6, 0.3], [0.5, 0.2]], [[0.9, 0.05], [0.7, 0.2]]], np.float32)
    top = [[[" fox", " cat"], [" runs", " sat"]], [[" fox", " dog"], [" runs", " ran"]]]
    texts = [[" the", " cat", " sat"], [" a", " dog", " ran", " off"]]
    values = np.zeros((2, 4, 2), np.float32)
    values[0, :3, 0], values[1, :, 0] = [0.1, 0.9, 0.4], [0.0, 0.3, 0.7, 0.2]
    values[..., 1] = -values[..., 0]
    words = [" the", " cat", " sat", " on", " mat", " dog"]
    contexts = [[words[(c + p) % 6] for p in range(4)] for c in range(5)]
    acts = rng.uniform(0, 1, size=(5, 4, 2)).astype(np.float32)
    acts[1, 2, 0], acts[3, 1, 1] = 4.0, 5.0
    return {
        "attention": AttentionPatterns(attention, tokens, title="Attention demo"),
        "heatmap": Heatmap(
            heat, row_labels=["L0", "L1"], col_labels=["a", "b", "c"], title="Heatmap demo"
        ),
        "lens": LogitLens(probs, top, [" red", " fox"], title="Lens demo"),
        "tokens": TokenActivations(texts, values, title="Token activations demo"),
        "dashboard": FeatureDashboard(
            acts, contexts, rng.normal(size=(2, 6)), words, k=3, bins=8, title="Dashboard demo"
        ),
    }


@app.cell
def _():
    # One global per widget: marimo re-runs the cells that read a UI element's global when
    # its value changes (elements inside a dict would not be tracked).
    _w = demo_widgets()
    attention = mo.ui.anywidget(_w["attention"])
    heatmap = mo.ui.anywidget(_w["heatmap"])
    lens = mo.ui.anywidget(_w["lens"])
    tokens = mo.ui.anywidget(_w["tokens"])
    dashboard = mo.ui.anywidget(_w["dashboard"])
    return attention, dashboard, heatmap, lens, tokens


@app.cell
def _(attention, dashboard, heatmap, lens, tokens):
    mo.vstack([mo.md("# mechscope widgets in marimo"), attention, heatmap, lens, tokens, dashboard])
    return


@app.cell
def _(attention, dashboard, heatmap, lens, tokens):
    # Re-runs whenever a widget's state changes in the browser: the Python side of the round trip.
    echo = {
        "attention": attention.value["selected"],
        "heatmap": heatmap.value["selected"],
        "lens": lens.value["selected"],
        "tokens": tokens.value["feature"],
        "dashboard": dashboard.value["feature"],
    }
    mo.Html("".join(f'<p id="echo-{k}">{k}: {v}</p>' for k, v in echo.items()))
    return


if __name__ == "__main__":
    app.run()
