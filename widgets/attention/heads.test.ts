import { describe, expect, it } from "vitest";
import { HeadCache, upsample } from "./heads";

describe("upsample", () => {
  it("gives every position the value of its thumbnail block, the last block narrower", () => {
    // two heads of 2 x 2 thumbnails (n = 5, stride 3: blocks 0..2 and 3..4); the second head
    const thumbs = new Float32Array([0, 0, 0, 0, 0.1, 0.2, 0.3, NaN]);
    const out = upsample(thumbs, 4, 2, 3, 5);
    expect(out.length).toBe(25);
    expect(Array.from(out.slice(0, 5))).toEqual([0.1, 0.1, 0.1, 0.2, 0.2].map(Math.fround));
    expect(out[3 * 5 + 0]).toBeCloseTo(0.3, 6);
    expect(Number.isNaN(out[4 * 5 + 4])).toBe(true);
  });
});

describe("HeadCache", () => {
  it("asks once per head, keeps the most recently used, and asks again after a failure", () => {
    const cache = new HeadCache(2);
    expect(cache.request(0, 1)).toBe(true);
    expect(cache.request(0, 1)).toBe(false); // on its way
    cache.put(0, 1, new Float32Array([1]));
    expect(cache.request(0, 1)).toBe(false); // here
    cache.put(0, 2, new Float32Array([2]));
    cache.get(0, 1); // 0,1 is now the most recent
    cache.put(0, 3, new Float32Array([3]));
    expect(cache.size).toBe(2);
    expect(cache.get(0, 2)).toBeUndefined();
    expect(cache.get(0, 1)?.[0]).toBe(1);
    expect(cache.request(1, 1)).toBe(true);
    cache.fail(1, 1);
    expect(cache.request(1, 1)).toBe(true);
  });
});
