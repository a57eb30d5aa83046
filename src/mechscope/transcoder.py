"""Transcoders: a sparse, wider replacement for an MLP layer.

A transcoder (Dunefsky, Chlenski & Nanda 2024, "Transcoders Find Interpretable LLM Feature
Circuits"; Ameisen et al. 2025, "Circuit Tracing") reads an MLP's input and predicts its
output through sparse features::

    acts = TopK(ReLU(x_in @ W_enc + b_enc))      x_in  [..., d_in]   e.g. blocks.L.ln2.hook_normalized
    y_hat = acts @ W_dec + b_dec                 y_hat [..., d_out]  e.g. blocks.L.hook_mlp_out

Unlike an SAE it does not reconstruct its own input, so a feature's decoder row is a direct
contribution to the residual stream, and a feature's input is a linear read of the residual
stream (with normalisation frozen): the two facts attribution graphs are built on
(``mechscope.attribution_graph``). One transcoder per MLP layer ("per-layer transcoders");
we chose them over a cross-layer transcoder, whose decoders write to every later layer: on a
2-layer model the difference is one extra decoder, and per-layer transcoders splice into a
model one MLP at a time (``mechscope.splice``).

Weights: ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_out]``, ``b_dec
[d_out]``. TopK only (Gao et al. 2024): ``k`` features per input, no L1 coefficient to tune.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from mechscope._safetensors import check_safetensors, load_safetensors

__all__ = [
    "Transcoder",
    "TranscoderConfig",
    "load_zoo_transcoder",
    "train_transcoder",
    "zoo_transcoders",
]


@dataclass(frozen=True)
class TranscoderConfig:
    d_in: int  # width of the input, e.g. d_model for blocks.{l}.ln2.hook_normalized
    d_out: int  # width of the output, e.g. d_model for blocks.{l}.hook_mlp_out
    d_sae: int  # number of features (the name SAEs use, so tools treat both alike)
    k: int  # features kept per input (TopK)
    input_site: str | None = None  # hook the input is read from
    site: str | None = None  # hook whose activation it predicts (and replaces when spliced)
    seed: int = 0  # seeds the initial weights

    def __post_init__(self):
        for name in ("d_in", "d_out", "d_sae"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r}; expected an integer >= 1.")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= self.d_sae:
            raise ValueError(f"k={self.k!r}; valid is 1 <= k <= d_sae={self.d_sae}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TranscoderConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class Transcoder(nn.Module):
    """A TopK transcoder; see the module docstring for the equations and shapes."""

    def __init__(self, cfg: TranscoderConfig):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.seed)
        self.W_enc = nn.Parameter(torch.randn(cfg.d_in, cfg.d_sae, generator=gen) / cfg.d_in**0.5)
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        W_dec = torch.randn(cfg.d_sae, cfg.d_out, generator=gen)
        self.W_dec = nn.Parameter(W_dec / W_dec.norm(dim=1, keepdim=True) * 0.1)
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_out))
        self.card: dict = {}

    def _check(self, x: torch.Tensor, width: int, what: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(
                f"{what} must be a float tensor [..., {width}], got "
                f"{getattr(x, 'dtype', type(x).__name__)}."
            )
        if x.dim() == 0 or x.shape[-1] != width:
            raise ValueError(
                f"{what} has shape {list(x.shape)}; this transcoder expects [..., {width}]"
                + (f" (read from {self.cfg.input_site!r})" if what == "x" else "")
                + "."
            )
        return x.to(self.W_enc.dtype)

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., d_in]`` -> encoder pre-activations ``[..., d_sae]``."""
        return self._check(x, self.cfg.d_in, "x") @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., d_in]`` -> feature activations ``[..., d_sae]`` (k non-zero at most)."""
        pre = self.pre_activations(x)
        values, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, idx, F.relu(values))

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """``[..., d_sae]`` -> predicted output ``[..., d_out]``."""
        return self._check(f, self.cfg.d_sae, "f") @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    # ---- save / load ----------------------------------------------------------------

    def save(self, path: str | Path, card: dict | None = None) -> Path:
        """Write ``<path>.safetensors`` and ``<path>.json`` (config + card); returns the weights."""
        stem = Path(path)
        stem = stem.with_suffix("") if stem.suffix in (".safetensors", ".json") else stem
        stem.parent.mkdir(parents=True, exist_ok=True)
        weights = stem.with_name(stem.name + ".safetensors")
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(weights), metadata={"config": json.dumps(self.cfg.to_dict())})
        self.card = {**(card or self.card), "kind": "transcoder", "config": self.cfg.to_dict()}
        stem.with_name(stem.name + ".json").write_text(json.dumps(self.card, indent=2) + "\n")
        return weights

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Transcoder:
        """Load a transcoder saved by :meth:`save` (safetensors; nothing is unpickled)."""
        path = Path(path)
        if path.is_file() and path.suffix not in (".safetensors", ".json"):
            check_safetensors(path, "Transcoder.load")
        stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
        card_path, weights = (stem.with_name(stem.name + s) for s in (".json", ".safetensors"))
        for p in (card_path, weights):
            if not p.exists():
                raise FileNotFoundError(
                    f"No transcoder file {p}; Transcoder.save(path) writes <path>.json and "
                    f"<path>.safetensors."
                )
        card = json.loads(card_path.read_text())
        tc = cls(TranscoderConfig.from_dict(card["config"]))
        tc.load_state_dict(load_safetensors(weights, "Transcoder.load", device))
        tc.card = card
        return tc.to(device).eval()


def _zoo_dir() -> Path:
    return Path(str(resources.files("mechscope") / "zoo" / "transcoders"))


def zoo_transcoders() -> list[str]:
    """Names of the transcoders shipped with the package."""
    d = _zoo_dir()
    return sorted(p.stem for p in d.glob("*.json") if p.with_suffix(".safetensors").exists())


def load_zoo_transcoder(name: str, device: str = "cpu") -> Transcoder:
    """A shipped transcoder by name, e.g. ``load_zoo_transcoder("facts-ioi-2l-tc0")``."""
    if name not in zoo_transcoders():
        raise ValueError(
            f"No shipped transcoder named {name!r}. Available: "
            f"{', '.join(zoo_transcoders()) or '(none)'}."
        )
    return Transcoder.load(_zoo_dir() / name, device=device)


def train_transcoder(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    cfg: TranscoderConfig,
    *,
    steps: int = 2000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    dead_window: int = 20_000,
    progress: bool = True,
) -> Transcoder:
    """Train a transcoder to map ``inputs [n, d_in]`` to ``targets [n, d_out]`` (MSE).

    Adam; rows shuffled once per pass (seeded by ``cfg.seed``); ``b_dec`` starts at the mean
    target. Features that have not fired for ``dead_window`` inputs are revived by the AuxK
    loss of Gao et al. (2024): the k_aux largest dead pre-activations must predict the
    residual. Returns the transcoder in eval mode; ``card["training"]`` records the run.
    """
    if inputs.shape[-1] != cfg.d_in or targets.shape[-1] != cfg.d_out:
        raise ValueError(
            f"inputs {list(inputs.shape)} / targets {list(targets.shape)} do not match "
            f"cfg.d_in={cfg.d_in} / cfg.d_out={cfg.d_out}."
        )
    x_all = inputs.reshape(-1, cfg.d_in).float().contiguous()
    y_all = targets.reshape(-1, cfg.d_out).float().contiguous()
    if len(x_all) != len(y_all):
        raise ValueError(f"inputs has {len(x_all)} rows but targets has {len(y_all)}.")
    n = len(x_all)
    tc = Transcoder(cfg)
    with torch.no_grad():
        tc.b_dec.copy_(y_all.mean(0))
    opt = torch.optim.Adam(tc.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    order, pos = torch.randperm(n, generator=gen), 0
    k_aux = max(1, cfg.d_out // 2)
    since_fired = torch.zeros(cfg.d_sae + 1, dtype=torch.long)  # + a sink slot
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=f"transcoder d_sae={cfg.d_sae}", disable=not progress)
    for step in bar:
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        rows = order[pos : pos + batch_size]
        pos += batch_size
        x, y = x_all[rows], y_all[rows]
        pre = x @ tc.W_enc + tc.b_enc
        values, idx = pre.topk(cfg.k, dim=-1, sorted=False)
        values = F.relu(values)
        y_hat = F.embedding_bag(idx, tc.W_dec, per_sample_weights=values, mode="sum") + tc.b_dec
        err = y_hat - y
        mse = err.pow(2).sum(-1).mean()
        loss = mse
        dead = (since_fired[: cfg.d_sae] >= dead_window).nonzero().squeeze(1)
        if len(dead):
            dead_pre = pre.index_select(1, dead)
            kk = min(k_aux, len(dead))
            v, i = dead_pre.topk(kk, dim=-1, sorted=False)
            aux = F.embedding_bag(i, tc.W_dec.index_select(0, dead), per_sample_weights=F.relu(v),
                                  mode="sum")  # fmt: skip
            loss = (
                loss
                + (1 / 32)
                * min(len(dead) / k_aux, 1.0)
                * (aux + err.detach()).pow(2).sum(-1).mean()
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        fired = idx.masked_fill(values.detach() <= 0, cfg.d_sae).flatten()
        since_fired.add_(len(rows)).index_fill_(0, fired, 0)
        if progress and step % 100 == 0:
            bar.set_postfix(mse=f"{mse.item():.4g}")
    wall = time.perf_counter() - start
    tc.card = {
        "training": {
            "steps": steps,
            "batch_size": batch_size,
            "inputs_seen": steps * batch_size,
            "optimizer": {"name": "Adam", "lr": lr, "betas": [0.9, 0.999]},
            "aux_k_coefficient": 1 / 32,
            "dead_window": dead_window,
            "wall_time_s": round(wall, 2),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        }
    }
    return tc.eval()
