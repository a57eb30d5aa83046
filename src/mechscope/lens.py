"""Logit lens and tuned lens: what each layer's residual stream would predict if it were last.

Logit lens (nostalgebraist 2020, "interpreting GPT: the logit lens"): put the residual
stream entering every block through the model's own final norm and unembedding. The
last row is the model's output itself; earlier rows show how the prediction forms.

Tuned lens (Belrose et al. 2023, "Eliciting Latent Predictions from Transformers with
the Tuned Lens"): the residual basis drifts from layer to layer, so the raw logit lens is
biased (worst at early layers). One affine *translator* per layer, ``A_l h + b_l``
(initialised to the identity and a zero bias), is trained to minimise
``KL(final prediction || lens prediction)``; the model itself is frozen and untouched.

Rows ("layers") are the residual stream *entering* each block (``blocks.{l}.hook_resid_pre``,
labels ``"0_pre" .. "{n-1}_pre"``) plus the final residual (``"final_post"``), as in
``ActivationCache.accumulated_resid``. Needs a pre-norm (or parallel-residual) model with a
linear unembedding: zoo models, GPT-2, Pythia, Llama-family. Post-norm encoders (BERT,
MiniLM) have neither, and raise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ._core import as_tokens
from ._safetensors import open_safetensors
from .cache import ActivationCache


def _resid_names(model) -> list[str]:
    n = model.cfg.n_layers
    return [f"blocks.{i}.hook_resid_pre" for i in range(n)] + [f"blocks.{n - 1}.hook_resid_post"]


def _check_lensable(model, what: str) -> ActivationCache:
    """An empty cache bound to ``model``, for its final-norm and unembedding helpers."""
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(model, "run_with_cache"):
        raise TypeError(
            f"{what} takes a HookedModel (mechscope.load(...) or mechscope.wrap(hf_model, "
            f"tokenizer)), got {type(model).__name__}."
        )
    if getattr(cfg, "residual", "pre") == "post" or getattr(cfg, "output", "logits") != "logits":
        raise ValueError(
            f"{what} needs a pre-norm decoder with a linear unembedding; {type(model).__name__} "
            f"({getattr(cfg, 'family', '?')}, output={getattr(cfg, 'output', '?')!r}, "
            f"residual={getattr(cfg, 'residual', '?')!r}) has none: a post-norm encoder's "
            f"hidden states are not read out by one matrix. Use a decoder (zoo models, GPT-2, "
            f"Pythia, Llama), or probes (mechscope.probes) for encoders such as MiniLM."
        )
    return ActivationCache({}, model=model)


def _readout(analysis: ActivationCache, resid: torch.Tensor) -> torch.Tensor:
    """``[..., d_model]`` residual -> ``[..., d_vocab]`` logits through the final norm (each
    vector normalised by its own scale) and the unembedding. Differentiable in ``resid``;
    the model's weights are detached."""
    w_u = analysis._unembed().to(resid.device, resid.dtype)
    offset = analysis.unembed_offset().to(resid.device, resid.dtype)
    return analysis.apply_ln_to_stack(resid, recompute_scale=True) @ w_u + offset


def _residual_stack(model, tokens, attention_mask=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(stack [layer + 1, batch, pos, d_model], tokens [batch, pos])`` without autograd."""
    tokens = as_tokens(model, tokens)
    kwargs = {} if attention_mask is None else {"attention_mask": attention_mask}
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names=_resid_names(model), **kwargs)
    stack = torch.stack([cache[n] for n in _resid_names(model)]).float()
    return stack, tokens


@dataclass
class LensResult:
    """Predictions of every layer: ``logits [layer, batch, pos, d_vocab]`` (float32).

    ``labels`` name the rows (``"0_pre"``, ..., ``"final_post"``); the last row is the
    model's own output. ``kind`` is ``"logit"`` or ``"tuned"``.
    """

    logits: torch.Tensor
    labels: list[str]
    tokens: torch.Tensor  # [batch, pos]
    str_tokens: list[list[str]] | None = None
    kind: str = "logit"
    decode: Callable[[list[int]], list[str]] | None = field(default=None, repr=False)
    _log_probs: torch.Tensor | None = field(default=None, repr=False)

    def log_probs(self) -> torch.Tensor:
        """``[layer, batch, pos, d_vocab]`` log-softmax of the logits."""
        if self._log_probs is None:
            self._log_probs = self.logits.log_softmax(-1)
        return self._log_probs

    def probs(self) -> torch.Tensor:
        """``[layer, batch, pos, d_vocab]`` probabilities."""
        return self.log_probs().exp()

    def top_k(self, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
        """``(probs, ids)``, each ``[layer, batch, pos, k]``, most probable first."""
        d_vocab = self.logits.shape[-1]
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d_vocab:
            raise ValueError(f"k={k!r}; expected an int in 1..{d_vocab} (d_vocab).")
        return self.probs().topk(k, dim=-1)

    def kl_to_final(self) -> torch.Tensor:
        """``KL(final || layer)`` in nats, ``[layer, batch, pos]`` (0 for the last row)."""
        lp = self.log_probs()
        final = lp[-1:]
        return (final.exp() * (final - lp)).sum(-1)

    def mean_kl(self) -> torch.Tensor:
        """``[layer]``: :meth:`kl_to_final` averaged over batch and positions."""
        return self.kl_to_final().mean((1, 2))

    def to_widget(self, batch_index: int = 0, k: int = 5, **kwargs):
        """A :class:`~mechscope.widgets.logit_lens.LogitLens` of prompt ``batch_index``."""
        from .widgets.logit_lens import LogitLens

        return LogitLens.from_result(self, batch_index=batch_index, k=k, **kwargs)

    def __repr__(self) -> str:
        return f"LensResult(kind={self.kind!r}, logits={list(self.logits.shape)}, labels={self.labels})"


def _str_tokens(model, tokens: torch.Tensor) -> list[list[str]] | None:
    try:
        return [list(model.to_str_tokens(t)) for t in tokens]
    except Exception:  # noqa: BLE001 (no tokenizer: the widget falls back to ids)
        return None


def _decoder(model) -> Callable[[list[int]], list[str]]:
    """ids -> token strings with the model's tokenizer (``"#id"`` where it has none)."""

    def decode(ids: list[int]) -> list[str]:
        if not ids:
            return []
        try:
            return [str(t) for t in model.to_str_tokens(torch.tensor(ids))]
        except Exception:  # noqa: BLE001 (no tokenizer)
            return [f"#{i}" for i in ids]

    return decode


def logit_lens(model, tokens, *, attention_mask=None) -> LensResult:
    """The logit lens (nostalgebraist 2020) on any pre-norm HookedModel.

    tokens: text, ``[pos]`` or ``[batch, pos]`` ids. Returns a :class:`LensResult` with
    ``logits [n_layers + 1, batch, pos, d_vocab]``: the final norm (each residual with its
    own scale) and the unembedding applied to every ``hook_resid_pre`` and the final residual.
    """
    analysis = _check_lensable(model, "logit_lens")
    if getattr(model, "weightless", False):  # remote nnsight: read out where the weights are
        tokens = as_tokens(model, tokens)
        logits = model.lens_logits(tokens, _resid_names(model), _readout, attention_mask)
    else:
        stack, tokens = _residual_stack(model, tokens, attention_mask)
        with torch.no_grad():
            logits = _readout(analysis, stack)
    labels = [f"{i}_pre" for i in range(model.cfg.n_layers)] + ["final_post"]
    return LensResult(
        logits, labels, tokens.cpu(), _str_tokens(model, tokens), "logit", _decoder(model)
    )


class TunedLens(nn.Module):
    """One affine translator per layer (Belrose et al. 2023), ``h -> A_l h + b_l``.

    ``translators[l]`` is an ``nn.Linear(d_model, d_model)`` acting on
    ``blocks.{l}.hook_resid_pre`` (identity weight, zero bias at init, so an untrained tuned
    lens *is* the logit lens). The final residual needs no translator.
    """

    def __init__(self, n_layers: int, d_model: int, meta: dict | None = None):
        super().__init__()
        self.n_layers, self.d_model = int(n_layers), int(d_model)
        self.translators = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(n_layers))
        with torch.no_grad():
            for t in self.translators:
                t.weight.copy_(torch.eye(d_model))
                t.bias.zero_()
        self.meta = dict(meta or {})

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        """``[layer + 1, ..., d_model]`` residuals -> translated residuals (same shape)."""
        rows = [t(stack[i]) for i, t in enumerate(self.translators)]
        return torch.stack([*rows, stack[-1]])

    def check(self, model) -> None:
        """Raise unless this lens was made for a model of ``model``'s shape."""
        n, d = model.cfg.n_layers, model.cfg.d_model
        if (n, d) != (self.n_layers, self.d_model):
            raise ValueError(
                f"This tuned lens has {self.n_layers} translators of d_model={self.d_model}, but "
                f"the model has n_layers={n}, d_model={d}. Train one for this model: "
                f"train_tuned_lens(model, tokens)."
            )

    def save(self, path: str | Path) -> None:
        """Write the translators to ``path`` as safetensors (shape and ``meta`` in its header)."""
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        header = {"n_layers": self.n_layers, "d_model": self.d_model, "meta": self.meta}
        save_file(state, str(path), metadata={"mechscope.tuned_lens": json.dumps(header)})

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> TunedLens:
        """Read a lens written by :meth:`save` (safetensors: nothing is unpickled)."""
        with open_safetensors(path, "TunedLens.load", device) as f:
            header = (f.metadata() or {}).get("mechscope.tuned_lens")
            if header is None:
                raise ValueError(
                    f"{path} is a safetensors file but not a tuned lens (its header has no "
                    f"'mechscope.tuned_lens' entry). Write lenses with TunedLens.save(path)."
                )
            state = {k: f.get_tensor(k) for k in f.keys()}
        h = json.loads(header)
        lens = cls(h["n_layers"], h["d_model"], h.get("meta"))
        lens.load_state_dict(state)
        return lens.to(device)


def tuned_lens(model, tokens, lens: TunedLens, *, attention_mask=None) -> LensResult:
    """The tuned lens: like :func:`logit_lens`, with ``lens``'s translator applied to each
    residual before the final norm. Returns a :class:`LensResult` (``kind="tuned"``)."""
    if not isinstance(lens, TunedLens):
        raise TypeError(
            f"lens must be a TunedLens (train_tuned_lens or TunedLens.load), got "
            f"{type(lens).__name__}."
        )
    analysis = _check_lensable(model, "tuned_lens")
    lens.check(model)
    stack, tokens = _residual_stack(model, tokens, attention_mask)
    p = next(lens.parameters())
    with torch.no_grad():
        logits = _readout(analysis, lens(stack.to(p.device, p.dtype))).float()
    labels = [f"{i}_pre" for i in range(model.cfg.n_layers)] + ["final_post"]
    return LensResult(
        logits, labels, tokens.cpu(), _str_tokens(model, tokens), "tuned", _decoder(model)
    )


def _kl_final_vs(final_lp: torch.Tensor, lens_logits: torch.Tensor) -> torch.Tensor:
    """Mean ``KL(final || lens)`` over positions; ``final_lp`` are log-probs ``[n, d_vocab]``."""
    return (final_lp.exp() * (final_lp - lens_logits.log_softmax(-1))).sum(-1).mean()


def train_tuned_lens(
    model,
    tokens: torch.Tensor,
    *,
    steps: int = 150,
    lr: float = 1e-2,
    batch_positions: int = 2048,
    batch_size: int = 64,
    seed: int = 0,
    meta: dict | None = None,
) -> TunedLens:
    """Train a :class:`TunedLens` for ``model`` on ``tokens`` ``[n_seq, pos]`` (Belrose et al. 2023).

    The residual streams and final log-probs are computed once (``batch_size`` sequences a
    forward pass, no autograd through the model), then each translator minimises
    ``KL(final || translated lens)`` on random minibatches of ``batch_positions`` positions
    with Adam (``lr``, ``steps``; the paper uses SGD with Nesterov momentum, which needs
    more steps). Seeded; the model's weights, mode, hooks and ``requires_grad`` are not touched.
    """
    analysis = _check_lensable(model, "train_tuned_lens")
    tokens = torch.as_tensor(tokens)
    if tokens.dim() != 2 or tokens.shape[0] == 0 or tokens.dtype.is_floating_point:
        raise ValueError(
            f"tokens must be integer ids [n_seq, pos] (a training set), got "
            f"{tokens.dtype} of shape {list(tokens.shape)}. Fix: stack sequences of equal "
            f"length, e.g. torch.stack([model.to_tokens(t)[0] for t in texts])."
        )
    if steps < 1 or batch_positions < 1 or batch_size < 1:
        raise ValueError(
            f"steps={steps}, batch_positions={batch_positions}, batch_size={batch_size}; "
            f"all must be >= 1."
        )
    n, d = model.cfg.n_layers, model.cfg.d_model
    stacks = [
        _residual_stack(model, tokens[i : i + batch_size])[0]
        for i in range(0, len(tokens), batch_size)
    ]
    resid = torch.cat(stacks, dim=1).flatten(1, 2)  # [layer + 1, n_positions, d_model]
    with torch.no_grad():
        final_lp = _readout(analysis, resid[-1]).log_softmax(-1)  # [n_positions, d_vocab]
    info = {
        "steps": steps,
        "lr": lr,
        "n_seq": len(tokens),
        "seq_len": tokens.shape[1],
        "seed": seed,
    }
    lens = TunedLens(n, d, {**info, **(meta or {})}).to(resid.device)
    opt = torch.optim.Adam(lens.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n_pos = resid.shape[1]
    for _ in range(steps):
        idx = torch.randint(n_pos, (min(batch_positions, n_pos),), generator=gen)
        batch = resid[:, idx]
        loss = sum(
            _kl_final_vs(final_lp[idx], _readout(analysis, t(batch[i])))
            for i, t in enumerate(lens.translators)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return lens.eval().requires_grad_(False)


@dataclass(frozen=True)
class LensComparisonResult:
    """Mean ``KL(final || lens)`` per layer (nats) of the logit lens and a tuned lens.

    labels: one per layer (``"0_pre"`` ... ``"final_post"``); logit, tuned: the two lenses' KL.
    values: ``[lens, layer]`` with lens 0 = logit lens, 1 = tuned lens.
    """

    labels: list[str]
    logit: list[float]
    tuned: list[float]

    @property
    def values(self) -> torch.Tensor:
        return torch.tensor([self.logit, self.tuned])

    def plot(self, title: str = "KL to the final distribution (nats)"):
        """Both lenses' KL by layer, as a plotly figure."""
        import plotly.graph_objects as go  # lazy: plotly only when a plot is wanted

        fig = go.Figure()
        for name, ys in (("logit lens", self.logit), ("tuned lens", self.tuned)):
            fig.add_trace(go.Scatter(x=self.labels, y=ys, mode="lines+markers", name=name))
        fig.update_layout(title=title, xaxis_title="layer", yaxis_title="KL (nats)")
        return fig


def compare_lenses(model, tokens, lens: TunedLens) -> LensComparisonResult:
    """Mean ``KL(final || lens)`` per layer (nats) of the logit lens and the tuned lens on
    ``tokens`` (a :class:`LensComparisonResult`). Use held-out tokens."""
    logit = logit_lens(model, tokens).mean_kl()
    tuned = tuned_lens(model, tokens, lens).mean_kl()
    labels = [f"{i}_pre" for i in range(model.cfg.n_layers)] + ["final_post"]
    return LensComparisonResult(labels, logit.tolist(), tuned.tolist())
