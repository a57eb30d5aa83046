"""Ground truth for circuit discovery: compiled transformers with a known circuit (review §8).

- ``rasp``: a tiny RASP (Weiss et al. 2021): s-ops, select / aggregate, maps, selector width;
  ``evaluate`` runs a program on a list of tokens.
- ``compiler``: ``compile_program`` sets a ``mechscope.Transformer``'s weights by hand, as
  Tracr does (Lindner et al. 2023), and returns the model with its ``KnownCircuit``.
- ``programs``: frac_prevs, histogram, induction, pair_equal, each with decoy heads.
- ``benchmark``: ``circuit_discovery_benchmark`` scores ACDC, activation / attribution /
  path patching and edge attribution patching (EAP, EAP-IG) against the known circuits
  (precision, recall, ROC AUC), with a random control, in one table (InterpBench's
  question, Gupta et al. 2024).
"""

from .benchmark import (
    METHODS,
    BenchmarkResult,
    circuit_discovery_benchmark,
    precision_recall,
    roc_auc,
)
from .compiler import CompiledProgram, KnownCircuit, compile_program
from .programs import frac_prevs, histogram, induction, pair_equal, standard_programs
from .rasp import (
    Aggregate,
    Indices,
    Map,
    Select,
    SelectorWidth,
    SequenceMap,
    SOp,
    Tokens,
    evaluate,
)

__all__ = [
    "METHODS",
    "Aggregate",
    "BenchmarkResult",
    "CompiledProgram",
    "Indices",
    "KnownCircuit",
    "Map",
    "SOp",
    "Select",
    "SelectorWidth",
    "SequenceMap",
    "Tokens",
    "circuit_discovery_benchmark",
    "compile_program",
    "evaluate",
    "frac_prevs",
    "histogram",
    "induction",
    "pair_equal",
    "precision_recall",
    "roc_auc",
    "standard_programs",
]
