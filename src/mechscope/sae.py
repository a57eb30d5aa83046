"""Sparse autoencoders: a sparse, overcomplete basis for a model's activations.

An SAE (Sharkey et al. 2022, "Taking features out of superposition with sparse
autoencoders"; Cunningham et al. 2023; Bricken et al. 2023, "Towards
Monosemanticity") rewrites an activation ``x`` ``[d_in]`` as a sparse, non-negative
combination of ``d_sae`` learned directions (the decoder rows), hoping each is one
feature that superposition had mixed:

    f  = act((x - b_dec) @ W_enc + b_enc)    [d_sae]   feature activations
    x̂  = f @ W_dec + b_dec                   [d_in]    reconstruction

``b_dec`` is subtracted before the encoder (the pre-encoder bias equals the decoder
bias, Bricken 2023). Decoder rows have unit norm, so a feature's activation is its
size along its direction. Three activations:

- ``"relu"``: ReLU, with an L1 penalty on ``f`` in training (Bricken 2023);
- ``"topk"``: keep the ``k`` largest pre-activations (ReLU'd), zero the rest; sparsity is
  set by ``k`` directly (Gao et al. 2024, "Scaling and evaluating sparse autoencoders");
- ``"gated"``: a gate decides which features fire, a separate magnitude path how much, so
  the L1 penalty no longer shrinks the magnitudes (Rajamanoharan et al. 2024; two extra
  parameters ``r_mag``, ``b_mag`` ``[d_sae]``, see :mod:`mechscope._sae_gated`).

Training lives in :mod:`mechscope.sae_train`; this module has the model, its
metrics, splicing it into a model's forward pass, and save / load.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from . import _sae_gated
from ._core import as_tokens
from ._sae_coverage import PropertyF1Result as PropertyF1Result
from ._sae_coverage import property_f1 as property_f1
from ._sae_gated import relative_reconstruction_bias as relative_reconstruction_bias
from ._sae_results import CELossResult, SAEEvalResult
from ._safetensors import check_safetensors, load_safetensors

MAX_D_SAE = 2**24  # a sanity bound: 16M features is beyond any CPU, and catches unit mistakes


@dataclass(frozen=True)
class SAEConfig:
    d_in: int  # width of the activations it reads, e.g. d_mlp for blocks.{l}.mlp.hook_post
    d_sae: int  # number of features (dictionary size); 2-32 x d_in is usual
    activation: str = "relu"  # "relu" (+ L1 penalty in training), "topk" or "gated"
    k: int | None = None  # features kept per input; "topk" only
    site: str | None = None  # hook name the activations come from, if any
    seed: int = 0  # seeds the initial weights

    def __post_init__(self):
        if self.activation not in ("relu", "topk", "gated"):
            raise ValueError(f"activation={self.activation!r}; expected 'relu', 'topk' or 'gated'.")
        if not isinstance(self.d_in, int) or self.d_in < 1:
            raise ValueError(
                f"d_in={self.d_in!r}; expected an integer >= 1 (the activation width)."
            )
        if not isinstance(self.d_sae, int) or not 1 <= self.d_sae <= MAX_D_SAE:
            raise ValueError(
                f"Dictionary size d_sae={self.d_sae!r} is out of range: valid is 1 <= d_sae <= "
                f"{MAX_D_SAE} (usually 2-32 x d_in = {2 * self.d_in}..{32 * self.d_in})."
            )
        if self.activation == "topk":
            if not isinstance(self.k, int) or not 1 <= self.k <= self.d_sae:
                raise ValueError(
                    f"k={self.k!r} is out of range for a TopK SAE with d_sae={self.d_sae}: "
                    f"valid is 1 <= k <= {self.d_sae}."
                )
        elif self.k is not None:
            raise ValueError(
                f"k={self.k} is only used with activation='topk'; this SAE is {self.activation!r}. "
                f"Drop k, or pass activation='topk'."
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SAEConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown SAEConfig fields {unknown}; valid fields: {sorted(known)}.")
        return cls(**d)


def check_finite(acts: torch.Tensor, hook: str | None) -> None:
    """Raise a ValueError naming the hook and the count of NaN / Inf entries, if any."""
    nan = int(torch.isnan(acts).sum())
    inf = int(torch.isinf(acts).sum())
    if nan or inf:
        where = f"acts of hook {hook!r}" if hook else "acts (no hook given)"
        bad = torch.nonzero(~torch.isfinite(acts.reshape(-1, acts.shape[-1])).all(-1))
        raise ValueError(
            f"{nan} NaN and {inf} Inf values in {where}, shape {list(acts.shape)}; "
            f"{len(bad)} rows affected, first at flattened row {int(bad[0])}. An SAE cannot be "
            f"trained or evaluated on them: find where they arise (e.g. a hook that divides by "
            f"zero) or drop those rows, e.g. acts[torch.isfinite(acts).all(-1)]."
        )


class SAE(nn.Module):
    """A sparse autoencoder. Weights: ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``,
    ``W_dec [d_sae, d_in]`` (unit-norm rows: the feature directions), ``b_dec [d_in]``;
    a gated SAE also ``r_mag``, ``b_mag`` ``[d_sae]`` (``b_enc`` is its gate bias)."""

    def __init__(self, cfg: SAEConfig):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.seed)
        W_dec = torch.randn(cfg.d_sae, cfg.d_in, generator=gen)
        W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        self.W_enc = nn.Parameter(W_dec.T.clone().contiguous())  # tied init (Gao 2024)
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        if cfg.activation == "gated":  # relu / topk SAEs keep exactly their four tensors
            self.r_mag = nn.Parameter(torch.zeros(cfg.d_sae))
            self.b_mag = nn.Parameter(torch.zeros(cfg.d_sae))
        self.card: dict = {}

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as a float tensor in the SAE's dtype (float64 / float16 activations are cast:
        the features are defined in the SAE's own precision), of width ``d_in``."""
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        if not x.is_floating_point():
            raise TypeError(
                f"acts has dtype {x.dtype}; an SAE reads float activations (e.g. from "
                f"model.run_with_cache), not token ids or masks. Fix: acts.float()."
            )
        if x.dim() == 0 or x.shape[-1] != self.cfg.d_in:
            raise ValueError(
                f"acts has width {x.shape[-1] if x.dim() else 'none'} (shape {list(x.shape)}), "
                f"this SAE reads d_in={self.cfg.d_in}"
                + (f" from {self.cfg.site!r}" if self.cfg.site else "")
                + ". Pass activations of the hook it was trained on, shape [..., d_in]."
            )
        return x.to(self.W_enc.dtype)

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., d_in]`` -> ``[..., d_sae]`` encoder pre-activations."""
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., d_in]`` -> feature activations ``[..., d_sae]`` (non-negative, sparse)."""
        x = self._check(x)
        pre = self.pre_activations(x)
        if self.cfg.activation == "relu":
            return F.relu(pre)
        if self.cfg.activation == "gated":
            return _sae_gated.gated_features(self.r_mag, self.b_mag, self.b_enc, pre)
        values, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, idx, F.relu(values))

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """``[..., d_sae]`` -> reconstruction ``[..., d_in]``."""
        if not isinstance(f, torch.Tensor) or not f.is_floating_point():
            raise TypeError(
                f"f (feature activations) must be a float tensor [..., d_sae], got "
                f"{getattr(f, 'dtype', type(f).__name__)}. Fix: sae.decode(sae.encode(acts))."
            )
        if f.dim() == 0 or f.shape[-1] != self.cfg.d_sae:
            raise ValueError(
                f"f (feature activations) has {f.shape[-1] if f.dim() else 'no'} features (shape "
                f"{list(f.shape)}); this SAE has d_sae={self.cfg.d_sae}. Pass sae.encode(acts) "
                f"(not the activations themselves, width d_in={self.cfg.d_in})."
            )
        return f.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., d_in]`` -> reconstruction ``[..., d_in]``."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale decoder rows to unit norm (keeps each feature's direction)."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp(min=1e-8))

    # ---- save / load -------------------------------------------------------

    def save(self, path: str | Path, card: dict | None = None) -> Path:
        """Write ``<path>.safetensors`` and ``<path>.json`` (config + ``card``); returns the weights path."""
        path = Path(path)
        stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
        stem.parent.mkdir(parents=True, exist_ok=True)
        weights = stem.with_name(stem.name + ".safetensors")
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(weights), metadata={"config": json.dumps(self.cfg.to_dict())})
        self.card = {**(card or self.card), "config": self.cfg.to_dict()}
        stem.with_name(stem.name + ".json").write_text(json.dumps(self.card, indent=2) + "\n")
        return weights

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> SAE:
        """Load an SAE saved by :meth:`save` (safetensors; nothing is unpickled)."""
        path = Path(path)
        if path.is_file() and path.suffix not in (".safetensors", ".json"):
            check_safetensors(path, "SAE.load")  # e.g. a torch.save'd pickle: a clear error
        stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
        card_path = stem.with_name(stem.name + ".json")
        weights = stem.with_name(stem.name + ".safetensors")
        for p in (card_path, weights):
            if not p.exists():
                raise FileNotFoundError(
                    f"No SAE file {p}; SAE.save(path) writes <path>.json and <path>.safetensors."
                )
        card = json.loads(card_path.read_text())
        sae = cls(SAEConfig.from_dict(card["config"]))
        sae.load_state_dict(load_safetensors(weights, "SAE.load", device))
        sae.card = card
        return sae.to(device).eval()


def zoo_sae_dir() -> Path:
    return Path(str(resources.files("mechscope") / "zoo" / "sae"))


def zoo_saes() -> list[str]:
    """Names of the SAEs shipped with the package."""
    d = zoo_sae_dir()
    return sorted(p.stem for p in d.glob("*.json") if p.with_suffix(".safetensors").exists())


def load_zoo_sae(name: str, device: str = "cpu") -> SAE:
    """Load a shipped SAE by name, e.g. ``load_zoo_sae("grammar-2l-mlp0")`` (offline)."""
    if name not in zoo_saes():
        raise ValueError(
            f"No shipped SAE named {name!r}. Available: {', '.join(zoo_saes()) or '(none)'}."
        )
    return SAE.load(zoo_sae_dir() / name, device=device)


# ---- metrics -------------------------------------------------------------------


@torch.no_grad()
def evaluate(sae: SAE, acts: torch.Tensor, *, batch_size: int = 8192) -> SAEEvalResult:
    """Reconstruction and sparsity of ``sae`` on ``acts`` ``[..., d_in]``: a
    :class:`SAEEvalResult` with

    - ``mse``: mean over inputs of ``||x - x̂||^2`` (summed over d_in, as SAELens reports it);
    - ``explained_variance``: ``1 - sum ||x - x̂||^2 / sum ||x - mean(x)||^2``;
    - ``l0``: mean number of active features per input;
    - ``dead_fraction``: fraction of features that fire on none of the inputs.
    """
    acts = sae._check(acts)
    check_finite(acts, sae.cfg.site)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}; expected a positive number of rows.")
    x_all = acts.reshape(-1, acts.shape[-1]).float()
    mean = x_all.mean(0)
    sq_err = total_var = l0 = 0.0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    for i in range(0, len(x_all), batch_size):
        x = x_all[i : i + batch_size]
        f = sae.encode(x)
        sq_err += float((sae.decode(f) - x).pow(2).sum())
        total_var += float((x - mean).pow(2).sum())
        active = f > 0
        l0 += float(active.sum())
        fired |= active.any(0).cpu()
    n = len(x_all)
    return SAEEvalResult(
        mse=sq_err / n,
        explained_variance=1 - sq_err / max(total_var, 1e-12),
        l0=l0 / n,
        dead_fraction=float((~fired).float().mean()),
    )


def max_cosine_similarity(learned: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """For each true direction ``[n_true, d]``, its best cosine with any learned one ``[n_learned, d]``.

    The mean of the result is the MMCS of Sharkey et al. 2022: 1 = every true feature recovered.
    """
    if learned.shape[-1] != true.shape[-1]:
        raise ValueError(f"Widths differ: learned {list(learned.shape)}, true {list(true.shape)}.")
    true, learned = true.detach().float(), learned.detach().float()
    cos = F.normalize(true, dim=-1) @ F.normalize(learned, dim=-1).T
    return cos.max(dim=1).values


# ---- splicing into a model ------------------------------------------------------


def check_hook_name(model, hook: str) -> None:
    """A KeyError with close matches unless ``hook`` is one of ``model``'s hook names."""
    names = model.hook_names()
    if hook not in names:
        from .hooks import unknown_name_error

        raise unknown_name_error(hook, names)


def _next_token_ce(
    logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Summed next-token CE and count: ``[2]``."""
    ce = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")
    if mask is not None:
        ce = ce[mask.flatten()]
    return torch.stack([ce.sum(), torch.tensor(float(ce.numel()))])


@torch.no_grad()
def ce_loss_recovered(
    model,
    sae: SAE,
    tokens: torch.Tensor,
    hook: str | None = None,
    *,
    loss_mask: torch.Tensor | None = None,
    batch_size: int = 128,
) -> CELossResult:
    """How much of the model's loss survives replacing ``hook`` by the SAE's reconstruction.

    Runs the model three ways over ``tokens`` ``[batch, pos]``: clean, with ``hook``
    replaced by ``sae(act)`` (spliced), and with ``hook`` zeroed (zero-ablated), and
    returns the three mean next-token cross-entropies and

        score = (CE_zero_ablation - CE_spliced) / (CE_zero_ablation - CE_clean)

    the "CE loss score" of SAELens (``sae_lens/evals.py``, Bloom et al.): 1 = the
    reconstruction loses nothing, 0 = as bad as deleting the hook's activation (``hook``
    defaults to the SAE's ``cfg.site``). ``loss_mask``
    ``[batch, pos - 1]`` restricts the loss to some predicted positions.
    """
    hook = hook or sae.cfg.site
    if hook is None:
        raise ValueError(
            "No hook: pass hook='blocks.{l}.mlp.hook_post' (or train the SAE with cfg.site)."
        )
    check_hook_name(model, hook)
    tokens = as_tokens(model, tokens)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}; expected a positive number of prompts.")
    if loss_mask is not None and loss_mask.shape != (tokens.shape[0], tokens.shape[1] - 1):
        raise ValueError(
            f"loss_mask has shape {list(loss_mask.shape)}, expected [batch, pos - 1] = "
            f"{[tokens.shape[0], tokens.shape[1] - 1]}."
        )

    def splice(act, hook):
        check_finite(act, hook.name)
        return sae(act.to(sae.W_dec.dtype)).to(act.dtype)

    def zero(act, hook):
        return torch.zeros_like(act)

    totals = {"clean": 0, "spliced": 0, "zero_ablated": 0}
    for i in range(0, len(tokens), batch_size):
        tok = tokens[i : i + batch_size]
        mask = None if loss_mask is None else loss_mask[i : i + batch_size]
        totals["clean"] = totals["clean"] + _next_token_ce(model(tok), tok, mask)
        for name, fn in (("spliced", splice), ("zero_ablated", zero)):
            with model.hooks([(hook, fn)]):
                totals[name] = totals[name] + _next_token_ce(model(tok), tok, mask)
    out = {f"ce_{k}": float(v[0] / v[1]) for k, v in totals.items()}
    gap = out["ce_zero_ablated"] - out["ce_clean"]
    out["ce_loss_score"] = (
        (out["ce_zero_ablated"] - out["ce_spliced"]) / gap if gap > 0 else float("nan")
    )
    return CELossResult(**out)
