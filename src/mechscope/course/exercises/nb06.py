"""Exercises of notebook 06 (probes and lenses): a probe's accuracy, a closed-form ridge
probe, the logit lens from the cache and its KL to the final prediction.

Alain & Bengio (2016); Hewitt & Liang (2019); nostalgebraist (2020), "the logit lens".
"""

from __future__ import annotations

from functools import cache

import torch

from . import exercise

NB = "06_probes_and_lenses"


def _probe_data(seed: int, n: int = 40, d: int = 6, n_classes: int = 3):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(n_classes, d, generator=gen)
    bias = 2 * torch.randn(n_classes, generator=gen)
    acts = torch.randn(n, d, generator=gen)
    labels = (acts @ weight.T + bias).argmax(-1)  # the probe's own answers, 30% replaced
    noisy = torch.rand(n, generator=gen) < 0.3
    labels[noisy] = torch.randint(n_classes, (int(noisy.sum()),), generator=gen)
    return weight, bias, acts, labels


def _accuracy_cases():
    return {
        "random probe, 3 classes, acts [40, 6]": _probe_data(0),
        "random probe, 2 classes, acts [25, 4]": _probe_data(1, n=25, d=4, n_classes=2),
    }


@exercise(
    "06.probe_accuracy",
    notebook=NB,
    title="A linear probe's accuracy",
    difficulty=1,
    minutes=5,
    cases=_accuracy_cases,
    mistakes=[
        (
            "forgot the bias: scores = acts @ weight.T + bias",
            lambda weight, bias, acts, labels: float(
                ((acts @ weight.T).argmax(-1) == labels).float().mean()
            ),
        ),
        (
            "returned the error rate, not the accuracy",
            lambda weight, bias, acts, labels: 1 - probe_accuracy(weight, bias, acts, labels),
        ),
        (
            "took the argmin of the scores, not the argmax",
            lambda weight, bias, acts, labels: float(
                ((acts @ weight.T + bias).argmin(-1) == labels).float().mean()
            ),
        ),
    ],
)
def probe_accuracy(
    weight: torch.Tensor, bias: torch.Tensor, acts: torch.Tensor, labels: torch.Tensor
) -> float:
    """weight ``[C, d]``, bias ``[C]``, acts ``[n, d]``, labels ``[n]`` int -> the fraction of
    rows whose highest score ``acts @ weight.T + bias`` is their label (a float)."""
    scores = acts @ weight.T + bias  # [n, C]
    return float((scores.argmax(-1) == labels).float().mean())


def _ridge(acts, labels, l2, *, centre: bool = True, scale_n: bool = True, one_hot: bool = True):
    x = acts.double()
    n, d = x.shape
    y = (
        torch.nn.functional.one_hot(labels, int(labels.max()) + 1).double()
        if one_hot
        else labels.double()[:, None]
    )
    penalty = (n if scale_n else 1) * l2 * torch.eye(d, dtype=x.dtype)
    if not centre:  # the bias as a column of ones, penalised like the rest
        x1 = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], 1)
        penalty = (n if scale_n else 1) * l2 * torch.eye(d + 1, dtype=x.dtype)
        w = torch.linalg.solve(x1.T @ x1 + penalty, x1.T @ y).T
        return w[:, :d].to(acts.dtype), w[:, d].to(acts.dtype)
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    w = torch.linalg.solve(xc.T @ xc + penalty, xc.T @ yc).T  # [C, d]
    return w.to(acts.dtype), (my - w @ mx).to(acts.dtype)


def _ridge_cases():
    gen = torch.Generator().manual_seed(4)
    acts = torch.randn(30, 5, generator=gen, dtype=torch.float64) + 2.0
    labels = torch.randint(3, (30,), generator=gen)
    acts2 = torch.randn(50, 8, generator=gen, dtype=torch.float64)
    labels2 = (acts2[:, 0] > 0).long()
    return {
        "acts [30, 5] (float64, mean 2), 3 classes, l2 = 0.1": (acts, labels, 0.1),
        "acts [50, 8] (float64), 2 classes, l2 = 0.01": (acts2, labels2, 0.01),
    }


@exercise(
    "06.ridge_probe",
    notebook=NB,
    title="A probe in closed form: ridge regression onto one-hot labels",
    difficulty=3,
    minutes=15,
    cases=_ridge_cases,
    mistakes=[
        (
            "penalised the bias too (a column of ones inside the ridge): centre acts and targets "
            "instead, and leave the bias unpenalised",
            lambda acts, labels, l2: _ridge(acts, labels, l2, centre=False),
        ),
        (
            "penalty l2 * I instead of n * l2 * I (the loss is a mean over the n rows)",
            lambda acts, labels, l2: _ridge(acts, labels, l2, scale_n=False),
        ),
    ],
)
def ridge_probe(
    acts: torch.Tensor, labels: torch.Tensor, l2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """acts ``[n, d]``, labels ``[n]`` int in 0..C-1 -> ``(weight [C, d], bias [C])``
    minimising ``mean_i |acts_i @ weight.T + bias - onehot(labels_i)|^2 + l2 |weight|_F^2``
    (the bias is not penalised): centre acts and targets, solve
    ``(X^T X + n l2 I) W^T = X^T Y``, then ``bias = mean(Y) - weight @ mean(X)``."""
    return _ridge(acts, labels, l2)


@cache
def _random_lm():
    from mechscope.models import Transformer, TransformerConfig

    cfg = TransformerConfig(
        n_layers=2,
        d_model=16,
        n_heads=2,
        d_head=8,
        d_vocab=13,
        n_ctx=8,
        d_mlp=32,
        init_std=0.3,
        seed=2,
    )
    model = Transformer(cfg).requires_grad_(False)
    with torch.no_grad():  # non-trivial final norm and unembedding bias
        g = torch.Generator().manual_seed(5)
        model.ln_final.w.copy_(1 + 0.5 * torch.randn(16, generator=g))
        model.ln_final.b.copy_(0.3 * torch.randn(16, generator=g))
        model.b_U.copy_(0.3 * torch.randn(13, generator=g))
    return model


@cache
def _grammar():
    import mechscope

    return mechscope.load("grammar-2l")


def _lens_cases():
    gen = torch.Generator().manual_seed(6)
    model = _grammar()
    return {
        "a random 2-layer model, tokens [2, 8]": (
            _random_lm(),
            torch.randint(13, (2, 8), generator=gen),
        ),
        "grammar-2l, 'two big red foxes run fast . a key falls'": (
            model,
            model.to_tokens("two big red foxes run fast . a key falls"),
        ),
    }


def _lens(model, tokens, *, norm: bool = True, post: bool = False):
    n = model.cfg.n_layers
    names = [f"blocks.{i}.hook_resid_{'post' if post else 'pre'}" for i in range(n)]
    names += [f"blocks.{n - 1}.hook_resid_post"]
    with torch.no_grad():
        _, c = model.run_with_cache(tokens, names=names)
        stack = torch.stack([c[name] for name in names])
        if norm:
            stack = model.ln_final(stack)
        return stack @ model.W_U + model.b_U


@exercise(
    "06.lens_logits",
    notebook=NB,
    title="The logit lens from the cache",
    difficulty=2,
    minutes=12,
    cases=_lens_cases,
    mistakes=[
        (
            "forgot the final LayerNorm (model.ln_final) before the unembedding",
            lambda model, tokens: _lens(model, tokens, norm=False),
        ),
        (
            "read each block's resid_post, not its resid_pre: the embedding row is missing and "
            "the last row appears twice",
            lambda model, tokens: _lens(model, tokens, post=True),
        ),
    ],
)
def lens_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    """``tokens [batch, pos]`` -> ``[n_layers + 1, batch, pos, d_vocab]``: the final norm
    (``model.ln_final``) and the unembedding (``@ model.W_U + model.b_U``) applied to
    ``blocks.{l}.hook_resid_pre`` for every layer ``l`` and, last, to the final
    ``blocks.{n_layers - 1}.hook_resid_post`` (nostalgebraist 2020)."""
    return _lens(model, tokens)


def _kl_cases():
    gen = torch.Generator().manual_seed(7)
    return {
        "random logits [3, 2, 5, 7]": (3 * torch.randn(3, 2, 5, 7, generator=gen),),
        "grammar-2l's logit lens [3, 1, 11, 66]": (
            _lens(*_lens_cases()["grammar-2l, 'two big red foxes run fast . a key falls'"]),
        ),
    }


def _kl(logits, *, reverse: bool = False, log_softmax: bool = True, reduce: str = "mean"):
    lp = logits.log_softmax(-1) if log_softmax else logits
    final = lp[-1:]
    kl = (lp.exp() * (lp - final)).sum(-1) if reverse else (final.exp() * (final - lp)).sum(-1)
    return kl.mean((1, 2)) if reduce == "mean" else kl.sum((1, 2))


@exercise(
    "06.kl_to_final",
    notebook=NB,
    title="How far each layer is from the final prediction: KL(final || layer)",
    difficulty=2,
    minutes=8,
    cases=_kl_cases,
    mistakes=[
        (
            "KL the wrong way round: KL(layer || final); the final distribution weights the sum",
            lambda logits: _kl(logits, reverse=True),
        ),
        (
            "forgot log_softmax: logits are not log-probabilities",
            lambda logits: _kl(logits, log_softmax=False),
        ),
        (
            "summed over batch and positions instead of averaging",
            lambda logits: _kl(logits, reduce="sum"),
        ),
    ],
)
def kl_to_final(logits: torch.Tensor) -> torch.Tensor:
    """``logits [layer, batch, pos, d_vocab]`` (the last layer is the model's output) ->
    ``[layer]``: ``KL(final || layer) = sum_v p_final(v) (log p_final(v) - log p_layer(v))``
    in nats, averaged over batch and positions (0 for the last layer)."""
    return _kl(logits)
