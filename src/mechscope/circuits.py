"""QK and OV circuits, and composition between heads, read off the weights.

After Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits".
With row vectors (``x @ W``), head ``h`` of layer ``l`` has

- the **QK circuit** ``W_QK = W_Q W_K^T`` (``[d_model, d_model]``): the attention
  score between a query residual ``q`` and a key residual ``k`` is ``q W_QK k^T / sqrt(d_head)``;
- the **OV circuit** ``W_OV = W_V W_O`` (``[d_model, d_model]``): what the head writes
  to the residual stream for each unit of attention to a key residual ``x`` is ``x W_OV``.

Both are rank ``d_head``, so they are kept *factored* (:class:`FactoredMatrix`):
products, norms and eigenvalues are computed through ``d_head``-sized matrices. The
"full" circuits put the embedding and unembedding around them: ``W_E W_QK W_E^T``
(token-to-token attention, ``[d_vocab, d_vocab]``) and ``W_E W_OV W_U`` (what attending
to a token does to the logits). LayerNorm is ignored here, as in Elhage et al.
"""

from __future__ import annotations

import torch


class FactoredMatrix:
    """The matrix ``A @ B`` kept as its factors. A: ``[..., m, r]``, B: ``[..., r, n]``."""

    def __init__(self, A: torch.Tensor, B: torch.Tensor):
        if A.shape[-1] != B.shape[-2]:
            raise ValueError(f"Factors do not chain: A is {list(A.shape)}, B is {list(B.shape)}.")
        self.A, self.B = A, B

    @property
    def shape(self) -> tuple[int, ...]:
        return (
            *torch.broadcast_shapes(self.A.shape[:-2], self.B.shape[:-2]),
            self.A.shape[-2],
            self.B.shape[-1],
        )

    def full(self) -> torch.Tensor:
        """The dense ``[..., m, n]`` matrix."""
        return self.A @ self.B

    @property
    def T(self) -> FactoredMatrix:
        return FactoredMatrix(self.B.transpose(-1, -2), self.A.transpose(-1, -2))

    def __matmul__(self, other: torch.Tensor | FactoredMatrix) -> FactoredMatrix:
        if isinstance(other, FactoredMatrix):
            return FactoredMatrix(self.A, (self.B @ other.A) @ other.B)
        return FactoredMatrix(self.A, self.B @ other)

    def __rmatmul__(self, other: torch.Tensor) -> FactoredMatrix:
        return FactoredMatrix(other @ self.A, self.B)

    def norm(self) -> torch.Tensor:
        """Frobenius norm, ``[...]``: ``||AB||_F^2 = trace(A^T A B B^T)``, all in r x r."""
        gram_a = self.A.transpose(-1, -2) @ self.A
        gram_b = self.B @ self.B.transpose(-1, -2)
        return (gram_a * gram_b).sum((-1, -2)).clamp(min=0).sqrt()

    def eigenvalues(self) -> torch.Tensor:
        """Eigenvalues of the square matrix ``AB``: the nonzero ones are those of ``BA`` (r x r). ``[..., r]`` complex."""
        if self.A.shape[-2] != self.B.shape[-1]:
            raise ValueError(f"Eigenvalues need a square matrix, this one is {list(self.shape)}.")
        return torch.linalg.eigvals(self.B @ self.A)

    def __repr__(self) -> str:
        return f"FactoredMatrix(shape={list(self.shape)}, rank<={self.A.shape[-1]})"


def _weights(model, layer: int) -> dict[str, torch.Tensor]:
    """Per-head attention weights of ``layer``: W_Q, W_K, W_V ``[head, d_model, d_head]``, W_O ``[head, d_head, d_model]``."""
    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(blocks[0], "attn"):
        raise TypeError(
            f"{type(model).__name__} has no attention blocks with per-head weights "
            "(expected model.blocks[l].attn.W_Q etc., as in mechscope.Transformer)."
        )
    _local_weights(model, "qk_circuit / ov_circuit")
    n = len(blocks)
    if not 0 <= layer < n:
        raise ValueError(f"layer={layer} is out of range; this model has layers 0..{n - 1}.")
    attn = blocks[layer].attn
    return {k: getattr(attn, k).detach() for k in ("W_Q", "W_K", "W_V", "W_O")}


def _local_weights(model, what: str) -> None:
    """A weightless remote model (nnsight's meta copy for NDIF) has no weights to read here."""
    if getattr(model, "weightless", False):
        raise ValueError(
            f"{what} reads W_Q/W_K/W_V/W_O (and W_E/W_U), but this remote model is nnsight's "
            f"weightless copy: the weights are on NDIF's server. Run the analysis there, one "
            f"layer a trace: model.fetch(mechscope.circuits.qk_circuit, layer) (any function "
            f"of (model, *args)), or load the model locally with remote=False."
        )


def qk_circuit(model, layer: int) -> FactoredMatrix:
    """``W_Q W_K^T`` for every head of ``layer``: ``[head, d_model, d_model]``, factored."""
    w = _weights(model, layer)
    return FactoredMatrix(w["W_Q"], w["W_K"].transpose(-1, -2))


def ov_circuit(model, layer: int) -> FactoredMatrix:
    """``W_V W_O`` for every head of ``layer``: ``[head, d_model, d_model]``, factored."""
    w = _weights(model, layer)
    return FactoredMatrix(w["W_V"], w["W_O"])


def full_qk_circuit(model, layer: int) -> FactoredMatrix:
    """Token-to-token attention scores through the direct path: ``W_E W_QK W_E^T``, ``[head, d_vocab, d_vocab]``."""
    _local_weights(model, "full_qk_circuit")
    W_E = model.W_E.detach()
    return W_E @ qk_circuit(model, layer) @ W_E.T


def full_ov_circuit(model, layer: int) -> FactoredMatrix:
    """Effect on the logits of attending to each token: ``W_E W_OV W_U``, ``[head, d_vocab, d_vocab]``."""
    _local_weights(model, "full_ov_circuit")
    return model.W_E.detach() @ ov_circuit(model, layer) @ model.W_U.detach()


def copying_scores(model, layer: int) -> torch.Tensor:
    """Eigenvalue copying score of each head's full OV circuit, ``[head]`` in [-1, 1].

    ``sum(lambda) / sum(|lambda|)`` over the eigenvalues of ``W_E W_OV W_U`` (Elhage et al.
    2021): near 1 when attending to a token raises that token's own logit (copying).
    """
    _local_weights(model, "copying_scores")
    eig = full_ov_circuit(model, layer).eigenvalues()
    return (eig.sum(-1) / eig.abs().sum(-1)).real


def composition_score(left: FactoredMatrix, right: FactoredMatrix) -> torch.Tensor:
    """``||left @ right||_F / (||left||_F ||right||_F)``, broadcast over leading dims."""
    return (left @ right).norm() / (left.norm() * right.norm())


def composition_scores(model, kind: str, early_layer: int, late_layer: int) -> torch.Tensor:
    """Q-, K- or V-composition of each head of ``early_layer`` into each head of ``late_layer``.

    Returns ``[early_head, late_head]``. The early head writes ``x W_OV``; the late head reads
    it through its queries (Q: ``W_OV W_QK``), keys (K: ``W_OV W_QK^T``) or values
    (V: ``W_OV W_OV'``). Scores of random matrices are about ``sqrt(d_head / d_model)``-ish; compare
    with :func:`composition_baseline`.
    """
    _local_weights(model, "composition_scores")
    if kind not in ("Q", "K", "V"):
        raise ValueError(f"kind={kind!r}; expected 'Q', 'K' or 'V'.")
    if not early_layer < late_layer:
        raise ValueError(
            f"Composition needs early_layer < late_layer, got {early_layer} and {late_layer}."
        )
    ov = ov_circuit(model, early_layer)
    late = {
        "Q": qk_circuit(model, late_layer),
        "K": qk_circuit(model, late_layer).T,
        "V": ov_circuit(model, late_layer),
    }[kind]
    H1, H2 = ov.shape[0], late.shape[0]
    left = FactoredMatrix(ov.A[:, None], ov.B[:, None])  # [H1, 1, ...]
    right = FactoredMatrix(late.A[None], late.B[None])  # [1, H2, ...]
    return composition_score(left, right).reshape(H1, H2)


def composition_baseline(
    d_model: int, d_head: int, *, n_samples: int = 200, seed: int = 0
) -> float:
    """Mean composition score of ``n_samples`` random Gaussian rank-``d_head`` circuits of
    this size (``d_model x d_model``)."""
    for name, v in (("d_model", d_model), ("d_head", d_head), ("n_samples", n_samples)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r}; expected a positive integer.")
    g = torch.Generator().manual_seed(seed)

    def rand():
        return FactoredMatrix(
            torch.randn(n_samples, d_model, d_head, generator=g),
            torch.randn(n_samples, d_head, d_model, generator=g),
        )

    return float(composition_score(rand(), rand()).mean())
