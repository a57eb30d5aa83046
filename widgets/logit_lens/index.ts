// LogitLens: a layers x positions grid of each layer's top-1 lens prediction, coloured by its
// probability (viridis 0..1); hover a cell for its top-k, click it to select it (two-way
// `selected`). Cells whose top-1 is the actual next token are underlined.
// Python side: src/mechscope/widgets/logit_lens.py (the traits below mirror it).

import { cssColor, needsLightText, VIRIDIS } from "../shared/colormap";
import { clearChildren, el } from "../shared/dom";
import { type AnyModel, coalesce, displayToken, listen, type RenderProps } from "../shared/model";
import { decodeLens, formatProb, isHit, type LensData, type LensPayload, topK } from "./data";

/** Synced traits of mechscope.widgets.logit_lens.LogitLens. */
export interface Model extends LensPayload {
  title: string;
  /** [layer, pos] of the selected cell, or [] for none; two-way. */
  selected: number[];
}

const DATA_KEYS = [
  "n_layers", "n_pos", "k", "top_probs", "top_ids", "targets", "dtype", "token_table", "row_labels", "tokens",
];
const HINT = "hover a cell for its top-k predictions";

function gradient(): string {
  const stops: string[] = [];
  for (let i = 0; i <= 8; i++) {
    const j = Math.round((i / 8) * 255) * 3;
    stops.push(`rgb(${VIRIDIS[j]}, ${VIRIDIS[j + 1]}, ${VIRIDIS[j + 2]}) ${(i / 8) * 100}%`);
  }
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

class LogitLensView {
  private d: LensData | null = null;
  private cells: HTMLElement[] = [];
  private sel: number | null = null;
  private titleEl: HTMLElement | null = null;
  private readout!: HTMLElement;
  private topkEl!: HTMLElement;

  private readonly onData = coalesce(() => this.build());
  private readonly onSelected = () => this.applySelected();
  private readonly onTitle = () => this.renderTitle();
  private unlisten: () => void = () => {};

  constructor(
    private readonly model: AnyModel<Model>,
    private readonly root: HTMLElement,
  ) {
    root.classList.add("ms-logit-lens");
    this.unlisten = listen(model, DATA_KEYS, this.onData, { selected: this.onSelected, title: this.onTitle });
    this.build();
  }

  destroy(): void {
    this.unlisten();
    clearChildren(this.root);
  }

  private build(): void {
    const m = this.model;
    this.d = null;
    this.cells = [];
    this.sel = null;
    this.titleEl = null;
    this.root.removeAttribute("data-rendered");
    clearChildren(this.root);
    let d: LensData;
    try {
      d = decodeLens({
        n_layers: m.get("n_layers"), n_pos: m.get("n_pos"), k: m.get("k"),
        top_probs: m.get("top_probs"), top_ids: m.get("top_ids"), targets: m.get("targets"),
        dtype: m.get("dtype"), token_table: m.get("token_table"), row_labels: m.get("row_labels"),
        tokens: m.get("tokens"),
      });
    } catch (err) {
      // A broken payload is shown, not swallowed: an empty widget looks like a working one.
      this.root.append(el("div", "ms-ll-error", `LogitLens could not decode its data: ${String(err)}`));
      console.error(err);
      return;
    }
    this.d = d;
    this.titleEl = el("div", "ms-ll-title");
    this.readout = el("div", "ms-ll-readout", HINT);
    const body = el("div", "ms-ll-body");
    const grid = this.buildGrid(d);
    this.topkEl = el("div", "ms-ll-topk");
    body.append(grid, this.topkEl);
    grid.addEventListener("mouseover", (ev) => {
      const c = (ev.target as Element).closest<HTMLElement>(".ms-ll-cell");
      if (c) this.show(Number(c.dataset.layer), Number(c.dataset.pos), true);
    });
    grid.addEventListener("mouseleave", () => this.showSelectedOrHint());
    grid.addEventListener("click", (ev) => {
      const c = (ev.target as Element).closest<HTMLElement>(".ms-ll-cell");
      if (c) this.select(Number(c.dataset.layer), Number(c.dataset.pos));
    });
    this.root.append(this.titleEl, this.buildLegend(), this.readout, body);
    this.renderTitle();
    this.mark(this.indexOf(m.get("selected")));
    this.showSelectedOrHint();
    this.root.setAttribute("data-rendered", "true");
  }

  private renderTitle(): void {
    if (!this.titleEl) return;
    const t = this.model.get("title");
    this.titleEl.textContent = t;
    this.titleEl.hidden = !t;
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
    grid.style.gridTemplateColumns = `auto repeat(${d.nPos}, minmax(44px, max-content))`;
    grid.append(el("div", "ms-ll-corner", "layer \u2193 input \u2192"));
    for (let p = 0; p < d.nPos; p++) {
      const lab = el("div", "ms-ll-collabel", displayToken(toks[p]));
      lab.title = `pos ${p}: ${displayToken(toks[p])}`;
      grid.append(lab);
    }
    for (let l = 0; l < d.nLayers; l++) {
      grid.append(el("div", "ms-ll-rowlabel", rows[l]));
      for (let p = 0; p < d.nPos; p++) {
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
        this.cells.push(cell);
        grid.append(cell);
      }
    }
    wrap.append(grid);
    return wrap;
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
    this.model.set("selected", [l, p]);
    this.model.save_changes();
  }

  private applySelected(): void {
    if (!this.d) return;
    this.mark(this.indexOf(this.model.get("selected")));
    this.showSelectedOrHint();
  }

  private mark(i: number | null): void {
    if (this.sel !== null) this.cells[this.sel]?.classList.remove("ms-ll-selected");
    this.sel = i;
    if (i === null) {
      this.root.dataset.selected = "";
      return;
    }
    const cell = this.cells[i];
    cell.classList.add("ms-ll-selected");
    this.root.dataset.selected = `${cell.dataset.layer},${cell.dataset.pos}`;
  }
}

function render({ model, el: root }: RenderProps<Model>): () => void {
  const view = new LogitLensView(model, root);
  return () => view.destroy();
}

export default { render };
