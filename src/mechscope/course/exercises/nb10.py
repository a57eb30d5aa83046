"""Exercises of notebook 10 (causal scrubbing and abstraction): resampling, interchange and
the LoReFT edit.

Chan et al. (2022), "Causal Scrubbing"; Geiger et al. (2021), "Causal Abstractions of Neural
Networks"; Geiger, Wu, Potts, Icard & Goodman (2023), "Finding Alignments Between
Interpretable Causal Variables and Distributed Neural Representations" (DAS); Wu et al.
(2024), "ReFT: Representation Finetuning for Language Models".
"""

from __future__ import annotations

from functools import cache

import torch

from . import exercise

NB = "10_causal_scrubbing_and_abstraction"


@cache
def _induction():
    import mechscope

    return mechscope.load("induction-2l")


@cache
def _equality():
    import mechscope

    return mechscope.load("equality-das")


def _random_tokens(seed: int, shape=(4, 12)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(1, _induction().cfg.d_vocab, shape, generator=gen)


# ---- 1. a resampling hook ----------------------------------------------------------------


def _resample_cases():
    from mechscope.toy.induction import repeated_random_tokens

    model = _induction()
    repeated = repeated_random_tokens(6, 8, model.cfg.d_vocab, seed=3)
    return {
        "induction-2l, random tokens [4, 12], L0H2, seed 0": dict(
            model=model, tokens=_random_tokens(0), layer=0, head=2, seed=0
        ),
        "induction-2l, [BOS, 8 words, the same 8] x 6, L1H1, seed 1": dict(
            model=model, tokens=repeated, layer=1, head=1, seed=1
        ),
    }


def _resampled(model, tokens, layer, index):
    hook = f"blocks.{layer}.attn.hook_z"
    _, cache_ = model.run_with_cache(tokens, names=[hook])
    z = cache_[hook]

    def write(act, hook_point):
        act = act.clone()
        act[index[0]] = z[index[1]]
        return act

    with model.hooks([(hook, write)]):
        return model(tokens)


def _perm(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def _all_heads(model, tokens, layer, head, seed):
    perm = _perm(tokens.shape[0], seed)
    return _resampled(model, tokens, layer, ((slice(None),), (perm,)))


def _positions(model, tokens, layer, head, seed):
    perm = _perm(tokens.shape[1], seed)
    return _resampled(
        model, tokens, layer, ((slice(None), slice(None), head), (slice(None), perm, head))
    )


def _unpermuted(model, tokens, layer, head, seed):
    return _resampled(
        model, tokens, layer, ((slice(None), slice(None), head), (slice(None), slice(None), head))
    )


@exercise(
    "10.resample_head",
    notebook=NB,
    title="A resampling hook",
    difficulty=2,
    minutes=15,
    cases=_resample_cases,
    mistakes=[
        (
            "resampled every head of the layer, not only `head`",
            lambda model, tokens, layer, head, *, seed: _all_heads(
                model, tokens, layer, head, seed
            ),
        ),
        (
            "shuffled positions within each sequence instead of taking another sequence",
            lambda model, tokens, layer, head, *, seed: _positions(
                model, tokens, layer, head, seed
            ),
        ),
        (
            "the permutation was never applied: each sequence got its own activation back",
            lambda model, tokens, layer, head, *, seed: _unpermuted(
                model, tokens, layer, head, seed
            ),
        ),
    ],
)
def resample_head(model, tokens, layer: int, head: int, *, seed: int) -> torch.Tensor:
    """Logits ``[batch, pos, d_vocab]`` of ``model`` on ``tokens`` ``[batch, pos]`` with head
    ``head``'s output (``blocks.{layer}.attn.hook_z``, ``[batch, pos, head, d_head]``) in
    sequence ``i`` replaced by its value on sequence ``perm[i]``, where
    ``perm = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))``."""
    hook = f"blocks.{layer}.attn.hook_z"
    perm = torch.randperm(tokens.shape[0], generator=torch.Generator().manual_seed(seed))
    _, cache_ = model.run_with_cache(tokens, names=[hook])
    z = cache_[hook]

    def resample(act, hook_point):
        act = act.clone()
        act[:, :, head] = z[perm, :, head]
        return act

    with model.hooks([(hook, resample)]):
        return model(tokens)


# ---- 2. the score ------------------------------------------------------------------------


def _recovered_cases():
    gen = torch.Generator().manual_seed(1)
    return {
        "scrubbed losses [5], full 0.03, random 4.4": (torch.rand(5, generator=gen) * 4, 0.03, 4.4),
        "one scrubbed loss, full 1.2, random 2.0": (1.5, 1.2, 2.0),
    }


@exercise(
    "10.loss_recovered",
    notebook=NB,
    title="The fraction of the loss recovered",
    difficulty=1,
    minutes=5,
    cases=_recovered_cases,
    mistakes=[
        (
            "1 minus the answer: the fraction of the loss *not* recovered",
            lambda loss_scrubbed, loss_full, loss_random_baseline: (
                (loss_scrubbed - loss_full) / (loss_random_baseline - loss_full)
            ),
        ),
        (
            "normalised by the random baseline alone, not by the gap to the full model's loss",
            lambda loss_scrubbed, loss_full, loss_random_baseline: (
                (loss_random_baseline - loss_scrubbed) / loss_random_baseline
            ),
        ),
    ],
)
def loss_recovered(loss_scrubbed, loss_full, loss_random_baseline):
    """``(random - scrubbed) / (random - full)``: 1 when the hypothesis keeps the whole loss
    of the full model, 0 when it is as bad as resampling everything (Chan et al. 2022).
    Floats, or tensors of one shape (e.g. ``[hypothesis]``) in, the same out."""
    return (loss_random_baseline - loss_scrubbed) / (loss_random_baseline - loss_full)


# ---- 3. the subspace interchange ---------------------------------------------------------


def _basis(d: int, k: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(d, k, generator=gen))[0]


def _interchange_cases():
    gen = torch.Generator().manual_seed(2)
    return {
        "base, source [6, 16], basis [16, 3]": (
            torch.randn(6, 16, generator=gen),
            torch.randn(6, 16, generator=gen),
            _basis(16, 3, 0),
        ),
        "base, source [2, 3, 8], basis [8, 1]": (
            torch.randn(2, 3, 8, generator=gen),
            torch.randn(2, 3, 8, generator=gen),
            _basis(8, 1, 1),
        ),
    }


@exercise(
    "10.interchange",
    notebook=NB,
    title="Swap a subspace: the DAS intervention",
    difficulty=2,
    minutes=10,
    cases=_interchange_cases,
    mistakes=[
        (
            "swapped the whole vector: the basis was ignored",
            lambda base_acts, source_acts, basis: source_acts,
        ),
        (
            "added the source's component without removing the base's: use (source - base)",
            lambda base_acts, source_acts, basis: base_acts + source_acts @ basis @ basis.T,
        ),
        (
            "base and source swapped: the source keeps everything but the subspace",
            lambda base_acts, source_acts, basis: (
                source_acts + (base_acts - source_acts) @ basis @ basis.T
            ),
        ),
    ],
)
def interchange(base_acts: torch.Tensor, source_acts: torch.Tensor, basis: torch.Tensor):
    """base_acts, source_acts ``[..., d]``, basis ``[d, k]`` (orthonormal columns) -> ``[..., d]``:
    the base vector with its component in the subspace replaced by the source's,
    ``base + B B^T (source - base)`` (Geiger et al. 2023)."""
    return base_acts + (source_acts - base_acts) @ basis @ basis.T


# ---- 4. the interchange intervention on a model -------------------------------------------


def _intervention_cases():
    from mechscope.toy import equality as eq

    pairs = eq.counterfactual_pairs(8, "V1", "heldout", seed=1)
    base, source = eq.to_tokens(pairs.base), eq.to_tokens(pairs.source)
    return {
        "equality-das, 8 pairs, blocks.0.hook_resid_post, pos 2, a random basis [64, 2]": dict(
            model=_equality(),
            base=base,
            source=source,
            hook="blocks.0.hook_resid_post",
            pos=2,
            basis=_basis(64, 2, 3),
        ),
        "equality-das, 8 pairs, blocks.1.hook_resid_post, pos 3, the whole vector": dict(
            model=_equality(),
            base=base,
            source=source,
            hook="blocks.1.hook_resid_post",
            pos=3,
            basis=None,
        ),
    }


def _swapped(model, base, source, hook, where, basis):
    _, cache_ = model.run_with_cache(source, names=[hook])
    src = cache_[hook][:, where]

    def swap(act, hook_point):
        act = act.clone()
        h = act[:, where]
        act[:, where] = src if basis is None else h + (src - h) @ basis @ basis.T
        return act

    with model.hooks([(hook, swap)]):
        return model(base)


@exercise(
    "10.interchange_logits",
    notebook=NB,
    title="An interchange intervention on the network",
    difficulty=2,
    minutes=15,
    cases=_intervention_cases,
    mistakes=[
        (
            "intervened at every position, not only pos",
            lambda model, base, source, *, hook, pos, basis: _swapped(
                model, base, source, hook, slice(None), basis
            ),
        ),
        (
            "swapped the whole vector: the basis was ignored",
            lambda model, base, source, *, hook, pos, basis: _swapped(
                model, base, source, hook, pos, None
            ),
        ),
        (
            "base and source swapped: ran the source with the base's activation",
            lambda model, base, source, *, hook, pos, basis: _swapped(
                model, source, base, hook, pos, basis
            ),
        ),
    ],
)
def interchange_logits(model, base, source, *, hook: str, pos: int, basis=None) -> torch.Tensor:
    """Logits ``[batch, pos, d_vocab]`` of ``model`` on ``base`` (``[batch, pos]`` tokens) with
    the activation at ``hook``, position ``pos``, taken from ``source``: only within the
    subspace of ``basis`` (``[d_model, k]``, orthonormal) when given, else the whole vector
    (Geiger et al. 2021's interchange intervention)."""
    _, source_cache = model.run_with_cache(source, names=[hook])
    src = source_cache[hook][:, pos]  # [batch, d_model]

    def swap(act, hook_point):
        act = act.clone()
        h = act[:, pos]
        act[:, pos] = src if basis is None else h + (src - h) @ basis @ basis.T
        return act

    with model.hooks([(hook, swap)]):
        return model(base)


# ---- 5. the LoReFT edit --------------------------------------------------------------------


def _loreft_cases():
    gen = torch.Generator().manual_seed(5)
    return {
        "h [6, 16], rank 3": (
            torch.randn(6, 16, generator=gen),
            _basis(16, 3, 4).T.contiguous(),
            torch.randn(3, 16, generator=gen),
            torch.randn(3, generator=gen),
        ),
        "h [2, 5, 8], rank 1": (
            torch.randn(2, 5, 8, generator=gen),
            _basis(8, 1, 5).T.contiguous(),
            torch.randn(1, 8, generator=gen),
            torch.randn(1, generator=gen),
        ),
    }


@exercise(
    "10.loreft",
    notebook=NB,
    title="The LoReFT edit",
    difficulty=2,
    minutes=10,
    cases=_loreft_cases,
    mistakes=[
        (
            "added the new coordinates without removing the old ones: subtract R h inside",
            lambda h, R, W, b: h + (h @ W.T + b) @ R,
        ),
        (
            "replaced the whole vector by the subspace's part: keep h outside the subspace",
            lambda h, R, W, b: (h @ W.T + b) @ R,
        ),
        (
            "wrote the new coordinates along W's rows instead of R's: map back with R",
            lambda h, R, W, b: h + (h @ W.T + b - h @ R.T) @ W,
        ),
    ],
)
def loreft(h: torch.Tensor, R: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h ``[..., d]``, R ``[r, d]`` (orthonormal rows), W ``[r, d]``, b ``[r]`` -> ``[..., d]``:
    ``h + R^T (W h + b - R h)``, the LoReFT edit (Wu et al. 2024): along R's rows the
    coordinates become ``W h + b``, orthogonal to them ``h`` is kept."""
    return h + (h @ W.T + b - h @ R.T) @ R
