// Tiny DOM helpers. Text goes in through textContent only: tokens are user data, and a
// token like `<img src=x onerror=...>` must show up literally, never as markup.

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = "",
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function clearChildren(node: Node): void {
  while (node.firstChild) node.removeChild(node.firstChild);
}

/** The font stack of shared/base.css, for measuring text before it is in the page. */
export const FONT_STACK = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

let measureCtx: CanvasRenderingContext2D | null | undefined;

/** Width in CSS px of `text` in `px`-sized FONT_STACK; a rough estimate where canvas is missing. */
export function textWidth(text: string, px: number): number {
  if (measureCtx === undefined) measureCtx = document.createElement("canvas").getContext("2d");
  if (!measureCtx) return text.length * px * 0.62;
  measureCtx.font = `${px}px ${FONT_STACK}`;
  return measureCtx.measureText(text).width;
}
