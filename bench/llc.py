"""LLC estimates side by side: mechscope.llc.estimate_llc and devinterp (Timaeus), one checkpoint.

``python bench/llc.py``: the last ``induction-2l`` checkpoint, the same held-out sequences, the
same SGLD update (w <- w - lr/2 (nbeta grad + gamma (w - w*)) + N(0, lr)), lr, gamma, nbeta,
chains, steps and batch size; prints each estimate (mean ± std over chains) and wall time.
devinterp (PyPI ``devinterp``, 2.x) is optional: if it is missing the bench says so and prints
mechscope's numbers alone. The two draw different minibatches and noise, so the estimates agree
within their chains' spread, not bit for bit.
"""

from __future__ import annotations

import time

import torch

from mechscope.llc import estimate_llc, next_token_loss
from mechscope.models import zoo
from mechscope.zoo.llc_sweep import SETTINGS, induction_problem

STEP, CHAINS = 2500, 2


def ours(model, tokens, beta, kw):
    start = time.perf_counter()
    r = estimate_llc(model, next_token_loss, tokens, beta=beta, n_chains=CHAINS, seed=0, **kw)
    return r.llc, r.llc_std, time.perf_counter() - start


class _Plain(torch.nn.Module):
    """Our Transformer behind a plain forward: devinterp takes any module with ``cfg.n_heads``
    for a TransformerLens model and calls TransformerLens-only methods on it."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def forward(self, tokens):
        return self.inner(tokens)


def devinterp_llc(model, tokens, nbeta, kw):
    import datasets
    from devinterp.slt.llc import llc

    ds = datasets.Dataset.from_dict({"input_ids": tokens.tolist()}).with_format("torch")

    def per_token_loss(m, input_ids):  # devinterp's protocol: [batch, pos - 1]
        logits = m(input_ids)[:, :-1]
        return torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), input_ids[:, 1:], reduction="none"
        )

    start = time.perf_counter()
    out = llc(
        _Plain(model), ds, {}, lr=kw["lr"], n_beta=nbeta, localization=kw["gamma"],
        num_chains=CHAINS, num_draws=kw["steps"], batch_size=kw["batch_size"],
        num_burnin_steps=0, device="cpu", loss_fn=per_token_loss,
    )  # fmt: skip
    # devinterp averages every draw; drop our burn-in from its per-chain trace to compare like with like.
    trace = torch.as_tensor(out["loss_trace"].values)[:, kw["burn_in"] :]
    per_chain = nbeta * (trace.mean(1) - float(out["init_loss"]))
    return float(per_chain.mean()), float(per_chain.std()), time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(1)
    model = zoo.load_checkpoint("induction-2l", STEP)
    tokens, beta = induction_problem()
    kw = SETTINGS["induction-2l"]
    nbeta = tokens.shape[0] * beta
    print(
        f"induction-2l step {STEP}: {tokens.shape[0]} sequences, nbeta {nbeta:.0f}, {kw}, {CHAINS} chains"
    )
    rows = [("mechscope", *ours(model, tokens, beta, kw))]
    try:
        rows.append(("devinterp", *devinterp_llc(model, tokens, nbeta, kw)))
    except ImportError as err:
        print(f"devinterp not available ({err}); `pip install devinterp` to compare.")
    print(f"{'':10s} {'LLC':>8s} {'± std':>7s} {'seconds':>8s}")
    for name, llc, std, sec in rows:
        print(f"{name:10s} {llc:8.1f} {std:7.1f} {sec:8.1f}")
    if len(rows) == 2:
        print(f"time ratio devinterp / mechscope: {rows[1][3] / rows[0][3]:.2f}")


if __name__ == "__main__":
    main()
