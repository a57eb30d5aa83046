// ImageGrid: a grid of small images (conv filters, feature visualisations, dataset examples)
// sharing one colour scale; hover a pixel for its exact value, click an image to select it
// (two-way `selected` trait). Python side: src/mechscope/widgets/image_grid.py (the traits
// below mirror it).

import { formatValue } from "../shared/activation";
import { type BinaryLike, decodeArray } from "../shared/buffers";
import { css } from "../shared/colormap";
import { el } from "../shared/dom";
import { float32Text, type HeatScale, heatGradient, heatRgb, heatScale } from "../shared/heatscale";
import { type AnyModel } from "../shared/model";
import { WidgetView, widget } from "../shared/view";

/** Synced traits of mechscope.widgets.ImageGrid. */
export interface Model {
  n_images: number;
  height: number;
  width: number;
  /** 1 (values through the colour map) or 3 (RGB in [0, 1], shown as is). */
  channels: number;
  /** [image, row, col, channel] float32 values, C order, little-endian. */
  values: BinaryLike;
  labels: string[];
  title: string;
  value_label: string;
  /** White point of the diverging map; null for the sequential map. */
  center: number | null;
  /** Colour scale limits, computed in Python over every image (one scale for all). */
  vmin: number;
  vmax: number;
  /** Index of the selected image, -1 for none; two-way. */
  selected: number;
}

const DATA_KEYS = [
  "n_images", "height", "width", "channels", "values", "labels", "value_label", "center",
  "vmin", "vmax",
];
// Each image is drawn about this many CSS px wide, pixels as integer-sized squares.
const IMAGE_TARGET_PX = 80;
const ZOOM_MAX = 24;

class ImageGridView extends WidgetView<Model> {
  private data: Float32Array = new Float32Array(0);
  private n = 0;
  private h = 0;
  private w = 0;
  private c = 1;
  private zoom = 1;
  private scale: HeatScale = heatScale(0, 1, null);
  private cells: HTMLElement[] = [];
  private readout!: HTMLElement;

  constructor(model: AnyModel<Model>, root: HTMLElement) {
    super(model, root);
    this.listenAndBuild("ms-image-grid", DATA_KEYS, { selected: () => this.showSelected() });
  }

  protected build(): void {
    const m = this.model;
    this.reset();
    this.cells = [];
    [this.n, this.h, this.w, this.c] = [m.get("n_images"), m.get("height"), m.get("width"), m.get("channels")];
    try {
      this.data = decodeArray(m.get("values"), "float32", this.n * this.h * this.w * this.c);
      if (m.get("labels").length !== this.n) {
        throw new Error(`labels has ${m.get("labels").length} entries for ${this.n} images`);
      }
    } catch (err) {
      this.showError("ms-ig-error", "ImageGrid", err);
      return;
    }
    this.scale = heatScale(m.get("vmin"), m.get("vmax"), m.get("center"));
    this.zoom = Math.max(1, Math.min(ZOOM_MAX, Math.floor(IMAGE_TARGET_PX / Math.max(this.h, this.w))));

    this.titleEl = el("div", "ms-ig-title");
    const head = el("div", "ms-ig-head");
    this.readout = el("div", "ms-ig-readout", "hover a pixel for its value");
    if (this.c === 1) head.append(this.buildLegend());
    head.append(this.readout);
    const grid = el("div", "ms-ig-grid");
    for (let i = 0; i < this.n; i++) grid.append(this.buildCell(i));
    grid.addEventListener("mousemove", (ev) => this.hover(ev));
    grid.addEventListener("mouseleave", () => {
      this.readout.textContent = "hover a pixel for its value";
      this.root.dataset.hover = "";
    });
    grid.addEventListener("click", (ev) => {
      const cell = (ev.target as Element).closest<HTMLElement>(".ms-ig-cell");
      if (cell) this.select(Number(cell.dataset.index));
    });
    this.root.append(this.titleEl, head, grid);
    this.renderTitle();
    this.ok = true;
    this.showSelected();
    this.root.setAttribute("data-rendered", "true");
  }

  private buildLegend(): HTMLElement {
    const s = this.scale;
    const legend = el("div", "ms-ig-legend");
    const label = this.model.get("value_label");
    if (label) legend.append(el("span", "ms-ig-legend-label", label));
    const bar = el("span", "ms-ig-legend-bar");
    bar.style.background = heatGradient(s);
    bar.title = s.kind === "diverging" ? `diverging, white at ${formatValue(s.center)}` : "sequential (viridis), min to max";
    legend.append(
      el("span", "ms-ig-legend-lo", formatValue(s.lo)),
      bar,
      el("span", "ms-ig-legend-hi", formatValue(s.hi)),
      el("span", "ms-ig-legend-note", `one scale for all ${this.n} images`),
      el("span", "ms-ig-nan-swatch"),
      el("span", "", "NaN / Inf"),
    );
    return legend;
  }

  /** Image `i`: a canvas of w x h pixels, drawn zoom x larger, and its label under it. */
  private buildCell(i: number): HTMLElement {
    const cell = el("div", "ms-ig-cell");
    cell.dataset.index = String(i);
    const canvas = el("canvas", "ms-ig-canvas");
    canvas.width = this.w;
    canvas.height = this.h;
    canvas.style.width = `${this.w * this.zoom}px`;
    canvas.style.height = `${this.h * this.zoom}px`;
    const ctx = canvas.getContext("2d");
    if (ctx) {
      const img = ctx.createImageData(this.w, this.h);
      for (let p = 0; p < this.h * this.w; p++) img.data.set([...this.rgbAt(i, p), 255], p * 4);
      ctx.putImageData(img, 0, 0);
    }
    const label = this.model.get("labels")[i];
    const caption = el("div", "ms-ig-label", label);
    caption.title = label;
    cell.title = `image ${i}${label ? `: ${label}` : ""} (click to select)`;
    cell.append(canvas, caption);
    this.cells.push(cell);
    return cell;
  }

  private rgbAt(i: number, p: number): [number, number, number] {
    const base = (i * this.h * this.w + p) * this.c;
    if (this.c === 1) return heatRgb(this.data[base], this.scale);
    const byte = (v: number) => (v - v !== 0 ? 0 : Math.round(Math.min(1, Math.max(0, v)) * 255));
    const [r, g, b] = [this.data[base], this.data[base + 1], this.data[base + 2]];
    if (r - r !== 0 || g - g !== 0 || b - b !== 0) return [255, 0, 255];
    return [byte(r), byte(g), byte(b)];
  }

  /** The readout for the pixel under the mouse: "3 · row 2, col 5: value = 0.25". */
  private hover(ev: MouseEvent): void {
    const canvas = (ev.target as Element).closest<HTMLCanvasElement>(".ms-ig-canvas");
    const cell = canvas?.closest<HTMLElement>(".ms-ig-cell");
    if (!canvas || !cell) return;
    const i = Number(cell.dataset.index);
    const r = Math.floor(ev.offsetY / this.zoom);
    const c = Math.floor(ev.offsetX / this.zoom);
    if (!(r >= 0 && r < this.h && c >= 0 && c < this.w)) return;
    const base = (i * this.h * this.w + r * this.w + c) * this.c;
    const label = this.model.get("labels")[i];
    const where = `${label || `image ${i}`} \u00b7 row ${r}, col ${c}`;
    let text: string;
    let value: string;
    if (this.c === 1) {
      value = float32Text(this.data[base]);
      text = `${where}: ${this.model.get("value_label") || "value"} = ${value}`;
    } else {
      value = [0, 1, 2].map((k) => float32Text(this.data[base + k])).join(", ");
      text = `${where}: rgb = (${value})`;
    }
    this.readout.textContent = text;
    this.readout.dataset.value = value;
    this.readout.style.borderLeftColor = css(this.rgbAt(i, r * this.w + c));
    this.root.dataset.hover = `${i},${r},${c}`;
  }

  /** A click on an image: highlight it and tell Python. */
  private select(i: number): void {
    this.send("selected", i);
    this.showSelected();
  }

  private showSelected(): void {
    if (!this.ok) return;
    const sel = this.model.get("selected");
    this.cells.forEach((cell, i) => {
      cell.classList.toggle("ms-ig-selected", i === sel);
      if (i === sel) cell.setAttribute("aria-selected", "true");
      else cell.removeAttribute("aria-selected");
    });
    this.root.dataset.selected = sel >= 0 && sel < this.n ? String(sel) : "";
  }
}

export default widget(ImageGridView);
