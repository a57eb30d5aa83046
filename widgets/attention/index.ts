// AttentionPatterns: every head as a thumbnail, one focused head as a labelled heatmap,
// and a token strip coloured by the focused head's attention from the hovered token.
// Python side: src/mechscope/widgets/attention.py (the traits below mirror it).

import { type ArrayDtype, type BinaryLike, decodeArray } from "../shared/buffers";
import { colorIndex, cssColor, formatWeight, needsLightText, RGBA32, writeColor } from "../shared/colormap";
import { clearChildren, el } from "../shared/dom";
import { type AnyModel, coalesce, listen, type RenderProps } from "../shared/model";

/** Synced traits of mechscope.widgets.AttentionPatterns. */
export interface Model {
  tokens: string[];
  n_layers: number;
  n_heads: number;
  n_tokens: number;
  /** [layer, head, query, key] values, C order, little-endian, encoded as `dtype`. */
  attention: BinaryLike;
  dtype: ArrayDtype;
  layer_labels: string[];
  /** [layer, head] of the focused head; two-way. */
  selected: number[];
  title: string;
}

// Thumbnails are at most this many pixels a side: larger heads are max-pooled so that
// sparse, sharp attention (one hot key) stays visible instead of being averaged away.
const THUMB_MAX_PX = 64;
// Target edge of the focused heatmap in CSS pixels; cells are integer-sized within it.
const FOCUS_TARGET_PX = 384;
// Below this cell size, only every k-th axis label fits.
const LABEL_MIN_PX = 10;
// Traits whose change means the whole view is rebuilt.
const DATA_KEYS = ["attention", "tokens", "n_layers", "n_heads", "n_tokens", "dtype", "layer_labels"];

/** One token as shown: whitespace kept, newlines and tabs made visible. */
function displayToken(tok: string): string {
  return tok.replace(/\n/g, "\u21b5").replace(/\t/g, "\u2192");
}

class AttentionView {
  private data: Float32Array = new Float32Array(0);
  private nLayers = 0;
  private nHeads = 0;
  private n = 0;
  private tokens: string[] = [];
  private layer = 0;
  private head = 0;
  private query = 0;
  private cell = 1;
  /** False while the payload is undecodable: only the error message is shown. */
  private ok = false;

  private thumbs: HTMLElement[] = [];
  private tokenEls: HTMLElement[] = [];
  private titleEl: HTMLElement | null = null;
  private focusCanvas!: HTMLCanvasElement;
  private focusLabel!: HTMLElement;
  private rowMark!: HTMLElement;
  private readout!: HTMLElement;
  private caption!: HTMLElement;

  // Python sends several changed traits in one message; rebuild once, after all of them.
  private readonly onData = coalesce(() => this.build());
  private readonly onSelected = () => this.applySelected();
  private readonly onTitle = () => this.renderTitle();
  private unlisten: () => void = () => {};

  constructor(
    private readonly model: AnyModel<Model>,
    private readonly root: HTMLElement,
  ) {
    root.classList.add("ms-attention");
    this.unlisten = listen(model, DATA_KEYS, this.onData, { selected: this.onSelected, title: this.onTitle });
    this.build();
  }

  destroy(): void {
    this.unlisten();
    clearChildren(this.root);
  }

  /** (Re)build the whole view from the model: runs once, and again when the data changes. */
  private build(): void {
    const m = this.model;
    this.ok = false;
    this.titleEl = null;
    this.root.removeAttribute("data-rendered");
    clearChildren(this.root);
    this.nLayers = m.get("n_layers");
    this.nHeads = m.get("n_heads");
    this.n = m.get("n_tokens");
    this.tokens = m.get("tokens");
    try {
      const count = this.nLayers * this.nHeads * this.n * this.n;
      this.data = decodeArray(m.get("attention"), m.get("dtype"), count);
      if (this.tokens.length !== this.n) {
        throw new Error(`${this.tokens.length} tokens for ${this.n} positions`);
      }
    } catch (err) {
      // A broken payload is shown, not swallowed: an empty widget looks like a working one.
      this.root.append(el("div", "ms-attn-error", `AttentionPatterns could not decode its data: ${String(err)}`));
      console.error(err);
      return;
    }
    [this.layer, this.head] = this.clampSelected(m.get("selected")) ?? [0, 0];
    this.query = this.n - 1;

    this.titleEl = el("div", "ms-attn-title");
    const main = el("div", "ms-attn-main");
    main.append(this.buildGrid(), this.buildFocus());
    this.root.append(this.titleEl, main, this.buildStrip(), this.buildLegend());
    this.renderTitle();
    this.ok = true;

    this.drawThumbs();
    this.showFocus();
    this.root.setAttribute("data-rendered", "true");
  }

  private renderTitle(): void {
    if (!this.titleEl) return;
    const title = this.model.get("title");
    this.titleEl.textContent = title;
    this.titleEl.hidden = !title;
  }

  private layerLabel(l: number): string {
    const labels = this.model.get("layer_labels");
    return labels && labels.length === this.nLayers ? labels[l] : `L${l}`;
  }

  private buildGrid(): HTMLElement {
    const wrap = el("div", "ms-attn-grid-wrap");
    const grid = el("div", "ms-attn-grid");
    grid.style.gridTemplateColumns = `auto repeat(${this.nHeads}, var(--ms-thumb))`;
    grid.append(el("div", "ms-attn-axis"));
    for (let h = 0; h < this.nHeads; h++) grid.append(el("div", "ms-attn-axis", `H${h}`));
    this.thumbs = [];
    for (let l = 0; l < this.nLayers; l++) {
      grid.append(el("div", "ms-attn-axis ms-attn-axis-row", this.layerLabel(l)));
      for (let h = 0; h < this.nHeads; h++) {
        const label = `${this.layerLabel(l)}H${h}`;
        const thumb = el("div", "ms-attn-thumb");
        thumb.dataset.layer = String(l);
        thumb.dataset.head = String(h);
        thumb.tabIndex = 0;
        thumb.setAttribute("role", "button");
        thumb.setAttribute("aria-label", `focus ${label}`);
        thumb.title = label;
        thumb.append(el("canvas"), el("span", "ms-attn-thumb-label", label));
        this.thumbs.push(thumb);
        grid.append(thumb);
      }
    }
    // One delegated listener instead of one per thumbnail (models can have 1000+ heads).
    const pick = (ev: Event) => {
      const t = (ev.target as Element).closest<HTMLElement>(".ms-attn-thumb");
      if (t) this.select(Number(t.dataset.layer), Number(t.dataset.head));
    };
    grid.addEventListener("click", pick);
    grid.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        pick(ev);
      }
    });
    wrap.append(grid);
    return wrap;
  }

  private buildFocus(): HTMLElement {
    const n = this.n;
    this.cell = Math.max(1, Math.min(24, Math.floor(FOCUS_TARGET_PX / n)));
    const side = n * this.cell;
    const step = Math.ceil(LABEL_MIN_PX / this.cell);
    const fontPx = Math.min(12, Math.max(9, this.cell - 2));

    const panel = el("div", "ms-attn-focus-panel");
    this.focusLabel = el("div", "ms-attn-focus-label");
    const heat = el("div", "ms-attn-heat");
    heat.style.setProperty("--ms-side", `${side}px`);
    heat.style.setProperty("--ms-font", `${fontPx}px`);

    // Key labels along the top (rotated), query labels down the left; every `step`-th fits.
    const cols = el("div", "ms-attn-collabels");
    const rows = el("div", "ms-attn-rowlabels");
    for (let i = 0; i < n; i += step) {
      const c = el("span", "ms-attn-collabel", displayToken(this.tokens[i]));
      c.style.left = `${i * this.cell + this.cell / 2}px`;
      c.title = `key ${i}`;
      cols.append(c);
      const r = el("span", "ms-attn-rowlabel", displayToken(this.tokens[i]));
      r.style.top = `${i * this.cell + this.cell / 2}px`;
      r.title = `query ${i}`;
      rows.append(r);
    }
    const axisNote = el("div", "ms-attn-corner", "query \u2193  key \u2192");

    const canvasBox = el("div", "ms-attn-canvas-box");
    this.focusCanvas = el("canvas", "ms-attn-focus");
    this.focusCanvas.width = n;
    this.focusCanvas.height = n;
    this.focusCanvas.style.width = `${side}px`;
    this.focusCanvas.style.height = `${side}px`;
    this.rowMark = el("div", "ms-attn-rowmark");
    this.rowMark.style.height = `${this.cell}px`;
    canvasBox.append(this.focusCanvas, this.rowMark);
    this.focusCanvas.addEventListener("mousemove", (ev) => this.hoverCell(ev));
    this.focusCanvas.addEventListener("mouseleave", () => {
      this.readout.textContent = "\u00a0";
    });

    heat.append(axisNote, cols, rows, canvasBox);
    this.readout = el("div", "ms-attn-readout", "\u00a0");
    panel.append(this.focusLabel, heat, this.readout);
    return panel;
  }

  private buildStrip(): HTMLElement {
    const wrap = el("div", "ms-attn-strip-wrap");
    this.caption = el("div", "ms-attn-caption");
    const strip = el("div", "ms-attn-strip");
    this.tokenEls = this.tokens.map((tok, i) => {
      const t = el("span", "ms-attn-token", displayToken(tok));
      t.dataset.index = String(i);
      return t;
    });
    strip.append(...this.tokenEls);
    strip.addEventListener("mouseover", (ev) => {
      const t = (ev.target as Element).closest<HTMLElement>(".ms-attn-token");
      if (t) this.setQuery(Number(t.dataset.index));
    });
    wrap.append(this.caption, strip);
    return wrap;
  }

  private buildLegend(): HTMLElement {
    const legend = el("div", "ms-attn-legend");
    const bar = el("canvas", "ms-attn-colorbar");
    bar.width = 128;
    bar.height = 1;
    const img = new ImageData(128, 1);
    for (let i = 0; i < 128; i++) writeColor(img.data, i * 4, i / 127);
    bar.getContext("2d")?.putImageData(img, 0, 0);
    const nan = el("span", "ms-attn-nan-swatch");
    legend.append(el("span", "", "0"), bar, el("span", "", "1"), nan, el("span", "", "NaN / Inf"));
    return legend;
  }

  /** Offset of head (l, h) in the flat [layer, head, query, key] array. */
  private offset(l: number, h: number): number {
    return (l * this.nHeads + h) * this.n * this.n;
  }

  private drawThumbs(): void {
    const n = this.n;
    const stride = Math.ceil(n / THUMB_MAX_PX);
    const m = Math.ceil(n / stride);
    const d = this.data;
    for (const thumb of this.thumbs) {
      const canvas = thumb.querySelector("canvas") as HTMLCanvasElement;
      canvas.width = m;
      canvas.height = m;
      const ctx = canvas.getContext("2d");
      if (!ctx) continue;
      const img = ctx.createImageData(m, m);
      const px = new Uint32Array(img.data.buffer);
      const base = this.offset(Number(thumb.dataset.layer), Number(thumb.dataset.head));
      for (let qi = 0; qi < m; qi++) {
        const q1 = Math.min(n, (qi + 1) * stride);
        for (let ki = 0; ki < m; ki++) {
          const k1 = Math.min(n, (ki + 1) * stride);
          // Max-pool the block; a non-finite value anywhere marks the whole block.
          let v = 0;
          block: for (let q = qi * stride; q < q1; q++) {
            for (let k = ki * stride, o = base + q * n + k; k < k1; k++, o++) {
              const x = d[o];
              if (x - x !== 0) {
                v = NaN;
                break block;
              }
              if (x > v) v = x;
            }
          }
          px[qi * m + ki] = RGBA32[colorIndex(v)];
        }
      }
      ctx.putImageData(img, 0, 0);
    }
  }

  private clampSelected(sel: number[] | null | undefined): [number, number] | null {
    if (!Array.isArray(sel) || sel.length !== 2) return null;
    const [l, h] = sel;
    if (!(l >= 0 && l < this.nLayers && h >= 0 && h < this.nHeads)) return null;
    return [l, h];
  }

  /** A click in the grid: focus locally and tell Python. */
  private select(l: number, h: number): void {
    this.layer = l;
    this.head = h;
    this.showFocus();
    this.model.set("selected", [l, h]);
    this.model.save_changes();
  }

  /** Python (or another view of the same model) changed `selected`. */
  private applySelected(): void {
    const sel = this.clampSelected(this.model.get("selected"));
    if (!this.ok || !sel || (sel[0] === this.layer && sel[1] === this.head)) return;
    [this.layer, this.head] = sel;
    this.showFocus();
  }

  private showFocus(): void {
    for (const t of this.thumbs) {
      const on = Number(t.dataset.layer) === this.layer && Number(t.dataset.head) === this.head;
      t.classList.toggle("ms-attn-thumb-selected", on);
      t.setAttribute("aria-pressed", String(on));
    }
    const label = `${this.layerLabel(this.layer)}H${this.head}`;
    this.focusLabel.textContent = label;
    this.root.dataset.selected = `${this.layer},${this.head}`;

    const n = this.n;
    const ctx = this.focusCanvas.getContext("2d");
    if (ctx) {
      const img = ctx.createImageData(n, n);
      const base = this.offset(this.layer, this.head);
      const px = new Uint32Array(img.data.buffer);
      for (let i = 0; i < n * n; i++) px[i] = RGBA32[colorIndex(this.data[base + i])];
      ctx.putImageData(img, 0, 0);
    }
    this.setQuery(this.query);
  }

  /** Colour the strip by the focused head's attention from token `q` (as query) to every key. */
  private setQuery(q: number): void {
    this.query = q;
    const base = this.offset(this.layer, this.head) + q * this.n;
    this.tokenEls.forEach((t, k) => {
      const w = this.data[base + k];
      const text = formatWeight(w);
      t.style.background = cssColor(w);
      t.style.color = needsLightText(w) ? "#fff" : "#111";
      t.dataset.weight = text;
      t.title = `${text}: attention from token ${q} to token ${k} in ${this.layerLabel(this.layer)}H${this.head}`;
      t.classList.toggle("ms-attn-token-query", k === q);
    });
    this.rowMark.style.top = `${q * this.cell}px`;
    this.caption.textContent =
      `Attention from token ${q} \u201c${displayToken(this.tokens[q])}\u201d in ` +
      `${this.layerLabel(this.layer)}H${this.head}; hover a token to change it.`;
  }

  private hoverCell(ev: MouseEvent): void {
    const q = Math.min(this.n - 1, Math.max(0, Math.floor(ev.offsetY / this.cell)));
    const k = Math.min(this.n - 1, Math.max(0, Math.floor(ev.offsetX / this.cell)));
    const w = this.data[this.offset(this.layer, this.head) + q * this.n + k];
    this.readout.textContent =
      `query ${q} \u201c${displayToken(this.tokens[q])}\u201d \u2192 key ${k} ` +
      `\u201c${displayToken(this.tokens[k])}\u201d: ${formatWeight(w)}`;
    if (q !== this.query) this.setQuery(q);
  }
}

function render({ model, el: root }: RenderProps<Model>): () => void {
  const view = new AttentionView(model, root);
  return () => view.destroy();
}

export default { render };
