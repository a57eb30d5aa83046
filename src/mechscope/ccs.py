"""Contrast-consistent search (CCS): a truth direction found without labels.

Burns et al. 2023, "Discovering Latent Knowledge in Language Models Without Supervision".
Each example is a *contrast pair*: a statement made true one way and false the other
(``x+`` = "The Colosseum is in Rome .", ``x-`` = "The Colosseum is not in Rome ."), and
exactly one member is true. CCS fits a linear probe ``p(x) = sigmoid(w . x~ + b)`` on the
activations of both members so that the two probabilities are

* **consistent**: ``p(x+) = 1 - p(x-)``, loss ``(p(x+) - (1 - p(x-)))^2``, and
* **confident**: not both 0.5, loss ``min(p(x+), p(x-))^2``,

averaged over pairs. No label is used. A pair's *credence* that ``x+`` is true is
``(p(x+) + 1 - p(x-)) / 2``.

**Normalisation** (Burns et al. §2): ``x~`` is each activation minus the mean of *its own
set* (all ``x+``, or all ``x-``), divided by that set's per-dimension standard deviation.
Without it the easiest consistent direction is the one that tells the two sets apart (the
word "not", the appended "Yes"/"No") — consistent and confident, and useless for truth.
Statistics come from the fitted pairs and are reused on new ones.

**Sign ambiguity.** Flipping ``(w, b) -> (-w, -b)`` maps ``(p(x+), p(x-))`` to ``(1 - p(x+),
1 - p(x-))``; for a consistent probe that is the same pair of numbers swapped, and the loss
is symmetric in the two, so a probe and its flip score the same (exactly when consistent,
nearly so near it). CCS finds a truth *axis*, not which end is "true". Burns et al. report
``max(acc, 1 - acc)``; :meth:`CCSResult.accuracy` does the same (so a random direction
scores >= 0.5 too: compare with one). To *use* the direction, orient it with a handful of
labels: :meth:`CCSResult.oriented`.

Farquhar et al. 2023 ("Challenges with unsupervised LLM knowledge discovery") prove that
any feature that flips between the members of a pair minimises the loss as well as truth
does; CCS finds the most salient such feature, which need not be knowledge.

Shapes: ``acts_pos``, ``acts_neg`` ``[n, d]`` (row i of each is pair i); ``labels`` ``[n]``
(1 where ``x+`` is the true member).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ._probe_fit import as_acts, as_label_tensor

__all__ = ["CCSResult", "ccs_loss", "fit_ccs"]


def ccs_loss(p_pos: torch.Tensor, p_neg: torch.Tensor) -> torch.Tensor:
    """Burns et al.'s loss: consistency + confidence, mean over pairs (last axis kept apart).

    p_pos, p_neg ``[..., n]`` probabilities -> ``[...]``.
    """
    consistency = (p_pos - (1 - p_neg)).pow(2)
    confidence = torch.minimum(p_pos, p_neg).pow(2)
    return (consistency + confidence).mean(-1)


@dataclass(frozen=True)
class CCSResult:
    """A CCS probe: ``p(x) = sigmoid(weight . normalised(x) + bias)``.

    weight ``[d]`` acts on normalised activations; mean_pos / std_pos and mean_neg / std_neg
    ``[d]`` are each set's statistics from the fit. ``loss`` is the final CCS loss of the
    best of ``n_tries`` random starts; ``values`` is the same loss for every start ``[tries]``.
    """

    weight: torch.Tensor
    bias: float
    mean_pos: torch.Tensor
    std_pos: torch.Tensor
    mean_neg: torch.Tensor
    std_neg: torch.Tensor
    normalize: bool
    loss: float
    values: torch.Tensor

    def _norm(self, acts, mean, std, what) -> torch.Tensor:
        acts = as_acts(acts, what).double()
        if acts.shape[1] != self.weight.shape[0]:
            raise ValueError(
                f"{what} has d={acts.shape[1]} but this CCS probe was fitted on "
                f"d={self.weight.shape[0]}; use activations from the same hook point."
            )
        return (acts - mean) / std if self.normalize else acts

    def probabilities(self, acts_pos, acts_neg) -> tuple[torch.Tensor, torch.Tensor]:
        """``(p(x+) [n], p(x-) [n])``."""
        xp = self._norm(acts_pos, self.mean_pos, self.std_pos, "acts_pos")
        xn = self._norm(acts_neg, self.mean_neg, self.std_neg, "acts_neg")
        if xp.shape[0] != xn.shape[0]:
            raise ValueError(
                f"acts_pos has {xp.shape[0]} rows but acts_neg {xn.shape[0]}; row i of each "
                f"must be the two members of pair i."
            )
        w = self.weight.double()
        return torch.sigmoid(xp @ w + self.bias), torch.sigmoid(xn @ w + self.bias)

    def credence(self, acts_pos, acts_neg) -> torch.Tensor:
        """``(p(x+) + 1 - p(x-)) / 2`` ``[n]``: the probe's belief that ``x+`` is true (up to sign)."""
        p_pos, p_neg = self.probabilities(acts_pos, acts_neg)
        return (p_pos + 1 - p_neg) / 2

    def predict(self, acts_pos, acts_neg) -> torch.Tensor:
        """``[n]`` long: 1 where the credence says ``x+`` is true."""
        return (self.credence(acts_pos, acts_neg) > 0.5).long()

    def accuracy(self, acts_pos, acts_neg, labels) -> float:
        """Sign-free accuracy ``max(acc, 1 - acc)`` (Burns et al.): CCS cannot know which end is true."""
        acc = self._raw_accuracy(acts_pos, acts_neg, labels)
        return max(acc, 1.0 - acc)

    def _raw_accuracy(self, acts_pos, acts_neg, labels) -> float:
        pred = self.predict(acts_pos, acts_neg)
        labels = as_label_tensor(labels)
        if labels.shape != pred.shape or labels.is_floating_point():
            raise ValueError(
                f"labels has shape {list(labels.shape)} dtype {labels.dtype}; expected [{len(pred)}]"
                f" integers, 1 where acts_pos holds the true member of the pair."
            )
        return float((pred == labels.long()).float().mean())

    def oriented(self, acts_pos, acts_neg, labels) -> CCSResult:
        """The same probe, its sign fixed so that it agrees with ``labels`` on these pairs.

        A few labelled pairs suffice; ``accuracy`` is unchanged, ``credence`` now means "x+ true".
        """
        if self._raw_accuracy(acts_pos, acts_neg, labels) >= 0.5:
            return self
        return replace(self, weight=-self.weight, bias=-self.bias)

    @property
    def direction(self) -> torch.Tensor:
        """Unit vector ``[d]`` in the raw activation space: ``weight / std`` (the sets' mean std)."""
        v = self.weight.double()
        if self.normalize:
            v = v / ((self.std_pos + self.std_neg) / 2)
        return (v / v.norm().clamp_min(1e-30)).float()


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = x.mean(0)
    std = x.std(0, unbiased=False)
    # a constant dimension carries nothing: leave it at 0 instead of dividing by 0
    return mean, torch.where(std > 1e-6 * std.max().clamp_min(1e-30), std, torch.ones_like(std))


def fit_ccs(
    acts_pos,
    acts_neg,
    *,
    steps: int = 400,
    lr: float = 1e-2,
    seed: int = 0,
    n_tries: int = 10,
    l2: float = 1e-2,
    normalize: bool = True,
) -> CCSResult:
    """Contrast-consistent search (Burns et al. 2023) on ``acts_pos``, ``acts_neg`` ``[n, d]``.

    ``n_tries`` random starts (seeded by ``seed``) are trained together, full batch, by Adam
    for ``steps`` steps at learning rate ``lr`` on ``ccs_loss + l2 * |w|^2`` (Burns et al.
    use 10 starts and weight decay 0.01; full-batch Adam at lr 1e-2 converges in a few hundred
    steps where their 1000 epochs at 1e-3 were needed); the start with the lowest CCS loss is kept.
    ``normalize``: per-set mean and standard deviation first (see the module docstring; turn
    off only to see why it is needed). Returns a :class:`CCSResult`; its direction has an
    arbitrary sign (:meth:`CCSResult.oriented`).
    """
    xp, xn = as_acts(acts_pos, "acts_pos").double(), as_acts(acts_neg, "acts_neg").double()
    if xp.shape != xn.shape:
        raise ValueError(
            f"acts_pos has shape {list(xp.shape)} but acts_neg {list(xn.shape)}; expected the "
            f"same [n, d]: row i of each is the two members of contrast pair i."
        )
    if xp.shape[0] < 2:
        raise ValueError(f"acts_pos has {xp.shape[0]} pair(s); CCS needs at least 2 pairs.")
    for name, value in (("steps", steps), ("n_tries", n_tries)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r}; expected a positive int.")
    if not lr > 0 or not l2 >= 0:
        raise ValueError(f"lr={lr}, l2={l2}; expected lr > 0 and l2 >= 0.")
    mean_p, std_p = _stats(xp)
    mean_n, std_n = _stats(xn)
    if normalize:
        xp, xn = (xp - mean_p) / std_p, (xn - mean_n) / std_n
    d = xp.shape[1]
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n_tries, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    b = torch.zeros(n_tries, dtype=torch.float64)
    w.requires_grad_(True)
    b.requires_grad_(True)
    opt = torch.optim.Adam([w, b], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            p_pos = torch.sigmoid(w @ xp.T + b[:, None])  # [tries, n]
            p_neg = torch.sigmoid(w @ xn.T + b[:, None])
            loss = ccs_loss(p_pos, p_neg) + l2 * w.pow(2).sum(-1)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
    with torch.no_grad():
        final = ccs_loss(torch.sigmoid(w @ xp.T + b[:, None]), torch.sigmoid(w @ xn.T + b[:, None]))
    best = int(final.argmin())
    return CCSResult(
        weight=w[best].detach().clone(),
        bias=float(b[best].detach()),
        mean_pos=mean_p,
        std_pos=std_p,
        mean_neg=mean_n,
        std_neg=std_n,
        normalize=normalize,
        loss=float(final[best]),
        values=final.detach().float(),
    )
