"""Jupyter widgets (anywidget) for mechscope; TypeScript sources in widgets/ at the repo root."""

from mechscope.widgets.attention import AttentionPatterns

__all__ = ["AttentionPatterns"]
