// The Chain-of-Steps views, plain DOM (no framework). Imported by chain_of_steps.js; ComfyUI also
// imports every .js file of the web folder as an extension, and this module registers nothing.
import { api } from "../../../scripts/api.js";

const EXPERTS = { high: "high-noise expert", low: "low-noise expert" };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function viewUrl(image) {
  const query = new URLSearchParams({
    filename: String(image?.filename ?? ""),
    subfolder: String(image?.subfolder ?? ""),
    type: String(image?.type ?? "temp"),
  });
  return api.apiURL(`/view?${query}`);
}

function fmt(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
  const a = Math.abs(value);
  if (a >= 1000) return value.toPrecision(4);
  if (a >= 10) return value.toFixed(1);
  if (a >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}

function stepText(entry) {
  const parts = [`step ${entry.step}`, `σ = ${Number(entry.sigma).toFixed(3)}`];
  if (EXPERTS[entry.expert]) parts.push(EXPERTS[entry.expert]);
  if (typeof entry.step_time === "number") parts.push(`${entry.step_time.toFixed(2)} s/step`);
  return parts.join(" · ");
}

// Step scrubber: one picture per step (a strip of frames side by side), a slider over the steps,
// play/pause, a frame selector (all frames, or one frame enlarged), and the step and σ as text.
// Fed by CoS Decode Steps' ui payload (setTrajectory) or live by the sampler's events (pushLive).
export class StepScrubber {
  constructor(node, { live = false, title = "" } = {}) {
    this.node = node;
    this.live = live;
    this.entries = [];
    this.index = 0;
    this.frame = -1;
    this.frameCount = 1;
    this.frameLabels = [];
    this.top = 0; // rows above the frames (the live strip's caption bar)
    this.total = 0;
    this.timer = null;
    this.images = new Map();
    this.promptId = null;

    this.root = el("div", "cos-scrubber");
    this.root.dataset.cos = live ? "live-preview" : "scrubber";
    this.root.dataset.nodeId = String(node.id);
    const head = el("div", "cos-scrub-head");
    head.append(el("span", "cos-scrub-title", title));
    this.label = el("span", "cos-scrub-label", live ? "waiting for the sampler…" : "");
    head.append(this.label);
    this.canvas = el("canvas", "cos-scrub-view");
    const controls = el("div", "cos-scrub-controls");
    this.play = el("button", "cos-scrub-play", "▶");
    this.play.type = "button";
    this.play.title = "Play / pause";
    this.play.setAttribute("aria-label", "Play");
    this.play.addEventListener("click", () => this.toggle());
    this.slider = el("input", "cos-scrub-slider");
    this.slider.type = "range";
    this.slider.min = "0";
    this.slider.max = "0";
    this.slider.value = "0";
    this.slider.setAttribute("aria-label", "Step");
    this.slider.addEventListener("input", () => {
      this.follow = false;
      this.show(Number(this.slider.value));
    });
    this.select = el("select", "cos-scrub-frame");
    this.select.setAttribute("aria-label", "Frame");
    this.select.addEventListener("change", () => {
      this.frame = Number(this.select.value);
      this.draw();
    });
    controls.append(this.play, this.slider, this.select);
    this.root.append(head, this.canvas, controls);
    this.follow = live;
    for (const target of [this.root, this.slider, this.select, this.play]) {
      target.addEventListener("pointerdown", (e) => e.stopPropagation());
    }
  }

  // Heights for the node layout: at least the controls and a small view, at most the picture at full width.
  minHeight() {
    return 120;
  }

  maxHeight(width) {
    const image = this.current() && this.images.get(this.current().src);
    let aspect = 0.5;
    if (image?.naturalWidth) {
      const w = this.frame >= 0 ? image.naturalWidth / this.frameCount : image.naturalWidth;
      const h = this.frame >= 0 ? image.naturalHeight - this.top : image.naturalHeight;
      aspect = h / Math.max(1, w);
    }
    return Math.max(this.minHeight(), Math.round(Math.min(480, width * aspect) + 60));
  }

  current() {
    return this.entries[this.index];
  }

  setTrajectory(data) {
    this.stop();
    const steps = Array.isArray(data?.steps) ? data.steps : [];
    this.total = Number(data?.total_steps) || 0;
    this.top = 0;
    this.setFrames(Array.isArray(data?.frame_labels) ? data.frame_labels.map(String) : []);
    this.entries = steps.map((s) => ({ step: s.step, sigma: s.sigma, expert: s.expert, src: viewUrl(s.image) }));
    this.images.clear();
    this.entries.forEach((entry) => this.load(entry.src));
    this.slider.max = String(Math.max(0, this.entries.length - 1));
    this.show(0);
  }

  pushLive(detail) {
    if (detail.prompt_id !== this.promptId) {
      // a new run: start a new history
      this.promptId = detail.prompt_id;
      this.entries = [];
      this.images.clear();
      this.follow = true;
    }
    const frames = Array.isArray(detail.frames) ? detail.frames : [];
    if (frames.length !== this.frameCount || this.frameLabels.length === 0) {
      this.setFrames(frames.map((f) => `latent frame ${f}`));
    }
    this.top = Number(detail.strip_top) || 0;
    this.total = Number(detail.total) || 0;
    const entry = { step: detail.step, sigma: detail.sigma, expert: detail.expert, step_time: detail.step_time,
                    src: detail.image };
    const at = this.entries.findIndex((e) => e.step === entry.step);
    if (at >= 0) this.entries[at] = entry;
    else this.entries.push(entry);
    this.load(entry.src);
    this.slider.max = String(Math.max(0, this.entries.length - 1));
    if (this.follow) this.show(this.entries.length - 1);
    else this.updateLabel();
  }

  setFrames(labels) {
    this.frameLabels = labels;
    this.frameCount = Math.max(1, labels.length);
    this.select.replaceChildren(new Option("all frames", "-1"));
    labels.forEach((label, i) => this.select.append(new Option(label, String(i))));
    if (this.frame >= this.frameCount) this.frame = -1;
    this.select.value = String(this.frame);
  }

  load(src) {
    if (this.images.has(src)) return;
    const image = new Image();
    image.onload = () => {
      if (this.current()?.src === src) {
        this.draw();
        this.onResize?.();
      }
    };
    image.src = src;
    this.images.set(src, image);
  }

  show(index) {
    if (!this.entries.length) return;
    this.index = Math.max(0, Math.min(this.entries.length - 1, index));
    this.slider.value = String(this.index);
    this.updateLabel();
    this.draw();
  }

  updateLabel() {
    const entry = this.current();
    this.label.textContent = entry ? stepText(entry) : "";
    this.label.title = this.total ? `global step, 0 = the noisiest, of ${this.total} steps (0–${this.total - 1})` : "";
    this.root.dataset.step = entry ? String(entry.step) : "";
  }

  draw() {
    const entry = this.current();
    const image = entry && this.images.get(entry.src);
    const ctx = this.canvas.getContext("2d");
    if (!image?.complete || !image.naturalWidth) return;
    const frameW = image.naturalWidth / this.frameCount;
    // the live strip's caption band (top rows) is left out: the label says the same
    const [sx, sy, sw, sh] = this.frame >= 0
      ? [this.frame * frameW, this.top, frameW, image.naturalHeight - this.top]
      : [0, this.top, image.naturalWidth, image.naturalHeight - this.top];
    const width = Math.max(1, this.canvas.clientWidth || 300);
    const height = Math.max(1, this.canvas.clientHeight || 100);
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    const scale = Math.min(this.canvas.width / sw, this.canvas.height / sh);
    const dw = sw * scale;
    const dh = sh * scale;
    ctx.imageSmoothingEnabled = scale < 1;
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.drawImage(image, sx, sy, sw, sh, (this.canvas.width - dw) / 2, (this.canvas.height - dh) / 2, dw, dh);
  }

  toggle() {
    if (this.timer) this.stop();
    else if (this.entries.length > 1) {
      this.follow = false;
      if (this.index >= this.entries.length - 1) this.show(0);
      this.timer = setInterval(() => this.show((this.index + 1) % this.entries.length), 300);
      this.play.textContent = "⏸";
      this.play.setAttribute("aria-label", "Pause");
    }
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.play.textContent = "▶";
    this.play.setAttribute("aria-label", "Play");
  }
}

// Energy-grid viewer: the layers × frames picture of CoS Energy Maps; hovering a cell shows its
// layer, frame and energy, clicking it shows that cell's map enlarged (click or Esc closes).
export class EnergyViewer {
  constructor(node) {
    this.node = node;
    this.cells = [];
    this.size = [1, 1];
    this.root = el("div", "cos-energy");
    this.root.dataset.cos = "energy-viewer";
    this.root.dataset.nodeId = String(node.id);
    this.frame = el("div", "cos-energy-frame");
    this.image = el("img", "cos-energy-image");
    this.image.alt = "energy grid";
    this.image.draggable = false;
    this.image.addEventListener("load", () => this.onResize?.());
    this.mark = el("div", "cos-energy-mark");
    this.tip = el("div", "cos-energy-tip");
    this.zoom = el("div", "cos-energy-zoom");
    this.zoomCanvas = el("canvas");
    this.zoomText = el("div", "cos-energy-zoom-text");
    this.zoom.append(this.zoomCanvas, this.zoomText);
    this.zoom.hidden = true;
    this.frame.append(this.image, this.mark, this.tip, this.zoom);
    this.root.append(this.frame);
    this.frame.addEventListener("mousemove", (e) => this.hover(e));
    this.frame.addEventListener("mouseleave", () => this.hover(null));
    this.frame.addEventListener("click", (e) => this.click(e));
    this.frame.addEventListener("pointerdown", (e) => e.stopPropagation());
    this.root.tabIndex = 0;
    this.root.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.closeZoom();
    });
  }

  minHeight() {
    return 160;
  }

  maxHeight(width) {
    return Math.max(this.minHeight(), Math.round((width * this.size[1]) / this.size[0]) + 8);
  }

  setGrid(data) {
    this.data = data;
    this.cells = Array.isArray(data?.cells) ? data.cells : [];
    this.size = Array.isArray(data?.size) && data.size[0] > 0 ? data.size : [1, 1];
    this.closeZoom();
    this.hover(null);
    this.image.src = viewUrl(data?.image) + `&rand=${Math.random()}`;
  }

  cellAt(event) {
    const rect = this.image.getBoundingClientRect();
    if (!rect.width || !rect.height) return null;
    const x = ((event.clientX - rect.left) * this.size[0]) / rect.width;
    const y = ((event.clientY - rect.top) * this.size[1]) / rect.height;
    return this.cells.find((c) => x >= c.box[0] && x < c.box[2] && y >= c.box[1] && y < c.box[3]) ?? null;
  }

  describe(cell) {
    const layer = `layer ${cell.layer}`;
    const lines = [`${layer} · ${cell.frame}`];
    if (typeof cell.mean === "number") {
      lines.push(`energy ${fmt(cell.mean)} ${this.data?.unit ?? ""} (mean; min ${fmt(cell.min)}, max ${fmt(cell.max)})`);
    } else if (this.data?.kind === "pca") {
      lines.push("PCA colours (no energy recorded at this step)");
    }
    lines.push(`step ${this.data?.step} · σ = ${Number(this.data?.sigma).toFixed(3)}`);
    return lines.join("\n");
  }

  hover(event) {
    const cell = event && this.zoom.hidden ? this.cellAt(event) : null;
    if (!cell) {
      this.tip.hidden = true;
      this.mark.hidden = true;
      this.root.dataset.hover = "";
      return;
    }
    // screen pixels → the frame's own CSS pixels (ComfyUI scales DOM widgets with the canvas zoom)
    const rect = this.image.getBoundingClientRect();
    const frameRect = this.frame.getBoundingClientRect();
    const k = frameRect.width ? this.frame.clientWidth / frameRect.width : 1;
    const sx = (k * rect.width) / this.size[0];
    const sy = (k * rect.height) / this.size[1];
    const ox = k * (rect.left - frameRect.left);
    const oy = k * (rect.top - frameRect.top);
    Object.assign(this.mark.style, {
      left: `${ox + cell.box[0] * sx}px`, top: `${oy + cell.box[1] * sy}px`,
      width: `${(cell.box[2] - cell.box[0]) * sx}px`, height: `${(cell.box[3] - cell.box[1]) * sy}px`,
    });
    this.mark.hidden = false;
    this.tip.textContent = this.describe(cell);
    const left = k * (event.clientX - frameRect.left) + 14;
    this.tip.style.left = `${Math.max(0, Math.min(left, this.frame.clientWidth - 250))}px`;
    this.tip.style.top = `${Math.min(k * (event.clientY - frameRect.top) + 14, this.frame.clientHeight - 70)}px`;
    this.tip.hidden = false;
    this.root.dataset.hover = `${cell.layer}/${cell.column}`;
  }

  click(event) {
    if (!this.zoom.hidden) return this.closeZoom();
    const cell = this.cellAt(event);
    if (cell) this.openZoom(cell);
  }

  openZoom(cell) {
    const [x0, y0, x1, y1] = cell.box;
    const width = this.frame.clientWidth;
    const height = this.frame.clientHeight;
    const scale = Math.max(1, Math.floor(Math.min((width - 16) / (x1 - x0), (height - 70) / (y1 - y0))));
    this.zoomCanvas.width = (x1 - x0) * scale;
    this.zoomCanvas.height = (y1 - y0) * scale;
    const ctx = this.zoomCanvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.image, x0, y0, x1 - x0, y1 - y0, 0, 0, this.zoomCanvas.width, this.zoomCanvas.height);
    this.zoomText.textContent = `${this.describe(cell)}\n(click or Esc to close)`;
    this.zoom.hidden = false;
    this.hover(null);
    this.root.dataset.zoom = `${cell.layer}/${cell.column}`;
    this.root.focus({ preventScroll: true });
  }

  closeZoom() {
    this.zoom.hidden = true;
    this.root.dataset.zoom = "";
  }
}
