"""Zoo recipes ``facts-ioi-2l-tc0`` / ``-tc1``: per-layer transcoders on facts-ioi-2l's MLPs
(issue 14 item 2), the features of its attribution graphs (``mechscope.attribution_graph``).

Each reads its layer's MLP input before the LayerNorm affine (``blocks.L.ln2.hook_normalized``,
so with the norm's scale frozen a feature's input is linear in the residual stream) and
predicts the MLP's output (``blocks.L.hook_mlp_out``). Data: every prompt position of facts
and IOI prompts (clean and corrupted) from the training split. Card metrics on held-out
prompts: fraction of variance unexplained, L0, dead features, and the CE loss score when
spliced (``mechscope.splice``), next-word loss at the answer position as the model was
trained (the CE of the prompt's answer), with the MLP zero-ablated as the floor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..toy.facts import sample_pairs
from .recipes_patching import encode_padded

DATA = {"n_train_prompts": 6000, "train_seed": 777, "n_eval_prompts": 512, "eval_seed": 12345}
D_SAE, K = 1024, 16


def prompts(n: int, seed: int) -> list[str]:
    """Half facts, half IOI pairs from the training split; clean and corrupted prompts."""
    pairs = sample_pairs("facts", "train", n // 4, seed) + sample_pairs(
        "ioi", "train", n // 4, seed
    )
    return [p.clean for p in pairs] + [p.corrupted for p in pairs]


def eval_pairs(n: int, seed: int):
    return sample_pairs("facts", "heldout", n // 2, seed) + sample_pairs(
        "ioi", "heldout", n // 2, seed
    )


@torch.no_grad()
def io_data(model, layer: int, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs [n, d_model], targets [n, d_model])`` at every non-pad position of ``texts``."""
    src, dst = f"blocks.{layer}.ln2.hook_normalized", f"blocks.{layer}.hook_mlp_out"
    xs, ys = [], []
    for i in range(0, len(texts), 512):
        tokens, last = encode_padded(model, texts[i : i + 512])
        _, cache = model.run_with_cache(tokens, names=[src, dst])
        keep = torch.arange(tokens.shape[1])[None, :] <= last[:, None]
        xs.append(cache[src][keep])
        ys.append(cache[dst][keep])
    return torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def transcoder_metrics(model, tc, layer: int) -> dict:
    """Held-out FVU, L0, dead fraction, and the answer-CE loss score when spliced."""
    from ..splice import splice

    pairs = eval_pairs(DATA["n_eval_prompts"], DATA["eval_seed"])
    texts = [p.clean for p in pairs]
    x, y = io_data(model, layer, texts)
    acts = tc.encode(x)
    y_hat = tc.decode(acts)
    fvu = float((y - y_hat).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
    tokens, last = encode_padded(model, texts)
    answers = torch.tensor([model.tokenizer.ids[p.answer] for p in pairs])
    rows = torch.arange(len(texts))

    def ce(m, hooks=()):
        with m.hooks(list(hooks)):
            logits = m(tokens)[rows, last]
        return float(F.cross_entropy(logits, answers))

    spliced = splice(model, tc)
    site = tc.cfg.site
    clean = ce(model)
    with_tc = ce(spliced, [(f"{site}.hook_sae_error", lambda a, h: torch.zeros_like(a))])
    zero = ce(model, [(site, lambda a, h: torch.zeros_like(a))])
    return {
        "fvu": round(fvu, 4),
        "l0": round(float((acts > 0).float().sum(-1).mean()), 2),
        "dead_fraction": round(float(((acts > 0).sum(0) == 0).float().mean()), 4),
        "ce_clean": round(clean, 4),
        "ce_spliced": round(with_tc, 4),
        "ce_zero_ablated": round(zero, 4),
        "ce_loss_score": round((zero - with_tc) / (zero - clean), 4),
    }


def train_facts_tc(layer: int, steps: int = 3000, seed: int = 0):
    """A TopK transcoder (1,024 features, k = 16) on facts-ioi-2l's layer-``layer`` MLP."""
    from ..models.zoo import load_zoo
    from ..transcoder import TranscoderConfig, train_transcoder

    model = load_zoo("facts-ioi-2l")
    x, y = io_data(model, layer, prompts(DATA["n_train_prompts"], DATA["train_seed"]))
    cfg = TranscoderConfig(
        d_in=model.cfg.d_model,
        d_out=model.cfg.d_model,
        d_sae=D_SAE,
        k=K,
        input_site=f"blocks.{layer}.ln2.hook_normalized",
        site=f"blocks.{layer}.hook_mlp_out",
        seed=seed,
    )
    tc = train_transcoder(x, y, cfg, steps=steps, batch_size=1024, lr=1e-3)
    card = {
        "name": f"facts-ioi-2l-tc{layer}",
        "description": f"TopK per-layer transcoder on facts-ioi-2l's layer-{layer} MLP: reads "
        f"{cfg.input_site}, predicts {cfg.site}.",
        "model": "facts-ioi-2l",
        "model_sha256": model.card["sha256"],
        "data": {
            **DATA,
            "recipe": "every non-pad position of prompts(n_train_prompts, train_seed) (facts and "
            "IOI, clean and corrupted, training split); metrics on the clean held-out prompts of "
            "eval_pairs(n_eval_prompts, eval_seed)",
            "n_train_positions": len(x),
        },
        "training": tc.card["training"] | {"seed": seed},
        "metrics": transcoder_metrics(model, tc, layer),
        "metrics_definition": "mechscope.zoo.recipes_transcoders.transcoder_metrics: fvu = "
        "sum (y - y_hat)^2 / sum (y - mean y)^2 over held-out positions; ce_* = cross-entropy of "
        "the answer at the last position (clean / transcoder spliced with its error zeroed / MLP "
        "zero-ablated); ce_loss_score = (ce_zero_ablated - ce_spliced) / (ce_zero_ablated - "
        "ce_clean)",
        "references": [
            "Dunefsky, Chlenski & Nanda 2024, Transcoders Find Interpretable LLM Feature Circuits",
            "Ameisen et al. 2025, Circuit Tracing: Revealing Computational Graphs in Language "
            "Models",
            "Gao et al. 2024, Scaling and evaluating sparse autoencoders",
        ],
    }
    return tc, card


def train_facts_tc0(steps: int = 3000, seed: int = 0):
    return train_facts_tc(0, steps, seed)


def train_facts_tc1(steps: int = 3000, seed: int = 0):
    return train_facts_tc(1, steps, seed)
