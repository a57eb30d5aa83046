// Integer payloads (histogram counts, indices): `_buffers.encode(x, "int32")` in Python.
// Kept apart from decodeArray: integers are not a choice of float precision.

import { type BinaryLike, bytesOf } from "./buffers";

/** Decode `count` little-endian int32 values. */
export function decodeInt32(value: BinaryLike, count: number): Int32Array {
  const bytes = bytesOf(value);
  if (bytes.byteLength !== count * 4) {
    throw new Error(`payload has ${bytes.byteLength} bytes but ${count} int32 values need ${count * 4}`);
  }
  const out = new Int32Array(count);
  new Uint8Array(out.buffer).set(bytes); // copy: the source offset need not be 4-aligned
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    const view = new DataView(out.buffer);
    for (let o = 0; o < view.byteLength; o += 4) view.setInt32(o, view.getInt32(o, true), false);
  }
  return out;
}
