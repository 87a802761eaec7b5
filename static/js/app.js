/**
 * The viewer: state, the URL, and wiring. State lives in `state` and the query string
 * (?model=&sample=&layer=&slice=); events change state, and drawing reads it, once per
 * animation frame, so the page stays responsive while a run streams in.
 */

import * as api from "./api.js";
import { COLORMAPS, DIVERGING, SEQUENTIAL, cssGradient } from "./colormaps.js";
import { boxGeometry, drawBox, VolumeView } from "./box3d.js";
import { renderGallery, sampleBlob, setupInputs, isTyping } from "./inputs.js";
import {
  channelPalette,
  colorScale,
  drawPixelated,
  faceCanvases,
  formatValue,
  inputCanvas,
  inputVolume,
  sliceCanvas,
} from "./volume.js";

const KIND_COLORS = {
  input: "#dfe7f2",
  conv: "#56b4e9",
  relu: "#2fbf8f",
  pool: "#e69f00",
  fc: "#cc79a7",
  softmax: "#f0e442",
};
const MARK = {
  chosen: "convscope:file-chosen",
  layer: "convscope:layer-drawn",
  first: "convscope:first-layer-drawn",
  last: "convscope:last-layer-drawn",
};

const $ = (id) => document.getElementById(id);
const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};
const shapeText = ([h, w, d]) => `${h}×${w}×${d}`;
const clamp = (value, lo, hi) => Math.max(lo, Math.min(hi, value));

const state = {
  models: new Map(),
  samples: [],
  model: null,
  sample: null,
  layer: 0,
  slice: 0,
  sequential: "viridis",
  diverging: "coolwarm",
  scale: "layer",
  presenter: false,
  run: null,
};

// What is on screen, kept so that a frame redraws only what changed.
const view = {
  boxes: [], // [{index, button, canvas, geometry}], index -1 is the input
  boxScale: 1,
  detail: null, // {index, volume, scales, sources, tiles} for the selected layer
  hover: null, // {row, col}
  volume3d: null,
};
const dirty = { boxes: new Set(), detail: false, slice: false, scores: false, input: false };
let frameRequested = false;

// --- state helpers --------------------------------------------------------------------------

const modelInfo = () => state.models.get(state.model);
const layersOf = () => modelInfo()?.layers || [];
const runLayer = (index) => (state.run?.model === state.model ? state.run.layers[index] : undefined);
const colorOptions = () => ({ scale: state.scale, sequential: state.sequential, diverging: state.diverging });

function readUrl() {
  const params = new URLSearchParams(location.search);
  const int = (name) => {
    const value = Number.parseInt(params.get(name), 10);
    return Number.isFinite(value) && value >= 0 ? value : 0;
  };
  return { model: params.get("model"), sample: params.get("sample"), layer: int("layer"), slice: int("slice") };
}

function writeUrl() {
  const params = new URLSearchParams();
  params.set("model", state.model);
  if (state.sample) params.set("sample", state.sample);
  params.set("layer", state.layer);
  params.set("slice", state.slice);
  const url = `${location.pathname}?${params}`;
  if (url !== location.pathname + location.search) history.replaceState(null, "", url);
}

function schedule() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(frame);
}

function markAllDirty() {
  dirty.boxes = new Set([-1, ...layersOf().map((layer) => layer.index)]);
  dirty.detail = dirty.scores = dirty.input = true;
  schedule();
}

// --- status, errors ---------------------------------------------------------------------------

function setStatus(text, busy = false) {
  $("run-status").textContent = text;
  $("run-status").classList.toggle("busy", busy);
}

function showError(sentence) {
  const box = $("error");
  box.textContent = sentence;
  box.hidden = false;
  setStatus("Stopped: see the message", false);
}

const hideError = () => {
  $("error").hidden = true;
  $("error").textContent = "";
};

// --- the network row ----------------------------------------------------------------------------

function buildRow() {
  const row = $("layer-row");
  const input = modelInfo().input;
  const entries = [{ index: -1, kind: "input", name: "input", shape: input }, ...layersOf()];
  view.boxes = entries.map((layer) => {
    const item = el("li", "layer-item");
    const box = el(layer.index < 0 ? "div" : "button", `layer-box kind-${layer.kind}`);
    const canvas = el("canvas", "box-canvas");
    canvas.setAttribute("aria-hidden", "true");
    const label = el("span", "box-label");
    label.append(el("span", "box-kind", layer.kind.toUpperCase()), el("span", "box-shape", shapeText(layer.shape)));
    box.append(canvas, label);
    box.dataset.index = layer.index;
    if (layer.index >= 0) {
      box.type = "button";
      box.title = `${layer.name}: ${layer.summary || layer.kind}`;
      box.setAttribute("aria-label", `${layer.name}, ${layer.kind}, ${shapeText(layer.shape)}`);
      box.addEventListener("click", () => selectLayer(layer.index));
    } else {
      box.title = `The input image, ${shapeText(layer.shape)}`;
    }
    item.append(box);
    return { index: layer.index, kind: layer.kind, shape: layer.shape, item, box, canvas, label };
  });
  row.replaceChildren(...view.boxes.map((b) => b.item));
  layoutRow();
  updateRowSelection(false);
}

/** Size every box so that the whole row fits the width (scrolling only below a minimum). */
function layoutRow() {
  const row = $("layer-row");
  if (!view.boxes.length || !row.clientWidth) return;
  const style = getComputedStyle(row);
  const gap = Number.parseFloat(style.columnGap) || 8;
  // The panel's width, not the row's: the row itself is narrowed below when it wraps.
  const panel = row.parentElement;
  const panelStyle = getComputedStyle(panel);
  const available =
    panel.clientWidth -
    Number.parseFloat(panelStyle.paddingLeft) -
    Number.parseFloat(panelStyle.paddingRight) -
    Number.parseFloat(style.paddingLeft) -
    Number.parseFloat(style.paddingRight);
  const pad = 8;
  const border = view.boxes[0].box.offsetWidth - view.boxes[0].canvas.offsetWidth;
  const labels = view.boxes.map((b) => b.label.scrollWidth + 6);
  const widthAt = (s) =>
    view.boxes.reduce((sum, b, i) => {
      const g = boxGeometry(b.shape, s);
      return sum + Math.max(g.fw + g.ox + pad, labels[i]) + border;
    }, gap * (view.boxes.length - 1) + 1);
  // Too many layers for one line even at the smallest boxes: wrap onto more lines.
  const lines = Math.max(1, Math.ceil(widthAt(0.5) / available));
  row.classList.toggle("wrapped", lines > 1);
  const fits = (s) => widthAt(s) <= available * lines * (lines > 1 ? 0.92 : 1);
  // ...and never so tall that the row crowds out the layer's detail.
  const tallest = Math.max(...view.boxes.map((b) => boxGeometry(b.shape, 1)).map((g) => g.fh + g.oy));
  const maxHeight = (window.innerHeight * (state.presenter ? 0.22 : 0.17)) / lines;
  let lo = 0.35;
  let hi = Math.max(lo, Math.min(state.presenter ? 2.2 : 1.6, maxHeight / tallest));
  for (let step = 0; step < 20; step++) {
    const mid = (lo + hi) / 2;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  view.boxScale = lo;
  // Wrapped lines of about equal length, rather than a full line and a stub.
  const widest = Math.max(...view.boxes.map((b, i) => {
    const g = boxGeometry(b.shape, lo);
    return Math.max(g.fw + g.ox + pad, labels[i]) + border + gap;
  }));
  row.style.setProperty("max-width", lines > 1 ? `${Math.ceil(widthAt(lo) / lines + widest)}px` : "none");
  const height = Math.max(...view.boxes.map((b) => {
    const g = boxGeometry(b.shape, lo);
    return g.fh + g.oy;
  })) + pad;
  const dpr = window.devicePixelRatio || 1;
  view.boxes.forEach((b, i) => {
    b.geometry = boxGeometry(b.shape, lo);
    const width = Math.max(b.geometry.fw + b.geometry.ox + pad, labels[i]);
    b.cssWidth = width;
    b.cssHeight = height;
    b.canvas.style.width = `${width}px`;
    b.canvas.style.height = `${height}px`;
    b.canvas.width = Math.round(width * dpr);
    b.canvas.height = Math.round(height * dpr);
  });
  dirty.boxes = new Set(view.boxes.map((b) => b.index));
  schedule();
}

function boxFaces(index) {
  const run = state.run;
  if (!run || run.model !== state.model) return null;
  const cacheKey = `${state.sequential}/${state.diverging}`;
  run.faces ||= new Map();
  const key = `${index}/${cacheKey}`;
  if (run.faces.has(key)) return run.faces.get(key);
  let faces = null;
  if (index < 0 && run.inputVolume) {
    const channels = run.inputVolume.shape[2];
    faces = faceCanvases(run.inputVolume, (d) => channelPalette(d, channels));
    faces.front = inputCanvas(run.input);
  } else if (run.layers[index]) {
    const { palette } = colorScale(run.layers[index], 0, { ...colorOptions(), scale: "layer" });
    faces = faceCanvases(run.layers[index], () => palette);
  }
  if (faces) run.faces.set(key, faces);
  return faces;
}

function drawRowBox(b) {
  const dpr = window.devicePixelRatio || 1;
  const ctx = b.canvas.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, b.canvas.width, b.canvas.height);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const g = b.geometry;
  const x = (b.cssWidth - g.fw - g.ox) / 2;
  const y = (b.cssHeight - g.fh - g.oy) / 2;
  const faces = boxFaces(b.index);
  drawBox(ctx, dpr, x, y, g, faces, { color: KIND_COLORS[b.kind] || "#9ab", selected: b.index === state.layer });
  b.box.classList.toggle("arrived", Boolean(faces));
  const run = state.run;
  const computing =
    run && !run.done && !run.error && run.model === state.model && b.index >= 0 && !run.layers[b.index] &&
    b.index === run.layers.length;
  b.box.classList.toggle("computing", Boolean(computing));
}

function updateRowSelection(focus) {
  for (const b of view.boxes) {
    if (b.index < 0) continue;
    const selected = b.index === state.layer;
    b.box.setAttribute("aria-pressed", String(selected));
    b.box.tabIndex = selected ? 0 : -1;
    if (selected && focus) {
      b.box.focus();
      b.box.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  }
}

// --- the detail of the selected layer ---------------------------------------------------------

function renderFacts(layer, streamed) {
  const facts = [
    ["shape", `${shapeText(layer.shape)}`],
    ["parameters", layer.param_count.toLocaleString("en")],
  ];
  if (layer.receptive_field) facts.push(["receptive field", `${layer.receptive_field.size}×${layer.receptive_field.size} px`]);
  if (streamed?.stats) {
    const s = streamed.stats;
    facts.push(["min", formatValue(s.min)], ["max", formatValue(s.max)], ["mean", formatValue(s.mean)], ["std", formatValue(s.std)]);
    if (s.zeros !== undefined) {
      const percent = 100 * s.zeros;
      facts.push(["zeros", `${percent.toFixed(percent > 0 && percent < 1 ? 2 : 0)}%`]);
    }
    if (streamed.elapsed_ms !== undefined) facts.push(["ready after", `${streamed.elapsed_ms.toFixed(1)} ms`]);
  }
  $("layer-facts").replaceChildren(
    ...facts.map(([term, value]) => {
      const item = el("div", "fact");
      item.append(el("dt", "", term), el("dd", "", value));
      return item;
    }),
  );
}

/** The fewest columns (largest tiles, at most 96 px) that show all `count` slices in the
 * grid's box; past 24 px tiles the grid scrolls instead. */
function tileColumns(count) {
  const grid = $("slice-grid");
  const width = grid.clientWidth - 8;
  const height = Number.parseFloat(getComputedStyle(grid).maxHeight) - 8 || 300;
  const gap = 3;
  for (let columns = 1; columns <= count; columns++) {
    const tile = (width - gap * (columns - 1)) / columns;
    if (tile > 96) continue;
    if (tile < 24 || Math.ceil(count / columns) * (tile + gap) <= height) return columns;
  }
  return Math.max(1, Math.floor(width / 27));
}

function renderDetail() {
  const layers = layersOf();
  const layer = layers[state.layer];
  if (!layer) return;
  const streamed = runLayer(state.layer);
  const title = $("detail-title");
  title.replaceChildren(
    el("span", `kind-tag kind-${layer.kind}`, layer.name),
    el("span", "layer-summary", layer.summary || layer.kind.toUpperCase()),
  );
  renderFacts(layer, streamed);
  renderFilters(layer);
  $("detail-grid").hidden = !streamed;
  document.querySelector(".detail-controls").hidden = !streamed;
  const empty = $("detail-empty");
  const run = state.run;
  if (!streamed) {
    empty.hidden = false;
    empty.textContent =
      run && run.model === state.model && !run.error && !run.done
        ? `${layer.name} is on its way…`
        : "Pick a sample, upload, paste, drop, photograph or draw an image: each layer's volume appears above as it is computed.";
    view.detail = null;
    return;
  }
  empty.hidden = true;
  const depth = streamed.shape[2];
  state.slice = clamp(state.slice, 0, depth - 1);
  const options = colorOptions();
  const scales = [];
  const sources = [];
  for (let d = 0; d < depth; d++) {
    const scale = options.scale === "layer" && d > 0 ? scales[0] : colorScale(streamed, d, options);
    scales.push(scale);
    sources.push(sliceCanvas(streamed, d, scale.palette));
  }
  const classes = layer.shape[0] === 1 && layer.shape[1] === 1 && depth === run.classes?.length ? run.classes : null;
  const grid = $("slice-grid");
  $("detail-grid").hidden = false;
  grid.style.setProperty("--columns", classes ? "auto-fill" : tileColumns(depth));
  grid.classList.toggle("labelled", Boolean(classes));
  const tiles = sources.map((source, d) => {
    const tile = el("button", "slice-tile");
    tile.type = "button";
    tile.setAttribute("role", "option");
    tile.dataset.slice = d;
    const label = classes ? classes[d] : `depth slice ${d}`;
    tile.setAttribute("aria-label", label);
    tile.title = label;
    source.className = "pixelated";
    tile.append(source, el("span", "tile-index", classes ? classes[d] : String(d)));
    tile.addEventListener("click", () => selectSlice(d));
    return tile;
  });
  grid.replaceChildren(...tiles);
  $("slices-title").textContent = `Depth slices (${depth})`;
  // The 3D view gets its own copies: a canvas can be in one place of the document only.
  const copies = sources.map((source) => {
    const copy = document.createElement("canvas");
    copy.width = source.width;
    copy.height = source.height;
    copy.getContext("2d").drawImage(source, 0, 0);
    return copy;
  });
  view.detail = { index: state.layer, layer, volume: streamed, scales, sources, tiles, classes };
  view.volume3d.setVolume(copies, streamed.shape, state.slice);
  requestValues(state.layer);
  dirty.slice = true;
}

function renderFilters(layer) {
  const section = $("filters");
  if (layer.kind !== "conv" && layer.kind !== "fc") {
    section.hidden = true;
    return;
  }
  const index = layer.index;
  const [h, w, d] = index === 0 ? modelInfo().input : layersOf()[index - 1].shape;
  const size = layer.size || "?";
  const count = layer.shape[2];
  $("filters-title").textContent = layer.kind === "conv" ? "Filters" : "Weights";
  $("filters-caption").textContent =
    layer.kind === "conv"
      ? `${count} filters, each ${size}×${size}×${d}: filter k makes depth slice k of this layer ` +
        "by sliding over the volume before it. " +
        (d === 3 ? "Each is drawn as a small colour picture." : "One row per filter, blue < 0 < red.")
      : `One row per output (${count}), one ${h}×${w} tile per depth slice of the ${h}×${w}×${d} ` +
        "volume before it: what each class score adds up. Blue is negative, red positive.";
  const image = $("filters-image");
  const url = api.weightsPngUrl(state.model, index);
  if (image.dataset.src !== url) {
    image.dataset.src = url;
    image.src = url;
  }
  image.alt = `The ${layer.filters ?? layer.shape[2]} filters of ${layer.name}`;
  section.hidden = false;
}

/** Exact values come from the layer's .json, fetched once per selected layer; the server
 * keeps a run for fetching once its scores line has been sent. */
function requestValues(index) {
  const run = state.run;
  if (!run?.id || !run.scores || !run.layers[index] || run.values.has(index)) return;
  const entry = { values: null, error: null };
  run.values.set(index, entry);
  api
    .getLayerValues(run.id, index, run.controller.signal)
    .then((body) => {
      entry.values = body.values;
      if (state.run === run && state.layer === index && view.hover) updateReadout();
    })
    .catch((error) => {
      if (error.name === "AbortError") return;
      entry.error = error.message;
      if (state.run === run && state.layer === index) updateReadout();
    });
}

function selectedScale() {
  const d = view.detail;
  return d.scales[clamp(state.slice, 0, d.scales.length - 1)];
}

function drawColorbar() {
  const { map, lo, hi, signed } = selectedScale();
  const bar = $("colorbar");
  bar.querySelector(".colorbar-ramp").style.setProperty("background-image", cssGradient(map));
  bar.querySelector(".colorbar-min").textContent = formatValue(lo);
  bar.querySelector(".colorbar-max").textContent = formatValue(hi);
  bar.querySelector(".colorbar-zero").textContent = signed ? "0" : "";
  bar.title = `${COLORMAPS[map].label}: ${formatValue(lo)} to ${formatValue(hi)}`;
}

function sliceLayout() {
  const canvas = $("slice-canvas");
  const [h, w] = view.detail.volume.shape;
  const cssSize = canvas.clientWidth || 240;
  const cell = Math.max(1, Math.floor(cssSize / Math.max(h, w)));
  return { h, w, cell, width: cell * w, height: cell * h, cssSize };
}

function drawSliceFocus() {
  const detail = view.detail;
  if (!detail) return;
  const d = clamp(state.slice, 0, detail.sources.length - 1);
  for (const [i, tile] of detail.tiles.entries()) {
    const selected = i === d;
    tile.setAttribute("aria-selected", String(selected));
    tile.tabIndex = selected ? 0 : -1;
  }
  const label = detail.classes ? `${detail.classes[d]} (depth slice ${d})` : `depth slice ${d} of ${detail.sources.length}`;
  $("focus-title").textContent = `${detail.layer.name}, ${label}`;
  const canvas = $("slice-canvas");
  const dpr = window.devicePixelRatio || 1;
  const { h, w, cell, width, height } = sliceLayout();
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  drawPixelated(ctx, detail.sources[d], 0, 0, width, height);
  if (cell >= 10) {
    ctx.strokeStyle = "rgba(0, 0, 0, 0.28)";
    ctx.lineWidth = 1 / dpr;
    ctx.beginPath();
    for (let x = 1; x < w; x++) {
      ctx.moveTo(x * cell, 0);
      ctx.lineTo(x * cell, height);
    }
    for (let y = 1; y < h; y++) {
      ctx.moveTo(0, y * cell);
      ctx.lineTo(width, y * cell);
    }
    ctx.stroke();
  }
  const hover = view.hover;
  if (hover) {
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = "#ffffff";
    ctx.strokeRect(hover.col * cell + 1, hover.row * cell + 1, cell - 2, cell - 2);
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#000000";
    ctx.strokeRect(hover.col * cell - 0.5, hover.row * cell - 0.5, cell + 1, cell + 1);
  }
  drawColorbar();
  drawReceptiveField();
  updateReadout();
  view.volume3d.setSelected(d);
}

/** The input as the network sees it, with the hovered neuron's receptive field outlined. */
function drawReceptiveField() {
  const run = state.run;
  const canvas = $("rf-canvas");
  const ctx = canvas.getContext("2d");
  const dpr = window.devicePixelRatio || 1;
  const size = canvas.clientWidth || 160;
  canvas.width = canvas.height = Math.round(size * dpr);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, size, size);
  if (!run?.input) return;
  const [ih, iw] = run.input.shape;
  const cell = size / Math.max(ih, iw);
  drawPixelated(ctx, run.inputImage, 0, 0, iw * cell, ih * cell);
  const caption = $("rf-caption");
  const rf = view.detail?.layer.receptive_field;
  if (!view.hover || !rf) {
    caption.textContent = "receptive field on the input (hover the slice)";
    return;
  }
  const half = (rf.size - 1) / 2;
  const top = Math.ceil(rf.start + view.hover.row * rf.jump - half);
  const left = Math.ceil(rf.start + view.hover.col * rf.jump - half);
  const [t, l] = [Math.max(top, 0), Math.max(left, 0)];
  const [b, r] = [Math.min(top + rf.size - 1, ih - 1), Math.min(left + rf.size - 1, iw - 1)];
  ctx.fillStyle = "rgba(0, 0, 0, 0.45)";
  ctx.beginPath();
  ctx.rect(0, 0, iw * cell, ih * cell);
  ctx.rect(l * cell, t * cell, (r - l + 1) * cell, (b - t + 1) * cell);
  ctx.fill("evenodd");
  ctx.lineWidth = 2;
  ctx.strokeStyle = "#ffd166";
  ctx.strokeRect(l * cell + 1, t * cell + 1, (r - l + 1) * cell - 2, (b - t + 1) * cell - 2);
  caption.textContent = `receptive field: rows ${t}–${b}, cols ${l}–${r} (${rf.size}×${rf.size})`;
}

function updateReadout() {
  const out = $("hover-readout");
  const detail = view.detail;
  const hover = view.hover;
  if (!detail || !hover) {
    out.replaceChildren("Hover a cell to read its exact value.");
    return;
  }
  const d = clamp(state.slice, 0, detail.sources.length - 1);
  const entry = state.run.values.get(detail.index);
  const where = el("span", "readout-where", `${detail.layer.name} [row ${hover.row}, col ${hover.col}, depth ${d}]`);
  const value = el("strong", "readout-value");
  value.id = "hover-value";
  if (entry?.values) {
    const exact = entry.values[hover.row][hover.col][d];
    value.textContent = String(exact);
    value.dataset.value = String(exact);
    value.dataset.row = hover.row;
    value.dataset.col = hover.col;
    value.dataset.depth = d;
  } else {
    value.textContent = entry?.error ? entry.error : "loading…";
  }
  out.replaceChildren(where, " = ", value);
}

function onSliceHover(event) {
  if (!view.detail) return;
  const canvas = $("slice-canvas");
  const rect = canvas.getBoundingClientRect();
  const { h, w, cell } = sliceLayout();
  const col = Math.floor((event.clientX - rect.left) / cell);
  const row = Math.floor((event.clientY - rect.top) / cell);
  const next = row >= 0 && row < h && col >= 0 && col < w ? { row, col } : null;
  if (next?.row === view.hover?.row && next?.col === view.hover?.col) return;
  view.hover = next;
  dirty.slice = true;
  schedule();
}

/** With the enlarged slice focused, the arrow keys move the inspected cell (as hovering does). */
function onSliceKey(event) {
  const step = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] }[event.key];
  if (!step || !view.detail || event.altKey || event.ctrlKey || event.metaKey) return;
  event.preventDefault();
  event.stopPropagation();
  const [h, w] = view.detail.volume.shape;
  const from = view.hover || { row: Math.floor(h / 2), col: Math.floor(w / 2) };
  view.hover = view.hover
    ? { row: clamp(from.row + step[0], 0, h - 1), col: clamp(from.col + step[1], 0, w - 1) }
    : from;
  dirty.slice = true;
  schedule();
}

// --- input image and scores ---------------------------------------------------------------------

function drawInputViews() {
  const run = state.run;
  const views = $("input-views");
  if (!run) {
    views.hidden = true;
    return;
  }
  views.hidden = false;
  const original = $("original-image");
  if (original.src !== run.originalUrl) original.src = run.originalUrl;
  if (run.input) {
    inputCanvas(run.input, $("preprocessed-canvas"));
    $("preprocessed-caption").textContent = "network input";
    $("preprocessed-canvas").title = `What the network sees: ${shapeText(run.input.shape)}, after resizing`;
  }
}

function drawScores() {
  const run = state.run;
  const bars = $("score-bars");
  const prediction = $("prediction");
  const classes = run?.classes || modelInfo().classes;
  const probabilities = run?.scores?.probabilities;
  if (!probabilities) {
    prediction.textContent = run && !run.error ? "Thinking…" : "Choose an image to see what the network thinks it is.";
    bars.replaceChildren();
    return;
  }
  const top = run.scores.top?.[0] || {
    index: probabilities.indexOf(Math.max(...probabilities)),
  };
  const name = top.class ?? classes[top.index];
  const probability = top.probability ?? probabilities[top.index];
  prediction.replaceChildren(
    el("span", "prediction-label", "It looks like"),
    el("strong", "prediction-class", name),
    el("span", "prediction-prob", `${(100 * probability).toFixed(1)}%`),
  );
  if (!run.trained) prediction.title = "The model's weights are random (not trained yet): this is a guess.";
  bars.replaceChildren(
    ...probabilities.map((p, i) => {
      const item = el("li", i === top.index ? "score top" : "score");
      const bar = el("span", "score-bar");
      const fill = el("span", "score-fill");
      fill.style.setProperty("width", `${(100 * p).toFixed(2)}%`);
      bar.append(fill);
      item.append(el("span", "score-class", classes[i]), bar, el("span", "score-prob", `${(100 * p).toFixed(1)}%`));
      item.title = `${classes[i]}: ${(100 * p).toFixed(2)}%`;
      return item;
    }),
  );
}

function updateProgress() {
  const run = state.run;
  const progress = $("run-progress");
  if (!run || run.model !== state.model) {
    progress.hidden = true;
    return;
  }
  const total = run.layerCount || layersOf().length;
  progress.max = total;
  progress.value = run.layers.filter(Boolean).length;
  progress.hidden = run.done && !run.error;
  if (run.error) return;
  if (run.done) {
    const ms = run.finished - run.started;
    setStatus(`${total} layers in ${ms.toFixed(0)} ms`);
  } else {
    const next = layersOf()[run.layers.length];
    setStatus(next ? `Computing ${next.name}… ${run.layers.length} / ${total}` : `Scoring… ${total} / ${total}`, true);
  }
}

// --- the frame ------------------------------------------------------------------------------------

function frame() {
  frameRequested = false;
  if (!modelInfo()) return;
  const run = state.run;
  for (const b of view.boxes) {
    if (!dirty.boxes.has(b.index)) continue;
    drawRowBox(b);
    if (run && b.index >= 0 && run.layers[b.index] && !run.drawn.has(b.index) && run.model === state.model) {
      run.drawn.add(b.index);
      performance.mark(MARK.layer, { detail: { index: b.index } });
      if (run.drawn.size === 1) performance.mark(MARK.first);
      if (run.drawn.size === run.layerCount) performance.mark(MARK.last);
    }
  }
  dirty.boxes.clear();
  if (dirty.input) drawInputViews();
  if (dirty.detail) renderDetail();
  if (dirty.slice || dirty.detail) drawSliceFocus();
  if (dirty.scores) drawScores();
  dirty.input = dirty.detail = dirty.slice = dirty.scores = false;
  updateProgress();
}

// --- runs -------------------------------------------------------------------------------------------

function receive(run, message) {
  if (state.run !== run) return;
  if (message.type === "run") {
    run.id = message.id;
    document.body.dataset.run = message.id;
    run.trained = message.trained;
    run.classes = message.classes;
    run.layerCount = message.layer_count;
    const input = message.input;
    run.input = { shape: input.shape, data: api.decodeBase64(input.data) };
    run.inputVolume = inputVolume(run.input);
    run.inputImage = inputCanvas(run.input);
    $("trained-badge").hidden = message.trained !== false;
    dirty.boxes.add(-1);
    dirty.input = true;
  } else if (message.type === "layer") {
    run.layers[message.index] = { ...message, data: api.decodeBase64(message.data) };
    dirty.boxes.add(message.index);
    if (message.index + 1 < (run.layerCount || 0)) dirty.boxes.add(message.index + 1);
    if (message.index === state.layer) dirty.detail = true;
  } else if (message.type === "scores") {
    run.scores = message;
    dirty.scores = true;
    requestValues(state.layer);
  }
  schedule();
}

async function startRun(file, info = {}) {
  if (!info.marked) performance.mark(MARK.chosen);
  if (info.model && info.model !== state.model) setModel(info.model);
  state.run?.controller.abort();
  if (state.run?.ownsUrl) URL.revokeObjectURL(state.run.originalUrl);
  state.sample = info.sampleId || null;
  if (info.source !== "sample") markSampleSelected();
  writeUrl();
  hideError();
  const run = {
    model: state.model,
    controller: new AbortController(),
    layers: [],
    drawn: new Set(),
    values: new Map(),
    layerCount: layersOf().length,
    classes: modelInfo().classes,
    trained: modelInfo().trained,
    started: performance.now(),
    originalUrl: info.url || URL.createObjectURL(file),
    ownsUrl: !info.url,
    done: false,
  };
  state.run = run;
  document.body.dataset.runState = "streaming";
  delete document.body.dataset.run;
  view.hover = null;
  setStatus(`Sending the image to ${state.model}…`, true);
  markAllDirty();
  try {
    await api.forward(run.model, file, { signal: run.controller.signal, onMessage: (m) => receive(run, m) });
    if (state.run === run && !run.scores) throw new api.ApiError("The server ended the run before the scores.");
  } catch (error) {
    if (error.name === "AbortError" || state.run !== run) return;
    run.error = error.message;
    showError(error.message);
  } finally {
    if (state.run === run) {
      run.done = true;
      run.finished = performance.now();
      document.body.dataset.runState = run.error ? "error" : "done";
      markAllDirty();
    }
  }
}

function markSampleSelected() {
  for (const button of document.querySelectorAll("#sample-gallery .sample")) {
    button.setAttribute("aria-pressed", String(button.dataset.sample === state.sample));
  }
}

async function pickSample(sample) {
  performance.mark(MARK.chosen);
  state.sample = sample.id;
  markSampleSelected();
  try {
    const file = await sampleBlob(sample);
    if (state.sample === sample.id) {
      await startRun(file, { source: "sample", sampleId: sample.id, url: sample.url, model: sample.model, marked: true });
    }
  } catch (error) {
    showError(error.message);
  }
}

// --- selection --------------------------------------------------------------------------------------

function selectLayer(index, { focus = false } = {}) {
  const count = layersOf().length;
  if (!count) return;
  index = clamp(index, 0, count - 1);
  const changed = index !== state.layer;
  state.layer = index;
  if (changed) {
    view.hover = null;
    dirty.boxes = new Set(view.boxes.map((b) => b.index));
  }
  const depth = layersOf()[index].shape[2];
  state.slice = clamp(state.slice, 0, depth - 1);
  updateRowSelection(focus);
  writeUrl();
  dirty.detail = true;
  schedule();
}

function selectSlice(d, { focus = false } = {}) {
  const depth = layersOf()[state.layer]?.shape[2] || 1;
  state.slice = clamp(d, 0, depth - 1);
  writeUrl();
  dirty.slice = true;
  if (focus && view.detail) {
    const tile = view.detail.tiles[state.slice];
    tile?.focus({ preventScroll: true });
    tile?.scrollIntoView({ block: "nearest", inline: "nearest" });
  }
  schedule();
}

function setModel(id) {
  if (!state.models.has(id)) return;
  if (state.run && state.run.model !== id) {
    state.run.controller.abort();
    state.run = null;
    hideError();
  }
  state.model = id;
  $("model-select").value = id;
  $("upload-form").action = `/api/models/${encodeURIComponent(id)}/forward`;
  const info = modelInfo();
  $("trained-badge").hidden = info.trained !== false;
  const params = info.layers.reduce((sum, layer) => sum + layer.param_count, 0);
  const accuracy = info.trained && info.test_accuracy ? ` · ${(100 * info.test_accuracy).toFixed(1)}% on the test set` : "";
  $("model-facts").textContent = `${info.layers.length} layers · ${(params / 1000).toFixed(0)}k parameters${accuracy}`;
  $("model-facts").title = info.description || "";
  state.layer = clamp(state.layer, 0, info.layers.length - 1);
  state.slice = clamp(state.slice, 0, info.layers[state.layer].shape[2] - 1);
  if (state.sample && !state.samples.some((s) => s.id === state.sample && s.model === id)) state.sample = null;
  renderGallery(state.samples, id, state.sample, pickSample);
  buildRow();
  if (!state.run) setStatus("");
  writeUrl();
  markAllDirty();
}

function setPresenter(on) {
  state.presenter = on;
  document.documentElement.classList.toggle("presenter", on);
  $("presenter-toggle").setAttribute("aria-pressed", String(on));
  try {
    localStorage.setItem("convscope.presenter", on ? "1" : "0");
  } catch {
    // Storage may be off; the toggle still works for this page.
  }
  requestAnimationFrame(() => {
    layoutRow();
    markAllDirty();
    view.volume3d.requestDraw();
  });
}

function onKey(event) {
  if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target;
  if (isTyping(target) || target.closest?.('[role="tab"], #draw-pad')) return;
  const actions = {
    ArrowLeft: () => selectLayer(state.layer - 1, { focus: true }),
    ArrowRight: () => selectLayer(state.layer + 1, { focus: true }),
    ArrowUp: () => selectSlice(state.slice - 1, { focus: true }),
    ArrowDown: () => selectSlice(state.slice + 1, { focus: true }),
    p: () => setPresenter(!state.presenter),
    P: () => setPresenter(!state.presenter),
  };
  const action = actions[event.key];
  if (!action) return;
  event.preventDefault();
  action();
}

// --- start ------------------------------------------------------------------------------------------

function fillColorSelects() {
  const fill = (select, names, value) => {
    select.replaceChildren(...names.map((name) => new Option(COLORMAPS[name].label, name, false, name === value)));
    select.addEventListener("change", () => {
      state[select === $("sequential-select") ? "sequential" : "diverging"] = select.value;
      markAllDirty();
    });
  };
  fill($("sequential-select"), SEQUENTIAL, state.sequential);
  fill($("diverging-select"), DIVERGING, state.diverging);
  for (const radio of document.querySelectorAll('input[name="scale"]')) {
    radio.addEventListener("change", () => {
      state.scale = radio.value;
      dirty.detail = true;
      schedule();
    });
  }
}

async function loadSamples() {
  try {
    const response = await fetch("/static/samples/index.json");
    const manifest = await response.json();
    return manifest.samples.map((s) => ({ ...s, url: `${manifest.base}${s.file}` }));
  } catch {
    return [];
  }
}

async function main() {
  document.documentElement.classList.add("js");
  const fromUrl = readUrl();
  view.volume3d = new VolumeView($("volume-canvas"));
  fillColorSelects();
  let presenter = false;
  try {
    presenter = localStorage.getItem("convscope.presenter") === "1";
  } catch {
    // No storage: start in the normal mode.
  }
  $("presenter-toggle").hidden = false;
  $("presenter-toggle").addEventListener("click", () => setPresenter(!state.presenter));
  if (presenter) setPresenter(true);

  const inputs = setupInputs({
    onImage: (file, info) => startRun(file, info),
    onError: (sentence) => showError(sentence),
  });
  document.addEventListener("keydown", onKey);
  $("model-select").addEventListener("change", (event) => {
    state.sample = null;
    setModel(event.target.value);
  });
  $("model-form").addEventListener("submit", (event) => event.preventDefault());
  const canvas = $("slice-canvas");
  canvas.addEventListener("pointermove", onSliceHover);
  canvas.addEventListener("pointerleave", () => {
    if (document.activeElement === canvas) return;
    view.hover = null;
    dirty.slice = true;
    schedule();
  });
  canvas.addEventListener("keydown", onSliceKey);
  canvas.addEventListener("blur", () => {
    view.hover = null;
    dirty.slice = true;
    schedule();
  });
  $("spread-range").addEventListener("input", (event) => view.volume3d.setSpread(Number(event.target.value)));
  $("volume-reset").addEventListener("click", () => view.volume3d.reset());
  new ResizeObserver(() => layoutRow()).observe($("layer-row").parentElement);
  window.addEventListener("resize", () => layoutRow());
  new ResizeObserver(() => {
    dirty.slice = true;
    schedule();
  }).observe($("detail-grid"));

  try {
    const [models, samples] = await Promise.all([api.getModels(), loadSamples()]);
    state.samples = samples;
    for (const model of models) state.models.set(model.id, model);
  } catch (error) {
    showError(error.message);
    return;
  }
  const sample = state.samples.find((s) => s.id === fromUrl.sample);
  const model = sample?.model || (state.models.has(fromUrl.model) ? fromUrl.model : $("model-select").value);
  state.layer = fromUrl.layer;
  state.slice = fromUrl.slice;
  state.sample = sample?.id || null;
  setModel(state.models.has(model) ? model : state.models.keys().next().value);
  selectLayer(state.layer);
  state.slice = clamp(fromUrl.slice, 0, layersOf()[state.layer].shape[2] - 1);
  writeUrl();
  inputs.selectTab(model === "mnist" && !sample ? "draw" : "samples");
  if (sample) pickSample(sample);
}

main();
