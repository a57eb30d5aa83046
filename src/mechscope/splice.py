"""Features as hook points: splice sparse autoencoders into any HookedModel.

``splice(model, sae)`` returns a :class:`SplicedModel`, itself a ``HookedModel``: the same
forward pass, but at each spliced hook ``H`` the activation ``x`` is rewritten as the SAE's
reconstruction plus its error term, and both, with the feature activations, are hook points of
their own (SAELens's names, so course material transfers)::

    H.hook_sae_input   [batch, pos, d_in]     x, what the SAE reads
    H.hook_sae_acts    [batch, pos, d_sae]    feature activations, encode(x)
    H.hook_sae_recons  [batch, pos, d_in]     decode(acts)
    H.hook_sae_error   [batch, pos, d_in]     x - decode(encode(x)), from the unpatched input
    H.hook_sae_output  [batch, pos, d_in]     recons + error, what the model reads on

So ``run_with_cache``, ``activation_patch``, ``ablate``, ``steer`` and ``attribution_patch``
work on features unchanged: ablate feature 7 by zero-ablating ``H.hook_sae_acts`` with a
feature mask, patch the error term, steer along a feature. With nothing changed the output is
exactly ``x`` (computed as ``x + (recons - recons_0) + (error - error_0)``, whose differences
are exact zeros; gradients are those of ``recons + error``), so the spliced model's logits are bit-identical to the original's; change the
features and the model reads ``decode(acts') + error``, the sparse-feature-circuit
decomposition of Marks et al. (2024, "Sparse Feature Circuits").

The user's model is not modified: splicing installs a hook only for the duration of each
forward pass of the ``SplicedModel`` (and removes it in a ``finally``); the SAEs' weights are
used as given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from mechscope.cache import cached_run
from mechscope.hooks import HookPoint, installed_hooks, model_lock, resolve_names
from mechscope.sae import SAE

__all__ = ["SPLICE_POINTS", "SplicedModel", "splice"]

# The hook points a spliced SAE adds after its hook, in forward order.
SPLICE_POINTS = (
    "hook_sae_input",
    "hook_sae_acts",
    "hook_sae_recons",
    "hook_sae_error",
    "hook_sae_output",
)


class _Splice(nn.Module):
    """One SAE at one hook, with its five hook points (see the module docstring)."""

    def __init__(self, sae: SAE):
        super().__init__()
        self.sae = sae
        for name in SPLICE_POINTS:
            setattr(self, name, HookPoint())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hook_sae_input(x)
        acts0 = self.sae.encode(x)
        recons0 = self.sae.decode(acts0)
        # The error is its own node, a function of x only: with autograd on it gets its own
        # encode / decode, so the gradient reaching the features is only the decoder's.
        needs_own = torch.is_grad_enabled()
        error0 = x - (self.sae.decode(self.sae.encode(x)) if needs_own else recons0)
        error = self.hook_sae_error(error0)
        acts = self.hook_sae_acts(acts0)
        recons = self.hook_sae_recons(recons0 if acts is acts0 else self.sae.decode(acts))
        # Exactly x when nothing was changed (both differences are exact zeros), and the
        # gradient of recons + error: d/dx = J + (1 - J) through recons and error, d/dacts
        # through the decoder only.
        return self.hook_sae_output(
            x.detach() + (recons - recons0.detach()) + (error - error0.detach())
        )


class SplicedModel(nn.Module):
    """A HookedModel with SAEs spliced in at some of its hooks; see :func:`splice`.

    ``base`` is the original model (kept by reference, never registered as a submodule, so its
    parameters are not this module's); ``splices`` maps each spliced hook to its SAE.
    """

    def __init__(self, base, sae: Mapping[str, SAE]):
        super().__init__()
        object.__setattr__(self, "base", base)  # not a submodule: no "base." hook names
        self._splices = nn.ModuleDict({_key(h): _Splice(s) for h, s in sae.items()})
        self._hooks_at = {h: self._splices[_key(h)] for h in sae}
        self.cfg = base.cfg
        base_names = list(base.hook_names())
        self._points: dict[str, HookPoint] = {}
        names: list[str] = []
        for n in base_names:
            names.append(n)
            if n in self._hooks_at:
                for p in SPLICE_POINTS:
                    point = getattr(self._hooks_at[n], p)
                    point.name = f"{n}.{p}"
                    self._points[point.name] = point
                    names.append(point.name)
        self._names = names
        self._base_names = set(base_names)

    @property
    def saes(self) -> dict[str, SAE]:
        """``{hook: SAE}`` of every splice."""
        return {h: m.sae for h, m in self._hooks_at.items()}

    @property
    def tokenizer(self):
        return getattr(self.base, "tokenizer", None)

    def to_tokens(self, text, **kwargs) -> torch.Tensor:
        return self.base.to_tokens(text, **kwargs)

    def to_str_tokens(self, tokens, **kwargs) -> list[str]:
        return self.base.to_str_tokens(tokens, **kwargs)

    def hook_names(self) -> list[str]:
        return list(self._names)

    def forward(self, tokens, **kwargs) -> torch.Tensor:
        def rewrite(act, hook):
            return self._hooks_at[hook.name](act)

        with self.base.hooks([(h, rewrite) for h in self._hooks_at]):
            return self.base(tokens, **kwargs)

    @contextlib.contextmanager
    def hooks(self, fwd_hooks) -> Iterator[None]:
        """Install ``[(name or predicate, fn)]`` on the base model's hooks and on the splice
        points alike; everything is removed on exit, even on error."""
        fwd_hooks = list(fwd_hooks) if not isinstance(fwd_hooks, (str, tuple)) else fwd_hooks
        if isinstance(fwd_hooks, (str, tuple)) or any(
            not (isinstance(e, (tuple, list)) and len(e) == 2) for e in fwd_hooks
        ):
            raise TypeError(
                f"fwd_hooks must be a list of (name or predicate, fn) pairs, got {fwd_hooks!r}; "
                f"e.g. [('blocks.0.hook_resid_pre.hook_sae_acts', fn)]."
            )
        base, own = [], []
        for name, fn in fwd_hooks:
            for n in resolve_names(name, self._names, what="fwd_hooks"):
                (own if n in self._points else base).append((n, fn))
        with (
            model_lock(self),
            self.base.hooks(base),
            installed_hooks(self._points, own),
        ):
            yield

    def run_with_cache(self, tokens, names=None, **kwargs):
        return cached_run(self, tokens, names, **kwargs)

    def __repr__(self) -> str:
        spliced = ", ".join(f"{h} ({m.sae.cfg.d_sae} features)" for h, m in self._hooks_at.items())
        return f"SplicedModel({type(self.base).__name__}; SAEs at {spliced})"


def _key(hook: str) -> str:
    return hook.replace(".", "__")  # ModuleDict keys cannot hold dots


def splice(model, sae) -> SplicedModel:
    """Splice SAEs into ``model`` so their features and error terms are hook points.

    Args:
        model: any HookedModel (mechscope's ``Transformer``, ``mechscope.wrap(...)``, ...).
        sae: an :class:`~mechscope.sae.SAE` whose ``cfg.site`` names the hook it reads, or a
            mapping ``{hook: SAE}`` (several SAEs at once).

    Returns:
        A :class:`SplicedModel` with the new hook points ``{hook}.hook_sae_input / _acts /
        _recons / _error / _output``; its logits equal ``model``'s exactly until a hook
        changes a feature or the error term.
    """
    if isinstance(sae, SAE):
        if not sae.cfg.site:
            raise ValueError(
                "sae: this SAE does not say which hook it reads (sae.cfg.site is None). "
                "Pass a mapping instead: splice(model, {'blocks.0.hook_resid_post': sae})."
            )
        saes = {sae.cfg.site: sae}
    elif isinstance(sae, Mapping):
        saes = dict(sae)
    else:
        raise TypeError(
            f"sae must be a mechscope SAE or a mapping {{hook: SAE}}, got {type(sae).__name__}."
        )
    valid = list(model.hook_names())
    widths = _hook_widths(model, list(saes))
    for hook, s in saes.items():
        if not isinstance(s, SAE):
            raise TypeError(f"sae[{hook!r}] is {type(s).__name__}, expected a mechscope SAE.")
        resolve_names(hook, valid, what="sae")  # unknown hook: KeyError with close names
        if widths[hook] != s.cfg.d_in:
            raise ValueError(
                f"sae: the SAE for {hook!r} reads d_in={s.cfg.d_in} features, but that hook's "
                f"activations have width {widths[hook]}. Splice it at a hook of width "
                f"{s.cfg.d_in}, or use an SAE trained on {hook!r}."
            )
    return SplicedModel(model, saes)


def _hook_widths(model, hooks: list[str]) -> dict[str, int]:
    """Last-dimension width of each hook's activation, from one forward on two tokens."""
    valid = list(model.hook_names())
    for h in hooks:
        resolve_names(h, valid, what="sae")
    probe = torch.full((1, 2), model.cfg.d_vocab - 1)  # any ids but the pad id (often 0)
    _, cache = cached_run(model, probe, hooks)
    return {h: int(cache[h].shape[-1]) for h in hooks}
