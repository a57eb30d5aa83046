"""Jupyter widgets (anywidget) for mechscope; TypeScript sources in widgets/ at the repo root."""

from mechscope.widgets.attention import AttentionPatterns
from mechscope.widgets.attribution_graph import AttributionGraph
from mechscope.widgets.feature_dashboard import FeatureDashboard
from mechscope.widgets.heatmap import Heatmap, link_heads
from mechscope.widgets.image_grid import ImageGrid
from mechscope.widgets.logit_lens import LogitLens
from mechscope.widgets.token_activations import TokenActivations

__all__ = [
    "AttentionPatterns",
    "AttributionGraph",
    "FeatureDashboard",
    "Heatmap",
    "ImageGrid",
    "LogitLens",
    "TokenActivations",
    "link_heads",
]
