// Perceptually uniform sequential colour map (viridis) as a 256-entry RGB lookup table.
// Built once from the nine-class viridis palette by linear interpolation in sRGB; the
// stops are close enough together that lightness stays monotonic.

const VIRIDIS_STOPS = [
  "440154", "472d7b", "3b528b", "2c728e", "21908c", "27ad81", "5dc863", "aadc32", "fde725",
];

/** Colour for NaN/Inf cells: magenta is far from every viridis colour, so it reads as "marked". */
export const NONFINITE_RGB: readonly [number, number, number] = [255, 0, 255];

function buildLut(stops: string[]): Uint8ClampedArray {
  const rgb = stops.map((s) => [0, 2, 4].map((i) => parseInt(s.slice(i, i + 2), 16)));
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (rgb.length - 1);
    const k = Math.min(Math.floor(t), rgb.length - 2);
    const f = t - k;
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.round(rgb[k][c] * (1 - f) + rgb[k + 1][c] * f);
  }
  return lut;
}

export const VIRIDIS: Uint8ClampedArray = buildLut(VIRIDIS_STOPS);

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
export const RGBA32: Uint32Array = (() => {
  const bytes = new Uint8ClampedArray(257 * 4);
  for (let i = 0; i < 256; i++) {
    bytes.set([VIRIDIS[i * 3], VIRIDIS[i * 3 + 1], VIRIDIS[i * 3 + 2], 255], i * 4);
  }
  bytes.set([...NONFINITE_RGB, 255], 256 * 4);
  return new Uint32Array(bytes.buffer);
})();

/** Write the colour of `v` (expected in [0, 1]) into `out` at byte offset `o` as RGBA. */
export function writeColor(out: Uint8ClampedArray, o: number, v: number): void {
  if (!Number.isFinite(v)) {
    out[o] = NONFINITE_RGB[0];
    out[o + 1] = NONFINITE_RGB[1];
    out[o + 2] = NONFINITE_RGB[2];
  } else {
    const i = v <= 0 ? 0 : v >= 1 ? 765 : Math.round(v * 255) * 3;
    out[o] = VIRIDIS[i];
    out[o + 1] = VIRIDIS[i + 1];
    out[o + 2] = VIRIDIS[i + 2];
  }
  out[o + 3] = 255;
}

/** CSS colour string for `v`, for DOM elements (token strip). */
export function cssColor(v: number): string {
  const px = new Uint8ClampedArray(4);
  writeColor(px, 0, v);
  return `rgb(${px[0]}, ${px[1]}, ${px[2]})`;
}

/** Whether text on top of colour `v` should be light (viridis is dark below ~0.55). */
export function needsLightText(v: number): boolean {
  return Number.isFinite(v) && v < 0.55;
}

/** Human-readable weight: three decimals, and NaN/Inf spelled out. */
export function formatWeight(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "Inf" : "-Inf";
  return v.toFixed(3);
}
