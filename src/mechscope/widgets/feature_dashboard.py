"""FeatureDashboard: one feature (SAE latent, neuron) at a time, the way SAE papers show them.

For the shown feature the widget has

- a histogram of its non-zero activations over every token of every context, with its
  density (fraction of tokens where it is non-zero) and a count of NaN/Inf values;
- the top-k activating contexts: the k contexts with the largest max activation (> 0),
  tokens coloured by the activation, the max-activating token outlined;
- the tokens whose logits it raises and lowers most: the largest and smallest entries of
  its row of ``logit_weights`` (for an SAE, ``W_dec @ W_U``: the feature's direct effect
  through the unembedding, final LayerNorm ignored), as in Bricken et al. 2023,
  "Towards Monosemanticity".

prev / next / the number input step through features and set ``feature``, which Python can
observe. Everything is computed here, in numpy, and sent as binary buffers (see the
``Model`` type in ``widgets/feature_dashboard/index.ts`` for the layouts).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from mechscope.widgets import _buffers, _static, _svg_tokens
from mechscope.widgets.token_activations import (
    check_feature,
    check_feature_names,
    check_texts,
)

_STATIC = Path(__file__).parent / "static"


class FeatureDashboard(_static.StaticFallback, anywidget.AnyWidget):
    """Histogram, top-k contexts and logit effects of each feature, one feature at a time.

    Args:
        feature_acts: ``[n_contexts, ctx_len, n_features]`` activations (torch or numpy).
        contexts: one list of token strings per context, each at most ``ctx_len`` long
            (shorter ones are padded: positions past the end are ignored).
        logit_weights: ``[n_features, d_vocab]`` effect of each feature on each logit, or
            None to leave the logit lists out.
        vocab: ``d_vocab`` token strings (index = token id); needed with logit_weights.
        k: contexts shown per feature (>= 1; capped at n_contexts).
        bins: histogram bins (1..10000).
        n_logits: tokens in each logit list (>= 1; capped at d_vocab // 2, so the raised and
            lowered lists never share a token).
        feature_names: one name per feature (default ``feature 0``, ...).
        feature: index of the feature shown first.
        title: shown above the widget.
        dtype: encoding of the top-context activations: ``"auto"``, ``"float32"``, ``"float16"``.
    """

    _esm = _STATIC / "feature_dashboard.js"
    _css = _STATIC / "feature_dashboard.css"

    n_features = traitlets.Int(0).tag(sync=True)
    k = traitlets.Int(0).tag(sync=True)
    bins = traitlets.Int(0).tag(sync=True)
    n_logits = traitlets.Int(0).tag(sync=True)
    ctx_len = traitlets.Int(0).tag(sync=True)
    n_contexts = traitlets.Int(0).tag(sync=True)  # as given; only the top ones travel
    feature_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    feature = traitlets.Int(0).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    # Buffers, all little-endian C order; shapes in the comments ([F] = per feature).
    hist_counts = traitlets.Bytes(b"").tag(sync=True)  # int32 [F, bins]
    hist_edges = traitlets.Bytes(b"").tag(sync=True)  # float32 [F, bins + 1]
    density = traitlets.Bytes(b"").tag(sync=True)  # float32 [F]
    nonfinite = traitlets.Bytes(b"").tag(sync=True)  # int32 [F]
    n_tokens = traitlets.Int(0).tag(sync=True)
    # Only the contexts that appear in some top-k travel, with their index in `contexts`.
    contexts = traitlets.List(traitlets.List(traitlets.Unicode())).tag(sync=True)
    context_ids = traitlets.List(traitlets.Int()).tag(sync=True)
    top_context = traitlets.Bytes(b"").tag(sync=True)  # int32 [F, k], -1 = no context
    top_pos = traitlets.Bytes(b"").tag(sync=True)  # int32 [F, k]
    top_acts = traitlets.Bytes(b"").tag(sync=True)  # dtype [F, k, ctx_len]
    dtype = traitlets.Unicode("float32").tag(sync=True)
    has_logits = traitlets.Bool(False).tag(sync=True)
    logit_tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    logit_pos_ids = traitlets.Bytes(b"").tag(sync=True)  # int32 [F, n_logits] into logit_tokens
    logit_pos_vals = traitlets.Bytes(b"").tag(sync=True)  # float32 [F, n_logits]
    logit_neg_ids = traitlets.Bytes(b"").tag(sync=True)
    logit_neg_vals = traitlets.Bytes(b"").tag(sync=True)

    def __init__(
        self,
        feature_acts: Any,
        contexts: Sequence[Sequence[str]],
        logit_weights: Any = None,
        vocab: Sequence[str] | None = None,
        *,
        k: int = 10,
        bins: int = 30,
        n_logits: int = 10,
        feature_names: Sequence[str] | None = None,
        feature: int = 0,
        title: str = "",
        dtype: str = "auto",
    ) -> None:
        contexts = check_texts(contexts, name="contexts")
        acts = _as_acts(feature_acts, contexts)
        n_contexts, ctx_len, n_features = acts.shape
        k = min(_check_count("k", k), n_contexts)
        bins = _check_count("bins", bins, upper=10_000)
        names = check_feature_names(feature_names, n_features)
        valid = np.arange(ctx_len)[None, :] < np.array([len(c) for c in contexts])[:, None]

        hist = _histograms(acts, valid, bins)
        top_ctx, top_pos, top_acts = _top_contexts(acts, valid, k)
        used = sorted({int(c) for c in top_ctx.ravel() if c >= 0})
        remap = np.full(n_contexts, -1, np.int32)
        remap[used] = np.arange(len(used))
        top_ref = np.where(top_ctx >= 0, remap[top_ctx], -1)  # index into the sent contexts
        encoding = _buffers.resolve_signed_dtype(dtype, top_acts)
        state: dict[str, Any] = dict(
            n_features=n_features,
            k=k,
            bins=bins,
            ctx_len=ctx_len,
            n_contexts=n_contexts,
            feature_names=names,
            title=title,
            hist_counts=_buffers.encode(hist["counts"], "int32"),
            hist_edges=_buffers.encode(hist["edges"], "float32"),
            density=_buffers.encode(hist["density"], "float32"),
            nonfinite=_buffers.encode(hist["nonfinite"], "int32"),
            n_tokens=int(valid.sum()),
            contexts=[contexts[c] for c in used],
            context_ids=used,
            top_context=_buffers.encode(top_ref, "int32"),
            top_pos=_buffers.encode(top_pos, "int32"),
            top_acts=_buffers.encode(top_acts, encoding),
            dtype=encoding,
        )
        state.update(_logit_lists(logit_weights, vocab, n_features, n_logits))
        super().__init__(**state, feature=check_feature(feature, n_features))

    @classmethod
    def from_sae(
        cls,
        sae: Any,
        model: Any,
        tokens: Any,
        hook: str,
        *,
        features: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> FeatureDashboard:
        """Dashboard of an SAE's features on ``tokens`` (text, list of texts or ``[batch, pos]`` token ids).

        Uses only this interface, so any SAE and model that have it work:
        ``model.run_with_cache(tokens, names=[hook]) -> (logits, cache)`` with
        ``cache[hook]`` of shape ``[batch, pos, d_in]``; ``model.to_str_tokens(ids)``;
        ``model.W_U`` (or ``model.unembed_weights()``), ``[d_model, d_vocab]``;
        ``sae.encode(acts) -> [batch, pos, n_features]``; ``sae.W_dec``, ``[n_features, d_in]``.
        The logit lists are ``W_dec @ W_U`` when ``d_in == d_model`` (a residual-stream or
        ``hook_*_out`` hook); at other hooks (e.g. ``mlp.hook_post``) they are left out.

        Args:
            features: which SAE features to include (default: all); names default to
                ``"feature {i}"`` with the SAE's own index ``i``.
            **kwargs: passed on to the constructor (k, bins, n_logits, feature, title, ...).
        """
        import torch

        if hasattr(model, "to_tokens"):
            from mechscope._core import as_tokens

            tokens = as_tokens(model, tokens)
        _, cache = model.run_with_cache(tokens, names=[hook])
        if hook not in cache:
            names = [str(n) for n in cache.keys()]
            close = difflib.get_close_matches(hook, names, n=3)
            raise KeyError(
                f"hook={hook!r} is not in the model's cache"
                + (f"; did you mean {', '.join(map(repr, close))}?" if close else ".")
            )
        with torch.no_grad():
            acts = torch.as_tensor(sae.encode(cache[hook]))
            w_dec = torch.as_tensor(sae.W_dec).detach()
            n_sae = acts.shape[-1]
            if features is None:
                features = range(n_sae)
            idx = [check_feature(f, n_sae, what="features entry") for f in features]
            acts, w_dec = acts[..., idx], w_dec[idx]
            w_u = model.W_U if hasattr(model, "W_U") else model.unembed_weights()
            w_u = torch.as_tensor(w_u).detach()
            logit_weights, vocab = None, None
            if w_dec.shape[-1] == w_u.shape[0]:
                logit_weights = w_dec.float() @ w_u.float()
                vocab = list(model.to_str_tokens(torch.arange(w_u.shape[1])))
            else:
                warnings.warn(
                    f"the SAE reads {hook} (d_in={w_dec.shape[-1]}) but W_U expects "
                    f"d_model={w_u.shape[0]}; the logit lists are left out. Pass an SAE on "
                    "the residual stream or an *_out hook to get them.",
                    stacklevel=2,
                )
        contexts = [list(model.to_str_tokens(row)) for row in torch.as_tensor(tokens)]
        kwargs.setdefault("feature_names", [f"feature {i}" for i in idx])
        return cls(acts, contexts, logit_weights, vocab, **kwargs)

    @traitlets.validate("feature")
    def _validate_feature(self, proposal: Any) -> int:
        try:
            return check_feature(proposal["value"], self.n_features)
        except ValueError as err:
            raise traitlets.TraitError(str(err)) from None

    def _static_figure(self) -> _static.Figure:
        return _svg_tokens.feature_dashboard_figure(self)

    # ---- decoded views of the payload (what the browser sees) ------------------------------

    def histogram(self, feature: int) -> tuple[np.ndarray, np.ndarray]:
        """``(counts [bins], edges [bins + 1])`` of the feature's non-zero activations."""
        f = check_feature(feature, self.n_features)
        counts = _buffers.decode(self.hist_counts, "int32", (self.n_features, self.bins))
        edges = _buffers.decode(self.hist_edges, "float32", (self.n_features, self.bins + 1))
        return counts[f], edges[f]

    def top_contexts(self, feature: int) -> list[dict[str, Any]]:
        """The feature's top contexts, best first: ``context`` (index into the constructor's
        contexts), ``tokens``, ``acts`` (float32 ``[len(tokens)]``), ``max_pos``, ``max``."""
        f = check_feature(feature, self.n_features)
        F, k, L = self.n_features, self.k, self.ctx_len
        refs = _buffers.decode(self.top_context, "int32", (F, k))[f]
        pos = _buffers.decode(self.top_pos, "int32", (F, k))[f]
        acts = _buffers.decode(self.top_acts, self.dtype, (F, k, L))[f]
        out = []
        for r, c in enumerate(refs):
            if c < 0:
                continue
            toks = self.contexts[c]
            out.append(
                dict(
                    context=self.context_ids[c],
                    tokens=list(toks),
                    acts=acts[r, : len(toks)],
                    max_pos=int(pos[r]),
                    max=float(acts[r, pos[r]]),
                )
            )
        return out

    def logit_effects(
        self, feature: int
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """``(raised, lowered)``: (token, effect) pairs, strongest first; empty without logits."""
        f = check_feature(feature, self.n_features)
        if not self.has_logits:
            return [], []
        F, n = self.n_features, self.n_logits
        lists = []
        for ids, vals in (
            (self.logit_pos_ids, self.logit_pos_vals),
            (self.logit_neg_ids, self.logit_neg_vals),
        ):
            i = _buffers.decode(ids, "int32", (F, n))[f]
            v = _buffers.decode(vals, "float32", (F, n))[f]
            lists.append([(self.logit_tokens[a], float(b)) for a, b in zip(i, v, strict=True)])
        return lists[0], lists[1]

    def __repr__(self) -> str:
        return (
            f"FeatureDashboard(n_features={self.n_features}, n_contexts={self.n_contexts}, "
            f"ctx_len={self.ctx_len}, k={self.k}, bins={self.bins}, "
            f"has_logits={self.has_logits}, feature={self.feature})"
        )


def _as_acts(feature_acts: Any, contexts: list[list[str]]) -> np.ndarray:
    acts = _buffers.to_numpy(feature_acts, name="feature_acts")
    lengths = [len(c) for c in contexts]
    longest = max(lengths, default=0)
    if acts.ndim != 3 or acts.shape[0] != len(contexts) or acts.shape[1] < longest:
        raise ValueError(
            f"feature_acts has shape {tuple(acts.shape)} but contexts has {len(contexts)} "
            f"contexts of up to {longest} tokens; expected feature_acts of shape "
            f"({len(contexts)}, >= {longest}, n_features) = [n_contexts, ctx_len, n_features]. "
            "Fix: pass one row of activations per context (sae.encode(acts) on a "
            "[batch, pos, d_in] cache entry), padded to the longest context."
        )
    if acts.size == 0:
        raise ValueError(f"feature_acts has shape {tuple(acts.shape)}, which holds no values.")
    return acts


def _check_count(name: str, value: Any, upper: int | None = None) -> int:
    """A positive int (at most ``upper``), or a ValueError giving the valid range."""
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1
    if not ok or (upper is not None and value > upper):
        valid = f"1..{upper}" if upper is not None else ">= 1"
        raise ValueError(f"{name}={value!r} is out of range: expected an int in {valid}.")
    return int(value)


def _histograms(acts: np.ndarray, valid: np.ndarray, bins: int) -> dict[str, np.ndarray]:
    """Per feature: histogram of the non-zero finite activations, density, NaN/Inf count."""
    n_features = acts.shape[-1]
    flat = acts[valid]  # [n_tokens, F]
    finite = np.isfinite(flat)
    counts = np.zeros((n_features, bins), np.int64)
    edges = np.zeros((n_features, bins + 1), np.float32)
    density = np.zeros(n_features, np.float32)
    for f in range(n_features):
        x = flat[finite[:, f], f]
        x = x[x != 0]
        density[f] = x.size / max(1, flat.shape[0])
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)
        if lo == hi:  # one distinct value: give it a visible bin
            lo, hi = lo - 0.5, hi + 0.5
        counts[f], e = np.histogram(x, bins=bins, range=(lo, hi))
        edges[f] = e
    return dict(counts=counts, edges=edges, density=density, nonfinite=(~finite).sum(0))


def _top_contexts(acts: np.ndarray, valid: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """``[F, k]`` context indices (-1 = fewer than k contexts with max > 0), ``[F, k]`` argmax
    positions, ``[F, k, ctx_len]`` activations (0 at padding). Ties: lower context index first."""
    masked = np.where(valid[..., None] & np.isfinite(acts), acts, -np.inf)  # [C, L, F]
    peak = masked.max(axis=1)  # [C, F]
    peak_pos = masked.argmax(axis=1)  # [C, F]
    order = np.argsort(-peak, axis=0, kind="stable")[:k].T  # [F, k]
    feats = np.arange(acts.shape[-1])[:, None]
    hit = peak[order, feats] > 0
    top_ctx = np.where(hit, order, -1).astype(np.int32)
    top_pos = np.where(hit, peak_pos[order, feats], 0).astype(np.int32)
    clean = np.where(valid[..., None], acts, 0.0)  # NaN/Inf inside a context stay (marked)
    positions = np.arange(acts.shape[1])[None, None, :]
    top_acts = clean[order[..., None], positions, feats[..., None]]  # [F, k, L]
    top_acts = np.where(hit[..., None], top_acts, 0.0).astype(np.float32)
    return top_ctx, top_pos, top_acts


def _logit_lists(weights: Any, vocab: Sequence[str] | None, n_features: int, n_logits: int) -> dict:
    empty = dict(has_logits=False, n_logits=0, logit_tokens=[])
    if weights is None:
        return empty
    w = _buffers.to_numpy(weights, name="logit_weights")
    if w.ndim != 2 or w.shape[0] != n_features:
        raise ValueError(
            f"logit_weights has shape {tuple(w.shape)}; expected [n_features, d_vocab] = "
            f"({n_features}, d_vocab). Fix: for an SAE pass sae.W_dec @ model.W_U."
        )
    bad = int((~np.isfinite(w)).sum())
    if bad:
        raise ValueError(f"logit_weights has {bad} NaN/Inf values; expected finite weights.")
    d_vocab = w.shape[1]
    if vocab is None or isinstance(vocab, str) or len(vocab) != d_vocab:
        got = "None" if vocab is None else f"{len(vocab)} entries"
        raise ValueError(
            f"vocab has {got} but logit_weights has d_vocab={d_vocab}; expected one token "
            "string per token id. Fix: vocab=model.to_str_tokens(torch.arange(d_vocab))."
        )
    # At most half the vocabulary each, so "raises" and "lowers" never list the same token.
    n = min(_check_count("n_logits", n_logits), max(1, d_vocab // 2))
    pos = np.argsort(-w, axis=1, kind="stable")[:, :n]
    neg = np.argsort(w, axis=1, kind="stable")[:, :n]
    used = np.unique(np.concatenate([pos.ravel(), neg.ravel()]))
    remap = np.full(d_vocab, -1, np.int64)
    remap[used] = np.arange(used.size)
    rows = np.arange(n_features)[:, None]
    return dict(
        has_logits=True,
        n_logits=n,
        logit_tokens=[str(vocab[i]) for i in used],
        logit_pos_ids=_buffers.encode(remap[pos], "int32"),
        logit_pos_vals=_buffers.encode(w[rows, pos], "float32"),
        logit_neg_ids=_buffers.encode(remap[neg], "int32"),
        logit_neg_vals=_buffers.encode(w[rows, neg], "float32"),
    )
