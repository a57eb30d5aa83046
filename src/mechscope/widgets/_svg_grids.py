"""Static pictures of the grid widgets: Heatmap, AttentionPatterns, LogitLens.

Each ``*_figure(widget)`` lays out a ``_static.Figure`` of what the widget's view shows in
its current state, read back through the widget's decoded payload (what the browser sees).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mechscope.widgets import _buffers, _static
from mechscope.widgets._svg_figure import (
    GRID,
    MUTED,
    Figure,
    display_text,
    fixed_decimals,
    text_width,
    value_text,
)

PAD = 8
LABEL = 12  # px, axis labels and cell text
SMALL = 11  # px, captions (the minimum)
SELECT = (0, 0, 0)
# The pictures are saved in the notebook: a Heatmap over BIG_CELLS cells is drawn as block
# means (<= BIG_ROWS x BIG_COLS, no cell text); a LogitLens shows <= LENS_CELLS (last positions).
BIG_CELLS, BIG_ROWS, BIG_COLS, LENS_CELLS = 4096, 128, 256, 2048


def block_means(vals: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, list[int], list[int]]:
    """``[..., r, c]`` as means of <= ``rows`` x ``cols`` blocks (NaN/Inf spread to the block),
    and the first row / column of each block."""
    out, starts = np.asarray(vals, np.float64), []
    for axis, most in ((-2, rows), (-1, cols)):
        n = out.shape[axis]
        edges = np.linspace(0, n, min(n, most) + 1).round().astype(int)
        counts = np.diff(edges).reshape((-1, 1) if axis == -2 else (1, -1))
        out = np.add.reduceat(out, edges[:-1], axis=axis) / counts
        starts.append([int(e) for e in edges[:-1]])
    return out, starts[0], starts[1]


def _clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


def _label_width(labels: list[str], size: float, cap: float) -> float:
    widths = [text_width(display_text(s), size) for s in labels]
    return min(max(widths, default=0.0), cap)


def heat_rgb(values: np.ndarray, lo: float, hi: float, center: float | None) -> np.ndarray:
    """Colours of a Heatmap's cells: the RdBu map white at ``center`` (symmetric) or viridis
    over ``[lo, hi]``; the same positions as the widget's ``heatPosition``."""
    v = np.asarray(values, np.float64)
    if center is None:
        span = hi - lo
        t = (v - lo) / span if span > 0 else np.where(np.isfinite(v), 0.5, v)
        return _static.viridis_rgb(t)
    m = max(hi - center, center - lo)
    t = (v - center) / m if m > 0 else np.where(np.isfinite(v), 0.0, v)
    return _static.diverging_rgb(t)


def legend(
    fig: Figure,
    x: float,
    y: float,
    lo: float,
    hi: float,
    *,
    diverging: bool,
    label: str = "",
    width: float = 200,
) -> float:
    """A colour bar from ``lo`` to ``hi`` with its limits (and the centre) printed under it;
    returns the height used."""
    steps = 32
    t = np.linspace(-1, 1, steps) if diverging else np.linspace(0, 1, steps)
    rgb = _static.diverging_rgb(t) if diverging else _static.viridis_rgb(t)
    step_w = width / steps
    for i in range(steps):
        fig.rect(x + i * step_w, y, step_w + 0.3, 12, fill=tuple(rgb[i]), cls="legend")
    fig.rect(x, y, width, 12, stroke=GRID)
    ticks = [lo, (lo + hi) / 2, hi]
    texts = fixed_decimals(ticks)
    for pos, s, anchor in zip(
        (0, width / 2, width), texts, ("start", "middle", "end"), strict=True
    ):
        fig.text(x + pos, y + 26, s, size=SMALL, fill=MUTED, anchor=anchor)
    if label:
        fig.text(x + width + 10, y + 11, label, size=SMALL, fill=MUTED, max_width=220)
    return 32


def _col_labels(
    fig: Figure,
    labels: list[str],
    x0: float,
    y_bottom: float,
    cell: float,
    rotated: bool,
    cap: float,
    every: int = 1,
) -> None:
    for i, s in enumerate(labels):
        if i % every:
            continue
        cx = x0 + (i + 0.5) * cell
        if rotated:
            fig.text(cx + 4, y_bottom - 3, s, size=SMALL, rotate=True, max_width=cap)
        else:
            fig.text(cx, y_bottom - 4, s, size=SMALL, anchor="middle", max_width=cell - 2)


def _row_labels(
    fig: Figure,
    labels: list[str],
    x_right: float,
    y0: float,
    cell: float,
    cap: float,
    every: int = 1,
) -> None:
    for i, s in enumerate(labels):
        if i % every == 0:
            fig.text(x_right, y0 + (i + 0.5) * cell + 4, s, size=SMALL, anchor="end", max_width=cap)


# ---- Heatmap ---------------------------------------------------------------------------------


def heatmap_figure(w: Any) -> Figure:
    vals = w.values_array()  # [panel, row, col]
    rows, cols = list(w.row_labels), list(w.col_labels)
    big = vals.size > BIG_CELLS
    if big:  # block means; each label names its block's first row / column
        vals, row_at, col_at = block_means(vals, BIG_ROWS, BIG_COLS)
        rows, cols = [rows[i] for i in row_at], [cols[i] for i in col_at]
    n_p, n_r, n_c = vals.shape
    cw = float(_clamp(math.floor(640 / (n_p * n_c)), 3 if big else 14, 44))
    ch = float(_clamp(cw, 6 if big else 18, 30))
    row_w = _label_width(rows, SMALL, 140) + 6
    col_cap = 110.0
    rotated = _label_width(cols, SMALL, col_cap) > cw - 2
    col_h = math.ceil(_label_width(cols, SMALL, col_cap) + 8) if rotated else 16
    gap = 18
    panel_w = n_c * cw
    x0 = PAD + math.ceil(max(row_w, text_width(w.row_title, SMALL) if w.row_title else 0))
    width = x0 + n_p * panel_w + (n_p - 1) * gap + PAD
    fig = Figure(0, 0, label=w.title or "Heatmap")
    y = PAD
    if w.title:
        fig.text(PAD, y + 14, w.title, size=14, bold=True, max_width=max(width, 300) - 2 * PAD)
        y += 22
    titles = list(w.panel_titles)
    if any(titles):
        for p, t in enumerate(titles):
            px = x0 + p * (panel_w + gap)
            fig.text(
                px + panel_w / 2,
                y + 12,
                t,
                size=LABEL,
                bold=True,
                anchor="middle",
                max_width=max(panel_w, 60),
            )
        y += 18
    if w.col_title:
        for p in range(n_p):
            px = x0 + p * (panel_w + gap)
            fig.text(
                px + panel_w / 2,
                y + 12,
                w.col_title,
                size=SMALL,
                fill=MUTED,
                anchor="middle",
                max_width=max(panel_w, 60),
            )
        y += 16
    top = y + col_h
    if w.row_title:
        fig.text(PAD, top - 4, w.row_title, size=SMALL, fill=MUTED)
    rgb = heat_rgb(vals, w.vmin, w.vmax, w.center)
    # Hover titles for grids of a readable size; a bigger grid is a picture (and stays small).
    hover = vals.size <= 1024
    exact = [[[value_text(v) for v in row] for row in panel] for panel in vals] if hover else None
    shown = fixed_decimals(vals) if cw >= 40 else None
    sel = list(w.selected)
    for p in range(n_p):
        px = x0 + p * (panel_w + gap)
        _col_labels(fig, cols, px, top, cw, rotated, col_cap, math.ceil(14 / cw))
        if p == 0:
            _row_labels(fig, rows, x0 - 5, top, ch, 140, math.ceil(14 / ch))
        if big:
            fig.raster(px, top, rgb[p], cw, ch, cls="cells", title=titles[p] or None)
            fig.rect(px, top, panel_w, n_r * ch, stroke=GRID)
            continue
        prefix = f"{titles[p]}: " if titles[p] else ""
        for r in range(n_r):
            for c in range(n_c):
                x, yy, fill = px + c * cw, top + r * ch, tuple(rgb[p, r, c])
                title = None
                if exact is not None:
                    where = f"{w.row_title or 'row'} {rows[r]}, {w.col_title or 'col'} {cols[c]}"
                    title = display_text(f"{prefix}{where}: {exact[p][r][c]}")
                fig.rect(x, yy, cw, ch, fill=fill, cls="cell", title=title)
                if not np.isfinite(vals[p, r, c]):
                    fig.line(x + 3, yy + 3, x + cw - 3, yy + ch - 3, stroke=(255, 255, 255))
                    fig.line(x + cw - 3, yy + 3, x + 3, yy + ch - 3, stroke=(255, 255, 255))
                elif shown is not None:
                    text = shown[(p * n_r + r) * n_c + c]
                    fig.text(
                        x + cw / 2,
                        yy + ch / 2 + 4,
                        text,
                        size=SMALL,
                        anchor="middle",
                        fill=_static.text_on(fill),
                        max_width=cw - 4,
                    )
        for r in range(n_r + 1):  # the grid: zero cells read as cells, not as page
            fig.line(px, top + r * ch, px + panel_w, top + r * ch, stroke=GRID)
        for c in range(n_c + 1):
            fig.line(px + c * cw, top, px + c * cw, top + n_r * ch, stroke=GRID)
        if sel and sel[0] == p and not big:
            fig.rect(px + sel[2] * cw, top + sel[1] * ch, cw, ch, stroke=SELECT, stroke_width=2)
    y = top + n_r * ch + 12
    label = w.value_label + (f" (centre at {w.center:g})" if w.center is not None else "")
    y += legend(
        fig,
        x0,
        y,
        w.vmin,
        w.vmax,
        diverging=w.center is not None,
        label=label,
        width=min(200.0, max(120.0, n_p * panel_w)),
    )
    fig.width, fig.height = max(width, x0 + 440), y + PAD
    return fig


# ---- AttentionPatterns -----------------------------------------------------------------------


def pool(pattern: np.ndarray, size: int) -> np.ndarray:
    """Mean over blocks of the last two axes, down to ``size`` x ``size`` (a no-op if smaller)."""
    n = pattern.shape[-1]
    if n <= size:
        return pattern
    edges = np.linspace(0, n, size + 1).round().astype(int)
    counts = np.diff(edges)
    summed = np.add.reduceat(np.add.reduceat(pattern, edges[:-1], axis=-2), edges[:-1], axis=-1)
    return summed / (counts[:, None] * counts[None, :])


def attention_figure(w: Any) -> Figure:
    pat = w.pattern()  # [layer, head, query, key]
    n_l, n_h, n, _ = pat.shape
    # Thumbnails downsampled so that the whole grid stays a few hundred KB of SVG.
    side = int(_clamp(math.floor(math.sqrt(24000 / (n_l * n_h))), 4, 32))
    thumbs = pool(pat, side)
    t = thumbs.shape[-1]
    cell = max(1, round((56 if n_l * n_h <= 64 else 44) / t))
    tw = t * cell
    labels = [f"{w.layer_labels[layer]}H{h}" for layer in range(n_l) for h in range(n_h)]
    step_x = max(tw, _label_width(labels, SMALL, 80)) + 10
    fig = Figure(0, 0, label=w.title or "AttentionPatterns")
    y = PAD
    if w.title:
        fig.text(PAD, y + 14, w.title, size=14, bold=True, max_width=n_h * step_x)
        y += 22
    sel_l, sel_h = list(w.selected)
    colours = _static.viridis_rgb(thumbs)
    for layer in range(n_l):
        for h in range(n_h):
            x, label = PAD + h * step_x, labels[layer * n_h + h]
            fig.raster(x, y, colours[layer, h], cell, cell, cls="thumb", title=label)
            fig.rect(x, y, tw, tw, stroke=GRID)
            if (layer, h) == (sel_l, sel_h):
                fig.rect(x - 2, y - 2, tw + 4, tw + 4, stroke=SELECT, stroke_width=2)
            fig.text(
                x + tw / 2,
                y + tw + 13,
                label,
                size=SMALL,
                anchor="middle",
                fill=MUTED,
                max_width=step_x - 4,
                bold=(layer, h) == (sel_l, sel_h),
            )
        y += tw + 22
    # The focused head, query rows x key columns, tokens on both axes.
    focus = pool(w.head_pattern(sel_l, sel_h), 96)
    m = focus.shape[-1]
    fc = float(_clamp(math.floor(480 / m), 3, 22))
    every = math.ceil(13 / fc)
    toks = list(w.tokens) if m == n else [f"{i * n // m}" for i in range(m)]
    row_w = _label_width(toks, SMALL, 120) + 6
    col_h = _label_width(toks, SMALL, 120) + 8
    y += 8
    fig.text(
        PAD,
        y + 13,
        f"{w.layer_labels[sel_l]}H{sel_h}: query (rows) x key (columns)",
        size=LABEL,
        bold=True,
    )
    y += 20
    x0 = PAD + row_w
    _col_labels(fig, toks, x0, y + col_h, fc, True, 120, every)
    y += col_h
    _row_labels(fig, toks, x0 - 5, y, fc, 120, every)
    fig.raster(
        x0,
        y,
        _static.viridis_rgb(focus),
        fc,
        fc,
        cls="focus",
        title=f"{w.layer_labels[sel_l]}H{sel_h}",
    )
    fig.rect(x0, y, m * fc, m * fc, stroke=GRID)
    y += m * fc + 12
    y += legend(fig, x0, y, 0.0, 1.0, diverging=False, label="attention weight")
    fig.width = max(PAD + n_h * step_x, x0 + m * fc, x0 + 440) + PAD
    fig.height = y + PAD
    return fig


# ---- LogitLens -------------------------------------------------------------------------------


def logit_lens_figure(w: Any) -> Figure:
    shape = (w.n_layers, w.n_pos, w.k)
    probs = _buffers.decode(w.top_probs, w.dtype, shape)
    ids = _buffers.decode(w.top_ids, "int32", shape)
    targets = _buffers.decode(w.targets, "int32", (w.n_pos,))
    table, rows, toks = list(w.token_table), list(w.row_labels), list(w.tokens)
    # A big lens shows its last positions only (every layer), so that the picture stays small.
    first = max(0, w.n_pos - max(1, LENS_CELLS // w.n_layers))
    probs, ids, targets, toks = probs[:, first:], ids[:, first:], targets[first:], toks[first:]
    n_pos = len(toks)
    cw, ch = 76.0, 22.0
    row_w = _label_width(rows, SMALL, 140) + 6
    x0 = PAD + row_w
    fig = Figure(0, 0, label=w.title or "LogitLens")
    y = PAD
    if w.title:
        fig.text(PAD, y + 14, w.title, size=14, bold=True, max_width=max(n_pos * cw, 300))
        y += 22
    shown = f"positions {first}..{w.n_pos - 1} of {w.n_pos}; " if first else ""
    fig.text(
        x0,
        y + 12,
        f"{shown}top-1 prediction (colour: its probability; underlined: the next token)",
        size=SMALL,
        fill=MUTED,
        max_width=max(n_pos * cw, 400),
    )
    y += 18
    _col_labels(fig, toks, x0, y + 16, cw, False, cw)
    y += 16
    _row_labels(fig, rows, x0 - 5, y, ch, 140)
    rgb = _static.viridis_rgb(probs[..., 0])
    for layer in range(w.n_layers):
        for pos in range(n_pos):
            x, yy, fill = x0 + pos * cw, y + layer * ch, tuple(rgb[layer, pos])
            top = ", ".join(
                f"{display_text(table[i])} {value_text(p)}"
                for i, p in zip(ids[layer, pos], probs[layer, pos], strict=True)
            )
            title = f"{rows[layer]}, pos {first + pos} ({display_text(toks[pos])}): {top}"
            fig.rect(x, yy, cw, ch, fill=fill, stroke=GRID, cls="cell", title=title)
            best = int(ids[layer, pos, 0])
            fig.text(
                x + cw / 2,
                yy + 15,
                table[best],
                size=LABEL,
                anchor="middle",
                fill=_static.text_on(fill),
                max_width=cw - 6,
                underline=best == int(targets[pos]),
            )
    if list(w.selected) and w.selected[1] >= first:
        layer, pos = w.selected
        fig.rect(x0 + (pos - first) * cw, y + layer * ch, cw, ch, stroke=SELECT, stroke_width=2)
    y += w.n_layers * ch + 12
    y += legend(fig, x0, y, 0.0, 1.0, diverging=False, label="top-1 probability")
    fig.width = max(x0 + n_pos * cw, x0 + 440) + PAD
    fig.height = y + PAD
    return fig
