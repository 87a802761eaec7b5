/**
 * The viewer: state, the URL, runs and wiring. State lives in `state` and the query string
 * (?model=&sample=&layer=&slice=&neuron=); events change state and mark what needs drawing, and
 * drawing happens once per animation frame, so the page stays responsive while a run
 * streams in. network.js, detail.js and scores.js draw; this module decides what.
 */

import * as api from "./api.js";
import { followPosition, neuronParam, parseNeuron } from "./arithmetic.js";
import { ChannelView } from "./channels.js";
import { COLORMAPS, DIVERGING, SEQUENTIAL } from "./colormaps.js";
import { LayerDetail } from "./detail.js";
import { $, clamp } from "./dom.js";
import { isTyping, renderGallery, sampleBlob, setupInputs } from "./inputs.js";
import { setupModelCard } from "./modelcard.js";
import { modelFacts, withBorrowedSamples } from "./modelfacts.js";
import { NetworkRow } from "./network.js";
import { NeuronPanel } from "./neuron.js";
import { setupSession } from "./session.js";
import { drawInputViews, drawScores } from "./scores.js";
import { channelPalette, colorScale, faceCanvases, inputCanvas, inputVolume } from "./volume.js";
import { WhyView } from "./why.js";

const MARK = {
  chosen: "convscope:file-chosen",
  layer: "convscope:layer-drawn",
  first: "convscope:first-layer-drawn",
  last: "convscope:last-layer-drawn",
};

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
  neuron: null, // {row, col} whose arithmetic is shown (its depth is the slice), or null
};

const dirty = { boxes: new Set(), detail: false, slice: false, scores: false, input: false, neuron: false };
let frameRequested = false;
let why;
let row;
let detail;
let neuronPanel;
let channelView;

const modelInfo = () => state.models.get(state.model);
const layersOf = () => modelInfo()?.layers || [];
const currentRun = () => (state.run?.model === state.model ? state.run : null);
const colorOptions = () => ({ scale: state.scale, sequential: state.sequential, diverging: state.diverging });

// --- the URL ------------------------------------------------------------------------------------

function readUrl() {
  const params = new URLSearchParams(location.search);
  const int = (name) => {
    const value = Number.parseInt(params.get(name), 10);
    return Number.isFinite(value) && value >= 0 ? value : 0;
  };
  return {
    model: params.get("model"),
    sample: params.get("sample"),
    layer: int("layer"),
    slice: int("slice"),
    neuron: parseNeuron(params.get("neuron")),
  };
}

function writeUrl() {
  const params = new URLSearchParams();
  params.set("model", state.model);
  if (state.sample) params.set("sample", state.sample);
  params.set("layer", state.layer);
  params.set("slice", state.slice);
  if (state.neuron) params.set("neuron", neuronParam(state.neuron));
  const url = `${location.pathname}?${params}`;
  if (url !== location.pathname + location.search) history.replaceState(null, "", url);
  notifyView();
}

// --- the view a class session shares (session.js) ------------------------------------------------

const session = { onChange: null, onOwnImage: null };
let applyingView = false;

function notifyView() {
  if (session.onChange && !applyingView) session.onChange();
}

/** What a follower needs to show the same thing: a sample is made again on the follower's
 * page; any other image is the presenter's stored run, read again once its scores arrived. */
function currentView() {
  const run = currentRun();
  return {
    model: state.model,
    sample: state.sample,
    run: !state.sample && run?.scores ? run.replayOf || run.id : null,
    layer: state.layer,
    slice: state.slice,
    neuron: detail.hover ? { row: detail.hover.row, col: detail.hover.col } : null,
    tab: document.querySelector('[role="tab"][aria-selected="true"]')?.id || null,
    presenter: state.presenter,
    sequential: state.sequential,
    diverging: state.diverging,
    scale: state.scale,
  };
}

/** The page's own image (not one a session showed it), ready to send to the class. */
function ownImage() {
  const run = currentRun();
  if (!run?.id || !run.scores || run.fromSession) return null;
  return { run: run.id, model: run.model, classes: run.classes, drawn: run.isDrawing };
}

function applyView(view) {
  applyingView = true;
  try {
    if (view.model && view.model !== state.model && state.models.has(view.model)) setModel(view.model);
    const run = currentRun();
    if (view.sample && view.sample !== state.sample) {
      const sample = state.samples.find((s) => s.id === view.sample);
      if (sample) pickSample(sample, { fromSession: true });
    } else if (!view.sample && view.run && run?.id !== view.run && run?.replayOf !== view.run) {
      const file = new Blob([], { type: "application/x-ndjson" });
      startRun(file, { replay: view.run, url: api.runInputUrl(view.run), model: view.model, fromSession: true });
    }
    for (const key of ["sequential", "diverging", "scale"]) {
      if (view[key] && view[key] !== state[key]) {
        state[key] = view[key];
        if (key === "scale") for (const r of document.querySelectorAll('input[name="scale"]')) r.checked = r.value === view.scale;
        else $(`${key}-select`).value = view[key];
        markAllDirty();
      }
    }
    if (Number.isInteger(view.layer)) selectLayer(view.layer);
    if (Number.isInteger(view.slice)) selectSlice(view.slice);
    const neuron = view.neuron;
    detail.setHover(neuron && Number.isInteger(neuron.row) ? { row: neuron.row, col: neuron.col } : null);
  } finally {
    applyingView = false;
  }
}

// --- drawing, once per frame ----------------------------------------------------------------------

function schedule() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(frame);
}

function markAllDirty() {
  dirty.boxes = new Set(row.indices);
  dirty.detail = dirty.scores = dirty.input = dirty.neuron = true;
  schedule();
}

/** The faces of box `index` (-1: the input) in the current colours, cached per run. */
function boxFaces(run, index) {
  if (!run) return null;
  const key = `${index}/${state.sequential}/${state.diverging}`;
  if (run.faces.has(key)) return run.faces.get(key);
  let faces = null;
  if (index < 0 && run.inputVolume) {
    const channels = run.inputVolume.shape[2];
    faces = { ...faceCanvases(run.inputVolume, (d) => channelPalette(d, channels)), front: run.inputImage };
  } else if (run.layers[index]) {
    const { palette } = colorScale(run.layers[index], 0, { ...colorOptions(), scale: "layer" });
    faces = faceCanvases(run.layers[index], () => palette);
  }
  if (faces) run.faces.set(key, faces);
  return faces;
}

function drawBoxes(run) {
  for (const index of row.indices) {
    if (!dirty.boxes.has(index)) continue;
    const computing = Boolean(run && !run.done && index >= 0 && index === run.layers.length);
    row.draw(index, boxFaces(run, index), { selected: index === state.layer, computing });
    if (run && index >= 0 && run.layers[index] && !run.drawn.has(index)) {
      run.drawn.add(index);
      performance.mark(MARK.layer, { detail: { index } });
      if (run.drawn.size === 1) performance.mark(MARK.first);
      if (run.drawn.size === run.layerCount) performance.mark(MARK.last);
    }
  }
  dirty.boxes.clear();
}

function renderDetail(run) {
  const layer = layersOf()[state.layer];
  if (!layer) return;
  detail.render({
    layer,
    streamed: run?.layers[state.layer],
    run,
    waiting: Boolean(run && !run.done),
    before: state.layer === 0 ? modelInfo().input : layersOf()[state.layer - 1].shape,
    input: layersOf()[0].shape,
    modelId: state.model,
    modelClasses: modelInfo().classes,
    slice: state.slice,
    options: colorOptions(),
  });
}

function setStatus(text, busy = false) {
  $("run-status").textContent = text;
  $("run-status").classList.toggle("busy", busy);
}

function updateProgress(run) {
  const progress = $("run-progress");
  progress.hidden = !run || run.done;
  if (!run || run.error) return;
  const total = run.layerCount;
  progress.max = total;
  progress.value = run.layers.filter(Boolean).length;
  if (run.done) {
    setStatus(`${total} layers in ${(run.finished - run.started).toFixed(0)} ms`);
  } else {
    const next = layersOf()[run.layers.length];
    setStatus(next ? `Computing ${next.name}… ${run.layers.length} / ${total}` : "Scoring…", true);
  }
}

function frame() {
  frameRequested = false;
  if (!modelInfo()) return;
  const run = currentRun();
  detail.pinned = state.neuron;
  drawBoxes(run);
  if (dirty.input) drawInputViews(run);
  if (dirty.detail) renderDetail(run);
  if (dirty.slice || dirty.detail) detail.drawFocus(run, state.slice);
  if (dirty.slice || dirty.detail) channelView.show(state.model, layersOf()[state.layer], state.slice);
  if (dirty.scores) {
    drawScores(run, modelInfo().classes);
    why.update(run, modelInfo());
  }
  if (dirty.neuron) showNeuron(run);
  dirty.input = dirty.detail = dirty.slice = dirty.scores = dirty.neuron = false;
  updateProgress(run);
}

// --- errors -------------------------------------------------------------------------------------------

function showError(sentence) {
  const box = $("error");
  box.textContent = sentence;
  box.hidden = false;
  setStatus("Stopped: see the message");
}

function hideError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// --- runs ---------------------------------------------------------------------------------------------

function receive(run, message) {
  if (state.run !== run) return;
  if (message.type === "run") {
    run.id = message.id;
    document.body.dataset.run = message.id;
    run.trained = message.trained;
    run.classes = message.classes;
    run.layerCount = message.layer_count;
    run.input = { shape: message.input.shape, data: api.decodeBase64(message.input.data) };
    run.inputVolume = inputVolume(run.input);
    run.inputImage = inputCanvas(run.input);
    $("trained-badge").hidden = message.trained !== false;
    dirty.boxes.add(-1);
    dirty.input = true;
  } else if (message.type === "layer") {
    run.layers[message.index] = { ...message, data: api.decodeBase64(message.data) };
    dirty.boxes.add(message.index);
    dirty.boxes.add(message.index + 1); // the next box shows that it is being computed
    if (message.index === state.layer) dirty.detail = true;
  } else if (message.type === "scores") {
    run.scores = message;
    dirty.scores = dirty.neuron = true;
    detail.readout(); // the run is stored now: the readout may fetch exact values
    notifyView();
    if (!run.fromSession) session.onOwnImage?.();
  }
  schedule();
}

async function startRun(file, info = {}) {
  if (!info.marked) performance.mark(MARK.chosen);
  // A drawing goes to mnist, unless the model shown reads grey digits itself (an import).
  if (info.source === "drawing" && modelInfo()?.input[2] === 1) info = { ...info, model: state.model };
  if (info.model && info.model !== state.model) setModel(info.model);
  state.run?.controller.abort();
  if (state.run?.ownsUrl) URL.revokeObjectURL(state.run.originalUrl);
  state.sample = info.sampleId || null;
  markSampleSelected();
  if (!info.fromSession) session.onOwnImage?.(true);
  writeUrl();
  hideError();
  const run = {
    model: state.model,
    controller: new AbortController(),
    layers: [],
    drawn: new Set(),
    faces: new Map(),
    layerCount: layersOf().length,
    modelClasses: modelInfo().classes,
    trained: modelInfo().trained,
    started: performance.now(),
    originalUrl: info.url || URL.createObjectURL(file),
    ownsUrl: !info.url,
    done: false,
    replayOf: info.replay || null,
    fromSession: Boolean(info.fromSession),
    isDrawing: info.source === "drawing",
  };
  state.run = run;
  why.reset();
  document.body.dataset.runState = "streaming";
  delete document.body.dataset.run;
  detail.hover = null;
  setStatus(`Sending the image to ${state.model}…`, true);
  markAllDirty();
  try {
    const reading = { signal: run.controller.signal, onMessage: (m) => receive(run, m) };
    await (info.replay ? api.replay(info.replay, reading) : api.forward(run.model, file, reading));
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

async function pickSample(sample, extra = {}) {
  performance.mark(MARK.chosen);
  state.sample = sample.id;
  markSampleSelected();
  try {
    const file = await sampleBlob(sample);
    if (state.sample !== sample.id) return;
    await startRun(file, { sampleId: sample.id, url: sample.url, model: sample.model, marked: true, ...extra });
  } catch (error) {
    showError(error.message);
  }
}

// --- selection ------------------------------------------------------------------------------------------

function selectLayer(index, { focus = false } = {}) {
  const count = layersOf().length;
  if (!count) return;
  index = clamp(index, 0, count - 1);
  if (index !== state.layer) {
    detail.hover = null;
    dirty.boxes = new Set(row.indices);
    if (state.neuron) state.neuron = followPosition(state.neuron, layersOf()[state.layer].shape, layersOf()[index].shape);
    dirty.neuron = true;
  }
  state.layer = index;
  state.slice = clamp(state.slice, 0, layersOf()[index].shape[2] - 1);
  row.select(index, focus);
  writeUrl();
  dirty.detail = true;
  schedule();
}

function selectSlice(d, { focus = false } = {}) {
  const depth = layersOf()[state.layer]?.shape[2] || 1;
  state.slice = clamp(d, 0, depth - 1);
  writeUrl();
  dirty.slice = dirty.neuron = true;
  const tile = focus && detail.shown?.tiles[state.slice];
  if (tile) {
    tile.focus({ preventScroll: true });
    tile.scrollIntoView({ block: "nearest", inline: "nearest" });
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
  $("model-facts").textContent = modelFacts(info);
  $("model-facts").title = info.description || "";
  state.layer = clamp(state.layer, 0, info.layers.length - 1);
  state.slice = clamp(state.slice, 0, info.layers[state.layer].shape[2] - 1);
  if (state.neuron) state.neuron = clampNeuron(state.neuron);
  if (!state.samples.some((s) => s.id === state.sample && s.model === id)) state.sample = null;
  renderGallery(state.samples, id, state.sample, pickSample);
  row.build(info.input, info.layers);
  row.layout(state.presenter);
  row.select(state.layer);
  if (!state.run) setStatus("");
  writeUrl();
  markAllDirty();
}

function relayout() {
  if (row.layout(state.presenter)) {
    dirty.boxes = new Set(row.indices);
    schedule();
  }
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
    relayout();
    markAllDirty();
    detail.volume3d.requestDraw();
  });
  notifyView();
}

function onKey(event) {
  if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target;
  if (isTyping(target) || target.closest?.('[role="tab"], #draw-pad')) return;
  if (state.neuron && neuronKey(event)) {
    event.preventDefault();
    return;
  }
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

// --- the neuron whose arithmetic is shown ------------------------------------------------------------

function clampNeuron({ row, col }) {
  const [h, w] = layersOf()[state.layer].shape;
  return { row: clamp(row, 0, h - 1), col: clamp(col, 0, w - 1) };
}

/** Show (or, with null, close) the arithmetic of neuron {row, col} of the slice. */
function setNeuron(neuron) {
  const opening = neuron && !state.neuron;
  state.neuron = neuron && clampNeuron(neuron);
  writeUrl();
  dirty.neuron = dirty.slice = true;
  schedule();
  if (opening) requestAnimationFrame(() => $("neuron-panel").scrollIntoView({ block: "nearest", behavior: "smooth" }));
}

function showNeuron(run) {
  if (!state.neuron || !layersOf()[state.layer]) {
    neuronPanel.hide();
    return;
  }
  const layer = layersOf()[state.layer];
  neuronPanel.show({
    run,
    layer,
    layers: layersOf(),
    position: [state.neuron.row, state.neuron.col, state.slice],
  });
}

/** Shift+arrows move the chosen neuron, Escape closes its panel; true if the key was one. */
function neuronKey(event) {
  if (event.key === "Escape") {
    setNeuron(null);
    return true;
  }
  const step = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] }[event.key];
  if (!step || !event.shiftKey) return false;
  const [h, w] = layersOf()[state.layer].shape;
  if (h * w === 1) selectSlice(state.slice + step[0] + step[1]);
  else setNeuron({ row: state.neuron.row + step[0], col: state.neuron.col + step[1] });
  return true;
}

// --- start ------------------------------------------------------------------------------------------------

function setupColorControls() {
  const fill = (select, names, key) => {
    select.replaceChildren(...names.map((name) => new Option(COLORMAPS[name].label, name, false, name === state[key])));
    select.addEventListener("change", () => {
      state[key] = select.value;
      markAllDirty();
      notifyView();
    });
  };
  fill($("sequential-select"), SEQUENTIAL, "sequential");
  fill($("diverging-select"), DIVERGING, "diverging");
  for (const radio of document.querySelectorAll('input[name="scale"]')) {
    radio.addEventListener("change", () => {
      state.scale = radio.value;
      dirty.detail = true;
      schedule();
      notifyView();
    });
  }
}

async function loadSamples() {
  try {
    const manifest = await (await fetch("/static/samples/index.json")).json();
    return manifest.samples.map((s) => ({ ...s, url: `${manifest.base}${s.file}` }));
  } catch {
    return [];
  }
}

async function main() {
  document.documentElement.classList.add("js");
  const fromUrl = readUrl();
  row = new NetworkRow($("layer-row"), { onSelect: (index) => selectLayer(index) });
  detail = new LayerDetail({
    onSelectSlice: (d) => selectSlice(d),
    onChange: () => {
      dirty.slice = true;
      schedule();
      notifyView();
    },
    onPick: (r, c) => setNeuron({ row: r, col: c }),
  });
  neuronPanel = new NeuronPanel({
    onMove: (r, c, d) => {
      if (d !== state.slice) selectSlice(d);
      setNeuron({ row: r, col: c });
    },
    onClose: () => setNeuron(null),
  });
  channelView = new ChannelView($("channel-view"), { onSelectSlice: (d) => selectSlice(d) });
  setupColorControls();
  setupModelCard(modelInfo);
  why = new WhyView();
  $("presenter-toggle").hidden = false;
  $("presenter-toggle").addEventListener("click", () => setPresenter(!state.presenter));
  try {
    if (localStorage.getItem("convscope.presenter") === "1") setPresenter(true);
  } catch {
    // No storage: start in the normal mode.
  }
  const inputs = setupInputs({ onImage: startRun, onError: showError });
  document.addEventListener("keydown", onKey);
  $("model-select").addEventListener("change", (event) => {
    state.sample = null;
    setModel(event.target.value);
    // Digits are drawn, photos picked; an Upload or Camera tab the user chose stays.
    const tab = document.querySelector('[role="tab"][aria-selected="true"]')?.id;
    if (tab === "tab-samples" || tab === "tab-draw") inputs.selectTab(modelInfo().input[2] === 1 ? "draw" : "samples");
  });
  $("model-form").addEventListener("submit", (event) => event.preventDefault());
  new ResizeObserver(relayout).observe($("layer-row").parentElement);
  window.addEventListener("resize", relayout);
  new ResizeObserver(() => {
    dirty.slice = true;
    schedule();
  }).observe($("detail-grid"));

  try {
    const [models, samples] = await Promise.all([api.getModels(), loadSamples()]);
    state.samples = withBorrowedSamples(samples, models);
    for (const model of models) state.models.set(model.id, model);
  } catch (error) {
    showError(error.message);
    return;
  }
  const sample = state.samples.find((s) => s.id === fromUrl.sample);
  const model = sample?.model || (state.models.has(fromUrl.model) ? fromUrl.model : $("model-select").value);
  state.layer = fromUrl.layer;
  state.slice = fromUrl.slice;
  state.neuron = fromUrl.neuron;
  state.sample = sample?.id || null;
  setModel(state.models.has(model) ? model : state.models.keys().next().value);
  selectLayer(state.layer);
  inputs.selectTab(modelInfo().input[2] === 1 && !sample ? "draw" : "samples");
  if (sample) pickSample(sample);
  else if (fromUrl.sample) {
    showError(`This link names a sample, "${fromUrl.sample}", that this server does not have: pick one from the gallery.`);
  }
  const showImage = (file, model) => startRun(file, { model });
  setupSession({ hooks: session, currentView, applyView, ownImage, showImage, showError });
}

main();
