// Tier-3 driver: the real ComfyUI frontend in Debian's Chromium through playwright-core.
//
//   node tests/browser/drive.mjs CONFIG.json RESULT.json
//
// CONFIG (written by tests/test_tier3_browser.py): url, pack, shots (folder), chromium (path),
// workflows [{name, overrides {nodeId: {widget: value}}, unlink [[nodeId, input]], outputs [{nodeId,
// nodeType, mediaType}], nodeCount}], subgraph {workflow, wrap [nodeIds]}, help [node ids], docs [node ids], timeoutMs.
// For every workflow: open it from the Templates browser (clicking through the dialog), make it tiny in
// the page (widget values; CLIPTextEncode → CoSTinyTextEncode or CoSTinyLTXTextEncode, the text-encoder
// loader removed), press Run, wait
// for the prompt to finish, check the outputs on the output nodes, take screenshots, and exercise the
// step scrubber, the energy viewer and the live preview. RESULT gets everything as JSON; the Python
// test asserts on it. Nothing here decides pass/fail except crashes.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const resultPath = process.argv[3];
const result = { workflows: {}, console: [], extensionErrors: [], templates: {}, help: {}, docs: {},
                 subgraph: null, escaping: null, fatal: null };
const packUrl = `/extensions/${config.pack}/`;
mkdirSync(config.shots, { recursive: true });

function save() {
  writeFileSync(resultPath, JSON.stringify(result, null, 1));
}

async function shot(page, name) {
  const path = join(config.shots, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

async function settle(page, ms = 400) {
  await page.waitForTimeout(ms);
}

// --- page set-up ---------------------------------------------------------------------------------

async function start() {
  const browser = await chromium.launch({
    executablePath: config.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.on("console", (msg) => {
    const where = msg.location()?.url ?? "";
    const entry = { type: msg.type(), text: msg.text().slice(0, 500), url: where };
    if (msg.type() === "error") result.console.push(entry);
    // errors raised by this pack's own scripts (a docs/<Node>/<locale>.md 404 is the frontend's probe)
    if (msg.type() === "error" && where.includes(packUrl) && !/\/docs\/[^/]+\/[a-z-]+\.md$/i.test(where)) {
      result.extensionErrors.push(entry);
    }
  });
  page.on("pageerror", (err) => {
    const entry = { type: "pageerror", text: String(err.message).slice(0, 500), stack: String(err.stack ?? "").slice(0, 800) };
    result.console.push(entry);
    if (entry.stack.includes(packUrl)) result.extensionErrors.push(entry);
  });
  await page.goto(config.url);
  await page.waitForFunction(() => window.app?.graph && window.comfyAPI?.api?.api, null, { timeout: 90000 });
  await page.waitForFunction(() => (window.app.extensions ?? []).some((e) => e.name === "chain_of_steps.views"),
                             null, { timeout: 30000 });
  await page.evaluate(async () => {
    await window.app.extensionManager?.setting?.set?.("Comfy.Minimap.Visible", false);
    const api = window.comfyAPI.api.api;
    window.__cos = { events: [], previews: 0 };
    for (const type of ["execution_start", "execution_success", "execution_error", "execution_interrupted"]) {
      api.addEventListener(type, (e) => window.__cos.events.push([type, e.detail]));
    }
    api.addEventListener("chain_of_steps.preview", (e) => {
      window.__cos.previews++;
      window.__cos.lastPreview = { node: e.detail?.node, step: e.detail?.step };
    });
  });
  return { browser, page };
}

// --- Templates browser ---------------------------------------------------------------------------

async function openTemplatesDialog(page) {
  // A fresh server opens the dialog by itself, a little after the page loads; else the side bar's button.
  const dialog = page.getByRole("dialog").filter({ hasText: "Templates" }).first();
  for (let i = 0; i < 30; i++) {
    if (await dialog.isVisible().catch(() => false)) return dialog;
    await page.getByRole("button", { name: "Templates", exact: true }).click({ timeout: 1500 }).catch(() => {});
    await settle(page, 500);
  }
  await dialog.waitFor({ state: "visible", timeout: 5000 });
  return dialog;
}

async function openTemplate(page, name, nodeCount) {
  const dialog = await openTemplatesDialog(page);
  // the pack's category under "Extensions" in the dialog's side bar
  await dialog.getByText(config.pack, { exact: true }).first().click();
  const card = dialog.getByText(name, { exact: true }).first();
  await card.waitFor({ state: "visible", timeout: 20000 });
  await card.click();
  await page.waitForFunction(({ n }) => window.app.graph.nodes.length === n, { n: nodeCount }, { timeout: 30000 });
  await dialog.waitFor({ state: "hidden", timeout: 20000 }).catch(() => {});
  await settle(page, 800);
}

async function listTemplates(page) {
  const dialog = await openTemplatesDialog(page);
  await dialog.getByText(config.pack, { exact: true }).first().click();
  await settle(page, 1500);
  const names = await dialog.evaluate((root, wanted) => wanted.filter((n) =>
    [...root.querySelectorAll("*")].some((e) => e.childElementCount === 0 && e.textContent.trim() === n)),
  (config.listed ?? config.workflows.map((w) => w.name)).concat(["index"]));
  // card thumbnails (the frontend may show them through blob: URLs of its media cache)
  const thumbs = await dialog.evaluate((root) => [...root.querySelectorAll("img")]
    .map((i) => ({ src: i.src.slice(0, 120), ok: i.complete && i.naturalWidth > 0, alt: i.alt })));
  result.templates = { shown: names, thumbnails: thumbs, shot: await shot(page, "00_templates_browser") };
  await page.keyboard.press("Escape");
  await settle(page);
}

// --- tiny rewrite, run, outputs ------------------------------------------------------------------

async function makeTiny(page, overrides, unlink = []) {
  return page.evaluate(({ overrides, unlink }) => {
    const g = window.app.graph;
    const LG = window.LiteGraph;
    const changed = [];
    for (const [id, name] of unlink) {
      const node = g.getNodeById(Number(id));
      const slot = node.inputs.findIndex((i) => i.name === name);
      node.disconnectInput(slot);
      changed.push(`${id}.${name} disconnected`);
    }
    for (const [id, change] of Object.entries(overrides)) {
      const node = g.getNodeById(Number(id));
      if (!node) throw new Error(`node ${id} is not in the graph`);
      for (const [name, value] of Object.entries(change)) {
        const widget = node.widgets?.find((w) => w.name === name);
        if (!widget) throw new Error(`node ${id} ${node.type} has no widget ${name}`);
        widget.value = value;
        changed.push(`${id}.${name}`);
      }
    }
    const linkOf = (id) => g.getLink?.(id) ?? g.links?.get?.(id) ?? g.links?.[id];
    // the text-encoder loader feeding a CLIPTextEncode picks its stand-in (tools/cos_run.py TINY_TEXT_ENCODERS)
    const standIns = { CLIPLoader: "CoSTinyTextEncode", LTXAVTextEncoderLoader: "CoSTinyLTXTextEncode" };
    for (const node of [...g.nodes]) {
      if (node.type !== "CLIPTextEncode") continue;
      const clipLink = linkOf(node.inputs.find((i) => i.name === "clip")?.link);
      const loader = clipLink ? g.getNodeById(clipLink.origin_id)?.type : null;
      const tiny = LG.createNode(standIns[loader] ?? "CoSTinyTextEncode");
      tiny.pos = [node.pos[0], node.pos[1]];
      g.add(tiny);
      tiny.setSize([...node.size]); // in the place of the node it stands in for, not over its neighbours
      tiny.widgets[0].value = node.widgets[0].value;
      for (const linkId of [...(node.outputs[0].links ?? [])]) {
        const link = linkOf(linkId);
        tiny.connect(0, g.getNodeById(link.target_id), link.target_slot);
      }
      g.remove(node);
      changed.push(`${node.id} CLIPTextEncode → ${tiny.type} ${tiny.id}`);
    }
    for (const node of [...g.nodes]) {
      if (node.type in standIns) {
        g.remove(node);
        changed.push(`${node.id} ${node.type} removed`);
      }
    }
    g.setDirtyCanvas(true, true);
    return changed;
  }, { overrides, unlink });
}

async function runGraph(page, timeoutMs) {
  const from = await page.evaluate(() => window.__cos.events.length);
  const previews = await page.evaluate(() => window.__cos.previews);
  const started = Date.now();
  await page.getByRole("button", { name: "Run", exact: true }).first().click();
  await page.waitForFunction((from) => window.__cos.events.slice(from).some(([t]) => t === "execution_start"),
                             from, { timeout: 30000 });
  const promptId = await page.evaluate((from) => window.__cos.events.slice(from)
    .find(([t]) => t === "execution_start")[1].prompt_id, from);
  await page.waitForFunction(({ from, promptId }) => window.__cos.events.slice(from).some(([t, d]) =>
    d?.prompt_id === promptId && ["execution_success", "execution_error", "execution_interrupted"].includes(t)),
  { from, promptId }, { timeout: timeoutMs, polling: 250 });
  const end = await page.evaluate(({ from, promptId }) => window.__cos.events.slice(from).find(([t, d]) =>
    d?.prompt_id === promptId && ["execution_success", "execution_error", "execution_interrupted"].includes(t)),
  { from, promptId });
  return {
    promptId, status: end[0], seconds: (Date.now() - started) / 1000,
    error: end[0] === "execution_error" ? `${end[1].node_type}: ${end[1].exception_message}` : null,
    previews: (await page.evaluate(() => window.__cos.previews)) - previews,
  };
}

async function checkOutputs(page, outputs) {
  // wait until every listed output node has its outputs and its pictures are loaded
  const probe = (outputs) => outputs.map(({ nodeId, nodeType }) => {
    const node = window.app.graph.getNodeById(nodeId);
    const out = window.app.nodeOutputs?.[String(nodeId)] ?? null;
    const files = [...(out?.images ?? []), ...(out?.video ?? []), ...(out?.gifs ?? [])];
    const viewer = document.querySelector(`.cos-energy[data-node-id="${nodeId}"] img`);
    const scrubber = document.querySelector(`.cos-scrubber[data-cos="scrubber"][data-node-id="${nodeId}"]`);
    const imgs = (node?.imgs ?? []).map((i) => i.complete && i.naturalWidth > 0);
    return {
      nodeId, nodeType, type: node?.type ?? null, keys: Object.keys(out ?? {}), files: files.map((f) => f.filename),
      images: imgs, imagesLoaded: imgs.length > 0 && imgs.every(Boolean),
      viewerLoaded: viewer ? viewer.complete && viewer.naturalWidth > 0 : null,
      scrubberSteps: scrubber ? Number(scrubber.querySelector("input").max) + 1 : null,
      video: !!node && [...document.querySelectorAll("video")].some((v) => (v.currentSrc || v.src || "").includes("/view")),
    };
  });
  const ready = (rows) => rows.every((r) => r.keys.length && (r.nodeType === "SaveVideo" ? r.files.length
    : r.nodeType === "CoSEnergyMaps" && r.keys.includes("cos_energy") ? r.viewerLoaded : r.imagesLoaded));
  let rows = await page.evaluate(probe, outputs);
  for (let i = 0; i < 40 && !ready(rows); i++) {
    await settle(page, 250);
    rows = await page.evaluate(probe, outputs);
  }
  // the files answer through /view
  for (const row of rows) {
    const out = await page.evaluate((id) => window.app.nodeOutputs?.[String(id)], row.nodeId);
    const entries = [...(out?.images ?? []), ...(out?.cos_energy ?? []).map((v) => v.image)];
    row.fetched = [];
    for (const file of entries.slice(0, 3)) {
      row.fetched.push(await page.evaluate(async (f) => {
        const q = new URLSearchParams({ filename: f.filename, subfolder: f.subfolder ?? "", type: f.type ?? "output" });
        const r = await fetch(`/api/view?${q}`);
        return { status: r.status, bytes: (await r.arrayBuffer()).byteLength };
      }, file));
    }
  }
  return rows;
}

// Nodes that cover each other once the run's outputs (pictures, scrubbers, viewers) are shown.
async function overlappingNodes(page) {
  return page.evaluate(() => {
    const title = window.LiteGraph?.NODE_TITLE_HEIGHT ?? 30;
    // the test's own text-encoder stand-ins are left out: they are not part of the shipped layout
    const boxes = window.app.graph.nodes.filter((n) => !n.flags?.collapsed && !n.type.startsWith("CoSTiny")).map((n) => {
      const r = n.boundingRect ?? [n.pos[0], n.pos[1] - title, n.size[0], n.size[1] + title];
      return { id: n.id, type: n.type, x0: r[0], y0: r[1], x1: r[0] + r[2], y1: r[1] + r[3] };
    });
    const out = [];
    window.__cosBoxes = boxes;
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i], b = boxes[j];
        const w = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
        const h = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
        if (w > 4 && h > 4) out.push({ a: `${a.id} ${a.type}`, b: `${b.id} ${b.type}`, w: Math.round(w), h: Math.round(h) });
      }
    }
    return out;
  });
}

// --- views ---------------------------------------------------------------------------------------

async function focusNode(page, nodeId, scale = 1.0) {
  await closeSidePanel(page);
  await page.evaluate(({ nodeId, scale }) => {
    const canvas = window.app.canvas;
    const node = canvas.graph.getNodeById(nodeId);
    canvas.ds.scale = scale;
    canvas.ds.offset[0] = -node.pos[0] + 90 / scale;
    canvas.ds.offset[1] = -node.pos[1] + 110 / scale;
    canvas.setDirty(true, true);
  }, { nodeId, scale });
  await settle(page, 600);
}

async function closeSidePanel(page) {
  // the properties panel (it opens by itself on graph errors) hides part of the canvas
  const panel = page.getByText("Workflow Overview", { exact: true });
  if (await panel.isVisible().catch(() => false)) {
    await page.getByRole("button", { name: "Toggle properties panel" }).click().catch(() => {});
    await settle(page, 300);
  }
}

async function fitView(page) {
  await closeSidePanel(page);
  await page.getByRole("button", { name: "Fit View (.)" }).click().catch(() => {});
  await settle(page, 600);
}

async function exerciseScrubber(page, nodeId, name) {
  await focusNode(page, nodeId, 0.9);
  const root = page.locator(`.cos-scrubber[data-cos="scrubber"][data-node-id="${nodeId}"]`);
  await root.waitFor({ state: "visible", timeout: 10000 });
  const label = root.locator(".cos-scrub-label");
  // what the view shows: its label, the step it says it shows and a checksum of the canvas pixels
  const state = async () => ({ text: await label.textContent(), step: await root.getAttribute("data-step"),
    pixelSum: await root.locator("canvas").evaluate((c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let sum = 0;
      for (let i = 0; i < d.length; i += 1) sum = (sum * 31 + d[i]) % 1000000007;
      return sum;
    }) });
  const before = await state();
  const slider = root.locator("input[type=range]");
  const box = await slider.boundingBox();
  // a real drag of the slider's thumb from the start of the track to its end
  await page.mouse.move(box.x + 6, box.y + box.height / 2);
  await page.mouse.down();
  for (let i = 1; i <= 8; i++) await page.mouse.move(box.x + 6 + ((box.width - 8) * i) / 8, box.y + box.height / 2);
  await page.mouse.up();
  await settle(page, 300);
  const after = await state();
  await page.mouse.click(box.x + box.width * 0.45, box.y + box.height / 2);
  await settle(page, 300);
  const middle = await state();
  await root.locator("select").selectOption({ index: 1 });
  await settle(page, 300);
  const shotPath = await shot(page, `${name}_scrubber`);
  await root.locator("select").selectOption({ index: 0 }); // back to all frames
  await settle(page, 200);
  const middleAll = await state();
  await root.locator("button").click(); // play: the steps shown while it plays
  const seen = [];
  for (let i = 0; i < 10; i++) {
    await settle(page, 120);
    seen.push(await root.getAttribute("data-step"));
  }
  const playing = { ...(await state()), button: await root.locator("button").getAttribute("aria-label"), seen };
  await root.locator("button").click(); // pause
  const pixels = await root.locator("canvas").evaluate((c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 0; i < d.length; i += 4) lit += d[i] + d[i + 1] + d[i + 2] > 30 ? 1 : 0;
    return { width: c.width, height: c.height, lit };
  });
  return { before, after, middle, middleAll, playing, pixels, shot: shotPath, max: Number(await slider.getAttribute("max")) };
}

async function exerciseEnergy(page, nodeId, name) {
  await focusNode(page, nodeId, 0.75);
  const viewer = page.locator(`.cos-energy[data-node-id="${nodeId}"]`);
  const image = viewer.locator("img");
  await image.waitFor({ state: "visible", timeout: 10000 });
  const payload = await page.evaluate((id) => window.app.nodeOutputs?.[String(id)]?.cos_energy?.[0], nodeId);
  const box = await image.boundingBox();
  const cell = payload.cells[Math.floor(payload.cells.length / 2)];
  const x = box.x + ((cell.box[0] + cell.box[2]) / 2) * (box.width / payload.size[0]);
  const y = box.y + ((cell.box[1] + cell.box[3]) / 2) * (box.height / payload.size[1]);
  await page.mouse.move(x, y);
  await settle(page, 300);
  const tip = viewer.locator(".cos-energy-tip");
  const hover = { visible: await tip.isVisible(), text: await tip.textContent(), cell,
                  marked: await viewer.getAttribute("data-hover") };
  const hoverShot = await shot(page, `${name}_energy_hover`);
  await page.mouse.click(x, y);
  await settle(page, 300);
  const zoom = viewer.locator(".cos-energy-zoom");
  const zoomed = { visible: await zoom.isVisible(), text: await zoom.textContent() };
  const zoomShot = await shot(page, `${name}_energy_zoom`);
  await page.keyboard.press("Escape");
  await settle(page, 200);
  zoomed.closedByEscape = !(await zoom.isVisible());
  await page.mouse.move(5, 500);
  return { hover, zoomed, shots: [hoverShot, zoomShot], cells: payload.cells.length };
}

async function liveState(page, nodeId) {
  return page.evaluate((id) => {
    const root = document.querySelector(`.cos-scrubber[data-cos="live-preview"][data-node-id="${id}"]`);
    if (!root) return null;
    return { label: root.querySelector(".cos-scrub-label").textContent, entries: Number(root.querySelector("input").max) + 1 };
  }, nodeId);
}

// --- one workflow --------------------------------------------------------------------------------

async function runWorkflow(page, wf, index) {
  const tag = `${String(index + 1).padStart(2, "0")}_${wf.name}`;
  const res = { name: wf.name, shots: [] };
  result.workflows[wf.name] = res;
  await openTemplate(page, wf.name, wf.nodeCount);
  res.openedFromTemplates = true;
  res.tiny = await makeTiny(page, wf.overrides, wf.unlink);
  Object.assign(res, await runGraph(page, config.timeoutMs));
  res.outputs = await checkOutputs(page, wf.outputs);
  await settle(page, 500);
  res.overlaps = await overlappingNodes(page);
  res.boxes = await page.evaluate(() => window.__cosBoxes);
  await fitView(page);
  res.shots.push(await shot(page, `${tag}_graph`));
  const nodes = await page.evaluate(() => window.app.graph.nodes.map((n) => ({ id: n.id, type: n.type })));
  res.live = {};
  for (const n of nodes.filter((n) => n.type === "CoSSampler")) res.live[n.id] = await liveState(page, n.id);
  // the scrubber with the most steps (then the lowest node id)
  const decode = await page.evaluate(() => [...document.querySelectorAll('.cos-scrubber[data-cos="scrubber"]')]
    .map((e) => [Number(e.dataset.nodeId), Number(e.querySelector("input[type=range]").max)])
    .sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([id]) => id));
  if (decode.length) res.scrubber = await exerciseScrubber(page, decode[0], tag);
  // energy grids first (PCA grids carry the energy too, when the probe recorded it)
  const energy = await page.evaluate(() => [...document.querySelectorAll(".cos-energy")].map((e) => Number(e.dataset.nodeId))
    .sort((a, b) => (window.app.nodeOutputs?.[String(a)]?.cos_energy?.[0]?.kind === "energy" ? 0 : 1)
                  - (window.app.nodeOutputs?.[String(b)]?.cos_energy?.[0]?.kind === "energy" ? 0 : 1)));
  if (energy.length) res.energy = await exerciseEnergy(page, energy[0], tag);
  const sampler = nodes.find((n) => n.type === "CoSSampler");
  if (sampler && res.live[sampler.id]) {
    await focusNode(page, sampler.id, 0.8);
    res.shots.push(await shot(page, `${tag}_live_preview`));
  }
  save();
}

// --- subgraph: the same views must work on nodes inside a subgraph -------------------------------

async function subgraphCheck(page, spec) {
  const wf = config.workflows.find((w) => w.name === spec.workflow);
  await openTemplate(page, wf.name, wf.nodeCount);
  await makeTiny(page, wf.overrides, wf.unlink);
  const wrapped = await page.evaluate(async (ids) => {
    const app = window.app;
    const nodes = ids.map((id) => app.graph.getNodeById(id));
    nodes.find((n) => n.type === "CoSSampler").widgets.find((w) => w.name === "seed").value = 4321; // not cached
    app.canvas.deselectAll?.();
    app.canvas.selectItems?.(nodes) ?? nodes.forEach((n) => app.canvas.select(n));
    await app.extensionManager.command.execute("Comfy.Graph.ConvertToSubgraph");
    const outer = app.graph.nodes.find((n) => n.isSubgraphNode?.());
    if (!outer) return null;
    return { outer: outer.id, inner: outer.subgraph.nodes.map((n) => ({ id: n.id, type: n.type })) };
  }, spec.wrap);
  const out = { wrapped };
  if (!wrapped) return out;
  Object.assign(out, await runGraph(page, config.timeoutMs));
  out.lastPreview = await page.evaluate(() => window.__cos.lastPreview);
  await settle(page, 800);
  out.views = await page.evaluate((outerId) => {
    const outer = window.app.graph.getNodeById(outerId);
    return outer.subgraph.nodes.map((n) => {
      const w = (name) => n.widgets?.find((x) => x.name === name);
      const live = w("cos_live_preview")?.cosView;
      const scrub = w("cos_step_scrubber")?.cosView;
      return { id: n.id, type: n.type, live: live ? { entries: live.entries.length, label: live.label.textContent } : null,
               scrubber: scrub ? { entries: scrub.entries.length, label: scrub.label.textContent } : null };
    });
  }, wrapped.outer);
  await page.evaluate((outerId) => {
    const outer = window.app.graph.getNodeById(outerId);
    window.app.canvas.openSubgraph(outer.subgraph);
  }, wrapped.outer);
  await settle(page, 800);
  await fitView(page);
  out.shot = await shot(page, "90_subgraph_inside");
  await page.evaluate(() => window.app.canvas.setGraph?.(window.app.rootGraph ?? window.app.graph));
  await settle(page, 300);
  return out;
}

// --- node help pages -----------------------------------------------------------------------------

async function helpCheck(page, nodeType) {
  await closeSidePanel(page);
  // a fresh node on an empty canvas; click its title as a user would, then the toolbox's Node Info
  const title = await page.evaluate((type) => {
    const g = window.app.graph;
    const node = window.LiteGraph.createNode(type);
    node.pos = [260, 240];
    g.add(node);
    const c = window.app.canvas;
    c.ds.scale = 1;
    c.ds.offset[0] = 0;
    c.ds.offset[1] = 0;
    c.setDirty(true, true);
    const rect = c.canvas.getBoundingClientRect();
    return { x: rect.left + node.pos[0] + 60, y: rect.top + node.pos[1] - 15 };
  }, nodeType);
  await settle(page, 400);
  await page.mouse.click(title.x, title.y);
  await settle(page, 600);
  await page.getByRole("button", { name: "Node Info" }).first().click();
  const heading = page.getByText("What it does", { exact: true }).first();
  let shown = true;
  await heading.waitFor({ state: "visible", timeout: 15000 }).catch(() => { shown = false; });
  const paper = shown ? await page.getByText("Paper", { exact: true }).first().isVisible() : false;
  const shotPath = await shot(page, `95_help_${nodeType}`);
  await page.getByRole("button", { name: "Toggle properties panel" }).click().catch(() => {});
  return { shown, paper, shot: shotPath };
}

async function docsCheck(page, ids) {
  return page.evaluate(async ({ pack, ids }) => {
    const out = {};
    for (const id of ids) {
      const r = await fetch(`/extensions/${pack}/docs/${id}.md`);
      const text = await r.text();
      out[id] = { status: r.status, type: r.headers.get("content-type"), head: text.slice(0, 80) };
    }
    return out;
  }, { pack: config.pack, ids });
}

// Names shown by the views are text, never HTML: feed a hostile payload through the real onExecuted.
async function escapingCheck(page) {
  return page.evaluate(() => {
    const g = window.app.graph;
    const node = window.LiteGraph.createNode("CoSDecodeSteps");
    g.add(node);
    const evil = '<img src=x onerror="window.__cosPwned=1">';
    node.onExecuted({ cos_steps: [{ steps: [{ step: 0, sigma: 1, expert: evil,
      image: { filename: `${evil}.jpg`, subfolder: "", type: "temp" } }], frame_labels: [evil], total_steps: 1 }] });
    const root = node.widgets?.find((w) => w.name === "cos_step_scrubber")?.element ?? null;
    const result = { injectedImgs: root ? root.querySelectorAll("img").length : -1,
                     optionText: root?.querySelector("select option:last-child")?.textContent ?? null };
    g.remove(node);
    return result;
  }).then(async (r) => ({ ...r, pwned: await page.evaluate(() => window.__cosPwned === 1) }));
}

// --- main ----------------------------------------------------------------------------------------

const { browser, page } = await start();
try {
  await listTemplates(page);
  save();
  for (const [i, wf] of config.workflows.entries()) {
    try {
      await runWorkflow(page, wf, i);
    } catch (err) {
      result.workflows[wf.name] = { ...(result.workflows[wf.name] ?? {}), crash: String(err.stack ?? err).slice(0, 2000),
                                    shots: [...(result.workflows[wf.name]?.shots ?? []), await shot(page, `crash_${wf.name}`)] };
      await page.keyboard.press("Escape").catch(() => {});
    }
    save();
  }
  if (config.subgraph) {
    try {
      result.subgraph = await subgraphCheck(page, config.subgraph);
    } catch (err) {
      result.subgraph = { crash: String(err.stack ?? err).slice(0, 2000), shot: await shot(page, "crash_subgraph") };
    }
    save();
  }
  await page.evaluate(() => window.app.graph.clear());
  for (const id of config.help ?? []) {
    try {
      result.help[id] = await helpCheck(page, id);
    } catch (err) {
      result.help[id] = { crash: String(err.stack ?? err).slice(0, 1000), shot: await shot(page, `crash_help_${id}`) };
    }
    await page.evaluate(() => window.app.graph.clear());
  }
  result.docs = await docsCheck(page, config.docs ?? []);
  result.escaping = await escapingCheck(page);
} catch (err) {
  result.fatal = String(err.stack ?? err).slice(0, 3000);
  await shot(page, "crash_fatal").catch(() => {});
} finally {
  save();
  await browser.close();
}
