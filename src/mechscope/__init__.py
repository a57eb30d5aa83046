"""mechscope: mechanistic interpretability in a notebook.

Hookable models with TransformerLens-style hook names, activation caches, and
offline anywidget views, on models that ship with the package and on Hugging Face
models (``mechscope.wrap`` / ``mechscope.load``).
"""

from ._load import load, zoo_models
from .acdc import ACDCResult, acdc
from .cache import ActivationCache
from .heads import head_scores
from .hooks import HookPoint
from .models import Transformer, TransformerConfig
from .models.hf import HFModel, wrap
from .patching import PatchResult, activation_patch
from .patching_attr import attribution_patch, compare_to_exact
from .path_patching import path_patch, path_patch_all

__version__ = "0.1.0"

__all__ = [
    "ACDCResult",
    "ActivationCache",
    "HFModel",
    "HookPoint",
    "PatchResult",
    "Transformer",
    "TransformerConfig",
    "acdc",
    "activation_patch",
    "attribution_patch",
    "compare_to_exact",
    "head_scores",
    "load",
    "path_patch",
    "path_patch_all",
    "wrap",
    "zoo_models",
    "__version__",
]
