// Pure decoding and lookup for the LogitLens widget (no DOM), so vitest can check them.
// Python side: src/mechscope/widgets/logit_lens.py encodes these payloads.

import { type ArrayDtype, type BinaryLike, decodeArray } from "../shared/buffers";
import { decodeInt32 } from "../shared/int32";

/** The traits LensData is decoded from (a subset of the widget's Model). */
export interface LensPayload {
  n_layers: number;
  n_pos: number;
  k: number;
  /** [layer, pos, k] probabilities as `dtype`. */
  top_probs: BinaryLike;
  /** [layer, pos, k] int32 indices into `token_table`. */
  top_ids: BinaryLike;
  /** [pos] int32 index into `token_table` of the next token, -1 for none. */
  targets: BinaryLike;
  dtype: ArrayDtype;
  token_table: string[];
  row_labels: string[];
  tokens: string[];
}

export interface LensData {
  nLayers: number;
  nPos: number;
  k: number;
  probs: Float32Array;
  ids: Int32Array;
  targets: Int32Array;
  table: string[];
}

/** Decode and check a payload; throws with what is wrong (shown in the widget, never blank). */
export function decodeLens(m: LensPayload): LensData {
  const { n_layers: nLayers, n_pos: nPos, k } = m;
  const count = nLayers * nPos * k;
  const probs = decodeArray(m.top_probs, m.dtype, count);
  const ids = decodeInt32(m.top_ids, count);
  const targets = decodeInt32(m.targets, nPos);
  const table = m.token_table;
  for (let i = 0; i < count; i++) {
    if (ids[i] < 0 || ids[i] >= table.length) {
      throw new Error(`top_ids[${i}] = ${ids[i]} is outside the token table (${table.length} entries)`);
    }
  }
  if (m.row_labels.length !== nLayers) throw new Error(`row_labels has ${m.row_labels.length} entries for ${nLayers} layers`);
  if (m.tokens.length !== nPos) throw new Error(`tokens has ${m.tokens.length} entries for ${nPos} positions`);
  return { nLayers, nPos, k, probs, ids, targets, table };
}

export interface Guess {
  token: string;
  prob: number;
}

/** The k guesses of one cell, most probable first. */
export function topK(d: LensData, layer: number, pos: number): Guess[] {
  const base = (layer * d.nPos + pos) * d.k;
  const out: Guess[] = [];
  for (let j = 0; j < d.k; j++) out.push({ token: d.table[d.ids[base + j]], prob: d.probs[base + j] });
  return out;
}

/** Whether the cell's top-1 is the actual next token. */
export function isHit(d: LensData, layer: number, pos: number): boolean {
  const t = d.targets[pos];
  return t >= 0 && d.ids[(layer * d.nPos + pos) * d.k] === t;
}

/** A probability as shown: three decimals, NaN spelled out. */
export function formatProb(p: number): string {
  if (Number.isNaN(p)) return "NaN";
  if (!Number.isFinite(p)) return p > 0 ? "Inf" : "-Inf";
  return p.toFixed(3);
}
