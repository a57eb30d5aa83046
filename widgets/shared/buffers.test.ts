import { describe, expect, it } from "vitest";
import { decodeArray, halfToFloat, UINT8_NONFINITE, UINT8_SCALE } from "./buffers";
import { colorIndex, formatWeight, NONFINITE_INDEX, RGBA32, VIRIDIS, writeColor } from "./colormap";

describe("decodeArray", () => {
  it("reads little-endian float32 from an unaligned DataView", () => {
    const src = new Float32Array([0, 0.25, 1, NaN]);
    const buf = new Uint8Array(1 + src.byteLength);
    buf.set(new Uint8Array(src.buffer), 1);
    const out = decodeArray(new DataView(buf.buffer, 1, src.byteLength), "float32", 4);
    expect(Array.from(out.slice(0, 3))).toEqual([0, 0.25, 1]);
    expect(Number.isNaN(out[3])).toBe(true);
  });

  it("decodes float16 by hand, including subnormals, Inf and NaN", () => {
    // 0x3c00 = 1, 0x3800 = 0.5, 0x0001 = 2^-24, 0x7c00 = Inf, 0x7e00 = NaN, 0xbc00 = -1
    const halves = new Uint16Array([0x3c00, 0x3800, 0x0001, 0x7c00, 0x7e00, 0xbc00]);
    const out = decodeArray(new Uint8Array(halves.buffer), "float16", 6);
    expect(out[0]).toBe(1);
    expect(out[1]).toBe(0.5);
    expect(out[2]).toBeCloseTo(2 ** -24, 30);
    expect(out[3]).toBe(Infinity);
    expect(Number.isNaN(out[4])).toBe(true);
    expect(out[5]).toBe(-1);
    expect(halfToFloat(0x3555)).toBeCloseTo(1 / 3, 3);
  });

  it("maps uint8 codes to value/254 and the reserved code to NaN", () => {
    const out = decodeArray(new Uint8Array([0, 127, UINT8_SCALE, UINT8_NONFINITE]), "uint8", 4);
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo(0.5, 6);
    expect(out[2]).toBe(1);
    expect(Number.isNaN(out[3])).toBe(true);
  });

  it("refuses a payload of the wrong length with both numbers in the message", () => {
    expect(() => decodeArray(new Uint8Array(7), "float32", 2)).toThrow(/7 bytes.*2 float32 values need 8/);
  });
});

describe("colormap", () => {
  it("is dark at 0, bright at 1, and marks NaN in magenta", () => {
    const px = new Uint8ClampedArray(12);
    writeColor(px, 0, 0);
    writeColor(px, 4, 1);
    writeColor(px, 8, NaN);
    expect(Array.from(px.slice(0, 3))).toEqual([0x44, 0x01, 0x54]);
    expect(Array.from(px.slice(4, 7))).toEqual([0xfd, 0xe7, 0x25]);
    expect(Array.from(px.slice(8, 11))).toEqual([255, 0, 255]);
    expect(VIRIDIS.length).toBe(768);
    expect(formatWeight(0.12345)).toBe("0.123");
    expect(formatWeight(NaN)).toBe("NaN");
  });
});

describe("packed colour lookup", () => {
  it("agrees with writeColor and sends every non-finite value to the marked colour", () => {
    const px = new Uint8ClampedArray(4);
    for (const v of [0, 0.1234, 0.5, 0.999, 1]) {
      writeColor(px, 0, v);
      const packed = new Uint8ClampedArray(new Uint32Array([RGBA32[colorIndex(v)]]).buffer);
      expect(Array.from(packed)).toEqual(Array.from(px));
    }
    expect(colorIndex(NaN)).toBe(NONFINITE_INDEX);
    expect(colorIndex(Infinity)).toBe(NONFINITE_INDEX);
    expect(colorIndex(-Infinity)).toBe(NONFINITE_INDEX);
    expect(colorIndex(-0.5)).toBe(0);
    expect(colorIndex(2)).toBe(255);
  });
});
