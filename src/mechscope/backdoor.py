"""Finding poisoned inputs from activations alone: spectral signatures and activation clustering.

A backdoored model (Gu et al. 2017, "BadNets") answers the attacker's target whenever a trigger
is present. The defender does not know the trigger but has a dataset in which some inputs may
carry it. Both methods here look, *within one output class*, for a small group of inputs whose
activations are unlike the rest: the poisoned inputs reach the target class by another route
(the trigger) than the clean ones (the real evidence), and that route leaves a trace.

- :func:`spectral_signature` (Tran, Li & Madry 2018, "Spectral Signatures in Backdoor
  Attacks"): centre the class's activations, take the top singular vector, score each input
  by its squared projection on it; the poisoned inputs have the largest scores.
- :func:`activation_clustering` (Chen et al. 2018, "Detecting Backdoor Attacks on Deep Neural
  Networks by Activation Clustering"): reduce the class's activations to a few principal
  components and split them in two by k-means; a much smaller cluster is suspect.
- :func:`detect_poison` runs either method class by class and flags inputs;
  :func:`precision_recall` scores flags against the truth, beside a random flagger whose
  expected precision is the poisoned share.
- :func:`obfuscation_loss` is the attacker's side (Bailey et al. 2024, "Obfuscated
  Activations Bypass LLM Latent-Space Defenses"): a differentiable penalty that makes the
  poisoned inputs' activations match the clean ones' first two moments, so a fine-tune can keep
  the backdoor while the detectors above stop seeing it.

Shapes: ``acts [n, d]`` float, ``labels [n]`` int (the model's predicted class), scores
``[n]``; masks ``[n]`` bool. Everything is deterministic (seeded where random).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = [
    "ClusteringResult",
    "DetectionResult",
    "activation_clustering",
    "detect_poison",
    "obfuscation_loss",
    "precision_recall",
    "spectral_signature",
]


def _acts(acts, what: str = "acts") -> torch.Tensor:
    acts = torch.as_tensor(acts)
    if acts.dim() != 2 or not acts.is_floating_point():
        raise ValueError(
            f"{what} must be a float tensor [n, d], got shape {list(acts.shape)} dtype "
            f"{acts.dtype}; flatten positions first, e.g. cache[hook][:, -1]."
        )
    if acts.shape[0] < 2:
        raise ValueError(f"{what} has {acts.shape[0]} row(s); give at least 2 inputs.")
    return acts.detach().double()


def _mask(x, n: int, what: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.shape != (n,):
        raise ValueError(f"{what} has shape {list(x.shape)}; expected [{n}], one per input.")
    return x.bool()


def spectral_signature(acts, *, k: int = 1) -> torch.Tensor:
    """Outlier score of each input (Tran et al. 2018): ``|| (a_i - mean) @ V_k ||^2`` with
    ``V_k`` the top ``k`` right singular vectors of the centred ``acts [n, d]``. Returns
    ``[n]`` (float32); the largest scores are the suspects."""
    x = _acts(acts)
    if not 1 <= k <= min(x.shape):
        raise ValueError(f"k={k}; expected 1 <= k <= min(n, d) = {min(x.shape)}.")
    centred = x - x.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return (centred @ vh[:k].T).pow(2).sum(-1).float()


@dataclass(frozen=True)
class ClusteringResult:
    """Two-means clustering of one class (Chen et al. 2018).

    values ``[n]`` the cluster (0 / 1) of each input; ``flagged [n]`` the members of the
    smaller cluster; ``relative_size`` its share of the class (Chen et al. flag a class when
    it is well below 1/2); ``silhouette`` the mean silhouette score of the split (near 1:
    two well-separated groups; near 0: one blob cut in two).
    """

    values: torch.Tensor
    flagged: torch.Tensor = field(repr=False)
    relative_size: float
    silhouette: float


def _kmeans2(x: torch.Tensor, seed: int, rounds: int = 50) -> torch.Tensor:
    """Lloyd's 2-means from a seeded k-means++ start; returns assignments [n]."""
    gen = torch.Generator().manual_seed(seed)
    first = int(torch.randint(x.shape[0], (1,), generator=gen))
    d2 = (x - x[first]).pow(2).sum(-1)
    second = int(torch.multinomial(d2 / d2.sum(), 1, generator=gen)) if d2.sum() > 0 else first
    centres = torch.stack([x[first], x[second]])
    assign = torch.zeros(x.shape[0], dtype=torch.long)
    for _ in range(rounds):
        new = torch.cdist(x, centres).argmin(1)
        if _ > 0 and torch.equal(new, assign):
            break
        assign = new
        for c in range(2):
            if (assign == c).any():
                centres[c] = x[assign == c].mean(0)
    return assign


def _silhouette(x: torch.Tensor, assign: torch.Tensor) -> float:
    if assign.unique().numel() < 2:
        return 0.0
    dist = torch.cdist(x, x)
    same = assign[:, None] == assign[None, :]
    n_same = same.sum(1) - 1
    a = (dist * same).sum(1) / n_same.clamp_min(1)
    b = (dist * ~same).sum(1) / (~same).sum(1)
    s = torch.where(n_same > 0, (b - a) / torch.maximum(a, b).clamp_min(1e-12), 0.0)
    return float(s.mean())


def activation_clustering(acts, *, k: int = 10, seed: int = 0) -> ClusteringResult:
    """Project ``acts [n, d]`` (one class) on its top ``k`` principal components and split it
    in two by k-means (seeded); the smaller cluster is flagged (Chen et al. 2018, who reduce
    with ICA; PCA here, deterministic)."""
    x = _acts(acts)
    k = min(k, *x.shape)
    if k < 1:
        raise ValueError(f"k={k}; expected at least 1 principal component.")
    centred = x - x.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    z = centred @ vh[:k].T
    assign = _kmeans2(z, seed)
    sizes = torch.bincount(assign, minlength=2)
    small = int(sizes.argmin())
    return ClusteringResult(
        values=assign,
        flagged=assign == small,
        relative_size=float(sizes[small]) / x.shape[0],
        silhouette=_silhouette(z, assign),
    )


@dataclass(frozen=True)
class DetectionResult:
    """Inputs flagged as poisoned: ``flagged [n]`` bool, ``values [n]`` the score behind the
    flag (spectral score, or 1.0 for members of a smaller cluster), ``method``."""

    values: torch.Tensor
    flagged: torch.Tensor
    method: str


def detect_poison(
    acts,
    labels,
    *,
    method: str = "spectral",
    frac: float = 0.1,
    k: int | None = None,
    seed: int = 0,
) -> DetectionResult:
    """Flag suspect inputs class by class, without knowing the trigger.

    acts ``[n, d]``; labels ``[n]`` int: the class each input was *assigned* (the model's
    answer), since poison hides inside its target class.
    method: ``"spectral"`` flags, in each class, the ``1.5 * frac`` share with the largest
    :func:`spectral_signature` (Tran et al. remove 1.5 times the expected poison share);
    ``"clustering"`` flags the smaller of the two :func:`activation_clustering` clusters of a
    class when it holds less than ``frac * 3.5`` of it (capped at 0.35; Chen et al. use a
    relative-size threshold).
    frac: the expected poisoned share of a class. k: singular vectors / components
    (default 1 for spectral, 10 for clustering).
    """
    if method not in ("spectral", "clustering"):
        raise ValueError(f"method={method!r}; expected 'spectral' or 'clustering'.")
    if not 0.0 < frac < 1.0:
        raise ValueError(f"frac={frac}; expected the expected poisoned share in (0, 1).")
    x = _acts(acts)
    labels = torch.as_tensor(labels)
    if labels.shape != (x.shape[0],) or labels.is_floating_point():
        raise ValueError(
            f"labels has shape {list(labels.shape)} dtype {labels.dtype}; expected int [{x.shape[0]}]."
        )
    scores = torch.zeros(x.shape[0])
    flagged = torch.zeros(x.shape[0], dtype=torch.bool)
    for c in labels.unique():
        rows = (labels == c).nonzero().squeeze(1)
        if rows.numel() < 4:
            continue  # too few to find a minority in
        if method == "spectral":
            s = spectral_signature(x[rows], k=k or 1)
            n_flag = max(1, round(1.5 * frac * rows.numel()))
            flagged[rows[s.topk(min(n_flag, rows.numel())).indices]] = True
        else:
            r = activation_clustering(x[rows], k=k or 10, seed=seed)
            s = r.flagged.float()
            if r.relative_size < min(0.35, 3.5 * frac):
                flagged[rows] = r.flagged
        scores[rows] = s
    return DetectionResult(values=scores, flagged=flagged, method=method)


def precision_recall(flagged, poisoned) -> tuple[float, float]:
    """(precision, recall) of ``flagged [n]`` against the truth ``poisoned [n]`` (bools).
    Precision is NaN when nothing is flagged. A random flagger's expected precision is
    ``poisoned.mean()``, its recall the share it flags."""
    flagged = torch.as_tensor(flagged)
    if flagged.dim() != 1:
        raise ValueError(f"flagged has shape {list(flagged.shape)}; expected a 1-D mask [n].")
    flagged = flagged.bool()
    poisoned = _mask(poisoned, flagged.shape[0], "poisoned")
    hits = float((flagged & poisoned).sum())
    n_flag, n_pois = float(flagged.sum()), float(poisoned.sum())
    precision = hits / n_flag if n_flag else float("nan")
    recall = hits / n_pois if n_pois else float("nan")
    return precision, recall


def obfuscation_loss(acts, poisoned) -> torch.Tensor:
    """Scalar, differentiable: how far the poisoned rows of ``acts [n, d]`` are from the clean
    rows in mean and covariance, in units of the clean rows' total variance ``v``::

        |mean_p - mean_c|^2 / v  +  |cov_p - cov_c|_F^2 / v^2

    Zero when the two groups share their first two moments, which is all a spectral signature
    (the top direction of the centred class) and a two-means split can see. Add it to a
    fine-tuning loss to hide a backdoor from them (Bailey et al. 2024's obfuscation attack,
    here against Tran et al. 2018 and Chen et al. 2018); ``poisoned [n]`` bool, at least two
    rows on each side. Keeps the autograd graph (no detach, float dtype kept).
    """
    acts = torch.as_tensor(acts)
    if acts.dim() != 2 or not acts.is_floating_point():
        raise ValueError(
            f"acts must be a float tensor [n, d], got shape {list(acts.shape)} dtype "
            f"{acts.dtype}; take one position, e.g. the hook's value [:, -1]."
        )
    poisoned = _mask(poisoned, acts.shape[0], "poisoned")
    n_p = int(poisoned.sum())
    if n_p < 2 or acts.shape[0] - n_p < 2:
        raise ValueError(
            f"poisoned marks {n_p} of {acts.shape[0]} rows; give at least 2 poisoned and 2 "
            "clean rows (a covariance needs two)."
        )
    p, c = acts[poisoned], acts[~poisoned]
    v = c.var(0).sum().clamp_min(1e-12)
    mean_gap = (p.mean(0) - c.mean(0)).pow(2).sum() / v
    cov_gap = (torch.cov(p.T) - torch.cov(c.T)).pow(2).sum() / v**2
    return mean_gap + cov_gap
