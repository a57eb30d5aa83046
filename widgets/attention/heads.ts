// Where the focused head's weights come from (no DOM, so vitest can check it).
//
// A small pattern is sent whole: every head is a slice of it. A big one (Python's
// AttentionPatterns above 4 Mi weights) is sent as max-pooled thumbnails plus one head; any
// other head is fetched from the kernel over the widget's comm and kept here (a few at a
// time). Until it arrives, the focused view shows the thumbnail blown up to full size.

/** The n x n placeholder of one head: each position gets the maximum of its thumbnail block. */
export function upsample(thumbs: Float32Array, offset: number, side: number, stride: number, n: number): Float32Array {
  const out = new Float32Array(n * n);
  for (let q = 0; q < n; q++) {
    const row = offset + Math.floor(q / stride) * side;
    for (let k = 0; k < n; k++) out[q * n + k] = thumbs[row + Math.floor(k / stride)];
  }
  return out;
}

/** Full-resolution heads fetched from the kernel: the `limit` most recently used, by "l,h". */
export class HeadCache {
  private readonly heads = new Map<string, Float32Array>();
  private readonly pending = new Set<string>();

  constructor(private readonly limit = 16) {}

  static key(layer: number, head: number): string {
    return `${layer},${head}`;
  }

  get(layer: number, head: number): Float32Array | undefined {
    const key = HeadCache.key(layer, head);
    const data = this.heads.get(key);
    if (data) {
      this.heads.delete(key); // re-insert: most recently used last
      this.heads.set(key, data);
    }
    return data;
  }

  put(layer: number, head: number, data: Float32Array): void {
    const key = HeadCache.key(layer, head);
    this.pending.delete(key);
    this.heads.delete(key);
    this.heads.set(key, data);
    while (this.heads.size > this.limit) {
      const oldest = this.heads.keys().next().value as string;
      this.heads.delete(oldest);
    }
  }

  /** True the first time a head is asked for (send the request), false while it is on its way. */
  request(layer: number, head: number): boolean {
    const key = HeadCache.key(layer, head);
    if (this.pending.has(key) || this.heads.has(key)) return false;
    this.pending.add(key);
    return true;
  }

  /** Forget a request that failed, so that focusing the head again asks again. */
  fail(layer: number, head: number): void {
    this.pending.delete(HeadCache.key(layer, head));
  }

  get size(): number {
    return this.heads.size;
  }
}
