"""Score circuit-discovery methods against compiled circuits (Tracr / InterpBench style).

Compiled transformers (Lindner et al. 2023, "Tracr"; Gupta et al. 2024, "InterpBench") are
the one place where the true circuit is known, so a discovery method's output can be scored
against it. :func:`circuit_discovery_benchmark` runs each method mechscope has on each
compiled program (``mechscope.ground_truth.programs``) with the same clean / corrupted
prompts and the same normalised metric (1 = clean output, 0 = corrupted), and scores

- **nodes** (heads): ACDC (``mechscope.acdc``; score = the distance its removal added),
  activation patching of each head's ``z`` (``activation_patch(site="z")``), attribution
  patching (``attribution_patch(site="z")``) and path patching to the logits
  (``path_patch_all``; score = |metric - corrupted|);
- **edges** (sender head -> a later head's q / k / v input, or the logits): path patching
  with that one receiver (Wang et al. 2022; MLPs recompute, so they fold into the edge),
  edge attribution patching (Syed et al. 2023; ``edge_attribution_patch``, MLPs folded the
  same way) and EAP-IG (Hanna et al. 2024; ``EAP_IG_STEPS`` steps); scores are ``|effect|``;
- a **random** control at both levels: uniform scores, the mean over 100 draws.

Precision and recall are over the predicted set (score >= ``threshold``; ACDC's kept
heads; random: score > 0.5), ROC AUC over the scores (ties count half).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..acdc import acdc
from ..edge_attribution import edge_attribution_patch
from ..metrics import normalized
from ..patching import activation_patch
from ..patching_attr import attribution_patch
from ..path_patching import path_patch_all
from .compiler import CompiledProgram

__all__ = [
    "EAP_IG_STEPS",
    "METHODS",
    "BenchmarkResult",
    "circuit_discovery_benchmark",
    "precision_recall",
    "roc_auc",
]

METHODS = ("ACDC", "activation patching", "attribution patching", "path patching",
           "edge attribution patching", "EAP-IG", "random")  # fmt: skip
# EAP-IG's interpolation steps. On the compiled induction model 5 steps miss the K-composition
# edge (its softmax is saturated: the attention flips within a sliver of the path, which 5
# points rarely hit); from 25 on its estimate is within 1.5x of the exact effect
# (tests/unit/test_edge_attribution.py).
EAP_IG_STEPS = 25
N_RANDOM = 100  # draws averaged for the random control


def roc_auc(scores, labels) -> float:
    """The probability that a random positive scores above a random negative (ties count
    half): 1 = perfect ranking, 0.5 = chance. NaN without both classes.

    scores: ``[n]`` numbers; labels: ``[n]`` bools (True = in the circuit).
    """
    s = torch.as_tensor(scores, dtype=torch.float64).flatten()
    y = torch.as_tensor(labels, dtype=torch.bool).flatten()
    if s.shape != y.shape:
        raise ValueError(f"scores has {s.numel()} entries but labels {y.numel()}; align them.")
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())


def precision_recall(predicted, labels) -> tuple[float, float]:
    """``(precision, recall)`` of the predicted set. Precision is NaN when nothing is
    predicted, recall NaN when nothing is true.

    predicted, labels: ``[n]`` bools.
    """
    p = torch.as_tensor(predicted, dtype=torch.bool).flatten()
    y = torch.as_tensor(labels, dtype=torch.bool).flatten()
    if p.shape != y.shape:
        raise ValueError(f"predicted has {p.numel()} entries but labels {y.numel()}; align them.")
    tp = int((p & y).sum())
    precision = tp / int(p.sum()) if p.any() else float("nan")
    recall = tp / int(y.sum()) if y.any() else float("nan")
    return precision, recall


@dataclass(frozen=True)
class BenchmarkResult:
    """One row per (program, level, method).

    rows: dicts with ``program``, ``level`` (``"nodes"`` / ``"edges"``), ``method``,
        ``precision``, ``recall``, ``roc_auc``, ``n_true``, ``n_candidates``, ``seconds``.
    values: ``[row, 3]``: precision, recall, ROC AUC.
    scores: ``{(program, level, method): (candidates, scores [n], predicted [n])}``.
    threshold: the score threshold used for the predicted sets.
    """

    rows: tuple
    values: torch.Tensor
    threshold: float
    scores: dict = field(repr=False, default_factory=dict)

    def row(self, program: str, method: str, level: str = "nodes") -> dict:
        """The row of one program, method and level."""
        for r in self.rows:
            if (r["program"], r["method"], r["level"]) == (program, method, level):
                return r
        have = sorted({(r["program"], r["level"], r["method"]) for r in self.rows})
        raise KeyError(f"No row ({program!r}, {method!r}, {level!r}); rows: {have}.")

    def to_table(self) -> str:
        """A Markdown table, one line per row (numbers to 2 decimals, n/a for NaN)."""

        def num(x):
            return "n/a" if x != x else f"{x:.2f}"

        lines = [
            "| program | level | method | precision | recall | ROC AUC | true / candidates |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in self.rows:
            lines.append(
                f"| {r['program']} | {r['level']} | {r['method']} | {num(r['precision'])} | "
                f"{num(r['recall'])} | {num(r['roc_auc'])} | {r['n_true']} / {r['n_candidates']} |"
            )
        return "\n".join(lines)


def _head_grid(values: torch.Tensor, reference: float) -> torch.Tensor:
    return (values - reference).abs().flatten()  # [layer * head]


def _node_methods(cp: CompiledProgram, clean, corrupted, metric, threshold):
    model = cp.model
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    out = {}
    t = time.perf_counter()
    res = acdc(model, clean, corrupted, metric, tau=threshold)
    delta = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for step in res.history:
        delta[step["head"]] = step["delta"]
    out["ACDC"] = (delta.flatten(), res.mask().flatten(), time.perf_counter() - t)
    for name, fn in (("activation patching", activation_patch),
                     ("attribution patching", attribution_patch)):  # fmt: skip
        t = time.perf_counter()
        r = fn(model, clean, corrupted, metric, "z")
        s = _head_grid(r.values, r.corrupted_value)
        out[name] = (s, s >= threshold, time.perf_counter() - t)
    t = time.perf_counter()
    r = path_patch_all(model, clean, corrupted, metric, hooks=[last])
    s = _head_grid(r.values, r.corrupted_value)
    out["path patching"] = (s, s >= threshold, time.perf_counter() - t)
    return out


def _edge_scores(cp: CompiledProgram, clean, corrupted, metric, threshold):
    model = cp.model
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    t = time.perf_counter()
    found: dict = {}
    receivers = {"logits": f"blocks.{n_layers - 1}.hook_resid_post"}
    for la in range(1, n_layers):
        for h in range(n_heads):
            for c in "qkv":
                receivers[f"L{la}H{h}.{c}"] = (f"blocks.{la}.attn.hook_{c}", h)
    for label, hook in receivers.items():
        r = path_patch_all(model, clean, corrupted, metric, hooks=[hook])
        eff = (r.values - r.corrupted_value).abs()
        for la in range(n_layers):
            for h in range(n_heads):
                found[(f"L{la}H{h}", label)] = float(eff[la, h])
    s = torch.tensor([found[e] for e in cp.circuit.candidate_edges])
    out = {"path patching": (s, s >= threshold, time.perf_counter() - t)}
    for name, method, steps in (("edge attribution patching", "eap", 1),
                                ("EAP-IG", "eap-ig", EAP_IG_STEPS)):  # fmt: skip
        t = time.perf_counter()
        r = edge_attribution_patch(model, clean, corrupted, metric, method=method, steps=steps)
        got = r.as_dict()
        s = torch.tensor([abs(got[e]) for e in cp.circuit.candidate_edges])
        out[name] = (s, s >= threshold, time.perf_counter() - t)
    return out


def _row(program, level, method, scores, predicted, labels, seconds):
    precision, recall = precision_recall(predicted, labels)
    return {
        "program": program,
        "level": level,
        "method": method,
        "precision": precision,
        "recall": recall,
        "roc_auc": roc_auc(scores, labels),
        "n_true": int(torch.as_tensor(labels).sum()),
        "n_candidates": len(labels),
        "seconds": seconds,
    }


def _random_row(program, level, labels, gen):
    draws = torch.rand(N_RANDOM, len(labels), generator=gen)
    rows = [_row(program, level, "random", d, d > 0.5, labels, 0.0) for d in draws]
    avg = dict(rows[0])
    for key in ("precision", "recall", "roc_auc"):
        vals = torch.tensor([r[key] for r in rows], dtype=torch.float64)
        avg[key] = float(vals[~vals.isnan()].mean()) if (~vals.isnan()).any() else float("nan")
    return avg, draws[0]


def circuit_discovery_benchmark(
    programs: Sequence[CompiledProgram] | None = None,
    *,
    n_samples: int = 32,
    threshold: float = 0.05,
    seed: int = 0,
) -> BenchmarkResult:
    """Run every discovery method on every compiled program and score it (module docstring).

    programs: compiled programs (default: ``programs.standard_programs()``).
    n_samples: clean prompts per program (corrupted prompts: as many, another seed).
    threshold: a head or edge is predicted when its score (in units of the normalised
        metric: 1 = the whole clean-vs-corrupted gap) is at least this; ACDC's ``tau``.
    seed: the prompts' and the random control's seed.

    The compiled models are left as they came (every method removes its hooks).
    """
    from .programs import standard_programs

    if programs is None:
        programs = standard_programs()
    if isinstance(programs, CompiledProgram):
        programs = [programs]
    bad = [p for p in programs if not isinstance(p, CompiledProgram)]
    if bad:
        raise TypeError(
            f"programs contains {type(bad[0]).__name__}; expected CompiledProgram objects, e.g. "
            "mechscope.ground_truth.programs.histogram()."
        )
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
        raise ValueError(f"threshold={threshold!r}; expected a number >= 0, e.g. 0.05.")
    gen = torch.Generator().manual_seed(seed)
    rows, scores = [], {}
    for cp in programs:
        clean = cp.sample(n_samples, seed=seed)
        corrupted = cp.sample(n_samples, seed=seed + 1)
        raw = cp.metric(clean)
        with torch.no_grad():
            clean_v = raw(cp.model(clean)).mean()
            corrupted_v = raw(cp.model(corrupted)).mean()
        metric = normalized(raw, clean_v, corrupted_v)
        for level, labels, methods in (
            ("nodes", cp.circuit.head_labels(), _node_methods),
            ("edges", cp.circuit.edge_labels(), _edge_scores),
        ):
            cands = cp.circuit.heads if level == "nodes" else cp.circuit.candidate_edges
            for method, (s, pred, sec) in methods(cp, clean, corrupted, metric, threshold).items():
                rows.append(_row(cp.name, level, method, s, pred, labels, sec))
                scores[cp.name, level, method] = (cands, s, pred)
            row, draw = _random_row(cp.name, level, labels, gen)
            rows.append(row)
            scores[cp.name, level, "random"] = (cands, draw, draw > 0.5)
    values = torch.tensor([[r["precision"], r["recall"], r["roc_auc"]] for r in rows])
    return BenchmarkResult(tuple(rows), values, float(threshold), scores)
