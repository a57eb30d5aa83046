"""Curve detectors and branch specialization at toy scale (the review's §3.3 motifs).

Cammarata et al. (2020, "Curve Detectors", Distill) found InceptionV1 units that respond to a
curve of one orientation: a bell-shaped **tuning curve** over orientation, and a weaker answer
to a straight line. Voss et al. (2021, "Branch Specialization") found that parallel branches
of a layer specialise in feature families. Here both are measured on generated images:

* :func:`shape_images` draws arcs (bulging towards one of ``n_angles`` orientations, several
  radii), lines (the radius-to-infinity limit: the same normal, no bend) and blobs on a
  ``size x size`` canvas (anti-aliased, values in [0, 1]);
* :func:`curve_dataset` is the training task: which way does the curve bulge (8 classes), or
  is it a line (class 8) or a blob (class 9)? Orientation alone does not solve it (a line has
  one too) and shape alone does not (8 curve classes);
* :class:`CurveCNN` (zoo model ``curves-cnn``) has conv1, then two parallel conv branches
  ``branch_a`` / ``branch_b`` whose outputs are concatenated, a global max-pool and a readout;
* :func:`tuning_curves` measures each unit's response to centred curves and lines of each
  orientation: a tuning index ``(max - mean) / max`` over orientations (0 = untuned, 1 - 1/8 =
  fires for one orientation only) and a curve selectivity ``(c - l) / (c + l)`` at the unit's
  preferred orientation (curve response ``c``, line response ``l``);
* :func:`branch_ablation` zeroes one branch at a time and reports accuracy per class family.

Hook names (all :class:`~mechscope.HookPoint` modules, removed in a ``finally``)::

    hook_input            [batch, 1, 16, 16]
    conv1.hook_pre/post   [batch, 8, 16, 16]   5x5 conv, then ReLU; 2x2 max-pool follows
    branch_a.hook_post    [batch, 8, 8, 8]     3x3 conv of the pooled conv1, ReLU
    branch_b.hook_post    [batch, 8, 8, 8]
    hook_layer2           [batch, 16, 8, 8]    the two branches concatenated (a first, then b)
    hook_pooled           [batch, 16]          each channel's maximum over space
    hook_logits           [batch, 10]
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._small_models import ConvLayer, with_weights
from ..cache import HookPointsMixin
from ..hooks import HookPoint, name_hook_points
from .cnn import accuracy, zoo_vision_dir
from .examples import image_acts

KINDS = ("curve", "line", "blob")
ARC_LENGTH = 9.0  # pixels along every arc and line, so curvature alone tells them apart
RADII = (2.5, 3.5, 5.0)  # the test stimuli's radii (training draws them from [2.5, 7])
STROKE = 0.6  # Gaussian stroke width (pixels)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.arange(size, dtype=torch.float32) + 0.5
    return c[None, :].expand(size, size), c[:, None].expand(size, size)  # x (col), y (row)


def _draw(kind: str, angle: torch.Tensor, param: torch.Tensor, mid: torch.Tensor, size: int):
    """``[n, size, size]``: one shape per row of ``angle [n]`` (radians), ``param [n]`` (radius,
    or blob width) and ``mid [n, 2]`` (the arc's midpoint or the blob's centre, pixels)."""
    gx, gy = _grid(size)
    px, py = gx[None] - mid[:, 0, None, None], gy[None] - mid[:, 1, None, None]
    ca, sa = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    if kind == "blob":
        return torch.exp(-(px**2 + py**2) / (2 * param[:, None, None] ** 2))
    if kind == "line":  # normal = angle, so the segment runs along angle + 90 degrees
        along = (-sa * px + ca * py).clamp(-ARC_LENGTH / 2, ARC_LENGTH / 2)
        dx, dy = px - (-sa) * along, py - ca * along
        dist = torch.sqrt(dx**2 + dy**2)
    else:  # arc of radius r whose midpoint is mid, bulging towards angle
        r = param[:, None, None]
        vx, vy = px + r * ca, py + r * sa  # relative to the circle's centre
        phi = torch.atan2(vy, vx) - angle[:, None, None]
        phi = torch.remainder(phi + math.pi, 2 * math.pi) - math.pi
        half = (ARC_LENGTH / (2 * r)).clamp(max=0.9 * math.pi)
        on_arc = (torch.sqrt(vx**2 + vy**2) - r).abs()
        ends = []
        for s in (-1, 1):
            ex, ey = (
                r * torch.cos(angle[:, None, None] + s * half),
                r * torch.sin(angle[:, None, None] + s * half),
            )
            ends.append(torch.sqrt((vx - ex) ** 2 + (vy - ey) ** 2))
        dist = torch.where(phi.abs() <= half, on_arc, torch.minimum(*ends))
    return torch.exp(-(dist**2) / (2 * STROKE**2))


def shape_images(kind: str, *, n_angles: int = 8, sizes=RADII, size: int = 16) -> torch.Tensor:
    """Centred test stimuli ``[n_angles, len(sizes), 1, size, size]`` in [0, 1].

    kind: ``"curve"`` (an arc of radius ``sizes[j]`` bulging towards angle ``360 i / n_angles``
    degrees; 0 = right, 90 = down), ``"line"`` (a segment with the same normal, no bend: the
    same for every ``j``) or ``"blob"`` (a Gaussian of width ``sizes[j] / 2``, the same for
    every ``i``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {', '.join(map(repr, KINDS))}.")
    if not isinstance(n_angles, int) or n_angles < 1:
        raise ValueError(f"n_angles={n_angles!r}; expected a positive integer such as 8.")
    sizes = torch.as_tensor(sizes, dtype=torch.float32).flatten()
    angle = (torch.arange(n_angles) * 2 * math.pi / n_angles).repeat_interleave(len(sizes))
    param = sizes.repeat(n_angles) / (2 if kind == "blob" else 1)
    mid = torch.full((len(angle), 2), size / 2)
    out = _draw(kind, angle, param, mid, size)
    return out.reshape(n_angles, len(sizes), 1, size, size)


def curve_dataset(n: int, *, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The training task: ``(images [n, 1, size, size], labels [n])``, seeded.

    Labels 0-7: a curve bulging towards ``45 * label`` degrees (+- 10 degrees of jitter, radius
    uniform in [2.5, 7]); 8: a line of any orientation; 9: a blob (width 1-2.5). Every image
    is shifted up to 2 pixels, scaled by 0.7-1 and has Gaussian pixel noise (std 0.05).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}; expected a positive number of images such as 4096.")
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(10, (n,), generator=g)
    jitter = (torch.rand(n, generator=g) - 0.5) * math.radians(20)
    angle = torch.where(
        labels < 8, labels * math.pi / 4 + jitter, torch.rand(n, generator=g) * 2 * math.pi
    )
    radius = 2.5 + 4.5 * torch.rand(n, generator=g)
    width = 1.0 + 1.5 * torch.rand(n, generator=g)
    mid = size / 2 + (torch.rand(n, 2, generator=g) - 0.5) * 4
    images = torch.empty(n, size, size)
    for kind, mask in (("curve", labels < 8), ("line", labels == 8), ("blob", labels == 9)):
        p = width if kind == "blob" else radius
        images[mask] = _draw(kind, angle[mask], p[mask], mid[mask], size)
    scale = 0.7 + 0.3 * torch.rand(n, 1, 1, generator=g)
    images = images * scale + 0.05 * torch.randn(n, size, size, generator=g)
    return images.clamp(0, 1)[:, None], labels


@dataclass(frozen=True)
class CurveConfig:
    channels: tuple[int, int] = (8, 8)  # conv1's channels, and each branch's
    image_size: int = 16
    n_classes: int = 10
    seed: int = 0  # seeds the initial weights (torch's default init)

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}


class CurveCNN(HookPointsMixin, nn.Module):
    """conv1 (5x5) -> pool -> two parallel 3x3 branches, concatenated -> global max -> readout.

    The global max-pool (as in InceptionV1's head, which averages) makes every layer-2 channel
    carry its answer alone: the readout cannot combine where in the image units fired.

    ``model(images)``: ``images [batch, 1, 16, 16]`` in [0, 1] -> logits ``[batch, 10]``;
    hook names in the module docstring.
    """

    def __init__(self, cfg: CurveConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or CurveConfig()
        c1, c2 = cfg.channels
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.hook_input = HookPoint()
            self.conv1 = ConvLayer(1, c1, 5)
            self.branch_a = ConvLayer(c1, c2, 3)
            self.branch_b = ConvLayer(c1, c2, 3)
            self.hook_layer2 = HookPoint()
            self.hook_pooled = HookPoint()
            self.readout = nn.Linear(2 * c2, cfg.n_classes)
            self.hook_logits = HookPoint()
        self._points = name_hook_points(self)
        self.card: dict = {}
        self.eval()

    def forward(self, images) -> torch.Tensor:
        s = self.cfg.image_size
        x = torch.as_tensor(images, dtype=torch.float32)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, s, s):
            raise ValueError(
                f"images has shape {tuple(x.shape)}; expected [batch, 1, {s}, {s}] in [0, 1], "
                "e.g. from mechscope.vision.curves.curve_dataset."
            )
        x = F.max_pool2d(self.conv1(self.hook_input(x)), 2)  # [batch, c1, s/2, s/2]
        x = self.hook_layer2(torch.cat([self.branch_a(x), self.branch_b(x)], 1))
        x = self.hook_pooled(x.amax((-2, -1)))  # [batch, 2 c2]: global max-pool
        return self.hook_logits(self.readout(x))


def load_curve_cnn(name: str = "curves-cnn") -> CurveCNN:
    """The shipped ``zoo/vision/curves-cnn`` (weights + card), in eval mode."""
    path = zoo_vision_dir() / f"{name}.safetensors"
    card_path = path.with_suffix(".json")
    if not isinstance(name, str) or not card_path.exists():
        raise ValueError(
            f"name={name!r}: no shipped curve CNN of that name; expected 'curves-cnn'. "
            "Retrain it with python -m mechscope.zoo.train curves-cnn."
        )
    card = json.loads(card_path.read_text())
    if card.get("architecture") != "CurveCNN":
        raise ValueError(f"name={name!r} is not a CurveCNN; load it with load_zoo_cnn({name!r}).")
    cfg = card["config"]
    model = CurveCNN(CurveConfig(**{**cfg, "channels": tuple(cfg["channels"])}))
    return with_weights(model, path, card)


@dataclass(frozen=True)
class TuningResult:
    """Per unit (channel) of one hook: ``curve [unit, angle]`` (mean over radii) and ``line
    [unit, angle]`` responses, ``blob [unit]``, ``preferred [unit]`` (argmax angle of the curve
    response), ``tuning_index [unit]`` = (max - mean) / max of ``curve``, and ``selectivity
    [unit]`` = (c - l) / (c + l) at the preferred angle (NaN where a unit never fires)."""

    curve: torch.Tensor
    line: torch.Tensor
    blob: torch.Tensor
    preferred: torch.Tensor
    tuning_index: torch.Tensor
    selectivity: torch.Tensor

    def detectors(self, *, threshold: float = 0.5) -> torch.Tensor:
        """Indices of curve detectors: tuning index >= ``threshold`` and selectivity > 0."""
        keep = (self.tuning_index >= threshold) & (self.selectivity > 0)
        return keep.nonzero().flatten()


@torch.no_grad()
def tuning_curves(model, hook: str, *, n_angles: int = 8) -> TuningResult:
    """Tuning curves of every channel of ``hook`` over ``n_angles`` orientations; a channel's
    response to an image is its largest activation over space (``image_acts``)."""
    size = model.cfg.image_size
    acts = {}
    for kind in KINDS:
        x = shape_images(kind, n_angles=n_angles, size=size)
        a = image_acts(model, x.flatten(0, 1), hook)  # [angle * radius, unit]
        acts[kind] = a.reshape(n_angles, len(RADII), -1).mean(1).T  # [unit, angle]
    curve, line = acts["curve"], acts["line"]
    peak, preferred = curve.max(-1)
    index = (peak - curve.mean(-1)) / peak
    c, lin = peak, line.gather(1, preferred[:, None])[:, 0]
    select = (c - lin) / (c + lin)
    return TuningResult(curve, line, acts["blob"].mean(-1), preferred, index, select)


@torch.no_grad()
def branch_ablation(model: CurveCNN, images, labels) -> dict[str, dict[str, float]]:
    """Accuracy on curves (labels 0-7) and on lines and blobs (8, 9) with nothing, ``branch_a``
    or ``branch_b`` zeroed: ``{"none" | "branch_a" | "branch_b": {"curve": acc, "other": acc}}``.
    """
    labels = torch.as_tensor(labels)
    out = {}
    for ablate in ("none", "branch_a", "branch_b"):
        hooks = [] if ablate == "none" else [(f"{ablate}.hook_post", lambda a, hook: a * 0)]
        with model.hooks(hooks):
            out[ablate] = {
                fam: accuracy(model, images[m], labels[m])
                for fam, m in (("curve", labels < 8), ("other", labels >= 8))
            }
    return out
