"""Weight reads of a weightless (remote) nnsight model, done where the weights are.

``LanguageModel(repo_id)`` for NDIF builds the model on the meta device: this process has
the module tree and the config, no weights. Analyses that read weights therefore ask the
server for what they need, inside a trace (nnsight resolves ``model.hf_model`` in the trace
body to the server's module, so the same ``unembed_weights()`` / ``final_norm()`` /
``head_output_weights()`` calls give the real weights there):

- the logit lens: the readout (final norm, each residual with its own scale, then the
  unembedding) runs in the trace that records the residual stream, so one trace brings back
  ``[layer + 1, batch, pos, d_vocab]`` fp32 logits, never ``W_U`` (``[d_model, d_vocab]``;
  Llama-3.1-8B: 4096 x 128,256 = 1.05 GB in bf16).
- direct logit attribution: one trace on a one-token input brings back the readout
  direction of the answer (minus the wrong) ids, ``[*ids, d_model]`` (``W_U`` rows with the
  final norm's weight folded in), their offsets, and with ``by="head"`` each layer's ``W_O``
  projected on those directions, ``[layer, head, d_head, *ids]`` (8B: 0.5 MB per prompt,
  not 1 GB of ``W_O``).
"""

from __future__ import annotations

import torch

from ..cache import ActivationCache


def is_weightless(hf_model: torch.nn.Module) -> bool:
    """Whether the module's parameters live on the meta device (no data here)."""
    p = next(hf_model.parameters(), None)
    return p is not None and p.is_meta


class LensReadout:
    """In the trace: the kept residual streams -> logit-lens logits ``[layer, batch, pos,
    d_vocab]`` (float32). ``readout(analysis, stack)`` is mechscope.lens' own readout."""

    def __init__(self, model, names: list[str], readout):
        self.model, self.names, self.readout = model, names, readout

    def __call__(self, acts: dict) -> torch.Tensor:
        stack = torch.stack([acts[n] for n in self.names]).float()
        with torch.no_grad():
            return self.readout(ActivationCache({}, model=self.model), stack)


def _rows(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """On the server: ``(W_U.T[ids] * norm weight [*ids, d_model], offset[ids] [*ids])``."""
    w_u = model.unembed_weights().detach()  # [d_model, d_vocab]
    cols = w_u[:, ids.flatten()].float()  # [d_model, n]
    rows = cols.T.reshape(*ids.shape, -1)
    off = model.unembed_bias().detach()[ids].float()
    norm = model.final_norm()
    if norm is not None and norm["weight"] is not None:
        rows = rows * norm["weight"].detach().float()
    if norm is not None and norm["bias"] is not None:
        off = off + (norm["bias"].detach().float() @ cols).reshape(ids.shape)
    return rows, off


def dla_readout(model, answer: torch.Tensor, wrong, by: str, kind: str | None):
    """On the server: ``(direction [*ids, d_model], offset [*ids], per-layer W_O @ direction
    [layer, head, d_head, *ids] or None)``. ``kind``: the final norm's ("ln" centres each
    component, so W_O is projected on the centred direction)."""
    direction, offset = _rows(model, answer)
    if wrong is not None:
        d_w, o_w = _rows(model, wrong)
        direction, offset = direction - d_w, offset - o_w
    if by != "head":
        return direction, offset, None
    d = direction - direction.mean(-1, keepdim=True) if kind == "ln" else direction
    proj = [
        torch.einsum("hdm,...m->hd...", model.head_output_weights(i).detach().float(), d)
        for i in range(model.cfg.n_layers)
    ]
    return direction, offset, torch.stack(proj)


def direct_logit_attribution(cache, answer, wrong, by: str, pos):
    """``(values, labels, offset)`` of mechscope.attribution.direct_logit_attribution for a
    weightless remote model: the cache's activations here, the weights' part from one trace."""
    model = cache.model
    norm = model.final_norm()
    kind = None if norm is None else norm["kind"]
    direction, offset, proj = model.fetch(dla_readout, answer, wrong, by, kind)
    if by != "head":
        stack, labels = cache.decompose_resid(pos_slice=pos, apply_ln=True)
        return (stack * direction.to(stack.dtype)).sum(-1), labels, offset
    n, parts, labels = model.cfg.n_layers, [], []
    for i in range(n):
        z = cache._need(f"blocks.{i}.attn.hook_z", "direct_logit_attribution")
        z = (z if pos is None else z[:, pos]).movedim(-2, 0)  # [head, batch, (pos,) d_head]
        parts.append(torch.einsum("h...d,hd...->h...", z.float(), proj[i]))
        labels += [f"L{i}H{h}" for h in range(z.shape[0])]
    values = torch.cat(parts)
    if norm is not None:
        scale = cache._final_scale(n, pos, norm["kind"], norm["eps"]).squeeze(-1)
        values = values / scale.to(values.dtype)
    return values, labels, offset
