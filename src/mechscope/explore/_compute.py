"""What the explorer shows, computed from a model and the user's inputs (no widgets here).

Every number comes from the library's own analyses: one ``run_with_cache`` of the prompt
feeds the next-token top-k, the attention patterns and direct logit attribution (per head and
per component, Elhage et al. 2021); ``logit_lens`` (nostalgebraist 2020) reads every layer;
``activation_patch`` (on request) sweeps the corrupted prompt. Bad input raises
:class:`InputError`, whose message the app shows in place of a traceback.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..attribution import LogitAttributionResult, direct_logit_attribution
from ..cache import ActivationCache
from ..lens import LensResult, logit_lens
from ..metrics import logit_diff, normalized
from ..patching import activation_patch
from ..splice import SplicedModel

# The patching sweep of the app: the residual stream entering each block, and what each
# attention layer and MLP writes, each at every position (the three panels of Meng et al. 2022
# and Heimersheim & Nanda 2024). Sites a model lacks (attention-only: no MLP) are left out.
PATCH_SITES = ("resid_pre", "attn_out", "mlp_out")
# How many features of a spliced SAE the features panel offers: the most active on the prompt.
N_FEATURES = 8


class InputError(ValueError):
    """An input the app cannot use; its message is shown in the app, in words."""


@dataclass(frozen=True)
class Inputs:
    """The user's text boxes: ``answer`` / ``wrong`` are token strings, "" for the default."""

    prompt: str
    corrupted: str = ""
    answer: str = ""
    wrong: str = ""


@dataclass(frozen=True)
class Snapshot:
    """Everything the panels show for one set of inputs.

    tokens / corrupted_tokens: ``[1, pos]`` ids; top: the next-token top-k at the last
    position as ``(token, probability)``; answer_id / wrong_id: the ids DLA and patching score
    (``logit(answer) - logit(wrong)``, or ``logit(answer)`` when ``wrong_id`` is None);
    features: ``(names, values [pos, feature])`` of a spliced model's SAEs, or None;
    unavailable: panel -> why this model cannot have it (e.g. the lens on an encoder);
    warning: shown in the app with the panels (a corrupted prompt of another length).
    """

    inputs: Inputs
    tokens: torch.Tensor
    str_tokens: list[str]
    corrupted_tokens: torch.Tensor | None
    top: list[tuple[str, float]]
    answer_id: int
    wrong_id: int | None
    answer_label: str
    wrong_label: str | None
    cache: object
    dla_heads: LogitAttributionResult | None
    dla_components: LogitAttributionResult | None
    lens: LensResult | None
    features: tuple[list[str], torch.Tensor] | None
    unavailable: dict[str, str]
    seconds: float
    warning: str = ""


def prompt_tokens(model, text: str, what: str) -> torch.Tensor:
    """``text`` -> ``[1, pos]`` ids, or an InputError naming ``what`` and the fix."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"The {what} is empty: type a few words.")
    try:
        tokens = model.to_tokens(text)
    except (KeyError, ValueError) as err:
        raise InputError(f"The {what} cannot be tokenized: {_first_line(err)}") from None
    n_ctx = getattr(model.cfg, "n_ctx", None)
    if n_ctx and tokens.shape[-1] > n_ctx:
        raise InputError(
            f"The {what} is {tokens.shape[-1]} tokens, longer than this model's context of "
            f"{n_ctx} tokens (cfg.n_ctx). Shorten it by {tokens.shape[-1] - n_ctx} tokens; the "
            "panels show the last prompt that fit."
        )
    return tokens


def token_id(model, text: str, what: str) -> int | None:
    """One token's id from its string (None for ""), or an InputError: not one token, or
    not in the vocabulary (a tokenizer that maps unknown text to its unknown token)."""
    if not text:
        return None
    try:
        ids = model.to_tokens(text, prepend_bos=False).reshape(-1)
    except (KeyError, ValueError) as err:
        raise InputError(
            f"The {what} token {text!r} is not in this model's vocabulary: {_first_line(err)}"
        ) from None
    if ids.numel() != 1:
        pieces = model.to_str_tokens(ids) if ids.numel() else []
        raise InputError(
            f"The {what} {text!r} is {ids.numel()} tokens {pieces}, not one. Give a single token "
            "(GPT-2-style tokenizers count a leading space: ' Mary')."
        )
    back = "".join(model.to_str_tokens(ids))
    if back.strip() != text.strip():
        raise InputError(
            f"The {what} token {text!r} is not in this model's vocabulary (it reads back as "
            f"{back!r}, the tokenizer's unknown token). Pick a word the model knows."
        )
    return int(ids[0])


@contextlib.contextmanager
def one_thread():
    """Compute on one torch thread, then restore the caller's setting.

    An interactive edit is a few tokens: thread synchronisation costs more than it saves, and
    on a shared or busy CPU it dominates (a 16-token edit of a GPT-2-small-sized model took
    0.66 s on one thread and 2.85 s on two, on a loaded 2-core machine; bench/explore.py).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compute(model, inputs: Inputs, *, k: int = 10) -> Snapshot:
    """Run the model on ``inputs`` and every analysis the panels show (on one thread)."""
    with one_thread():
        return _compute(model, inputs, k=k)


def _compute(model, inputs: Inputs, *, k: int = 10) -> Snapshot:
    start = time.perf_counter()
    tokens = prompt_tokens(model, inputs.prompt, "prompt")
    corrupted, warning = None, ""
    if inputs.corrupted.strip():
        corrupted = prompt_tokens(model, inputs.corrupted, "corrupted prompt")
        if corrupted.shape != tokens.shape:
            # The prompt's panels still update; only patching waits for lengths that match.
            warning = (
                f"The corrupted prompt is {corrupted.shape[-1]} tokens but the prompt is "
                f"{tokens.shape[-1]}: patching needs positions that line up, so it is off until "
                f"one is reworded to the other's length.\n  prompt:    "
                f"{model.to_str_tokens(tokens)}\n  corrupted: {model.to_str_tokens(corrupted)}"
            )
            corrupted = None
    answer = token_id(model, inputs.answer, "answer")
    wrong = token_id(model, inputs.wrong, "wrong")
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        if logits.dim() != 3 or logits.shape[-1] != model.cfg.d_vocab:
            raise InputError(
                f"{type(model).__name__} returns {list(logits.shape)}, not next-token logits "
                "[batch, pos, d_vocab]: the explorer needs a language model (an encoder such as "
                "MiniLM has no next-token prediction). Explore a decoder instead."
            )
        probs = logits[0, -1].float().softmax(-1)
        top_p, top_i = probs.topk(min(k, probs.shape[-1]))
        answer = int(top_i[0]) if answer is None else answer
        if wrong is None and corrupted is not None:
            guess = int(model(corrupted)[0, -1].argmax())
            wrong = guess if guess != answer else None
    top_s = model.to_str_tokens(top_i)
    unavailable: dict[str, str] = {}
    if isinstance(model, SplicedModel):
        # Read out with the base model's weights: with no feature changed, the spliced run's
        # residual stream and logits are the base model's, bit for bit (mechscope.splice).
        cache = ActivationCache({n: cache[n] for n in cache.keys()}, model=model.base)
    reader = cache.model
    dla_heads = _try(unavailable, "dla", lambda: direct_logit_attribution(cache, answer, wrong))
    dla_comp = _try(
        unavailable, "dla", lambda: direct_logit_attribution(cache, answer, wrong, by="component")
    )
    lens = _try(unavailable, "lens", lambda: logit_lens(_SameRun(reader, logits, cache), tokens))
    return Snapshot(
        inputs=inputs,
        tokens=tokens,
        str_tokens=[str(s) for s in model.to_str_tokens(tokens)],
        corrupted_tokens=corrupted,
        top=[(str(s), float(p)) for s, p in zip(top_s, top_p.tolist(), strict=True)],
        answer_id=answer,
        wrong_id=wrong,
        answer_label=_label(model, answer),
        wrong_label=None if wrong is None else _label(model, wrong),
        cache=cache,
        dla_heads=dla_heads,
        dla_components=dla_comp,
        lens=lens,
        features=_features(model, cache),
        unavailable=unavailable,
        seconds=time.perf_counter() - start,
        warning=warning,
    )


def patch_sites(model) -> list[str]:
    """The sites of :data:`PATCH_SITES` this model has hook points for."""
    names = set(model.hook_names())
    return [s for s in PATCH_SITES if f"blocks.0.hook_{s}" in names]


def patch(model, snap: Snapshot, progress: Callable[[int, int, float], None]) -> torch.Tensor:
    """Denoising activation patching of every site of :func:`patch_sites`, ``[site, layer,
    pos]``, normalised: 0 = the corrupted run's metric, 1 = the clean run's. ``progress(done,
    total, seconds)`` is called after each site."""
    if snap.corrupted_tokens is None:
        raise InputError(
            "Activation patching needs a corrupted prompt: type one of the same token length "
            "(e.g. another name in the same sentence), then run it."
        )
    metric = logit_diff(snap.answer_id, snap.wrong_id)
    with torch.no_grad():
        clean_v = float(metric(model(snap.tokens)))
        corrupted_v = float(metric(model(snap.corrupted_tokens)))
    if abs(clean_v - corrupted_v) < 1e-6:
        raise InputError(
            f"The metric ({metric_text(snap)}) is {clean_v:.4g} on both prompts, so there is "
            "no difference to restore. Change the corrupted prompt (or the answer / wrong token)."
        )
    scaled = normalized(metric, clean_v, corrupted_v)
    sites = patch_sites(model)
    start, out = time.perf_counter(), []
    for i, site in enumerate(sites):
        result = activation_patch(model, snap.tokens, snap.corrupted_tokens, scaled, site)
        out.append(result.values.float())
        progress(i + 1, len(sites), time.perf_counter() - start)
    return torch.stack(out)


def metric_text(snap: Snapshot) -> str:
    """What DLA and patching score, in words: ``logit(' Mary') - logit(' John')``."""
    text = f"logit({snap.answer_label!r})"
    return text if snap.wrong_label is None else f"{text} - logit({snap.wrong_label!r})"


class _SameRun:
    """``model``, whose ``run_with_cache`` answers from the run already made: the logit lens
    then reads this run's residual stream instead of running the model a second time."""

    def __init__(self, model, logits, cache) -> None:
        self._model, self._run = model, (logits, cache)

    def run_with_cache(self, tokens, names=None, **kwargs):
        return self._run

    def __getattr__(self, name: str):
        return getattr(self._model, name)


def _features(model, cache) -> tuple[list[str], torch.Tensor] | None:
    """The most active features of each spliced SAE on the prompt (``SplicedModel`` only)."""
    saes = getattr(model, "saes", None)
    if not isinstance(saes, dict) or not saes:
        return None
    names, columns = [], []
    for hook in sorted(saes):
        acts = cache[f"{hook}.hook_sae_acts"][0].float()  # [pos, d_sae]
        best = acts.max(0).values.topk(min(N_FEATURES, acts.shape[-1])).indices
        names += [f"{hook}[{int(f)}]" for f in best]
        columns.append(acts[:, best])
    return names, torch.cat(columns, -1)


def _try(unavailable: dict[str, str], panel: str, fn):
    """``fn()``, or None with the reason recorded when this model cannot have the panel."""
    try:
        return fn()
    except (AttributeError, TypeError, ValueError, KeyError, NotImplementedError) as err:
        unavailable[panel] = _first_line(err)
        return None


def _label(model, token: int) -> str:
    return str(model.to_str_tokens(torch.tensor([token]))[0])


def _first_line(err: BaseException) -> str:
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__
