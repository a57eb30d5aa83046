"""Reading a bilinear MLP from its weights (review §5.1, notebook 19).

A bilinear MLP has no elementwise nonlinearity: ``out = W_out((x W_in) * (x W_gate))``
(Sharkey 2023, "A technical note on bilinear layers for interpretability"; Pearce et al. 2024,
"Bilinear MLPs enable weight-based mechanistic interpretability"). Read along an output
direction ``u``, it is a quadratic form of its input ``x``::

    u . out(x) = x^T B_u x,   B_u = sum_k (W_out[k] . u) * sym(W_in[:, k] W_gate[:, k]^T)

so the weights alone define ``B_u`` (``[d_model, d_model]``, symmetric), and its
eigenvectors are the input directions whose square raises (positive eigenvalue) or lowers
(negative) that output: features read off the weights, no data needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class InteractionResult:
    """The eigendecomposition of one output direction's interaction matrix.

    values: ``[d_model]`` eigenvalues sorted by ``|value|``, largest first. vectors:
    ``[d_model, d_model]``, column ``i`` is the unit eigenvector of ``values[i]``. matrix:
    ``[d_model, d_model]``, the symmetric ``B_u`` itself (``u . out = x^T B_u x`` + ``u . b_out``).
    """

    values: torch.Tensor
    vectors: torch.Tensor
    matrix: torch.Tensor

    def explained(self, k: int) -> float:
        """Share of ``||B_u||_F^2`` in the top ``k`` eigenvalues (``sum_{i<k} l_i^2 / sum l_i^2``)."""
        sq = self.values.pow(2)
        return float(sq[:k].sum() / sq.sum())


@torch.no_grad()
def interaction_matrix(model, vector: torch.Tensor, layer: int = 0) -> InteractionResult:
    """``B_u`` for output direction ``vector`` (``[d_model]``, in the residual stream the MLP
    writes to) of the bilinear MLP in block ``layer`` (``TransformerConfig(act_fn="bilinear")``),
    with its eigendecomposition. ``x`` is the MLP's input (the output of ``ln2``). Exact when
    ``b_in`` is zero (as in ``grammar-1l-bilinear``); otherwise ``b_in`` adds a linear term
    that ``B_u`` leaves out."""
    act_fn = getattr(getattr(model, "cfg", None), "act_fn", None)
    if act_fn != "bilinear":
        raise ValueError(
            f"interaction_matrix needs a bilinear MLP; this model's act_fn is {act_fn!r}. "
            "Use a model built with TransformerConfig(act_fn='bilinear'), e.g. "
            "mechscope.load('grammar-1l-bilinear')."
        )
    if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer={layer!r}; expected an int in 0..{model.cfg.n_layers - 1}.")
    mlp = model.blocks[layer].mlp
    vector = torch.as_tensor(vector, dtype=mlp.W_out.dtype)
    if vector.shape != (model.cfg.d_model,):
        raise ValueError(
            f"vector has shape {tuple(vector.shape)}; expected ({model.cfg.d_model},), one "
            "direction in the residual stream (e.g. a column of W_U)."
        )
    c = mlp.W_out @ vector  # [d_mlp]: how much each neuron's product writes along vector
    half = torch.einsum("k,ik,jk->ij", c, mlp.W_in, mlp.W_gate)
    matrix = (half + half.T) / 2  # [d_model, d_model]
    values, vectors = torch.linalg.eigh(matrix)
    order = values.abs().argsort(descending=True)
    return InteractionResult(values=values[order], vectors=vectors[:, order], matrix=matrix)
