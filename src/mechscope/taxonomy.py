"""Every method mechscope has, placed on the review's four axes (Bereska & Gavves 2024, §4.1).

The review sorts interpretability methods along four axes:

- **causal nature**: ``observational`` methods read what a model computes (probes, lenses,
  SAEs, attributions from gradients or weights); ``interventional`` methods change a
  computation and measure the effect (patching, ablation, steering, scrubbing).
- **learning phase**: ``post-hoc`` methods study a trained model; ``intrinsic`` methods make it
  interpretable by design (architectures, penalties); ``developmental`` methods study how
  structure forms during training.
- **locality**: ``local`` methods explain one input (one prompt's patching map); ``global``
  methods describe the model over a distribution or from its weights alone.
- **comprehensiveness**: ``partial`` methods explain one part (one head, one feature);
  ``comprehensive`` ones aim at a whole behaviour or the whole model.

``both`` marks a method that is used either way (a probe is fitted on a dataset but read on
one input). :data:`METHODS` is the table, :func:`table` shows it in a notebook with a link to
the tutorial that runs each method, and ``tests/unit/test_taxonomy.py`` fails when a public
function of an analysis module is in neither :data:`METHODS` nor :data:`SUPPORT`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

AXES = {
    "causal": ("observational", "interventional"),
    "phase": ("post-hoc", "intrinsic", "developmental"),
    "locality": ("local", "global", "both"),
    "scope": ("partial", "comprehensive", "both"),
}


@dataclass(frozen=True)
class Method:
    """One method: its functions (``module.function`` under ``mechscope``), its place on the
    four axes, the review's section, the notebooks that run it, and its source paper."""

    name: str
    functions: tuple[str, ...]
    causal: str
    phase: str
    locality: str
    scope: str
    section: str
    notebooks: tuple[str, ...]
    paper: str


def _m(name, functions, axes, section, notebooks, paper):
    causal, phase, locality, scope = axes.split("/")
    return Method(name, tuple(functions.split()), causal, phase, locality, scope, section,
                  tuple(notebooks.split()), paper)  # fmt: skip


OBS, INT = "observational", "interventional"
# fmt: off
METHODS: tuple[Method, ...] = (
    _m("Direct logit attribution", "attribution.direct_logit_attribution",
       f"{OBS}/post-hoc/local/partial", "4.2", "01_paradigms 17_self_repair",
       "Elhage et al. 2021"),
    _m("Saliency, gradient x input", "attribution.saliency attribution.gradient_x_input",
       f"{OBS}/post-hoc/local/partial", "2", "01_paradigms", "Simonyan et al. 2014"),
    _m("SmoothGrad", "attribution.smoothgrad", f"{OBS}/post-hoc/local/partial", "2",
       "01_paradigms", "Smilkov et al. 2017"),
    _m("Integrated gradients", "attribution.integrated_gradients",
       f"{OBS}/post-hoc/local/partial", "2", "01_paradigms", "Sundararajan et al. 2017"),
    _m("Logit lens", "lens.logit_lens", f"{OBS}/post-hoc/local/comprehensive", "4.2",
       "06_probes_and_lenses 14_real_code", "nostalgebraist 2020"),
    _m("Tuned lens", "lens.tuned_lens lens.train_tuned_lens lens.compare_lenses",
       f"{OBS}/post-hoc/both/comprehensive", "4.2", "06_probes_and_lenses",
       "Belrose et al. 2023"),
    _m("Attention lens (heads in the vocabulary)", "lens_extra.attention_lens",
       f"{OBS}/post-hoc/local/partial", "4.2", "06_probes_and_lenses", "Sakarvadia et al. 2023"),
    _m("Linear shortcut lens", "lens_extra.fit_linear_shortcut lens_extra.linear_shortcut_lens",
       f"{OBS}/post-hoc/both/comprehensive", "4.2", "06_probes_and_lenses", "Din et al. 2023"),
    _m("Linear probes with control tasks", "probes.fit_probe probes.control_task "
       "probes.selectivity", f"{OBS}/post-hoc/global/partial", "4.2",
       "01_paradigms 06_probes_and_lenses 12_steering", "Alain & Bengio 2016; Hewitt & Liang 2019"),
    _m("Sparse probing", "probes.sparse_probe", f"{OBS}/post-hoc/global/partial", "4.2",
       "01_paradigms 06_probes_and_lenses 14_real_code", "Gurnee et al. 2023"),
    _m("Sparse autoencoders", "sae.evaluate sae.max_cosine_similarity sae.ce_loss_recovered "
       "sae_train.train_sae sae_train.collect_activations", f"{OBS}/post-hoc/global/comprehensive",
       "4.2", "03_sparse_dictionary_learning 14_real_code", "Sharkey et al. 2022; Bricken et al. 2023"),
    _m("Gated SAEs and shrinkage", "sae.relative_reconstruction_bias",
       f"{OBS}/post-hoc/global/comprehensive", "4.2", "03_sparse_dictionary_learning",
       "Rajamanoharan et al. 2024; Wright & Sharkey 2024"),
    _m("SAE features vs supervised probes (board-state coverage)", "sae.property_f1",
       f"{OBS}/post-hoc/global/partial", "4.2", "07_world_models",
       "Karvonen et al. 2024; Makelov et al. 2024"),
    _m("Transcoders", "transcoder.train_transcoder transcoder.load_zoo_transcoder", f"{OBS}/post-hoc/global/comprehensive",
       "4.2", "15_feature_circuits", "Dunefsky et al. 2024"),
    _m("Features as hook points (splicing)", "splice.splice",
       f"{INT}/post-hoc/both/comprehensive", "4.4", "15_feature_circuits",
       "Marks et al. 2024"),
    _m("Head motif scores", "heads.head_scores heads.best_head heads.diagonal_score",
       f"{OBS}/post-hoc/global/partial", "3.3", "00_quickstart 04_induction_heads",
       "Olsson et al. 2022"),
    _m("Universal neurons across seeds", "universality.max_correlation "
       "universality.neuron_correlations universality.rotate_basis",
       f"{OBS}/post-hoc/global/partial", "3.3", "04_induction_heads", "Gurnee et al. 2024"),
    _m("QK / OV circuits and composition", "circuits.qk_circuit circuits.ov_circuit "
       "circuits.full_qk_circuit circuits.full_ov_circuit circuits.copying_scores "
       "circuits.composition_score circuits.composition_scores circuits.composition_baseline",
       f"{OBS}/post-hoc/global/partial", "3.3", "04_induction_heads", "Elhage et al. 2021"),
    _m("Linear representations (analogies, relation directions)",
       "linear_rep.analogy_scores linear_rep.solve_analogy linear_rep.relation_consistency "
       "linear_rep.word_vectors linear_rep.sentence_features",
       f"{OBS}/post-hoc/global/partial", "3.2", "06_probes_and_lenses",
       "Mikolov et al. 2013; Park et al. 2023"),
    _m("World-model probes and edits", "world.fit_state_probe world.activations_at "
       "world.intervene_along world.intervene_to_class world.push_to_class",
       f"{INT}/post-hoc/global/partial", "3.4", "07_world_models",
       "Li et al. 2023; Nanda et al. 2023"),
    _m("Activation patching", "patching.activation_patch", f"{INT}/post-hoc/local/comprehensive",
       "4.3", "01_paradigms 08_activation_patching 16_bigger_models 22_greater_than", "Meng et al. 2022; Heimersheim & Nanda 2024"),
    _m("Causal tracing (Gaussian noise)", "causal_tracing.causal_trace",
       f"{INT}/post-hoc/local/comprehensive", "4.3", "08_activation_patching",
       "Meng et al. 2022"),
    _m("Patchscopes", "patchscopes.patchscope", f"{INT}/post-hoc/local/partial", "4.3",
       "08_activation_patching", "Ghandeharioun et al. 2024"),
    _m("Information-flow routes", "information_flow.information_flow",
       f"{OBS}/post-hoc/local/comprehensive", "5.4", "08_activation_patching",
       "Ferrando & Voita 2024"),
    _m("Attribution patching", "patching_attr.attribution_patch "
       "patching_attr.attribution_patch_sites patching_attr.compare_to_exact",
       f"{INT}/post-hoc/local/comprehensive", "4.3", "09_path_and_attribution_patching",
       "Nanda 2023; Syed et al. 2023"),
    _m("Path patching", "path_patching.path_patch path_patching.path_patch_all",
       f"{INT}/post-hoc/local/partial", "4.3", "09_path_and_attribution_patching 22_greater_than",
       "Wang et al. 2022; Goldowsky-Dill et al. 2023"),
    _m("Automated circuit discovery (ACDC)", "acdc.acdc", f"{INT}/post-hoc/global/comprehensive",
       "4.3", "09_path_and_attribution_patching", "Conmy et al. 2023"),
    _m("Edge attribution patching (EAP, EAP-IG)", "edge_attribution.edge_attribution_patch",
       f"{INT}/post-hoc/local/comprehensive", "4.3", "21_ground_truth",
       "Syed et al. 2023; Hanna et al. 2024"),
    _m("Ablation (zero, mean, resample)", "ablation.ablate ablation.ablation_sweep "
       "ablation.ablation_hooks ablation.ablation_values", f"{INT}/post-hoc/global/partial",
       "4.3", "12_steering 17_self_repair", "Chan et al. 2022"),
    _m("Steering vectors", "steering.steering_vector steering.steer steering.steering_sweep "
       "steering.steering_hooks", f"{INT}/post-hoc/global/partial", "3.2",
       "12_steering", "Turner et al. 2023; Zou et al. 2023"),
    _m("Causal scrubbing", "scrubbing.scrub", f"{INT}/post-hoc/global/comprehensive", "4.3",
       "10_causal_scrubbing_and_abstraction", "Chan et al. 2022"),
    _m("Interchange interventions, DAS", "das.interchange_intervention "
       "das.interchange_accuracy das.das", f"{INT}/post-hoc/global/partial", "4.3",
       "10_causal_scrubbing_and_abstraction", "Geiger et al. 2021, 2024"),
    _m("Representation finetuning (LoReFT)", "reft.train_reft", f"{INT}/post-hoc/global/partial",
       "4.3", "10_causal_scrubbing_and_abstraction", "Wu et al. 2024"),
    _m("Training dynamics over checkpoints", "dynamics.checkpoint_curve dynamics.crossing_step "
       "dynamics.steepest_interval", f"{OBS}/developmental/global/partial", "5.2",
       "11_training_dynamics", "Olsson et al. 2022; Nanda et al. 2023"),
    _m("Attribution graphs", "attribution_graph.attribution_graph",
       f"{OBS}/post-hoc/local/comprehensive", "4.4", "15_feature_circuits",
       "Ameisen et al. 2025"),
    _m("Sparse feature circuits", "feature_circuits.feature_attribution "
       "feature_circuits.feature_circuit feature_circuits.faithfulness "
       "feature_circuits.completeness feature_circuits.faithfulness_curve",
       f"{INT}/post-hoc/local/comprehensive", "4.4", "15_feature_circuits", "Marks et al. 2024"),
    _m("Automated explanations scored by simulation", "explain.simulate_score explain.rule_labels",
       f"{OBS}/post-hoc/global/partial", "5.4", "18_automated_explanations",
       "Bills et al. 2023"),
    _m("Neuron-to-graph: token-pattern explanations", "n2g.neuron_to_graph n2g.fire_score",
       f"{INT}/post-hoc/global/partial", "5.4", "18_automated_explanations",
       "Foote et al. 2023"),
    _m("Backdoor detection (spectral signatures, activation clustering)",
       "backdoor.spectral_signature backdoor.activation_clustering backdoor.detect_poison",
       f"{OBS}/post-hoc/global/partial", "8", "24_safety_cases",
       "Tran et al. 2018; Chen et al. 2018"),
    _m("Compiled transformers with known circuits (discovery benchmark)",
       "ground_truth.compiler.compile_program ground_truth.benchmark.circuit_discovery_benchmark",
       f"{INT}/post-hoc/global/comprehensive", "8", "21_ground_truth",
       "Lindner et al. 2023 (Tracr); Gupta et al. 2024 (InterpBench)"),
    _m("Contrast-consistent search (CCS)", "ccs.fit_ccs ccs.ccs_loss",
       f"{OBS}/post-hoc/global/partial", "2", "23_concepts_without_labels", "Burns et al. 2023"),
    _m("Representational similarity (CKA)", "similarity.cka similarity.cka_matrix",
       f"{OBS}/post-hoc/global/comprehensive", "2", "23_concepts_without_labels",
       "Kornblith et al. 2019"),
    _m("Non-linear (MLP) probes with control tasks",
       "probes_mlp.fit_mlp_probe probes_mlp.mlp_selectivity", f"{OBS}/post-hoc/global/partial",
       "4.2", "23_concepts_without_labels", "Hewitt & Liang 2019; Belinkov 2022"),
    _m("Interpretable architectures (SoLU, activation L1)", "models.transformer.solu",
       f"{OBS}/intrinsic/global/comprehensive", "5.1", "19_intrinsic_interpretability",
       "Elhage et al. 2022 (SoLU)"),
    _m("Bilinear MLP: features from the weights (interaction matrices)",
       "bilinear.interaction_matrix", f"{OBS}/intrinsic/global/comprehensive", "5.1",
       "19_intrinsic_interpretability", "Sharkey 2023; Pearce et al. 2024"),
    _m("Brain-inspired modular training (locality penalty + neuron swaps)", "bimt.train_bimt",
       f"{OBS}/intrinsic/global/comprehensive", "5.1", "19_intrinsic_interpretability",
       "Liu, Gan & Tegmark 2023"),
    _m("Circuit by pruning to a faithfulness target", "bimt.prune_to_faithfulness",
       f"{INT}/post-hoc/global/partial", "5.4", "19_intrinsic_interpretability",
       "Nainani et al. 2024"),
    _m("Local learning coefficient (SGLD)", "llc.estimate_llc llc.reduced_rank_rlct",
       f"{OBS}/developmental/global/comprehensive", "5.2", "20_learning_coefficient",
       "Lau et al. 2023; Watanabe 2009; Aoyagi & Watanabe 2005"),
    _m("Features per neuron (polysemanticity against known features)",
       "monosemanticity.features_per_neuron", f"{OBS}/post-hoc/global/comprehensive", "3.2",
       "19_intrinsic_interpretability", "Elhage et al. 2022; Gurnee et al. 2023"),
    _m("Irreducibility of a 2-D feature (separability, mixture index)",
       "irreducibility.separability_index irreducibility.mixture_index",
       f"{OBS}/post-hoc/global/partial", "3.1", "05_grokking_and_modular_addition",
       "Engels et al. 2024"),
    _m("Disentanglement of a basis against known factors (DCI)", "disentangle.dci",
       f"{OBS}/post-hoc/global/comprehensive", "8", "02_superposition", "Eastwood & Williams 2018"),
    _m("Identifiable latents: linear ICA scored by MCC (the base case of causal representation "
       "learning)", "identifiability.fast_ica identifiability.mean_correlation_coefficient",
       f"{OBS}/post-hoc/global/comprehensive", "8", "02_superposition",
       "Comon 1994; Hyvärinen & Oja 2000; Khemakhem et al. 2020"),
    _m("Input-pattern vs abstract features (held-out eta² of the token)",
       "disentangle.eta_squared", f"{OBS}/post-hoc/global/partial", "3.1", "14_real_code",
       "Pearson 1905 (correlation ratio); review §3.1"),
    _m("Feature visualization (activation maximisation)",
       "vision.featvis.visualize vision.featvis.total_variation vision.featvis.high_frequency_energy",
       f"{OBS}/post-hoc/global/partial", "4.2", "25_vision", "Olah et al. 2017"),
    _m("Max-activating dataset examples (class purity)", "vision.examples.purity",
       f"{OBS}/post-hoc/global/partial", "4.2", "25_vision", "Olah et al. 2017; Bricken et al. 2023"),
    _m("Goal redirection in an RL agent (encoding-to-encoding edit)",
       "rl.rollout.redirect rl.rollout.goal_encodings", f"{INT}/post-hoc/local/partial", "3.4",
       "26_reinforcement_learning", "Mini et al. 2023; Li et al. 2023"),
    _m("Policy distillation into a decision tree (a program of decoded features)",
       "distill.distill_tree distill.policy_readout", f"{OBS}/post-hoc/global/comprehensive", "8",
       "26_reinforcement_learning", "Bastani et al. 2018 (VIPER); Frosst & Hinton 2017"),
    _m("Edge-detector scores of filters", "vision.filters.edge_score",
       f"{OBS}/post-hoc/global/partial", "3.3", "25_vision", "Olah et al. 2020 (Zoom In)"),
    _m("Curve detectors (tuning curves over orientation) and branch specialization (ablation)",
       "vision.curves.tuning_curves vision.curves.branch_ablation",
       f"{OBS}/post-hoc/global/partial", "3.3", "25_vision",
       "Cammarata et al. 2020 (Curve Detectors); Voss et al. 2021 (Branch Specialization)"),
    _m("Adversarial examples (FGSM, PGD) against same-size random noise",
       "vision.adversarial.fgsm vision.adversarial.pgd vision.adversarial.random_noise",
       f"{INT}/post-hoc/local/partial", "8", "25_vision",
       "Goodfellow et al. 2015; Madry et al. 2018; Ilyas et al. 2019"),
    _m("Adversarial training and saliency alignment",
       "vision.adversarial.adversarial_training vision.adversarial.input_gradient "
       "vision.adversarial.saliency_alignment", f"{OBS}/intrinsic/global/comprehensive", "8",
       "25_vision", "Tsipras et al. 2019; Engstrom et al. 2019; Wong et al. 2020"),
    _m("Obfuscation attack on activation-based detectors", "backdoor.obfuscation_loss",
       f"{INT}/post-hoc/global/partial", "7", "24_safety_cases", "Bailey et al. 2024"),
)
# fmt: on

# Public functions of analysis modules that are not methods in the review's sense: loaders,
# data helpers, validators. Each says what it is, so the test can tell them from omissions.
SUPPORT: dict[str, str] = {
    "sae.check_finite": "validates activations before training",
    "sae.check_hook_name": "validates an SAE's hook name",
    "sae.zoo_sae_dir": "where the shipped SAEs live",
    "sae.zoo_saes": "lists the shipped SAEs",
    "sae.load_zoo_sae": "loads a shipped SAE",
    "sae_train.synthetic_superposition": "synthetic data with known features",
    "sae_train.synthetic_coefficients": "the true feature activations of that data",
    "transcoder.zoo_transcoders": "lists the shipped transcoders",
    "linear_rep.vocabulary": "MiniLM's vocabulary",
    "linear_rep.vocab_words": "whole words of a vocabulary",
    "linear_rep.tense_sentences": "a dataset of sentences",
    "steering.random_direction": "the random-direction control",
    "bimt.two_task_data": "the two-task toy data BIMT is trained on",
    "bimt.connection_cost": "the wiring cost BIMT penalises (a sanity check, not a finding)",
    "bimt.accuracy": "held-out accuracy of a BIMT toy",
    "das.random_basis": "the random-subspace control",
    "das.subspace_overlap": "compares two subspaces",
    "explain.format_prompt": "formats an LLM explainer's prompt",
    "ground_truth.benchmark.roc_auc": "scores a ranking against known labels",
    "ground_truth.benchmark.precision_recall": "scores a prediction against known labels",
    "ground_truth.programs.frac_prevs": "a compiled test program",
    "ground_truth.programs.histogram": "a compiled test program",
    "ground_truth.programs.induction": "a compiled test program",
    "ground_truth.programs.pair_equal": "a compiled test program",
    "ground_truth.programs.standard_programs": "the benchmark's default programs",
    "ground_truth.rasp.walk": "lists a RASP program's operations",
    "ground_truth.rasp.evaluate": "runs a RASP program directly (the reference)",
    "vision.cnn.load_digits": "scikit-learn's bundled 8x8 digits, split",
    "vision.cnn.accuracy": "a classifier's accuracy",
    "vision.cnn.zoo_vision_dir": "where the shipped vision models live",
    "vision.cnn.load_zoo_cnn": "loads the shipped CNN",
    "vision.cnn.spatial_rows": "reshapes conv activations to one row per position",
    "vision.examples.image_acts": "collects activations over images",
    "vision.filters.sobel_filters": "reference edge filters",
    "vision.filters.gabor_filters": "reference oriented filters",
    "vision.curves.shape_images": "generated curve, line and blob stimuli",
    "vision.curves.curve_dataset": "the curve-orientation task curves-cnn is trained on",
    "vision.curves.load_curve_cnn": "loads a shipped curve CNN",
    "llc.next_token_loss": "the language-model loss an LLC estimate samples",
    "rl.rollout.rollout": "runs episodes",
    "rl.rollout.evaluate": "success rate and steps against the optimum or a random policy",
    "rl.agent.train_agent": "imitation training of the agent",
    "rl.agent.load_zoo_agent": "loads the shipped agent",
    "rl.agent.zoo_rl_dir": "where the shipped agents live",
    "backdoor.precision_recall": "scores flagged inputs against the known poisoned ones",
    "distill.fidelity": "agreement of a surrogate's predictions with the model's",
}


def _check(**filters) -> None:
    for axis, value in filters.items():
        if axis not in AXES:
            raise TypeError(f"table() got an unknown axis {axis!r}; the axes are {sorted(AXES)}.")
        if value is not None and value not in AXES[axis]:
            raise ValueError(
                f"{axis}={value!r} is not a value of that axis; expected one of {AXES[axis]}."
            )


def methods(**filters) -> tuple[Method, ...]:
    """The methods matching every given axis value, e.g. ``methods(causal="interventional")``.
    A method marked ``both`` on an axis matches either value of that axis."""
    _check(**filters)
    return tuple(
        m
        for m in METHODS
        if all(v is None or getattr(m, a) in (v, "both") for a, v in filters.items())
    )


@dataclass(frozen=True)
class TaxonomyTable:
    """The methods as a table: HTML in a notebook (each notebook a link), markdown in text."""

    rows: tuple[Method, ...]
    link_prefix: str = ""  # prepended to "NN_name.ipynb" in links (notebooks/ from the repo root)

    def counts(self, axis: str) -> dict[str, int]:
        """How many rows take each value of ``axis``."""
        _check(**{axis: None})
        return {v: sum(getattr(m, axis) == v for m in self.rows) for v in AXES[axis]}

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("method", *AXES, "§", "notebooks", "paper"))
        body = []
        for m in self.rows:
            links = ", ".join(
                f'<a href="{html.escape(self.link_prefix + nb)}.ipynb">{html.escape(nb[:2])}</a>'
                for nb in m.notebooks
            )
            cells = [m.name, m.causal, m.phase, m.locality, m.scope, m.section]
            tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
            body.append(f"<tr>{tds}<td>{links}</td><td>{html.escape(m.paper)}</td></tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def _repr_markdown_(self) -> str:
        lines = ["| method | " + " | ".join(AXES) + " | § | notebooks |", "|---" * 7 + "|"]
        for m in self.rows:
            nbs = ", ".join(f"[{nb[:2]}]({self.link_prefix}{nb}.ipynb)" for nb in m.notebooks)
            lines.append(
                f"| {m.name} | {m.causal} | {m.phase} | {m.locality} | {m.scope} | {m.section} "
                f"| {nbs} |"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"TaxonomyTable({len(self.rows)} methods)"


def table(*, causal=None, phase=None, locality=None, scope=None, link_prefix="") -> TaxonomyTable:
    """The taxonomy as a :class:`TaxonomyTable`, filtered by any axis (see :func:`methods`)."""
    rows = methods(causal=causal, phase=phase, locality=locality, scope=scope)
    return TaxonomyTable(rows, link_prefix)
