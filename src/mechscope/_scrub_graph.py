"""Internals of :mod:`mechscope.scrubbing`: the features a claim names, and the hypothesis
graph (its nodes are the model's embeddings, head outputs, head q/k/v inputs, MLPs and
logits), parsed and checked against the model (names, edges, cycles).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

# ---- features ----------------------------------------------------------------------------


class Feature:
    """A function of the input: ``tokens [batch, pos] -> codes [batch, pos]`` (integers).

    Two contexts are equivalent under the feature when their codes are equal. Combine
    features with ``&`` (equivalent under both).
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str):
        self.fn = fn
        self.name = name

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        codes = self.fn(tokens)
        if not isinstance(codes, torch.Tensor) or codes.shape != tokens.shape:
            got = list(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(
                f"Feature {self.name!r} returned {got}, expected integer codes of the tokens' "
                f"shape {list(tokens.shape)} (one code per context)."
            )
        return codes.long()

    def __and__(self, other: Feature) -> Feature:
        def both(tokens):
            a, b = self(tokens), other(tokens)
            pairs = torch.stack([a.flatten(), b.flatten()], dim=1)
            return torch.unique(pairs, dim=0, return_inverse=True)[1].view(tokens.shape)

        return Feature(both, f"{self.name} & {other.name}")

    def __repr__(self) -> str:
        return self.name


class Everything(Feature):
    """The whole context: only the context itself is equivalent (no resampling)."""

    def __init__(self):
        super().__init__(lambda t: torch.arange(t.numel()).view(t.shape), "EVERYTHING")


EVERYTHING = Everything()


def token(offset: int = 0) -> Feature:
    """The token at position ``j + offset`` of context ``(s, j)``; -1 where that is outside.

    ``tokens [batch, pos] -> codes [batch, pos]``. ``token(-1)`` is the previous token, the
    feature a previous-token head computes (Elhage et al. 2021); used as in Chan et al. 2022.
    """

    def fn(tokens):
        out = torch.full_like(tokens, -1)
        T = tokens.shape[1]
        if offset <= 0:
            out[:, -offset:] = tokens[:, : T + offset]
        else:
            out[:, : T - offset] = tokens[:, offset:]
        return out

    return Feature(fn, "token" if offset == 0 else f"token({offset:+d})")


def position() -> Feature:
    """The position ``j`` of context ``(s, j)``: ``tokens [batch, pos] -> codes [batch, pos]``.

    Combine with another feature (``token() & position()``) to keep resampled contexts at the
    same position (Chan et al. 2022 resample at fixed positions of whole sequences).
    """
    return Feature(lambda t: torch.arange(t.shape[1]).expand(t.shape), "position")


def induction_target() -> Feature:
    """The token after the previous occurrence of the current token (-1 if there is none).

    What an induction head predicts (Elhage et al. 2021; Olsson et al. 2022): for
    ``[A][B] ... [A]`` it is ``B``. ``tokens [batch, pos] -> codes [batch, pos]``.
    """

    def fn(tokens):
        T = tokens.shape[1]
        same = tokens[:, :, None] == tokens[:, None, :]  # [batch, query, earlier]
        earlier = torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1)
        after = (same & earlier) * torch.arange(1, T + 1)  # index of the token after a match
        last = after.max(dim=2).values  # 0 = no earlier occurrence
        return torch.where(last > 0, tokens.gather(1, last.clamp(max=T - 1)), -1)

    return Feature(fn, "induction_target")


# ---- hypothesis --------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """What the hypothesis says about one node.

    feature: the input feature the node's value depends on (:data:`EVERYTHING` = the whole
        context, i.e. no resampling). Ignored for ``"logits"`` (always the reference).
    parents: the model parents it claims the node reads that feature from; every other
        path into the node is resampled from random contexts.
    """

    feature: Feature = EVERYTHING
    parents: Sequence = field(default_factory=tuple)


class Hypothesis:
    """A hypothesis: ``{node: Claim}``. Nodes are named as in the module docstring.

    ``Hypothesis({})`` is the empty hypothesis (nothing matters); :meth:`full` is the
    trivial one (every node depends on its whole context through every model edge).
    """

    def __init__(self, claims: Mapping):
        self.claims = dict(claims)

    @classmethod
    def full(cls, model) -> Hypothesis:
        """Every node of ``model``'s graph, feature :data:`EVERYTHING`, every model edge."""
        nodes = _model_nodes(model)
        return cls(
            {
                _display(n): Claim(EVERYTHING, [_display(p) for p in model_parents(model, n)])
                for n in nodes
            }
        )

    def __repr__(self) -> str:
        lines = [f"  {k!r}: {c.feature!r} <- {list(c.parents)}" for k, c in self.claims.items()]
        return "Hypothesis(\n" + "\n".join(lines) + "\n)"


# Internal node keys: ("embed",), ("logits",), ("q"|"k"|"v"|"z", layer, head), ("mlp", layer).
_HEAD_HOOKS = {"hook_q": "q", "hook_k": "k", "hook_v": "v", "hook_z": "z"}


def _display(node):
    kind = node[0]
    if kind in ("embed", "logits"):
        return kind
    if kind == "mlp":
        return f"blocks.{node[1]}.hook_mlp_out"
    return (f"blocks.{node[1]}.attn.hook_{kind}", node[2])


def _model_nodes(model) -> list[tuple]:
    cfg = model.cfg
    nodes = [("embed",)]
    for layer in range(cfg.n_layers):
        for kind in "qkvz":
            nodes += [(kind, layer, h) for h in range(cfg.n_heads)]
        if not cfg.attn_only:
            nodes.append(("mlp", layer))
    return nodes + [("logits",)]


def model_parents(model, node) -> list[tuple]:
    """The components whose output feeds ``node`` in the model (its parents in our graph)."""
    cfg = model.cfg
    kind = node[0]
    if kind == "embed":
        return []
    if kind == "z":
        return [(c, node[1], node[2]) for c in "qkv"]
    if kind in "qkv":
        head_layers, mlp_layers = range(node[1]), range(node[1])
    elif kind == "mlp":
        head_layers, mlp_layers = range(node[1] + 1), range(node[1])
    else:  # logits
        head_layers, mlp_layers = range(cfg.n_layers), range(cfg.n_layers)
    parents = [("embed",)]
    for layer in range(cfg.n_layers):
        if layer in head_layers:
            parents += [("z", layer, h) for h in range(cfg.n_heads)]
        if layer in mlp_layers and not cfg.attn_only:
            parents.append(("mlp", layer))
    return parents


def _parse(model, name, valid_names: list[str]):
    """User spelling -> internal key; unknown names raise a KeyError with the closest names."""
    cfg = model.cfg
    shown = repr(name)
    if isinstance(name, str):
        if name in ("embed", "logits"):
            return (name,)
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == "blocks" and parts[2] == "hook_mlp_out":
            if parts[1].isdigit() and int(parts[1]) < cfg.n_layers and not cfg.attn_only:
                return ("mlp", int(parts[1]))
    elif isinstance(name, tuple) and len(name) == 2 and isinstance(name[0], str):
        parts = name[0].split(".")
        head = name[1]
        if (
            len(parts) == 4
            and parts[0] == "blocks"
            and parts[1].isdigit()
            and parts[2] == "attn"
            and parts[3] in _HEAD_HOOKS
            and int(parts[1]) < cfg.n_layers
            and isinstance(head, int)
            and 0 <= head < cfg.n_heads
        ):
            return (_HEAD_HOOKS[parts[3]], int(parts[1]), head)
    close = difflib.get_close_matches(shown, valid_names, n=4, cutoff=0.6)
    hint = f" Closest valid names: {', '.join(close)}." if close else ""
    raise KeyError(
        f"Unknown hypothesis node {shown}.{hint} Nodes are 'embed', 'logits', "
        f"(f'blocks.{{layer}}.attn.hook_{{q|k|v|z}}', head) with layer < {cfg.n_layers} and "
        f"head < {cfg.n_heads}"
        + (", and f'blocks.{layer}.hook_mlp_out'." if not cfg.attn_only else " (no MLPs here).")
    )


def validate(model, hypothesis) -> dict:
    """Check names, cycles and edges; return ``{node_key: (feature, [parent_keys])}``."""
    if not isinstance(hypothesis, Hypothesis):
        raise TypeError(
            f"hypothesis must be a Hypothesis, got {type(hypothesis).__name__}. "
            "Build one with Hypothesis({node: Claim(feature, parents=[...])})."
        )
    valid_names = [repr(_display(n)) for n in _model_nodes(model)]
    claims = {}
    for name, claim in hypothesis.claims.items():
        if not isinstance(claim, Claim):
            raise TypeError(
                f"The claim for {name!r} is a {type(claim).__name__}, expected "
                "Claim(feature, parents=[...])."
            )
        if not isinstance(claim.feature, Feature):
            raise TypeError(
                f"The feature of {name!r} is {claim.feature!r}, expected a Feature "
                "(EVERYTHING, token(), position(), ... or Feature(fn, name))."
            )
        one_head = (  # ("blocks.1.attn.hook_z", 2) is one node, not two parents
            isinstance(claim.parents, tuple)
            and len(claim.parents) == 2
            and isinstance(claim.parents[1], int)
        )
        if isinstance(claim.parents, str) or one_head:
            raise TypeError(
                f"The parents of {name!r} are {claim.parents!r}, expected a list of nodes. "
                f"Wrap a single parent in a list: parents=[{claim.parents!r}]."
            )
        parents = [_parse(model, p, valid_names) for p in claim.parents]
        claims[_parse(model, name, valid_names)] = (claim.feature, parents)
    _check_acyclic(claims)
    for node, (_, parents) in claims.items():
        allowed = model_parents(model, node)
        for p in parents:
            if p not in claims:
                raise ValueError(
                    f"{_display(p)!r} is a claimed parent of {_display(node)!r} but has no claim "
                    f"itself. Add {_display(p)!r}: Claim(feature, parents=[...]) to the hypothesis."
                )
            if p not in allowed:
                raise ValueError(
                    f"{_display(p)!r} cannot feed {_display(node)!r}: in the model, "
                    f"{_display(node)!r} reads only {[_display(a) for a in allowed]}. Fix the "
                    "edge (heads read earlier layers; a head's output reads its own q, k, v)."
                )
    reached, todo = set(), [("logits",)] if ("logits",) in claims else []
    while todo:
        n = todo.pop()
        if n not in reached:
            reached.add(n)
            todo += claims[n][1]
    loose = [_display(n) for n in claims if n not in reached]
    if loose:
        raise ValueError(
            f"Claims {loose} are not connected to 'logits' through claimed edges, so they "
            "would have no effect. Add them as parents of a claimed node (or of 'logits')."
        )
    return claims


def _check_acyclic(claims: dict) -> None:
    state: dict = {}  # 1 = on the current path, 2 = done

    def visit(n, path):
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = path[path.index(n) :] + [n]
            raise ValueError(
                "The hypothesis is cyclic: "
                + " -> ".join(repr(_display(c)) for c in reversed(cycle))
                + ". A component can only read components that run before it; remove an edge."
            )
        state[n] = 1
        for p in claims.get(n, (None, []))[1]:
            visit(p, path + [n])
        state[n] = 2

    for n in claims:
        visit(n, [])
