/**
 * The "Why" view: click a class in the scores and see what in the picture made its score,
 * as a heat map over the network's input and over the original photo (mapped back through
 * the centre crop the server made). The server computes every map
 * (GET /api/runs/{id}/attributions/{method}.json); this module only asks and draws.
 *
 * It owns its state (method, parameters, class, opacity); app.js calls update(run, model)
 * whenever the scores are drawn and reset() when a new run starts.
 */

import * as api from "./api.js";
import { COLORMAPS, cssGradient } from "./colormaps.js";
import { $, el, fitCanvas } from "./dom.js";
import { formatValue, inputCanvas } from "./volume.js";

/** What each method means, in a sentence a learner can follow ({c}: the class). */
export const METHODS = {
  gradcam: {
    label: "Grad-CAM",
    meaning: (c, extra) =>
      `Where the features that speak for “${c}” are in layer ${extra.layer}: each of its maps weighted by how ` +
      "much it raises the score, summed, negatives dropped (Selvaraju et al. 2017).",
  },
  saliency: {
    label: "Saliency",
    meaning: (c) =>
      `Which pixels would change the “${c}” score most if nudged a little: the gradient of the score ` +
      "(Simonyan et al. 2014).",
  },
  smoothgrad: {
    label: "SmoothGrad",
    meaning: (c) =>
      `Saliency for “${c}” averaged over noisy copies of the picture: the speckle cancels out, the shape ` +
      "that matters stays (Smilkov et al. 2017).",
  },
  "integrated-gradients": {
    label: "Integrated Gradients",
    meaning: (c) =>
      `Each pixel's share of the “${c}” score, gathered on the way from a plain grey picture to this one: ` +
      "red raises the score, blue lowers it; the shares add up to the score's rise (Sundararajan et al. 2017).",
  },
  occlusion: {
    label: "Occlusion",
    meaning: (c) =>
      `How much the “${c}” probability drops when a grey square hides each part of the picture: red, ` +
      "hiding it hurts; blue, hiding it helps (Zeiler and Fergus 2014).",
  },
};

/** The main parameters the page offers per method: name -> [label, choices, default]. */
const PARAMS = {
  smoothgrad: { samples: ["copies", [5, 10, 25, 50], 25], noise: ["noise", [0.05, 0.1, 0.15, 0.2, 0.3], 0.15] },
  "integrated-gradients": { steps: ["steps", [8, 16, 32, 64, 128, 256], 32] },
  occlusion: { patch: ["patch", [2, 4, 6, 8, 12, 16], 8], stride: ["stride", [1, 2, 4, 8], 4] },
};

const GRADCAM_KINDS = new Set(["conv", "relu", "pool"]);

/** Layers Grad-CAM can use: conv, relu or pool before the fc; and the default one. */
export function gradcamLayers(layers) {
  const scoreIndex = layers.length - (layers.at(-1)?.kind === "softmax" ? 2 : 1);
  const usable = layers.filter((l) => l.index < scoreIndex && GRADCAM_KINDS.has(l.kind));
  const spatial = usable.filter((l) => l.shape[0] * l.shape[1] > 1);
  return { usable, preferred: spatial.at(-1)?.index ?? usable.at(-1)?.index ?? null };
}

/** The centre crop (in the photo's pixels) that the server resized to the network input. */
export function centreCrop(width, height, inputWidth, inputHeight) {
  const target = inputWidth / inputHeight;
  const [cw, ch] = width / height > target ? [height * target, height] : [width, width / target];
  return { x: (width - cw) / 2, y: (height - ch) / 2, width: cw, height: ch };
}

/** Colour limits, as the server's heatmap.py: 0..limit, or -limit..limit when signed. */
export function mapRange(values, [lo, hi]) {
  const signed = lo < 0;
  const limit = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
  return { signed, limit, lo: signed ? -limit : 0, hi: limit, map: signed ? "coolwarm" : "viridis" };
}

/** The map as a small RGBA canvas (h x w): colour by value, opacity by magnitude. */
export function heatCanvas(values, range, alpha) {
  const h = values.length;
  const w = values[0].length;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  const lut = COLORMAPS[range.map].lut;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = values[y][x];
      const t = Math.min(1, Math.abs(v) / range.limit);
      const index = range.signed ? Math.round(((Math.max(-1, Math.min(1, v / range.limit)) + 1) / 2) * 255) : Math.round(t * 255);
      const o = 4 * (y * w + x);
      image.data[o] = lut[3 * index];
      image.data[o + 1] = lut[3 * index + 1];
      image.data[o + 2] = lut[3 * index + 2];
      image.data[o + 3] = Math.round(255 * alpha * t);
    }
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

export class WhyView {
  constructor() {
    this.method = "gradcam";
    this.values = {};
    this.layer = null;
    this.alpha = 0.7;
    this.run = null;
    this.model = null;
    this.target = null;
    this.result = null;
    this.photo = null;
    this.controller = null;
    const select = $("why-method");
    select.replaceChildren(...Object.entries(METHODS).map(([id, m]) => new Option(m.label, id)));
    select.value = this.method;
    select.addEventListener("change", () => {
      this.method = select.value;
      this.buildParams();
      this.request();
    });
    $("why-alpha").addEventListener("input", (event) => {
      this.alpha = Number(event.target.value);
      this.draw();
    });
    const bars = $("score-bars");
    const pick = (event) => {
      const item = event.target.closest?.(".score");
      if (!item || !this.run?.scores) return;
      this.explain(Number(item.dataset.class));
      $("why").scrollIntoView({ block: "nearest" });
    };
    bars.addEventListener("click", pick);
    bars.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" && event.key !== " ") return;
      event.preventDefault();
      pick(event);
    });
  }

  /** A new run (or none): forget the last map. */
  reset() {
    this.controller?.abort();
    this.run = null;
    this.result = null;
    this.target = null;
    this.photo = null;
    $("why").hidden = true;
    $("score-bars").removeAttribute("role");
  }

  /** Called after the scores are drawn: make the classes clickable, explain the top one. */
  update(run, model) {
    const ready = Boolean(run?.id && run.scores);
    $("why").hidden = !ready;
    if (!ready) {
      $("score-bars").removeAttribute("role");
      return;
    }
    if (this.model !== model) {
      this.model = model;
      const { preferred } = gradcamLayers(model.layers);
      this.layer = preferred;
      this.buildParams();
    }
    if (this.run !== run) {
      this.run = run;
      this.loadPhoto(run);
      this.explain(run.scores.top?.[0]?.index ?? 0);
    } else {
      this.markBars();
    }
  }

  /** The bars become a listbox (a list may hold only list items): the option selected is
   * the class explained. */
  markBars() {
    const bars = $("score-bars");
    bars.setAttribute("role", "listbox");
    for (const item of bars.children) {
      const i = Number(item.dataset.class);
      item.tabIndex = 0;
      item.setAttribute("role", "option");
      item.setAttribute("aria-selected", String(i === this.target));
      item.classList.toggle("explained", i === this.target);
      item.title = `${item.title.split(" — ")[0]} — click: why this class?`;
    }
  }

  explain(target) {
    this.target = target;
    this.markBars();
    this.request();
  }

  /** The parameter pickers of the chosen method (Grad-CAM: the layer). */
  buildParams() {
    const box = $("why-params");
    box.replaceChildren();
    if (this.method === "gradcam" && this.model) {
      const { usable } = gradcamLayers(this.model.layers);
      const select = el("select");
      select.id = "why-layer";
      for (const layer of usable) {
        select.append(new Option(`${layer.name} ${layer.shape[0]}×${layer.shape[1]}`, layer.index));
      }
      select.value = String(this.layer);
      select.addEventListener("change", () => {
        this.layer = Number(select.value);
        this.request();
      });
      const label = el("label", null, "layer ");
      label.append(select);
      box.append(label);
    }
    for (const [name, [text, choices, fallback]] of Object.entries(PARAMS[this.method] || {})) {
      const values = (this.values[this.method] ||= {});
      const select = el("select");
      select.id = `why-${name}`;
      for (const choice of choices) select.append(new Option(String(choice), choice));
      select.value = String(values[name] ?? fallback);
      select.addEventListener("change", () => {
        values[name] = Number(select.value);
        this.request();
      });
      const label = el("label", null, `${text} `);
      label.append(select);
      box.append(label);
    }
  }

  params() {
    const params = { target: this.target };
    if (this.method === "gradcam" && this.layer !== null) params.layer = this.layer;
    for (const [name, [, , fallback]] of Object.entries(PARAMS[this.method] || {})) {
      params[name] = this.values[this.method]?.[name] ?? fallback;
    }
    return params;
  }

  async request() {
    const run = this.run;
    if (!run?.id || this.target === null) return;
    this.controller?.abort();
    const controller = (this.controller = new AbortController());
    const className = run.classes[this.target];
    $("why-class").textContent = className;
    $("why-status").textContent = `Asking the server for ${METHODS[this.method].label}…`;
    document.body.dataset.why = "loading";
    const started = performance.now();
    try {
      const result = await api.getAttribution(run.id, this.method, this.params(), controller.signal);
      if (controller.signal.aborted || this.run !== run) return;
      this.result = { ...result, roundTrip: performance.now() - started };
      this.draw();
      document.body.dataset.why = "shown";
    } catch (error) {
      if (error.name === "AbortError" || this.run !== run) return;
      this.result = null;
      this.draw();
      $("why-status").textContent = error.message;
      document.body.dataset.why = "error";
    }
  }

  loadPhoto(run) {
    const image = new Image();
    image.src = run.originalUrl;
    this.photo = null;
    image
      .decode()
      .then(() => {
        if (this.run !== run) return;
        this.photo = image;
        this.draw();
      })
      .catch(() => {
        // Not a picture the browser can show (the server decoded it anyway): input only.
      });
  }

  draw() {
    const result = this.result;
    const run = this.run;
    const input = $("why-input");
    const size = input.clientWidth || 128;
    const ctx = fitCanvas(input, size, size);
    ctx.clearRect(0, 0, size, size);
    if (!run?.input) return;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(inputCanvas(run.input), 0, 0, size, size);
    // A digit is re-centred and rescaled, not cropped: there is no box to map back through.
    const digits = this.model?.input_style === "digits";
    $("why-photo").hidden = digits;
    $("why-photo-caption").textContent = digits
      ? "A digit is re-centred and rescaled, not cropped: the map is shown on the network input only."
      : "over the photo (its crop)";
    if (!result) {
      $("why-meaning").textContent = "";
      return;
    }
    const range = mapRange(result.values, result.range);
    const heat = heatCanvas(result.values, range, this.alpha);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(heat, 0, 0, size, size);
    if (!digits) this.drawPhoto(heat);
    const extra = { layer: result.layer_name ? `${result.layer_name} (${result.shape[0]}×${result.shape[1]})` : "" };
    $("why-meaning").textContent = METHODS[result.method].meaning(result.class, extra);
    const bar = $("why-colorbar");
    bar.querySelector(".colorbar-ramp").style.setProperty("background-image", cssGradient(range.map));
    bar.querySelector(".colorbar-min").textContent = formatValue(range.lo);
    bar.querySelector(".colorbar-max").textContent = formatValue(range.hi);
    bar.querySelector(".colorbar-zero").textContent = range.signed ? "0" : "";
    const facts = [`${result.class}: ${(100 * result.probability).toFixed(1)}%, score ${formatValue(result.score)}`];
    if (result.delta !== undefined && result.delta !== null) {
      const change = result.score - result.baseline_score;
      const share = change ? Math.abs(result.delta / change) : 0;
      facts.push(`completeness gap ${formatValue(result.delta)} (${(100 * share).toFixed(1)}% of the rise)`);
    }
    const took = result.elapsed_ms ? `${result.elapsed_ms.toFixed(0)} ms on the server` : "cached";
    facts.push(`${took}, ${this.result.roundTrip.toFixed(0)} ms in all`);
    $("why-status").textContent = facts.join(" · ");
  }

  /** The original photo, dimmed outside the crop the network saw, the map over the crop. */
  drawPhoto(heat) {
    const canvas = $("why-photo");
    const photo = this.photo;
    const box = canvas.clientWidth || 128;
    if (!photo) {
      fitCanvas(canvas, box, box).clearRect(0, 0, box, box);
      return;
    }
    const scale = box / Math.max(photo.naturalWidth, photo.naturalHeight);
    const w = Math.max(1, Math.round(photo.naturalWidth * scale));
    const h = Math.max(1, Math.round(photo.naturalHeight * scale));
    const ctx = fitCanvas(canvas, w, h);
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(photo, 0, 0, w, h);
    const [ih, iw] = this.run.input.shape;
    const crop = centreCrop(photo.naturalWidth, photo.naturalHeight, iw, ih);
    const [x, y, cw, ch] = [crop.x * scale, crop.y * scale, crop.width * scale, crop.height * scale];
    ctx.fillStyle = "rgb(0 0 0 / 0.55)";
    ctx.fillRect(0, 0, w, y);
    ctx.fillRect(0, y + ch, w, h - y - ch);
    ctx.fillRect(0, y, x, ch);
    ctx.fillRect(x + cw, y, w - x - cw, ch);
    ctx.drawImage(heat, x, y, cw, ch);
    ctx.strokeStyle = "rgb(255 255 255 / 0.8)";
    ctx.lineWidth = 1;
    ctx.strokeRect(x + 0.5, y + 0.5, cw - 1, ch - 1);
  }
}
