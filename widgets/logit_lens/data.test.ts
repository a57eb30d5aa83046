import { describe, expect, it } from "vitest";
import { decodeLens, formatProb, isHit, type LensPayload, topK } from "./data";

function i32(xs: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(xs).buffer);
}
function f32(xs: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(xs).buffer);
}

// 2 layers x 2 positions x k=2; table: a, b, <img src=x onerror=alert(1)>
const payload = (): LensPayload => ({
  n_layers: 2,
  n_pos: 2,
  k: 2,
  top_probs: f32([0.6, 0.3, 0.5, 0.2, 0.9, 0.05, NaN, 0.1]),
  top_ids: i32([0, 1, 2, 0, 1, 0, 2, 1]),
  targets: i32([1, -1]),
  dtype: "float32",
  token_table: ["a", "b", "<img src=x onerror=alert(1)>"],
  row_labels: ["0_pre", "final_post"],
  tokens: ["x", "y"],
});

describe("decodeLens", () => {
  it("decodes probabilities, ids and targets and looks up the top-k of a cell", () => {
    const d = decodeLens(payload());
    expect(topK(d, 0, 1).map((g) => g.token)).toEqual(["<img src=x onerror=alert(1)>", "a"]);
    expect(topK(d, 1, 0)[0].prob).toBeCloseTo(0.9, 6);
    expect(Number.isNaN(topK(d, 1, 1)[0].prob)).toBe(true);
  });
  it("marks a cell whose top-1 is the next token, never the last position", () => {
    const d = decodeLens(payload());
    expect(isHit(d, 0, 0)).toBe(false); // top-1 "a", next is "b"
    expect(isHit(d, 1, 0)).toBe(true); // top-1 "b"
    expect(isHit(d, 1, 1)).toBe(false); // target -1
  });
  it("refuses ids outside the table and payloads of the wrong length", () => {
    const bad = { ...payload(), top_ids: i32([0, 1, 2, 0, 1, 0, 7, 1]) };
    expect(() => decodeLens(bad)).toThrow(/top_ids\[6\] = 7 is outside the token table \(3 entries\)/);
    const short = { ...payload(), top_probs: f32([0.5]) };
    expect(() => decodeLens(short)).toThrow(/4 bytes but 8 float32 values need 32/);
    const labels = { ...payload(), row_labels: ["only one"] };
    expect(() => decodeLens(labels)).toThrow(/row_labels has 1 entries for 2 layers/);
  });
  it("reads uint8-quantised probabilities", () => {
    const q = { ...payload(), dtype: "uint8" as const, top_probs: new Uint8Array([254, 127, 0, 0, 0, 0, 255, 0]) };
    const d = decodeLens(q);
    expect(topK(d, 0, 0)[0].prob).toBe(1);
    expect(topK(d, 0, 0)[1].prob).toBeCloseTo(0.5, 6);
    expect(Number.isNaN(topK(d, 1, 1)[0].prob)).toBe(true);
  });
});

describe("formatProb", () => {
  it("shows three decimals and spells out non-finite values", () => {
    expect(formatProb(0.12345)).toBe("0.123");
    expect(formatProb(1)).toBe("1.000");
    expect(formatProb(NaN)).toBe("NaN");
  });
});
