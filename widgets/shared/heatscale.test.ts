import { describe, expect, it } from "vitest";
import { float32Text, heatGradient, heatPosition, heatRgb, heatScale } from "./heatscale";

describe("diverging heat scale", () => {
  const s = heatScale(-4, 4, 0);
  it("is white at the centre, red above, blue below, symmetric in strength", () => {
    expect(heatRgb(0, s)).toEqual([255, 255, 255]);
    const pos = heatRgb(2, s);
    const neg = heatRgb(-2, s);
    expect(pos[0]).toBeGreaterThan(pos[2]);
    expect(neg[2]).toBeGreaterThan(neg[0]);
    const dist = (c: number[]) => c.reduce((acc, x) => acc + (255 - x), 0);
    expect(Math.abs(dist(pos) - dist(neg))).toBeLessThan(80); // both halves equally strong
    expect(heatPosition(4, s)).toBe(1);
    expect(heatPosition(-8, s)).toBe(-1); // clipped
  });
  it("centres on a non-zero centre", () => {
    const c = heatScale(0, 1, 0.5);
    expect(heatRgb(0.5, c)).toEqual([255, 255, 255]);
    expect(heatPosition(1, c)).toBe(1);
    expect(heatPosition(0, c)).toBe(-1);
  });
  it("is white everywhere when every value equals the centre", () => {
    expect(heatRgb(0, heatScale(0, 0, 0))).toEqual([255, 255, 255]);
  });
});

describe("sequential heat scale", () => {
  const s = heatScale(2, 4, null);
  it("maps [lo, hi] onto viridis", () => {
    expect(heatRgb(2, s)).toEqual([0x44, 0x01, 0x54]);
    expect(heatRgb(4, s)).toEqual([0xfd, 0xe7, 0x25]);
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
  it("runs blue to white to red, or along viridis", () => {
    const d = heatGradient(heatScale(-1, 1, 0));
    expect(d.startsWith("linear-gradient(to right, rgb(33, 102, 172)")).toBe(true);
    expect(d).toContain("rgb(255, 255, 255)");
    expect(d.endsWith("rgb(178, 24, 43))")).toBe(true);
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
