// The two colour maps every widget draws with, from the one table the Python side's static
// pictures use too (src/mechscope/widgets/static/colormaps.json):
//
// - viridis: matplotlib's published 256-entry table; a value t in [0, 1] takes entry round(255 t);
// - RdBu: ColorBrewer's 11-class RdBu, blue (negative) -> #f7f7f7 (centre) -> red (positive);
//   a position t in [-1, 1] sits at u = (t + 1) / 2 * 10 between anchors floor(u) and
//   ceil(u), interpolated linearly in sRGB (as matplotlib does), so t = 0 is exactly the centre
//   colour and every anchor is exact.
// Channels are round(255 x). NaN/Inf are magenta (with a cross where the widget can draw one).

// Named imports: esbuild leaves a table out of a bundle that never reads it.
import { rdbu, viridis } from "../../src/mechscope/widgets/static/colormaps.json";

export type Rgb = [number, number, number];

/** Colour for NaN/Inf cells: magenta is far from every colour of both maps, so it reads as "marked". */
export const NONFINITE_RGB: readonly [number, number, number] = [255, 0, 255];

const byte = (x: number) => Math.round(x * 255);

// (Both tables are marked pure: a bundle that never reads one leaves it out.)
export const VIRIDIS: Uint8ClampedArray = /* @__PURE__ */ (() => {
  const lut = new Uint8ClampedArray(256 * 3);
  viridis.forEach((rgb, i) => lut.set(rgb.map(byte), i * 3));
  return lut;
})();

/** The 11 RdBu anchors, blue to red, as floats in [0, 1]. */
export const RDBU: readonly (readonly number[])[] = rdbu;

/** RdBu at `t` in [-1, 1] (clipped): blue below 0, the centre colour at 0, red above. */
export function divergingRgb(t: number): Rgb {
  if (t - t !== 0) return [NONFINITE_RGB[0], NONFINITE_RGB[1], NONFINITE_RGB[2]];
  const u = ((t < -1 ? -1 : t > 1 ? 1 : t) + 1) * 0.5 * (RDBU.length - 1);
  const k = Math.min(Math.floor(u), RDBU.length - 2);
  const f = u - k;
  const a = RDBU[k];
  const b = RDBU[k + 1];
  return [byte(a[0] + (b[0] - a[0]) * f), byte(a[1] + (b[1] - a[1]) * f), byte(a[2] + (b[2] - a[2]) * f)];
}

/** Index into RGBA32 for a value: 0..255 along the map, NONFINITE_INDEX for NaN/Inf. */
export const NONFINITE_INDEX = 256;

export function colorIndex(v: number): number {
  // v - v is NaN for NaN and +-Inf and 0 otherwise: one test for "not finite" in hot loops.
  if (v - v !== 0) return NONFINITE_INDEX;
  return v <= 0 ? 0 : v >= 1 ? 255 : Math.round(v * 255);
}

/**
 * The map as packed RGBA pixels (257 entries, the last for NaN/Inf), in the byte order of a
 * Uint32Array view over ImageData.data: writing one u32 per pixel is ~4x fewer stores.
 */
export const RGBA32: Uint32Array = /* @__PURE__ */ (() => {
  const bytes = new Uint8ClampedArray(257 * 4);
  for (let i = 0; i < 256; i++) {
    bytes.set([VIRIDIS[i * 3], VIRIDIS[i * 3 + 1], VIRIDIS[i * 3 + 2], 255], i * 4);
  }
  bytes.set([...NONFINITE_RGB, 255], 256 * 4);
  return new Uint32Array(bytes.buffer);
})();

/** Viridis RGB of `v` (expected in [0, 1]); NONFINITE_RGB for NaN/Inf. */
export function viridisRgb(v: number): Rgb {
  const i = colorIndex(v);
  if (i === NONFINITE_INDEX) return [NONFINITE_RGB[0], NONFINITE_RGB[1], NONFINITE_RGB[2]];
  return [VIRIDIS[i * 3], VIRIDIS[i * 3 + 1], VIRIDIS[i * 3 + 2]];
}

/** Write the viridis colour of `v` (expected in [0, 1]) into `out` at byte offset `o` as RGBA. */
export function writeColor(out: Uint8ClampedArray, o: number, v: number): void {
  const [r, g, b] = viridisRgb(v);
  out[o] = r;
  out[o + 1] = g;
  out[o + 2] = b;
  out[o + 3] = 255;
}

export const css = ([r, g, b]: readonly number[]): string => `rgb(${r}, ${g}, ${b})`;

/** CSS colour string of viridis at `v`, for DOM elements (token strip). */
export function cssColor(v: number): string {
  return css(viridisRgb(v));
}

/** WCAG relative luminance of an sRGB colour (0 black .. 1 white). */
export function luminance([r, g, b]: readonly number[]): number {
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** Whether white text reads better than near-black (#111) text on `rgb` (higher WCAG contrast). */
export function lightTextOn(rgb: readonly number[]): boolean {
  const L = luminance(rgb);
  const dark = 0.0056; // luminance of #111
  return (1.05 / (L + 0.05)) > ((L + 0.05) / (dark + 0.05));
}

/** Whether text on top of viridis at `v` should be light. */
export function needsLightText(v: number): boolean {
  return lightTextOn(viridisRgb(v));
}

/** Human-readable weight: three decimals, and NaN/Inf spelled out. */
export function formatWeight(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "Inf" : "-Inf";
  return v.toFixed(3);
}
