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

/**
 * Subscribe `onData` to every key in `dataKeys` and each handler in `others` to its own key
 * (`change:<key>` events). Returns the function that removes exactly these subscriptions.
 */
export function listen<T>(
  model: AnyModel<T>,
  dataKeys: readonly string[],
  onData: () => void,
  others: Record<string, () => void>,
): () => void {
  const subs: [string, () => void][] = [
    ...dataKeys.map((key): [string, () => void] => [`change:${key}`, onData]),
    ...Object.entries(others).map(([key, fn]): [string, () => void] => [`change:${key}`, fn]),
  ];
  for (const [event, fn] of subs) model.on(event, fn);
  return () => {
    for (const [event, fn] of subs) model.off(event, fn);
  };
}
