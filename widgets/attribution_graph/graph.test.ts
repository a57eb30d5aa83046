import { describe, expect, it } from "vitest";
import {
  EMBED,
  ERROR,
  edgeScores,
  FEATURE,
  type Graph,
  layout,
  LOGIT,
  pruneEdges,
  pruneNodes,
  rowOf,
  topEdges,
} from "./graph";

// 0 embed@0, 1 embed@1, 2 F (L0 @0), 3 F (L0 @1), 4 F (L0 @1), 5 err L0 @1, 6 logit @1
function toy(): Graph {
  return {
    kind: new Int32Array([EMBED, EMBED, FEATURE, FEATURE, FEATURE, ERROR, LOGIT]),
    layer: new Int32Array([-1, -1, 0, 0, 0, 0, 1]),
    pos: new Int32Array([0, 1, 0, 1, 1, 1, 1]),
    activation: new Float32Array([0, 0, 2, 1, 0.5, 0, 0.9]),
    influence: new Float32Array([0.3, 0.2, 0.5, 0.3, 0.05, 0.15, 0]),
    src: new Int32Array([0, 1, 2, 3, 4, 5, 0]),
    dst: new Int32Array([2, 3, 6, 6, 6, 6, 6]),
    weight: new Float32Array([1, -2, 3, -1, 0.5, 0.5, 1]),
  };
}

describe("pruneNodes", () => {
  it("keeps embeddings and logits, then the fewest nodes carrying the threshold", () => {
    const g = toy(); // prunable influence: 0.5, 0.3, 0.15, 0.05 (total 1)
    expect(Array.from(pruneNodes(g, 0.45))).toEqual([1, 1, 1, 0, 0, 0, 1]);
    expect(Array.from(pruneNodes(g, 0.51))).toEqual([1, 1, 1, 1, 0, 0, 1]);
    expect(Array.from(pruneNodes(g, 0.9))).toEqual([1, 1, 1, 1, 0, 1, 1]);
    expect(Array.from(pruneNodes(g, 1))).toEqual([1, 1, 1, 1, 1, 1, 1]);
  });
});

describe("edge pruning", () => {
  it("scores an edge by its share of |weight| into its target times the target's influence", () => {
    const g = toy();
    const s = edgeScores(g);
    // into 6 (the logit, weight 1 after normalising): |w| / 6
    expect(s[2]).toBeCloseTo(3 / 6, 12);
    expect(s[3]).toBeCloseTo(1 / 6, 12);
    // into 2 (one edge, |w| share 1): the influence of node 2
    expect(s[0]).toBeCloseTo(0.5, 6);
  });
  it("keeps the fewest edges between kept nodes reaching the threshold, the crossing one too", () => {
    const g = toy();
    const s = edgeScores(g);
    const all = new Uint8Array(7).fill(1);
    // scores: e0 .5, e1 .3, e2 .5, e3 1/6, e4 1/12, e5 1/12, e6 1/6; total 1.8333
    const keep = (t: number) => Array.from(pruneEdges(g, all, s, t));
    expect(keep(0.1)).toEqual([1, 0, 0, 0, 0, 0, 0]); // ties broken by edge order
    expect(keep(0.3)).toEqual([1, 0, 1, 0, 0, 0, 0]);
    expect(keep(1)).toEqual([1, 1, 1, 1, 1, 1, 1]);
    // an edge touching a pruned node never shows
    const kept = pruneNodes(g, 0.45); // drops 3, 4, 5
    expect(Array.from(pruneEdges(g, kept, s, 1))).toEqual([1, 0, 1, 0, 0, 0, 1]);
  });
});

describe("layout", () => {
  const o = { colWidth: 30, step: 10, rowGap: 5 };
  it("puts embeddings at the bottom, logits on top, one column per position", () => {
    const g = toy();
    const vis = new Uint8Array(7).fill(1);
    const lay = layout(g, vis, 1, 2, o);
    expect(rowOf(EMBED, -1, 1)).toBe(0);
    expect(rowOf(LOGIT, 1, 1)).toBe(2);
    expect(lay.y[6]).toBeLessThan(lay.y[3]);
    expect(lay.y[3]).toBeLessThan(lay.y[1]);
    expect(lay.x[0]).toBe(15); // centred in column 0
    expect(lay.x[1]).toBe(45);
    // cell (L0, pos 1): 3, 4 by influence, then the error node, in one line of three
    expect([lay.x[3], lay.x[4], lay.x[5]]).toEqual([35, 45, 55]);
    expect(lay.width).toBe(60);
    expect(lay.height).toBe(3 * (10 + 10));
  });
  it("wraps a full cell into more lines and leaves hidden nodes out", () => {
    const g = toy();
    const vis = new Uint8Array([1, 1, 1, 1, 1, 0, 1]);
    const lay = layout(g, vis, 1, 2, { colWidth: 20, step: 10, rowGap: 0 });
    expect(Number.isNaN(lay.x[5])).toBe(true);
    expect(lay.y[4] - lay.y[3]).toBe(0); // two per line: 3 and 4 share a line
    const narrow = layout(g, new Uint8Array(7).fill(1), 1, 2, { colWidth: 10, step: 10, rowGap: 0 });
    expect(narrow.y[4] - narrow.y[3]).toBe(10);
    expect(narrow.rowBottom[1] - narrow.rowTop[1]).toBe(30);
  });
});

describe("topEdges", () => {
  it("orders a node's edges by |weight|", () => {
    const g = toy();
    expect(topEdges(g, 6, true, 3)).toEqual([2, 3, 6]);
    expect(topEdges(g, 0, false, 5)).toEqual([0, 6]); // a tie: edge order
  });
});
