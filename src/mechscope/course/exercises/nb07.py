"""Exercises of notebook 07 (world models): a board probe and an edit along its directions.

Li et al. (2023), "Emergent World Representations"; Nanda, Lee & Wattenberg (2023),
"Emergent Linear Representations in World Models of Self-Supervised Sequence Models".
"""

from __future__ import annotations

from functools import cache

import torch

from . import exercise

NB = "07_world_models"
HOOK = "blocks.1.hook_resid_post"


@cache
def _othello():
    import mechscope

    return mechscope.load("othello-mini")


@cache
def _boards(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """othello-mini's residual stream at ``HOOK`` (float64 ``[rows, d_model]``) and the board
    there (``[rows, square]``: empty / mine / theirs), on ``n`` random games."""
    from mechscope.zoo import recipes_world as rw

    with torch.no_grad():
        acts, labels = rw.board_dataset(_othello(), HOOK, n, seed)
    return acts.double(), labels


def _random_boards(seed: int, n: int = 200, d: int = 8, squares: int = 5):
    gen = torch.Generator().manual_seed(seed)
    acts = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return acts, torch.randint(0, 3, (n, squares), generator=gen)


# ---- 1. fit the probe --------------------------------------------------------------------


def _fit_cases():
    return {
        "random acts [200, 8], labels [200, 5], 3 classes": (*_random_boards(0), 3),
        "othello-mini, blocks.1.hook_resid_post, 12 games": (*_boards(12, 1), 3),
    }


def _lstsq(x: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    y = torch.nn.functional.one_hot(labels, n_classes).to(x.dtype)  # [n, variable, class]
    w = torch.linalg.lstsq(x, y.reshape(len(x), -1)).solution
    return w.reshape(x.shape[1], labels.shape[1], n_classes)


def _ones(acts: torch.Tensor) -> torch.Tensor:
    return torch.ones(len(acts), 1, dtype=acts.dtype)


@exercise(
    "07.fit_board_probe",
    notebook=NB,
    title="A board probe by least squares",
    difficulty=2,
    minutes=15,
    cases=_fit_cases,
    mistakes=[
        (
            "no bias: the constant column of ones is missing (the output has d_model rows, not "
            "d_model + 1)",
            lambda acts, labels, n_classes: _lstsq(acts, labels, n_classes),
        ),
        (
            "regressed on the class index itself instead of one-hot targets (one column per "
            "square, not one per square and class)",
            lambda acts, labels, n_classes: (
                torch.linalg.lstsq(
                    torch.cat([acts, _ones(acts)], 1), labels.to(acts.dtype)
                ).solution
            ),
        ),
        (
            "the column of ones put first (the bias must be the last row)",
            lambda acts, labels, n_classes: _lstsq(
                torch.cat([_ones(acts), acts], 1), labels, n_classes
            ),
        ),
    ],
)
def fit_board_probe(acts: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Least-squares linear probe for every square at once.

    acts ``[n, d_model]`` (float64), labels long ``[n, variable]`` (a class per square),
    n_classes: the number of classes. Returns ``[d_model + 1, variable, class]``: the weights
    ``W`` that minimise ``|X W - Y|^2`` with ``X = [acts, 1]`` (a column of ones last, so the
    last row of ``W`` is the bias) and ``Y`` the one-hot labels.
    """
    x = torch.cat([acts, torch.ones(len(acts), 1, dtype=acts.dtype)], dim=1)  # [n, d + 1]
    y = torch.nn.functional.one_hot(labels, n_classes).to(acts.dtype)  # [n, variable, class]
    w = torch.linalg.lstsq(x, y.reshape(len(acts), -1)).solution  # [d + 1, variable * class]
    return w.reshape(x.shape[1], labels.shape[1], n_classes)


# ---- 2. its accuracy per square ----------------------------------------------------------


def _accuracy_cases():
    gen = torch.Generator().manual_seed(3)
    acts, labels = _random_boards(2)
    fit_acts, fit_labels = _boards(12, 1)
    test_acts, test_labels = _boards(8, 2)
    return {
        "random probe [9, 5, 3], acts [200, 8], labels [200, 5]": (
            torch.randn(9, 5, 3, generator=gen, dtype=torch.float64),
            acts,
            labels,
        ),
        "othello-mini: a probe fitted on 12 games, scored on 8 others": (
            fit_board_probe(fit_acts, fit_labels, 3),
            test_acts,
            test_labels,
        ),
    }


def _scores(probe, acts):
    return torch.einsum("nd,dvc->nvc", torch.cat([acts, _ones(acts)], 1), probe)


@exercise(
    "07.square_accuracy",
    notebook=NB,
    title="The probe's accuracy per square",
    difficulty=1,
    minutes=10,
    cases=_accuracy_cases,
    mistakes=[
        (
            "averaged over squares instead of over rows (one number per row, not per square)",
            lambda probe, acts, labels: (_scores(probe, acts).argmax(-1) == labels).float().mean(1),
        ),
        (
            "forgot the bias (the last row of the probe) when scoring",
            lambda probe, acts, labels: (
                (torch.einsum("nd,dvc->nvc", acts, probe[:-1]).argmax(-1) == labels).float().mean(0)
            ),
        ),
    ],
)
def square_accuracy(probe: torch.Tensor, acts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """probe ``[d_model + 1, variable, class]`` (from ``fit_board_probe``), acts ``[n, d_model]``,
    labels long ``[n, variable]`` -> float ``[variable]``: per square, the fraction of rows whose
    predicted class (the argmax of ``[acts, 1] @ probe`` over classes) is the label."""
    x = torch.cat([acts, torch.ones(len(acts), 1, dtype=acts.dtype)], dim=1)
    scores = torch.einsum("nd,dvc->nvc", x, probe)  # [n, variable, class]
    return (scores.argmax(-1) == labels).float().mean(0)


# ---- 3. the flip direction ---------------------------------------------------------------


def _state_probe(weight: torch.Tensor):
    from mechscope.world import StateProbe

    return StateProbe(weight.float(), torch.zeros(weight.shape[:2]), hook=HOOK)


def _direction_cases():
    gen = torch.Generator().manual_seed(4)
    w = fit_board_probe(*_boards(12, 1), 3)  # [d + 1, square, class]
    return {
        "random probe weight [5, 3, 8], square 2, theirs -> mine": (
            _state_probe(torch.randn(5, 3, 8, generator=gen)),
            2,
            2,
            1,
        ),
        "othello-mini least-squares probe, square 14 (c3), mine -> theirs": (
            _state_probe(w[:-1].permute(1, 2, 0)),
            14,
            1,
            2,
        ),
    }


@exercise(
    "07.flip_direction",
    notebook=NB,
    title="The direction that flips a square",
    difficulty=1,
    minutes=5,
    cases=_direction_cases,
    mistakes=[
        (
            "not normalised to unit length",
            lambda probe, variable, from_class, to_class: (
                probe.weight[variable, to_class] - probe.weight[variable, from_class]
            ),
        ),
        (
            "the wrong sign: w[from] - w[to] pushes away from the new class",
            lambda probe, variable, from_class, to_class: torch.nn.functional.normalize(
                probe.weight[variable, from_class] - probe.weight[variable, to_class], dim=0
            ),
        ),
    ],
)
def flip_direction(probe, variable: int, from_class: int, to_class: int) -> torch.Tensor:
    """probe: a ``StateProbe`` (``probe.weight`` is ``[variable, class, d_model]``) -> the unit
    vector ``[d_model]`` along ``w[to_class] - w[from_class]`` of square ``variable``: moving
    the residual along it raises the probe's ``to_class`` logit and lowers ``from_class``'s
    (Nanda et al. 2023's flip)."""
    w = probe.weight[variable, to_class] - probe.weight[variable, from_class]
    return w / w.norm()


# ---- 4. the edit hook --------------------------------------------------------------------


@cache
def _games(n: int, seed: int, length: int) -> torch.Tensor:
    from mechscope.toy import othello

    return othello.game_tokens(othello.random_games(n, seed=seed))[:, :length]


def _edit_cases():
    gen = torch.Generator().manual_seed(5)
    model = _othello()
    w = fit_board_probe(*_boards(12, 1), 3)
    flip = flip_direction(_state_probe(w[:-1].permute(1, 2, 0)), 14, 1, 2)
    return {
        "othello-mini, 2 games of 12 tokens, a random vector at pos 6": dict(
            model=model,
            tokens=_games(2, 3, 12),
            hook=HOOK,
            vector=torch.randn(model.cfg.d_model, generator=gen),
            strength=3.0,
            pos=6,
        ),
        "othello-mini, 3 games of 10 tokens, the c3 flip direction at pos -1": dict(
            model=model,
            tokens=_games(3, 4, 10),
            hook=HOOK,
            vector=flip.float(),
            strength=8.0,
            pos=-1,
        ),
    }


def _edit(model, tokens, hook, vector, strength, where):
    def add(act, hook_point):
        act = act.clone()
        act[:, where] += strength * vector
        return act

    with model.hooks([(hook, add)]):
        return model(tokens)


@exercise(
    "07.edit_along",
    notebook=NB,
    title="An edit hook: push the residual stream along a direction",
    difficulty=2,
    minutes=10,
    cases=_edit_cases,
    mistakes=[
        (
            "added the vector at every position, not only at pos",
            lambda model, tokens, hook, vector, *, strength, pos: _edit(
                model, tokens, hook, vector, strength, slice(None)
            ),
        ),
        (
            "the wrong sign: subtracted the vector",
            lambda model, tokens, hook, vector, *, strength, pos: _edit(
                model, tokens, hook, vector, -strength, pos
            ),
        ),
    ],
)
def edit_along(model, tokens, hook: str, vector: torch.Tensor, *, strength: float, pos: int):
    """Logits ``[batch, pos, d_vocab]`` of ``model`` on ``tokens`` ``[batch, pos]`` with
    ``strength * vector`` (``vector`` ``[d_model]``) added to the activation at ``hook``, at
    position ``pos`` of every row; later layers run on the edited stream (Li et al. 2023)."""

    def add(act, hook_point):  # act [batch, pos, d_model]
        act = act.clone()
        act[:, pos] += strength * vector
        return act

    with model.hooks([(hook, add)]):
        return model(tokens)
