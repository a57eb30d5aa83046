// FeatureDashboard: one feature at a time (an SAE latent, a neuron): its activation
// histogram, the top-k activating contexts with tokens coloured by the activation, and the
// tokens whose logits it raises and lowers most. Step through features with prev / next /
// the number input; the shown feature is the two-way trait `feature`.
// Everything is precomputed in Python (src/mechscope/widgets/feature_dashboard.py, whose
// traits the Model below mirrors) and arrives as binary buffers.

import { type ActivationScale, formatValue, paintActivation, scaleOf } from "../shared/activation";
import { type ArrayDtype, type BinaryLike, decodeArray } from "../shared/buffers";
import { decodeInt32 } from "../shared/int32";
import { clearChildren, el } from "../shared/dom";
import { columnFormat, maxAbs } from "../shared/format";
import { type AnyModel, displayToken } from "../shared/model";
import { FeatureView, widget } from "../shared/view";
import { Histogram } from "./histogram";

/** Synced traits of mechscope.widgets.FeatureDashboard. */
export interface Model {
  n_features: number;
  k: number;
  bins: number;
  n_logits: number;
  ctx_len: number;
  feature_names: string[];
  /** Index of the shown feature; two-way. */
  feature: number;
  title: string;
  /** [feature, bin] int32 counts of the non-zero finite activations. */
  hist_counts: BinaryLike;
  /** [feature, bin + 1] float32 bin edges. */
  hist_edges: BinaryLike;
  /** [feature] float32: fraction of tokens where the feature is non-zero. */
  density: BinaryLike;
  /** [feature] int32: NaN/Inf activations (excluded from everything else). */
  nonfinite: BinaryLike;
  n_tokens: number;
  /** The contexts that appear in some top-k, and their indices in the caller's list. */
  contexts: string[][];
  context_ids: number[];
  /** [feature, k] int32 index into `contexts`, -1 where fewer than k contexts activate. */
  top_context: BinaryLike;
  /** [feature, k] int32 position of the max-activating token. */
  top_pos: BinaryLike;
  /** [feature, k, ctx_len] activations of the top contexts, encoded as `dtype`. */
  top_acts: BinaryLike;
  dtype: ArrayDtype;
  has_logits: boolean;
  logit_tokens: string[];
  /** [feature, n_logits] int32 index into logit_tokens / float32 effect, for the top and bottom. */
  logit_pos_ids: BinaryLike;
  logit_pos_vals: BinaryLike;
  logit_neg_ids: BinaryLike;
  logit_neg_vals: BinaryLike;
}

const DATA_KEYS: (keyof Model)[] = [
  "n_features", "k", "bins", "n_logits", "ctx_len", "feature_names", "hist_counts", "hist_edges",
  "density", "nonfinite", "n_tokens", "contexts", "context_ids", "top_context", "top_pos",
  "top_acts", "dtype", "has_logits", "logit_tokens", "logit_pos_ids", "logit_pos_vals",
  "logit_neg_ids", "logit_neg_vals",
];

interface Decoded {
  counts: Int32Array;
  edges: Float32Array;
  density: Float32Array;
  nonfinite: Int32Array;
  topContext: Int32Array;
  topPos: Int32Array;
  topActs: Float32Array;
  posIds: Int32Array;
  posVals: Float32Array;
  negIds: Int32Array;
  negVals: Float32Array;
}

class FeatureDashboardView extends FeatureView<Model> {
  private d!: Decoded;
  private input!: HTMLInputElement;
  private nameEl!: HTMLElement;
  private hist!: Histogram;
  private histStats!: HTMLElement;
  private ctxList!: HTMLElement;
  private posList!: HTMLElement;
  private negList!: HTMLElement;
  private readout!: HTMLElement;

  constructor(model: AnyModel<Model>, root: HTMLElement) {
    super(model, root);
    this.listenAndBuild("ms-feature-dash", DATA_KEYS, { feature: () => this.applyFeature() });
  }

  private decode(): Decoded {
    const m = this.model;
    const F = m.get("n_features");
    const k = m.get("k");
    const bins = m.get("bins");
    const nl = m.get("n_logits");
    const has = m.get("has_logits");
    const d: Decoded = {
      counts: decodeInt32(m.get("hist_counts"), F * bins),
      edges: decodeArray(m.get("hist_edges"), "float32", F * (bins + 1)),
      density: decodeArray(m.get("density"), "float32", F),
      nonfinite: decodeInt32(m.get("nonfinite"), F),
      topContext: decodeInt32(m.get("top_context"), F * k),
      topPos: decodeInt32(m.get("top_pos"), F * k),
      topActs: decodeArray(m.get("top_acts"), m.get("dtype"), F * k * m.get("ctx_len")),
      posIds: decodeInt32(m.get("logit_pos_ids"), has ? F * nl : 0),
      posVals: decodeArray(m.get("logit_pos_vals"), "float32", has ? F * nl : 0),
      negIds: decodeInt32(m.get("logit_neg_ids"), has ? F * nl : 0),
      negVals: decodeArray(m.get("logit_neg_vals"), "float32", has ? F * nl : 0),
    };
    const nCtx = m.get("contexts").length;
    const bad = d.topContext.findIndex((c) => c < -1 || c >= nCtx);
    if (bad >= 0) throw new Error(`top_context[${bad}] = ${d.topContext[bad]} but there are ${nCtx} contexts`);
    return d;
  }

  protected build(): void {
    this.reset();
    try {
      this.d = this.decode();
    } catch (err) {
      this.showError("ms-fd-error", "FeatureDashboard", err);
      return;
    }
    this.feature = this.clampFeature(this.model.get("feature")) ?? 0;

    this.titleEl = el("div", "ms-fd-title");
    const body = el("div", "ms-fd-body");
    body.append(this.buildHistogram(), this.buildLogits());
    const ctxPanel = el("div", "ms-fd-panel ms-fd-contexts-panel");
    this.ctxList = el("div", "ms-fd-contexts");
    this.readout = el("div", "ms-fd-readout", "\u00a0");
    ctxPanel.append(el("div", "ms-fd-heading", "Top activating contexts"), this.ctxList, this.readout);
    this.ctxList.addEventListener("mouseover", (ev) => {
      const t = (ev.target as Element).closest<HTMLElement>(".ms-tok");
      if (t) {
        this.readout.textContent =
          `context ${t.dataset.context}, token ${t.dataset.pos} \u201c${t.textContent}\u201d: ${t.dataset.value}`;
      }
    });
    this.root.append(this.titleEl, this.buildNav(), body, ctxPanel);
    this.renderTitle();
    this.ok = true;
    this.showFeature();
    this.root.setAttribute("data-rendered", "true");
  }

  private buildNav(): HTMLElement {
    const n = this.model.get("n_features");
    const nav = el("div", "ms-fd-nav");
    const prev = el("button", "ms-fd-prev", "\u25c0 prev");
    const next = el("button", "ms-fd-next", "next \u25b6");
    prev.type = next.type = "button";
    prev.addEventListener("click", () => this.choose(this.feature - 1));
    next.addEventListener("click", () => this.choose(this.feature + 1));
    this.input = el("input", "ms-fd-input");
    this.input.type = "number";
    this.input.min = "0";
    this.input.max = String(n - 1);
    this.input.step = "1";
    this.input.setAttribute("aria-label", "feature index");
    this.input.addEventListener("change", () => {
      const f = Number(this.input.value);
      if (this.clampFeature(f) === null) this.input.value = String(this.feature);
      else this.choose(f);
    });
    this.nameEl = el("span", "ms-fd-name"); // long names: ellipsis, the full name in its title
    nav.append(prev, el("span", "ms-fd-label", "feature"), this.input, el("span", "ms-fd-of", `of ${n}`), next, this.nameEl);
    return nav;
  }

  private buildHistogram(): HTMLElement {
    const panel = el("div", "ms-fd-panel ms-fd-hist");
    this.hist = new Histogram();
    this.histStats = el("div", "ms-fd-hist-stats");
    panel.append(el("div", "ms-fd-heading", "Activations (non-zero)"), this.hist.plot, this.histStats);
    return panel;
  }

  private buildLogits(): HTMLElement {
    const panel = el("div", "ms-fd-panel ms-fd-logits");
    const pos = el("div", "ms-fd-logit-col");
    const neg = el("div", "ms-fd-logit-col");
    this.posList = el("ol", "ms-fd-logits-pos");
    this.negList = el("ol", "ms-fd-logits-neg");
    pos.append(el("div", "ms-fd-heading", "Raises logits of"), this.posList);
    neg.append(el("div", "ms-fd-heading", "Lowers logits of"), this.negList);
    panel.append(pos, neg);
    if (!this.model.get("has_logits")) {
      panel.replaceChildren(el("div", "ms-fd-muted", "No logit weights given (logit_weights=None)."));
    }
    return panel;
  }

  protected showFeature(): void {
    const f = this.feature;
    const n = this.model.get("n_features");
    const name = this.model.get("feature_names")[f] ?? `feature ${f}`;
    this.root.dataset.feature = String(f);
    this.input.value = String(f);
    this.nameEl.textContent = name;
    this.nameEl.title = name;
    (this.root.querySelector(".ms-fd-prev") as HTMLButtonElement).disabled = f === 0;
    (this.root.querySelector(".ms-fd-next") as HTMLButtonElement).disabled = f === n - 1;
    this.drawHistogram(f);
    this.showContexts(f);
    if (this.model.get("has_logits")) {
      this.fillLogits(this.posList, this.d.posIds, this.d.posVals, f);
      this.fillLogits(this.negList, this.d.negIds, this.d.negVals, f);
    }
    this.readout.textContent = "\u00a0";
  }

  private drawHistogram(f: number): void {
    const bins = this.model.get("bins");
    const edges = this.d.edges.subarray(f * (bins + 1), (f + 1) * (bins + 1));
    this.hist.show(this.d.counts.subarray(f * bins, (f + 1) * bins), edges);
    const nTok = this.model.get("n_tokens");
    const nonfinite = this.d.nonfinite[f];
    this.histStats.textContent =
      `range ${formatValue(edges[0])} to ${formatValue(edges[bins])}; ` +
      `density ${(100 * this.d.density[f]).toFixed(1)}% of ${nTok} tokens` +
      (nonfinite ? `; ${nonfinite} NaN/Inf values excluded` : "");
    this.histStats.classList.toggle("ms-fd-warn", nonfinite > 0);
  }

  private showContexts(f: number): void {
    const k = this.model.get("k");
    const L = this.model.get("ctx_len");
    const contexts = this.model.get("contexts");
    const ids = this.model.get("context_ids");
    clearChildren(this.ctxList);
    // One colour scale for all k rows, so rows compare at a glance.
    const scale: ActivationScale = scaleOf(this.d.topActs, f * k * L, k * L);
    // the max-activation column: one number of decimals for all its rows
    const maxes: number[] = [];
    for (let r = 0; r < k; r++) {
      if (this.d.topContext[f * k + r] >= 0) maxes.push(this.d.topActs[(f * k + r) * L + this.d.topPos[f * k + r]]);
    }
    const fmtMax = columnFormat(maxes);
    let shown = 0;
    for (let r = 0; r < k; r++) {
      const c = this.d.topContext[f * k + r];
      if (c < 0) continue;
      shown++;
      const base = (f * k + r) * L;
      const maxPos = this.d.topPos[f * k + r];
      const row = el("div", "ms-fd-context");
      row.dataset.context = String(ids[c]);
      row.dataset.rank = String(r);
      row.append(
        el("span", "ms-fd-ctx-rank", `#${ids[c]}`),
        el("span", "ms-fd-ctx-max", fmtMax(this.d.topActs[base + maxPos])),
      );
      const toks = el("span", "ms-fd-ctx-tokens");
      contexts[c].forEach((tok, p) => {
        const v = this.d.topActs[base + p];
        const s = el("span", "ms-tok", displayToken(tok));
        s.dataset.value = formatValue(v);
        s.dataset.pos = String(p);
        s.dataset.context = String(ids[c]);
        paintActivation(s, v, scale);
        // a very long token is cut with an ellipsis (CSS); the title holds it in full
        s.title = `\u201c${displayToken(tok)}\u201d = ${formatValue(v)} at token ${p} of context ${ids[c]}`;
        if (p === maxPos) s.classList.add("ms-tok-max");
        if (v - v !== 0) s.classList.add("ms-tok-nonfinite");
        toks.append(s);
      });
      row.append(toks);
      this.ctxList.append(row);
    }
    if (!shown) this.ctxList.append(el("div", "ms-fd-muted", "This feature is never positive on these contexts."));
  }

  private fillLogits(list: HTMLElement, ids: Int32Array, vals: Float32Array, f: number): void {
    const nl = this.model.get("n_logits");
    const tokens = this.model.get("logit_tokens");
    // one number of decimals for both lists, so raised and lowered effects compare
    const fmt = columnFormat([maxAbs(this.d.posVals, f * nl, nl), maxAbs(this.d.negVals, f * nl, nl)]);
    clearChildren(list);
    for (let i = 0; i < nl; i++) {
      const v = vals[f * nl + i];
      const tok = displayToken(tokens[ids[f * nl + i]] ?? "?");
      const li = el("li", "ms-fd-logit");
      li.dataset.value = formatValue(v);
      const tokEl = el("span", "ms-fd-logit-tok", tok);
      tokEl.title = `\u201c${tok}\u201d: ${formatValue(v)}`;
      li.append(tokEl, el("span", "ms-fd-logit-val", fmt(v)));
      list.append(li);
    }
  }
}

export default widget(FeatureDashboardView);
