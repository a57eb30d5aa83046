"""Zoo recipes for intrinsic interpretability (review §5.1, notebook 19).

Five 1-layer models on grammar-2l's templated language (mechscope.toy.grammar), the same
size, seed, data and steps, differing only in the MLP:

- ``grammar-1l-gelu``: GELU, the baseline (``grammar-1l-relu``: ReLU);
- ``grammar-1l-solu``: SoLU (``x * softmax(x)``) then a LayerNorm (Elhage et al. 2022,
  "Softmax Linear Units");
- ``grammar-1l-gelu-l1`` / ``grammar-1l-relu-l1``: GELU / ReLU with an activation-sparsity
  penalty ``l1_coefficient * sum_i |post_i| * ||W_out[i]||`` added to the loss. The ``||W_out[i]||`` factor matters: with a
  bare ``sum_i |post_i|`` the model shrinks its activations and grows ``W_out`` to match,
  meeting the penalty without becoming any sparser (the scale trick sparse autoencoders
  avoid the same way, Anthropic's "April update" 2024);
- ``grammar-1l-bilinear``: a bilinear MLP, ``W_out((x W_in) * (x W_gate))`` with no
  nonlinearity and ``b_in`` held at zero (Sharkey 2023; Pearce et al. 2024), so its weights
  alone define a quadratic form per output direction (mechscope.bilinear).

Each card's metrics (held-out loss and features per neuron against the current word's class,
mechscope.monosemanticity) are re-measured from the shipped weights by
tests/integration/test_zoo_intrinsic.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import Transformer, TransformerConfig, WordTokenizer
from ..monosemanticity import PolysemanticityResult, features_per_neuron
from ..toy.grammar import CLASSES, VOCAB, WORD_CLASS, grammar_batch
from ._common import round_to_float16, run_record, seeded_model_and_optimizer, train_steps

# variant -> (act_fn, l1_coefficient)
VARIANTS = {
    "gelu": ("gelu", 0.0),
    "solu": ("solu", 0.0),
    "gelu-l1": ("gelu", 3e-3),
    "relu": ("relu", 0.0),
    "relu-l1": ("relu", 3e-3),
}
# not in VARIANTS (notebook 19's five-way comparison): the bilinear model has its own section
BILINEAR = {"bilinear": ("bilinear", 0.0)}
INTRINSIC_EVAL = {"n": 256, "seed": 12345}  # held-out sequences the cards are measured on
FEATURE_NAMES = tuple(CLASSES)  # the 15 word classes: the ground-truth features
SEQ_LEN = 24


def class_labels(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, pos]`` token ids -> ``[batch, pos]`` word-class indices into
    :data:`FEATURE_NAMES` (-1 for BOS)."""
    words = model.tokenizer.words
    index = {c: i for i, c in enumerate(FEATURE_NAMES)}
    ids = [index.get(WORD_CLASS.get(words[t], ""), -1) for t in tokens.flatten().tolist()]
    return torch.tensor(ids).reshape(tokens.shape)


@torch.no_grad()
def polysemanticity(
    model: Transformer, hook: str = "blocks.0.mlp.hook_post", n: int = 256, seed: int = 12345
) -> PolysemanticityResult:
    """Features per neuron at ``hook`` on ``n`` held-out grammar sequences (labels: the
    current word's class)."""
    tokens, _ = grammar_batch(n, model.cfg.n_ctx, seed, vocab=model.tokenizer.words[1:])
    _, cache = model.run_with_cache(tokens, names=[hook])
    acts = cache[hook]
    return features_per_neuron(
        acts.reshape(-1, acts.shape[-1]),
        class_labels(model, tokens).flatten(),
        feature_names=FEATURE_NAMES,
        n_classes=len(FEATURE_NAMES),
    )


@torch.no_grad()
def eval_loss(
    model: Transformer, n: int = 256, seed: int = 12345, ablate_mlp: bool = False
) -> float:
    """Held-out next-word cross-entropy (nats); ``ablate_mlp``: with the MLP's output zeroed
    (how much the model relies on the neurons being measured)."""
    tokens, _ = grammar_batch(n, model.cfg.n_ctx, seed, vocab=model.tokenizer.words[1:])
    zero = [("blocks.0.hook_mlp_out", lambda x, hook: torch.zeros_like(x))] if ablate_mlp else []
    with model.hooks(zero):
        logits = model(tokens)[:, :-1]
    return float(F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()))


def intrinsic_metrics(model: Transformer) -> dict:
    """What the card records: held-out loss (also with the MLP zero-ablated) and features per neuron (at ``hook_post``; for
    SoLU also at ``hook_mid``, before its LayerNorm)."""
    out = {
        "eval_loss": round(eval_loss(model, **INTRINSIC_EVAL), 4),
        "mlp_zero_ablated_loss": round(eval_loss(model, **INTRINSIC_EVAL, ablate_mlp=True), 4),
    }
    out["post"] = polysemanticity(model, "blocks.0.mlp.hook_post", **INTRINSIC_EVAL).as_dict()
    if model.cfg.act_fn == "solu":
        out["mid"] = polysemanticity(model, "blocks.0.mlp.hook_mid", **INTRINSIC_EVAL).as_dict()
    return out


def config(act_fn: str, seed: int = 0) -> TransformerConfig:
    """The shared architecture: 1 layer, d_model 32, 4 heads, d_mlp 64."""
    return TransformerConfig(
        n_layers=1, d_model=32, n_heads=4, d_head=8, d_vocab=len(VOCAB) + 1, n_ctx=SEQ_LEN,
        d_mlp=64, act_fn=act_fn, normalization="ln", seed=seed,
    )  # fmt: skip


def train_intrinsic(variant: str, steps: int = 1200, seed: int = 0):
    """Train one of :data:`VARIANTS` (see the module docstring)."""
    table = {**VARIANTS, **BILINEAR}
    if variant not in table:
        raise ValueError(f"variant={variant!r}; expected one of {sorted(table)}.")
    act_fn, l1 = table[variant]
    tok = WordTokenizer(VOCAB)
    cfg = config(act_fn, seed)
    data = {"seq_len": SEQ_LEN, "batch": 64, "pool": 4096, "pool_seed": 1_000_000 + seed}
    optim = {"name": "AdamW", "lr": 3e-3, "weight_decay": 0.01, "betas": [0.9, 0.999]}
    model, opt = seeded_model_and_optimizer(cfg, tok, optim, seed)
    if act_fn == "bilinear":  # no bias: out = W_out((x W_in) * (x W_gate)) is purely quadratic
        model.blocks[0].mlp.b_in.requires_grad_(False)  # its grad stays None: AdamW skips it
    # One pool of sequences, drawn in a seeded order: generating the grammar is slower than
    # a training step of a model this small.
    pool, _ = grammar_batch(data["pool"], SEQ_LEN, data["pool_seed"])
    gen = torch.Generator().manual_seed(seed)
    mlp = model.blocks[0].mlp
    post = {}

    def keep(x, hook):
        post["x"] = x

    def loss_at(step):
        tokens = pool[torch.randint(data["pool"], (data["batch"],), generator=gen)]
        with model.hooks([("blocks.0.mlp.hook_post", keep)]):
            logits = model(tokens)
        ce = F.cross_entropy(logits[:, :-1].reshape(-1, cfg.d_vocab), tokens[:, 1:].reshape(-1))
        if not l1:
            return ce
        return ce + l1 * (post["x"].abs() * mlp.W_out.norm(dim=1)).sum(-1).mean()

    losses, wall = train_steps(model, opt, steps, loss_at, f"grammar-1l-{variant}")
    model.eval()
    card = {
        "name": f"grammar-1l-{variant}",
        "description": "1-layer transformer on grammar-2l's language; MLP: "
        + {"gelu": "GELU", "relu": "ReLU", "solu": "SoLU + LayerNorm (Elhage et al. 2022)",
           "bilinear": "bilinear, (x W_in) * (x W_gate), b_in = 0 (Sharkey 2023)"}.get(
            variant, f"{act_fn.upper()} + activation L1 penalty ({l1} * sum |post| * ||W_out row||)"
        ),
        "dtype": "float16",
        "config": cfg.to_dict(),
        "tokenizer": tok.to_dict(),
        "data": {
            **data,
            "recipe": "mechscope.toy.grammar.grammar_batch(pool, seq_len, pool_seed); each step "
            "trains on `batch` rows drawn with replacement by a torch.Generator seeded `seed`",
            "eval": INTRINSIC_EVAL,
        },
        "training": run_record(
            seed, steps, optim, wall, loss="next-token cross-entropy, all positions"
            + (f" + {l1} * mean over tokens of sum_i |hook_post_i| * ||W_out[i]||" if l1 else ""),
            l1_coefficient=l1, final_loss_mean_last_100=sum(losses[-100:]) / 100,
        ),
        "metrics": {},  # measured below from the float16 weights that ship
        "metrics_definition": "mechscope.zoo.recipes_intrinsic.intrinsic_metrics: held-out "
        "loss; mechscope.monosemanticity.features_per_neuron of blocks.0.mlp.hook_post "
        "(SoLU also hook_mid) against the current word's class (15 classes), threshold 0.5",
        "references": ["Elhage et al. 2022, Softmax Linear Units",
                       "Elhage et al. 2022, Toy Models of Superposition"]
        + (["Sharkey 2023, A technical note on bilinear layers for interpretability",
            "Pearce et al. 2024, Bilinear MLPs enable weight-based mechanistic interpretability"]
           if act_fn == "bilinear" else []),
    }  # fmt: skip
    round_to_float16(model)  # ship float16: measure exactly what ships
    card["metrics"] = intrinsic_metrics(model)
    return model, card


def train_grammar_1l_gelu(steps: int = 1200, seed: int = 0):
    return train_intrinsic("gelu", steps=steps, seed=seed)


def train_grammar_1l_solu(steps: int = 1200, seed: int = 0):
    return train_intrinsic("solu", steps=steps, seed=seed)


def train_grammar_1l_gelu_l1(steps: int = 1200, seed: int = 0):
    return train_intrinsic("gelu-l1", steps=steps, seed=seed)


def train_grammar_1l_relu(steps: int = 1200, seed: int = 0):
    return train_intrinsic("relu", steps=steps, seed=seed)


def train_grammar_1l_relu_l1(steps: int = 1200, seed: int = 0):
    return train_intrinsic("relu-l1", steps=steps, seed=seed)


def train_grammar_1l_bilinear(steps: int = 1200, seed: int = 0):
    return train_intrinsic("bilinear", steps=steps, seed=seed)
