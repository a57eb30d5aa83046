// TokenActivations: many texts, each token coloured by one feature's activation (a neuron,
// an SAE feature, a probe score); pick the feature from a list, hover a token for its value.
// Python side: src/mechscope/widgets/token_activations.py (the traits below mirror it).

import {
  type ActivationScale,
  activationCss,
  activationNeedsLightText,
  formatValue,
  scaleOf,
} from "../shared/activation";
import { type ArrayDtype, type BinaryLike, decodeArray } from "../shared/buffers";
import { clearChildren, el } from "../shared/dom";
import { type AnyModel, coalesce, displayToken, type RenderProps, listen } from "../shared/model";

/** Synced traits of mechscope.widgets.TokenActivations. */
export interface Model {
  /** One list of token strings per text (ragged; each at most n_pos long). */
  tokens: string[][];
  n_texts: number;
  n_pos: number;
  n_features: number;
  /** [feature, text, pos] values, C order, little-endian, as `dtype`; padding is 0. */
  values: BinaryLike;
  dtype: ArrayDtype;
  feature_names: string[];
  /** Index of the shown feature; two-way. */
  feature: number;
  title: string;
  /** Position highlighted (in every text) across linked views, -1 for none; two-way. */
  highlight_token: number;
}

const DATA_KEYS = ["tokens", "n_texts", "n_pos", "n_features", "values", "dtype", "feature_names"];
// A list box taller than this scrolls.
const LIST_ROWS = 8;

class TokenActivationsView {
  private data: Float32Array = new Float32Array(0);
  private feature = 0;
  private ok = false;
  private tokenEls: HTMLElement[][] = [];
  private titleEl: HTMLElement | null = null;
  private select!: HTMLSelectElement;
  private readout!: HTMLElement;
  private legendLo!: HTMLElement;
  private legendHi!: HTMLElement;
  private legendBar!: HTMLElement;

  private readonly onData = coalesce(() => this.build());
  private readonly onFeature = () => this.applyFeature();
  private readonly onTitle = () => this.renderTitle();
  private readonly onHighlight = () => this.markPosition(this.model.get("highlight_token"));
  private unlisten: () => void = () => {};

  constructor(
    private readonly model: AnyModel<Model>,
    private readonly root: HTMLElement,
  ) {
    root.classList.add("ms-token-acts");
    this.unlisten = listen(model, DATA_KEYS, this.onData, {
      feature: this.onFeature, title: this.onTitle, highlight_token: this.onHighlight,
    });
    this.build();
  }

  destroy(): void {
    this.unlisten();
    clearChildren(this.root);
  }

  private get nTexts(): number {
    return this.model.get("n_texts");
  }
  private get nPos(): number {
    return this.model.get("n_pos");
  }

  private build(): void {
    const m = this.model;
    this.ok = false;
    this.titleEl = null;
    this.root.removeAttribute("data-rendered");
    clearChildren(this.root);
    const tokens = m.get("tokens");
    const nFeatures = m.get("n_features");
    try {
      this.data = decodeArray(m.get("values"), m.get("dtype"), nFeatures * this.nTexts * this.nPos);
      if (tokens.length !== this.nTexts) throw new Error(`${tokens.length} texts for n_texts=${this.nTexts}`);
      const long = tokens.findIndex((t) => t.length > this.nPos);
      if (long >= 0) throw new Error(`text ${long} has ${tokens[long].length} tokens > n_pos=${this.nPos}`);
    } catch (err) {
      this.root.append(el("div", "ms-ta-error", `TokenActivations could not decode its data: ${String(err)}`));
      console.error(err);
      return;
    }
    this.feature = this.clampFeature(m.get("feature")) ?? 0;

    this.titleEl = el("div", "ms-ta-title");
    const controls = el("div", "ms-ta-controls");
    const pick = el("label", "ms-ta-pick");
    pick.append(el("span", "ms-ta-pick-label", "feature"));
    this.select = el("select", "ms-ta-select");
    this.select.size = Math.min(LIST_ROWS, Math.max(2, nFeatures));
    const names = m.get("feature_names");
    for (let f = 0; f < nFeatures; f++) {
      const opt = el("option", "ms-ta-option", names[f] ?? `feature ${f}`);
      opt.value = String(f);
      opt.title = names[f] ?? `feature ${f}`;
      this.select.append(opt);
    }
    this.select.addEventListener("change", () => this.choose(Number(this.select.value)));
    pick.append(this.select);

    const side = el("div", "ms-ta-side");
    this.readout = el("div", "ms-ta-readout", "hover a token for its value");
    side.append(this.buildLegend(), this.readout);
    controls.append(pick, side);

    const texts = el("div", "ms-ta-texts");
    this.tokenEls = tokens.map((toks, i) => {
      const row = el("div", "ms-ta-text");
      row.dataset.text = String(i);
      const spans = toks.map((tok, p) => {
        const s = el("span", "ms-tok", displayToken(tok));
        s.dataset.text = String(i);
        s.dataset.pos = String(p);
        return s;
      });
      row.append(el("span", "ms-ta-rowlabel", String(i)), ...spans);
      texts.append(row);
      return spans;
    });
    // One delegated listener for every token (thousands of spans).
    texts.addEventListener("mouseover", (ev) => {
      const t = (ev.target as Element).closest<HTMLElement>(".ms-tok");
      if (!t) return;
      this.hover(Number(t.dataset.text), Number(t.dataset.pos));
      this.hoverPosition(Number(t.dataset.pos));
    });
    texts.addEventListener("mouseleave", () => this.hoverPosition(-1));

    this.root.append(this.titleEl, controls, texts);
    this.renderTitle();
    this.ok = true;
    this.paint();
    this.markPosition(m.get("highlight_token"));
    this.root.setAttribute("data-rendered", "true");
  }

  private buildLegend(): HTMLElement {
    const legend = el("div", "ms-ta-legend");
    this.legendLo = el("span", "ms-ta-legend-lo");
    this.legendBar = el("span", "ms-ta-legend-bar");
    this.legendHi = el("span", "ms-ta-legend-hi");
    legend.append(this.legendLo, this.legendBar, this.legendHi, el("span", "ms-nan-swatch"), el("span", "", "NaN / Inf"));
    return legend;
  }

  private renderTitle(): void {
    if (!this.titleEl) return;
    const title = this.model.get("title");
    this.titleEl.textContent = title;
    this.titleEl.hidden = !title;
  }

  private featureName(f: number): string {
    return this.model.get("feature_names")[f] ?? `feature ${f}`;
  }

  private clampFeature(f: number | null | undefined): number | null {
    const n = this.model.get("n_features");
    return typeof f === "number" && Number.isInteger(f) && f >= 0 && f < n ? f : null;
  }

  private offset(text: number, pos: number): number {
    return (this.feature * this.nTexts + text) * this.nPos + pos;
  }

  /** The user picked a feature: show it and tell Python. */
  private choose(f: number): void {
    if (this.clampFeature(f) === null || f === this.feature) return;
    this.feature = f;
    this.paint();
    this.model.set("feature", f);
    this.model.save_changes();
  }

  /** Python (or another view) changed `feature`. */
  private applyFeature(): void {
    const f = this.clampFeature(this.model.get("feature"));
    if (!this.ok || f === null || f === this.feature) return;
    this.feature = f;
    this.paint();
  }

  /** Colour every token by the current feature; one scale for all texts. */
  private paint(): void {
    const per = this.nTexts * this.nPos;
    const scale: ActivationScale = scaleOf(this.data, this.feature * per, per);
    const name = this.featureName(this.feature);
    this.tokenEls.forEach((spans, i) => {
      spans.forEach((s, p) => {
        const v = this.data[this.offset(i, p)];
        const text = formatValue(v);
        s.style.background = activationCss(v, scale);
        s.style.color = activationNeedsLightText(v, scale) ? "#fff" : "#111";
        s.dataset.value = text;
        s.classList.toggle("ms-tok-nonfinite", v - v !== 0);
        s.title = `${text}: ${name} at token ${p} of text ${i}`;
      });
    });
    this.select.value = String(this.feature);
    this.root.dataset.feature = String(this.feature);
    const lo = scale.signed ? -scale.max : 0;
    this.legendLo.textContent = formatValue(lo);
    this.legendHi.textContent = formatValue(scale.max);
    // stops at RdBu's anchors (every 0.2): CSS interpolates linearly in sRGB, as the map does
    const stops = Array.from({ length: scale.signed ? 11 : 6 }, (_, i) => (scale.signed ? -1 : 0) + i * 0.2);
    const unit = { signed: scale.signed, max: 1 };
    this.legendBar.style.background = `linear-gradient(to right, ${stops.map((t) => activationCss(t, unit)).join(", ")})`;
    this.legendBar.title = scale.signed ? "diverging, centred at 0" : "sequential from 0";
    this.readout.textContent = `${name}: hover a token for its value`;
  }

  /** The mouse is over position `p` (-1: left the texts): tell Python and linked views. */
  private hoverPosition(p: number): void {
    if (!this.ok || this.model.get("highlight_token") === p) return;
    this.model.set("highlight_token", p);
    this.model.save_changes();
    this.markPosition(p);
  }

  /** Mark the token at position `p` of every text (-1: none). */
  private markPosition(p: number): void {
    if (!this.ok) return;
    for (const spans of this.tokenEls) spans.forEach((s, i) => s.classList.toggle("ms-tok-hl", i === p));
    this.root.dataset.highlight = String(p);
  }

  private hover(text: number, pos: number): void {
    const tok = this.model.get("tokens")[text][pos];
    const v = this.data[this.offset(text, pos)];
    this.readout.textContent =
      `text ${text}, token ${pos} \u201c${displayToken(tok)}\u201d: ` +
      `${this.featureName(this.feature)} = ${formatValue(v)}`;
  }
}

function render({ model, el: root }: RenderProps<Model>): () => void {
  const view = new TokenActivationsView(model, root);
  return () => view.destroy();
}

export default { render };
