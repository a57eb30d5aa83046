"""Where each supported Hugging Face architecture keeps the modules mechscope hooks.

A :class:`Family` is a table of module paths, nothing more: no weights are converted
and no forward pass is re-implemented. :mod:`mechscope.models.hf` attaches torch hooks
to these modules so that the DESIGN.md hook names work on the user's own model.

Paths are relative to ``hf_model.base_model`` (e.g. ``GPT2Model`` inside
``GPT2LMHeadModel``), except ``layers`` entries which are relative to one block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]  # config.model_type values this table describes
    layers: str  # the ModuleList of blocks
    embed: str  # token embedding (hook_embed = its output)
    pos_embed: str | None  # learned absolute positions (hook_pos_embed); None = rotary
    ln_final: str | None  # final norm before the unembedding; None for encoders
    attn: str  # in a block: the module that calls the attention interface
    out_proj: str  # in a block: attention output projection; its input is z, its output attn_out
    mlp_act: str  # in a block: the activation module; its input is mlp.hook_pre
    mlp_out: str  # in a block: MLP output projection; its input is mlp.hook_post, output mlp_out
    norm: str  # "ln" (LayerNorm) or "rms" (RMSNorm)
    residual: str  # "pre" (pre-norm, additive), "parallel" (attn and MLP read the same resid),
    #               or "post" (post-norm: LayerNorm after each residual add, BERT)
    resid_mid: str | None = None  # post-norm only: the module whose output is resid_mid


_LLAMA_LIKE = dict(
    layers="layers",
    embed="embed_tokens",
    pos_embed=None,
    ln_final="norm",
    attn="self_attn",
    out_proj="self_attn.o_proj",
    mlp_act="mlp.act_fn",
    mlp_out="mlp.down_proj",
    norm="rms",
    residual="pre",
)

FAMILIES: tuple[Family, ...] = (
    Family(
        name="GPT-2",
        model_types=("gpt2",),
        layers="h",
        embed="wte",
        pos_embed="wpe",
        ln_final="ln_f",
        attn="attn",
        out_proj="attn.c_proj",
        mlp_act="mlp.act",
        mlp_out="mlp.c_proj",
        norm="ln",
        residual="pre",
    ),
    Family(
        name="GPT-NeoX (Pythia)",
        model_types=("gpt_neox",),
        layers="layers",
        embed="embed_in",
        pos_embed=None,
        ln_final="final_layer_norm",
        attn="attention",
        out_proj="attention.dense",
        mlp_act="mlp.act",
        mlp_out="mlp.dense_4h_to_h",
        norm="ln",
        residual="parallel",  # "pre" when config.use_parallel_residual is False, see detect()
    ),
    Family(name="Llama", model_types=("llama",), **_LLAMA_LIKE),
    Family(name="Mistral", model_types=("mistral",), **_LLAMA_LIKE),
    Family(name="Qwen2", model_types=("qwen2",), **_LLAMA_LIKE),
    Family(
        name="BERT",
        model_types=("bert",),
        layers="encoder.layer",
        embed="embeddings.word_embeddings",
        pos_embed="embeddings.position_embeddings",
        ln_final=None,
        attn="attention.self",
        out_proj="attention.output.dense",
        mlp_act="intermediate.intermediate_act_fn",
        mlp_out="output.dense",
        norm="ln",
        residual="post",
        resid_mid="attention.output",
    ),
)


def supported() -> str:
    """A one-line list of the supported families, for error messages."""
    return ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in FAMILIES)


def detect(hf_model: nn.Module) -> Family:
    """The family table for ``hf_model``; a ValueError naming its class otherwise."""
    config = getattr(hf_model, "config", None)
    model_type = getattr(config, "model_type", None)
    for fam in FAMILIES:
        if model_type in fam.model_types:
            if fam.model_types == ("gpt_neox",) and not getattr(
                config, "use_parallel_residual", True
            ):
                fam = Family(**{**fam.__dict__, "residual": "pre"})
            return fam
    raise ValueError(
        f"mechscope.wrap does not support {type(hf_model).__name__} "
        f"(config.model_type={model_type!r}). Supported families: {supported()}. "
        f"For other architectures, open an issue with the model name."
    )


def as_in_out(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A projection's weight as ``[d_in, d_out]`` and its bias (or None).

    ``nn.Linear`` stores ``[d_out, d_in]``; GPT-2's ``Conv1D`` stores ``[d_in, d_out]``.
    """
    if type(module).__name__ == "Conv1D":
        return module.weight, module.bias
    if isinstance(module, nn.Linear):
        return module.weight.T, module.bias
    raise TypeError(f"Expected nn.Linear or Conv1D, got {type(module).__name__}.")


def norm_eps(module: nn.Module) -> float:
    """Epsilon of a LayerNorm (``eps``) or an HF RMSNorm (``variance_epsilon``)."""
    for attr in ("eps", "variance_epsilon", "epsilon"):
        if hasattr(module, attr):
            return float(getattr(module, attr))
    raise TypeError(f"Cannot read the epsilon of {type(module).__name__}.")
