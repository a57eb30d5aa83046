// Numbers as the widgets print them in columns and on axes: one number of decimals per column
// (so 0.253, 0.234, -0.420 line up at the decimal point under `font-variant-numeric:
// tabular-nums` and right alignment), the ASCII minus everywhere (copy-pastes as a number, and
// matches the exact values in tooltips and readouts), never "-0.000", NaN/Inf spelled out.

/** Decimals for a column whose largest finite |value| is `maxAbs`; -1 means "use exponents". */
export function decimalsFor(maxAbs: number): number {
  if (maxAbs === 0) return 2;
  if (maxAbs < 0.01 || maxAbs >= 1e6) return -1;
  return maxAbs < 1 ? 3 : maxAbs < 1000 ? 2 : 0;
}

/** `v` with `decimals` fixed decimals (or 2-digit exponent notation when `decimals` < 0). */
export function formatFixed(v: number, decimals: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "Inf" : "-Inf";
  const s = decimals < 0 ? v.toExponential(2) : v.toFixed(decimals);
  return /^-[0.e+]*$/.test(s.replace(/e[+-]\d+$/, "")) ? s.slice(1) : s; // "-0.000" -> "0.000"
}

/** Largest finite |value| of `values[start, start + count)`. */
export function maxAbs(values: ArrayLike<number>, start = 0, count = values.length - start): number {
  let m = 0;
  for (let i = start; i < start + count; i++) {
    const a = Math.abs(values[i]);
    if (a > m && a !== Infinity) m = a;
  }
  return m;
}

/** One formatter for a whole column: every value gets the decimals its largest value needs. */
export function columnFormat(values: ArrayLike<number>): (v: number) => string {
  const d = decimalsFor(maxAbs(values));
  return (v) => formatFixed(v, d);
}

/** Axis ticks: multiples of a 1-2-5 step inside [lo, hi], at most `maxTicks` of them. */
export function niceTicks(lo: number, hi: number, maxTicks = 5): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) return [];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) return [lo];
  const step = tickStep(lo, hi, maxTicks);
  const out: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) {
    out.push(Number((k * step).toPrecision(12)));
  }
  return out;
}

/** The 1-2-5 step niceTicks uses for [lo, hi]. */
export function tickStep(lo: number, hi: number, maxTicks = 5): number {
  const raw = Math.abs(hi - lo) / Math.max(1, maxTicks - 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) {
    const step = m * mag;
    if (Math.floor(Math.abs(hi - lo) / step + 1e-9) + 1 <= maxTicks) return step;
  }
  return 10 * mag;
}

/** Tick labels with the decimals the step needs (0.5 -> 1 decimal, 0.25 -> 2, 20 -> 0). */
export function formatTicks(ticks: number[]): string[] {
  if (ticks.length < 2) return ticks.map((t) => formatFixed(t, decimalsFor(Math.abs(t))));
  const step = Math.abs(ticks[1] - ticks[0]);
  let d = 0;
  while (d < 6 && Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) > 1e-6 * 10 ** d) d++;
  return ticks.map((t) => formatFixed(t, d));
}
