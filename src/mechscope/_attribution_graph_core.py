"""Internals of :mod:`mechscope.attribution_graph`: the frozen run, the local replacement
model, the edges (batched gradients of every target w.r.t. every leaf) and the pruning."""

from __future__ import annotations

import torch

KINDS = ("embed", "feature", "error", "logit")


def scale(x: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm's frozen denominator ``[pos, 1]``."""
    x = x - x.mean(-1, keepdim=True)
    return (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def frozen(model, tcs, tokens) -> dict:
    """Everything the replacement model freezes, from one real run."""
    L = model.cfg.n_layers
    names = ["hook_embed", "hook_pos_embed", f"blocks.{L - 1}.hook_resid_post"]
    for li in range(L):
        names += [
            f"blocks.{li}.attn.hook_pattern",
            f"blocks.{li}.hook_resid_pre",
            f"blocks.{li}.hook_resid_mid",
            f"blocks.{li}.ln2.hook_normalized",
            f"blocks.{li}.hook_mlp_out",
        ]
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names=names)
    f = {"logits": logits[0, -1], "pattern": [], "s1": [], "s2": [], "acts": [], "error": []}
    f["embed"] = (cache["hook_embed"] + cache["hook_pos_embed"])[0]
    for li, (block, tc) in enumerate(zip(model.blocks, tcs, strict=True)):
        f["pattern"].append(cache[f"blocks.{li}.attn.hook_pattern"][0])
        f["s1"].append(scale(cache[f"blocks.{li}.hook_resid_pre"][0], block.ln1.eps))
        f["s2"].append(scale(cache[f"blocks.{li}.hook_resid_mid"][0], block.ln2.eps))
        with torch.no_grad():
            acts = tc.encode(cache[f"blocks.{li}.ln2.hook_normalized"][0])
            f["error"].append(cache[f"blocks.{li}.hook_mlp_out"][0] - tc.decode(acts))
        f["acts"].append(acts)
    f["sf"] = scale(cache[f"blocks.{L - 1}.hook_resid_post"][0], model.ln_final.eps)
    return f


def replacement(model, tcs, f, embed, acts, errors, deltas, sel):
    """The local replacement model. Leaves: ``embed [pos, d_model]``, per layer ``acts [pos,
    d_sae]``, ``errors`` and ``deltas [pos, d_model]`` (all three added at the MLP output; a
    zero ``delta`` is where gradients w.r.t. that output are read). Returns the
    pre-activations of the features ``sel[l] = (pos ids, feature ids)`` of each layer and the
    final logits ``[d_vocab]`` at the last position. Affine in every leaf."""
    r = embed
    pres = []
    for li, (block, tc) in enumerate(zip(model.blocks, tcs, strict=True)):
        a = block.attn
        x = (r - r.mean(-1, keepdim=True)) / f["s1"][li] * block.ln1.w + block.ln1.b
        v = torch.einsum("pd,hde->hpe", x, a.W_V) + a.b_V[:, None]
        z = torch.einsum("hqk,hke->hqe", f["pattern"][li], v)
        r = r + torch.einsum("hqe,hed->qd", z, a.W_O) + a.b_O
        n = (r - r.mean(-1, keepdim=True)) / f["s2"][li]
        ps, js = sel[li]
        # only the active features' pre-activations: [n_active], no [pos, d_sae] matmul
        pres.append((n[ps] * tc.W_enc[:, js].T).sum(-1) + tc.b_enc[js])
        r = r + acts[li] @ tc.W_dec + tc.b_dec + errors[li] + deltas[li]
    ln = model.ln_final
    final = (r[-1] - r[-1].mean()) / f["sf"][-1] * ln.w + ln.b
    return pres, final @ model.W_U + model.b_U


def build(model, tcs, f, toks, answer_ids, node_threshold, edge_threshold):
    """Nodes, the full adjacency by gradients of the replacement model, then pruning."""
    from .attribution_graph import AttributionGraphResult

    L, P = model.cfg.n_layers, toks.shape[1]
    str_tokens = model.to_str_tokens(toks[0])
    # ---- nodes: embed (pos), features (layer, pos, index), errors (layer, pos), logits --------
    kind, layer, pos, index, act, labels = [], [], [], [], [], []
    for p in range(P):
        kind.append("embed"), layer.append(-1), pos.append(p), index.append(int(toks[0, p]))
        act.append(0.0), labels.append(f"emb @{p} {str_tokens[p]!r}")
    feat_slices = []
    for li in range(L):
        nz = (f["acts"][li] > 0).nonzero().tolist()
        feat_slices.append((len(kind), nz))
        for p, j in nz:
            kind.append("feature"), layer.append(li), pos.append(p), index.append(j)
            act.append(float(f["acts"][li][p, j])), labels.append(f"L{li} F{j} @{p}")
    err_start = len(kind)
    for li in range(L):
        for p in range(P):
            kind.append("error"), layer.append(li), pos.append(p), index.append(-1)
            act.append(0.0), labels.append(f"err L{li} @{p}")
    logit_start = len(kind)
    probs = f["logits"].softmax(-1)
    for t in answer_ids.tolist():
        kind.append("logit"), layer.append(L), pos.append(P - 1), index.append(t)
        act.append(float(probs[t])), labels.append(f"logit {model.to_str_tokens([t])[0]!r}")
    N = len(kind)
    # ---- leaves and targets ------------------------------------------------------------------
    params = [p for p in list(model.parameters()) + [q for tc in tcs for q in tc.parameters()]]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        sel = [tuple(torch.tensor(nz, dtype=torch.long).reshape(-1, 2).T) for _, nz in feat_slices]
        embed = f["embed"].clone().requires_grad_(True)
        deltas = [torch.zeros_like(e).requires_grad_(True) for e in f["error"]]
        with torch.enable_grad():
            pres, logits = replacement(model, tcs, f, embed, f["acts"], f["error"], deltas, sel)
            T = torch.cat([*pres, logits[answer_ids]])  # [n_targets]: features then logits
            # d target / d (embedding, MLP output of each layer): [n_targets, pos, d_model]
            grads = _batched_grads(T, [embed, *deltas])
        with torch.no_grad():
            zeros = [torch.zeros_like(e) for e in f["error"]]
            zero_pres, zero_logits = replacement(
                model, tcs, f, torch.zeros_like(embed), [torch.zeros_like(a) for a in f["acts"]],
                zeros, zeros, sel,
            )  # fmt: skip
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
    target_rows = [i for i, k in enumerate(kind) if k in ("feature", "logit")]
    adjacency = torch.zeros(N, N)
    rows = torch.tensor(target_rows)
    adjacency[rows, :P] = (grads[0] * f["embed"]).sum(-1)  # [n_targets, P]
    for li in range(L):
        start, nz = feat_slices[li]
        g = grads[1 + li]  # [n_targets, P, d_model]
        if nz:
            ps, js = sel[li]
            # a feature enters only through its decoder row: edge = a * (grad . W_dec[j])
            along = torch.einsum("tnd,nd->tn", g[:, ps], tcs[li].W_dec[js].detach())
            adjacency[rows, start : start + len(nz)] = along * f["acts"][li][ps, js]
        e0 = err_start + li * P
        adjacency[rows, e0 : e0 + P] = (g * f["error"][li]).sum(-1)
    target_value = torch.zeros(N)
    bias = torch.zeros(N)
    target_value[rows] = T.detach()
    bias[rows] = torch.cat([*zero_pres, zero_logits[answer_ids]])
    values, influence, kept = prune(adjacency, kind, torch.tensor(act), node_threshold,
                                    edge_threshold)  # fmt: skip
    return AttributionGraphResult(
        values=values,
        adjacency=adjacency,
        labels=labels,
        kind=kind,
        layer=torch.tensor(layer),
        pos=torch.tensor(pos),
        index=torch.tensor(index),
        activation=torch.tensor(act),
        bias=bias,
        target_value=target_value,
        influence=influence,
        kept=kept,
        str_tokens=list(str_tokens),
        node_threshold=node_threshold,
        edge_threshold=edge_threshold,
        meta={"logit_start": logit_start, "real_logits": f["logits"]},
    )


def _batched_grads(T: torch.Tensor, leaves: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[d T_i / d leaf]`` for every target ``i``: one list entry per leaf, ``[n, *leaf]``."""
    eye = torch.eye(len(T))
    try:
        return list(torch.autograd.grad(T, leaves, eye, is_grads_batched=True,
                                        allow_unused=True, materialize_grads=True))  # fmt: skip
    except RuntimeError:  # an op without a batching rule: one backward per target
        rows = [torch.autograd.grad(T[i], leaves, retain_graph=True, allow_unused=True,
                                    materialize_grads=True) for i in range(len(T))]  # fmt: skip
        return [torch.stack([r[k] for r in rows]) for k in range(len(leaves))]


def prune(adjacency, kind, activation, node_threshold, edge_threshold):
    """(pruned adjacency, influence per node, kept mask); see the module docstring."""
    N = adjacency.shape[0]
    A = adjacency.abs()
    norm = A / A.sum(1, keepdim=True).clamp(min=1e-12)
    logit = torch.tensor([k == "logit" for k in kind])
    w = torch.zeros(N)
    w[logit] = activation[logit] / activation[logit].sum().clamp(min=1e-12)  # probabilities
    # influence = w^T (Â + Â^2 + ...): solve x^T (I - Â) = w^T, then subtract w.
    eye = torch.eye(N, dtype=norm.dtype)
    influence = torch.linalg.solve((eye - norm).T, w) - w
    prunable = torch.tensor([k in ("feature", "error") for k in kind])
    kept = ~prunable
    order = torch.argsort(torch.where(prunable, influence, -torch.inf), descending=True)
    total = influence[prunable].sum()
    cum = 0.0
    for i in order.tolist():
        if not prunable[i]:
            break
        if cum >= node_threshold * total:
            break
        kept[i] = True
        cum += float(influence[i])
    mask = kept[:, None] & kept[None, :]
    score = norm * (influence + w)[:, None] * mask
    flat = score.flatten()
    order = torch.argsort(flat, descending=True)
    cum_scores = flat[order].cumsum(0)
    n_keep = int((cum_scores < edge_threshold * flat.sum()).sum()) + 1
    keep_edges = torch.zeros(N * N, dtype=torch.bool)
    keep_edges[order[:n_keep]] = True
    keep_edges &= flat > 0
    return adjacency * keep_edges.reshape(N, N), influence, kept
