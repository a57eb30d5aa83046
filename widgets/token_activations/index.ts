// TokenActivations: many texts, each token coloured by one feature's activation (a neuron,
// an SAE feature, a probe score); pick the feature from a list, hover a token for its value.
// Python side: src/mechscope/widgets/token_activations.py (the traits below mirror it).

import { type ActivationScale, activationCss, formatValue, paintActivation, scaleOf } from "../shared/activation";
import { type ArrayDtype, type BinaryLike, decodeArray } from "../shared/buffers";
import { el } from "../shared/dom";
import { type AnyModel, displayToken } from "../shared/model";
import { FeatureView, widget } from "../shared/view";

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

class TokenActivationsView extends FeatureView<Model> {
  private data: Float32Array = new Float32Array(0);
  private tokenEls: HTMLElement[][] = [];
  private select!: HTMLSelectElement;
  private readout!: HTMLElement;
  private legendLo!: HTMLElement;
  private legendHi!: HTMLElement;
  private legendBar!: HTMLElement;

  constructor(model: AnyModel<Model>, root: HTMLElement) {
    super(model, root);
    this.listenAndBuild("ms-token-acts", DATA_KEYS, {
      feature: () => this.applyFeature(),
      highlight_token: () => this.markPosition(this.model.get("highlight_token")),
    });
  }

  private get nTexts(): number {
    return this.model.get("n_texts");
  }
  private get nPos(): number {
    return this.model.get("n_pos");
  }

  protected build(): void {
    const m = this.model;
    this.reset();
    const tokens = m.get("tokens");
    const nFeatures = m.get("n_features");
    try {
      this.data = decodeArray(m.get("values"), m.get("dtype"), nFeatures * this.nTexts * this.nPos);
      if (tokens.length !== this.nTexts) throw new Error(`${tokens.length} texts for n_texts=${this.nTexts}`);
      const long = tokens.findIndex((t) => t.length > this.nPos);
      if (long >= 0) throw new Error(`text ${long} has ${tokens[long].length} tokens > n_pos=${this.nPos}`);
    } catch (err) {
      this.showError("ms-ta-error", "TokenActivations", err);
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
    this.showFeature();
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

  private featureName(f: number): string {
    return this.model.get("feature_names")[f] ?? `feature ${f}`;
  }

  private offset(text: number, pos: number): number {
    return (this.feature * this.nTexts + text) * this.nPos + pos;
  }

  /** Colour every token by the current feature; one scale for all texts. */
  protected showFeature(): void {
    const per = this.nTexts * this.nPos;
    const scale: ActivationScale = scaleOf(this.data, this.feature * per, per);
    const name = this.featureName(this.feature);
    this.tokenEls.forEach((spans, i) => {
      spans.forEach((s, p) => {
        const v = this.data[this.offset(i, p)];
        const text = formatValue(v);
        paintActivation(s, v, scale);
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
    this.send("highlight_token", p);
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

export default widget(TokenActivationsView);
