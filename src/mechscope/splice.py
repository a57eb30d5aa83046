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
from mechscope.transcoder import Transcoder

__all__ = ["SPLICE_POINTS", "SplicedModel", "splice"]

_KINDS = (SAE, Transcoder)

# The hook points a spliced SAE adds after its hook, in forward order.
SPLICE_POINTS = (
    "hook_sae_input",
    "hook_sae_acts",
    "hook_sae_recons",
    "hook_sae_error",
    "hook_sae_output",
)


class _Splice(nn.Module):
    """One SAE or transcoder at one hook, with its five hook points (see the module docstring).

    ``forward(x_in, y)``: ``x_in`` is what it reads, ``y`` the activation it replaces (the
    same tensor for an SAE; the MLP's input and output for a transcoder).
    """

    def __init__(self, sae):
        super().__init__()
        self.sae = sae
        for name in SPLICE_POINTS:
            setattr(self, name, HookPoint())

    def forward(self, x_in: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        same = x_in is y
        x_in = self.hook_sae_input(x_in)
        if same:
            y = x_in
        acts0 = self.sae.encode(x_in)
        recons0 = self.sae.decode(acts0)
        # The error is its own node, a function of the activations only: with autograd on it
        # gets its own encode / decode, so the gradient reaching the features is only the
        # decoder's, and d output / d input is the original model's.
        own = torch.is_grad_enabled()
        error0 = y - (self.sae.decode(self.sae.encode(x_in)) if own else recons0).to(y.dtype)
        error = self.hook_sae_error(error0)
        acts = self.hook_sae_acts(acts0)
        recons = self.hook_sae_recons(recons0 if acts is acts0 else self.sae.decode(acts))
        # Exactly y when nothing was changed: both differences are then exact zeros.
        return self.hook_sae_output(
            y.detach() + (recons - recons0.detach()).to(y.dtype) + (error - error0.detach())
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
        inputs: dict[str, torch.Tensor] = {}  # a transcoder's input, read earlier in the pass

        def rewrite(act, hook):
            splice_ = self._hooks_at[hook.name]
            read = getattr(splice_.sae.cfg, "input_site", None)
            return splice_(act if read is None else inputs.pop(hook.name), act)

        def keep_input(out_hook):
            def keep(act, hook):
                inputs[out_hook] = act

            return keep

        reads = [
            (m.sae.cfg.input_site, keep_input(h))
            for h, m in self._hooks_at.items()
            if getattr(m.sae.cfg, "input_site", None) is not None
        ]
        with self.base.hooks(reads + [(h, rewrite) for h in self._hooks_at]):
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
    """Splice SAEs or transcoders into ``model`` so their features and errors are hook points.

    Args:
        model: any HookedModel (mechscope's ``Transformer``, ``mechscope.wrap(...)``, ...).
        sae: an :class:`~mechscope.sae.SAE` whose ``cfg.site`` names the hook it reads, a
            :class:`~mechscope.transcoder.Transcoder` (reads ``cfg.input_site``, replaces
            ``cfg.site``), a list of them, or a mapping ``{hook: SAE or Transcoder}``.

    Returns:
        A :class:`SplicedModel` with the new hook points ``{hook}.hook_sae_input / _acts /
        _recons / _error / _output``; its logits equal ``model``'s exactly until a hook
        changes a feature or the error term.
    """
    if isinstance(sae, _KINDS):
        sae = [sae]
    if isinstance(sae, Mapping):
        saes = dict(sae)
    elif isinstance(sae, (list, tuple)):
        saes = {}
        for s in sae:
            if not isinstance(s, _KINDS):
                raise TypeError(f"sae: {type(s).__name__} in the list, expected SAEs/transcoders.")
            if not s.cfg.site:
                raise ValueError(
                    "sae: this SAE does not say which hook it reads (sae.cfg.site is None). "
                    "Pass a mapping instead: splice(model, {'blocks.0.hook_resid_post': sae})."
                )
            if s.cfg.site in saes:
                raise ValueError(f"sae: two SAEs/transcoders replace {s.cfg.site!r}.")
            saes[s.cfg.site] = s
    else:
        raise TypeError(
            f"sae must be a mechscope SAE or Transcoder, a list of them, or a mapping "
            f"{{hook: SAE}}, got {type(sae).__name__}."
        )
    reads = {h: getattr(s.cfg, "input_site", None) for h, s in saes.items()}
    widths = _hook_widths(model, sorted({*saes, *(r for r in reads.values() if r)}))
    for hook, s in saes.items():
        if not isinstance(s, _KINDS):
            raise TypeError(f"sae[{hook!r}] is {type(s).__name__}, expected a mechscope SAE.")
        read = reads[hook] or hook
        want_out = getattr(s.cfg, "d_out", s.cfg.d_in)
        if widths[read] != s.cfg.d_in or widths[hook] != want_out:
            raise ValueError(
                f"sae: the one for {hook!r} reads d_in={s.cfg.d_in} from {read!r} (width "
                f"{widths[read]}) and writes {want_out} to {hook!r} (width {widths[hook]}). "
                f"Splice it where the widths match, or use one trained on {hook!r}."
            )
    return SplicedModel(model, saes)


def _hook_widths(model, hooks: list[str]) -> dict[str, int]:
    """Last-dimension width of each hook's activation, from one forward on two tokens."""
    valid = list(model.hook_names())
    for h in hooks:
        resolve_names(h, valid, what="sae")  # unknown hook: KeyError with close names
    probe = torch.full((1, 2), model.cfg.d_vocab - 1)  # any ids but the pad id (often 0)
    _, cache = cached_run(model, probe, hooks)
    return {h: int(cache[h].shape[-1]) for h in hooks}
