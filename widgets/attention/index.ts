// AttentionPatterns: every head as a thumbnail, one focused head as a labelled heatmap,
// and a token strip coloured by the focused head's attention from the hovered token.
// Python side: src/mechscope/widgets/attention.py (the traits below mirror it).
// A big pattern arrives as thumbnails + one head; other heads are fetched over the comm.

import { type ArrayDtype, type BinaryLike, decodeArray } from "../shared/buffers";
import { colorIndex, cssColor, formatWeight, needsLightText, RGBA32, writeColor } from "../shared/colormap";
import { el } from "../shared/dom";
import { type AnyModel, displayToken } from "../shared/model";
import { WidgetView, widget } from "../shared/view";
import { HeadCache, upsample } from "./heads";

/** Synced traits of mechscope.widgets.AttentionPatterns. */
export interface Model {
  tokens: string[];
  n_layers: number;
  n_heads: number;
  n_tokens: number;
  /** [layer, head, query, key] values (or thumbnails, below), little-endian, as `dtype`. */
  attention: BinaryLike;
  dtype: ArrayDtype;
  /** 0: `attention` is the whole pattern; s: [layer, head, side, side] maxima of s x s blocks. */
  thumb_stride: number;
  /** With thumbnails: the [query, key] pattern of head `focus_head` as `focus_dtype`, or empty. */
  focus: BinaryLike;
  focus_head: number[];
  focus_dtype: ArrayDtype;
  layer_labels: string[];
  /** [layer, head] of the focused head; two-way. */
  selected: number[];
  title: string;
  /** Position highlighted across linked views (hovered in the strip), -1 for none; two-way. */
  highlight_token: number;
}

// Thumbnails are at most this many pixels a side: larger heads are max-pooled so that
// sparse, sharp attention (one hot key) stays visible instead of being averaged away.
const THUMB_MAX_PX = 64;
// From this many heads on, the thumbnails are one canvas (an atlas) with one row / column label
// per layer / head: 1000 small canvases with a caption each take longer to lay out than to draw.
const ATLAS_MIN_HEADS = 256;
// Canvas pixels between two thumbnails of the atlas.
const ATLAS_GAP = 3;
// Target edge of the focused heatmap in CSS pixels; cells are integer-sized within it.
const FOCUS_TARGET_PX = 384;
// Axis labels are one line of 11-12px text (never smaller); below this cell size, only every
// k-th label is shown so that they never overlap.
const LABEL_MIN_PX = 14;
// Traits whose change means the whole view is rebuilt.
const DATA_KEYS = [
  "attention", "tokens", "n_layers", "n_heads", "n_tokens", "dtype", "layer_labels",
  "thumb_stride", "focus", "focus_head", "focus_dtype",
];

/** The comm side of anywidget's model: custom messages to and from Python. */
interface CommModel {
  send(content: Record<string, unknown>): void;
  on(event: "msg:custom", cb: (msg: Record<string, unknown>, buffers?: BinaryLike[]) => void): void;
  off(event: "msg:custom", cb: (msg: Record<string, unknown>, buffers?: BinaryLike[]) => void): void;
}

class AttentionView extends WidgetView<Model> {
  /** The whole [layer, head, q, k] pattern, or [layer, head, side, side] thumbnails. */
  private data: Float32Array = new Float32Array(0);
  /** 0 when `data` is the whole pattern, else the thumbnails' block size. */
  private stride = 0;
  private side = 0;
  private cache = new HeadCache();
  /** The focused head's [q, k] weights (full, or the blown-up thumbnail until it arrives). */
  private focusData: Float32Array = new Float32Array(0);
  private nLayers = 0;
  private nHeads = 0;
  private n = 0;
  private tokens: string[] = [];
  private layer = 0;
  private head = 0;
  private query = 0;
  private cell = 1;

  private thumbs: HTMLElement[] = [];
  /** The atlas of thumbnails (many heads), its selection mark, and its pitch in canvas px. */
  private atlas: HTMLCanvasElement | null = null;
  private atlasMark!: HTMLElement;
  private pitch = 0;
  private pitchPx = 0;
  private tokenEls: HTMLElement[] = [];
  private focusCanvas!: HTMLCanvasElement;
  private focusLabel!: HTMLElement;
  private rowMark!: HTMLElement;
  private readout!: HTMLElement;
  private caption!: HTMLElement;

  private readonly onMsg = (msg: Record<string, unknown>, buffers?: BinaryLike[]) => this.receive(msg, buffers);

  constructor(model: AnyModel<Model>, root: HTMLElement) {
    super(model, root);
    this.comm()?.on("msg:custom", this.onMsg);
    this.listenAndBuild("ms-attention", DATA_KEYS, {
      selected: () => this.applySelected(),
      highlight_token: () => this.applyHighlight(),
    });
  }

  destroy(): void {
    this.comm()?.off("msg:custom", this.onMsg);
    super.destroy();
  }

  /** The model's comm, where the host has one (a plain page's fake model may not). */
  private comm(): CommModel | null {
    const m = this.model as unknown as Partial<CommModel>;
    return typeof m.send === "function" && typeof m.on === "function" ? (m as CommModel) : null;
  }

  protected build(): void {
    const m = this.model;
    this.reset();
    this.nLayers = m.get("n_layers");
    this.nHeads = m.get("n_heads");
    this.n = m.get("n_tokens");
    this.tokens = m.get("tokens");
    this.stride = m.get("thumb_stride") || 0;
    this.side = this.stride ? Math.ceil(this.n / this.stride) : this.n;
    this.cache = new HeadCache();
    try {
      const count = this.nLayers * this.nHeads * this.side * this.side;
      this.data = decodeArray(m.get("attention"), m.get("dtype"), count);
      if (this.tokens.length !== this.n) {
        throw new Error(`${this.tokens.length} tokens for ${this.n} positions`);
      }
      const fh = m.get("focus_head");
      if (this.stride && Array.isArray(fh) && fh.length === 2) {
        this.cache.put(fh[0], fh[1], decodeArray(m.get("focus"), m.get("focus_dtype"), this.n * this.n));
      }
    } catch (err) {
      this.showError("ms-attn-error", "AttentionPatterns", err);
      return;
    }
    [this.layer, this.head] = this.clampSelected(m.get("selected")) ?? [0, 0];
    this.query = this.n - 1;

    this.titleEl = el("div", "ms-attn-title");
    const main = el("div", "ms-attn-main");
    this.atlas = null;
    this.thumbs = [];
    const many = this.nLayers * this.nHeads >= ATLAS_MIN_HEADS;
    main.append(many ? this.buildAtlas() : this.buildGrid(), this.buildFocus());
    this.root.append(this.titleEl, main, this.buildStrip(), this.buildLegend());
    this.renderTitle();
    this.ok = true;

    this.drawThumbs();
    this.showFocus();
    this.applyHighlight();
    this.root.setAttribute("data-rendered", "true");
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
      const rowLabel = el("div", "ms-attn-axis ms-attn-axis-row", this.layerLabel(l));
      rowLabel.title = this.layerLabel(l);
      grid.append(rowLabel);
      for (let h = 0; h < this.nHeads; h++) {
        const label = `${this.layerLabel(l)}H${h}`;
        const thumb = el("div", "ms-attn-thumb");
        thumb.dataset.layer = String(l);
        thumb.dataset.head = String(h);
        thumb.tabIndex = 0;
        thumb.setAttribute("role", "button");
        thumb.setAttribute("aria-label", `focus ${label}`);
        thumb.title = label;
        // a long label is cut with an ellipsis inside its thumbnail; the title holds all of it
        const caption = el("span", "ms-attn-thumb-label", label);
        caption.title = label;
        thumb.append(el("canvas"), caption);
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

  /** Thumbnail side in pixels, and the block size pooled into one pixel. */
  private thumbGeometry(): { m: number; stride: number } {
    // Thumbnails from Python are drawn as they are; a whole pattern is max-pooled here first.
    const stride = this.stride ? 1 : Math.ceil(this.side / THUMB_MAX_PX);
    return { m: Math.ceil(this.side / stride), stride };
  }

  /** Every head's thumbnail on one canvas, layer rows x head columns, labelled once a row / column. */
  private buildAtlas(): HTMLElement {
    const { m } = this.thumbGeometry();
    this.pitch = m + ATLAS_GAP;
    const scale = Math.max(1, Math.floor(48 / m)); // CSS px per canvas px
    const pitchPx = (this.pitchPx = this.pitch * scale);
    const wrap = el("div", "ms-attn-grid-wrap");
    const box = el("div", "ms-attn-atlas");
    box.style.setProperty("--ms-atlas-w", `${this.nHeads * pitchPx}px`);
    box.style.setProperty("--ms-atlas-h", `${this.nLayers * pitchPx}px`);
    const cols = el("div", "ms-attn-atlas-cols");
    for (let h = 0; h < this.nHeads; h++) {
      const c = el("span", "ms-attn-axis", `H${h}`);
      c.style.left = `${h * pitchPx + (m * scale) / 2}px`;
      cols.append(c);
    }
    const rows = el("div", "ms-attn-atlas-rows");
    for (let l = 0; l < this.nLayers; l++) {
      const r = el("span", "ms-attn-axis ms-attn-axis-row", this.layerLabel(l));
      r.title = this.layerLabel(l);
      r.style.top = `${l * pitchPx + (m * scale) / 2}px`;
      rows.append(r);
    }
    const canvasBox = el("div", "ms-attn-canvas-box");
    const atlas = el("canvas", "ms-attn-atlas-canvas");
    atlas.width = this.nHeads * this.pitch;
    atlas.height = this.nLayers * this.pitch;
    atlas.style.width = `${atlas.width * scale}px`;
    atlas.style.height = `${atlas.height * scale}px`;
    atlas.tabIndex = 0;
    atlas.setAttribute("role", "grid");
    atlas.setAttribute("aria-label", "attention heads: click one to focus it; arrow keys move");
    this.atlasMark = el("div", "ms-attn-atlas-mark");
    this.atlasMark.style.width = this.atlasMark.style.height = `${m * scale + 4}px`;
    canvasBox.append(atlas, this.atlasMark);
    const at = (ev: MouseEvent): [number, number] | null => {
      const l = Math.floor(ev.offsetY / pitchPx);
      const h = Math.floor(ev.offsetX / pitchPx);
      return l >= 0 && l < this.nLayers && h >= 0 && h < this.nHeads ? [l, h] : null;
    };
    atlas.addEventListener("click", (ev) => {
      const lh = at(ev);
      if (lh) this.select(lh[0], lh[1]);
    });
    atlas.addEventListener("mousemove", (ev) => {
      const lh = at(ev);
      atlas.title = lh ? `${this.layerLabel(lh[0])}H${lh[1]}` : "";
    });
    atlas.addEventListener("keydown", (ev) => {
      const moves: Record<string, [number, number]> = {
        ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1],
      };
      const d = moves[ev.key];
      if (!d) return;
      ev.preventDefault();
      const l = Math.min(this.nLayers - 1, Math.max(0, this.layer + d[0]));
      const h = Math.min(this.nHeads - 1, Math.max(0, this.head + d[1]));
      this.select(l, h);
    });
    this.atlas = atlas;
    box.append(el("div", "ms-attn-axis"), cols, rows, canvasBox);
    box.dataset.pitch = String(pitchPx);
    wrap.append(box);
    return wrap;
  }

  private buildFocus(): HTMLElement {
    const n = this.n;
    this.cell = Math.max(1, Math.min(24, Math.floor(FOCUS_TARGET_PX / n)));
    const side = n * this.cell;
    const step = Math.ceil(LABEL_MIN_PX / this.cell);
    const fontPx = Math.min(12, Math.max(11, this.cell - 2));

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
      c.title = `key ${i}: ${displayToken(this.tokens[i])}`;
      cols.append(c);
      const r = el("span", "ms-attn-rowlabel", displayToken(this.tokens[i]));
      r.style.top = `${i * this.cell + this.cell / 2}px`;
      r.title = `query ${i}: ${displayToken(this.tokens[i])}`;
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
      if (!t) return;
      this.setQuery(Number(t.dataset.index));
      this.hoverToken(Number(t.dataset.index));
    });
    strip.addEventListener("mouseleave", () => this.hoverToken(-1));
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

  /** Offset of head (l, h) in the flat [layer, head, ...] `data`. */
  private offset(l: number, h: number): number {
    return (l * this.nHeads + h) * this.side * this.side;
  }

  private drawThumbs(): void {
    const { m, stride } = this.thumbGeometry();
    if (this.atlas) {
      const ctx = this.atlas.getContext("2d");
      if (!ctx) return;
      const img = ctx.createImageData(this.atlas.width, this.atlas.height);
      const px = new Uint32Array(img.data.buffer);
      for (let l = 0; l < this.nLayers; l++) {
        for (let h = 0; h < this.nHeads; h++) {
          this.poolInto(px, this.atlas.width, h * this.pitch, l * this.pitch, l, h, stride, m);
        }
      }
      ctx.putImageData(img, 0, 0);
      return;
    }
    for (const thumb of this.thumbs) {
      const canvas = thumb.querySelector("canvas") as HTMLCanvasElement;
      canvas.width = m;
      canvas.height = m;
      const ctx = canvas.getContext("2d");
      if (!ctx) continue;
      const img = ctx.createImageData(m, m);
      const px = new Uint32Array(img.data.buffer);
      this.poolInto(px, m, 0, 0, Number(thumb.dataset.layer), Number(thumb.dataset.head), stride, m);
      ctx.putImageData(img, 0, 0);
    }
  }

  /** Draw head (l, h)'s m x m thumbnail into `px` (rows of `width` pixels) at (x0, y0). */
  private poolInto(px: Uint32Array, width: number, x0: number, y0: number, l: number, h: number, stride: number, m: number): void {
    const n = this.side;
    const d = this.data;
    const base = this.offset(l, h);
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
        px[(y0 + qi) * width + x0 + ki] = RGBA32[colorIndex(v)];
      }
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
    this.send("selected", [l, h]);
  }

  /** Python (or another view of the same model) changed `selected`. */
  private applySelected(): void {
    const sel = this.clampSelected(this.model.get("selected"));
    if (!this.ok || !sel || (sel[0] === this.layer && sel[1] === this.head)) return;
    [this.layer, this.head] = sel;
    this.showFocus();
  }

  private showFocus(): void {
    if (this.atlas) {
      this.atlasMark.style.left = `${this.head * this.pitchPx - 2}px`;
      this.atlasMark.style.top = `${this.layer * this.pitchPx - 2}px`;
      this.atlas.setAttribute("aria-label", `attention heads; focused: ${this.layerLabel(this.layer)}H${this.head}`);
    }
    for (const t of this.thumbs) {
      const on = Number(t.dataset.layer) === this.layer && Number(t.dataset.head) === this.head;
      t.classList.toggle("ms-attn-thumb-selected", on);
      t.setAttribute("aria-pressed", String(on));
    }
    const label = `${this.layerLabel(this.layer)}H${this.head}`;
    this.focusLabel.textContent = label;
    this.root.dataset.selected = `${this.layer},${this.head}`;

    const n = this.n;
    const full = this.fullHead(this.layer, this.head);
    this.focusData = full ?? upsample(this.data, this.offset(this.layer, this.head), this.side, this.stride, n);
    this.root.dataset.resolution = full ? "full" : "thumbnail";
    if (!full) {
      this.focusLabel.textContent =
        `${label} · ${this.stride}×${this.stride} block maxima until the full pattern arrives from the kernel`;
      this.requestHead(this.layer, this.head);
    }
    const ctx = this.focusCanvas.getContext("2d");
    if (ctx) {
      const img = ctx.createImageData(n, n);
      const px = new Uint32Array(img.data.buffer);
      const d = this.focusData;
      for (let i = 0; i < n * n; i++) px[i] = RGBA32[colorIndex(d[i])];
      ctx.putImageData(img, 0, 0);
    }
    this.setQuery(this.query);
  }

  /** Head (l, h) at full resolution if the view has it: a slice of a whole pattern, or cached. */
  private fullHead(l: number, h: number): Float32Array | undefined {
    if (!this.stride) {
      const base = this.offset(l, h);
      return this.data.subarray(base, base + this.n * this.n);
    }
    return this.cache.get(l, h);
  }

  private requestHead(l: number, h: number): void {
    const comm = this.comm();
    if (comm && this.cache.request(l, h)) comm.send({ type: "head", layer: l, head: h });
  }

  /** A reply from Python: a head's float32 [q, k] pattern, or an error. */
  private receive(msg: Record<string, unknown>, buffers?: BinaryLike[]): void {
    const l = Number(msg.layer);
    const h = Number(msg.head);
    if (!this.ok) return;
    if (msg.type === "error") {
      this.cache.fail(l, h);
      this.readout.textContent = `could not fetch ${this.layerLabel(l)}H${h}: ${String(msg.message)}`;
      return;
    }
    if (msg.type !== "head" || !buffers || buffers.length !== 1) return;
    try {
      this.cache.put(l, h, decodeArray(buffers[0], "float32", this.n * this.n));
    } catch (err) {
      this.cache.fail(l, h);
      this.readout.textContent = `could not decode ${this.layerLabel(l)}H${h}: ${String(err)}`;
      return;
    }
    if (l === this.layer && h === this.head) this.showFocus();
  }

  /** Colour the strip by the focused head's attention from token `q` (as query) to every key. */
  private setQuery(q: number): void {
    this.query = q;
    const base = q * this.n;
    this.tokenEls.forEach((t, k) => {
      const w = this.focusData[base + k];
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

  /** The user hovers token `i` of the strip (-1: left it): tell Python and linked views. */
  private hoverToken(i: number): void {
    if (this.model.get("highlight_token") === i) return;
    this.send("highlight_token", i);
    this.markHighlight(i);
  }

  /** `highlight_token` changed (a linked view's hover): mark it and read attention from it. */
  private applyHighlight(): void {
    if (!this.ok) return;
    const i = this.model.get("highlight_token");
    this.markHighlight(i);
    if (i >= 0 && i < this.n && i !== this.query) this.setQuery(i);
  }

  private markHighlight(i: number): void {
    this.tokenEls.forEach((t, k) => t.classList.toggle("ms-attn-token-hl", k === i));
    this.root.dataset.highlight = String(i);
  }

  private hoverCell(ev: MouseEvent): void {
    const q = Math.min(this.n - 1, Math.max(0, Math.floor(ev.offsetY / this.cell)));
    const k = Math.min(this.n - 1, Math.max(0, Math.floor(ev.offsetX / this.cell)));
    const w = this.focusData[q * this.n + k];
    this.readout.textContent =
      `query ${q} \u201c${displayToken(this.tokens[q])}\u201d \u2192 key ${k} ` +
      `\u201c${displayToken(this.tokens[k])}\u201d: ${formatWeight(w)}`;
    if (q !== this.query) this.setQuery(q);
  }
}

export default widget(AttentionView);
