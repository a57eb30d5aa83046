"""Modular addition, the task of Nanda et al. 2023, "Progress measures for grokking via
mechanistic interpretability" (after Power et al. 2022, "Grokking").

Inputs are ``a b =`` (three tokens) and the answer is ``(a + b) mod p``, read at the
``=`` position. A 1-layer transformer trained on 30% of all pairs with strong weight
decay first memorises, then, thousands of epochs later, *groks*: it learns an
algorithm based on a few key frequencies ``w_k = 2 pi k / p``. Embeddings become
circles in each key frequency's (cos, sin) plane (the review's example of a
non-linear, circular feature, §3.2), and the logits become ``cos(w_k (a + b - c))``.
"""

from __future__ import annotations

import math

import torch

from ..models import WordTokenizer


def tokenizer(p: int) -> WordTokenizer:
    """Numbers ``"0".."p-1"`` then ``"="``. Id 0 is BOS (unused), so number ``n`` is id ``n + 1``."""
    return WordTokenizer([str(i) for i in range(p)] + ["="])


def all_pairs(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``(a, b)`` as tokens ``[p*p, 3]`` (ids, no BOS) and answers ``[p*p]`` (numbers 0..p-1).

    Row ``a * p + b`` holds the pair ``(a, b)``.
    """
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    eq = torch.full_like(a, p + 1)  # "=" is the last word: id p + 1
    return torch.stack([a + 1, b + 1, eq], dim=1), (a + b) % p


def train_test_split(p: int, frac: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices into :func:`all_pairs` for the training pairs and the held-out pairs."""
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    n = int(frac * p * p)
    return perm[:n], perm[n:]


def answer_logits(logits: torch.Tensor, p: int) -> torch.Tensor:
    """Logits at the ``=`` position restricted to the ``p`` number tokens: ``[batch, p]``."""
    return logits[:, -1, 1 : p + 1]


def fourier_basis(p: int) -> tuple[torch.Tensor, list[str]]:
    """Orthonormal Fourier basis of functions on Z_p: ``[p, p]`` rows (constant, cos 1, sin 1, ...)."""
    x = torch.arange(p, dtype=torch.float64)
    rows, names = [torch.ones(p, dtype=torch.float64)], ["const"]
    for k in range(1, p // 2 + 1):
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
        names += [f"cos {k}", f"sin {k}"]
    basis = torch.stack(rows)
    return (basis / basis.norm(dim=1, keepdim=True)).float(), names


def embedding_frequency_norms(W_E_numbers: torch.Tensor) -> torch.Tensor:
    """Norm of the embedding in each frequency k = 1..p//2 (cos and sin together): ``[p // 2]``.

    W_E_numbers: ``[p, d_model]``, the embedding rows of the number tokens.
    """
    p = W_E_numbers.shape[0]
    basis, _ = fourier_basis(p)
    coef = basis @ W_E_numbers  # [p, d_model] in the Fourier basis
    pairs = coef[1:].reshape(p // 2, 2, -1)  # (cos k, sin k) pairs
    return pairs.pow(2).sum(dim=(1, 2)).sqrt()


def key_frequencies(W_E_numbers: torch.Tensor, share: float = 0.9) -> list[int]:
    """The fewest frequencies (largest first) holding ``share`` of the embedding's squared norm."""
    norms2 = embedding_frequency_norms(W_E_numbers).pow(2)
    order = norms2.argsort(descending=True)
    cum = norms2[order].cumsum(0) / norms2.sum()
    n = int((cum < share).sum()) + 1
    return sorted((order[:n] + 1).tolist())


def _sum_frequency_projector(p: int, freqs: list[int]) -> torch.Tensor:
    """Orthonormal ``[p*p, 2*len(freqs)]`` basis of the functions cos(w_k (a+b)), sin(w_k (a+b)).

    Rows are ordered like :func:`all_pairs` (row ``a * p + b``).
    """
    a = torch.arange(p, dtype=torch.float64).repeat_interleave(p)
    b = torch.arange(p, dtype=torch.float64).repeat(p)
    cols = []
    for k in freqs:
        w = 2 * math.pi * k / p
        cols += [torch.cos(w * (a + b)), torch.sin(w * (a + b))]
    basis = torch.stack(cols, dim=1)
    return basis / basis.norm(dim=0, keepdim=True)


def split_logits(logits: torch.Tensor, freqs: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Split answer logits ``[p*p, p]`` (all pairs, :func:`all_pairs` order) into the part that is a
    function of ``a + b`` at the key frequencies, and the rest.

    Returns ``(restricted, excluded)``: restricted = the per-answer mean over pairs plus the
    projection onto cos/sin(w_k (a+b)); excluded = the logits minus that projection.
    After Nanda et al. 2023 (restricted and excluded loss).
    """
    n, p = logits.shape
    if n != p * p:
        raise ValueError(
            f"logits must cover all {p}*{p} = {p * p} pairs in all_pairs order, got {n} rows."
        )
    Q = _sum_frequency_projector(p, freqs).to(logits.dtype)
    centered = logits - logits.mean(0, keepdim=True)
    proj = Q @ (Q.T @ centered)
    return logits.mean(0, keepdim=True) + proj, logits - proj


def restricted_loss(logits: torch.Tensor, answers: torch.Tensor, freqs: list[int]) -> float:
    """Loss over all pairs when only the key-frequency ``a + b`` terms of the logits are kept.

    Low restricted loss means the key frequencies alone do the task (the generalising circuit).
    """
    restricted, _ = split_logits(logits, freqs)
    return float(torch.nn.functional.cross_entropy(restricted, answers))


def excluded_loss(
    logits: torch.Tensor, answers: torch.Tensor, freqs: list[int], train_idx: torch.Tensor
) -> float:
    """Loss on the *training* pairs when the key-frequency ``a + b`` terms are removed.

    It rises while the model moves from memorising to the Fourier algorithm (Nanda et al. 2023).
    """
    _, excluded = split_logits(logits, freqs)
    return float(torch.nn.functional.cross_entropy(excluded[train_idx], answers[train_idx]))


def frequency_plane(W_E_numbers: torch.Tensor, k: int) -> torch.Tensor:
    """Each number's embedding in the plane of frequency ``k``: ``[p, 2]`` coordinates.

    The plane is spanned by the embedding's components along cos(w_k a) and sin(w_k a), the
    top-2 directions (in embedding space) of that frequency. For a grokked model the
    numbers lie on a circle there, number ``a`` at angle ``w_k a`` (+ a constant): a circular
    feature (Engels et al. 2024; Nanda et al. 2023).
    """
    p = W_E_numbers.shape[0]
    basis, _ = fourier_basis(p)
    cos_dir = basis[2 * k - 1] @ W_E_numbers  # [d_model]
    sin_dir = basis[2 * k] @ W_E_numbers
    plane = torch.stack([cos_dir, sin_dir], dim=1)  # [d_model, 2]
    q, _ = torch.linalg.qr(plane)
    return (W_E_numbers - W_E_numbers.mean(0)) @ q


def circle_fit(points: torch.Tensor, k: int) -> dict[str, float]:
    """How well ``[p, 2]`` points sit on a circle with number ``a`` at angle ``+-w_k a + phase``.

    Returns ``radius_cv`` (std / mean of the radii; 0 for a perfect circle) and
    ``angle_error`` (mean absolute angular deviation in radians after fitting the phase and
    the direction of travel).
    """
    p = points.shape[0]
    r = points.norm(dim=1)
    theta = torch.atan2(points[:, 1], points[:, 0]).double()
    ideal = 2 * math.pi * k * torch.arange(p, dtype=torch.float64) / p
    best = math.inf
    for sign in (1.0, -1.0):
        diff = theta - sign * ideal
        phase = torch.atan2(torch.sin(diff).mean(), torch.cos(diff).mean())
        err = torch.remainder(diff - phase + math.pi, 2 * math.pi) - math.pi
        best = min(best, float(err.abs().mean()))
    return {"radius_cv": float(r.std() / r.mean()), "angle_error": best}


def accuracy(model, p: int, idx: torch.Tensor) -> float:
    """Accuracy of ``model`` on the pairs ``idx`` (indices into :func:`all_pairs`)."""
    tokens, answers = all_pairs(p)
    with torch.no_grad():
        pred = answer_logits(model(tokens[idx]), p).argmax(-1)
    return float((pred == answers[idx]).float().mean())
