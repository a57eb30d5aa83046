import { describe, expect, it } from "vitest";
import { float32Text, heatGradient, heatPosition, heatRgb, heatScale } from "./heatscale";

describe("diverging heat scale", () => {
  const s = heatScale(-4, 4, 0);
  it("is RdBu's centre colour at the centre, red above, blue below, symmetric in strength", () => {
    expect(heatRgb(0, s)).toEqual([0xf7, 0xf7, 0xf7]);
    const pos = heatRgb(2, s);
    const neg = heatRgb(-2, s);
    expect(pos[0]).toBeGreaterThan(pos[2]);
    expect(neg[2]).toBeGreaterThan(neg[0]);
    const dist = (c: number[]) => c.reduce((acc, x) => acc + Math.abs(0xf7 - x), 0);
    expect(Math.abs(dist(pos) - dist(neg))).toBeLessThan(80); // both halves equally strong
    expect(heatRgb(4, s)).toEqual([0x67, 0x00, 0x1f]);
    expect(heatRgb(-4, s)).toEqual([0x05, 0x30, 0x61]);
    expect(heatPosition(4, s)).toBe(1);
    expect(heatPosition(-8, s)).toBe(-1); // clipped
  });
  it("centres on a non-zero centre", () => {
    const c = heatScale(0, 1, 0.5);
    expect(heatRgb(0.5, c)).toEqual([0xf7, 0xf7, 0xf7]);
    expect(heatPosition(1, c)).toBe(1);
    expect(heatPosition(0, c)).toBe(-1);
  });
  it("is the centre colour everywhere when every value equals the centre", () => {
    expect(heatRgb(0, heatScale(0, 0, 0))).toEqual([0xf7, 0xf7, 0xf7]);
  });
});

describe("sequential heat scale", () => {
  const s = heatScale(2, 4, null);
  it("maps [lo, hi] onto viridis", () => {
    expect(heatRgb(2, s)).toEqual([0x44, 0x01, 0x54]);
    expect(heatRgb(4, s)).toEqual([0xfd, 0xe7, 0x25]);
    expect(heatRgb(3, s)).toEqual([0x21, 0x91, 0x8c]); // matplotlib's entry 128
    expect(heatPosition(3, s)).toBe(0.5);
    expect(heatPosition(3, heatScale(3, 3, null))).toBe(0.5);
  });
});

describe("non-finite values", () => {
  it("are magenta on both maps", () => {
    for (const s of [heatScale(-1, 1, 0), heatScale(0, 1, null)]) {
      for (const v of [NaN, Infinity, -Infinity]) expect(heatRgb(v, s)).toEqual([255, 0, 255]);
    }
  });
});

describe("legend gradient", () => {
  it("runs through RdBu's 11 anchors, or along viridis", () => {
    const d = heatGradient(heatScale(-1, 1, 0));
    expect(d.startsWith("linear-gradient(to right, rgb(5, 48, 97), rgb(33, 102, 172)")).toBe(true);
    expect(d.split("rgb(").length - 1).toBe(11);
    expect(d).toContain("rgb(247, 247, 247)");
    expect(d.endsWith("rgb(178, 24, 43), rgb(103, 0, 31))")).toBe(true);
    expect(heatGradient(heatScale(0, 5, null))).toContain("rgb(68, 1, 84)");
  });
});

describe("float32Text", () => {
  it("gives the shortest decimal that reads back as the same float32", () => {
    expect(float32Text(Math.fround(0.1))).toBe("0.1");
    expect(float32Text(Math.fround(0.123456789))).toBe("0.12345679");
    expect(float32Text(-2.5)).toBe("-2.5");
    expect(float32Text(0)).toBe("0");
    expect(float32Text(NaN)).toBe("NaN");
    expect(float32Text(-Infinity)).toBe("-Inf");
    expect(float32Text(Math.fround(1e-7))).toBe("1e-7");
  });
});
