"""Zoo recipe for world models (issue 8): ``othello-mini``, an Othello-GPT in miniature.

A transformer trained on the move sequences of random legal 6x6 Othello games
(mechscope.toy.othello) to predict legal next moves; it never sees a board. Li et al. (2023),
"Emergent World Representations", found the board inside such a model; Nanda et al. (2023)
showed it is linear once squares are labelled relative to the player to move.

Training target: at each position, the uniform distribution over the legal next moves
(cross-entropy against it). This is the expected next-token loss of Li et al.'s random-game
data over the random player's choice, with the sampling noise taken out, so a small model
learns the rules in minutes on one CPU thread.
"""

from __future__ import annotations

import torch

from ..models import Transformer, TransformerConfig, WordTokenizer
from ..toy import othello
from ._common import run_record, seeded_model_and_optimizer, train_steps

BOARD_SIZE = 6
WORLD_EVAL = {"n": 500, "seed": 12345}  # held-out games the card's metrics use
_TRAIN_SEED = 1_000_000  # training games use seeds from here on (never 12345)


def legal_loss(logits: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``logits`` ``[batch, pos, d_vocab]`` against the uniform distribution over
    the legal next tokens ``legal`` (bool, same shape), averaged over positions where some move is
    legal (positions after a game's end are skipped)."""
    has = legal.any(-1)
    target = legal.float() / legal.sum(-1, keepdim=True).clamp(min=1)
    return -(target * logits.log_softmax(-1)).sum(-1)[has].mean()


def games_and_targets(n: int, seed: int, size: int = BOARD_SIZE):
    """``(games, tokens [n, pos], legal [n, pos, d_vocab])`` with the last token dropped, so
    position ``t`` of ``tokens`` is the model's input and ``legal[:, t]`` the moves legal next."""
    games = othello.random_games(n, size=size, seed=seed)
    return games, othello.game_tokens(games)[:, :-1], othello.legal_token_mask(games)[:, :-1]


@torch.no_grad()
def legal_move_metrics(model: Transformer, n: int = 500, seed: int = 12345) -> dict:
    """How well the model knows the rules, on ``n`` held-out games.

    - ``legal_top1_accuracy``: the argmax token is a legal move, over every position that has a
      next move (passes included);
    - ``legal_topk_error_rate``: Li et al. (2023)'s measure: take the model's top-k tokens with k
      = the number of legal moves there; the fraction of them that are illegal;
    - ``heldout_loss``: ``legal_loss``; its floor is 0 only for a perfect model.
    """
    _, tokens, legal = games_and_targets(n, seed, _size(model))
    logits = model(tokens)
    has = legal.any(-1)
    top1 = legal.gather(-1, logits.argmax(-1, keepdim=True))[..., 0][has]
    return {
        "legal_top1_accuracy": round(float(top1.float().mean()), 4),
        "legal_topk_error_rate": round(float(topk_errors(logits[has], legal[has]).mean()), 4),
        "heldout_loss": round(float(legal_loss(logits, legal)), 4),
    }


def topk_errors(logits: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """Li et al. (2023)'s error: with k = legal moves per row, the fraction of the top-k tokens
    that are not legal. ``logits`` ``[n, d_vocab]``, ``legal`` bool ``[n, d_vocab]`` -> ``[n]``."""
    k = legal.sum(-1)
    if (k == 0).any():
        raise ValueError("topk_errors needs at least one legal move per row; drop ended games.")
    order = logits.argsort(-1, descending=True)
    ranked_legal = legal.gather(-1, order)
    in_top = torch.arange(logits.shape[-1])[None] < k[:, None]
    return ((~ranked_legal) & in_top).sum(-1).float() / k


def _size(model: Transformer) -> int:
    words = model.tokenizer.words if model.tokenizer is not None else []
    size = BOARD_SIZE
    if len(words) != len(othello.move_vocab(size)) + 1:
        raise ValueError(
            f"This model's vocabulary ({len(words)} tokens) is not the {size}x{size} Othello "
            "vocabulary (BOS + 32 squares + pass). Load it with mechscope.load('othello-mini')."
        )
    return size


def othello_config(seed: int = 0) -> tuple[TransformerConfig, WordTokenizer]:
    """The architecture of othello-mini (also what the random-init control uses)."""
    tok = WordTokenizer(othello.move_vocab(BOARD_SIZE))
    cfg = TransformerConfig(
        n_layers=4,
        d_model=96,
        n_heads=4,
        d_head=24,
        d_vocab=len(tok),
        n_ctx=BOARD_SIZE * BOARD_SIZE - 4 + 8,  # BOS + up to 32 moves and 7 passes (+1 spare)
        d_mlp=384,
        act_fn="gelu",
        normalization="ln",
        seed=seed,
    )
    return cfg, tok


def train_othello_mini(steps: int | None = None, seed: int = 0) -> tuple[Transformer, dict]:
    """4-layer transformer that learns 6x6 Othello's legal moves from move sequences alone."""
    steps = 3600 if steps is None else steps
    cfg, tok = othello_config(seed)
    data = {"board_size": BOARD_SIZE, "batch": 64, "chunk": 1024}
    optim = {"name": "AdamW", "lr": 2e-3, "weight_decay": 0.01, "betas": [0.9, 0.99]}
    model, opt = seeded_model_and_optimizer(cfg, tok, optim, seed)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * max(0.1, 1 - s / max(steps, 1))
    )
    per_chunk = data["chunk"] // data["batch"]
    games: dict[str, torch.Tensor] = {}

    def loss_at(step):
        if step % per_chunk == 0:  # games come in chunks: batched generation is cheaper per game
            _, games["tokens"], games["legal"] = games_and_targets(
                data["chunk"], _TRAIN_SEED + seed * 100_000 + step // per_chunk
            )
        i = (step % per_chunk) * data["batch"]
        rows = slice(i, i + data["batch"])
        return legal_loss(model(games["tokens"][rows]), games["legal"][rows])

    losses, wall = train_steps(
        model, opt, steps, loss_at, "othello-mini", sched=sched, report_every=50
    )
    model.eval()
    card = {
        "name": "othello-mini",
        "description": "4-layer transformer trained on move sequences of random legal 6x6 "
        "Othello games to predict the legal next moves; it never sees the board, yet the board "
        "(empty / mine / theirs, relative to the player to move) is linearly decodable from its "
        "residual stream, and editing it along the probe directions changes its legal moves.",
        "config": cfg.to_dict(),
        "tokenizer": tok.to_dict(),
        "data": {
            **data,
            "recipe": "mechscope.toy.othello.random_games: uniformly random legal moves from "
            "the standard start (Black first); a player with no legal move plays the explicit "
            "token 'pass'; the game ends when neither player can move. Chunks of `chunk` games, "
            f"seed {_TRAIN_SEED} + seed * 100000 + chunk index; `batch` games per step. Target "
            "at each position: uniform over the legal next tokens.",
            "eval": WORLD_EVAL,
            "probe_eval": PROBE_EVAL,
            "intervene_eval": INTERVENE_EVAL,
        },
        "training": run_record(
            seed,
            steps,
            optim,
            wall,
            losses,
            loss="mechscope.zoo.recipes_world.legal_loss (cross-entropy against the uniform "
            "distribution over legal next moves); linear warm-up 100 steps, linear decay to 0.1",
        ),
        "metrics": world_metrics(model),
        "metrics_definition": "mechscope.zoo.recipes_world.world_metrics: legal_move_metrics "
        "on WORLD_EVAL games; probe = per-square logistic probes (empty/mine/theirs relative "
        "to the player to move) fitted on PROBE_EVAL n_fit games, scored on n_test others; "
        "probe_control = the same on the untrained model; intervention = "
        "intervention_scores on flip_cases(INTERVENE_EVAL): top-k error rates (k = legal "
        "moves) against the edited and the original board's legal moves.",
        "references": [
            "Li et al. 2023, Emergent World Representations: Exploring a Sequence Model Trained "
            "on a Synthetic Task",
            "Nanda, Lee & Wattenberg 2023, Emergent Linear Representations in World Models of "
            "Self-Supervised Sequence Models",
        ],
    }
    return model, card


# ---- probing and editing the board (Nanda et al. 2023) ------------------------------------

PROBE_EVAL = {"n_fit": 300, "fit_seed": 4242, "n_test": 300, "test_seed": 12345, "layer": 2}
INTERVENE_EVAL = {"n": 300, "seed": 777, "margin": 8.0, "layers": [1, 2, 3]}


def board_dataset(model: Transformer, hook_name: str, n: int, seed: int, labels: str = "relative"):
    """Activations of ``hook_name`` at every position of ``n`` games that has a next move, with
    the board there: ``(acts [rows, d_model], labels [rows, square])``. ``labels="relative"``:
    EMPTY/MINE/THEIRS relative to the player to move (Nanda et al. 2023); ``"colour"``:
    empty / Black / White (Li et al. 2023)."""
    from ..world import activations_at

    if labels not in ("relative", "colour"):
        raise ValueError(f"labels={labels!r}; expected 'relative' (mine/theirs) or 'colour'.")
    games, tokens, legal = games_and_targets(n, seed, _size(model))
    mask = legal.any(-1)
    acts = activations_at(model, tokens, hook_name, mask=mask)
    boards = games.boards[:, :-1]
    lab = othello.board_labels(boards) if labels == "relative" else othello.colour_labels(boards)
    return acts, lab[mask]


def fit_board_probe(
    model: Transformer, layer: int, n: int = 300, seed: int = 4242, steps: int = 30
):
    """Per-square 3-class probes (empty / mine / theirs) on ``blocks.{layer}.hook_resid_post``,
    fitted on the positions of ``n`` games (``steps`` L-BFGS iterations)."""
    from ..world import fit_state_probe

    hook = f"blocks.{layer}.hook_resid_post"
    acts, labels = board_dataset(model, hook, n, seed)
    return fit_state_probe(acts, labels, 3, steps=steps, hook=hook, classes=othello.CLASS_NAMES)


@torch.no_grad()
def probe_scores(model: Transformer, probe, n: int = 300, seed: int = 12345) -> dict:
    """A probe's held-out accuracy: over all squares, over occupied squares only (mine vs
    theirs, the part a bag of moves cannot give), and of always guessing each square's
    most common class (fitted on the same held-out set, so an upper bound for that baseline)."""
    acts, labels = board_dataset(model, probe.hook, n, seed)
    pred = probe.predict(acts)
    occupied = labels != othello.EMPTY
    majority = torch.stack([torch.bincount(col, minlength=3).max() for col in labels.T])
    return {
        "accuracy": round(float((pred == labels).float().mean()), 4),
        "occupied_accuracy": round(float((pred == labels)[occupied].float().mean()), 4),
        "majority_baseline": round(float(majority.sum() / labels.numel()), 4),
    }


def _square_to_token_legal(square_legal: torch.Tensor) -> torch.Tensor:
    """bool ``[n, square]`` legal squares -> bool ``[n, d_vocab]`` legal tokens (pass not legal)."""
    square_to_id, _ = othello.token_ids(BOARD_SIZE)
    d_vocab = len(othello.move_vocab(BOARD_SIZE)) + 1
    out = torch.zeros(square_legal.shape[0], d_vocab, dtype=torch.bool)
    keep = square_to_id[:-1] >= 0
    out[:, square_to_id[:-1][keep]] = square_legal[:, keep]
    return out


def flip_cases(n: int, seed: int) -> dict:
    """Positions to edit, one per held-out game: a random position with a next move, and on it a
    random occupied square whose flip (mine <-> theirs) changes the set of legal moves (and
    leaves at least one legal square). Returns tokens ``[m, pos]``, position ``[m]``, square
    ``[m]``, to_class ``[m]`` (MINE or THEIRS, the flipped colour), the board there (int8
    ``[m, square]``, seen from the player to move), and the legal tokens of the
    original and the edited board, bool ``[m, d_vocab]``; games with no such square are dropped.
    """
    games, tokens, _ = games_and_targets(n, seed)
    gen = torch.Generator().manual_seed(seed)
    t = (torch.rand(n, generator=gen) * games.length).long()  # 0 <= t < length
    board = games.boards[torch.arange(n), t]  # [n, square], seen from the player to move
    sq = board.shape[1]
    edited = board[:, None, :].repeat(1, sq, 1)  # [n, square (flipped), square]
    edited[:, torch.arange(sq), torch.arange(sq)] *= -1
    legal = othello.legal_moves(board)
    legal_edit = othello.legal_moves(edited.flatten(0, 1)).view(n, sq, sq)
    ok = (board != 0) & (legal_edit != legal[:, None]).any(-1) & legal_edit.any(-1)
    ok &= legal.any(-1)[:, None]
    keep = ok.any(-1)
    square = torch.multinomial(ok[keep].float(), 1, generator=gen)[:, 0]
    rows = keep.nonzero()[:, 0]
    return {
        "tokens": tokens[rows],
        "position": t[rows],
        "square": square,
        "to_class": torch.where(board[rows, square] > 0, othello.THEIRS, othello.MINE),
        "board": board[rows],
        "legal": _square_to_token_legal(legal[rows]),
        "legal_edited": _square_to_token_legal(legal_edit[rows, square]),
    }


@torch.no_grad()
def intervention_scores(model: Transformer, probes, cases: dict, margin: float = 4.0) -> dict:
    """Li et al. (2023)'s test of a world model: flip one square with the probes
    (:func:`mechscope.world.intervene_to_class`) and score the model's top-k moves (k = legal
    moves) against the edited board's legal moves, before and after, as an error rate (the
    fraction of the top-k that is illegal). Also: the same error against the original board,
    and a control that pushes as far in a random direction at the same hook points."""
    from ..world import intervene_along, intervene_to_class

    rows = torch.arange(len(cases["position"]))
    pos = cases["position"]

    def errors(logits, legal):
        return round(float(topk_errors(logits[rows, pos], legal).mean()), 4)

    clean = model(cases["tokens"])
    edit = intervene_to_class(
        model, cases["tokens"], probes, cases["square"], to_class=cases["to_class"], pos=pos,
        margin=margin,
    )  # fmt: skip
    edited, moved = edit.logits, edit.amounts
    # Control: random unit directions, pushed as far as the probe edit moved each position.
    names = [p.hook for p in probes]
    gen = torch.Generator().manual_seed(0)
    rand = torch.randn(len(names), len(rows), model.cfg.d_model, generator=gen)
    rand = rand / rand.norm(dim=-1, keepdim=True)
    control = intervene_along(
        model, cases["tokens"], hooks=names, directions=rand, amounts=moved, pos=pos
    )
    return {
        "n_cases": len(rows),
        "edited_error_before": errors(clean, cases["legal_edited"]),
        "edited_error_after": errors(edited, cases["legal_edited"]),
        "edited_error_random_push": errors(control, cases["legal_edited"]),
        "original_error_before": errors(clean, cases["legal"]),
        "original_error_after": errors(edited, cases["legal"]),
        "mean_push_norm": round(float(moved.mean()), 3),
    }


def random_init_control(model: Transformer) -> Transformer:
    """The control of a probe: the same architecture and tokenizer, untrained (seeded init)."""
    return Transformer(model.cfg, tokenizer=model.tokenizer).eval()


@torch.no_grad()
def world_metrics(model: Transformer) -> dict:
    """The card's metrics: legal moves (``WORLD_EVAL``), the board probe on the trained and on a
    random-init model (``PROBE_EVAL``), and the probe-direction intervention
    (``INTERVENE_EVAL``). Deterministic given the weights."""
    out = legal_move_metrics(model, **WORLD_EVAL)
    pe, ie = PROBE_EVAL, INTERVENE_EVAL
    control = random_init_control(model)
    with torch.enable_grad():
        probes = {
            layer: fit_board_probe(model, layer, pe["n_fit"], pe["fit_seed"])
            for layer in sorted({pe["layer"], *ie["layers"]})
        }
        control_probe = fit_board_probe(control, pe["layer"], pe["n_fit"], pe["fit_seed"])
    for name, m, probe in (
        ("probe", model, probes[pe["layer"]]),
        ("probe_control", control, control_probe),
    ):
        scores = probe_scores(m, probe, pe["n_test"], pe["test_seed"])
        out[name] = {"hook": probe.hook, **scores}
    probes = [probes[layer] for layer in ie["layers"]]
    cases = flip_cases(ie["n"], ie["seed"])
    out["intervention"] = {
        "hooks": [p.hook for p in probes],
        **intervention_scores(model, probes, cases, ie["margin"]),
    }
    return out
