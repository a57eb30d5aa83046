// AttributionGraph: an attribution graph (Ameisen et al. 2025) laid out by layer x position.
// Two sliders re-prune it in the browser (graph.ts, Python's rule); hovering a node shows its
// details; clicking a node sets `selected`, and Python may answer with an ablation
// (`intervention_*`). Python side: src/mechscope/widgets/attribution_graph.py.

import { formatValue } from "../shared/activation";
import { type BinaryLike, decodeArray } from "../shared/buffers";
import { css, divergingRgb } from "../shared/colormap";
import { clearChildren, el, textWidth } from "../shared/dom";
import { decodeInt32 } from "../shared/int32";
import { type AnyModel, coalesce, displayToken } from "../shared/model";
import { WidgetView, widget } from "../shared/view";
import {
  EMBED,
  ERROR,
  edgeScores,
  FEATURE,
  type Graph,
  KIND_NAMES,
  type Layout,
  layout,
  LOGIT,
  pruneEdges,
  pruneNodes,
  topEdges,
} from "./graph";

/** Synced traits of mechscope.widgets.AttributionGraph. */
export interface Model {
  n_nodes: number;
  n_edges: number;
  n_layers: number;
  n_pos: number;
  /** [node] int32: kind code (0 embed, 1 feature, 2 error, 3 logit), layer, pos, index. */
  kind: BinaryLike;
  layer: BinaryLike;
  pos: BinaryLike;
  index: BinaryLike;
  /** [node] float32: activation (a logit's probability), influence on the logits. */
  activation: BinaryLike;
  influence: BinaryLike;
  /** [edge] int32 source and target node, float32 weight: the full graph's nonzero edges. */
  edge_src: BinaryLike;
  edge_dst: BinaryLike;
  edge_weight: BinaryLike;
  labels: string[];
  tokens: string[];
  title: string;
  /** Pruning thresholds, set by the sliders (two-way). */
  node_threshold: number;
  edge_threshold: number;
  /** Per node: n_effects promoted then n_effects suppressed tokens ([] when none). */
  n_effects: number;
  effect_tokens: string[][];
  /** [node, 2 * n_effects] float32 logit effects, NaN where none. */
  effect_values: BinaryLike;
  /** Per node: [prefix, token] pairs of its top activating contexts ([] when none). */
  n_contexts: number;
  context_text: string[][];
  /** [node, n_contexts] float32 activations, NaN where none. */
  context_values: BinaryLike;
  /** The clicked node, -1 for none; two-way. */
  selected: number;
  /** Whether Python answers a click with an ablation (model and transcoders given). */
  interactive: boolean;
  /** The node the intervention below belongs to (-1 none), and what happened. */
  intervention_node: number;
  intervention_status: string;
  /** Clean top tokens, then the ablated run's top tokens. */
  intervention_tokens: string[];
  /** [3, k] float32: clean p of the clean top k, ablated p of them, ablated p of its own top k. */
  intervention_probs: BinaryLike;
}

const DATA_KEYS = [
  "n_nodes", "n_edges", "n_layers", "n_pos", "kind", "layer", "pos", "index", "activation",
  "influence", "edge_src", "edge_dst", "edge_weight", "labels", "tokens", "n_effects",
  "effect_tokens", "effect_values", "n_contexts", "context_text", "context_values",
];
const IV_KEYS = ["interactive", "intervention_node", "intervention_status", "intervention_tokens", "intervention_probs"];
// Layout in px: columns aim to fill ~600px within [COL_MIN, COL_MAX]; nodes STEP apart.
const GRAPH_TARGET_PX = 600;
const COL_MIN = 56;
const COL_MAX = 110;
const STEP = 15;
const ROW_GAP = 8;
const LEFT = 52; // row labels
const BOTTOM = 26; // token labels
const FONT_PX = 11;
const TOP_EDGES = 5;
const KIND_FILL = ["#adb5bd", "#f08c00", "#495057", "#2f9e44"];

/** `s` cut with an ellipsis to fit `px` at FONT_PX. */
function fitText(s: string, px: number): string {
  if (textWidth(s, FONT_PX) <= px) return s;
  let keep = s;
  while (keep && textWidth(keep + "\u2026", FONT_PX) > px) keep = keep.slice(0, -1);
  return keep + "\u2026";
}

class AttributionGraphView extends WidgetView<Model> {
  private g!: Graph;
  private scores: Float64Array = new Float64Array(0);
  private effects: Float32Array = new Float32Array(0);
  private ctxValues: Float32Array = new Float32Array(0);
  private visibleNodes: Uint8Array = new Uint8Array(0);
  private visibleEdges: Uint8Array = new Uint8Array(0);
  private lay: Layout | null = null;
  private nodeEls = new Map<number, HTMLElement>();
  private shownEdges: number[] = [];
  private maxW = 0;
  private hovered = -1;
  private plot!: HTMLElement;
  private canvas!: HTMLCanvasElement;
  private info!: HTMLElement;
  private iv!: HTMLElement;
  private count!: HTMLElement;
  private nodeSlider!: HTMLInputElement;
  private edgeSlider!: HTMLInputElement;

  constructor(model: AnyModel<Model>, root: HTMLElement) {
    super(model, root);
    const onPrune = coalesce(() => this.syncSliders());
    const onIv = coalesce(() => this.renderIntervention());
    this.listenAndBuild("ms-attr-graph", DATA_KEYS, {
      ...Object.fromEntries(IV_KEYS.map((k) => [k, onIv])),
      selected: () => this.redraw(),
      node_threshold: onPrune,
      edge_threshold: onPrune,
    });
  }

  protected build(): void {
    const m = this.model;
    this.reset();
    const n = m.get("n_nodes");
    const ne = m.get("n_edges");
    try {
      this.g = {
        kind: decodeInt32(m.get("kind"), n),
        layer: decodeInt32(m.get("layer"), n),
        pos: decodeInt32(m.get("pos"), n),
        activation: decodeArray(m.get("activation"), "float32", n),
        influence: decodeArray(m.get("influence"), "float32", n),
        src: decodeInt32(m.get("edge_src"), ne),
        dst: decodeInt32(m.get("edge_dst"), ne),
        weight: decodeArray(m.get("edge_weight"), "float32", ne),
      };
      decodeInt32(m.get("index"), n); // checked, shown through the labels
      this.effects = decodeArray(m.get("effect_values"), "float32", n * 2 * m.get("n_effects"));
      this.ctxValues = decodeArray(m.get("context_values"), "float32", n * m.get("n_contexts"));
      for (const key of ["labels", "effect_tokens", "context_text"] as const) {
        if (m.get(key).length !== n) throw new Error(`${key} has ${m.get(key).length} entries for ${n} nodes`);
      }
      if (m.get("tokens").length !== m.get("n_pos")) throw new Error("tokens do not match n_pos");
    } catch (err) {
      this.showError("ms-ag-error", "AttributionGraph", err);
      return;
    }
    this.scores = edgeScores(this.g);

    this.titleEl = el("div", "ms-ag-title");
    const controls = el("div", "ms-ag-controls");
    this.nodeSlider = this.slider(controls, "node threshold", "ms-ag-node-slider", "node_threshold");
    this.edgeSlider = this.slider(controls, "edge threshold", "ms-ag-edge-slider", "edge_threshold");
    this.count = el("span", "ms-ag-count");
    controls.append(this.count);
    const body = el("div", "ms-ag-body");
    const wrap = el("div", "ms-ag-graph");
    this.plot = el("div", "ms-ag-plot");
    this.canvas = el("canvas", "ms-ag-canvas");
    wrap.append(this.plot);
    const side = el("div", "ms-ag-side");
    this.info = el("div", "ms-ag-info");
    this.iv = el("div", "ms-ag-iv");
    side.append(this.info, this.iv);
    body.append(wrap, side);
    this.root.append(this.titleEl, controls, this.legend(), body);

    this.plot.addEventListener("mouseover", (ev) => {
      const i = this.nodeOf(ev);
      if (i >= 0 && i !== this.hovered) this.hover(i);
    });
    this.plot.addEventListener("mouseleave", () => this.hover(-1));
    this.plot.addEventListener("click", (ev) => {
      const i = this.nodeOf(ev);
      if (i >= 0) this.send("selected", i);
    });
    this.renderTitle();
    this.ok = true;
    this.syncSliders();
    this.renderIntervention();
    this.root.setAttribute("data-rendered", "true");
  }

  private slider(parent: HTMLElement, text: string, cls: string, key: "node_threshold" | "edge_threshold"): HTMLInputElement {
    const label = el("label", "ms-ag-slider");
    const input = el("input", cls);
    input.type = "range";
    input.min = "0.01";
    input.max = "1";
    input.step = "0.01";
    const readout = el("span", "ms-ag-slider-value");
    input.addEventListener("input", () => {
      readout.textContent = Number(input.value).toFixed(2);
      this.redraw();
    });
    input.addEventListener("change", () => this.send(key, Number(input.value)));
    label.append(el("span", "", text), input, readout);
    parent.append(label);
    return input;
  }

  private legend(): HTMLElement {
    const legend = el("div", "ms-ag-legend");
    KIND_NAMES.forEach((name, k) => {
      const sw = el("span", `ms-ag-swatch ms-ag-swatch-${name}`);
      sw.style.background = KIND_FILL[k];
      legend.append(sw, el("span", "", name === "error" ? "error (MLP - transcoder)" : name));
    });
    const pos = el("span", "ms-ag-edge-swatch");
    pos.style.background = css(divergingRgb(0.8));
    const neg = el("span", "ms-ag-edge-swatch");
    neg.style.background = css(divergingRgb(-0.8));
    legend.append(pos, el("span", "", "excites"), neg, el("span", "", "inhibits"));
    return legend;
  }

  private syncSliders(): void {
    if (!this.ok) return;
    for (const [input, key] of [[this.nodeSlider, "node_threshold"], [this.edgeSlider, "edge_threshold"]] as const) {
      input.value = String(this.model.get(key));
      (input.nextElementSibling as HTMLElement).textContent = Number(input.value).toFixed(2);
    }
    this.redraw();
  }

  private nodeOf(ev: Event): number {
    const t = (ev.target as Element).closest("[data-node]");
    return t ? Number(t.getAttribute("data-node")) : -1;
  }

  /** Re-prune at the sliders' thresholds and lay the graph out: nodes are positioned
   * elements (hover, click, textContent), edges are drawn on a canvas under them. */
  private redraw(): void {
    if (!this.ok) return;
    const g = this.g;
    const sel = this.model.get("selected");
    this.visibleNodes = pruneNodes(g, Number(this.nodeSlider.value));
    this.visibleEdges = pruneEdges(g, this.visibleNodes, this.scores, Number(this.edgeSlider.value));
    if (sel >= 0 && sel < g.kind.length) this.visibleNodes[sel] = 1; // a selection always shows
    const nPos = this.model.get("n_pos");
    const nLayers = this.model.get("n_layers");
    const colWidth = Math.max(COL_MIN, Math.min(COL_MAX, Math.floor(GRAPH_TARGET_PX / nPos)));
    const lay = layout(g, this.visibleNodes, nLayers, nPos, { colWidth, step: STEP, rowGap: ROW_GAP });
    this.lay = lay;
    const W = LEFT + lay.width + 4;
    const H = lay.height + BOTTOM;
    const plot = this.plot;
    clearChildren(plot);
    plot.style.width = `${W}px`;
    plot.style.height = `${H}px`;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(W * dpr);
    this.canvas.height = Math.round(H * dpr);
    this.canvas.style.width = `${W}px`;
    this.canvas.style.height = `${H}px`;
    plot.append(this.canvas);

    const place = (node: HTMLElement, x: number, y: number, w: number, h: number) => {
      node.style.left = `${x}px`;
      node.style.top = `${y}px`;
      node.style.width = `${w}px`;
      node.style.height = `${h}px`;
    };
    for (let r = 0; r < lay.rowTop.length; r++) {
      const name = r === 0 ? "emb" : r === lay.rowTop.length - 1 ? "logits" : `L${r - 1}`;
      const label = el("div", "ms-ag-rowlabel", name);
      place(label, 0, lay.rowTop[r], LEFT - 6, lay.rowBottom[r] - lay.rowTop[r]);
      plot.append(label);
    }
    // token labels under the columns (user data: textContent only)
    this.model.get("tokens").forEach((tok, p) => {
      const full = displayToken(tok);
      const t = el("div", "ms-ag-token", fitText(full, colWidth - 4));
      t.title = `pos ${p}: ${full}`;
      t.dataset.pos = String(p);
      place(t, LEFT + p * colWidth, lay.height + 4, colWidth, BOTTOM - 6);
      plot.append(t);
    });

    // edges between visible nodes, weakest first so the strongest are drawn on top
    const shown: number[] = [];
    let maxW = 0;
    for (let e = 0; e < this.visibleEdges.length; e++) {
      if (!this.visibleEdges[e] || !this.visibleNodes[g.src[e]] || !this.visibleNodes[g.dst[e]]) continue;
      shown.push(e);
      maxW = Math.max(maxW, Math.abs(g.weight[e]));
    }
    shown.sort((a, b) => Math.abs(g.weight[a]) - Math.abs(g.weight[b]) || a - b);
    this.shownEdges = shown;
    this.maxW = maxW;

    let maxInf = 0;
    for (let i = 0; i < g.kind.length; i++) if (g.kind[i] === FEATURE) maxInf = Math.max(maxInf, g.influence[i]);
    this.nodeEls.clear();
    let nVisible = 0;
    for (let i = 0; i < g.kind.length; i++) {
      if (!this.visibleNodes[i]) continue;
      nVisible++;
      const k = g.kind[i];
      let w: number;
      let h: number;
      if (k === FEATURE) {
        w = h = 2 * (3 + 3.5 * Math.sqrt(maxInf > 0 ? g.influence[i] / maxInf : 0));
      } else {
        w = k === EMBED ? colWidth - 12 : k === ERROR ? 9 : 11;
        h = k === EMBED ? 10 : w;
      }
      const node = el("div", `ms-ag-node ms-ag-${KIND_NAMES[k]}`);
      place(node, LEFT + lay.x[i] - w / 2, lay.y[i] - h / 2, w, h);
      node.style.background = KIND_FILL[k];
      node.dataset.node = String(i);
      if (i === sel) node.classList.add("ms-ag-selected");
      this.nodeEls.set(i, node);
      plot.append(node);
    }

    this.root.dataset.visibleNodes = String(nVisible);
    this.root.dataset.visibleEdges = String(shown.length);
    this.root.dataset.selected = String(sel);
    this.count.textContent = `${nVisible} of ${g.kind.length} nodes, ${shown.length} of ${g.weight.length} edges`;
    this.hover(this.hovered >= 0 && this.visibleNodes[this.hovered] ? this.hovered : -1);
  }

  /** Row bands and the shown edges; those of `focus` highlighted, the others faded. */
  private drawEdges(focus: number): void {
    const lay = this.lay;
    const ctx = this.canvas.getContext("2d");
    if (!lay || !ctx) return;
    const g = this.g;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.translate(LEFT, 0);
    for (let r = 0; r < lay.rowTop.length; r++) {
      ctx.fillStyle = r % 2 ? "rgba(128, 128, 128, 0.10)" : "rgba(128, 128, 128, 0.04)";
      ctx.fillRect(0, lay.rowTop[r], lay.width, lay.rowBottom[r] - lay.rowTop[r]);
    }
    const touches = (e: number) => g.src[e] === focus || g.dst[e] === focus;
    for (const pass of focus >= 0 ? [false, true] : [false]) {
      for (const e of this.shownEdges) {
        if (focus >= 0 && touches(e) !== pass) continue;
        const w = g.weight[e];
        const rel = this.maxW > 0 ? Math.abs(w) / this.maxW : 0;
        ctx.globalAlpha = focus >= 0 && !pass ? 0.15 : 0.75;
        ctx.strokeStyle = css(divergingRgb(Math.sign(w) * (0.35 + 0.65 * rel)));
        ctx.lineWidth = 0.6 + 3.4 * rel + (pass ? 0.8 : 0);
        ctx.beginPath();
        ctx.moveTo(lay.x[g.src[e]], lay.y[g.src[e]]);
        ctx.lineTo(lay.x[g.dst[e]], lay.y[g.dst[e]]);
        ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
  }

  /** Highlight `i`'s edges and show its details (the selection's when nothing is hovered). */
  private hover(i: number): void {
    this.hovered = i;
    let focus = i >= 0 ? i : this.model.get("selected");
    if (!(focus >= 0 && focus < this.g.kind.length)) focus = -1;
    for (const [n, node] of this.nodeEls) node.classList.toggle("ms-ag-hover", n === i);
    this.drawEdges(focus);
    this.renderInfo(focus);
  }

  private renderInfo(i: number): void {
    const info = this.info;
    clearChildren(info);
    const g = this.g;
    if (!(i >= 0 && i < g.kind.length)) {
      info.append(el("div", "ms-ag-hint", "hover a node for its details; click it to select it"));
      info.dataset.node = "-1";
      return;
    }
    info.dataset.node = String(i);
    const labels = this.model.get("labels");
    const k = g.kind[i];
    info.append(el("div", "ms-ag-info-label", labels[i]));
    const tok = this.model.get("tokens")[g.pos[i]] ?? "";
    const where = k === EMBED ? `pos ${g.pos[i]}` : k === LOGIT ? "next token" : `layer ${g.layer[i]} \u00b7 pos ${g.pos[i]}`;
    info.append(el("div", "ms-ag-info-where", `${KIND_NAMES[k]} \u00b7 ${where} \u00b7 token ${displayToken(tok)}`));
    const act = k === LOGIT ? `probability ${formatValue(g.activation[i])}` : k === FEATURE ? `activation ${formatValue(g.activation[i])}` : "";
    info.append(el("div", "ms-ag-info-values", [act, `influence ${formatValue(g.influence[i])}`].filter(Boolean).join(" \u00b7 ")));
    for (const incoming of [true, false]) {
      const edges = topEdges(g, i, incoming, TOP_EDGES);
      if (!edges.length) continue;
      const box = el("div", incoming ? "ms-ag-in" : "ms-ag-out");
      box.append(el("div", "ms-ag-info-head", incoming ? "top inputs" : "top outputs"));
      for (const e of edges) {
        const other = incoming ? g.src[e] : g.dst[e];
        const row = el("div", "ms-ag-edge-row");
        const w = el("span", "ms-ag-num", formatValue(g.weight[e]));
        w.style.color = css(divergingRgb(Math.sign(g.weight[e]) * 0.85));
        row.append(w, el("span", "", labels[other]));
        box.append(row);
      }
      info.append(box);
    }
    const nEff = this.model.get("n_effects");
    const effTokens = this.model.get("effect_tokens")[i];
    if (effTokens.length === 2 * nEff && nEff > 0) {
      const box = el("div", "ms-ag-effects");
      box.append(el("div", "ms-ag-info-head", "logit effects (W_dec \u00b7 W_U)"));
      for (const [start, name] of [[0, "promotes"], [nEff, "suppresses"]] as const) {
        const row = el("div", start === 0 ? "ms-ag-up" : "ms-ag-down");
        row.append(el("span", "ms-ag-effect-name", name));
        for (let t = start; t < start + nEff; t++) {
          const chip = el("span", "ms-ag-chip", displayToken(effTokens[t]));
          chip.title = formatValue(this.effects[i * 2 * nEff + t]);
          row.append(chip);
        }
        box.append(row);
      }
      info.append(box);
    }
    const nCtx = this.model.get("n_contexts");
    const ctx = this.model.get("context_text")[i];
    if (ctx.length) {
      const box = el("div", "ms-ag-contexts");
      box.append(el("div", "ms-ag-info-head", "top activating contexts"));
      for (let c = 0; 2 * c + 1 < ctx.length && c < nCtx; c++) {
        const row = el("div", "ms-ag-context");
        row.append(
          el("span", "ms-ag-num", formatValue(this.ctxValues[i * nCtx + c])),
          el("span", "ms-ag-ctx-prefix", displayToken(ctx[2 * c])),
          el("span", "ms-ag-ctx-token", displayToken(ctx[2 * c + 1])),
        );
        box.append(row);
      }
      info.append(box);
    }
  }

  private renderIntervention(): void {
    if (!this.ok) return;
    const m = this.model;
    const iv = this.iv;
    clearChildren(iv);
    const node = m.get("intervention_node");
    const status = m.get("intervention_status");
    iv.dataset.node = String(node);
    if (!m.get("interactive")) {
      iv.append(el("div", "ms-ag-hint", "pass model= and transcoders= to ablate a feature on click"));
      return;
    }
    if (status) iv.append(el("div", "ms-ag-status", status));
    const toks = m.get("intervention_tokens");
    if (node < 0 || toks.length === 0 || toks.length % 2) return;
    const k = toks.length / 2;
    let probs: Float32Array;
    try {
      probs = decodeArray(m.get("intervention_probs"), "float32", 3 * k);
    } catch (err) {
      iv.append(el("div", "ms-ag-error", String(err)));
      return;
    }
    const table = el("table", "ms-ag-iv-table");
    const head = el("tr");
    for (const h of ["clean top", "p", "ablated", "", "ablated top", "p"]) head.append(el("th", "", h));
    table.append(head);
    for (let r = 0; r < k; r++) {
      const row = el("tr", "ms-ag-iv-row");
      row.append(
        el("td", "ms-ag-iv-clean-tok", displayToken(toks[r])),
        el("td", "ms-ag-num", formatValue(probs[r])),
        el("td", "ms-ag-num ms-ag-iv-ablated-p", formatValue(probs[k + r])),
        el("td", "ms-ag-gap", ""),
        el("td", "ms-ag-iv-ablated-tok", displayToken(toks[k + r])),
        el("td", "ms-ag-num ms-ag-iv-top-p", formatValue(probs[2 * k + r])),
      );
      table.append(row);
    }
    iv.append(table);
  }
}

export default widget(AttributionGraphView);
