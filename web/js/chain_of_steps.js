// Chain-of-Steps frontend extension: a step scrubber for x̂0 trajectories (CoS Decode Steps), an
// energy-grid viewer (CoS Energy Maps) and the live sampling preview (CoS Sampler).
//
// It talks to the backend only through the nodes' `ui` outputs (onExecuted / onNodeOutputsUpdated)
// and the named websocket event "chain_of_steps.preview" (nodes/live_preview.py). Node ids inside
// subgraphs come as execution ids such as "12:5"; they are resolved through each subgraph node's
// own graph. Every name or number shown to the user is set as text (never as HTML).
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { StepScrubber, EnergyViewer } from "./cos_widgets.js";

const PREVIEW_EVENT = "chain_of_steps.preview";
const SCRUBBER = "cos_step_scrubber";
const LIVE = "cos_live_preview";
const ENERGY = "cos_energy_viewer";

function loadCss() {
  const href = new URL("../css/chain_of_steps.css", import.meta.url).href;
  if (document.querySelector(`link[href="${href}"]`)) return;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = href;
  document.head.appendChild(link);
}

// "12:5" → node 5 inside the subgraph of node 12 of the root graph ("7" → node 7 of the root).
export function nodeByExecutionId(id) {
  let graph = app.rootGraph ?? app.graph;
  let node = null;
  const parts = String(id ?? "").split(":");
  for (let i = 0; i < parts.length; i++) {
    if (!graph || !/^-?\d+$/.test(parts[i])) return null;
    node = graph.getNodeById(Number(parts[i]));
    if (!node) return null;
    if (i < parts.length - 1) graph = node.subgraph ?? null;
  }
  return node;
}

// The DOM widget of a kind on a node, created on first use.
function widgetOf(node, name, make) {
  let widget = node.widgets?.find((w) => w.name === name);
  if (!widget) {
    const view = make(node);
    // The view takes the node's free height (between a minimum and the picture's full height); the
    // node is grown only when it is smaller than that minimum, so a workflow's layout is kept.
    widget = node.addDOMWidget(name, "cos_view", view.root, {
      serialize: false,
      hideOnZoom: false,
      getMinHeight: () => view.minHeight(),
      getMaxHeight: () => view.maxHeight(Math.max(200, (node.size?.[0] ?? 400) - 20)),
    });
    widget.serialize = false;
    widget.cosView = view;
    view.onResize = () => redraw(node);
    redraw(node);
  }
  return widget.cosView;
}

function redraw(node) {
  const min = node.computeSize?.();
  if (min && (node.size[0] < min[0] || node.size[1] < min[1])) {
    node.setSize([Math.max(node.size[0], min[0]), Math.max(node.size[1], min[1])]);
  }
  node.setDirtyCanvas?.(true, true);
}

function showOutput(node, output) {
  if (!node || !output) return;
  const steps = output.cos_steps?.[0];
  if (steps) widgetOf(node, SCRUBBER, (n) => new StepScrubber(n, { title: "x̂0 per step" })).setTrajectory(steps);
  const energy = output.cos_energy?.[0];
  if (energy) widgetOf(node, ENERGY, (n) => new EnergyViewer(n)).setGrid(energy);
}

function onPreview({ detail }) {
  const node = nodeByExecutionId(detail?.node);
  if (!node || typeof detail.image !== "string" || !detail.image.startsWith("data:image/")) return;
  const view = widgetOf(node, LIVE, (n) => new StepScrubber(n, { live: true, title: "live x̂0 preview" }));
  view.pushLive(detail);
}

app.registerExtension({
  name: "chain_of_steps.views",
  setup() {
    loadCss();
    api.addEventListener(PREVIEW_EVENT, onPreview);
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!["CoSDecodeSteps", "CoSEnergyMaps"].includes(nodeData?.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      showOutput(this, output);
    };
  },
  // outputs restored when a workflow is reopened or the page reloads
  onNodeOutputsUpdated(outputs) {
    for (const [id, output] of Object.entries(outputs ?? {})) {
      if (output?.cos_steps || output?.cos_energy) showOutput(nodeByExecutionId(id), output);
    }
  },
});
