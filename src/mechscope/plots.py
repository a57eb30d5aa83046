"""Plotly figures for toy models of superposition and sparse autoencoders.

Each function returns a ``plotly.graph_objects.Figure`` (shown inline in Jupyter).
Figures follow Elhage et al. 2022, "Toy Models of Superposition".
"""

from __future__ import annotations

import math

import torch

from .toy.superposition import (
    ToyModel,
    dimensions_per_feature,
    feature_dimensionality,
    feature_norms,
    interference,
)


def _go():
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    return go, make_subplots


def _titles(model: ToyModel, instances) -> list[str]:
    return [f"1-S = {model.cfg.feature_probability[i]:.3g}" for i in instances]


def _instances(model: ToyModel, instances) -> list[int]:
    n = model.cfg.n_instances
    instances = list(range(n)) if instances is None else list(instances)
    bad = [i for i in instances if not 0 <= i < n]
    if bad:
        raise ValueError(f"instances {bad} out of range: this model has instances 0..{n - 1}.")
    return instances


def plot_features_2d(model: ToyModel, instances=None):
    """Each feature's direction ``W_i`` in the 2-D hidden space, one panel per sparsity.

    Colour = importance (dark = most important). Dense: two orthogonal features, the
    rest at the origin. Sparse: all five on a pentagon.
    """
    go, make_subplots = _go()
    if model.cfg.d_hidden != 2:
        raise ValueError(
            f"plot_features_2d needs d_hidden = 2, this model has {model.cfg.d_hidden}."
        )
    instances = _instances(model, instances)
    fig = make_subplots(rows=1, cols=len(instances), subplot_titles=_titles(model, instances))
    W = model.W.detach()
    imp = model.importance.tolist()
    for col, i in enumerate(instances, start=1):
        for f in range(model.cfg.n_features):
            x, y = W[i, :, f].tolist()
            shade = int(200 * (1 - imp[f]) / max(1 - imp[-1], 1e-9))
            colour = f"rgb({shade},{shade},{255 - shade // 3})"
            fig.add_trace(
                go.Scatter(
                    x=[0, x],
                    y=[0, y],
                    mode="lines+markers",
                    line={"color": colour},
                    marker={"size": [0, 8]},
                    name=f"feature {f}",
                    showlegend=False,
                    hovertemplate=f"feature {f}<br>importance {imp[f]:.2f}<br>(%{{x:.2f}}, %{{y:.2f}})<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(range=[-1.5, 1.5], row=1, col=col, showticklabels=False)
        fig.update_yaxes(
            range=[-1.5, 1.5],
            row=1,
            col=col,
            showticklabels=False,
            scaleanchor=f"x{col if col > 1 else ''}",
        )
    fig.update_layout(
        height=260,
        width=max(300, 220 * len(instances)),
        title="Feature directions W_i in the hidden space",
    )
    return fig


def plot_wtw(model: ToyModel, instances=None):
    """``W^T W`` per instance (diverging, centred at 0) and the bias: who interferes with whom."""
    go, make_subplots = _go()
    instances = _instances(model, instances)
    fig = make_subplots(rows=1, cols=len(instances), subplot_titles=_titles(model, instances))
    W = model.W.detach()
    for col, i in enumerate(instances, start=1):
        wtw = (W[i].T @ W[i]).numpy()
        fig.add_trace(
            go.Heatmap(
                z=wtw,
                zmid=0,
                zmin=-1.2,
                zmax=1.2,
                colorscale="RdBu",
                reversescale=True,
                showscale=col == len(instances),
                hovertemplate="W_%{y}·W_%{x} = %{z:.2f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    fig.update_layout(height=280, width=max(320, 220 * len(instances)), title="W^T W")
    return fig


def plot_feature_norms(model: ToyModel, instances=None):
    """Bars of ``||W_i||`` per feature, coloured by interference ``sum_{j!=i} (Ŵ_i·W_j)^2``.

    As in Elhage et al.'s figures: black = a dimension of its own, yellow = in superposition.
    """
    go, make_subplots = _go()
    instances = _instances(model, instances)
    norms, inter = feature_norms(model), interference(model)
    fig = make_subplots(
        rows=1, cols=len(instances), subplot_titles=_titles(model, instances), shared_yaxes=True
    )
    for col, i in enumerate(instances, start=1):
        fig.add_trace(
            go.Bar(
                x=list(range(model.cfg.n_features)),
                y=norms[i].tolist(),
                marker={
                    "color": inter[i].clamp(max=1).tolist(),
                    "colorscale": "Viridis",
                    "cmin": 0,
                    "cmax": 1,
                    "showscale": col == len(instances),
                },
                hovertemplate="feature %{x}<br>norm %{y:.2f}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    fig.update_layout(
        height=260,
        width=max(320, 220 * len(instances)),
        title="||W_i|| (colour: interference with other features)",
    )
    return fig


def plot_dimensionality(model: ToyModel):
    """Feature dimensionality ``D_i`` vs ``1/(1-S)`` (log axis), with ``d_hidden / ||W||_F^2``.

    The points cluster on the fractions 1, 3/4, 2/3, 1/2, 2/5, 1/3 (the "sticky" points of
    Elhage et al.): features organise into polytopes (pairs, triangles, pentagons, ...).
    """
    go, _ = _go()
    x = [1 / p for p in model.cfg.feature_probability]
    D = feature_dimensionality(model)
    fig = go.Figure()
    for f in range(model.cfg.n_features):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=D[:, f].tolist(),
                mode="markers",
                marker={"size": 5, "color": "rgba(60,60,160,0.35)"},
                showlegend=f == 0,
                name="D_i (one per feature)",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=dimensions_per_feature(model).tolist(),
            mode="lines",
            line={"color": "black"},
            name="d_hidden / ||W||_F^2",
        )
    )
    for frac, label in [
        (1, "1"),
        (3 / 4, "3/4"),
        (2 / 3, "2/3"),
        (1 / 2, "1/2"),
        (2 / 5, "2/5"),
        (1 / 3, "1/3"),
    ]:
        fig.add_hline(
            y=frac,
            line={"dash": "dot", "width": 1, "color": "gray"},
            annotation_text=label,
            annotation_position="right",
        )
    fig.update_xaxes(type="log", title="1/(1-S)")
    fig.update_yaxes(title="dimensions per feature", range=[0, 1.1])
    fig.update_layout(
        height=360, width=600, title="Feature dimensionality across the sparsity sweep"
    )
    return fig


def plot_neuron_weights(model: ToyModel, instances=None):
    """ReLU-hidden-layer variant: ``W[neuron, feature]`` heatmaps. One bright cell per row
    is a monosemantic neuron; several is a polysemantic one."""
    go, make_subplots = _go()
    instances = _instances(model, instances)
    fig = make_subplots(rows=1, cols=len(instances), subplot_titles=_titles(model, instances))
    for col, i in enumerate(instances, start=1):
        fig.add_trace(
            go.Heatmap(
                z=model.W[i].detach().numpy(),
                zmid=0,
                colorscale="RdBu",
                reversescale=True,
                showscale=col == len(instances),
                hovertemplate="neuron %{y}, feature %{x}: %{z:.2f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title="feature", row=1, col=col)
        fig.update_yaxes(title="neuron" if col == 1 else None, autorange="reversed", row=1, col=col)
    fig.update_layout(
        height=300, width=max(320, 240 * len(instances)), title="Neuron weights (ReLU hidden layer)"
    )
    return fig


def plot_max_cosine(max_cos: torch.Tensor, title: str = "SAE recovery of the true features"):
    """Histogram of each true feature's best cosine similarity with any SAE decoder direction."""
    go, _ = _go()
    fig = go.Figure(
        go.Histogram(x=max_cos.tolist(), xbins={"start": 0, "end": 1.0001, "size": 0.02})
    )
    fig.add_vline(
        x=float(max_cos.mean()),
        line={"dash": "dash"},
        annotation_text=f"mean {float(max_cos.mean()):.3f}",
    )
    fig.update_xaxes(title="max cosine similarity", range=[0, 1.02])
    fig.update_yaxes(title="true features")
    fig.update_layout(height=300, width=520, title=title)
    return fig


def plot_feature_density(feature_acts: torch.Tensor, title: str = "SAE feature density"):
    """Histogram of log10(fraction of tokens each feature fires on); dead features at the left."""
    go, _ = _go()
    freq = (feature_acts > 0).float().mean(0)
    logf = [math.log10(f) if f > 0 else -8.0 for f in freq.tolist()]
    fig = go.Figure(go.Histogram(x=logf, nbinsx=40))
    fig.update_xaxes(title="log10 firing frequency (-8 = dead)")
    fig.update_yaxes(title="features")
    fig.update_layout(height=300, width=520, title=title)
    return fig
