// The FeatureDashboard's activation histogram: bars on a canvas, coloured like the tokens;
// axes, ticks and their labels as DOM text (11px, themeable, selectable). The y axis counts on
// a square-root scale (a tall first bin would flatten the long tail otherwise) and says so.

import { activationCss, scaleOf } from "../shared/activation";
import { clearChildren, el } from "../shared/dom";
import { formatTicks, niceTicks } from "../shared/format";

// Plot area (CSS px); the axes' tick labels sit outside it (see style.css).
const HIST_W = 280;
const HIST_H = 90;
// Tick labels are 11px: y ticks closer than this are dropped so that they never overlap.
const Y_TICK_MIN_PX = 14;

export class Histogram {
  /** The plot: axes titles, bars, ticks; `data-total` holds the number of counted values. */
  readonly plot: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly ticks: HTMLElement;

  constructor() {
    this.plot = el("div", "ms-fd-hist-plot");
    this.plot.style.setProperty("--ms-hist-w", `${HIST_W}px`);
    this.plot.style.setProperty("--ms-hist-h", `${HIST_H}px`);
    this.canvas = el("canvas", "ms-fd-hist-bars");
    const dpr = Math.max(1, Math.round(globalThis.devicePixelRatio || 1));
    this.canvas.width = HIST_W * dpr;
    this.canvas.height = HIST_H * dpr;
    this.ticks = el("div", "ms-fd-hist-ticks");
    this.plot.append(
      el("span", "ms-fd-hist-ylabel", "count (\u221a scale)"),
      this.canvas,
      this.ticks,
      el("span", "ms-fd-hist-xlabel", "activation"),
    );
  }

  /** Draw `counts[b]` values in [edges[b], edges[b + 1]) for every bin b. */
  show(counts: ArrayLike<number>, edges: ArrayLike<number>): void {
    const bins = counts.length;
    const scale = scaleOf(edges);
    let top = 0;
    let total = 0;
    for (let b = 0; b < bins; b++) {
      top = Math.max(top, counts[b]);
      total += counts[b];
    }
    const yOf = (count: number) => (top > 0 ? (Math.sqrt(count) / Math.sqrt(top)) * HIST_H : 0);
    const ctx = this.canvas.getContext("2d");
    if (ctx) {
      const dpr = this.canvas.width / HIST_W;
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, HIST_W, HIST_H);
      const w = HIST_W / bins;
      for (let b = 0; b < bins; b++) {
        if (!counts[b]) continue;
        const h = Math.max(1, Math.round(yOf(counts[b])));
        const x = Math.floor(b * w);
        const bw = Math.max(1, Math.ceil(w) - 1);
        ctx.fillStyle = activationCss((edges[b] + edges[b + 1]) / 2, scale);
        ctx.fillRect(x, HIST_H - h, bw, h);
        ctx.strokeStyle = "rgba(0,0,0,0.45)";
        ctx.strokeRect(x + 0.5, HIST_H - h + 0.5, Math.max(0, bw - 1), h - 1);
      }
    }
    this.plot.dataset.total = String(total);
    this.plot.title = `${total} non-zero activations in ${bins} bins (bar height ~ sqrt(count))`;

    clearChildren(this.ticks);
    let last = -Infinity;
    for (const c of niceTicks(0, top, 5)) {
      const y = yOf(c);
      if (y - last < Y_TICK_MIN_PX && c !== 0) continue;
      last = y;
      const t = el("span", "ms-fd-hist-ytick", String(c));
      t.style.bottom = `${y}px`;
      t.dataset.value = String(c);
      this.ticks.append(t);
    }
    const lo = edges[0];
    const hi = edges[bins];
    const xs = niceTicks(lo, hi, 5);
    formatTicks(xs).forEach((text, i) => {
      const t = el("span", "ms-fd-hist-xtick", text);
      t.style.left = `${hi > lo ? ((xs[i] - lo) / (hi - lo)) * HIST_W : HIST_W / 2}px`;
      t.dataset.value = String(xs[i]);
      this.ticks.append(t);
    });
  }
}
