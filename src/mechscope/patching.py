"""Activation patching: which activations carry the difference between two prompts?

Run a *clean* prompt (``"The Colosseum is in"``) and a *corrupted* one of the same token
length (``"The Louvre is in"``). Then copy one activation from one run into the other and
measure how much of the behaviour moves with it (review section 4.3; Meng et al. 2022,
"Locating and Editing Factual Associations in GPT"; Wang et al. 2022, "Interpretability in
the Wild"; Heimersheim & Nanda 2024, "How to use and interpret activation patching").

- ``direction="denoising"``: clean activations into the corrupted run. A high value means
  the site is *sufficient* to restore the clean behaviour.
- ``direction="noising"``: corrupted activations into the clean run. A large drop means the
  site is *necessary* for it.

Sites (one value per layer and ...):

============  ==============================================  ====================
site          activation patched                              result axes
============  ==============================================  ====================
resid_pre     ``blocks.L.hook_resid_pre`` at one position     [layer, pos]
resid_mid     ``blocks.L.hook_resid_mid`` at one position     [layer, pos]
resid_post    ``blocks.L.hook_resid_post`` at one position    [layer, pos]
attn_out      ``blocks.L.hook_attn_out`` at one position      [layer, pos]
mlp_out       ``blocks.L.hook_mlp_out`` at one position       [layer, pos]
z             ``blocks.L.attn.hook_z``, one head, all pos     [layer, head]
z_by_pos      ``blocks.L.attn.hook_z``, one head, one pos     [layer, head, pos]
pattern       ``blocks.L.attn.hook_pattern``, one head        [layer, head]
============  ==============================================  ====================

Exact and fast. TransformerLens runs one full forward pass per patch; here the patched
copies run many at a time in batched passes (chunked to ``memory_mb`` or ``batch_size``), and
on causal models (mechscope's ``Transformer`` and wrapped HF decoders) no copy recomputes
what it shares with the target run (``mechscope._patch_runner``):

- a copy patched in block L enters the pass at block L, from the target run's residual;
  copies of every layer share one pass, each joining at its own block;
- a copy patched at position p computes positions p.. only, attending to the target run's
  keys and values before p (the ``mechscope.protocols.PrefixReuse`` capability; HF's
  key/value cache on wrapped models);
- patches before the first token where the prompts differ, or that write what is already
  there, change nothing and are not run;
- logits, and the last block's MLP, are computed only at the positions the metric reads
  (found by probing it), and resid_post / mlp_out patches start at the next block.

Results equal one forward pass per patch to float32 rounding (tests/unit/test_patching.py,
tests/integration/test_patching_hf.py, test_patching_prefix_hf.py); bench/patching.py
compares the speed with TransformerLens.

Example::

    metric = logit_diff(answer_ids, wrong_ids)  # one id per prompt, or one for all
    with torch.no_grad():
        clean_v, corrupted_v = metric(model(clean)), metric(model(corrupted))
    result = activation_patch(model, clean, corrupted,
                              normalized(metric, clean_v, corrupted_v), site="resid_pre")
    result.to_widget()  # layers x positions, token labels
"""

from __future__ import annotations

import torch

from ._core import as_tokens, check_pair, check_site, metric_values
from ._patch_runner import TargetRun, first_difference
from ._patching_sites import SITES, hook_name
from ._sweep import PatchResult, check_direction, labelled, sweep
from .hooks import unknown_name_error
from .metrics import Metric

__all__ = ["SITES", "PatchResult", "activation_patch"]


# ---- patching -----------------------------------------------------------------------------


def activation_patch(
    model,
    clean,
    corrupted,
    metric: Metric,
    site: str = "resid_pre",
    *,
    direction: str = "denoising",
    batch_size: int | None = None,
    memory_mb: float | None = None,
) -> PatchResult:
    """Patch ``site`` at every layer (and position / head) and record ``metric``.

    model: a HookedModel (``mechscope.Transformer`` or ``mechscope.wrap(...)``).
    clean, corrupted: text, a list of texts, or token ids ``[pos]`` / ``[batch, pos]``, of
        the same shape.
    metric: ``fn(logits [batch, pos, d_vocab]) -> [batch]``, e.g.
        :func:`mechscope.metrics.logit_diff`, optionally :func:`mechscope.metrics.normalized`. Each value is its mean over the prompts.
    site: one of :data:`SITES` (see the module docstring).
    direction: ``"denoising"`` (clean activations into the corrupted run) or ``"noising"``
        (corrupted into clean).
    batch_size: at most this many sequences (patched copies x prompts) per forward pass.
    memory_mb: or a rough activation-memory budget per forward pass (default 512 MB).

    Returns a :class:`PatchResult`. The model is left as it came (hooks, weights, mode).
    """
    check_direction(direction)
    if site not in SITES:
        raise unknown_name_error(site, SITES, what="patching site")
    check_site(model, site)
    clean_t = as_tokens(model, clean, name="clean")
    corrupted_t = as_tokens(model, corrupted, name="corrupted")
    check_pair(model, clean_t, corrupted_t)
    batch, n_pos = clean_t.shape
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    source_t, target_t = (
        (clean_t, corrupted_t) if direction == "denoising" else (corrupted_t, clean_t)
    )

    site_names = [hook_name(site, layer) for layer in range(n_layers)]
    with torch.no_grad():
        source_logits, source_cache = model.run_with_cache(source_t, names=site_names)
        target = TargetRun(model, target_t, site_names)
        source_v = metric_values(metric, source_logits, batch).mean().item()
        target_v = metric_values(metric, target.logits, batch).mean().item()
        # Causal models: before the first differing token the two runs are identical, so a
        # patch there changes nothing (its value is the target run's) and a patch anywhere
        # needs positions from max(its position, that token) on only.
        first = first_difference(source_t, target_t.to(source_t.device)) if target.causal else 0
        values = sweep(
            model, site, target, source_cache, metric, first, target_v, batch_size, memory_mb
        )

    clean_v, corrupted_v = (
        (source_v, target_v) if direction == "denoising" else (target_v, source_v)
    )
    return labelled(model, site, values, clean_t, n_heads, direction, clean_v, corrupted_v)
