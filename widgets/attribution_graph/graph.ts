// Pure logic of the AttributionGraph widget: pruning (the same rule as Python's
// mechscope._attribution_graph_core.prune, recomputed in the browser when a slider moves),
// the layer x position layout, and a node's strongest edges. No DOM here (vitest: graph.test.ts).

/** Node kind codes; mirror KIND_CODES in src/mechscope/widgets/attribution_graph.py. */
export const EMBED = 0;
export const FEATURE = 1;
export const ERROR = 2;
export const LOGIT = 3;
export const KIND_NAMES = ["embed", "feature", "error", "logit"];

export interface Graph {
  /** [node] kind code, layer (-1 embed, n_layers logits), position. */
  kind: Int32Array;
  layer: Int32Array;
  pos: Int32Array;
  /** [node] a feature's activation, a logit's probability, 0 for vector nodes. */
  activation: Float32Array;
  /** [node] indirect influence on the logits (Ameisen et al. 2025), computed in Python. */
  influence: Float32Array;
  /** [edge] source node, target node, direct effect (adjacency[dst, src]). */
  src: Int32Array;
  dst: Int32Array;
  weight: Float32Array;
}

/** The logits' weights in the influence: their probabilities, normalised to sum 1. */
export function logitWeights(g: Graph): Float64Array {
  const w = new Float64Array(g.kind.length);
  let total = 0;
  for (let i = 0; i < w.length; i++) if (g.kind[i] === LOGIT) total += g.activation[i];
  total = Math.max(total, 1e-12);
  for (let i = 0; i < w.length; i++) if (g.kind[i] === LOGIT) w[i] = g.activation[i] / total;
  return w;
}

/**
 * Kept nodes at `threshold`: embeddings and logits always; of the features and error nodes,
 * the fewest, by influence, that carry `threshold` of their total influence.
 */
export function pruneNodes(g: Graph, threshold: number): Uint8Array {
  const n = g.kind.length;
  const kept = new Uint8Array(n);
  const prunable: number[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    if (g.kind[i] === FEATURE || g.kind[i] === ERROR) {
      prunable.push(i);
      total += g.influence[i];
    } else {
      kept[i] = 1;
    }
  }
  prunable.sort((a, b) => g.influence[b] - g.influence[a] || a - b);
  let cum = 0;
  for (const i of prunable) {
    if (cum >= threshold * total) break;
    kept[i] = 1;
    cum += g.influence[i];
  }
  return kept;
}

/**
 * Each edge's share of its target's influence: |weight| / (sum of |weights| into its target)
 * x (the target's influence + its logit weight). Computed once per graph.
 */
export function edgeScores(g: Graph): Float64Array {
  const n = g.kind.length;
  const inAbs = new Float64Array(n);
  for (let e = 0; e < g.weight.length; e++) inAbs[g.dst[e]] += Math.abs(g.weight[e]);
  const w = logitWeights(g);
  const out = new Float64Array(g.weight.length);
  for (let e = 0; e < out.length; e++) {
    const t = g.dst[e];
    out[e] = (Math.abs(g.weight[e]) / Math.max(inAbs[t], 1e-12)) * (g.influence[t] + w[t]);
  }
  return out;
}

/**
 * Kept edges at `threshold`: among edges between kept nodes, the fewest, by score, whose
 * scores carry `threshold` of the total (the first edge past it included, as in Python).
 */
export function pruneEdges(g: Graph, kept: Uint8Array, scores: Float64Array, threshold: number): Uint8Array {
  const m = scores.length;
  const keep = new Uint8Array(m);
  const live: number[] = [];
  let total = 0;
  for (let e = 0; e < m; e++) {
    if (kept[g.src[e]] && kept[g.dst[e]] && scores[e] > 0) {
      live.push(e);
      total += scores[e];
    }
  }
  live.sort((a, b) => scores[b] - scores[a] || a - b);
  let cum = 0;
  for (const e of live) {
    keep[e] = 1;
    cum += scores[e];
    if (cum >= threshold * total) break;
  }
  return keep;
}

export interface LayoutOptions {
  /** Width of one position's column, px. */
  colWidth: number;
  /** Distance between node centres in a cell, px. */
  step: number;
  /** Free space above and below each row, px. */
  rowGap: number;
}

export interface Layout {
  x: Float64Array;
  y: Float64Array;
  width: number;
  height: number;
  /** Top and bottom y of each row; row 0 is the embeddings (drawn at the bottom). */
  rowTop: number[];
  rowBottom: number[];
}

/** Row of a node: 0 embeddings, 1 + layer for features and errors, n_layers + 1 logits. */
export function rowOf(kind: number, layer: number, nLayers: number): number {
  if (kind === EMBED) return 0;
  if (kind === LOGIT) return nLayers + 1;
  return layer + 1;
}

/**
 * Positions of the `visible` nodes: one column per position, one row per layer (embeddings at
 * the bottom, logits on top); the nodes of one cell wrap into lines of `colWidth / step`,
 * strongest influence first, error nodes last. Hidden nodes get NaN.
 */
export function layout(g: Graph, visible: Uint8Array, nLayers: number, nPos: number, o: LayoutOptions): Layout {
  const n = g.kind.length;
  const nRows = nLayers + 2;
  const cells = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    if (!visible[i]) continue;
    const key = rowOf(g.kind[i], g.layer[i], nLayers) * nPos + g.pos[i];
    const list = cells.get(key);
    if (list) list.push(i);
    else cells.set(key, [i]);
  }
  const perLine = Math.max(1, Math.floor(o.colWidth / o.step));
  const lines = new Array<number>(nRows).fill(1);
  for (const [key, list] of cells) {
    const r = Math.floor(key / nPos);
    lines[r] = Math.max(lines[r], Math.ceil(list.length / perLine));
  }
  // rows from the top: logits first
  const rowTop = new Array<number>(nRows).fill(0);
  const rowBottom = new Array<number>(nRows).fill(0);
  let y = 0;
  for (let r = nRows - 1; r >= 0; r--) {
    rowTop[r] = y;
    y += lines[r] * o.step + 2 * o.rowGap;
    rowBottom[r] = y;
  }
  const x = new Float64Array(n).fill(NaN);
  const yy = new Float64Array(n).fill(NaN);
  const errLast = (i: number) => (g.kind[i] === ERROR ? 1 : 0);
  for (const [key, list] of cells) {
    const r = Math.floor(key / nPos);
    const p = key % nPos;
    list.sort(
      (a, b) =>
        errLast(a) - errLast(b) ||
        g.influence[b] - g.influence[a] ||
        g.activation[b] - g.activation[a] ||
        a - b,
    );
    list.forEach((i, k) => {
      const line = Math.floor(k / perLine);
      const inLine = Math.min(perLine, list.length - line * perLine);
      const left = p * o.colWidth + (o.colWidth - inLine * o.step) / 2;
      x[i] = left + (k % perLine) * o.step + o.step / 2;
      yy[i] = rowTop[r] + o.rowGap + line * o.step + o.step / 2;
    });
  }
  return { x, y: yy, width: nPos * o.colWidth, height: y, rowTop, rowBottom };
}

/** The `k` edges into (`incoming`) or out of a node with the largest |weight|. */
export function topEdges(g: Graph, node: number, incoming: boolean, k: number): number[] {
  const ends = incoming ? g.dst : g.src;
  const found: number[] = [];
  for (let e = 0; e < ends.length; e++) if (ends[e] === node) found.push(e);
  found.sort((a, b) => Math.abs(g.weight[b]) - Math.abs(g.weight[a]) || a - b);
  return found.slice(0, k);
}
