"""Is a basis disentangled, and is a feature about the input token or something abstract?

Two measurements of what a basis of activations means (review §8's terminology, §3.1):

- :func:`dci`: how well single basis directions (neurons, SAE features, any code) line up with
  known ground-truth factors. After the DCI framework of Eastwood & Williams (2018), "A
  framework for the quantitative evaluation of disentangled representations": an importance
  matrix ``R [code, factor]``; a code's *disentanglement* is ``1 - H_K(P_i.)``, one minus the
  entropy (base ``K`` = number of factors) of its row normalised to a distribution, so 1 =
  the code reads one factor only, 0 = it reads all equally; the total is their mean weighted by
  each code's share of the importance. *Completeness* is the same down the columns: 1 = each
  factor is read by one code. Eastwood & Williams take ``R`` from a lasso or random forest
  that predicts each factor from all codes; we take the **squared correlation** of each code
  alone with each factor (the variance of the factor the code explains on its own), which
  stays meaningful for overcomplete, collinear codes such as an SAE's features, where
  regression weights are arbitrary. On ``n`` samples unrelated pairs still get a squared
  correlation of about ``1 / n``, so a perfect code scores a little under 1 (0.999 at n = 4000).
- :func:`eta_squared`: how much of each feature's activation variance the current token's
  identity explains (the correlation ratio eta², Pearson 1905), measured **held out**: the
  per-token mean activation is fitted on one random part of the positions and scored as an
  R² on the rest (tokens not seen in the fit are predicted by the overall mean). In-sample
  eta² is biased up by one free mean per token type (shuffled activations still score
  ``(n_types - 1) / (n - 1)`` on average), the held-out R² is not. A feature whose variance
  the token explains is an *input-pattern* feature; one it does not explain responds to
  something abstract (context, syntax), review §3.1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._matrices import data_matrix


@dataclass(frozen=True)
class DisentanglementResult:
    """DCI disentanglement and completeness of a code against known factors.

    values: ``[code, factor]`` importance, the squared correlation of each code with each factor.
    per_code: ``[code]`` each code's disentanglement (1 = reads one factor; 0 for a code that
    reads nothing). per_factor: ``[factor]`` each factor's completeness (1 = one code reads it).
    disentanglement / completeness: the totals, weighted by each code's / factor's share of the
    importance. best_correlation: ``[factor]`` the largest ``|corr|`` of any single code with
    each factor (1 = some code reads the factor exactly).
    """

    values: torch.Tensor
    per_code: torch.Tensor
    per_factor: torch.Tensor
    disentanglement: float
    completeness: float
    best_correlation: torch.Tensor


def _as_matrix(x, name: str) -> torch.Tensor:
    return data_matrix(x, name, min_rows=2, row="input")


def _standardise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns centred and scaled to unit std; constant columns zeroed. Also the live mask."""
    centred = x - x.mean(0)
    std = centred.pow(2).mean(0).sqrt()
    live = std > 1e-9 * (1 + x.abs().amax(0))
    return centred / torch.where(live, std, torch.ones_like(std)) * live, live


def _one_minus_entropy(p: torch.Tensor, dim: int) -> torch.Tensor:
    """1 - entropy of the rows (dim=1) or columns (dim=0) of non-negative ``p``, base = their length."""
    total = p.sum(dim, keepdim=True)
    q = p / total.clamp_min(1e-300)
    h = -(q * torch.log(q.clamp_min(1e-300))).sum(dim) / math.log(max(p.shape[dim], 2))
    return torch.where(total.squeeze(dim) > 0, 1 - h, torch.zeros_like(h))


def dci(acts, factors) -> DisentanglementResult:
    """DCI disentanglement of a code (Eastwood & Williams 2018) with a correlation importance.

    acts: ``[n, code]`` the code of ``n`` inputs (hidden neurons, SAE feature activations, a
    rotated basis). factors: ``[n, factor]`` the ground-truth factors of the same inputs (a toy
    model's input features). Importance ``R = corr(code, factor)²``; constant codes or factors
    get importance 0. Returns a :class:`DisentanglementResult`.
    """
    a, f = _as_matrix(acts, "acts"), _as_matrix(factors, "factors")
    if a.shape[0] != f.shape[0]:
        raise ValueError(
            f"acts has {a.shape[0]} rows and factors {f.shape[0]}; pass the same inputs to both "
            f"(one row per input)."
        )
    if f.shape[1] < 2:
        raise ValueError(
            f"factors has {f.shape[1]} column; disentanglement needs >= 2 factors to choose between."
        )
    za, live_a = _standardise(a)
    zf, _ = _standardise(f)
    corr = za.T @ zf / a.shape[0]  # [code, factor]
    importance = corr.pow(2)
    if not live_a.any() or importance.sum() == 0:
        raise ValueError(
            "No code varies with any factor (all codes constant or uncorrelated); check that acts "
            "and factors come from the same inputs."
        )
    per_code = _one_minus_entropy(importance, 1)
    per_factor = _one_minus_entropy(importance, 0)
    share_code = importance.sum(1) / importance.sum()
    share_factor = importance.sum(0) / importance.sum()
    return DisentanglementResult(
        values=importance.float(),
        per_code=per_code.float(),
        per_factor=per_factor.float(),
        disentanglement=float((share_code * per_code).sum()),
        completeness=float((share_factor * per_factor).sum()),
        best_correlation=corr.abs().amax(0).float(),
    )


@dataclass(frozen=True)
class EtaSquaredResult:
    """How much of each feature's variance the token identity explains.

    values: ``[feature]`` held-out R² of the per-token mean (nan where the feature is constant on
    the held-out part); can be below 0 when the fitted means generalise worse than the overall
    mean. in_sample: ``[feature]`` eta² on all rows (biased up by one mean per token type).
    n_train, n_test: rows in the two parts; n_types: distinct tokens in the fitting part.
    """

    values: torch.Tensor
    in_sample: torch.Tensor
    n_train: int
    n_test: int
    n_types: int

    def input_pattern(self, threshold: float = 0.5) -> torch.Tensor:
        """``[feature]`` bools: the token explains at least ``threshold`` of the held-out variance."""
        return self.values >= threshold


def _group_means(acts: torch.Tensor, labels: torch.Tensor, n_groups: int) -> torch.Tensor:
    sums = torch.zeros(n_groups, acts.shape[1], dtype=acts.dtype).index_add_(0, labels, acts)
    counts = torch.bincount(labels, minlength=n_groups).to(acts.dtype)
    return sums / counts.clamp_min(1)[:, None], counts


def eta_squared(acts, labels, *, test_frac: float = 0.5, seed: int = 0) -> EtaSquaredResult:
    """Held-out share of each feature's variance explained by a categorical label (eta²).

    acts: ``[n, feature]`` activations, one row per token position. labels: ``[n]`` ints, e.g.
    the token id at each position. The rows are split at random (seeded, ``test_frac`` held
    out); each label's mean activation is fitted on the rest and scored as an R² on the
    held-out rows. A label unseen in the fit is predicted by the fitted overall mean.
    """
    a = _as_matrix(acts, "acts")
    y = torch.as_tensor(labels)
    if y.dim() != 1 or y.shape[0] != a.shape[0]:
        raise ValueError(
            f"labels has shape {list(y.shape)}; expected [{a.shape[0]}], one int per row of acts "
            f"(flatten [batch, pos] token ids with .flatten())."
        )
    if y.is_floating_point() or y.dtype == torch.bool or (len(y) and int(y.min()) < 0):
        raise ValueError(
            f"labels must be non-negative integer ids (dtype {y.dtype} given); e.g. token ids."
        )
    if not isinstance(test_frac, float | int) or not 0 < test_frac < 1:
        raise ValueError(f"test_frac={test_frac!r}; expected a fraction in (0, 1), e.g. 0.5.")
    n = a.shape[0]
    n_test = int(round(n * test_frac))
    if n_test < 1 or n - n_test < 1:
        raise ValueError(
            f"test_frac={test_frac} leaves {n - n_test} rows to fit and {n_test} to test out of "
            f"{n}; pass more rows or a test_frac nearer 0.5."
        )
    y = y.long()
    n_groups = int(y.max()) + 1
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    test, train = order[:n_test], order[n_test:]
    means, counts = _group_means(a[train], y[train], n_groups)
    overall = a[train].mean(0)
    seen = counts > 0
    predicted = torch.where(seen[y[test], None], means[y[test]], overall)
    held = a[test]
    total = (held - held.mean(0)).pow(2).sum(0)
    residual = (held - predicted).pow(2).sum(0)
    varies = total > 1e-12 * (1 + held.abs().amax(0)) ** 2
    r2 = torch.where(varies, 1 - residual / total.clamp_min(1e-300), torch.nan)
    all_means, _ = _group_means(a, y, n_groups)
    between = (all_means[y] - a.mean(0)).pow(2).sum(0)
    total_all = (a - a.mean(0)).pow(2).sum(0)
    in_sample = torch.where(total_all > 0, between / total_all.clamp_min(1e-300), torch.nan)
    return EtaSquaredResult(
        values=r2.float(),
        in_sample=in_sample.float(),
        n_train=len(train),
        n_test=n_test,
        n_types=int(seen.sum()),
    )


__all__ = ["DisentanglementResult", "EtaSquaredResult", "dci", "eta_squared"]
