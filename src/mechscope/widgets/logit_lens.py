"""LogitLens: a layers x positions grid of each layer's top-1 prediction.

Each cell shows the token the logit lens (nostalgebraist 2020) or tuned lens (Belrose et
al. 2023) reads off the residual stream entering a layer, at one position, coloured by its
probability (viridis, 0 to 1; NaN marked in magenta). Hover a cell for its top-k tokens and
probabilities; click it to select it (``selected = [layer, pos]``, which Python can observe
and set). Cells whose top-1 is the actual next token are underlined.

Payload (binary, never JSON floats):

- ``top_probs``: ``[layer, pos, k]`` probabilities, encoded as ``dtype`` (``_buffers``);
- ``top_ids``: ``[layer, pos, k]`` int32 indices into ``token_table``, the distinct
  predicted token strings (a table, so a 50k-token vocabulary costs only what is shown);
- ``targets``: ``[pos]`` int32 index into ``token_table`` of each position's next token,
  ``-1`` where there is none (the last position) or it is unknown.

TypeScript side: ``widgets/logit_lens/index.ts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from mechscope.widgets import _buffers, _static, _svg_grids

_STATIC = Path(__file__).parent / "static"


class LogitLens(_static.StaticFallback, anywidget.AnyWidget):
    """Layers x positions grid of top-1 lens predictions; hover for the top-k.

    Args:
        top_probs: ``[layer, pos, k]`` probabilities in [0, 1], most probable first.
        top_tokens: ``[layer][pos][k]`` token strings matching ``top_probs``.
        tokens: the ``pos`` input token strings (column labels).
        row_labels: one name per layer (default ``"0"``, ``"1"``, ...).
        targets: the actual next token at each position (``None`` for unknown / last); a
            cell whose top-1 equals it is marked. Default: ``tokens[1:]`` and ``None``.
        title: shown above the grid.
        selected: ``[layer, pos]`` selected at start, or ``None``.
        dtype: encoding of ``top_probs``: ``"auto"`` (float32 up to 4 MiB), ``"float32"``,
            ``"float16"`` or ``"uint8"`` (quantised, 1/508 error).

    Most users build it from a lens: ``mechscope.lens.logit_lens(model, text).to_widget()``.
    """

    _esm = _STATIC / "logit_lens.js"
    _css = _STATIC / "logit_lens.css"

    n_layers = traitlets.Int(0).tag(sync=True)
    n_pos = traitlets.Int(0).tag(sync=True)
    k = traitlets.Int(0).tag(sync=True)
    row_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    token_table = traitlets.List(traitlets.Unicode()).tag(sync=True)
    top_probs = traitlets.Bytes(b"").tag(sync=True)
    top_ids = traitlets.Bytes(b"").tag(sync=True)
    targets = traitlets.Bytes(b"").tag(sync=True)
    dtype = traitlets.Unicode("float32").tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    # [layer, pos] of the selected cell, [] for none; two-way.
    selected = traitlets.List(traitlets.Int()).tag(sync=True)
    # position highlighted across linked views, -1 none; two-way (hover sets it).
    highlight_token = traitlets.Int(-1).tag(sync=True)

    def __init__(
        self,
        top_probs: Any,
        top_tokens: Sequence[Sequence[Sequence[str]]],
        tokens: Sequence[str],
        *,
        row_labels: Sequence[str] | None = None,
        targets: Sequence[str | None] | None = None,
        title: str = "",
        selected: Sequence[int] | None = None,
        dtype: str = "auto",
    ) -> None:
        probs = _buffers.to_numpy(top_probs, name="top_probs")
        if probs.ndim != 3 or probs.size == 0:
            raise ValueError(
                f"top_probs has shape {tuple(probs.shape)}; expected [layer, pos, k] with no "
                f"empty axis. Fix: probs, ids = result.top_k(k); pass probs[:, batch]."
            )
        n_layers, n_pos, k = probs.shape
        _check_probs(probs)
        tokens = _check_strs(tokens, "tokens")
        if len(tokens) != n_pos:
            raise ValueError(
                f"tokens has {len(tokens)} entries but top_probs has {n_pos} positions "
                f"(shape {tuple(probs.shape)}); expected one input token per position."
            )
        table, ids = _token_table(top_tokens, (n_layers, n_pos, k))
        if targets is None:
            targets = [*tokens[1:], None]
        targets = list(targets)
        if len(targets) != n_pos:
            raise ValueError(f"targets has {len(targets)} entries for {n_pos} positions.")
        index = {s: i for i, s in enumerate(table)}
        target_ids = np.array([index.get(t, -1) if t is not None else -1 for t in targets])
        labels = [str(i) for i in range(n_layers)] if row_labels is None else list(row_labels)
        if len(labels) != n_layers:
            raise ValueError(f"row_labels has {len(labels)} names for {n_layers} layers.")
        encoding = _buffers.resolve_dtype(dtype, probs.size)
        super().__init__(
            n_layers=n_layers,
            n_pos=n_pos,
            k=k,
            row_labels=[str(x) for x in labels],
            tokens=tokens,
            token_table=table,
            top_probs=_buffers.encode(probs, encoding),
            top_ids=_buffers.encode(ids, "int32"),
            targets=_buffers.encode(target_ids, "int32"),
            dtype=encoding,
            title=title,
            selected=self._check_selected(selected, n_layers, n_pos),
        )

    @classmethod
    def from_result(cls, result, *, batch_index: int = 0, k: int = 5, **kwargs: Any) -> LogitLens:
        """From a :class:`mechscope.lens.LensResult`: prompt ``batch_index``, top ``k`` per cell."""
        n_batch = result.logits.shape[1]
        if (
            isinstance(batch_index, bool)
            or not isinstance(batch_index, int)
            or not -n_batch <= batch_index < n_batch
        ):
            raise ValueError(
                f"batch_index={batch_index!r} is out of range for {n_batch} prompt(s); "
                f"expected an int in 0..{n_batch - 1}."
            )
        batch = batch_index
        probs, ids = result.top_k(k)
        probs, ids = probs[:, batch], ids[:, batch]  # [layer, pos, k]
        uniq = sorted(set(ids.flatten().tolist()) | set(result.tokens[batch].tolist()))
        decode = result.decode or (lambda xs: [f"#{x}" for x in xs])
        strs = dict(zip(uniq, decode(uniq), strict=True))
        top_tokens = [[[strs[i] for i in cell] for cell in row] for row in ids.tolist()]
        tokens = [strs[i] for i in result.tokens[batch].tolist()]
        kwargs.setdefault("row_labels", result.labels)
        kwargs.setdefault("title", f"{result.kind} lens")
        return cls(probs, top_tokens, tokens, **kwargs)

    @staticmethod
    def _check_selected(sel: Any, n_layers: int, n_pos: int) -> list[int]:
        if sel is None or (isinstance(sel, (list, tuple)) and len(sel) == 0):
            return []
        sel = list(sel)
        if len(sel) != 2 or not (0 <= sel[0] < n_layers and 0 <= sel[1] < n_pos):
            raise ValueError(
                f"selected={sel!r}; expected [layer, pos] with layer in 0..{n_layers - 1} and "
                f"pos in 0..{n_pos - 1}, or [] for none."
            )
        return [int(x) for x in sel]

    @traitlets.validate("selected")
    def _validate_selected(self, proposal: Any) -> list[int]:
        try:
            return self._check_selected(proposal["value"], self.n_layers, self.n_pos)
        except ValueError as err:
            raise traitlets.TraitError(str(err)) from None

    def _static_figure(self) -> _static.Figure:
        return _svg_grids.logit_lens_figure(self)

    def top_k_at(self, layer: int, pos: int) -> list[tuple[str, float]]:
        """``[(token, prob), ...]`` of one cell, as the browser decodes it (the hover list)."""
        shape = (self.n_layers, self.n_pos, self.k)
        probs = _buffers.decode(self.top_probs, self.dtype, shape)[layer, pos]
        ids = _buffers.decode(self.top_ids, "int32", shape)[layer, pos]
        return [(self.token_table[i], float(p)) for i, p in zip(ids, probs, strict=True)]

    def __repr__(self) -> str:
        return (
            f"LogitLens(n_layers={self.n_layers}, n_pos={self.n_pos}, k={self.k}, "
            f"dtype={self.dtype!r}, selected={self.selected})"
        )


def _check_probs(probs: np.ndarray) -> None:
    """Probabilities: finite values in [0, 1] (NaN allowed: drawn as marked cells), each
    cell's top-k summing to at most 1. Logits passed by mistake fail here."""
    finite = probs[np.isfinite(probs)]
    if np.isinf(probs).any() or (finite.size and (finite.min() < 0 or finite.max() > 1)):
        lo, hi = float(np.nanmin(probs)), float(np.nanmax(probs))
        raise ValueError(
            f"top_probs holds values in [{lo:.4g}, {hi:.4g}]; expected probabilities in [0, 1] "
            f"(these look like logits). Fix: probs, ids = logits.softmax(-1).topk(k), or "
            f"build it from a lens: LogitLens.from_result(result)."
        )
    sums = np.nansum(probs, axis=-1)
    if (sums > 1 + 1e-3).any():
        raise ValueError(
            f"top_probs rows sum to up to {float(sums.max()):.4g}; the top-k probabilities of "
            f"one cell must sum to at most 1. Fix: take the top-k of one softmax per cell, "
            f"e.g. logits.softmax(-1).topk(k, dim=-1)."
        )


def _check_strs(xs: Any, name: str) -> list[str]:
    if isinstance(xs, str) or not isinstance(xs, Sequence):
        raise ValueError(
            f"{name} must be a list of token strings, got {type(xs).__name__}. "
            f"Fix: model.to_str_tokens(text)."
        )
    bad = [i for i, x in enumerate(xs) if not isinstance(x, str)]
    if bad:
        raise ValueError(
            f"{name}[{bad[0]}] is {type(xs[bad[0]]).__name__} ({xs[bad[0]]!r}), not str. Fix: "
            f"pass token strings (model.to_str_tokens), not ids."
        )
    return list(xs)


def _token_table(top_tokens: Any, shape: tuple[int, int, int]) -> tuple[list[str], np.ndarray]:
    """Distinct strings (first-seen order) and ``[layer, pos, k]`` int32 indices into them."""
    ids = np.zeros(shape, np.int32)
    table: dict[str, int] = {}
    try:
        ok = len(top_tokens) == shape[0] and all(len(r) == shape[1] for r in top_tokens)
        ok = ok and all(len(c) == shape[2] for r in top_tokens for c in r)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(
            f"top_tokens must be nested lists [layer][pos][k] of shape {shape} (as top_probs). "
            f"Fix: build it from the same top_k ids, e.g. [[model.to_str_tokens(c) for c in row] "
            f"for row in ids]."
        )
    for layer, row in enumerate(top_tokens):
        for pos, cell in enumerate(row):
            for j, tok in enumerate(cell):
                if not isinstance(tok, str):
                    raise ValueError(
                        f"top_tokens[{layer}][{pos}][{j}] is {type(tok).__name__} ({tok!r}), "
                        f"not str."
                    )
                ids[layer, pos, j] = table.setdefault(tok, len(table))
    return list(table), ids
