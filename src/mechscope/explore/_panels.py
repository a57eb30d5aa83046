"""The explorer's panels: our widgets built from a :class:`Snapshot`, and updated in place.

A new prompt does not create new widgets (each new one would send its whole bundle to the
page and lay out from scratch): the panel is rebuilt off-screen, as a *detached* widget that
never opens a comm, and its synced traits are copied into the displayed one in one message.
Selections and the highlighted token survive a new prompt where they still fit.
"""

from __future__ import annotations

import html

import ipywidgets
import torch

from ..widgets import AttentionPatterns, Heatmap, LogitLens, TokenActivations
from ..widgets.heatmap import link_heads
from ._compute import Snapshot, metric_text

# Traits every widget has (layout, the bundle, anywidget's id): never copied between widgets.
_BASE_TRAITS = frozenset(ipywidgets.DOMWidget.class_trait_names(sync=True)) | {
    "_esm",
    "_css",
    "_anywidget_id",
}
_DETACHED: dict[type, type] = {}


def detached(cls: type) -> type:
    """``cls`` with no comm: building one computes its traits and sends nothing."""
    if cls not in _DETACHED:
        _DETACHED[cls] = type(f"Detached{cls.__name__}", (cls,), {"open": lambda self: None})
    return _DETACHED[cls]


def refresh(live, fresh) -> None:
    """Copy ``fresh``'s data traits into the displayed ``live`` widget: one message, and the
    validators run once every trait has its new value."""
    names = [n for n in fresh.trait_names(sync=True) if n not in _BASE_TRAITS]
    with live.hold_sync(), live.hold_trait_notifications():
        for name in names:
            value = getattr(fresh, name)
            if getattr(live, name) != value:
                setattr(live, name, value)
    if isinstance(live, AttentionPatterns):
        live._full = fresh._full  # a pattern too big to send stays here, for the comm


def note(text: str, cls: str) -> ipywidgets.HTML:
    """A line of text in the app (escaped: tokens are user data)."""
    w = ipywidgets.HTML(f'<div class="{cls}">{html.escape(text)}</div>')
    w.add_class(cls)
    return w


def top_k_html(snap: Snapshot, generation: int) -> str:
    """The next-token top-k as a small table; ``data-generation`` marks which inputs it shows."""
    rows = "".join(
        f'<tr class="ms-explore-topk-row"><td><code>{html.escape(repr(tok))}</code></td>'
        f'<td style="width:120px"><div style="background:#e8590c;height:10px;'
        f'width:{max(1, round(p * 120))}px"></div></td><td>{p:.3f}</td></tr>'
        for tok, p in snap.top
    )
    return (
        f'<div class="ms-explore-topk" data-generation="{generation}">'
        f"<b>next token</b> after {html.escape(repr(snap.str_tokens[-1]))}"
        f"<table>{rows}</table></div>"
    )


def status_html(snap: Snapshot, generation: int) -> str:
    """One line: what DLA / patching score, how long the update took; the DOM marker the
    browser test and the bench wait for (``data-generation``, ``data-prompt``, ``data-tokens``)."""
    return (
        f'<div class="ms-explore-status" data-generation="{generation}" '
        f'data-prompt="{html.escape(snap.inputs.prompt, quote=True)}" '
        f'data-tokens="{len(snap.str_tokens)}">{len(snap.str_tokens)} tokens · scoring '
        f"<code>{html.escape(metric_text(snap))}</code> · {snap.seconds * 1000:.0f} ms</div>"
    )


class Panels:
    """The widgets of one app; ``update(snap)`` refreshes them in place."""

    def __init__(self, model, snap: Snapshot) -> None:
        self.model = model
        cfg = model.cfg
        self.n_layers, self.n_heads = cfg.n_layers, cfg.n_heads
        self.attention = self._attention(AttentionPatterns, snap, [0, 0])
        self.lens = self._lens(LogitLens, snap, []) if snap.lens is not None else None
        self.dla_heads = self._dla_heads(Heatmap, snap, [])
        self.dla_components = self._dla_components(Heatmap, snap)
        self.features = self._features(TokenActivations, snap, 0)
        self.patching: Heatmap | None = None
        self.unlink = (
            link_heads(self.dla_heads, self.attention) if self.dla_heads is not None else None
        )

    # ---- building (cls: the widget class, or its detached twin) -------------------------------

    def _attention(self, cls, snap: Snapshot, selected) -> AttentionPatterns:
        return cls.from_cache(
            snap.cache, snap.str_tokens, selected=selected, title="attention (click a head)"
        )

    def _lens(self, cls, snap: Snapshot, selected) -> LogitLens:
        n_pos = len(snap.str_tokens)
        keep = selected if len(selected) == 2 and selected[1] < n_pos else []
        return cls.from_result(snap.lens, k=5, title="logit lens", selected=keep)

    def _dla_heads(self, cls, snap: Snapshot, selected) -> Heatmap | None:
        if snap.dla_heads is None:
            return None
        values = snap.dla_heads.values[:, 0].reshape(self.n_layers, self.n_heads)
        return cls(
            values,
            row_labels=[f"L{layer}" for layer in range(self.n_layers)],
            col_labels=[f"H{head}" for head in range(self.n_heads)],
            row_title="layer",
            col_title="head",
            title="direct logit attribution per head (click one: attention focuses it)",
            value_label=metric_text(snap),
            selected=selected or None,
        )

    def _dla_components(self, cls, snap: Snapshot) -> Heatmap | None:
        if snap.dla_components is None:
            return None
        return cls(
            snap.dla_components.values[:, 0][None],
            row_labels=["direct"],
            col_labels=snap.dla_components.labels,
            col_title="component",
            title="direct logit attribution per component",
            value_label=metric_text(snap),
        )

    def _features(self, cls, snap: Snapshot, feature: int) -> TokenActivations | None:
        if snap.features is None:
            return None
        names, values = snap.features
        return cls(
            [snap.str_tokens],
            values[None],
            feature_names=names,
            feature=min(feature, len(names) - 1),
            title="features of the spliced SAE(s), most active on this prompt",
        )

    def patching_widget(self, values: torch.Tensor, sites: list[str], snap: Snapshot) -> Heatmap:
        """The patching heatmap ``[site, layer, pos]`` (made once, then refreshed in place)."""
        kwargs = {
            "row_labels": [f"L{layer}" for layer in range(self.n_layers)],
            "col_labels": snap.str_tokens,
            "panel_titles": sites,
            "row_title": "layer",
            "col_title": "pos",
            "title": "activation patching, clean into corrupted (click a cell: the lens shows it)",
            "value_label": f"fraction of {metric_text(snap)} restored",
        }
        if self.patching is None:
            self.patching = Heatmap(values, **kwargs)
        else:
            refresh(self.patching, detached(Heatmap)(values, **kwargs))
        return self.patching

    # ---- updating ------------------------------------------------------------------------------

    def update(self, snap: Snapshot) -> None:
        """Show ``snap`` in the same widgets (the lens / features appear or stay as they were)."""
        refresh(self.attention, self._attention(detached(AttentionPatterns), snap, self._head()))
        if self.lens is not None and snap.lens is not None:
            refresh(self.lens, self._lens(detached(LogitLens), snap, list(self.lens.selected)))
        if self.dla_heads is not None and snap.dla_heads is not None:
            sel = list(self.dla_heads.selected)
            refresh(self.dla_heads, self._dla_heads(detached(Heatmap), snap, sel))
        if self.dla_components is not None and snap.dla_components is not None:
            refresh(self.dla_components, self._dla_components(detached(Heatmap), snap))
        if self.features is not None and snap.features is not None:
            fresh = self._features(detached(TokenActivations), snap, self.features.feature)
            refresh(self.features, fresh)
        n_pos = len(snap.str_tokens)
        for w in self.token_views():
            if w.highlight_token >= n_pos:
                w.highlight_token = -1

    def _head(self) -> list[int]:
        return list(self.attention.selected)

    def token_views(self) -> list:
        """The widgets whose columns are the prompt's positions (hover links them)."""
        return [w for w in (self.attention, self.lens, self.patching, self.features) if w]

    def lens_row(self, site: str, layer: int) -> int:
        """The lens row that reads the residual stream a patch at (``site``, ``layer``) writes:
        ``resid_pre`` is the stream entering block ``layer`` (row ``layer``); ``attn_out`` and
        ``mlp_out`` add to the stream entering block ``layer + 1`` (row ``layer + 1``, the
        last row being the final residual)."""
        return layer if site == "resid_pre" else min(layer + 1, self.n_layers)
