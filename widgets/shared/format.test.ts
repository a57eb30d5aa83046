import { describe, expect, it } from "vitest";
import { columnFormat, decimalsFor, formatFixed, formatTicks, niceTicks } from "./format";

describe("columnFormat", () => {
  it("gives every value of a column the same decimals (the issue's 0.2528, 0.234, -0.42)", () => {
    const f = columnFormat([0.2528, 0.234, -0.42]);
    expect([0.2528, 0.234, -0.42].map(f)).toEqual(["0.253", "0.234", "-0.420"]);
    const g = columnFormat([4.2, 3.1, 2.156]);
    expect([4.2, 3.1, 2.156].map(g)).toEqual(["4.20", "3.10", "2.16"]);
    // equal length: right-aligned with tabular digits, decimal points line up
    expect(new Set([0.2528, 0.234, 0.42].map(f).map((s) => s.length)).size).toBe(1);
  });
  it("never prints -0, spells NaN/Inf, ignores Inf when choosing decimals", () => {
    expect(formatFixed(-0.0001, 3)).toBe("0.000");
    expect(formatFixed(-0, 2)).toBe("0.00");
    expect(formatFixed(-0.5, 2)).toBe("-0.50");
    const f = columnFormat([0.5, Infinity, NaN]);
    expect([0.5, Infinity, -Infinity, NaN].map(f)).toEqual(["0.500", "Inf", "-Inf", "NaN"]);
  });
  it("switches a column of tiny or huge values to exponents", () => {
    expect(decimalsFor(0.004)).toBe(-1);
    expect(columnFormat([0.004, -0.0002])(-0.0002)).toBe("-2.00e-4");
    expect(decimalsFor(2500)).toBe(0);
  });
});

describe("niceTicks", () => {
  it("puts 1-2-5 multiples inside the range", () => {
    expect(niceTicks(0, 4.2)).toEqual([0, 1, 2, 3, 4]);
    expect(niceTicks(0.013, 4.2)).toEqual([1, 2, 3, 4]);
    expect(niceTicks(0, 37)).toEqual([0, 10, 20, 30]);
    expect(niceTicks(-0.4, 0.4)).toEqual([-0.4, -0.2, 0, 0.2, 0.4]);
    expect(niceTicks(2, 2)).toEqual([2]);
    expect(niceTicks(NaN, 1)).toEqual([]);
  });
  it("labels ticks with the decimals of the step", () => {
    expect(formatTicks([0, 0.5, 1])).toEqual(["0.0", "0.5", "1.0"]);
    expect(formatTicks([-0.4, -0.2, 0, 0.2])).toEqual(["-0.4", "-0.2", "0.0", "0.2"]);
    expect(formatTicks([0, 10, 20])).toEqual(["0", "10", "20"]);
  });
});
