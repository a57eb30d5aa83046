"""mechscope: mechanistic interpretability in a notebook.

Hookable models with TransformerLens-style hook names, activation caches, and
offline anywidget views, on models that ship with the package and on Hugging Face
models (``mechscope.wrap`` / ``mechscope.load``). One argument name per concept across
every module: docs/vocabulary.md.

Modules, by section of Bereska & Gavves (2024), "Mechanistic Interpretability for AI Safety":

Core
    hooks, cache      hook points, ``model.hooks``, ``run_with_cache``, ``ActivationCache``
    metrics           what a run measures: ``logit_diff``, ``normalized``
    protocols         ``HookedModel`` and the capabilities an analysis may require
    models            ``Transformer``; ``wrap`` for Hugging Face models
Observation (§4.2)
    attribution       direct logit attribution, saliency, SmoothGrad, integrated gradients
    lens              logit lens, tuned lens
    lens_extra        attention lens (heads in the vocabulary), linear shortcut (Din et al.)
    information_flow  information-flow routes: per-edge contribution shares (Ferrando & Voita)
    probes            linear probes, control tasks, selectivity, sparse probing
    probes_mlp        non-linear (MLP) probes and their selectivity
    ccs               contrast-consistent search: a truth direction without labels (§2)
    similarity        representational similarity: linear and RBF CKA (§2)
    sae, sae_train    sparse autoencoders (ReLU, TopK, gated): the model, evaluation, training,
                      shrinkage, single-feature detectors of known properties (coverage)
    monosemanticity   features per neuron against ground-truth labels (SoLU, L1: notebook 19)
    irreducibility    is a 2-D feature one feature? separability and mixture index (Engels 2024)
    disentangle       DCI disentanglement against known factors (Eastwood 2018); held-out eta²
                      of the token: input-pattern vs abstract features
    identifiability   identifiable latents: FastICA and the mean correlation coefficient (MCC),
                      the linear base case of causal representation learning (§8)
    heads             previous-token, induction and duplicate-token head scores
    circuits          QK and OV circuits, composition scores, from the weights
    universality      universal neurons across seeds: max activation correlation (Gurnee 2024)
    linear_rep        linear representations: word analogies, relation directions
    world             world-model probes, and interventions along them
Features as hook points, feature circuits (§4.4)
    splice            an SAE or transcoder spliced in: features and error as hook points
    transcoder        per-layer transcoders
    attribution_graph attribution graphs over transcoder features (Ameisen et al. 2025)
    feature_circuits  sparse feature circuits (Marks et al. 2024)
    explain           automated explanations scored by simulation (Bills et al. 2023, §5.4)
    n2g               neuron-to-graph: token-pattern graphs that predict a feature (Foote 2023)
Intervention (§4.3)
    patching          activation patching sweeps (denoising / noising)
    causal_tracing    Meng et al.'s causal tracing: Gaussian noise on the subject, restore one state
    patchscopes       decode a hidden state by patching it into an inspection prompt
    patching_attr     attribution patching, the gradient estimate of patching
    path_patching     path patching
    edge_attribution  edge attribution patching: EAP, EAP-IG (Syed et al. 2023; Hanna et al. 2024)
    acdc              ACDC-style automatic circuit discovery
    ground_truth      compiled programs with known circuits; the discovery benchmark (§8)
    ablation          zero, mean and resample ablation
    steering          steering vectors (difference of means) and strength sweeps
    scrubbing         causal scrubbing of a hypothesis
    das               interchange interventions, distributed alignment search
    reft              LoReFT: trained low-rank edits of a representation (Wu et al. 2024)
Intrinsic interpretability (§5.1)
    bilinear          a bilinear MLP read from its weights (Sharkey 2023; Pearce et al. 2024)
    bimt              brain-inspired modular training (Liu et al. 2023)
Development (§5.2)
    dynamics          training dynamics: metrics over checkpoints, when they change
    llc               the local learning coefficient by SGLD (Lau et al. 2023)
Safety cases (§6, §8)
    backdoor          poisoned inputs from activations: spectral signatures, activation clustering
Beyond language (§8)
    vision            a hooked CNN on sklearn's 8x8 digits: feature visualisation, edge scores,
                      max-activating examples (``import mechscope.vision``)
    rl                a seeded gridworld, a hooked residual-MLP policy, rollouts and the goal
                      edit that redirects it (``import mechscope.rl``)
    distill           a policy distilled into a decision tree: fidelity, if/else rules (the
                      review's neurosymbolic programs; policy extraction, Bastani et al. 2018)
Tools
    toy               synthetic tasks and their data (superposition, induction, Othello, ...)
    zoo               the shipped models' weights, cards and training recipes
    widgets           anywidget views: attention, heatmap, logit lens, features, tokens, images
    plots             plotly figures for toy models and SAEs
    explore           ``explore(model, prompt)``: a live app, every view updates as you type
    taxonomy          every method on the review's four axes (§4.1), with its notebook
    publish, cli      offline HTML export and the course site (``mechscope export``)
    course            exercise checks, student and instructor editions
    utils, compat     TransformerLens 3 idioms: ``utils.get_act_name``, ``compat.HookedTransformer``
                      (docs/from_transformerlens.md)
"""

from . import compat, utils
from ._load import load, zoo_models
from .ablation import AblationResult, ablate, ablation_hooks, ablation_sweep
from .acdc import ACDCResult, acdc
from .attribution import (
    IGResult,
    LogitAttributionResult,
    direct_logit_attribution,
    gradient_x_input,
    integrated_gradients,
    saliency,
    smoothgrad,
)
from .cache import ActivationCache
from .causal_tracing import CausalTraceResult, causal_trace
from .ccs import CCSResult, fit_ccs
from .das import DASResult, das, interchange_accuracy, interchange_intervention
from .distill import DistilledTree, distill_tree
from .edge_attribution import EdgeAttributionResult, edge_attribution_patch
from .explore import ExploreApp, explore
from .ground_truth import BenchmarkResult, circuit_discovery_benchmark
from .heads import HeadScoresResult, head_scores
from .hooks import HookPoint
from .information_flow import InformationFlowResult, information_flow
from .lens import LensResult, TunedLens, logit_lens, train_tuned_lens, tuned_lens
from .lens_extra import (
    AttentionLensResult,
    LinearShortcut,
    attention_lens,
    fit_linear_shortcut,
    linear_shortcut_lens,
)
from .models import Transformer, TransformerConfig
from .models.hf import HFModel, wrap
from .patching import PatchResult, activation_patch
from .patching_attr import attribution_patch, compare_to_exact
from .patchscopes import PatchscopeResult, patchscope
from .path_patching import path_patch, path_patch_all
from .probes import Probe, control_task, fit_probe, selectivity, sparse_probe
from .probes_mlp import MLPProbe, fit_mlp_probe, mlp_selectivity
from .protocols import HookedModel
from .reft import ReFT, train_reft
from .scrubbing import Claim, Hypothesis, ScrubResult, scrub
from .similarity import CKAResult, cka, cka_matrix
from .splice import SplicedModel, splice
from .steering import SteeringSweepResult, steer, steering_sweep, steering_vector
from .world import InterventionResult

__version__ = "0.1.0"

__all__ = [
    "ACDCResult",
    "CCSResult",
    "CKAResult",
    "MLPProbe",
    "AblationResult",
    "ActivationCache",
    "BenchmarkResult",
    "Claim",
    "DASResult",
    "DistilledTree",
    "EdgeAttributionResult",
    "ExploreApp",
    "HFModel",
    "HeadScoresResult",
    "HookPoint",
    "HookedModel",
    "Hypothesis",
    "IGResult",
    "InterventionResult",
    "LensResult",
    "LogitAttributionResult",
    "PatchResult",
    "Probe",
    "ReFT",
    "ScrubResult",
    "SteeringSweepResult",
    "Transformer",
    "TransformerConfig",
    "TunedLens",
    "ablate",
    "ablation_hooks",
    "ablation_sweep",
    "acdc",
    "activation_patch",
    "attribution_patch",
    "circuit_discovery_benchmark",
    "compare_to_exact",
    "compat",
    "control_task",
    "das",
    "direct_logit_attribution",
    "distill_tree",
    "edge_attribution_patch",
    "explore",
    "fit_probe",
    "gradient_x_input",
    "head_scores",
    "integrated_gradients",
    "interchange_accuracy",
    "interchange_intervention",
    "load",
    "cka",
    "cka_matrix",
    "fit_ccs",
    "fit_mlp_probe",
    "mlp_selectivity",
    "logit_lens",
    "path_patch",
    "path_patch_all",
    "saliency",
    "smoothgrad",
    "scrub",
    "splice",
    "SplicedModel",
    "selectivity",
    "sparse_probe",
    "steer",
    "steering_sweep",
    "steering_vector",
    "train_reft",
    "train_tuned_lens",
    "tuned_lens",
    "utils",
    "wrap",
    "zoo_models",
    "AttentionLensResult",
    "CausalTraceResult",
    "InformationFlowResult",
    "LinearShortcut",
    "PatchscopeResult",
    "attention_lens",
    "causal_trace",
    "fit_linear_shortcut",
    "information_flow",
    "linear_shortcut_lens",
    "patchscope",
    "__version__",
]
