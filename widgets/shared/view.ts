// The life cycle every widget view shares: subscribe to the model, (re)build the view from it,
// show its title, show (never swallow) a payload it cannot decode, unsubscribe on destroy.

import { clearChildren, el } from "./dom";
import { type AnyModel, coalesce, listen, type RenderProps } from "./model";

export abstract class WidgetView<T extends { title: string }> {
  /** False while the payload is undecodable: only the error message is shown. */
  protected ok = false;
  protected titleEl: HTMLElement | null = null;
  private unlisten: () => void = () => {};

  constructor(
    protected readonly model: AnyModel<T>,
    protected readonly root: HTMLElement,
  ) {}

  /**
   * Mark the root with `className`, rebuild once per burst of changes to `dataKeys`, call each
   * of `others` on a change of its own key (and renderTitle on `title`), and build now.
   * Subclasses call it at the end of their constructor, once their own fields are set.
   */
  protected listenAndBuild(className: string, dataKeys: readonly string[], others: Record<string, () => void> = {}): void {
    this.root.classList.add(className);
    this.unlisten = listen(this.model, dataKeys, coalesce(() => this.build()), {
      ...others,
      title: () => this.renderTitle(),
    });
    this.build();
  }

  destroy(): void {
    this.unlisten();
    clearChildren(this.root);
  }

  /** (Re)build the whole view from the model: runs once, and again when the data changes. */
  protected abstract build(): void;

  /** The start of a rebuild: an empty root, not rendered, not ok. */
  protected reset(): void {
    this.ok = false;
    this.titleEl = null;
    this.root.removeAttribute("data-rendered");
    clearChildren(this.root);
  }

  /** A broken payload is shown, not swallowed: an empty widget looks like a working one. */
  protected showError(className: string, widget: string, err: unknown): void {
    this.root.append(el("div", className, `${widget} could not decode its data: ${String(err)}`));
    console.error(err);
  }

  protected renderTitle(): void {
    if (!this.titleEl) return;
    const title = this.model.get("title");
    this.titleEl.textContent = title;
    this.titleEl.hidden = !title;
  }

  /** Set a two-way trait and send it to Python (and so to every other view of the model). */
  protected send<K extends keyof T>(key: K, value: T[K]): void {
    this.model.set(key, value);
    this.model.save_changes();
  }
}

/** The module's default export for anywidget: `render` builds a `View` and returns its cleanup. */
export function widget<T>(View: new (model: AnyModel<T>, root: HTMLElement) => { destroy(): void }): {
  render: (props: RenderProps<T>) => () => void;
} {
  return {
    render({ model, el: root }: RenderProps<T>): () => void {
      const view = new View(model, root);
      return () => view.destroy();
    },
  };
}

/** A view of one feature at a time (`feature`, two-way, an index below `n_features`). */
export abstract class FeatureView<T extends { title: string; feature: number; n_features: number }> extends WidgetView<T> {
  protected feature = 0;

  /** Show `this.feature`. */
  protected abstract showFeature(): void;

  /** `f` when it names a feature, else null. */
  protected clampFeature(f: number | null | undefined): number | null {
    const n = this.model.get("n_features");
    return typeof f === "number" && Number.isInteger(f) && f >= 0 && f < n ? f : null;
  }

  /** The user picked a feature: show it and tell Python. */
  protected choose(f: number): void {
    if (this.clampFeature(f) === null || f === this.feature) return;
    this.feature = f;
    this.showFeature();
    this.send("feature", f as T["feature"]);
  }

  /** Python (or another view) changed `feature`. */
  protected applyFeature(): void {
    const f = this.clampFeature(this.model.get("feature"));
    if (!this.ok || f === null || f === this.feature) return;
    this.feature = f;
    this.showFeature();
  }
}
