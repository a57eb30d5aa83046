"""Vision (the review's §8, beyond language): a small hooked CNN on sklearn's 8x8 digits,
feature visualisation, max-activating dataset examples and first-layer edge detectors.

    cnn        DigitsCNN (hook points conv1.hook_post, ...), load_digits, load_zoo_cnn
    featvis    activation maximisation with regularisers (Olah et al. 2017)
    filters    edge score of 3x3 filters against oriented Sobel / Gabor filters
    examples   max-activating dataset examples per channel and their class purity
"""

from .cnn import CNNConfig, DigitsCNN, accuracy, load_digits, load_zoo_cnn, spatial_rows
from .filters import EdgeScoreResult, edge_score, gabor_filters, sobel_filters

__all__ = [
    "CNNConfig",
    "DigitsCNN",
    "EdgeScoreResult",
    "accuracy",
    "edge_score",
    "gabor_filters",
    "load_digits",
    "load_zoo_cnn",
    "sobel_filters",
    "spatial_rows",
]
