"""The Gated SAE (Rajamanoharan et al. 2024, "Improving Dictionary Learning with Gated Sparse
Autoencoders") and the shrinkage it removes.

A ReLU SAE trained with an L1 penalty *shrinks*: the penalty pulls every active feature's
magnitude towards 0, so reconstructions come out too small (Wright & Sharkey 2024,
"Addressing Feature Suppression in SAEs"). A Gated SAE separates *which* features fire from
*how much*: two paths share the encoder directions,

    π_gate = (x - b_dec) W_enc + b_gate                    which features: f_gate = 1[π_gate > 0]
    π_mag  = (x - b_dec) W_enc ⊙ exp(r_mag) + b_mag        how much
    f      = f_gate ⊙ ReLU(π_mag)

(the weight tying of the paper's §3.2: ``W_mag = W_enc ⊙ exp(r_mag)``). ``b_gate`` is the
SAE's ``b_enc``, so ``SAE.pre_activations`` is ``π_gate``; ``r_mag`` and ``b_mag`` are the
two extra parameters ``[d_sae]`` a gated SAE has. The L1 penalty acts on the gate path only,
``ReLU(π_gate)``, which has no say in the magnitudes; an auxiliary loss makes the gate path
reconstruct ``x`` through a frozen copy of the decoder, so it still learns useful directions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gated_features(r_mag: torch.Tensor, b_mag: torch.Tensor, b_gate: torch.Tensor,
                   pre: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Feature activations ``[..., d_sae]`` from the gate pre-activations ``pre = π_gate``:
    ``1[π_gate > 0] ⊙ ReLU(π_mag)`` with ``π_mag = (π_gate - b_gate) ⊙ exp(r_mag) + b_mag``."""
    mag = (pre - b_gate) * r_mag.exp() + b_mag
    return F.relu(mag) * (pre > 0).to(mag.dtype)


def gate_loss(sae, x: torch.Tensor, pre: torch.Tensor, l1_coefficient: float) -> torch.Tensor:
    """The two terms of the Gated SAE loss that train the gate path (Rajamanoharan 2024, eq. 8):
    ``l1_coefficient * ||ReLU(π_gate)||_1`` (decoder rows are unit norm, so no row-norm weight)
    plus ``||x - (ReLU(π_gate) W_dec + b_dec)||²`` with ``W_dec, b_dec`` frozen (detached).
    ``x`` ``[batch, d_in]``, ``pre`` = π_gate ``[batch, d_sae]`` -> scalar."""
    gate = F.relu(pre)
    recon = torch.addmm(sae.b_dec.detach(), gate, sae.W_dec.detach())
    aux = (recon - x).pow(2).sum(-1).mean()
    return l1_coefficient * gate.sum(-1).mean() + aux


@torch.no_grad()
def relative_reconstruction_bias(sae, acts: torch.Tensor, *, batch_size: int = 8192) -> float:
    """Shrinkage as one number: the γ of Rajamanoharan et al. 2024 (§5.1),
    ``γ = argmin_γ' E ||x̂/γ' - x||² = E ||x̂||² / E <x̂, x>``, measured about the decoder bias
    (``x - b_dec`` and ``x̂ - b_dec``: the part the features reconstruct). γ = 1: no bias;
    γ < 1: reconstructions are systematically too small (shrinkage, e.g. from an L1 penalty).
    ``acts`` ``[..., d_in]``."""
    from .sae import check_finite

    if not isinstance(acts, torch.Tensor) or not acts.is_floating_point():
        raise TypeError(f"acts must be a float tensor [..., d_in], got {type(acts).__name__}.")
    acts = acts.to(sae.W_dec.dtype)
    check_finite(acts, sae.cfg.site)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}; expected a positive number of rows.")
    x_all = acts.reshape(-1, acts.shape[-1])
    sq = dot = 0.0
    for i in range(0, len(x_all), batch_size):
        x = x_all[i : i + batch_size] - sae.b_dec
        x_hat = sae(x_all[i : i + batch_size]) - sae.b_dec
        sq += float(x_hat.pow(2).sum())
        dot += float((x_hat * x).sum())
    if dot <= 0:
        raise ValueError(
            "The reconstructions do not point along the inputs at all (E <x̂, x> <= 0), so γ is "
            "undefined: is the SAE trained on these activations (same hook, same d_in)?"
        )
    return sq / dot
