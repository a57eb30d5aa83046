import { describe, expect, it } from "vitest";
import { decodeInt32 } from "./int32";
import {
  activationCss,
  activationNeedsLightText,
  activationRgb,
  formatValue,
  normalize,
  scaleOf,
} from "./activation";

describe("scaleOf", () => {
  it("finds max |value| and whether any value is negative, skipping NaN/Inf", () => {
    expect(scaleOf([0, 2, -3, NaN, Infinity])).toEqual({ signed: true, max: 3 });
    expect(scaleOf([0, 0.5, 2, -Infinity])).toEqual({ signed: false, max: 2 });
    expect(scaleOf([9, 1, -1, 9], 1, 2)).toEqual({ signed: true, max: 1 });
    expect(scaleOf([NaN, 0])).toEqual({ signed: false, max: 0 });
  });
});

describe("diverging map centred at zero", () => {
  const signed = { signed: true, max: 4 };
  it("is RdBu's centre (#f7f7f7) at zero, its ends at +-max, red above and blue below", () => {
    expect(activationRgb(0, signed)).toEqual([0xf7, 0xf7, 0xf7]);
    expect(activationRgb(4, signed)).toEqual([0x67, 0x00, 0x1f]);
    expect(activationRgb(-4, signed)).toEqual([0x05, 0x30, 0x61]);
    const pos = activationRgb(2, signed);
    const neg = activationRgb(-2, signed);
    expect(pos[0]).toBeGreaterThan(pos[2]); // red side
    expect(neg[2]).toBeGreaterThan(neg[0]); // blue side
    expect(normalize(2, signed)).toBe(0.5);
    expect(normalize(-2, signed)).toBe(-0.5);
  });
  it("clips beyond the scale and marks NaN/Inf in magenta", () => {
    expect(activationRgb(100, signed)).toEqual(activationRgb(4, signed));
    expect(activationRgb(-100, signed)).toEqual(activationRgb(-4, signed));
    expect(activationRgb(NaN, signed)).toEqual([255, 0, 255]);
    expect(activationRgb(Infinity, signed)).toEqual([255, 0, 255]);
    expect(activationCss(-Infinity, signed)).toBe("rgb(255, 0, 255)");
    expect(activationNeedsLightText(NaN, signed)).toBe(false); // dark text on magenta: contrast 6:1
    expect(activationNeedsLightText(0.1, signed)).toBe(false);
    expect(activationNeedsLightText(4, signed)).toBe(true);
    expect(activationNeedsLightText(-4, signed)).toBe(true);
  });
});

describe("sequential map for non-negative data", () => {
  const seq = { signed: false, max: 10 };
  it("runs along RdBu's red half, centre at 0 to dark red at max; negatives clamp to 0", () => {
    expect(activationRgb(0, seq)).toEqual([0xf7, 0xf7, 0xf7]);
    expect(activationRgb(10, seq)).toEqual([0x67, 0x00, 0x1f]);
    expect(normalize(-3, seq)).toBe(0);
    expect(activationRgb(4, seq)).toEqual([0xf4, 0xa5, 0x82]); // an anchor (t = 0.4): exact
    expect(activationRgb(3, { signed: false, max: 0 })).toEqual([0xf7, 0xf7, 0xf7]);
  });
});

describe("formatValue", () => {
  it("shows four significant digits and spells out non-finite values", () => {
    expect(formatValue(1.23456)).toBe("1.235");
    expect(formatValue(-0.5)).toBe("-0.5");
    expect(formatValue(0)).toBe("0");
    expect(formatValue(12345.6)).toBe("1.23e+4");
    expect(formatValue(0.00012)).toBe("1.20e-4");
    expect(formatValue(NaN)).toBe("NaN");
    expect(formatValue(-Infinity)).toBe("-Inf");
  });
});

describe("decodeInt32", () => {
  it("reads little-endian int32 from an unaligned view and checks the length", () => {
    const src = new Int32Array([0, -1, 7, 2 ** 30]);
    const buf = new Uint8Array(3 + src.byteLength);
    buf.set(new Uint8Array(src.buffer), 3);
    expect(Array.from(decodeInt32(new DataView(buf.buffer, 3, 16), 4))).toEqual([0, -1, 7, 2 ** 30]);
    expect(() => decodeInt32(new Uint8Array(6), 2)).toThrow(/6 bytes.*2 int32 values need 8/);
  });
});
