"""Brain-inspired modular training (BIMT) on a toy MLP, and circuits found by pruning.

Liu, Gan & Tegmark (2023), "Seeing is Believing: Brain-Inspired Modular Training for
Mechanistic Interpretability": place the neurons of an MLP on a 2-D grid (layer = row, neuron =
position in the row) and add ``strength * sum |w_ij| * distance(i, j)`` to the loss, so long
wires cost more than short ones; every few hundred steps, swap hidden neurons (a permutation
that leaves the function unchanged) when that shortens the wiring. Nainani et al. (2024),
"Evaluating Brain-Inspired Modular Training in Automated Circuit Discovery", report that such
networks' circuits are smaller. Here the task is two independent problems side by side
(:func:`two_task_data`): output 0 depends on inputs 0-1 only, output 1 on inputs 2-3 only.

Shapes: inputs ``[n, 4]``, labels ``[n, 2]`` (0/1), ``LayeredMLP.weights[l]`` ``[out, in]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("none", "l1", "bimt")
SIZES = (4, 16, 16, 2)  # input, two hidden layers, output
LAYER_GAP = 0.25  # vertical distance between rows of the 2-D layout (rows are 1 wide)


def two_task_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points uniform in ``[-1, 1]^4`` -> ``(inputs [n, 4], labels [n, 2])``: label 0 is
    ``x0 * x1 > 0`` (an XOR), label 1 is ``x2^2 + x3^2 < 0.5`` (a disc)."""
    x = torch.rand(n, 4, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    y = torch.stack([x[:, 0] * x[:, 1] > 0, (x[:, 2:] ** 2).sum(1) < 0.5], 1)
    return x, y.float()


class LayeredMLP(nn.Module):
    """An MLP (SiLU) whose neurons sit on a 2-D layout: neuron ``i`` of a layer of ``n`` at
    ``((i + 0.5) / n, layer * LAYER_GAP)``. ``weights[l]`` is ``[out, in]``."""

    def __init__(self, sizes=SIZES, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.sizes = tuple(sizes)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(o, i, generator=gen) / i**0.5)
            for i, o in zip(sizes, sizes[1:], strict=False)
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(o)) for o in sizes[1:])

    def forward(self, x, masks=None):  # x: [n, 4] -> logits [n, 2]
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ (w if masks is None else w * masks[i]).T + b
            x = F.silu(x) if i < len(self.weights) - 1 else x
        return x

    def distances(self) -> list[torch.Tensor]:
        """Wire lengths ``[out, in]`` between consecutive rows of the layout."""
        pos = [(torch.arange(n) + 0.5) / n for n in self.sizes]
        return [
            ((a[None, :] - b[:, None]) ** 2 + LAYER_GAP**2).sqrt()
            for a, b in zip(pos, pos[1:], strict=False)
        ]


def connection_cost(model: LayeredMLP) -> float:
    """Mean wire length weighted by ``|w|``: ``sum |w| d / sum |w|`` (lower = more local)."""
    with torch.no_grad():
        num = sum(
            float((w.abs() * d).sum())
            for w, d in zip(model.weights, model.distances(), strict=True)
        )
        return num / sum(float(w.abs().sum()) for w in model.weights)


def _wiring(model: LayeredMLP, layer: int) -> float:
    """The weighted wire length into and out of hidden row ``layer`` (1-based)."""
    d = model.distances()
    w_in, w_out = model.weights[layer - 1], model.weights[layer]
    return float((w_in.abs() * d[layer - 1]).sum() + (w_out.abs() * d[layer]).sum())


@torch.no_grad()
def _swap_pass(model: LayeredMLP) -> int:
    """Greedy pairwise swaps of hidden neurons that shorten the wiring (the function is
    unchanged: a swap permutes a row's incoming rows, bias and outgoing columns)."""
    swaps = 0
    for layer in range(1, len(model.sizes) - 1):
        w_in, b, w_out = model.weights[layer - 1], model.biases[layer - 1], model.weights[layer]
        for i in range(model.sizes[layer]):
            for j in range(i + 1, model.sizes[layer]):
                before = _wiring(model, layer)
                p = torch.arange(model.sizes[layer])
                p[i], p[j] = j, i
                w_in.copy_(w_in[p]), b.copy_(b[p]), w_out.copy_(w_out[:, p])
                if _wiring(model, layer) < before - 1e-9:
                    swaps += 1
                else:  # undo
                    w_in.copy_(w_in[p]), b.copy_(b[p]), w_out.copy_(w_out[:, p])
    return swaps


def train_bimt(
    kind: str = "bimt", *, strength: float = 1e-3, steps: int = 1000, seed: int = 0
) -> LayeredMLP:
    """Train a :class:`LayeredMLP` on :func:`two_task_data` (1,024 points, full batch, Adam).

    kind: ``"bimt"`` = ``strength * sum |w| * distance`` plus neuron swaps every 200 steps
    (Liu et al. 2023); ``"l1"`` = the same penalty with every distance replaced by the mean
    distance (sparsity without locality, the control that separates the two); ``"none"``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {KINDS}.")
    torch.manual_seed(seed)
    model = LayeredMLP(seed=seed)
    x, y = two_task_data(1024, seed=seed)
    dist = model.distances()
    if kind == "l1":
        mean = sum(float(d.sum()) for d in dist) / sum(d.numel() for d in dist)
        dist = [torch.full_like(d, mean) for d in dist]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        if kind != "none":
            loss = loss + strength * sum(
                (w.abs() * d).sum() for w, d in zip(model.weights, dist, strict=True)
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if kind == "bimt" and step % 200 == 199:
            _swap_pass(model)  # Adam's moments are per weight: reset them with the layout
            opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model.eval()


@torch.no_grad()
def accuracy(model: LayeredMLP, n: int = 4096, seed: int = 1) -> list[float]:
    """Held-out accuracy per output (fresh points drawn with ``seed``)."""
    x, y = two_task_data(n, seed=seed)
    return ((model(x) > 0).float() == y).float().mean(0).tolist()


@dataclass(frozen=True)
class CircuitResult:
    """A circuit found by magnitude pruning to a faithfulness target.

    masks: per layer ``[out, in]`` bools, the edges kept. n_edges / n_total: kept / all
    edges. agreement: per output, the share of held-out inputs on which the pruned network's
    decision equals the full network's. shared_fraction: of the kept edges that lie on a path
    from an input to an output, the share that lie on paths to BOTH outputs (0 = two separate
    modules). cross_inputs: inputs that reach the output whose task ignores them.
    """

    masks: tuple
    n_edges: int
    n_total: int
    agreement: tuple
    shared_fraction: float
    cross_inputs: int


def _reach(masks, output: int) -> list[torch.Tensor]:
    """Per layer ``[out, in]`` bools: the kept edges on some input -> ``output`` path."""
    fwd = [torch.ones(masks[0].shape[1], dtype=torch.bool)]  # reachable from an input
    for m in masks:
        fwd.append((m & fwd[-1][None, :]).any(1))
    back = torch.zeros(masks[-1].shape[0], dtype=torch.bool)
    back[output] = True
    used = [None] * len(masks)
    for i in reversed(range(len(masks))):
        used[i] = masks[i] & back[:, None] & fwd[i][None, :]
        back = used[i].any(0)
    return used


@torch.no_grad()
def prune_to_faithfulness(
    model: LayeredMLP, target: float = 0.98, *, n: int = 4096, seed: int = 1
) -> CircuitResult:
    """The fewest largest-``|w|`` edges whose network agrees with the full one on at least
    ``target`` of ``n`` held-out inputs for each output (binary search over how many of the
    edges, sorted by ``|w|``, are kept). Magnitude pruning is the simplest stand-in for the
    automated circuit discovery Nainani et al. (2024) evaluate BIMT with."""
    if not 0 < target <= 1:
        raise ValueError(f"target={target!r}; expected a share of inputs in (0, 1], e.g. 0.98.")
    x, _ = two_task_data(n, seed=seed)
    full = model(x) > 0
    flat = torch.cat([w.abs().flatten() for w in model.weights])
    order = flat.argsort(descending=True)

    def masks_for(k):
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[order[:k]] = True
        out, start = [], 0
        for w in model.weights:
            out.append(keep[start : start + w.numel()].reshape(w.shape))
            start += w.numel()
        return out

    def agree(k):
        return ((model(x, masks_for(k)) > 0) == full).float().mean(0)

    lo, hi = 0, flat.numel()  # agree(hi) == 1
    while lo < hi:
        mid = (lo + hi) // 2
        if bool((agree(mid) >= target).all()):
            hi = mid
        else:
            lo = mid + 1
    masks = masks_for(hi)
    paths = [_reach(masks, o) for o in range(model.sizes[-1])]
    union = sum(int((a | b).sum()) for a, b in zip(*paths, strict=True))
    both = sum(int((a & b).sum()) for a, b in zip(*paths, strict=True))
    cross = int(paths[0][0][:, 2:].any(0).sum() + paths[1][0][:, :2].any(0).sum())
    return CircuitResult(
        masks=tuple(masks), n_edges=hi, n_total=flat.numel(), agreement=tuple(agree(hi).tolist()),
        shared_fraction=both / max(union, 1), cross_inputs=cross,
    )  # fmt: skip
