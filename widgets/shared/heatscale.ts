// Colour scales for labelled grids (Heatmap): one scale, computed in Python and shared by
// every panel, so that colours compare across panels.
//
// - diverging (Python `center` is a number): RdBu, blue <- centre colour -> red, the centre
//   colour exactly at `center`, symmetric: lo = center - m, hi = center + m, m = max |value - center|;
// - sequential (Python `center=None`): viridis over [lo, hi] = [min, max].
// NaN/Inf get the magenta of colormap.ts, never a colour that looks like a real value.

import { css, divergingRgb, NONFINITE_RGB, RDBU, type Rgb, viridisRgb } from "./colormap";

export interface HeatScale {
  /** Diverging around `center`, or sequential viridis. */
  kind: "diverging" | "sequential";
  lo: number;
  hi: number;
  /** The white point of the diverging map (ignored by the sequential one). */
  center: number;
}

/** The scale described by the widget's traits (`center` null means sequential). */
export function heatScale(lo: number, hi: number, center: number | null): HeatScale {
  if (center === null || center === undefined) return { kind: "sequential", lo, hi, center: lo };
  return { kind: "diverging", lo, hi, center };
}

/** Where `v` sits on the map: -1..1 (diverging) or 0..1 (sequential); NaN when not finite. */
export function heatPosition(v: number, s: HeatScale): number {
  if (v - v !== 0) return NaN;
  if (s.kind === "diverging") {
    const m = Math.max(s.hi - s.center, s.center - s.lo);
    if (!(m > 0)) return 0;
    const t = (v - s.center) / m;
    return t < -1 ? -1 : t > 1 ? 1 : t;
  }
  const span = s.hi - s.lo;
  if (!(span > 0)) return 0.5; // one value everywhere: the middle of the map, not an extreme
  const t = (v - s.lo) / span;
  return t < 0 ? 0 : t > 1 ? 1 : t;
}

/** RGB of `v` under `s`; NONFINITE_RGB for NaN/Inf. */
export function heatRgb(v: number, s: HeatScale): Rgb {
  const t = heatPosition(v, s);
  if (Number.isNaN(t)) return [NONFINITE_RGB[0], NONFINITE_RGB[1], NONFINITE_RGB[2]];
  return s.kind === "diverging" ? divergingRgb(t) : viridisRgb(t);
}

export function heatCss(v: number, s: HeatScale): string {
  return css(heatRgb(v, s));
}

/**
 * CSS gradient of the whole map, left (lo) to right (hi), for the legend. CSS interpolates
 * linearly in sRGB, so stops at RdBu's 11 anchors reproduce the diverging map exactly.
 */
export function heatGradient(s: HeatScale): string {
  const n = s.kind === "diverging" ? RDBU.length - 1 : 16;
  const stops: string[] = [];
  for (let i = 0; i <= n; i++) {
    stops.push(css(s.kind === "diverging" ? divergingRgb((2 * i) / n - 1) : viridisRgb(i / n)));
  }
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

/**
 * The shortest decimal that reads back as the same float32: the exact value the widget holds
 * (`0.1` rather than `0.10000000149011612`). NaN/Inf spelled out.
 */
export function float32Text(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "Inf" : "-Inf";
  if (v === 0) return "0";
  const f = Math.fround(v);
  for (let p = 1; p <= 9; p++) {
    const s = Number(f.toPrecision(p));
    if (Math.fround(s) === f) return String(s);
  }
  return String(f);
}
