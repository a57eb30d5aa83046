// anywidget's npm package ships its front end as an AMD module with no type declarations;
// build.mjs rewrites its `define([...], factory)` into `export default factory`.
declare module "anywidget" {
  import type * as base from "@jupyter-widgets/base";

  type Classes = { AnyModel: typeof base.DOMWidgetModel; AnyView: typeof base.DOMWidgetView };
  export default function create(base: {
    DOMWidgetModel: typeof import("@jupyter-widgets/base").DOMWidgetModel;
    DOMWidgetView: typeof import("@jupyter-widgets/base").DOMWidgetView;
  }): Classes;
}
