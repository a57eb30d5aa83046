// Decoding of the binary array payloads that Python's mechscope.widgets._buffers encodes.
// Every widget receives arrays as raw little-endian buffers, never as JSON lists of floats.

export type ArrayDtype = "float32" | "float16" | "uint8";

/** uint8 payloads store round(value * UINT8_SCALE); this code marks NaN/Inf (mirrors _buffers.py). */
export const UINT8_SCALE = 254;
export const UINT8_NONFINITE = 255;

/** What a synced Bytes trait can look like on the JS side (Jupyter hands us a DataView). */
export type BinaryLike = DataView | ArrayBuffer | Uint8Array;

export function bytesOf(value: BinaryLike): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

export function bytesPerElement(dtype: ArrayDtype): number {
  return dtype === "float32" ? 4 : dtype === "float16" ? 2 : 1;
}

// Shared table for half -> float conversion: 64K entries beats per-element bit twiddling
// when a payload holds millions of values, and works on engines without Float16Array.
let halfTable: Float32Array | null = null;

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // subnormal (and signed zero)
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function getHalfTable(): Float32Array {
  if (halfTable === null) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

/**
 * Decode a payload of `count` values into a Float32Array.
 * Non-finite values decode to NaN/Inf so renderers can mark them (never silently 0).
 */
export function decodeArray(value: BinaryLike, dtype: ArrayDtype, count: number): Float32Array {
  const bytes = bytesOf(value);
  const need = count * bytesPerElement(dtype);
  if (bytes.byteLength !== need) {
    throw new Error(
      `payload has ${bytes.byteLength} bytes but ${count} ${dtype} values need ${need}`,
    );
  }
  const out = new Float32Array(count);
  if (dtype === "float32") {
    // Copy via bytes: the DataView's offset into the message buffer need not be 4-aligned.
    new Uint8Array(out.buffer).set(bytes);
    if (!littleEndianHost()) swapInPlace(new DataView(out.buffer), 4);
  } else if (dtype === "float16") {
    const table = getHalfTable();
    for (let i = 0, b = 0; i < count; i++, b += 2) {
      out[i] = table[bytes[b] | (bytes[b + 1] << 8)];
    }
  } else if (dtype === "uint8") {
    const table = new Float32Array(256);
    for (let q = 0; q < 256; q++) table[q] = q === UINT8_NONFINITE ? NaN : q / UINT8_SCALE;
    for (let i = 0; i < count; i++) out[i] = table[bytes[i]];
  } else {
    throw new Error(`unknown dtype ${JSON.stringify(dtype)}; expected float32, float16 or uint8`);
  }
  return out;
}

function littleEndianHost(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

function swapInPlace(view: DataView, width: 4): void {
  for (let o = 0; o + width <= view.byteLength; o += width) {
    view.setUint32(o, view.getUint32(o, true), false);
  }
}
