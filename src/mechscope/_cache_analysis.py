"""Residual-stream analysis on an ActivationCache (mixed into ``ActivationCache``).

Vocabulary (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits"):
in a pre-norm transformer the residual stream is a sum. The final residual is

    embed (+ pos_embed) + sum_l attn_out[l] + sum_l mlp_out[l]

and each ``attn_out[l]`` is itself ``sum_h z[l, h] @ W_O[l, h] + b_O[l]``. The final
norm is linear once its scale is fixed, so with the scale of the real final residual
(TransformerLens' ``ln_final.hook_scale``) each component maps to logits on its own:
that is direct logit attribution. ``accumulated_resid`` with ``apply_ln`` is the logit
lens (nostalgebraist 2020): each partial sum normalised as if it were the last.

TransformerLens' ``return_labels=True`` is accepted and changes nothing: the labels always
come back. Shapes: a *stack* is ``[component, batch, pos, d_model]`` (``[component, pos, d_model]``
for caches made with ``remove_batch_dim``); ``pos_slice`` (an int, a slice or a list of
positions) indexes the ``pos`` axis, an int drops it. Every method returns
``(stack, labels)`` except ``apply_ln_to_stack`` and ``logit_attrs``.

Post-norm encoders (BERT) have no additive residual stream: the methods that need one
raise. Parallel-residual models (Pythia) are additive and have no ``hook_resid_mid``.
"""

from __future__ import annotations

import weakref

import torch

# id(model) -> (weights' key, weakref to the model, W_U with the norm folded in); see _unembed.
_UNEMBED_CACHE: dict = {}

PosSlice = int | slice | list[int] | torch.Tensor | None


def _cache_hint(name: str) -> str:
    return (
        f"Cache it: model.run_with_cache(tokens, names=[..., {name!r}]) "
        f"(or names=None for every hook point)."
    )


class CacheAnalysis:
    # provided by ActivationCache
    model = None
    has_batch_dim: bool = True
    _store: dict

    # ---- plumbing -----------------------------------------------------------

    def _model(self, what: str):
        if self.model is None:
            raise ValueError(
                f"{what} needs the model (its weights and config); this cache has none. "
                f"Use the cache from model.run_with_cache(...)."
            )
        return self.model

    def _need(self, name: str, what: str) -> torch.Tensor:
        if name not in self._store:
            raise KeyError(
                f"{what} needs {name!r}, which is not in this cache. {_cache_hint(name)}"
            )
        return self._store[name]

    def _additive(self, what: str):
        model = self._model(what)
        if getattr(model.cfg, "residual", "pre") == "post":
            raise ValueError(
                f"{what} needs an additive residual stream, but {model.cfg.family} is post-norm "
                f"(a LayerNorm after every residual add), so components do not sum to it. "
                f"Per-head outputs still work: cache.stack_head_results()."
            )
        return model

    def _n_layers(self, layer: int | None) -> int:
        n = self._model("this method").cfg.n_layers
        if layer is None:
            return n
        if not -n <= layer <= n:
            raise ValueError(f"layer={layer} is out of range for a {n}-layer model (0..{n}).")
        return layer % (n + 1) if layer < 0 else layer

    def _pos(self, x: torch.Tensor, pos_slice: PosSlice) -> torch.Tensor:
        """Index the pos axis of ``[..., pos, d]`` (pos is the second-to-last axis)."""
        if pos_slice is None:
            return x
        if isinstance(pos_slice, list):
            pos_slice = torch.tensor(pos_slice, device=x.device)
        return x[..., pos_slice, :]

    def _resid_name(self, layer: int) -> str:
        """The residual stream entering ``layer`` (``n_layers``: the final residual)."""
        n = self.model.cfg.n_layers
        return f"blocks.{layer}.hook_resid_pre" if layer < n else f"blocks.{n - 1}.hook_resid_post"

    def _has(self, name: str) -> bool:
        return name in set(self.model.hook_names())

    # ---- stacks -------------------------------------------------------------

    def accumulated_resid(
        self,
        layer: int | None = None,
        incl_mid: bool = False,
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        return_labels: bool = True,
    ) -> tuple[torch.Tensor, list[str]]:
        """The residual stream before each layer up to ``layer`` (None: all, plus the final).

        Returns ``([component, batch, pos, d_model], labels)`` with labels ``"0_pre"``,
        (``"0_mid"`` with ``incl_mid``), ..., ``"final_post"``. With ``apply_ln`` each entry
        goes through the final norm as if it were the final residual (its own scale): the
        logit lens. Needs ``blocks.{i}.hook_resid_pre`` (and ``_mid``, the last ``_post``).
        """
        _labels_always(return_labels, "accumulated_resid")
        model = self._additive("accumulated_resid")
        top = self._n_layers(layer)
        n = model.cfg.n_layers
        comps, labels = [], []
        for i in range(min(top, n)):
            comps.append(self._need(f"blocks.{i}.hook_resid_pre", "accumulated_resid"))
            labels.append(f"{i}_pre")
            if incl_mid:
                if not self._has(f"blocks.{i}.hook_resid_mid"):
                    raise ValueError(
                        f"incl_mid=True, but {model.cfg.family} has no hook_resid_mid "
                        f"(parallel attention and MLP read the same residual)."
                    )
                comps.append(self._need(f"blocks.{i}.hook_resid_mid", "accumulated_resid"))
                labels.append(f"{i}_mid")
        if top == n:
            comps.append(self._need(self._resid_name(n), "accumulated_resid"))
            labels.append("final_post")
        stack = self._pos(torch.stack(comps), pos_slice)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, recompute_scale=True)
        return stack, labels

    def decompose_resid(
        self,
        layer: int | None = None,
        mode: str = "all",
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        incl_embeds: bool = True,
        return_labels: bool = True,
    ) -> tuple[torch.Tensor, list[str]]:
        """The residual stream entering ``layer`` (None: the final one), split into the
        outputs that add up to it: ``embed``, ``pos_embed`` (learned positions only),
        ``{i}_attn_out`` and ``{i}_mlp_out`` for each earlier layer.

        mode: "all", "attn" (embeddings and attention outputs) or "mlp". With mode "all"
        and ``incl_embeds`` the components sum to the residual stream (``apply_ln``: to
        its normalised value, using the real residual's scale). Returns
        ``([component, batch, pos, d_model], labels)``.
        """
        _labels_always(return_labels, "decompose_resid")
        if mode not in ("all", "attn", "mlp"):
            raise ValueError(f"mode={mode!r}; expected 'all', 'attn' or 'mlp'.")
        self._additive("decompose_resid")
        top = self._n_layers(layer)
        comps, labels = [], []
        if incl_embeds:
            for name in ("hook_embed", "hook_pos_embed"):
                if self._has(name):
                    comps.append(self._need(name, "decompose_resid"))
                    labels.append(name[len("hook_") :])
        for i in range(top):
            if mode in ("all", "attn"):
                comps.append(self._need(f"blocks.{i}.hook_attn_out", "decompose_resid"))
                labels.append(f"{i}_attn_out")
            if mode in ("all", "mlp") and self._has(f"blocks.{i}.hook_mlp_out"):
                comps.append(self._need(f"blocks.{i}.hook_mlp_out", "decompose_resid"))
                labels.append(f"{i}_mlp_out")
        if not comps:
            raise ValueError(f"decompose_resid(layer={layer}, mode={mode!r}) has no components.")
        ref = max(comps, key=lambda t: t.dim())  # position embeddings broadcast to the batch
        stack = self._pos(torch.stack([c.expand_as(ref) for c in comps]), pos_slice)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer=top, pos_slice=pos_slice)
        return stack, labels

    def stack_head_results(
        self,
        layer: int | None = None,
        pos_slice: PosSlice = None,
        apply_ln: bool = False,
        return_labels: bool = True,
    ) -> tuple[torch.Tensor, list[str]]:
        """Each head's write to the residual stream, ``z[l, h] @ W_O[l, h]``, for layers
        below ``layer`` (None: all). Returns ``([layer * head, batch, pos, d_model],
        ["L0H0", "L0H1", ...])``. Per layer, the heads plus ``model.attn_output_bias(l)``
        sum to ``hook_attn_out``. Needs ``blocks.{i}.attn.hook_z``.
        """
        _labels_always(return_labels, "stack_head_results")
        model = self._model("stack_head_results")
        top = self._n_layers(layer)
        parts, labels = [], []
        for i in range(top):
            z = self._need(f"blocks.{i}.attn.hook_z", "stack_head_results")
            w_o = (
                model.head_output_weights(i).detach().to(z.device, z.dtype)
            )  # [head, d_head, d_model]
            parts.append(torch.einsum("...hd,hdm->h...m", z, w_o))
            labels += [f"L{i}H{h}" for h in range(w_o.shape[0])]
        if not parts:
            raise ValueError("stack_head_results(layer=0) has no heads; use layer >= 1 or None.")
        stack = self._pos(torch.cat(parts), pos_slice)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer=None, pos_slice=pos_slice)
        return stack, labels

    # ---- the final norm and the unembedding ---------------------------------

    def _final_scale(self, layer: int, pos_slice: PosSlice, kind: str, eps: float) -> torch.Tensor:
        n = self.model.cfg.n_layers
        if layer == n and "ln_final.hook_scale" in self._store:
            return self._pos(self._store["ln_final.hook_scale"], pos_slice)
        name = self._resid_name(layer)
        if name not in self._store:
            which = "'ln_final.hook_scale' (where the model has it) or " if layer == n else ""
            raise KeyError(
                f"apply_ln needs the norm scale of the residual stream at layer {layer}: "
                f"{which}{name!r}, and it is not cached. {_cache_hint(name)}"
            )
        return _norm_scale(self._pos(self._store[name], pos_slice), kind, eps)

    def apply_ln_to_stack(
        self,
        stack: torch.Tensor,
        layer: int | None = None,
        pos_slice: PosSlice = None,
        recompute_scale: bool = False,
    ) -> torch.Tensor:
        """Put each component of ``stack`` ``[component, ..., d_model]`` through the final
        norm *without* its weight and bias: centre it (LayerNorm; RMSNorm does not centre)
        and divide by the scale of the residual stream entering ``layer`` (None: the
        final residual, from ``ln_final.hook_scale`` or ``blocks.{n-1}.hook_resid_post``).
        The weight is folded into ``logit_attrs``; the bias into ``unembed_offset``.
        ``recompute_scale``: use each component's own scale instead (the logit lens).
        ``pos_slice`` must be the one the stack was made with.
        """
        model = self._additive("apply_ln_to_stack")
        norm = model.final_norm()
        if norm is None:
            return stack
        kind, eps = norm["kind"], norm["eps"]
        x = stack - stack.mean(-1, keepdim=True) if kind == "ln" else stack
        if recompute_scale:
            return x / _norm_scale(stack, kind, eps)
        scale = self._final_scale(self._n_layers(layer), pos_slice, kind, eps)
        return x / scale.to(x.dtype)

    def _unembed(self) -> torch.Tensor:
        """``W_U`` with the final norm's weight folded in: ``[d_model, d_vocab]``.

        Cached per weight tensor (a live app reads the lens on every edit; for GPT-2 the
        product is 38M multiplies): the cache is keyed by the weights' storage and their
        in-place version counters, so editing either weight recomputes it."""
        model = self._model("logit_attrs")
        w_u = model.unembed_weights().detach()
        norm = model.final_norm()
        g = None if norm is None or norm["weight"] is None else norm["weight"].detach()
        key = tuple(
            None if t is None else (t.untyped_storage().data_ptr(), t.shape, t.stride(),
                                    t.dtype, t.device, t._version)
            for t in (w_u, g)
        )  # fmt: skip
        hit = _UNEMBED_CACHE.get(id(model))
        if hit is not None and hit[0] == key and hit[1]() is model:
            return hit[2]
        out = w_u if g is None else g[:, None] * w_u
        if len(_UNEMBED_CACHE) >= 4:
            _UNEMBED_CACHE.pop(next(iter(_UNEMBED_CACHE)))
        if hit is None:  # the entry (a GPT-2 W_U is 150 MB) goes when the model does
            weakref.finalize(model, _UNEMBED_CACHE.pop, id(model), None)
        _UNEMBED_CACHE[id(model)] = (key, weakref.ref(model), out)
        return out

    def _unembed_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` of ``_unembed().T``, ``[*ids.shape, d_model]``, without scaling the
        whole ``[d_model, d_vocab]`` matrix (for GPT-2's 50,257 tokens that costs more than the
        attribution itself)."""
        model = self._model("logit_attrs")
        rows = model.unembed_weights().detach().T.to(ids.device)[ids]
        norm = model.final_norm()
        if norm is not None and norm["weight"] is not None:
            rows = rows * norm["weight"].detach().to(rows.device)
        return rows

    def logit_attrs(
        self,
        stack: torch.Tensor,
        tokens: int | torch.Tensor,
        incorrect_tokens: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Direct logit attribution: each component's contribution to the logit of ``tokens``.

        stack: ``[component, batch, pos, d_model]`` with the final norm applied
        (``apply_ln=True``); tokens: ids broadcastable to ``stack.shape[1:-1]`` (e.g.
        ``[batch, pos]`` for every position, or one int). With ``incorrect_tokens`` the
        result is the logit difference. Returns ``[component, batch, pos]``. Summed over a
        full decomposition plus ``unembed_offset()[tokens]`` it gives the logits.
        """
        tokens = torch.as_tensor(tokens, device=stack.device)
        direction = self._unembed_rows(tokens).to(stack.dtype)  # [*tokens.shape, d_model]
        if incorrect_tokens is not None:
            wrong = torch.as_tensor(incorrect_tokens, device=stack.device)
            direction = direction - self._unembed_rows(wrong).to(stack.dtype)
        try:
            return (stack * direction).sum(-1)
        except RuntimeError as err:
            raise ValueError(
                f"tokens of shape {list(tokens.shape)} do not broadcast against the stack "
                f"{list(stack.shape)}: give one id, or ids shaped like stack.shape[1:-1] "
                f"({list(stack.shape[1:-1])})."
            ) from err

    def unembed_offset(self) -> torch.Tensor:
        """The part of every logit no component gets: ``b_norm @ W_U + b_U``, ``[d_vocab]``."""
        model = self._model("unembed_offset")
        w_u = model.unembed_weights().detach()
        out = model.unembed_bias().detach().clone()
        norm = model.final_norm()
        if norm is not None and norm["bias"] is not None:
            out = out + norm["bias"].detach() @ w_u
        return out


def _labels_always(return_labels, what: str) -> None:
    """TransformerLens' ``return_labels=True`` is accepted; the labels always come back."""
    if return_labels is not True:
        raise ValueError(
            f"{what}(return_labels={return_labels!r}): mechscope always returns (stack, labels) "
            f"(one return type per function); write `stack, _ = cache.{what}(...)`."
        )


def _norm_scale(x: torch.Tensor, kind: str, eps: float) -> torch.Tensor:
    """sqrt(var + eps) (LayerNorm) or sqrt(mean(x^2) + eps) (RMSNorm) over d_model, keepdim."""
    xf = x.float()
    if kind == "ln":
        xf = xf - xf.mean(-1, keepdim=True)
    return (xf.pow(2).mean(-1, keepdim=True) + eps).sqrt().to(x.dtype)
