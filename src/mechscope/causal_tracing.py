"""Causal tracing with Gaussian noise (Meng et al. 2022, "Locating and Editing Factual
Associations in GPT", §2.1).

Activation patching needs a corrupted *prompt*; causal tracing makes one from the clean
prompt itself. The embeddings of the subject's tokens get Gaussian noise of ``noise`` times
the standard deviation of the model's embeddings (Meng et al. use 3x), which usually destroys
the fact. Then one clean hidden state at a time (a layer and a position) is restored in the
noisy run: where restoring brings the answer back, that state carries the fact. The *indirect
effect* of a state is the restored metric minus the noisy one, averaged over ``n_samples``
noise draws (the same draws for every state, so the grid compares like with like).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._core import as_tokens, check_site, metric_values, str_tokens_of
from ._patching_sites import hook_name
from .metrics import Metric

__all__ = ["CausalTraceResult", "causal_trace"]

TRACE_SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")


@dataclass(frozen=True)
class CausalTraceResult:
    """Causal tracing of one site over layers and positions.

    values: ``[layer, pos]``, the metric (mean over prompts and noise draws) of the noisy run
        with the clean state at (layer, pos) of ``site`` restored.
    clean_value: the metric of the clean run; corrupted_value: of the noisy run, nothing
        restored (mean over the draws).
    pos: the corrupted positions (the subject), non-negative.
    """

    values: torch.Tensor
    site: str
    clean_value: float
    corrupted_value: float
    pos: tuple[int, ...]
    row_labels: list[str]
    col_labels: list[str]
    str_tokens: list[str]
    noise: float
    n_samples: int

    @property
    def indirect_effect(self) -> torch.Tensor:
        """``[layer, pos]``: restored metric minus the noisy run's (Meng et al.'s IE)."""
        return self.values - self.corrupted_value

    def to_widget(self, **kwargs):
        """A :class:`mechscope.widgets.Heatmap` of the indirect effect; kwargs go to it."""
        from .widgets.heatmap import Heatmap  # lazy: anywidget only when a widget is wanted

        opts = dict(
            row_labels=self.row_labels,
            col_labels=self.col_labels,
            row_title="layer",
            col_title="pos",
            title=f"causal tracing: {self.site} (noise {self.noise:g} x embedding std)",
            value_label="indirect effect",
        )
        opts.update(kwargs)
        return Heatmap(self.indirect_effect, **opts)

    def __repr__(self) -> str:
        return (
            f"CausalTraceResult(site={self.site!r}, values[layer, pos]={list(self.values.shape)}, "
            f"pos={self.pos}, clean_value={self.clean_value:.4g}, "
            f"corrupted_value={self.corrupted_value:.4g})"
        )


def _positions(pos, n_pos: int) -> tuple[int, ...]:
    items = [pos] if isinstance(pos, int) and not isinstance(pos, bool) else pos
    if items is None or isinstance(items, (str, bool)) or not hasattr(items, "__iter__"):
        raise TypeError(f"pos={pos!r}; give the subject's position(s): an int or a list of ints.")
    out = []
    for p in items:
        if isinstance(p, bool) or not isinstance(p, int) or not -n_pos <= p < n_pos:
            raise ValueError(
                f"pos={pos!r}: {p!r} is not a position of a {n_pos}-token prompt; use ints in "
                f"[{-n_pos}, {n_pos}) (negative counts from the end)."
            )
        out.append(p % n_pos)
    if not out:
        raise ValueError("pos=[] corrupts nothing; give the subject's position(s).")
    return tuple(sorted(set(out)))


def _embedding_std(model, embed: torch.Tensor) -> float:
    w_e = getattr(model, "W_E", None)
    if isinstance(w_e, torch.Tensor):
        return float(w_e.detach().float().std())
    return float(embed.float().std())  # a provider without W_E: the prompt's own embeddings


def causal_trace(
    model,
    tokens,
    metric: Metric,
    site: str = "resid_pre",
    *,
    pos,
    noise: float = 3.0,
    n_samples: int = 10,
    seed: int = 0,
) -> CausalTraceResult:
    """Meng et al.'s causal tracing: noise the subject's embeddings, restore one clean state.

    tokens: the clean prompt(s), as ``tokens`` everywhere (``[batch, pos]`` ids or text).
    metric: ``fn(logits [batch, pos, d_vocab]) -> [batch]``, e.g. the answer's probability or
        :func:`mechscope.metrics.logit_diff`.
    site: the state restored, one of ``resid_pre`` (default), ``resid_mid``, ``resid_post``,
        ``attn_out``, ``mlp_out``, at every layer and position.
    pos: the corrupted position(s) (the subject's tokens), int or list of ints.
    noise: the noise's standard deviation in units of the embedding matrix's (3.0 = Meng).
    n_samples: noise draws per prompt; seed: their generator's seed (the global RNG is untouched).

    Returns a :class:`CausalTraceResult`, ``values [layer, pos]``. The model is unchanged.
    """
    if site not in TRACE_SITES:
        raise ValueError(f"site={site!r}; causal_trace restores one of {', '.join(TRACE_SITES)}.")
    check_site(model, site)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples={n_samples!r}; give a positive int (Meng et al. use 10).")
    if isinstance(noise, bool) or not float(noise) >= 0:
        raise ValueError(f"noise={noise!r}; give a non-negative float (3.0 = Meng et al.).")
    toks = as_tokens(model, tokens)
    batch, n_pos = toks.shape
    positions = _positions(pos, n_pos)
    n_layers = model.cfg.n_layers
    names = [hook_name(site, layer) for layer in range(n_layers)]
    rows = toks.repeat(n_samples, 1)  # [n_samples * batch, pos]: draw s is rows s*batch ...

    with torch.no_grad():
        clean_logits, cache = model.run_with_cache(toks, names=["hook_embed", *names])
        clean_v = metric_values(metric, clean_logits, batch).mean().item()
        embed = cache["hook_embed"]
        gen = torch.Generator().manual_seed(int(seed))
        shape = (n_samples * batch, len(positions), embed.shape[-1])
        eps = torch.randn(shape, generator=gen).to(embed.device, embed.dtype)
        eps = eps * float(noise) * _embedding_std(model, embed)
        idx = list(positions)

        def add_noise(act, hook_point):
            act = act.clone()
            act[:, idx] = act[:, idx] + eps
            return act

        def run(extra):
            with model.hooks([("hook_embed", add_noise), *extra]):
                logits = model(rows)
            # the metric sees one draw's [batch] prompts at a time (it may hold per-prompt answers)
            draws = [metric_values(metric, lg, batch) for lg in logits.split(batch)]
            return torch.stack(draws).mean().item()

        corrupted_v = run([])
        values = torch.zeros(n_layers, n_pos)
        for layer, name in enumerate(names):
            clean_state = cache[name].repeat(n_samples, *([1] * (cache[name].dim() - 1)))
            for p in range(n_pos):

                def restore(act, hook_point, p=p, clean_state=clean_state):
                    act = act.clone()
                    act[:, p] = clean_state[:, p]
                    return act

                values[layer, p] = run([(name, restore)])

    return CausalTraceResult(
        values=values,
        site=site,
        clean_value=clean_v,
        corrupted_value=corrupted_v,
        pos=positions,
        row_labels=[f"L{layer}" for layer in range(n_layers)],
        col_labels=[f"{p}: {t}" for p, t in enumerate(str_tokens_of(model, toks))],
        str_tokens=str_tokens_of(model, toks),
        noise=float(noise),
        n_samples=n_samples,
    )
