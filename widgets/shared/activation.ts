// Colours for signed or non-negative activations (neurons, SAE features, probe scores),
// shared by TokenActivations and FeatureDashboard.
//
// Both maps are RdBu's near-white centre at zero, so "no activation" reads as plain text:
// - signed data (any finite value < 0): RdBu, blue <- centre -> red, centred at zero and
//   symmetric (+m and -m get equally strong colours, m = max |value|);
// - non-negative data: RdBu's red half, centre -> red.
// NaN/Inf get the magenta of colormap.ts, never a colour that looks like a real value.

import { css, divergingRgb, lightTextOn, type Rgb } from "./colormap";

export interface ActivationScale {
  /** True when some finite value is negative: use the diverging map. */
  signed: boolean;
  /** Largest finite |value|; values are divided by it. 0 when every value is 0 or non-finite. */
  max: number;
}

/** Scale of `data[start, start + count)`, ignoring non-finite values. */
export function scaleOf(data: ArrayLike<number>, start = 0, count = data.length - start): ActivationScale {
  let max = 0;
  let signed = false;
  for (let i = start, end = start + count; i < end; i++) {
    const v = data[i];
    if (v - v !== 0) continue; // NaN or +-Inf
    if (v < 0) signed = true;
    const a = Math.abs(v);
    if (a > max) max = a;
  }
  return { signed, max };
}

/** Where `v` sits on the map: -1..1 (signed) or 0..1 (sequential); NaN when not finite. */
export function normalize(v: number, scale: ActivationScale): number {
  if (v - v !== 0) return NaN;
  if (scale.max === 0) return 0;
  const t = v / scale.max;
  const lo = scale.signed ? -1 : 0;
  return t < lo ? lo : t > 1 ? 1 : t;
}

/** RGB of `v` under `scale`; NONFINITE_RGB for NaN/Inf. */
export function activationRgb(v: number, scale: ActivationScale): Rgb {
  return divergingRgb(normalize(v, scale)); // NaN -> magenta
}

export function activationCss(v: number, scale: ActivationScale): string {
  return css(activationRgb(v, scale));
}

/** Whether text on `v`'s colour should be white rather than near-black (WCAG contrast). */
export function activationNeedsLightText(v: number, scale: ActivationScale): boolean {
  return lightTextOn(activationRgb(v, scale));
}

/** Colour a token element by its activation `v`: the map's colour, and text legible on it. */
export function paintActivation(node: HTMLElement, v: number, scale: ActivationScale): void {
  node.style.background = activationCss(v, scale);
  node.style.color = activationNeedsLightText(v, scale) ? "#fff" : "#111";
}

/** A value as shown in tooltips and readouts: 4 significant digits, NaN/Inf spelled out. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "Inf" : "-Inf";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}
