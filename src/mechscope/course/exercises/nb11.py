"""Exercises of notebook 11 (training dynamics): when a curve changes, and a progress measure.

Olsson et al. (2022), "In-context Learning and Induction Heads" (the phase change);
Nanda et al. (2023), "Progress measures for grokking via mechanistic interpretability"
(restricted and excluded loss).
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn.functional as F

from . import exercise

NB = "11_training_dynamics"


# ---- when does a curve change? --------------------------------------------------------------


@cache
def _card_curves() -> tuple[list[int], list[float], list[float]]:
    """induction-2l's shipped checkpoint metrics: ``(steps, repeated_loss, previous_token)``."""
    from mechscope.models import zoo

    metrics = zoo.card("induction-2l")["checkpoints"]["metrics"]
    steps = sorted(int(s) for s in metrics)
    loss = [metrics[str(s)]["repeated_loss"] for s in steps]
    prev = [metrics[str(s)]["previous_token_score"] for s in steps]
    return steps, loss, prev


def _log_steps(n: int) -> list[int]:
    return [0] + [round(10 * 1.4**i) for i in range(n - 1)]


def _noisy_sigmoid(seed: int, n: int, start: float, end: float) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.linspace(-4, 4, n, dtype=torch.float64)
    curve = start + (end - start) * torch.sigmoid(2 * x)
    noise = 0.02 * abs(end - start) * torch.randn(n, generator=gen, dtype=torch.float64)
    return (curve + noise).tolist()


def _crossing_cases():
    steps, loss, prev = _card_curves()
    return {
        "a noisy falling loss (4.0 -> 0.5) over 12 log-spaced steps, frac 0.5": (
            _log_steps(12),
            _noisy_sigmoid(0, 12, 4.0, 0.5),
            0.5,
        ),
        "a noisy rising score (0.1 -> 0.9) over 15 steps, frac 0.3": (
            _log_steps(15),
            _noisy_sigmoid(1, 15, 0.1, 0.9),
            0.3,
        ),
        "induction-2l's previous-token score (card), frac 0.5": (steps, prev, 0.5),
        "induction-2l's repeated-part loss (card), frac 0.9": (steps, loss, 0.9),
    }


def _first_reached(values: torch.Tensor, target: torch.Tensor, rising: bool) -> int:
    reached = values >= target if rising else values <= target
    return int(reached.nonzero()[0])


def _crossing(steps, values, frac, *, rising=None, checkpoint=False, flipped=False) -> float:
    s = torch.as_tensor(steps, dtype=torch.float64)
    v = torch.as_tensor(values, dtype=torch.float64)
    target = v[0] + frac * (v[-1] - v[0])
    i = _first_reached(v, target, bool(v[-1] >= v[0]) if rising is None else rising)
    if i == 0 or checkpoint:
        return float(s[i])
    t = (target - v[i - 1]) / (v[i] - v[i - 1])
    if flipped:
        t = 1 - t
    return float(s[i - 1] + t * (s[i] - s[i - 1]))


@exercise(
    "11.interpolated_crossing",
    notebook=NB,
    title="A crossing-step detector, between checkpoints",
    difficulty=2,
    minutes=10,
    cases=_crossing_cases,
    mistakes=[
        (
            "no interpolation: returned the first checkpoint at or past the target (that is what "
            "mechscope.dynamics.crossing_step does)",
            lambda steps, values, frac: _crossing(steps, values, frac, checkpoint=True),
        ),
        (
            "only handles rising curves (values >= target): a falling loss is 'crossed' at once",
            lambda steps, values, frac: _crossing(steps, values, frac, rising=True),
        ),
        (
            "interpolation weight reversed: t measured from the later checkpoint",
            lambda steps, values, frac: _crossing(steps, values, frac, flipped=True),
        ),
    ],
)
def interpolated_crossing(steps, values, frac: float = 0.5) -> float:
    """``steps [n]`` (increasing), ``values [n]`` -> the step (a float) at which ``values``
    first reaches ``start + frac * (end - start)``, linearly interpolated between the two
    checkpoints around the crossing. Rising and falling curves alike."""
    s = torch.as_tensor(steps, dtype=torch.float64)
    v = torch.as_tensor(values, dtype=torch.float64)
    target = v[0] + frac * (v[-1] - v[0])
    reached = v >= target if v[-1] >= v[0] else v <= target
    i = int(reached.nonzero()[0])  # the first checkpoint at or past the target
    if i == 0:
        return float(s[0])
    t = (target - v[i - 1]) / (v[i] - v[i - 1])  # in [0, 1]: where between i-1 and i
    return float(s[i - 1] + t * (s[i] - s[i - 1]))


def _steepest_cases():
    steps, loss, prev = _card_curves()
    gen = torch.Generator().manual_seed(3)
    falling = (
        torch.linspace(3.0, 0.5, 10, dtype=torch.float64)
        + 0.6 * torch.rand(10, generator=gen, dtype=torch.float64)
    ).tolist()
    return {
        "a bumpy falling curve over 10 log-spaced steps": (_log_steps(10), falling),
        "a noisy rising score over 15 steps": (_log_steps(15), _noisy_sigmoid(4, 15, 0.1, 0.9)),
        "induction-2l's repeated-part loss (card)": (steps, loss),
        "induction-2l's previous-token score (card)": (steps, prev),
    }


def _steepest(steps, values, *, signed=True, indices=False) -> tuple[int, int]:
    v = torch.as_tensor(values, dtype=torch.float64)
    sign = 1.0 if (v[-1] >= v[0] or not signed) else -1.0
    i = int((sign * v.diff()).argmax())
    return (i, i + 1) if indices else (steps[i], steps[i + 1])


@exercise(
    "11.steepest_interval",
    notebook=NB,
    title="The steepest interval of a curve",
    difficulty=1,
    minutes=5,
    cases=_steepest_cases,
    mistakes=[
        (
            "always the biggest rise, also for a falling curve (a loss changes most by dropping)",
            lambda steps, values: _steepest(steps, values, signed=False),
        ),
        (
            "returned the positions (i, i + 1) in the list, not the training steps there",
            lambda steps, values: _steepest(steps, values, indices=True),
        ),
    ],
)
def steepest_interval(steps, values) -> tuple[int, int]:
    """``steps [n]``, ``values [n]`` -> ``(steps[i], steps[i + 1])``, the consecutive pair over
    which ``values`` changes most in the direction of its overall change."""
    v = torch.as_tensor(values, dtype=torch.float64)
    sign = 1.0 if v[-1] >= v[0] else -1.0
    i = int((sign * v.diff()).argmax())  # the first of equal maxima
    return steps[i], steps[i + 1]


# ---- a progress measure -----------------------------------------------------------------


@cache
def _modadd_logits(step: int) -> tuple[torch.Tensor, torch.Tensor, list[int], torch.Tensor]:
    """modadd-1l's answer logits ``[p*p, p]`` at a checkpoint, answers, key frequencies and
    the training pairs' mask ``[p*p]``."""
    from mechscope.models import zoo
    from mechscope.toy import modadd

    card = zoo.card("modadd-1l")
    p = card["data"]["p"]
    tokens, answers = modadd.all_pairs(p)
    with torch.no_grad():
        logits = modadd.answer_logits(zoo.load_checkpoint("modadd-1l", step)(tokens), p)
    train_idx, _ = modadd.train_test_split(
        p, card["data"]["train_frac"], card["data"]["split_seed"]
    )
    mask = torch.zeros(p * p, dtype=torch.bool)
    mask[train_idx] = True
    return logits.double(), answers, list(card["metrics"]["key_frequencies"]), mask


def _random_modadd(seed: int, p: int = 7):
    gen = torch.Generator().manual_seed(seed)
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    logits = torch.randn(p * p, p, generator=gen, dtype=torch.float64) + 2.0
    mask = torch.rand(p * p, generator=gen) < 0.4
    return logits, (a + b) % p, mask


def _sum_columns(
    p: int, freqs, *, separate: bool = False, normalise: bool = True, dtype=torch.float64
):
    """``[p*p, 2 * len(freqs)]``: cos / sin(w_k (a + b)) for each key frequency (row a*p + b)."""
    a = torch.arange(p, dtype=dtype).repeat_interleave(p)
    b = torch.arange(p, dtype=dtype).repeat(p)
    cols = []
    for k in freqs:
        w = 2 * math.pi * k / p
        cols += (
            [torch.cos(w * a), torch.cos(w * b)]
            if separate
            else [torch.cos(w * (a + b)), torch.sin(w * (a + b))]
        )
    basis = torch.stack(cols, dim=1)
    return basis / basis.norm(dim=0, keepdim=True) if normalise else basis


def _split(logits, freqs, **kw) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean, projection, logits)``: the per-answer mean over pairs and the projection of the
    centred logits onto the key-frequency columns."""
    q = _sum_columns(logits.shape[1], freqs, **kw).to(logits.dtype)
    mean = logits.mean(0, keepdim=True)
    return mean, q @ (q.T @ (logits - mean)), logits


def _restricted_cases():
    logits, answers, freqs, _ = _modadd_logits(7000)
    r_logits, r_answers, _ = _random_modadd(5)
    return {
        "random logits [49, 7] (p = 7), frequencies [1, 3]": (r_logits, r_answers, [1, 3]),
        "modadd-1l at step 7000, its key frequencies": (logits, answers, freqs),
    }


def _ce(logits, answers) -> float:
    return float(F.cross_entropy(logits, answers))


@exercise(
    "11.restricted_loss",
    notebook=NB,
    title="A progress measure: the restricted loss",
    difficulty=3,
    minutes=15,
    cases=_restricted_cases,
    mistakes=[
        (
            "forgot to add back the per-answer mean over pairs (the constant part of the logits)",
            lambda logits, answer_ids, freqs: _ce(_split(logits, freqs)[1], answer_ids),
        ),
        (
            "cos / sin columns not normalised to unit length (the projection is scaled up)",
            lambda logits, answer_ids, freqs: _ce(
                sum(_split(logits, freqs, normalise=False)[:2]), answer_ids
            ),
        ),
        (
            "frequencies of a and b separately (cos w_k a, cos w_k b), not of a + b",
            lambda logits, answer_ids, freqs: _ce(
                sum(_split(logits, freqs, separate=True)[:2]), answer_ids
            ),
        ),
    ],
)
def restricted_loss(logits: torch.Tensor, answer_ids: torch.Tensor, freqs) -> float:
    """``logits [p*p, p]`` for every pair (row ``a * p + b``), ``answer_ids [p*p]``, key
    frequencies ``freqs`` -> the cross-entropy when the logits keep only their per-answer mean
    and their projection onto cos / sin(w_k (a + b)), ``w_k = 2 pi k / p``."""
    mean, projection, _ = _split(logits, freqs, dtype=logits.dtype)  # basis in logits' dtype
    return float(F.cross_entropy(mean + projection, answer_ids))


def _excluded_cases():
    logits, answers, freqs, mask = _modadd_logits(7000)
    r_logits, r_answers, r_mask = _random_modadd(6)
    return {
        "random logits [49, 7] (p = 7), frequencies [2, 3], random training mask": (
            r_logits,
            r_answers,
            [2, 3],
            r_mask,
        ),
        "modadd-1l at step 7000, its key frequencies and training pairs": (
            logits,
            answers,
            freqs,
            mask,
        ),
    }


@exercise(
    "11.excluded_loss",
    notebook=NB,
    title="The other progress measure: the excluded loss",
    difficulty=1,
    minutes=5,
    cases=_excluded_cases,
    mistakes=[
        (
            "averaged over every pair, not only the training pairs",
            lambda logits, answer_ids, freqs, mask: _ce(
                logits - _split(logits, freqs)[1], answer_ids
            ),
        ),
        (
            "kept the key-frequency terms instead of removing them (the restricted logits)",
            lambda logits, answer_ids, freqs, mask: _ce(
                sum(_split(logits, freqs)[:2])[mask], answer_ids[mask]
            ),
        ),
        (
            "removed the per-answer mean too (it is not a key-frequency term)",
            lambda logits, answer_ids, freqs, mask: _ce(
                (logits - sum(_split(logits, freqs)[:2]))[mask], answer_ids[mask]
            ),
        ),
    ],
)
def excluded_loss(logits: torch.Tensor, answer_ids: torch.Tensor, freqs, mask) -> float:
    """As :func:`restricted_loss`'s inputs plus ``mask [p*p]`` (True on the training pairs) ->
    the cross-entropy on the training pairs when the projection onto cos / sin(w_k (a + b))
    is *removed* from the logits (the per-answer mean stays)."""
    _, projection, _ = _split(logits, freqs, dtype=logits.dtype)
    excluded = logits - projection
    return float(F.cross_entropy(excluded[mask], answer_ids[mask]))
