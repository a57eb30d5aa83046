// Heatmap: one or more labelled grids (panels) of values sharing one colour scale; hover a
// cell for its exact value, click it to select it (two-way `selected` trait).
// Python side: src/mechscope/widgets/heatmap.py (the traits below mirror it).

import { formatValue } from "../shared/activation";
import { type BinaryLike, decodeArray } from "../shared/buffers";
import { el, textWidth } from "../shared/dom";
import { float32Text, type HeatScale, heatCss, heatGradient, heatRgb, heatScale } from "../shared/heatscale";
import { type AnyModel, displayToken } from "../shared/model";
import { WidgetView, widget } from "../shared/view";

/** Synced traits of mechscope.widgets.Heatmap. */
export interface Model {
  n_panels: number;
  n_rows: number;
  n_cols: number;
  /** [panel, row, col] float32 values, C order, little-endian. */
  values: BinaryLike;
  row_labels: string[];
  col_labels: string[];
  panel_titles: string[];
  title: string;
  row_title: string;
  col_title: string;
  value_label: string;
  /** White point of the diverging map; null for the sequential map. */
  center: number | null;
  /** Colour scale limits, computed in Python over every panel (one scale for all). */
  vmin: number;
  vmax: number;
  /** [panel, row, col] of the selected cell, or [] for none; two-way. */
  selected: number[];
  /** Column highlighted across linked views (the hovered cell's), -1 for none; two-way. */
  highlight_token: number;
}

const DATA_KEYS = [
  "n_panels", "n_rows", "n_cols", "values", "row_labels", "col_labels", "panel_titles",
  "row_title", "col_title", "value_label", "center", "vmin", "vmax",
];
// Width the cells of one panel aim for; cells are integer-sized within [CELL_MIN, CELL_MAX].
const PANEL_TARGET_PX = 640;
const CELL_MIN_PX = 6;
const CELL_MAX_PX = 40;
// Rows stay tall enough for a line of label text.
const ROW_MIN_PX = 16;
// Axis labels are 11px (the smallest text in any widget); measured to decide whether column
// labels fit upright.
const LABEL_FONT_PX = 11;
// Rotated labels are one line of text: every k-th one is shown so that they never overlap.
const ROTATED_LABEL_PX = 14;
// Cells at least this wide get grid lines (so cells at the centre colour read as cells); denser
// maps would turn grey under the lines.
const GRID_MIN_PX = 10;
// From this many cells on (e.g. 80 layers x 512 positions), each panel's cells are one canvas
// (hover and click by position): tens of thousands of cell elements take seconds to lay out.
const CANVAS_MIN_CELLS = 16384;

class HeatmapView extends WidgetView<Model> {
  private data: Float32Array = new Float32Array(0);
  private nP = 0;
  private nR = 0;
  private nC = 0;
  private scale: HeatScale = heatScale(0, 1, null);
  private cells: HTMLElement[] = [];
  /** Canvas mode: one selection mark per panel (cells are pixels, not elements). */
  private marks: HTMLElement[] = [];
  private cellW = 0;
  private cellH = 0;
  private sel: number | null = null;
  private readout!: HTMLElement;
  /** Column labels by panel, for the highlighted column. */
  private colLabels: HTMLElement[][] = [];

  constructor(model: AnyModel<Model>, root: HTMLElement) {
    super(model, root);
    this.listenAndBuild("ms-heatmap", DATA_KEYS, {
      selected: () => this.applySelected(),
      highlight_token: () => this.markColumn(this.model.get("highlight_token")),
    });
  }

  protected build(): void {
    const m = this.model;
    this.reset();
    this.cells = [];
    this.marks = [];
    this.colLabels = [];
    this.sel = null;
    this.nP = m.get("n_panels");
    this.nR = m.get("n_rows");
    this.nC = m.get("n_cols");
    try {
      this.data = decodeArray(m.get("values"), "float32", this.nP * this.nR * this.nC);
      const counts: [string, number, number][] = [
        ["row_labels", m.get("row_labels").length, this.nR],
        ["col_labels", m.get("col_labels").length, this.nC],
        ["panel_titles", m.get("panel_titles").length, this.nP],
      ];
      for (const [name, got, want] of counts) {
        if (got !== want) throw new Error(`${name} has ${got} entries for ${want}`);
      }
    } catch (err) {
      this.showError("ms-hm-error", "Heatmap", err);
      return;
    }
    this.scale = heatScale(m.get("vmin"), m.get("vmax"), m.get("center"));

    this.titleEl = el("div", "ms-hm-title");
    const head = el("div", "ms-hm-head");
    this.readout = el("div", "ms-hm-readout", "hover a cell for its value");
    head.append(this.buildLegend(), this.readout);
    const panels = el("div", "ms-hm-panels");
    for (let p = 0; p < this.nP; p++) panels.append(this.buildPanel(p));
    // One delegated listener each for thousands of cells.
    panels.addEventListener("mouseover", (ev) => {
      const c = this.cellAt(ev);
      if (c) this.hover(...c);
    });
    panels.addEventListener("mousemove", (ev) => {
      const c = this.marks.length ? this.cellAt(ev) : null;
      if (c) this.hover(...c);
    });
    panels.addEventListener("mouseleave", () => {
      this.readout.textContent = "hover a cell for its value";
      this.hoverColumn(-1);
    });
    panels.addEventListener("click", (ev) => {
      const c = this.cellAt(ev);
      if (c) this.select(...c);
    });

    this.root.append(this.titleEl, head, panels);
    this.renderTitle();
    this.ok = true;
    this.showSelected(this.indexOf(m.get("selected")));
    this.markColumn(m.get("highlight_token"));
    this.root.setAttribute("data-rendered", "true");
  }

  private buildLegend(): HTMLElement {
    const s = this.scale;
    const legend = el("div", "ms-hm-legend");
    const label = this.model.get("value_label");
    if (label) legend.append(el("span", "ms-hm-legend-label", label));
    const bar = el("span", "ms-hm-legend-bar");
    bar.style.background = heatGradient(s);
    const barBox = el("span", "ms-hm-legend-barbox");
    barBox.append(bar);
    if (s.kind === "diverging") {
      bar.title = `diverging, white at ${formatValue(s.center)}`;
      barBox.classList.add("ms-hm-legend-centred");
      barBox.append(el("span", "ms-hm-legend-mid", formatValue(s.center)));
    } else {
      bar.title = "sequential (viridis), min to max";
    }
    legend.append(
      el("span", "ms-hm-legend-lo", formatValue(s.lo)),
      barBox,
      el("span", "ms-hm-legend-hi", formatValue(s.hi)),
    );
    if (this.nP > 1) legend.append(el("span", "ms-hm-legend-note", `one scale for all ${this.nP} panels`));
    legend.append(el("span", "ms-hm-nan-swatch"), el("span", "", "NaN / Inf"));
    return legend;
  }

  private buildPanel(p: number): HTMLElement {
    const m = this.model;
    const rowLabels = m.get("row_labels");
    const colLabels = m.get("col_labels");
    const cellW = Math.max(CELL_MIN_PX, Math.min(CELL_MAX_PX, Math.floor(PANEL_TARGET_PX / this.nC)));
    const cellH = Math.max(ROW_MIN_PX, cellW);
    const canvas = this.nP * this.nR * this.nC >= CANVAS_MIN_CELLS;
    [this.cellW, this.cellH] = [cellW, cellH];
    // Upright labels when the widest fits its column, else rotated and thinned to every k-th.
    const widest = colLabels.reduce((n, s) => Math.max(n, textWidth(displayToken(s), LABEL_FONT_PX)), 0);
    const rotated = widest > cellW - 4;
    const step = rotated ? Math.ceil(ROTATED_LABEL_PX / cellW) : 1;

    const panel = el("div", "ms-hm-panel");
    panel.dataset.panel = String(p);
    const ptitle = m.get("panel_titles")[p];
    if (ptitle) {
      const pt = el("div", "ms-hm-panel-title", ptitle);
      pt.title = ptitle;
      panel.append(pt);
    }
    const wrap = el("div", "ms-hm-grid-wrap");
    const grid = el("div", "ms-hm-grid");
    grid.classList.toggle("ms-hm-rotated", rotated);
    grid.classList.toggle("ms-hm-gridlines", cellW >= GRID_MIN_PX && !canvas);
    grid.dataset.labelStep = String(step);
    grid.style.gridTemplateColumns = `auto repeat(${this.nC}, ${cellW}px)`;
    grid.style.gridTemplateRows = `auto repeat(${this.nR}, ${cellH}px)`;

    const rowTitle = m.get("row_title");
    const colTitle = m.get("col_title");
    const corner = rowTitle || colTitle ? `${rowTitle || "row"} \u2193 ${colTitle || "col"} \u2192` : "";
    const cornerEl = el("div", "ms-hm-corner", corner);
    cornerEl.title = corner;
    grid.append(cornerEl);
    const labels: HTMLElement[] = (this.colLabels[p] = []);
    for (let c = 0; c < this.nC; c++) {
      const shown = c % step === 0;
      const text = displayToken(colLabels[c]);
      const lab = el("div", shown ? "ms-hm-collabel" : "ms-hm-collabel ms-hm-collabel-skip", shown ? text : "");
      lab.title = `${colTitle || "col"} ${c}: ${text}`;
      labels.push(lab);
      grid.append(lab);
    }
    const base = p * this.nR * this.nC;
    if (canvas) {
      const rowStep = Math.ceil(ROTATED_LABEL_PX / cellH);
      for (let r = 0; r < this.nR; r++) {
        const rl = el("div", "ms-hm-rowlabel", r % rowStep ? "" : displayToken(rowLabels[r]));
        rl.title = `${rowTitle || "row"} ${r}: ${displayToken(rowLabels[r])}`;
        rl.style.gridArea = `${r + 2} / 1`; // explicit: no cells between the labels
        grid.append(rl);
      }
      grid.append(this.buildCanvas(p, cellW, cellH));
      wrap.append(grid);
      panel.append(wrap);
      return panel;
    }
    for (let r = 0; r < this.nR; r++) {
      const rl = el("div", "ms-hm-rowlabel", displayToken(rowLabels[r]));
      rl.title = `${rowTitle || "row"} ${r}: ${displayToken(rowLabels[r])}`;
      grid.append(rl);
      for (let c = 0; c < this.nC; c++) {
        const i = base + r * this.nC + c;
        const v = this.data[i];
        const cell = el("div", "ms-hm-cell");
        // grid lines: every cell draws its right and bottom edge, the first row / column the rest
        if (r === 0) cell.classList.add("ms-hm-r0");
        if (c === 0) cell.classList.add("ms-hm-c0");
        cell.dataset.panel = String(p);
        cell.dataset.row = String(r);
        cell.dataset.col = String(c);
        cell.dataset.value = float32Text(v);
        cell.style.backgroundColor = heatCss(v, this.scale);
        if (v - v !== 0) cell.classList.add("ms-hm-nonfinite");
        cell.title = this.describe(p, r, c);
        this.cells.push(cell);
        grid.append(cell);
      }
    }
    wrap.append(grid);
    panel.append(wrap);
    return panel;
  }

  /** Panel `p`'s cells as one canvas, a pixel a cell scaled to cellW x cellH CSS px. */
  private buildCanvas(p: number, cellW: number, cellH: number): HTMLElement {
    const box = el("div", "ms-hm-canvas-box");
    box.style.gridArea = `2 / 2 / span ${this.nR} / span ${this.nC}`;
    const canvas = el("canvas", "ms-hm-canvas");
    canvas.width = this.nC;
    canvas.height = this.nR;
    canvas.style.width = `${this.nC * cellW}px`;
    canvas.style.height = `${this.nR * cellH}px`;
    canvas.dataset.panel = String(p);
    const ctx = canvas.getContext("2d");
    if (ctx) {
      const img = ctx.createImageData(this.nC, this.nR);
      const base = p * this.nR * this.nC;
      for (let i = 0; i < this.nR * this.nC; i++) {
        const [r, g, b] = heatRgb(this.data[base + i], this.scale);
        img.data.set([r, g, b, 255], i * 4);
      }
      ctx.putImageData(img, 0, 0);
    }
    const mark = el("div", "ms-hm-canvas-mark");
    mark.style.width = `${cellW}px`;
    mark.style.height = `${cellH}px`;
    mark.hidden = true;
    this.marks[p] = mark;
    box.append(canvas, mark);
    return box;
  }

  /** The cell under the mouse: a cell element, or a canvas pixel turned into one's coordinates. */
  private cellAt(ev: MouseEvent): [number, number, number] | null {
    const cell = this.cellOf(ev);
    if (cell) return [Number(cell.dataset.panel), Number(cell.dataset.row), Number(cell.dataset.col)];
    const canvas = (ev.target as Element).closest<HTMLCanvasElement>(".ms-hm-canvas");
    if (!canvas) return null;
    const r = Math.floor(ev.offsetY / this.cellH);
    const c = Math.floor(ev.offsetX / this.cellW);
    if (!(r >= 0 && r < this.nR && c >= 0 && c < this.nC)) return null;
    return [Number(canvas.dataset.panel), r, c];
  }

  private cellOf(ev: Event): HTMLElement | null {
    return (ev.target as Element).closest<HTMLElement>(".ms-hm-cell");
  }

  /** "panel · row L1 · col H3: value = 0.25": what a cell is, in the user's own labels. */
  private describe(p: number, r: number, c: number): string {
    const m = this.model;
    const v = this.data[(p * this.nR + r) * this.nC + c];
    const parts: string[] = [];
    const ptitle = m.get("panel_titles")[p];
    if (ptitle) parts.push(ptitle);
    else if (this.nP > 1) parts.push(`panel ${p}`);
    parts.push(`${m.get("row_title") || "row"} ${displayToken(m.get("row_labels")[r])}`);
    parts.push(`${m.get("col_title") || "col"} ${displayToken(m.get("col_labels")[c])}`);
    const label = m.get("value_label") || "value";
    return `${parts.join(" \u00b7 ")}: ${label} = ${float32Text(v)}`;
  }

  private hover(p: number, r: number, c: number): void {
    this.readout.textContent = this.describe(p, r, c);
    this.hoverColumn(c);
  }

  /** The mouse is over column `c` (-1: left the panels): tell Python and linked views. */
  private hoverColumn(c: number): void {
    if (!this.ok || this.model.get("highlight_token") === c) return;
    this.send("highlight_token", c);
    this.markColumn(c);
  }

  /** Mark column `c`'s label in every panel (-1 or out of range: none). */
  private markColumn(c: number): void {
    if (!this.ok) return;
    for (const labels of this.colLabels) labels.forEach((lab, i) => lab.classList.toggle("ms-hm-col-hl", i === c));
    this.root.dataset.highlight = String(c);
  }

  /** Flat cell index of a `selected` value, or null when it is empty or out of range. */
  private indexOf(sel: number[] | null | undefined): number | null {
    if (!Array.isArray(sel) || sel.length !== 3) return null;
    const [p, r, c] = sel;
    if (!(p >= 0 && p < this.nP && r >= 0 && r < this.nR && c >= 0 && c < this.nC)) return null;
    return (p * this.nR + r) * this.nC + c;
  }

  /** A click on a cell: highlight it and tell Python. */
  private select(p: number, r: number, c: number): void {
    this.showSelected(this.indexOf([p, r, c]));
    this.send("selected", [p, r, c]);
  }

  /** Python (or another view of the same model) changed `selected`. */
  private applySelected(): void {
    if (!this.ok) return;
    this.showSelected(this.indexOf(this.model.get("selected")));
  }

  private showSelected(i: number | null): void {
    if (this.marks.length) {
      this.sel = i;
      for (const mark of this.marks) mark.hidden = true;
      if (i === null) {
        this.root.dataset.selected = "";
        return;
      }
      const [p, r, c] = [Math.floor(i / (this.nR * this.nC)), Math.floor(i / this.nC) % this.nR, i % this.nC];
      const mark = this.marks[p];
      mark.hidden = false;
      mark.style.left = `${c * this.cellW}px`;
      mark.style.top = `${r * this.cellH}px`;
      this.root.dataset.selected = `${p},${r},${c}`;
      return;
    }
    if (this.sel !== null) {
      this.cells[this.sel]?.classList.remove("ms-hm-cell-selected");
      this.cells[this.sel]?.removeAttribute("aria-selected");
    }
    this.sel = i;
    if (i === null) {
      this.root.dataset.selected = "";
      return;
    }
    const cell = this.cells[i];
    cell.classList.add("ms-hm-cell-selected");
    cell.setAttribute("aria-selected", "true");
    this.root.dataset.selected = `${cell.dataset.panel},${cell.dataset.row},${cell.dataset.col}`;
  }
}

export default widget(HeatmapView);
