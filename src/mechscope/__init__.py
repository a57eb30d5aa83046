"""mechscope: mechanistic interpretability in a notebook.

Hookable models with TransformerLens-style hook names, activation caches, and
offline anywidget views, on models that ship with the package and on Hugging Face
models (``mechscope.wrap`` / ``mechscope.load``).
"""

from ._load import load, zoo_models
from .ablation import ablate, ablation_hooks, ablation_sweep
from .acdc import ACDCResult, acdc
from .attribution import (
    IGResult,
    LogitAttribution,
    direct_logit_attribution,
    gradient_x_input,
    integrated_gradients,
    saliency,
)
from .cache import ActivationCache
from .das import DASResult, das, interchange_accuracy, interchange_intervention
from .heads import head_scores
from .hooks import HookPoint
from .lens import LensResult, TunedLens, logit_lens, train_tuned_lens, tuned_lens
from .models import Transformer, TransformerConfig
from .models.hf import HFModel, wrap
from .patching import PatchResult, activation_patch
from .patching_attr import attribution_patch, compare_to_exact
from .path_patching import path_patch, path_patch_all
from .probes import Probe, control_task, fit_probe, selectivity, sparse_probe
from .scrubbing import Claim, Hypothesis, ScrubResult, scrub
from .steering import SteeringSweep, steer, steering_sweep, steering_vector

__version__ = "0.1.0"

__all__ = [
    "ACDCResult",
    "ActivationCache",
    "Claim",
    "DASResult",
    "HFModel",
    "HookPoint",
    "Hypothesis",
    "IGResult",
    "LensResult",
    "LogitAttribution",
    "PatchResult",
    "Probe",
    "ScrubResult",
    "SteeringSweep",
    "Transformer",
    "TransformerConfig",
    "TunedLens",
    "ablate",
    "ablation_hooks",
    "ablation_sweep",
    "acdc",
    "activation_patch",
    "attribution_patch",
    "compare_to_exact",
    "control_task",
    "das",
    "direct_logit_attribution",
    "fit_probe",
    "gradient_x_input",
    "head_scores",
    "integrated_gradients",
    "interchange_accuracy",
    "interchange_intervention",
    "load",
    "logit_lens",
    "path_patch",
    "path_patch_all",
    "saliency",
    "scrub",
    "selectivity",
    "sparse_probe",
    "steer",
    "steering_sweep",
    "steering_vector",
    "train_tuned_lens",
    "tuned_lens",
    "wrap",
    "zoo_models",
    "__version__",
]
