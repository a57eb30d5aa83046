"""A readable, hookable decoder-only transformer (nanoGPT-sized).

Every activation a student may want is a :class:`~mechscope.hooks.HookPoint`
module at the TransformerLens-style path listed in DESIGN.md, e.g.
``blocks.0.attn.hook_pattern``. Weights are stored per head (``W_Q`` is
``[head, d_model, d_head]``) so the QK and OV circuits of Elhage et al. (2021),
"A Mathematical Framework for Transformer Circuits", can be read off directly.

All zoo models use this class.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .._core import as_tokens
from ..hooks import HookFn, HookPoint, locked_hooks, model_lock, name_hook_points
from ._tl_compat import TLConfig, TLModel, bind_config
from ._transformer_prefix import PrefixMixin


@dataclass(frozen=True)
class TransformerConfig(TLConfig):
    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    d_vocab: int
    n_ctx: int  # longest sequence the positional embedding covers
    d_mlp: int | None = None  # None = attention-only (no MLP blocks at all)
    # "gelu", "relu", "solu" (SoLU + LayerNorm) or "bilinear" ((x W_in + b_in) * (x W_gate),
    # no nonlinearity: Sharkey 2023); used only with MLPs
    act_fn: str = "gelu"
    normalization: str | None = (
        "ln"  # "ln" = LayerNorm before each sublayer and the unembed; None = none
    )
    positional: str = "learned"  # learned absolute position embedding
    init_std: float = 0.02
    seed: int = 0  # seed of the initial weights

    def __post_init__(self):
        if self.act_fn not in ("gelu", "relu", "solu", "bilinear"):
            raise ValueError(
                f"act_fn={self.act_fn!r}; expected 'gelu', 'relu', 'solu' or 'bilinear'."
            )
        if self.normalization not in ("ln", None):
            raise ValueError(f"normalization={self.normalization!r}; expected 'ln' or None.")
        if self.positional != "learned":
            raise ValueError(f"positional={self.positional!r}; only 'learned' is supported.")

    @property
    def attn_only(self) -> bool:
        return self.d_mlp is None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TransformerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"Unknown TransformerConfig fields {unknown}; valid fields: {sorted(known)}."
            )
        return cls(**d)


class LayerNorm(nn.Module):
    """LayerNorm with a hook on the normalised (pre-affine) vector."""

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))
        self.hook_normalized = HookPoint()

    def forward(self, x):  # x: [batch, pos, d_model]
        x = x - x.mean(-1, keepdim=True)
        x = x / (x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()
        return self.hook_normalized(x) * self.w + self.b


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        H, D, Dh = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_Q = nn.Parameter(torch.empty(H, D, Dh))
        self.W_K = nn.Parameter(torch.empty(H, D, Dh))
        self.W_V = nn.Parameter(torch.empty(H, D, Dh))
        self.W_O = nn.Parameter(torch.empty(H, Dh, D))
        self.b_Q = nn.Parameter(torch.zeros(H, Dh))
        self.b_K = nn.Parameter(torch.zeros(H, Dh))
        self.b_V = nn.Parameter(torch.zeros(H, Dh))
        self.b_O = nn.Parameter(torch.zeros(D))
        self.scale = 1.0 / math.sqrt(Dh)
        mask = torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool))
        self.register_buffer("mask", mask, persistent=False)
        self.hook_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        self.hook_attn_scores = (
            HookPoint()
        )  # [batch, head, query_pos, key_pos], pre-softmax, masked
        self.hook_pattern = HookPoint()  # [batch, head, query_pos, key_pos], rows sum to 1
        self.hook_z = HookPoint()  # [batch, pos, head, d_head], pattern-weighted values

    def forward(self, x, past=None):  # x: [batch, pos, d_model]
        # past: (k, v) of the S positions before x, each [batch, S, head, d_head] (the
        # hook_k / hook_v of an earlier run): x then holds positions S..S+pos only.
        T = x.shape[1]
        q = self.hook_q(torch.einsum("bpd,hde->bphe", x, self.W_Q) + self.b_Q)
        k = self.hook_k(torch.einsum("bpd,hde->bphe", x, self.W_K) + self.b_K)
        v = self.hook_v(torch.einsum("bpd,hde->bphe", x, self.W_V) + self.b_V)
        S = 0
        if past is not None:
            S = past[0].shape[1]
            k, v = torch.cat([past[0], k], dim=1), torch.cat([past[1], v], dim=1)
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) * self.scale
        # Causal: a query sees itself and earlier keys only. -inf, so masked weights are exactly 0.
        scores = scores.masked_fill(~self.mask[S : S + T, : S + T], float("-inf"))
        scores = self.hook_attn_scores(scores)
        pattern = self.hook_pattern(scores.softmax(dim=-1))
        z = self.hook_z(torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        return torch.einsum("bqhe,hed->bqd", z, self.W_O) + self.b_O


def solu(pre: torch.Tensor) -> torch.Tensor:
    """Softmax Linear Unit, ``x * softmax(x)`` over the neuron dim (``[..., d_mlp]``).

    Elhage et al. (2022), "Softmax Linear Units": neurons compete for the softmax's mass,
    so few fire per token. In a model it is followed by a LayerNorm (``act_fn="solu"``).
    """
    return pre * pre.softmax(dim=-1)


class MLP(nn.Module):
    """``W_out act(W_in x + b_in) + b_out``. With ``act_fn="solu"`` the activation is SoLU then
    a LayerNorm over the neurons (Elhage et al. 2022): ``hook_post`` is after that LayerNorm
    (what ``W_out`` reads), the SoLU output before it is ``hook_mid`` (TransformerLens' name),
    and the LayerNorm is ``ln`` (weights ``ln.w``, ``ln.b``). With ``act_fn="bilinear"`` there is
    no nonlinearity: ``hook_post = hook_pre * hook_pre_linear`` with ``hook_pre_linear = x @ W_gate``
    (Sharkey 2023; Pearce et al. 2024), so the weights alone define each output's quadratic form."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.act_fn = cfg.act_fn
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        if cfg.act_fn == "solu":
            self.hook_mid = HookPoint()  # [batch, pos, d_mlp], SoLU output before the LayerNorm
            self.ln = LayerNorm(cfg.d_mlp)
        if cfg.act_fn == "bilinear":  # registered last: other models' init draws are unchanged
            self.W_gate = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
            self.hook_pre_linear = HookPoint()  # [batch, pos, d_mlp], x @ W_gate
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]

    def act(self, pre: torch.Tensor) -> torch.Tensor:
        """The nonlinearity, ``hook_pre`` -> ``hook_post`` values (``[..., d_mlp]``)."""
        if self.act_fn == "bilinear":
            raise ValueError(
                "act_fn='bilinear' has no elementwise activation: hook_post = hook_pre * "
                "(x @ W_gate) needs the MLP's input x; call the MLP itself (mlp(x))."
            )
        if self.act_fn == "solu":
            return self.ln(self.hook_mid(solu(pre)))
        return F.gelu(pre) if self.act_fn == "gelu" else F.relu(pre)

    def forward(self, x):
        pre = self.hook_pre(x @ self.W_in + self.b_in)
        if self.act_fn == "bilinear":
            post = self.hook_post(pre * self.hook_pre_linear(x @ self.W_gate))
            return post @ self.W_out + self.b_out
        return self.hook_post(self.act(pre)) @ self.W_out + self.b_out


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        norm = (lambda: LayerNorm(cfg.d_model)) if cfg.normalization == "ln" else nn.Identity
        self.ln1 = norm()
        self.attn = Attention(cfg)
        self.hook_resid_pre = HookPoint()  # [batch, pos, d_model]
        self.hook_attn_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_post = HookPoint()  # [batch, pos, d_model]
        self.has_mlp = not cfg.attn_only
        if self.has_mlp:
            self.ln2 = norm()
            self.mlp = MLP(cfg)
            self.hook_resid_mid = HookPoint()  # [batch, pos, d_model]
            self.hook_mlp_out = HookPoint()  # [batch, pos, d_model]

    def forward(self, resid, past=None):
        resid = self.hook_resid_pre(resid)
        x = self.ln1(resid)
        # Only pass ``past`` when there is one: the plain call stays ``attn(x)``.
        resid = resid + self.hook_attn_out(self.attn(x) if past is None else self.attn(x, past))
        if self.has_mlp:
            resid = self.hook_resid_mid(resid)
            resid = resid + self.hook_mlp_out(self.mlp(self.ln2(resid)))
        return self.hook_resid_post(resid)


class Transformer(PrefixMixin, TLModel, nn.Module):
    """Decoder-only transformer with hook points at TransformerLens-style paths.

    ``forward(tokens)`` takes ``[batch, pos]`` (or ``[pos]``) integer tokens and
    returns logits ``[batch, pos, d_vocab]``. ``tokenizer`` is optional; zoo
    models carry a :class:`~mechscope.models.tokenizer.WordTokenizer`.
    ``run_with_cache``, ``run_with_hooks`` and TransformerLens' other model idioms
    (``model.W_Q``, ``to_single_token``, ``add_hook``, ...) come from
    :class:`~mechscope.models._tl_compat.TLModel`.
    """

    def __init__(self, cfg: TransformerConfig, tokenizer=None):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))
        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        self.hook_pos_embed = HookPoint()  # [batch, pos, d_model]
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        if cfg.normalization == "ln":
            self.ln_final = LayerNorm(cfg.d_model)
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab))
        self._hook_points = name_hook_points(self)
        bind_config(self)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Seeded init: normal(0, init_std) matrices, zero biases, unit LayerNorm gains."""
        gen = torch.Generator().manual_seed(self.cfg.seed)
        for p in self.parameters():
            if p.dim() >= 2:
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=gen) * self.cfg.init_std)

    # ---- tokens -------------------------------------------------------------

    def _check_tokens(self, tokens) -> torch.Tensor:
        return as_tokens(self, tokens).to(self.W_E.device)

    def _need_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError("This model has no tokenizer; pass integer token ids instead of text.")
        return self.tokenizer

    def to_tokens(self, text: str | Sequence[str], prepend_bos: bool = True) -> torch.Tensor:
        """Text -> ``[1, pos]`` token ids (``[batch, pos]`` for a list of texts of equal length)."""
        return self._need_tokenizer().encode(text, prepend_bos=prepend_bos)

    def to_str_tokens(self, tokens, prepend_bos: bool = True) -> list[str]:
        """Text or ``[pos]`` / ``[1, pos]`` ids -> the list of token strings."""
        tok = self._need_tokenizer()
        if isinstance(tokens, str):
            tokens = tok.encode(tokens, prepend_bos=prepend_bos)
        return tok.decode_list(self._one_sequence(tokens))

    # ---- weights, for the cache's analysis (same accessors as HFModel) -------

    def head_output_weights(self, layer: int) -> torch.Tensor:
        """Per-head output matrices ``W_O``: ``[head, d_head, d_model]``."""
        return self.blocks[layer].attn.W_O

    def attn_output_bias(self, layer: int) -> torch.Tensor:
        """Attention output bias ``b_O``: ``[d_model]``."""
        return self.blocks[layer].attn.b_O

    def unembed_weights(self) -> torch.Tensor:
        """Unembedding ``W_U``: ``[d_model, d_vocab]``."""
        return self.W_U

    def unembed_bias(self) -> torch.Tensor:
        """Unembedding bias ``b_U``: ``[d_vocab]``."""
        return self.b_U

    def final_norm(self) -> dict | None:
        """The final norm as ``{"kind": "ln", "eps", "weight", "bias"}``; None without one."""
        if self.cfg.normalization != "ln":
            return None
        ln = self.ln_final
        return {"kind": "ln", "eps": ln.eps, "weight": ln.w, "bias": ln.b}

    # ---- forward and hooks --------------------------------------------------

    def forward(self, tokens) -> torch.Tensor:
        tokens = self._check_tokens(tokens)
        B, T = tokens.shape
        # Both embeddings are fresh tensors (indexing copies; the position rows are repeated, not
        # expanded), so a hook or a cache edit in place can never write into W_E or W_pos.
        embed = self.W_E[tokens]  # [batch, pos, d_model]
        pos_embed = self.W_pos[:T].repeat(B, 1, 1)  # [batch, pos, d_model]
        with model_lock(self):
            resid = self.hook_embed(embed) + self.hook_pos_embed(pos_embed)
            return self.forward_from(0, resid)

    def forward_from(
        self, layer: int, resid: torch.Tensor, past=None, *, pos=None, enter=None
    ) -> torch.Tensor:
        """Logits from ``resid`` = ``blocks.{layer}.hook_resid_pre`` ``[batch, pos, d_model]``.

        The tail of ``forward``: patching sweeps start here to skip the layers before a patch.
        past: optionally, for each block from ``layer`` on, the ``(k, v)`` of the ``S``
        positions *before* ``resid`` (``[batch, S, head, d_head]`` each, e.g. an earlier
        run's ``attn.hook_k`` / ``hook_v``); ``resid`` then holds positions ``S..`` only and
        so do the logits. Causal attention makes this equal to the same positions of a full
        run, which lets a patch at position ``p`` recompute positions ``p..`` only.
        pos: optionally, unembed only these positions of ``resid`` (a list or 1-D
        tensor of indices): logits ``[batch, len(positions), d_vocab]``.
        enter: optionally ``{block: resid}``: more sequences that join the batch (after the
        rows already there) at the input of a later block; ``past`` entries must then match
        the batch each block sees. One pass serves patches at many layers.
        """
        with model_lock(self):
            for i, block in enumerate(self.blocks[layer:], start=layer):
                if enter and i in enter and i != layer:
                    resid = torch.cat([resid, enter[i]])
                resid = block(resid) if past is None else block(resid, past[i - layer])
            if pos is not None:
                resid = resid[:, pos]
            if self.cfg.normalization == "ln":
                resid = self.ln_final(resid)
            return resid @ self.W_U + self.b_U

    def hook_names(self) -> list[str]:
        """All hook point names, in forward order."""
        return list(self._hook_points)

    def hooks(self, fwd_hooks: Iterable[tuple[str | Callable[[str], bool], HookFn]]):
        """Context manager: ``with model.hooks([(name, fn), ...]): model(tokens)``.

        ``name`` may be a hook name or a predicate on names. Hooks are removed on
        exit, also when the forward pass raises. The block holds the model's lock
        (:func:`mechscope.hooks.model_lock`): other threads' runs wait until it exits.
        """
        return locked_hooks(self, self._hook_points, fwd_hooks)
