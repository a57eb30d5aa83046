import { describe, expect, it } from "vitest";
import {
  divergingRgb,
  lightTextOn,
  needsLightText,
  RDBU,
  RGBA32,
  VIRIDIS,
  viridisRgb,
} from "./colormap";

const hex = (h: string) => [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16));
const near = (got: readonly number[], want: number[]) =>
  got.forEach((c, i) => expect(Math.abs(c - want[i])).toBeLessThanOrEqual(1));

describe("viridis", () => {
  it("is matplotlib's 256-entry table: #440154, #21918c, #fde725 within 1/255", () => {
    expect(VIRIDIS.length).toBe(256 * 3);
    near(viridisRgb(0), hex("440154"));
    near(viridisRgb(0.5), hex("21918c"));
    near(viridisRgb(1), hex("fde725"));
    expect(viridisRgb(NaN)).toEqual([255, 0, 255]);
  });
  it("packs 257 RGBA pixels, the last magenta", () => {
    const bytes = new Uint8Array(RGBA32.buffer);
    expect(Array.from(bytes.subarray(0, 4))).toEqual([...viridisRgb(0), 255]);
    expect(Array.from(bytes.subarray(256 * 4))).toEqual([255, 0, 255, 255]);
  });
});

describe("RdBu", () => {
  it("has 11 anchors from dark blue to dark red", () => {
    expect(RDBU.length).toBe(11);
    expect(divergingRgb(-1)).toEqual(hex("053061"));
    expect(divergingRgb(1)).toEqual(hex("67001f"));
    expect(divergingRgb(-5)).toEqual(divergingRgb(-1));
  });
  it("is exactly the centre colour at 0, and symmetric in strength", () => {
    expect(divergingRgb(0)).toEqual(hex("f7f7f7"));
    const dist = (c: number[]) => c.reduce((s, x) => s + Math.abs(0xf7 - x), 0);
    for (const t of [0.2, 0.5, 0.9]) {
      const pos = divergingRgb(t);
      const neg = divergingRgb(-t);
      expect(pos[0]).toBeGreaterThan(pos[2]);
      expect(neg[2]).toBeGreaterThan(neg[0]);
      expect(Math.abs(dist(pos) - dist(neg)) / dist(pos)).toBeLessThan(0.35);
    }
  });
  it("interpolates linearly in sRGB between anchors", () => {
    const a = hex("f7f7f7");
    const b = hex("fddbc7"); // next anchor on the red side, at t = 0.2
    near(divergingRgb(0.1), a.map((x, i) => (x + b[i]) / 2));
    expect(divergingRgb(0.2)).toEqual(b);
    expect(divergingRgb(NaN)).toEqual([255, 0, 255]);
  });
});

describe("text colour on a background", () => {
  it("picks white on dark colours and near-black on light ones", () => {
    expect(lightTextOn(hex("440154"))).toBe(true);
    expect(lightTextOn(hex("fde725"))).toBe(false);
    expect(lightTextOn(hex("f7f7f7"))).toBe(false);
    expect(lightTextOn(hex("053061"))).toBe(true);
    expect(needsLightText(0)).toBe(true);
    expect(needsLightText(1)).toBe(false);
  });
});
