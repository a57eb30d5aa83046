// The part of anywidget's model interface the mechscope widgets use.

export interface AnyModel<T> {
  get<K extends keyof T>(key: K): T[K];
  set<K extends keyof T>(key: K, value: T[K]): void;
  save_changes(): void;
  on(event: string, callback: () => void): void;
  off(event?: string | null, callback?: (() => void) | null): void;
}

export interface RenderProps<T> {
  model: AnyModel<T>;
  el: HTMLElement;
}

/** One token as shown: whitespace kept, newlines and tabs made visible. */
export function displayToken(tok: string): string {
  return tok.replace(/\n/g, "\u21b5").replace(/\t/g, "\u2192");
}

/**
 * Call `fn` once after the current burst of trait changes: Python sends several changed
 * traits in one message, and the view should rebuild once, after all of them.
 */
export function coalesce(fn: () => void): () => void {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      fn();
    });
  };
}
