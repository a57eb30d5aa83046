"""Static pictures of the token widgets: TokenActivations and FeatureDashboard.

Tokens are drawn as boxes coloured by an activation (white at zero: the RdBu map, or its
white-to-red half for non-negative data, as the widgets), wrapped into lines; each box has
the token and its value as its ``<title>``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mechscope.widgets import _buffers, _static
from mechscope.widgets._svg_figure import (
    GRID,
    MUTED,
    Figure,
    display_text,
    fit,
    fixed_decimals,
    text_width,
    value_text,
)

PAD = 8
SIZE = 12  # px, token text
SMALL = 11
LINE_H = 22
BOX_H = 18
TOKEN_CAP = 160.0  # px; a longer token is cut (full text in its title)


def token_rows(
    fig: Figure,
    x0: float,
    y: float,
    tokens: list[str],
    values: np.ndarray,
    scale: tuple[float, bool],
    max_width: float,
    outline: int | None = None,
) -> float:
    """Draw ``tokens`` as coloured boxes from ``(x0, y)``, wrapping at ``x0 + max_width``;
    returns the height used. ``outline``: index of a token to outline (the max)."""
    rgb = _static.activation_rgb(values, *scale)
    exact = [value_text(v) for v in values]
    x = x0
    top = y
    for i, tok in enumerate(tokens):
        shown = fit(display_text(tok), TOKEN_CAP, SIZE)
        bw = text_width(shown, SIZE) + 6
        if x > x0 and x + bw > x0 + max_width:
            x, y = x0, y + LINE_H
        fill = tuple(rgb[i])
        title = f"{display_text(tok)}: {exact[i]}"
        fig.rect(
            x, y, bw, BOX_H, fill=fill, stroke=GRID, stroke_width=0.5, cls="token", title=title
        )
        if i == outline:
            fig.rect(x - 1, y - 1, bw + 2, BOX_H + 2, stroke=(0, 0, 0), stroke_width=1.5)
        fig.text(x + 3, y + 13, tok, size=SIZE, fill=_static.text_on(fill), max_width=TOKEN_CAP)
        x += bw + 1
    return y - top + LINE_H


def activation_legend(
    fig: Figure, x: float, y: float, scale: tuple[float, bool], label: str
) -> float:
    """The activation map from ``-max`` (signed) or 0 to ``max``, limits printed."""
    top, signed = scale
    steps, width = 32, 200.0
    t = np.linspace(-1 if signed else 0, 1, steps)
    rgb = _static.activation_rgb(t, 1.0, signed)
    for i in range(steps):
        fig.rect(
            x + i * width / steps, y, width / steps + 0.3, 12, fill=tuple(rgb[i]), cls="legend"
        )
    fig.rect(x, y, width, 12, stroke=GRID)
    ticks = fixed_decimals([-top if signed else 0.0, top])
    fig.text(x, y + 26, ticks[0], size=SMALL, fill=MUTED)
    fig.text(x + width, y + 26, ticks[1], size=SMALL, fill=MUTED, anchor="end")
    fig.text(x + width + 10, y + 11, label, size=SMALL, fill=MUTED, max_width=260)
    return 32


def _heading(w: Any, kind: str, name: str, size: int, width: float) -> tuple[Figure, float]:
    """A figure labelled by the widget's title (else ``kind``) that shows the title, if any, and
    the shown feature ("``name`` (f + 1 of n)"); also the y below them."""
    f = int(w.feature)
    fig = Figure(0, 0, label=w.title or kind)
    y = PAD
    if w.title:
        fig.text(PAD, y + 14, w.title, size=14, bold=True, max_width=width - 2 * PAD)
        y += 22
    line = f"{name} ({f + 1} of {w.n_features})"
    fig.text(PAD, y + 13, line, size=size, bold=True, max_width=width - 2 * PAD)
    return fig, y + 20


# ---- TokenActivations ------------------------------------------------------------------------


def token_activations_figure(w: Any) -> Figure:
    f = int(w.feature)
    acts = w.values_array()[..., f]  # [text, pos]
    texts = [list(t) for t in w.tokens]
    valid = np.concatenate([acts[i, : len(t)] for i, t in enumerate(texts)] or [np.zeros(0)])
    scale = _static.activation_scale(valid)
    width = 720.0
    fig, y = _heading(w, "TokenActivations", f"feature: {w.feature_names[f]}", SIZE, width)
    y += activation_legend(fig, PAD, y, scale, "activation (one scale for every text)") + 6
    index_w = text_width(str(len(texts) - 1), SMALL) + 8
    for i, toks in enumerate(texts):
        fig.text(PAD, y + 13, str(i), size=SMALL, fill=MUTED)
        y += (
            token_rows(
                fig, PAD + index_w, y, toks, acts[i, : len(toks)], scale, width - 2 * PAD - index_w
            )
            + 4
        )
    fig.width, fig.height = width, y + PAD
    return fig


# ---- FeatureDashboard ------------------------------------------------------------------------


def _histogram(fig: Figure, x: float, y: float, counts: np.ndarray, edges: np.ndarray) -> float:
    """Bars of ``counts`` with both axes labelled; returns the height used."""
    w, h = 280.0, 90.0
    left = x + 52  # room for the y axis title and tick labels
    top = int(counts.max()) if counts.size else 0
    bar_w = w / max(1, len(counts))
    for i, c in enumerate(counts):
        bh = h * c / top if top else 0.0
        if c:
            title = f"[{value_text(edges[i])}, {value_text(edges[i + 1])}): {int(c)}"
            fig.rect(
                left + i * bar_w, y + h - bh, bar_w, bh, fill=(70, 110, 170), cls="bar", title=title
            )
    fig.line(left, y + h, left + w, y + h, stroke=MUTED)
    fig.line(left, y, left, y + h, stroke=MUTED)
    for value, yy in ((0, y + h), (top, y)):
        fig.line(left - 3, yy, left, yy, stroke=MUTED)
        fig.text(left - 5, yy + 4, str(value), size=SMALL, fill=MUTED, anchor="end")
    lo, hi = fixed_decimals([edges[0], edges[-1]])
    fig.text(left, y + h + 14, lo, size=SMALL, fill=MUTED)
    fig.text(left + w, y + h + 14, hi, size=SMALL, fill=MUTED, anchor="end")
    fig.text(
        left + w / 2, y + h + 14, "activation (non-zero)", size=SMALL, fill=MUTED, anchor="middle"
    )
    fig.text(x + 10, y + h / 2 + 17, "count", size=SMALL, fill=MUTED, rotate=True)
    return h + 20


def _logit_column(
    fig: Figure,
    x: float,
    y: float,
    title: str,
    pairs: list[tuple[str, float]],
    top: float,
    values: list[str],
) -> None:
    """One list of (token, effect): a colour chip, the token, the effect (``values``: the
    effects printed with one number of decimals shared by both lists)."""
    fig.text(x, y, title, size=SIZE, bold=True)
    rgb = _static.diverging_rgb(np.array([v for _, v in pairs]) / top if top else np.zeros(0))
    for i, ((tok, v), shown) in enumerate(zip(pairs, values, strict=True)):
        yy = y + 8 + i * 17
        fig.rect(
            x,
            yy,
            10,
            12,
            fill=tuple(rgb[i]),
            stroke=GRID,
            cls="logit",
            title=f"{display_text(tok)}: {value_text(v)}",
        )
        fig.text(x + 14, yy + 11, tok, size=SIZE, max_width=100)
        fig.text(x + 170, yy + 11, shown, size=SIZE, anchor="end")


def feature_dashboard_figure(w: Any) -> Figure:
    f = int(w.feature)
    width = 720.0
    fig, y = _heading(w, "FeatureDashboard", w.feature_names[f], 13, width)
    counts, edges = w.histogram(f)
    density = float(_buffers.decode(w.density, "float32", (w.n_features,))[f])
    nonfinite = int(_buffers.decode(w.nonfinite, "int32", (w.n_features,))[f])
    line = f"density {100 * density:.3g}% of {w.n_tokens} tokens"
    fig.text(
        PAD, y + 12, line + (f"; {nonfinite} NaN/Inf" if nonfinite else ""), size=SMALL, fill=MUTED
    )
    y += 34
    hist_h = _histogram(fig, PAD, y, counts, edges)
    raised, lowered = w.logit_effects(f)
    if raised:
        top = max(abs(v) for _, v in raised + lowered)
        shown = fixed_decimals([v for _, v in raised + lowered])
        _logit_column(fig, 360, y - 6, "raises", raised, top, shown[: len(raised)])
        _logit_column(fig, 540, y - 6, "lowers", lowered, top, shown[len(raised) :])
        hist_h = max(hist_h, 8 + 17 * len(raised))
    y += hist_h + 12
    contexts = w.top_contexts(f)
    fig.text(
        PAD, y + 12, f"top {len(contexts)} activating contexts (max first)", size=SIZE, bold=True
    )
    y += 20
    acts = np.concatenate([c["acts"] for c in contexts] or [np.zeros(0)])
    scale = _static.activation_scale(acts)
    if contexts:
        y += activation_legend(fig, PAD, y, scale, "activation") + 4
    maxes = fixed_decimals([c["max"] for c in contexts])
    label_w = max((text_width(m, SMALL) for m in maxes), default=0) + 10
    for c, shown in zip(contexts, maxes, strict=True):
        fig.text(PAD, y + 13, shown, size=SMALL, fill=MUTED)
        y += (
            token_rows(
                fig,
                PAD + label_w,
                y,
                c["tokens"],
                c["acts"],
                scale,
                width - 2 * PAD - label_w,
                outline=c["max_pos"],
            )
            + 4
        )
    fig.width, fig.height = width, y + PAD
    return fig
