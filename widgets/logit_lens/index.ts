// LogitLens: a layers x positions grid of each layer's top-1 lens prediction, coloured by its
// probability (viridis 0..1); hover a cell for its top-k, click it to select it (two-way
// `selected`). Cells whose top-1 is the actual next token are underlined.
// Python side: src/mechscope/widgets/logit_lens.py (the traits below mirror it).

import { cssColor, needsLightText, VIRIDIS } from "../shared/colormap";
import { clearChildren, el } from "../shared/dom";
import { type AnyModel, displayToken } from "../shared/model";
import { WidgetView, widget } from "../shared/view";
import { decodeLens, formatProb, isHit, type LensData, type LensPayload, topK } from "./data";

/** Synced traits of mechscope.widgets.logit_lens.LogitLens. */
export interface Model extends LensPayload {
  title: string;
  /** [layer, pos] of the selected cell, or [] for none; two-way. */
  selected: number[];
  /** Position (column) highlighted across linked views, -1 for none; two-way. */
  highlight_token: number;
}

const DATA_KEYS = [
  "n_layers", "n_pos", "k", "top_probs", "top_ids", "targets", "dtype", "token_table", "row_labels", "tokens",
];
const HINT = "hover a cell for its top-k predictions";
// A lens of more cells than this (e.g. 80 layers x 512 positions) shows a window of positions
// at a time, every layer, with buttons to move it: 40 000 cells of text take seconds to lay out.
const WINDOW_CELLS = 4096;
const WINDOW_MIN_POS = 16;

function gradient(): string {
  const stops: string[] = [];
  for (let i = 0; i <= 8; i++) {
    const j = Math.round((i / 8) * 255) * 3;
    stops.push(`rgb(${VIRIDIS[j]}, ${VIRIDIS[j + 1]}, ${VIRIDIS[j + 2]}) ${(i / 8) * 100}%`);
  }
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

class LogitLensView extends WidgetView<Model> {
  private d: LensData | null = null;
  /** Cell elements by flat index layer * nPos + pos (only the window's, for a big lens). */
  private cells = new Map<number, HTMLElement>();
  private sel: number | null = null;
  /** The positions shown: start .. start + span - 1. */
  private start = 0;
  private span = 0;
  private gridWrap: HTMLElement | null = null;
  private pager: HTMLElement | null = null;
  private readout!: HTMLElement;
  private topkEl!: HTMLElement;
  /** Column labels by position (only the window's, for a big lens). */
  private colLabels = new Map<number, HTMLElement>();

  constructor(model: AnyModel<Model>, root: HTMLElement) {
    super(model, root);
    this.listenAndBuild("ms-logit-lens", DATA_KEYS, {
      selected: () => this.applySelected(),
      highlight_token: () => this.markColumn(this.model.get("highlight_token")),
    });
  }

  protected build(): void {
    const m = this.model;
    this.reset();
    this.d = null;
    this.cells = new Map();
    this.sel = null;
    let d: LensData;
    try {
      d = decodeLens({
        n_layers: m.get("n_layers"), n_pos: m.get("n_pos"), k: m.get("k"),
        top_probs: m.get("top_probs"), top_ids: m.get("top_ids"), targets: m.get("targets"),
        dtype: m.get("dtype"), token_table: m.get("token_table"), row_labels: m.get("row_labels"),
        tokens: m.get("tokens"),
      });
    } catch (err) {
      this.showError("ms-ll-error", "LogitLens", err);
      return;
    }
    this.d = d;
    this.titleEl = el("div", "ms-ll-title");
    this.readout = el("div", "ms-ll-readout", HINT);
    const body = el("div", "ms-ll-body");
    const big = d.nLayers * d.nPos > WINDOW_CELLS;
    this.span = big ? Math.min(d.nPos, Math.max(WINDOW_MIN_POS, Math.floor(WINDOW_CELLS / d.nLayers))) : d.nPos;
    const sel = this.indexOf(m.get("selected"));
    const want = sel === null ? 0 : sel % d.nPos; // open where the selected cell is
    this.start = Math.min(d.nPos - this.span, Math.floor(want / this.span) * this.span);
    const grid = el("div", "ms-ll-grid-host");
    this.gridWrap = this.buildGrid(d);
    grid.append(this.gridWrap);
    this.topkEl = el("div", "ms-ll-topk");
    body.append(grid, this.topkEl);
    this.pager = big ? this.buildPager(d) : null;
    grid.addEventListener("mouseover", (ev) => {
      const c = (ev.target as Element).closest<HTMLElement>(".ms-ll-cell");
      if (!c) return;
      this.show(Number(c.dataset.layer), Number(c.dataset.pos), true);
      this.hoverColumn(Number(c.dataset.pos));
    });
    grid.addEventListener("mouseleave", () => {
      this.showSelectedOrHint();
      this.hoverColumn(-1);
    });
    grid.addEventListener("click", (ev) => {
      const c = (ev.target as Element).closest<HTMLElement>(".ms-ll-cell");
      if (c) this.select(Number(c.dataset.layer), Number(c.dataset.pos));
    });
    this.root.append(this.titleEl, this.buildLegend(), ...(this.pager ? [this.pager] : []), this.readout, body);
    this.renderTitle();
    this.mark(this.indexOf(m.get("selected")));
    this.showSelectedOrHint();
    this.markColumn(m.get("highlight_token"));
    this.root.setAttribute("data-rendered", "true");
  }

  private buildLegend(): HTMLElement {
    const legend = el("div", "ms-ll-legend");
    const bar = el("span", "ms-ll-legend-bar");
    bar.style.background = gradient();
    legend.append(
      el("span", "", "p(top-1)"), el("span", "ms-ll-legend-lo", "0"), bar, el("span", "ms-ll-legend-hi", "1"),
      el("span", "ms-ll-nan-swatch"), el("span", "", "NaN"),
      el("span", "ms-ll-hit-note", "underlined: top-1 is the next token"),
    );
    return legend;
  }

  private buildGrid(d: LensData): HTMLElement {
    const m = this.model;
    const rows = m.get("row_labels");
    const toks = m.get("tokens");
    const wrap = el("div", "ms-ll-grid-wrap");
    const grid = el("div", "ms-ll-grid");
    grid.append(el("div", "ms-ll-corner", "layer \u2193 input \u2192"));
    grid.style.gridTemplateColumns = `auto repeat(${this.span}, minmax(44px, max-content))`;
    const end = this.start + this.span;
    this.colLabels = new Map();
    for (let p = this.start; p < end; p++) {
      const lab = el("div", "ms-ll-collabel", displayToken(toks[p]));
      lab.title = `pos ${p}: ${displayToken(toks[p])}`;
      lab.classList.toggle("ms-ll-col-hl", p === this.model.get("highlight_token"));
      this.colLabels.set(p, lab);
      grid.append(lab);
    }
    for (let l = 0; l < d.nLayers; l++) {
      const rowLabel = el("div", "ms-ll-rowlabel", rows[l]);
      rowLabel.title = `layer ${rows[l]}`;
      grid.append(rowLabel);
      for (let p = this.start; p < end; p++) {
        const top = topK(d, l, p)[0];
        const cell = el("div", "ms-ll-cell", displayToken(top.token));
        cell.dataset.layer = String(l);
        cell.dataset.pos = String(p);
        cell.dataset.prob = formatProb(top.prob);
        cell.style.backgroundColor = cssColor(top.prob);
        if (needsLightText(top.prob)) cell.classList.add("ms-ll-light");
        if (top.prob - top.prob !== 0) cell.classList.add("ms-ll-nonfinite");
        if (isHit(d, l, p)) cell.classList.add("ms-ll-hit");
        cell.title = `${this.where(l, p)}: ${displayToken(top.token)} ${formatProb(top.prob)}`;
        this.cells.set(l * d.nPos + p, cell);
        grid.append(cell);
      }
    }
    wrap.append(grid);
    return wrap;
  }

  /** Buttons that move the window of positions of a big lens. */
  private buildPager(d: LensData): HTMLElement {
    const pager = el("div", "ms-ll-pager");
    const prev = el("button", "ms-ll-page-prev", "\u25c0 earlier");
    const next = el("button", "ms-ll-page-next", "later \u25b6");
    const text = el("span", "ms-ll-page-text");
    const show = () => {
      text.textContent = `positions ${this.start}\u2013${this.start + this.span - 1} of ${d.nPos}`;
      prev.disabled = this.start === 0;
      next.disabled = this.start + this.span >= d.nPos;
      pager.dataset.start = String(this.start);
    };
    const move = (by: number) => {
      this.start = Math.max(0, Math.min(d.nPos - this.span, this.start + by));
      this.cells = new Map();
      const grid = this.buildGrid(d);
      this.gridWrap?.replaceWith(grid);
      this.gridWrap = grid;
      const sel = this.sel;
      this.sel = null;
      this.mark(sel);
      show();
    };
    prev.addEventListener("click", () => move(-this.span));
    next.addEventListener("click", () => move(this.span));
    show();
    pager.append(prev, text, next);
    return pager;
  }

  /** "layer 1_pre · pos 3 'cat'": a cell in the user's own labels. */
  private where(l: number, p: number): string {
    const tok = displayToken(this.model.get("tokens")[p]);
    return `layer ${this.model.get("row_labels")[l]} \u00b7 pos ${p} ${tok}`;
  }

  /** Fill the top-k panel (and the readout) for one cell. */
  private show(l: number, p: number, hovering: boolean): void {
    const d = this.d;
    if (!d) return;
    const guesses = topK(d, l, p);
    this.readout.textContent = `${this.where(l, p)}: ${guesses
      .map((g) => `${displayToken(g.token)} ${formatProb(g.prob)}`)
      .join(", ")}`;
    clearChildren(this.topkEl);
    this.topkEl.dataset.layer = String(l);
    this.topkEl.dataset.pos = String(p);
    this.topkEl.dataset.source = hovering ? "hover" : "selected";
    this.topkEl.append(el("div", "ms-ll-topk-head", `top-${d.k} at ${this.where(l, p)}`));
    const target = d.targets[p];
    for (const g of guesses) {
      const row = el("div", "ms-ll-topk-row");
      const tok = el("span", "ms-ll-topk-tok", displayToken(g.token));
      tok.title = displayToken(g.token);
      if (target >= 0 && d.table[target] === g.token) tok.classList.add("ms-ll-hit");
      const barBox = el("span", "ms-ll-topk-barbox");
      const bar = el("span", "ms-ll-topk-bar");
      bar.style.width = `${Math.round(Math.max(0, Math.min(1, g.prob || 0)) * 100)}%`;
      bar.style.backgroundColor = cssColor(g.prob);
      barBox.append(bar);
      row.append(tok, barBox, el("span", "ms-ll-topk-prob", formatProb(g.prob)));
      this.topkEl.append(row);
    }
  }

  /** The mouse is over position `p` (-1: left the grid): tell Python and linked views. */
  private hoverColumn(p: number): void {
    if (this.model.get("highlight_token") === p) return;
    this.send("highlight_token", p);
    this.markColumn(p);
  }

  /** Mark position `p`'s column label (-1 or outside the window: none). */
  private markColumn(p: number): void {
    if (!this.d) return;
    for (const [q, lab] of this.colLabels) lab.classList.toggle("ms-ll-col-hl", q === p);
    this.root.dataset.highlight = String(p);
  }

  private showSelectedOrHint(): void {
    if (this.sel !== null && this.d) {
      this.show(Math.floor(this.sel / this.d.nPos), this.sel % this.d.nPos, false);
    } else {
      this.readout.textContent = HINT;
      clearChildren(this.topkEl);
      this.topkEl.dataset.source = "";
    }
  }

  private indexOf(sel: number[] | null | undefined): number | null {
    const d = this.d;
    if (!d || !Array.isArray(sel) || sel.length !== 2) return null;
    const [l, p] = sel;
    if (!(l >= 0 && l < d.nLayers && p >= 0 && p < d.nPos)) return null;
    return l * d.nPos + p;
  }

  private select(l: number, p: number): void {
    this.mark(this.indexOf([l, p]));
    this.send("selected", [l, p]);
  }

  private applySelected(): void {
    if (!this.d) return;
    this.mark(this.indexOf(this.model.get("selected")));
    this.showSelectedOrHint();
  }

  private mark(i: number | null): void {
    if (this.sel !== null) this.cells.get(this.sel)?.classList.remove("ms-ll-selected");
    this.sel = i;
    if (i === null || !this.d) {
      this.root.dataset.selected = "";
      return;
    }
    this.cells.get(i)?.classList.add("ms-ll-selected"); // absent when outside the window
    this.root.dataset.selected = `${Math.floor(i / this.d.nPos)},${i % this.d.nPos}`;
  }
}

export default widget(LogitLensView);
