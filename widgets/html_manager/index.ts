// The widget manager of an exported page (`mechscope export`): renders the widget state saved
// in the notebook, offline. Bundled into one IIFE that the page inlines, so nothing is fetched.
//
// It is @jupyter-widgets/html-manager's recipe (a ManagerBase subclass + its embed loop) with
// the modules a mechscope page needs: the base and controls widgets and anywidget's own front
// end (each widget's code is its `_esm` trait, saved in the state). html-manager itself also
// pulls in JupyterLab's rendermime (1.4 MB more) for the Output widget, which we do not ship.
import * as base from "@jupyter-widgets/base";
import { ManagerBase, type IManagerState } from "@jupyter-widgets/base-manager";
import * as controls from "@jupyter-widgets/controls";
import { Widget } from "@lumino/widgets";
import createAnywidget from "anywidget";

const STATE_MIME = "application/vnd.jupyter.widget-state+json";
const VIEW_MIME = "application/vnd.jupyter.widget-view+json";

type ClassMap = Record<string, unknown>;
const MODULES: Record<string, ClassMap> = {
  "@jupyter-widgets/base": base as unknown as ClassMap,
  "@jupyter-widgets/controls": controls as unknown as ClassMap,
  anywidget: createAnywidget(base) as unknown as ClassMap,
};

/** A manager with no kernel: models come from the saved state, comms go nowhere. */
class OfflineManager extends ManagerBase {
  protected async loadClass(className: string, moduleName: string, moduleVersion: string) {
    const cls = MODULES[moduleName]?.[className];
    if (!cls) {
      throw new Error(
        `${moduleName}@${moduleVersion} ${className} is not bundled in this offline page ` +
          `(bundled: ${Object.keys(MODULES).join(", ")}); open the notebook in Jupyter instead.`,
      );
    }
    return cls as typeof base.WidgetModel;
  }

  protected async _create_comm(): Promise<base.IClassicComm> {
    // A view that calls save_changes() talks to no kernel; the change stays in the page.
    const none = () => "";
    return {
      comm_id: "",
      target_name: "",
      open: none,
      send: none,
      close: none,
      on_msg: () => undefined,
      on_close: () => undefined,
    };
  }

  protected async _get_comm_info(): Promise<{}> {
    return {};
  }
}

function notice(host: HTMLElement, text: string): void {
  const p = document.createElement("pre");
  p.className = "ms-export-notice";
  p.textContent = text; // model ids and errors are data: never parsed as HTML
  host.appendChild(p);
}

/** Render every saved widget view under `root`; returns how many rendered. */
export async function renderWidgets(root: ParentNode = document): Promise<number> {
  const stateTag = root.querySelector(`script[type="${STATE_MIME}"]`);
  const viewTags = Array.from(root.querySelectorAll(`script[type="${VIEW_MIME}"]`));
  const state = stateTag ? (JSON.parse(stateTag.textContent || "{}") as IManagerState) : null;
  const manager = new OfflineManager();
  const models = state ? await manager.set_state(state) : [];
  const results = await Promise.all(
    viewTags.map(async (tag) => {
      const parent = tag.parentElement;
      if (!parent) return false;
      const host = document.createElement("div");
      host.className = "widget-subarea";
      parent.insertBefore(host, tag);
      const { model_id } = JSON.parse(tag.textContent || "{}") as { model_id?: string };
      const model = models.find((m) => m.model_id === model_id);
      if (!model) {
        notice(host, `widget ${model_id}: no saved state (export with --execute to store it)`);
        return false;
      }
      try {
        const view = await manager.create_view(model);
        Widget.attach(view.luminoWidget, host);
        return true;
      } catch (e) {
        notice(host, `widget ${model_id} failed to render: ${e}`);
        return false;
      }
    }),
  );
  return results.filter(Boolean).length;
}

function start(): void {
  const el = document.documentElement;
  renderWidgets().then(
    (n) => {
      el.dataset.mechscopeWidgets = String(n); // tests and readers can see it finished
    },
    (e) => {
      el.dataset.mechscopeWidgets = "error";
      console.error("[mechscope] widget rendering failed", e);
    },
  );
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
