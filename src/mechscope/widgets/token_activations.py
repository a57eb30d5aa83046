"""TokenActivations: many texts at once, every token coloured by one feature's activation.

A "feature" is any per-token scalar: a neuron, an SAE latent, a probe's score. The widget
shows

- a list of feature names; picking one recolours every text and sets ``feature``, which
  Python can observe (setting ``feature`` from Python recolours the view);
- the texts, one row each, tokens coloured by the chosen feature: a diverging map centred
  at zero (blue < 0 < red) when the feature has negative values, a sequential one (white
  to red) when it is non-negative; NaN/Inf tokens in magenta. One scale per feature,
  shared by all texts, so rows compare;
- the exact value of a token on hover (tooltip and a readout line).

The values travel as one binary buffer laid out ``[feature, text, pos]`` (one feature is
one contiguous slice), never as JSON floats. TypeScript side:
``widgets/token_activations/index.ts``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from mechscope.widgets import _buffers, _static, _svg_tokens

_STATIC = Path(__file__).parent / "static"


class TokenActivations(_static.StaticFallback, anywidget.AnyWidget):
    """Texts coloured token by token by a chosen feature's activation.

    Args:
        texts: one list of token strings per text; texts may differ in length (ragged).
        values: ``[n_texts, max_tokens, n_features]`` activations (torch Tensor or numpy
            array), or ``[n_texts, max_tokens]`` for a single feature. ``max_tokens`` is at
            least the longest text; positions past a text's end are padding and ignored.
        feature_names: one name per feature (default ``feature 0``, ``feature 1``, ...).
        feature: index of the feature shown first.
        title: shown above the widget.
        dtype: payload encoding, ``"auto"`` (float32 up to 4 MiB, else float16),
            ``"float32"`` or ``"float16"``.

    Example::

        _, cache = model.run_with_cache(tokens, names="blocks.0.mlp.hook_post")
        w = TokenActivations.from_cache(cache, "blocks.0.mlp.hook_post",
                                        [model.to_str_tokens(t) for t in tokens],
                                        features=[3, 17, 42])
        w.observe(lambda change: print(change["new"]), names="feature")
    """

    _esm = _STATIC / "token_activations.js"
    _css = _STATIC / "token_activations.css"

    tokens = traitlets.List(traitlets.List(traitlets.Unicode())).tag(sync=True)
    n_texts = traitlets.Int(0).tag(sync=True)
    n_pos = traitlets.Int(0).tag(sync=True)
    n_features = traitlets.Int(0).tag(sync=True)
    # [feature, text, pos] little-endian, C order, encoded as `dtype` (see _buffers).
    values = traitlets.Bytes(b"").tag(sync=True)
    dtype = traitlets.Unicode("float32").tag(sync=True)
    feature_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    feature = traitlets.Int(0).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    # position (in every text) highlighted across linked views, -1 none; two-way (hover sets it).
    highlight_token = traitlets.Int(-1).tag(sync=True)

    def __init__(
        self,
        texts: Sequence[Sequence[str]],
        values: Any,
        *,
        feature_names: Sequence[str] | None = None,
        feature: int = 0,
        title: str = "",
        dtype: str = "auto",
    ) -> None:
        texts = check_texts(texts, name="texts")
        acts = _as_values(values, texts)
        n_texts, n_pos, n_features = acts.shape
        names = check_feature_names(feature_names, n_features)
        # Padding is zeroed: it never changes a feature's colour scale (max |value|, sign).
        acts = acts.copy()
        for i, toks in enumerate(texts):
            acts[i, len(toks) :] = 0.0
        encoding = _buffers.resolve_signed_dtype(dtype, acts)
        super().__init__(
            tokens=texts,
            n_texts=n_texts,
            n_pos=n_pos,
            n_features=n_features,
            values=_buffers.encode(np.moveaxis(acts, 2, 0), encoding),
            dtype=encoding,
            feature_names=names,
            feature=check_feature(feature, n_features),
            title=title,
        )

    @classmethod
    def from_cache(
        cls,
        cache: Mapping[str, Any],
        hook: str,
        str_tokens: Sequence[Sequence[str]],
        *,
        features: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> TokenActivations:
        """Build the widget from one cached activation, ``[batch, pos, d]``.

        Args:
            cache: mapping from hook name to tensor (an ``ActivationCache`` or a dict).
            hook: the activation to show, e.g. ``"blocks.0.mlp.hook_post"``.
            str_tokens: the token strings of each prompt of the batch.
            features: which of the ``d`` units to offer (default: all of them); the names
                default to ``"{hook}[{unit}]"``.
            **kwargs: passed on to the constructor (feature, title, dtype, feature_names).
        """
        if hook not in cache:
            names = [str(n) for n in cache.keys()]
            close = difflib.get_close_matches(hook, names, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(
                f"hook={hook!r} is not in the cache (it has {len(names)} entries).{hint} Fix: "
                f"run model.run_with_cache(tokens, names=[{hook!r}]) first."
            )
        acts = _buffers.to_numpy(cache[hook], name=hook)
        if acts.ndim == 2:  # batch dim removed: one prompt
            acts = acts[None]
        if acts.ndim != 3:
            raise ValueError(
                f"{hook} has shape {tuple(acts.shape)}; expected [batch, pos, d]. Fix: "
                "for per-head activations ([batch, pos, head, d_head]) pick one head, e.g. "
                "cache[name][:, :, head], and pass it to TokenActivations(texts, values)."
            )
        if features is None:
            features = range(acts.shape[-1])
        units = [
            check_feature(f, acts.shape[-1], what=f"features entry of {hook}") for f in features
        ]
        kwargs.setdefault("feature_names", [f"{hook}[{u}]" for u in units])
        return cls(str_tokens, acts[..., units], **kwargs)

    @traitlets.validate("feature")
    def _validate_feature(self, proposal: Any) -> int:
        try:
            return check_feature(proposal["value"], self.n_features)
        except ValueError as err:
            raise traitlets.TraitError(str(err)) from None

    def _static_figure(self) -> _static.Figure:
        return _svg_tokens.token_activations_figure(self)

    def values_array(self) -> np.ndarray:
        """The values as the browser sees them (decoded payload), ``[text, pos, feature]``."""
        shape = (self.n_features, self.n_texts, self.n_pos)
        return np.moveaxis(_buffers.decode(self.values, self.dtype, shape), 0, 2)

    def __repr__(self) -> str:
        return (
            f"TokenActivations(n_texts={self.n_texts}, n_pos={self.n_pos}, "
            f"n_features={self.n_features}, dtype={self.dtype!r}, feature={self.feature})"
        )


def _as_values(values: Any, texts: list[list[str]]) -> np.ndarray:
    acts = _buffers.to_numpy(values, name="values")
    lengths = [len(t) for t in texts]
    if acts.ndim == 2:
        acts = acts[..., None]
    if acts.ndim != 3:
        raise ValueError(
            f"values has shape {tuple(acts.shape)} ({acts.ndim} dims); expected "
            "[n_texts, max_tokens, n_features] or [n_texts, max_tokens] for one feature."
        )
    n_texts, n_pos, n_features = acts.shape
    if n_texts != len(texts) or n_pos < max(lengths, default=0):
        raise ValueError(
            f"values has shape {tuple(acts.shape)} but texts has {len(texts)} texts of up to "
            f"{max(lengths, default=0)} tokens (lengths {_preview(lengths)}); expected values "
            f"of shape ({len(texts)}, >= {max(lengths, default=0)}, n_features). Fix: pass one "
            "row of values per text, padded to the longest text."
        )
    if n_texts == 0 or n_features == 0:
        raise ValueError(f"values has shape {tuple(acts.shape)}, which holds no values.")
    return acts


def check_texts(texts: Any, *, name: str) -> list[list[str]]:
    """``texts`` as a list of lists of str, or a ValueError saying what is wrong."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(
            f"{name} must be a list of token lists (list[list[str]]), got "
            f"{type(texts).__name__}. Fix: [model.to_str_tokens(t) for t in tokens]."
        )
    out = []
    for i, toks in enumerate(texts):
        if isinstance(toks, str) or not isinstance(toks, Sequence):
            raise ValueError(
                f"{name}[{i}] must be a list of str tokens, got {type(toks).__name__}. Fix: "
                f"pass list[list[str]], e.g. [model.to_str_tokens(t) for t in tokens]."
            )
        bad = [j for j, t in enumerate(toks) if not isinstance(t, str)]
        if bad:
            j = bad[0]
            raise ValueError(
                f"{name}[{i}][{j}] is {type(toks[j]).__name__} ({toks[j]!r}), not str. Fix: "
                "pass token strings (model.to_str_tokens), not token ids."
            )
        out.append(list(toks))
    return out


def check_feature(feature: Any, n_features: int, *, what: str = "feature") -> int:
    """A valid feature index, or a ValueError giving the valid range."""
    if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)):
        raise ValueError(
            f"{what} must be an int index, got {type(feature).__name__} ({feature!r})."
        )
    if not 0 <= int(feature) < n_features:
        raise ValueError(
            f"{what}={int(feature)} is out of range: there are {n_features} features, so it "
            f"must be in 0..{n_features - 1}."
        )
    return int(feature)


def check_feature_names(names: Sequence[str] | None, n_features: int) -> list[str]:
    if names is None:
        return [f"feature {f}" for f in range(n_features)]
    if isinstance(names, str):
        raise ValueError("feature_names must be a list of str, one per feature, not one str.")
    names = [str(n) for n in names]
    if len(names) != n_features:
        raise ValueError(
            f"feature_names has {len(names)} names but there are {n_features} features; "
            "expected one name per feature."
        )
    return names


def _preview(items: Sequence[Any], limit: int = 6) -> str:
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return "[" + ", ".join(map(str, items[:limit])) + more + "]"
