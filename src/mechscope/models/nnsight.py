"""``mechscope.wrap(nnsight_model)``: DESIGN.md hook names on an ``nnsight.LanguageModel``.

nnsight (https://nnsight.net) runs a model inside ``with lm.trace(...)`` blocks, locally or
on NDIF's hosted models (``remote=True``). Wrapping gives an :class:`NNsightModel`: the hook
names, shapes, cache, weights and tokens of ``mechscope.wrap(hf_model, tokenizer)`` (the same
families and module paths), but every forward pass is exactly one nnsight trace, and hooks
fire from inside it (:mod:`._nnsight_plan`), so every analysis and widget runs unchanged::

    lm = nnsight.LanguageModel("meta-llama/Llama-3.1-8B")         # or (hf_model, tokenizer=tok)
    model = mechscope.load(lm, backend="nnsight", remote=True)     # or mechscope.wrap(lm)
    activation_patch(model, clean, corrupted, metric, "resid_pre")  # <= n_layers + 1 traces

Requests: a run (forward, ``run_with_cache``, ``run_with_hooks``) is one trace. An
activation-patching sweep is two traces for the clean and corrupted runs plus one per batch
of patched copies; copies of several layers share one batch (``batch_size`` / ``memory_mb``
set its size), so a sweep whose copies fit in ``n_layers - 1`` batches stays within
``n_layers + 1`` traces. There is no prefix reuse (``PrefixReuse``): copies run whole.

Remote (``remote=True``): passed unchanged to every ``lm.trace``. nnsight reads the NDIF API
key from ``NDIF_API_KEY`` or its config file (``nnsight.CONFIG.set_default_api_key``);
mechscope never reads it into anything it keeps, and checks only that one is set and that
the host answers, before any trace. ``remote="local"`` is nnsight's dry run of the remote
path (the trace serialized and deserialized as NDIF would, local modules hidden, then run
here; no key needed): try a notebook with it before spending requests. mechscope's tests
(no network) send each remote trace through nnsight's own serialization to a stand-in
server that runs the body on copies of what it captured and answers as NDIF does.

Hooks in a remote trace run on the server, on copies, so what they store stays there. Hooks
marked read-only (``fn.mechscope_read_only = True``; ``run_with_cache``'s, path patching's
and the attribution methods' recording hooks are, see :mod:`mechscope.hooks`) therefore do
not run in the trace: it saves the activation each would have seen (``nnsight.save``) and
they run here once it returns, in forward order (:mod:`._nnsight_plan`; the dry run
``"local"`` does the same). Unmarked hooks (patching, steering, ablation: they edit) run in
the trace. Gradients are taken inside the trace (:meth:`NNsightModel.metric_grads`: a zero
leaf added at each hook point, the metric and ``torch.autograd.grad`` in the same trace
body), so only activations and gradients come back. The metric (and the backward pass)
runs where the model runs, so it must be a function of the logits alone (mechscope.metrics').

Weights: NDIF's client model is weightless (``LanguageModel(repo_id)``: meta tensors;
:attr:`NNsightModel.weightless`), so what reads weights asks the server inside a trace
(:mod:`._nnsight_readout`): the logit lens reads out (final norm, unembedding) in the trace
that records the residual stream (1 trace; back: fp32 logits ``[layer + 1, batch, pos,
d_vocab]``, for Llama-3.1-8B 17 MB per position, never ``W_U``'s 1.05 GB); direct logit
attribution on a remote cache fetches the answer / wrong ids' ``W_U`` rows (norm weight
folded), their offsets and, by head, ``W_O`` projected on them (1 trace, a few KB; 8B:
~0.5 MB per prompt). ``model.fetch(fn, *args)`` runs any ``fn(model, *args)`` there (e.g.
``circuits.qk_circuit``, one layer a trace); ``mechscope.circuits`` on the weightless model
raises, naming that fix, before any request.

Runs remotely, in no more traces than locally, with the local numbers to 1e-5 (tested through
a stand-in server that runs nnsight's own serialization, against a weightless client):
``run_with_cache``, ``activation_patch``, ``attribution_patch``, ``path_patch``,
``integrated_gradients`` / ``saliency``, ``steer`` / ``steering_sweep``, ``logit_lens``,
``direct_logit_attribution``, what reads a cache (probes, mean ablation). Not remotely:
feature circuits (the spliced SAE's hook points fire on the server's copies: they raise before
any request), the tuned lens, weight analyses except through ``fetch``. Not exercised against
the real service: whether NDIF runs a request with gradients enabled (the stand-in does;
under ``torch.inference_mode`` ``metric_grads`` would raise there), and mechscope's functions
in the trace body reach NDIF by reference (the server needs mechscope installed, or
``nnsight.register(mechscope)`` to ship it by value).

Packing for requests: a remote model's passes do not run on this CPU
(``request_memory_mb``), so its sweeps fill a request up to ``REMOTE_MEMORY_MB`` (4096 MB of
activations at 4 bytes a value; ``memory_mb=`` / ``batch_size=`` override it): a per-head
``z`` sweep of Llama-3.1-8B on 15 tokens is 214 copies a request, 8 traces (66 packed as on
a CPU). Its copies come back as one metric value each (:meth:`NNsightModel.copy_metric`),
not as their logits (bf16: 0.25 MB per position and copy).

Not reachable: per-head ``attn.hook_q / k / v / attn_scores / pattern`` on an attention
module whose forward has no ``attention_interface(...)`` call (raises NotImplementedError
naming the hook). Reading them makes nnsight instrument that attention module's forward
(``envoy.source``; inert outside a trace).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import torch

from .. import _core
from ..hooks import model_lock
from . import _hf_families, _hf_routing, _nnsight_plan, _nnsight_readout
from .hf import HFModel

INSTALL = 'pip install "mechscope[nnsight]"'
# Activation memory of one remote forward pass (MB, at mechscope's estimate of 4 bytes per
# value, mechscope._patching_sites.bytes_per_sequence): NDIF runs a request on GPUs that hold
# the model's weights plus room for activations, not in this machine's memory. Llama-3.1-8B
# on 15 tokens: ~20 MB a sequence, so ~200 patched copies a request.
REMOTE_MEMORY_MB = 4096
KEY_HELP = (
    "get a key at https://login.ndif.us, then set the environment variable NDIF_API_KEY "
    "(or call nnsight.CONFIG.set_default_api_key(key) once)"
)


def require_nnsight():
    """Import nnsight, or raise an ImportError naming the extra to install."""
    try:
        import nnsight
    except ImportError as err:
        raise ImportError(
            f"The nnsight backend needs nnsight (>= 0.8), which is not installed. Install it "
            f"with {INSTALL}."
        ) from err
    return nnsight


def is_nnsight(model) -> bool:
    """Whether ``model`` is an nnsight model (decided without importing nnsight)."""
    return any(c.__module__.split(".")[0] == "nnsight" for c in type(model).__mro__)


def check_remote() -> None:
    """Before any remote work: an API key is configured and NDIF's host answers.

    Raises ValueError (no key) or ConnectionError (host unreachable), each naming the fix.
    """
    from nnsight import CONFIG

    if not CONFIG.API.APIKEY:
        raise ValueError(f"remote=True needs an NDIF API key and none is set: {KEY_HELP}.")
    url = urlparse(CONFIG.API.HOST)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=5).close()
    except OSError as err:
        raise ConnectionError(
            f"remote=True: NDIF at {CONFIG.API.HOST} cannot be reached ({err}). Check the "
            f"network connection (and NDIF_HOST if you set it), or run locally with "
            f"remote=False on a model that fits this machine."
        ) from err


def _guarded(name: str, weight: str):
    """HFModel's weight accessor ``name``, refused on a weightless model (see ``_guard``)."""

    def read(self, *args):
        self._guard(f"{name} ({weight})")
        return getattr(HFModel, name)(self, *args)

    read.__name__, read.__doc__ = name, getattr(HFModel, name).__doc__
    return read


class NNsightModel(HFModel):
    """An nnsight ``LanguageModel`` with mechscope's hook names. Build with ``mechscope.wrap``
    or ``mechscope.load(..., backend="nnsight")``. ``model.lm`` is the nnsight model."""

    # No PrefixReuse: a restart mid-model is not a trace. Sweeps run whole copies, packed.
    prefix_state = None
    forward_suffix = None

    def __init__(self, lm, tokenizer=None, remote: bool | str = False):
        hf = lm._module
        fam = _hf_families.detect(hf)
        if fam.residual == "post" or hf.get_output_embeddings() is None:
            decoders = ", ".join(f.name for f in _hf_families.FAMILIES if f.residual != "post")
            raise ValueError(
                f"The nnsight backend maps causal language models; {type(hf).__name__} "
                f"({fam.name}) is not one. Supported: {decoders}. Use mechscope.wrap(hf_model, "
                f"tokenizer) for encoders."
            )
        super().__init__(hf, tokenizer if tokenizer is not None else lm.tokenizer)
        self.lm = lm  # an nnsight Envoy, not an nn.Module: no second module tree
        self.remote = remote

    def __repr__(self) -> str:
        c = self.cfg
        return (
            f"NNsightModel({type(self.hf_model).__name__}, family={c.family!r}, "
            f"n_layers={c.n_layers}, remote={self.remote})"
        )

    @property
    def request_memory_mb(self) -> int | None:
        """Activation memory (MB) of one forward pass where it runs, when that is not this
        machine: ``REMOTE_MEMORY_MB`` with ``remote=True`` (and its dry run ``"local"``), None
        locally. Patching sweeps read it: their default ``memory_mb``, and no CPU cap on rows
        per pass (the logits come back to this CPU; the pass did not run on it)."""
        return REMOTE_MEMORY_MB if self.remote else None

    @property
    def device(self) -> torch.device:
        dev = super().device
        return torch.device("cpu") if dev.type == "meta" else dev  # remote: inputs stay here

    @property
    def weightless(self) -> bool:
        """True for nnsight's meta copy of a remote model (``LanguageModel(repo_id)``): no
        weights here, so weight reads go through :meth:`fetch` (False on the server)."""
        return _nnsight_readout.is_weightless(self.hf_model)

    def forward(self, tokens, attention_mask=None) -> torch.Tensor:
        """Logits ``[batch, pos, d_vocab]`` of one nnsight trace (hooks fire inside it)."""
        return self._run(tokens, attention_mask)

    def fetch(self, fn, *args):
        """``fn(model, *args)`` computed where the weights are, in one trace on a one-token
        input (remote: on NDIF, where ``model`` has its weights), and brought back. E.g.
        ``model.fetch(mechscope.circuits.qk_circuit, 3)`` gives layer 3's QK circuit of a
        remote model (fn must be importable on the server, or shipped by value)."""
        if self.remote is True:
            check_remote()
        one = torch.zeros(1, 1, dtype=torch.long)
        with model_lock(self), torch.no_grad(), self.lm.trace(input_ids=one, remote=self.remote):
            out = _nnsight_plan.nnsight_save(fn(self, *args))
        return out

    def lens_logits(self, tokens, names: list[str], readout, attention_mask=None):
        """Logit-lens logits ``[len(names), batch, pos, d_vocab]`` (float32) from one trace:
        the residual streams ``names`` are read out (``readout(analysis, stack)``, the final
        norm and unembedding) where the model runs, so no weights come here."""
        reduce = _nnsight_readout.LensReadout(self, names, readout)
        with torch.no_grad():
            return self._run(tokens, attention_mask, reduce=reduce, keep=names)

    def _guard(self, what: str) -> None:
        if self.weightless:
            raise ValueError(
                f"{what} reads weights, and this remote model is nnsight's weightless (meta) "
                f"copy: they are on NDIF's server. Compute what you need there with "
                f"model.fetch(fn, *args) (fn(model, *args) runs in a trace on the server), or "
                f"load the model locally (mechscope.load(name, backend='nnsight'))."
            )

    head_output_weights = _guarded("head_output_weights", "W_O")
    attn_output_bias = _guarded("attn_output_bias", "b_O")
    unembed_weights = _guarded("unembed_weights", "W_U")
    unembed_bias = _guarded("unembed_bias", "b_U")

    def copy_metric(self, tokens, metric, n: int) -> torch.Tensor:
        """``[n]``: the mean of ``metric`` over each of ``n`` equal row blocks of ``tokens``
        (patched copies of the same prompts, copy-major), from one trace that computes it
        where the model runs, so only ``n`` numbers come back, not the copies' logits.
        metric: logits ``[batch, pos, d_vocab]`` -> ``[batch]`` (it runs on the server when
        remote: a mechscope.metrics helper, or any function of the logits alone)."""
        return self._run(tokens, reduce=_PerCopy(metric, n))

    def metric_grads(self, tokens, names, metric):
        """One trace with its backward pass inside: ``(value, {name: activation}, {name:
        gradient})``. value = ``metric(logits)`` (detached); gradients are of ``value.sum()``
        w.r.t. each hook point's value after its hooks (zeros where it has no path to the
        value). Used by attribution patching and integrated gradients, so that the gradient
        is taken where the forward pass ran (on NDIF with ``remote=True``): only the
        activations and gradients come back. Raises ValueError when ``metric`` is not
        differentiable."""
        names = list(names)
        with torch.enable_grad():
            value, acts, grads = self._run(tokens, reduce=metric, grads=names)
        if grads is None:
            raise ValueError(
                "metric(logits) is not differentiable (it does not depend on the logits "
                "through autograd, e.g. it calls .item(), argmax or torch.no_grad). "
                "Gradients need a differentiable metric such as logit_diff."
            )
        out = {
            n: torch.zeros_like(acts[n]) if g is None else g
            for n, g in zip(names, grads, strict=True)
        }
        return value, acts, out

    def _run(self, tokens, attention_mask=None, reduce=None, grads=(), keep=()):
        ids, mask = self._prepare(tokens, attention_mask)
        inputs = {"input_ids": ids, "use_cache": False}
        if mask is not None:
            inputs["attention_mask"] = mask
            inputs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        if self.remote is True:
            check_remote()
        active = {n for n, p in self._hook_points.items() if p._forward_hooks}
        active |= set(grads) | set(keep)
        base = _nnsight_plan.envoy_at(self.lm, self.hf_model.base_model_prefix)
        with model_lock(self), _hf_routing.eval_mode(self.hf_model.modules()):
            return _traced(self, base, inputs, active, reduce, tuple(grads), tuple(keep))


class _PerCopy:
    """logits ``[n * batch, ...]`` -> ``[n]``: the mean metric of each copy (copy-major)."""

    def __init__(self, metric, n: int):
        self.metric, self.n = metric, n

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        batch = logits.shape[0] // self.n
        parts = logits.view(self.n, batch, *logits.shape[1:]).unbind(0)
        return torch.stack([_core.metric_values(self.metric, p, batch).mean() for p in parts])


def _traced(model, base, inputs: dict, active: set[str], reduce=None, grads=(), keep=()):
    """One trace: hooks fire inside it; returns the logits, or ``reduce(logits)`` computed
    inside the trace, or with ``grads`` ``(reduce(logits), activations, gradients)``, or
    with ``keep`` ``reduce({name: activation})`` (the points ``keep`` names)."""
    import nnsight

    lm = model.lm
    # Remote: read-only hooks (run_with_cache's) wait for the values the trace brings back.
    plan = _nnsight_plan.read_only_plan(model, active) if model.remote else None
    batch = inputs["input_ids"].shape[0]
    with lm.trace(**inputs, remote=model.remote):
        fire = _nnsight_plan.Firing(plan, grads, keep)
        if active:
            _nnsight_plan.fire_points(model, base, active, batch, fire)
        saved = nnsight.save(fire.saved)
        out = lm.output.logits
        if keep:  # a readout of kept activations (the logit lens), where the weights are
            out = reduce(fire.acts)
        elif reduce is not None:
            out = reduce(out)
        if grads:  # the backward pass, where the forward ran (autograd, as locally)
            leaves = [fire.leaves[n] for n in grads]
            g = None
            if out.requires_grad:
                g = torch.autograd.grad(out.sum(), leaves, allow_unused=True)
            out = (out.detach(), fire.acts, g)
        out = nnsight.save(out)
    _nnsight_plan.replay(model, saved)
    return out


def wrap_nnsight(lm, tokenizer=None, remote: bool | str = False) -> NNsightModel:
    """``mechscope.wrap`` for an nnsight ``LanguageModel`` / ``TransformersModel``."""
    require_nnsight()
    if isinstance(lm, NNsightModel):
        return lm
    if not hasattr(lm, "trace") or not isinstance(getattr(lm, "_module", None), torch.nn.Module):
        raise TypeError(
            f"wrap() recognised {type(lm).__name__} as an nnsight object, but it is not a "
            f"model with .trace(): wrap an nnsight.LanguageModel (LanguageModel(hf_model, "
            f"tokenizer=tok) or LanguageModel('repo/id'))."
        )
    if remote not in (True, False, "local"):
        raise ValueError(
            f"remote={remote!r}: expected False (run here), True (run on NDIF) or 'local' "
            f"(nnsight's dry run of the remote path, here)."
        )
    if remote is True:
        check_remote()
    return NNsightModel(lm, tokenizer, remote=remote)


def load_nnsight(name, device: str = "cpu", *, remote: bool | str = False, **hf_kwargs):
    """``mechscope.load(name_or_model, backend="nnsight", remote=...)``.

    An nnsight model is wrapped as it is. A name: ``remote=True`` builds nnsight's weightless
    (meta) copy of a model NDIF hosts, after checking the key, the host and that NDIF runs
    it; ``remote=False`` loads the Hugging Face checkpoint (a local directory, or the hub
    when online) into this process, as ``mechscope.load(name)`` does, and wraps it.
    """
    nnsight = require_nnsight()
    if is_nnsight(name):
        return wrap_nnsight(name, remote=remote)
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(
            f"load(..., backend='nnsight') takes a model name or an nnsight.LanguageModel, got "
            f"{type(name).__name__}."
        )
    name = os.fspath(name)
    if remote is True:
        check_remote()
        if not nnsight.is_model_running(name):
            raise ValueError(
                f"load({name!r}, remote=True): NDIF does not run {name!r} now. See the hosted "
                f"models with print(nnsight.status()), or load it locally with remote=False."
            )
        return wrap_nnsight(_language_model(nnsight, name, **hf_kwargs), remote=True)
    from .. import _load

    hf = _load.load(name, device=device, **hf_kwargs)
    if not isinstance(hf, HFModel):
        raise ValueError(
            f"load({name!r}, backend='nnsight'): {name!r} is a mechscope zoo model, which "
            f"nnsight cannot run (it is not a Hugging Face model). Load it without backend=."
        )
    return wrap_nnsight(_language_model(nnsight, hf.hf_model, tokenizer=hf.tokenizer))


def _language_model(nnsight, model, **kwargs):
    """nnsight's causal-LM wrapper: ``TransformersModel(..., task="text-generation")`` where it
    exists (nnsight >= 0.8 deprecates ``LanguageModel`` for it), else ``LanguageModel``."""
    if hasattr(nnsight, "TransformersModel"):
        return nnsight.TransformersModel(model, task="text-generation", **kwargs)
    return nnsight.LanguageModel(model, **kwargs)
