"""Zoo recipes for features and superposition (issue 4).

``grammar-2l``: a 2-layer transformer with MLPs on a templated language of nameable word
classes (mechscope.toy.grammar), and ``grammar-2l-mlp0``: a TopK SAE on its layer-0 MLP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import Transformer, TransformerConfig, WordTokenizer
from ..toy.grammar import VOCAB, WORD_CLASS, grammar_batch
from ._common import run_record, seeded_model_and_optimizer, train_steps

# ---- grammar-2l: an MLP model for feature work (issue 4) ---------------------------

GRAMMAR_EVAL = {"n": 512, "seed": 12345}  # held-out sequences the card's metrics are measured on
_NOUN_CLASSES = {"animal_singular", "animal_plural", "object_singular", "object_plural"}


@torch.no_grad()
def grammar_metrics(model: Transformer, n: int = 512, seed: int = 12345) -> dict:
    """Held-out next-word loss and how often the top prediction is grammatical.

    - ``grammatical_accuracy``: argmax is an allowed next word, over every position;
    - ``noun_agreement_accuracy``: where a noun comes next (after the determiner, maybe past
      adjectives), the argmax is a noun of the number the determiner fixed (or an allowed
      modifier); needs attention back to the determiner;
    - ``verb_accuracy``: where a verb comes next, the argmax agrees with the noun in class and number.
    """
    seq_len = model.cfg.n_ctx
    tokens, allowed = grammar_batch(n, seq_len, seed, vocab=model.tokenizer.words[1:])
    logits = model(tokens)[:, :-1]
    loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
    pred = logits.argmax(-1)
    ok = allowed.gather(-1, pred[..., None])[..., 0]
    words = model.tokenizer.words
    nxt = [[words[t] for t in row] for row in tokens[:, 1:].tolist()]
    cls = [[WORD_CLASS.get(w, "") for w in row] for row in nxt]
    is_noun = torch.tensor([[c in _NOUN_CLASSES for c in row] for row in cls])
    is_verb = torch.tensor([["verb" in c for c in row] for row in cls])
    return {
        "eval_loss": round(float(loss), 4),
        "grammatical_accuracy": round(float(ok.float().mean()), 4),
        "noun_agreement_accuracy": round(float(ok[is_noun].float().mean()), 4),
        "verb_accuracy": round(float(ok[is_verb].float().mean()), 4),
    }


def train_grammar_2l(steps: int = 2000, seed: int = 0) -> tuple[Transformer, dict]:
    """2-layer transformer with MLPs on a templated language of nameable word classes.

    ``DET [ADJ] [COLOUR] NOUN VERB [ADV] .`` with number agreement across modifiers
    (mechscope.toy.grammar). Its MLP neurons and SAE features respond to word classes,
    number and position in the sentence: material for notebook 03.
    """
    tok = WordTokenizer(VOCAB)
    cfg = TransformerConfig(
        n_layers=2,
        d_model=64,
        n_heads=4,
        d_head=16,
        d_vocab=len(tok),
        n_ctx=32,
        d_mlp=256,
        act_fn="gelu",
        normalization="ln",
        seed=seed,
    )
    data = {"seq_len": 32, "batch": 64}
    optim = {"name": "AdamW", "lr": 1e-3, "weight_decay": 0.01, "betas": [0.9, 0.999]}
    model, opt = seeded_model_and_optimizer(cfg, tok, optim, seed)

    def loss_at(step):
        # Seeds 1_000_000+ for training; the card's metrics use seed 12345 (never trained on).
        tokens, _ = grammar_batch(
            data["batch"], data["seq_len"], seed=1_000_000 + seed * steps + step
        )
        logits = model(tokens)
        return F.cross_entropy(logits[:, :-1].reshape(-1, cfg.d_vocab), tokens[:, 1:].reshape(-1))

    losses, wall = train_steps(model, opt, steps, loss_at, "grammar-2l")
    model.eval()
    card = {
        "name": "grammar-2l",
        "description": "2-layer transformer with GELU MLPs on a templated language of nameable "
        "word classes (determiners, adjectives, colours, animals / objects singular / plural, "
        "agreeing verbs, adverbs).",
        "config": cfg.to_dict(),
        "tokenizer": tok.to_dict(),
        "data": {
            **data,
            "recipe": "mechscope.toy.grammar.grammar_batch: BOS then sentences "
            "'DET [ADJ] [COLOUR] NOUN VERB [ADV] .' cut at seq_len; the determiner fixes the "
            "noun's number (a/one singular, two..five plural, the either), the verb agrees with "
            "the noun in number and class (animal / object). Training batch i uses seed "
            "1_000_000 + seed * steps + i.",
            "eval": GRAMMAR_EVAL,
        },
        "training": run_record(
            seed, steps, optim, wall, losses, loss="next-token cross-entropy, all positions"
        ),
        "metrics": grammar_metrics(model, **GRAMMAR_EVAL),
        "references": [
            "Bricken et al. 2023, Towards Monosemanticity (features of a small MLP model)"
        ],
    }
    return model, card


# ---- SAEs on zoo models (zoo/sae/NAME.safetensors + .json) --------------------------

SAE_SITE_EVAL = {"n_train_seqs": 4096, "train_seed": 777, "n_eval_seqs": 512, "eval_seed": 12345}


def sae_eval_data(model: Transformer, site: str, n: int, seed: int):
    """Tokens of ``n`` grammar sequences and the activations of ``site`` on them ``[n * pos, d]``."""
    from ..sae_train import collect_activations

    tokens, _ = grammar_batch(n, model.cfg.n_ctx, seed, vocab=model.tokenizer.words[1:])
    return tokens, collect_activations(model, tokens, site)


def sae_metrics(model: Transformer, sae, site: str, n: int = 512, seed: int = 12345) -> dict:
    """The card's SAE metrics: reconstruction and sparsity on held-out activations, CE loss score."""
    from ..sae import ce_loss_recovered, evaluate

    tokens, acts = sae_eval_data(model, site, n, seed)
    out = evaluate(sae, acts).as_dict() | ce_loss_recovered(model, sae, tokens, site).as_dict()
    return {k: round(v, 4) for k, v in out.items()}


def train_grammar_2l_sae_mlp0(steps: int = 2000, seed: int = 0):
    """TopK SAE (Gao et al. 2024), d_sae = d_mlp = 256 features, k = 8, on grammar-2l's layer-0
    MLP neurons. Layer 0's MLP is the one that matters: zero-ablating it raises the loss from
    1.90 to 2.69 nats, layer 1's only to 1.92 (measured on 256 held-out sequences)."""
    from ..models.zoo import load_zoo
    from ..sae import SAEConfig
    from ..sae_train import train_sae

    model = load_zoo("grammar-2l")
    site = "blocks.0.mlp.hook_post"
    _, acts = sae_eval_data(model, site, SAE_SITE_EVAL["n_train_seqs"], SAE_SITE_EVAL["train_seed"])
    cfg = SAEConfig(
        d_in=model.cfg.d_mlp, d_sae=model.cfg.d_mlp, activation="topk", k=8, site=site, seed=seed
    )
    sae = train_sae(acts, cfg, steps=steps, batch_size=1024, lr=1e-3, dead_window=20_000)
    card = {
        "name": "grammar-2l-mlp0",
        "description": f"TopK sparse autoencoder on grammar-2l's {site}.",
        "model": "grammar-2l",
        "model_sha256": model.card["sha256"],
        "site": site,
        "data": {
            **SAE_SITE_EVAL,
            "recipe": "activations at every position of grammar_batch(n_train_seqs, n_ctx, "
            "train_seed); metrics on grammar_batch(n_eval_seqs, n_ctx, eval_seed)",
            "n_train_activations": len(acts),
        },
        "training": sae.card["training"] | {"seed": seed},
        "metrics": sae_metrics(
            model, sae, site, SAE_SITE_EVAL["n_eval_seqs"], SAE_SITE_EVAL["eval_seed"]
        ),
        "metrics_definition": "mechscope.sae.evaluate + mechscope.sae.ce_loss_recovered (CE loss "
        "score as in SAELens: (CE_zero_ablation - CE_spliced) / (CE_zero_ablation - CE_clean))",
        "references": [
            "Gao et al. 2024, Scaling and evaluating sparse autoencoders",
            "Bricken et al. 2023, Towards Monosemanticity",
        ],
    }
    return sae, card
