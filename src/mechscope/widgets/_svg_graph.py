"""Static picture of the AttributionGraph widget: the graph pruned at the widget's thresholds.

The same layout as the widget (``widgets/attribution_graph/graph.ts``): one column per
position (its token under it), one row per layer, embeddings at the bottom and the target
logits on top; the nodes of one cell wrap into lines, strongest influence first, error nodes
last. Each kept node is one ``rect`` of class ``node`` (a square for a feature, sized by its
influence); an edge is a line whose width is its ``|weight|`` and whose colour is its sign.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mechscope.widgets import _static
from mechscope.widgets._svg_figure import MUTED, Figure, display_text

PAD = 8
LEFT = 52  # row labels
COL_TARGET, COL_MIN, COL_MAX = 600, 56, 110  # as the widget's index.ts
STEP = 15
ROW_GAP = 8
SMALL = 11
KIND_FILL = {
    "embed": (0xAD, 0xB5, 0xBD),
    "feature": (0xF0, 0x8C, 0x00),
    "error": (0x49, 0x50, 0x57),
    "logit": (0x2F, 0x9E, 0x44),
}
EDGE_INK = (60, 60, 60)


def _row(kind: str, layer: int, n_layers: int) -> int:
    return 0 if kind == "embed" else n_layers + 1 if kind == "logit" else layer + 1


def layout(result: Any, shown: np.ndarray, n_layers: int, col_w: float):
    """``(x, y, row_top, row_bottom, height)``: centres of the shown nodes (NaN elsewhere)."""
    n_rows = n_layers + 2
    infl = result.influence.numpy()
    act = result.activation.numpy()
    cells: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(shown):
        key = (_row(result.kind[i], int(result.layer[i]), n_layers), int(result.pos[i]))
        cells.setdefault(key, []).append(int(i))
    per_line = max(1, int(col_w // STEP))
    lines = [1] * n_rows
    for (r, _), nodes in cells.items():
        lines[r] = max(lines[r], math.ceil(len(nodes) / per_line))
    top, bottom = [0.0] * n_rows, [0.0] * n_rows
    y = 0.0
    for r in reversed(range(n_rows)):
        top[r] = y
        y += lines[r] * STEP + 2 * ROW_GAP
        bottom[r] = y
    xs = np.full(len(result.kind), np.nan)
    ys = np.full(len(result.kind), np.nan)
    for (r, p), nodes in cells.items():
        nodes.sort(key=lambda i: (result.kind[i] == "error", -infl[i], -act[i], i))
        for k, i in enumerate(nodes):
            line = k // per_line
            in_line = min(per_line, len(nodes) - line * per_line)
            xs[i] = p * col_w + (col_w - in_line * STEP) / 2 + (k % per_line) * STEP + STEP / 2
            ys[i] = top[r] + ROW_GAP + line * STEP + STEP / 2
    return xs, ys, top, bottom, y


def graph_figure(widget: Any) -> Figure:
    r = widget.pruned()
    n_layers, n_pos = widget.n_layers, len(r.str_tokens)
    shown = r.kept.numpy().copy()
    if widget.selected >= 0:
        shown[widget.selected] = True
    col_w = max(COL_MIN, min(COL_MAX, COL_TARGET // max(n_pos, 1)))
    xs, ys, top, bottom, height = layout(r, shown, n_layers, col_w)
    values = r.values.numpy()
    dst, src = np.nonzero(values)
    ok = shown[dst] & shown[src]
    dst, src = dst[ok], src[ok]
    w = values[dst, src]

    head = 2 * PAD + 16 + 2 * 16
    width = LEFT + n_pos * col_w + 2 * PAD
    fig = Figure(width, head + height + 28 + PAD, label=widget.title or "attribution graph")
    n_nodes, n_edges = int(shown.sum()), len(w)
    fig.text(PAD, PAD + 13, widget.title or "attribution graph", size=13, bold=True,
             max_width=width - 2 * PAD)  # fmt: skip
    fig.text(
        PAD, PAD + 31,
        f"{n_nodes} of {len(r.kind)} nodes, {n_edges} edges (node threshold "
        f"{widget.node_threshold:g}, edge threshold {widget.edge_threshold:g})",
        size=SMALL, fill=MUTED, max_width=width - 2 * PAD,
    )  # fmt: skip
    logits = [i for i, k in enumerate(r.kind) if k == "logit"]
    targets = ", ".join(
        f"{r.labels[i].removeprefix('logit ')} p={r.activation[i]:.3f}" for i in logits
    )
    fig.text(
        PAD, PAD + 47, f"targets: {targets}", size=SMALL, fill=MUTED, max_width=width - 2 * PAD
    )
    ox, oy = PAD + LEFT, head
    for row in range(n_layers + 2):
        name = "emb" if row == 0 else "logits" if row == n_layers + 1 else f"L{row - 1}"
        shade = (244, 244, 244) if row % 2 else (250, 250, 250)
        fig.rect(ox, oy + top[row], n_pos * col_w, bottom[row] - top[row], fill=shade)
        fig.text(ox - 6, oy + (top[row] + bottom[row]) / 2 + 4, name, size=SMALL, fill=MUTED,
                 anchor="end")  # fmt: skip
    for p, tok in enumerate(r.str_tokens):
        fig.text(ox + (p + 0.5) * col_w, oy + height + 16, tok, size=SMALL, anchor="middle",
                 max_width=col_w - 4, title=f"pos {p}: {display_text(tok)}")  # fmt: skip
    top_w = float(np.abs(w).max()) if len(w) else 0.0
    for e in np.argsort(np.abs(w), kind="stable"):
        rel = abs(float(w[e])) / top_w if top_w > 0 else 0.0
        rgb = _static.diverging_rgb(math.copysign(0.35 + 0.65 * rel, float(w[e])))
        fig.line(ox + xs[src[e]], oy + ys[src[e]], ox + xs[dst[e]], oy + ys[dst[e]],
                 stroke=tuple(int(c) for c in rgb), width=0.6 + 3.4 * rel)  # fmt: skip
    infl = r.influence.numpy()
    feats = [i for i, k in enumerate(r.kind) if k == "feature"]
    max_inf = float(infl[feats].max()) if feats else 0.0
    for i in np.flatnonzero(shown):
        kind = r.kind[i]
        if kind == "feature":
            side = 2 * (3 + 3.5 * math.sqrt(infl[i] / max_inf if max_inf > 0 else 0.0))
            size = (side, side)
        else:
            size = {"embed": (col_w - 12, 10), "error": (9, 9), "logit": (11, 11)}[kind]
        selected = i == widget.selected
        fig.rect(
            ox + xs[i] - size[0] / 2, oy + ys[i] - size[1] / 2, *size, fill=KIND_FILL[kind],
            stroke=(0, 0, 0) if selected else EDGE_INK, stroke_width=2.5 if selected else 0.8,
            cls="node", title=r.labels[i],
        )  # fmt: skip
    return fig
