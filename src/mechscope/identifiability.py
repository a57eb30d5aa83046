"""Identifiable latents: linear ICA and the mean correlation coefficient (review §8).

Causal representation learning asks when the latent variables behind observations can be
recovered from the observations alone. Its simplest solved case is linear ICA: ``x = A s`` with
independent, **non-Gaussian** sources ``s`` and a full-rank mixing ``A`` is identifiable up to
permutation and scale (Comon 1994, "Independent component analysis, a new concept?"). With
Gaussian sources it is not: any rotation of whitened Gaussian data is Gaussian and independent
again. PCA only whitens; the rotation after whitening is what ICA chooses, by maximising
non-Gaussianity. This is the linear, i.i.d. base case, not causal representation learning
proper (no interventions, no causal graph between the latents).

- :func:`fast_ica`: symmetric FastICA with the log-cosh contrast (Hyvärinen & Oja 2000,
  "Independent component analysis: algorithms and applications"). Its result also holds the
  whitened data (the principal components at unit variance), so PCA and a random rotation of
  the same whitening are one line away: the three differ only in the rotation.
- :func:`mean_correlation_coefficient`: MCC, the metric of the nonlinear-ICA literature
  (Hyvärinen & Morioka 2016; Khemakhem et al. 2020): the mean ``|corr|`` between each true latent
  and the recovered component it is matched to, under the best one-to-one matching (Hungarian
  algorithm, written here). With fewer components than latents (an overcomplete world), the
  unmatched latents count 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._matrices import data_matrix


@dataclass(frozen=True)
class ICAResult:
    """FastICA's estimate. ``sources = (x - mean) @ unmixing.T``, each at unit variance.

    sources: ``[n, k]`` the recovered components (order and sign arbitrary, as ICA promises).
    unmixing: ``[k, d]``. mean: ``[d]``. whitened: ``[n, k]`` the top ``k`` principal components
    scaled to unit variance (PCA); ``sources = whitened @ rotation.T``. rotation: ``[k, k]``
    orthogonal, the part ICA adds to PCA. n_steps: fixed-point iterations run. converged: the
    rotation changed by less than ``tol`` in the last one.
    """

    sources: torch.Tensor
    unmixing: torch.Tensor
    mean: torch.Tensor
    whitened: torch.Tensor
    rotation: torch.Tensor
    n_steps: int
    converged: bool

    def transform(self, acts) -> torch.Tensor:
        """``[n, d]`` new observations -> ``[n, k]`` their components."""
        acts = _as_data(acts, "acts")
        return ((acts - self.mean.double()) @ self.unmixing.double().T).float()


def _as_data(x, name: str) -> torch.Tensor:
    return data_matrix(x, name, min_rows=3, row="sample")


def _symmetric_orthogonalise(w: torch.Tensor) -> torch.Tensor:
    """``(W Wᵀ)^(-1/2) W``: the orthogonal matrix nearest ``W`` (all rows treated alike)."""
    u, _, vh = torch.linalg.svd(w)
    return u @ vh


def fast_ica(acts, *, k: int | None = None, steps: int = 200, tol: float = 1e-6,
             seed: int = 0) -> ICAResult:  # fmt: skip
    """Symmetric FastICA (Hyvärinen & Oja 2000) with ``g = tanh`` (the log-cosh contrast).

    acts: ``[n, d]`` observations, one row per sample. k: how many components (default ``d``);
    at most the rank of ``acts``: ICA cannot find more sources than dimensions. The data are
    centred and whitened by PCA onto ``k`` components, then an orthogonal rotation is found by
    the fixed point ``W <- E[z g(Wz)ᵀ]ᵀ - diag(E[g'(Wz)]) W``, re-orthogonalised symmetrically,
    from a random rotation (``seed``) for at most ``steps`` iterations or until it moves less
    than ``tol``.
    """
    data = _as_data(acts, "acts")
    n, d = data.shape
    k = d if k is None else k
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d:
        raise ValueError(f"k={k!r}; expected an int in 1..{d} (acts has {d} columns).")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}; expected an int >= 1.")
    mean = data.mean(0)
    centred = data - mean
    eigvals, eigvecs = torch.linalg.eigh(centred.T @ centred / n)  # ascending
    eigvals, eigvecs = eigvals.flip(0)[:k], eigvecs.flip(1)[:, :k]
    if eigvals[-1] <= 1e-10 * eigvals[0].clamp_min(1e-300):
        raise ValueError(
            f"acts has fewer than k={k} directions of non-zero variance (eigenvalues "
            f"{[round(float(v), 6) for v in eigvals]}); pass a smaller k."
        )
    whitening = eigvecs.T / eigvals.sqrt()[:, None]  # [k, d]
    z = centred @ whitening.T  # [n, k], unit covariance
    gen = torch.Generator().manual_seed(seed)
    w = _symmetric_orthogonalise(torch.randn(k, k, generator=gen, dtype=torch.float64))
    converged, n_steps = False, 0
    while n_steps < steps and not converged:
        n_steps += 1
        g = torch.tanh(z @ w.T)  # [n, k]
        w_new = g.T @ z / n - (1 - g.pow(2)).mean(0)[:, None] * w
        w_new = _symmetric_orthogonalise(w_new)
        change = float(((w_new * w).sum(1).abs() - 1).abs().max())  # rows equal up to sign
        w, converged = w_new, change < tol
    return ICAResult(
        sources=(z @ w.T).float(),
        unmixing=(w @ whitening).float(),
        mean=mean.float(),
        whitened=z.float(),
        rotation=w.float(),
        n_steps=n_steps,
        converged=converged,
    )


def _assignment(cost: torch.Tensor) -> list[int]:
    """Hungarian algorithm (shortest augmenting paths, O(r² c)) for ``cost [r, c]``, r <= c:
    the column of each row in the one-to-one matching of least total cost."""
    r, c = cost.shape
    a = [[0.0] * (c + 1)] + [[0.0] + row for row in cost.tolist()]  # 1-based
    u, v = [0.0] * (r + 1), [0.0] * (c + 1)
    row_of = [0] * (c + 1)  # row_of[j]: the row matched to column j (0 = none)
    for i in range(1, r + 1):
        row_of[0], j0 = i, 0
        minv, used, way = [float("inf")] * (c + 1), [False] * (c + 1), [0] * (c + 1)
        while row_of[j0] != 0:
            used[j0] = True
            i0, delta, j1 = row_of[j0], float("inf"), 0
            for j in range(1, c + 1):
                if not used[j]:
                    cur = a[i0][j] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(c + 1):
                if used[j]:
                    u[row_of[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
        while j0:  # flip the augmenting path
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    col_of = [0] * r
    for j in range(1, c + 1):
        if row_of[j]:
            col_of[row_of[j] - 1] = j - 1
    return col_of


@dataclass(frozen=True)
class MCCResult:
    """Mean correlation coefficient of recovered components against the true latents.

    mcc: the mean of ``per_latent`` (1 = every latent recovered up to permutation and scale).
    per_latent: ``[latent]`` ``|corr|`` with its matched component (0 when unmatched). match:
    ``[latent]`` the matched component's index, -1 when there are fewer components than latents.
    correlation: ``[component, latent]`` every ``|corr|`` (constant columns count 0).
    """

    mcc: float
    per_latent: torch.Tensor
    match: torch.Tensor
    correlation: torch.Tensor


def mean_correlation_coefficient(acts, factors) -> MCCResult:
    """MCC (Hyvärinen & Morioka 2016; Khemakhem et al. 2020) under the best matching.

    acts: ``[n, component]`` recovered components (ICA sources, principal components, neurons,
    SAE features). factors: ``[n, latent]`` the true latents of the same ``n`` samples. Each latent
    is matched to a different component so that the summed ``|corr|`` is largest (Hungarian
    algorithm); with fewer components than latents the leftover latents score 0, so MCC is at
    most ``component / latent``.
    """
    a, t = _as_data(acts, "acts"), _as_data(factors, "factors")
    if a.shape[0] != t.shape[0]:
        raise ValueError(
            f"acts has {a.shape[0]} rows and factors {t.shape[0]}; pass the same samples to both "
            f"(one row per sample)."
        )
    za, zt = a - a.mean(0), t - t.mean(0)
    za = za / za.norm(dim=0).clamp_min(1e-300)
    zt = zt / zt.norm(dim=0).clamp_min(1e-300)
    corr = (za.T @ zt).abs()  # [component, latent]; a constant column gives 0
    n_comp, n_lat = corr.shape
    match = torch.full((n_lat,), -1, dtype=torch.long)
    if n_comp >= n_lat:
        for latent, comp in enumerate(_assignment(-corr.T)):
            match[latent] = comp
    else:
        for comp, latent in enumerate(_assignment(-corr)):
            match[latent] = comp
    per_latent = torch.where(
        match >= 0,
        corr[match.clamp_min(0), torch.arange(n_lat)],
        torch.zeros(n_lat, dtype=corr.dtype),
    )
    return MCCResult(
        mcc=float(per_latent.mean()),
        per_latent=per_latent.float(),
        match=match,
        correlation=corr.float(),
    )
