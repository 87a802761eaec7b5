/**
 * The viewer: page state and wiring. State lives in `state` and the query string
 * (urlstate.js); a run's life is run.js's; events change state and mark what needs
 * drawing, and drawing happens once per animation frame, so the page stays responsive
 * while a run streams in. network.js, detail.js and scores.js draw; this module decides what.
 */

import * as api from "./api.js";
import { followPosition } from "./arithmetic.js";
import { ChannelView } from "./channels.js";
import { COLORMAPS, DIVERGING, SEQUENTIAL } from "./colormaps.js";
import { LayerDetail } from "./detail.js";
import { $, clamp } from "./dom.js";
import { isTyping, renderGallery, sampleBlob, setupInputs } from "./inputs.js";
import { setupModelCard } from "./modelcard.js";
import { modelFacts, withBorrowedSamples } from "./modelfacts.js";
import { NetworkRow } from "./network.js";
import { NeuronPanel } from "./neuron.js";
import { Run, progressText } from "./run.js";
import { setupSession } from "./session.js";
import { drawInputViews, drawScores } from "./scores.js";
import { parseQuery, queryString } from "./urlstate.js";
import { channelPalette, colorScale, faceCanvases } from "./volume.js";
import { WhyView } from "./why.js";

const MARK = {
  chosen: "convscope:file-chosen",
  layer: "convscope:layer-drawn",
  first: "convscope:first-layer-drawn",
  last: "convscope:last-layer-drawn",
};
const EXPIRED =
  "The run this link shows has expired on the server, so its picture is gone: upload the picture again to see it.";

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
  angle: null, // the 3D view's turn, {yaw, pitch}, or null as it starts
  presenter: false,
  run: null, // the run on screen
  pending: null, // a run whose image is still going up: the one on screen stays until it starts
  neuron: null, // {row, col} whose arithmetic is shown (its depth is the slice), or null
};

const dirty = { boxes: new Set(), detail: false, slice: false, scores: false, input: false, neuron: false };
let frameRequested = false;
let why;
let row;
let detail;
let neuronPanel;
let channelView;
let inputs;

const modelInfo = () => state.models.get(state.model);
const layersOf = () => modelInfo()?.layers || [];
const currentRun = () => (state.run?.model === state.model ? state.run : null);
const colorOptions = () => ({ scale: state.scale, sequential: state.sequential, diverging: state.diverging });

/** The model a drawing goes to: the one shown if it reads digits, else the first that does. */
function digitsModel() {
  if (modelInfo()?.input_style === "digits") return state.model;
  return [...state.models.values()].find((m) => m.input_style === "digits")?.id || state.model;
}

// --- the URL and the view a class session shares (session.js) --------------------------------

const session = { onChange: null, onOwnImage: null };
let applyingView = false;

/** The stored run a link can name: any image but a sample, once the server keeps it. */
function linkedRun() {
  const run = currentRun();
  return !state.sample && run?.scores ? run.replayOf || run.id : null;
}

function writeUrl() {
  const query = queryString({ ...state, run: linkedRun() });
  const url = `${location.pathname}?${query}`;
  if (url !== location.pathname + location.search) history.replaceState(null, "", url);
  if (session.onChange && !applyingView) session.onChange();
}

/** What a follower needs to show the same thing: a sample is made again on the follower's
 * page; any other image is the presenter's stored run, read again once its scores arrived. */
function currentView() {
  return {
    model: state.model,
    sample: state.sample,
    run: linkedRun(),
    layer: state.layer,
    slice: state.slice,
    neuron: detail.hoveredCell(),
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

/** Show a stored run again (a shared link, or a session's). */
function replayRun(runId, model, extra = {}) {
  const file = new Blob([], { type: "application/x-ndjson" });
  return startRun(file, { replay: runId, url: api.runInputUrl(runId), model, ...extra });
}

function setColors({ sequential, diverging, scale }) {
  const next = { sequential, diverging, scale };
  let changed = false;
  for (const key of ["sequential", "diverging"]) {
    if (next[key] && COLORMAPS[next[key]] && next[key] !== state[key]) {
      state[key] = next[key];
      $(`${key}-select`).value = next[key];
      changed = true;
    }
  }
  if (next.scale && next.scale !== state.scale) {
    state.scale = next.scale;
    for (const r of document.querySelectorAll('input[name="scale"]')) r.checked = r.value === next.scale;
    changed = true;
  }
  if (changed) markAllDirty();
}

function applyView(view) {
  applyingView = true;
  try {
    if (view.model && view.model !== state.model && state.models.has(view.model)) setModel(view.model);
    const run = currentRun();
    const shown = state.pending || run;
    if (view.sample && view.sample !== (state.pending ? state.pending.sampleId : state.sample)) {
      const sample = state.samples.find((s) => s.id === view.sample);
      if (sample) pickSample(sample, { fromSession: true });
    } else if (!view.sample && view.run && shown?.id !== view.run && shown?.replayOf !== view.run) {
      replayRun(view.run, view.model, { fromSession: true });
    }
    setColors(view);
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
    row.draw(index, boxFaces(run, index), { selected: index === state.layer, computing: Boolean(run?.computing(index)) });
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
    previous: state.layer > 0 ? { layer: layersOf()[state.layer - 1], streamed: run?.layers[state.layer - 1] } : null,
    run,
    waiting: Boolean(run && !run.done),
    before: state.layer === 0 ? modelInfo().input : layersOf()[state.layer - 1].shape,
    input: modelInfo().input,
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

function updateProgress() {
  const run = state.pending || currentRun();
  const progress = $("run-progress");
  progress.hidden = !run || run.done;
  if (!run) return;
  progress.max = run.layerCount;
  progress.value = run.layers.filter(Boolean).length;
  setStatus(progressText(run, layersOf()), !run.done);
}

function frame() {
  frameRequested = false;
  if (!modelInfo()) return;
  const run = currentRun();
  detail.setPinned(state.neuron);
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
  updateProgress();
}

// --- errors -------------------------------------------------------------------------------------------

/** The message box; `action` ({label, onClick}) adds one button, e.g. to upload again. */
function showError(sentence, action = null) {
  const box = $("error");
  box.replaceChildren(sentence);
  if (action) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button button-small error-action";
    button.textContent = action.label;
    button.addEventListener("click", action.onClick);
    box.append(" ", button);
  }
  box.hidden = false;
}

function hideError() {
  $("error").hidden = true;
  $("error").replaceChildren();
}

const uploadAgain = {
  label: "Upload the picture again",
  onClick: () => {
    inputs.selectTab("upload");
    $("file-input").click();
  },
};

// --- runs ---------------------------------------------------------------------------------------------

/** A pending run's first line: it takes the screen from the run shown before. */
function takeScreen(run) {
  if (state.pending !== run) return;
  state.pending = null;
  if (state.run && state.run !== run) state.run.dispose();
  state.run = run;
  state.sample = run.sampleId;
  markSampleSelected();
  why.reset();
  detail.clearHover();
  delete document.body.dataset.run;
  hideError();
  markAllDirty();
}

function receive(run, message) {
  if (message.type === "run") takeScreen(run);
  if (state.run !== run) return;
  const changed = run.receive(message);
  for (const index of changed.boxes) dirty.boxes.add(index);
  if (changed.input) {
    document.body.dataset.run = run.id;
    $("trained-badge").hidden = run.trained !== false;
    dirty.input = true;
  }
  if (changed.layer === state.layer || changed.layer === state.layer - 1) dirty.detail = true;
  if (changed.scores) {
    dirty.scores = dirty.neuron = true;
    detail.readout(); // the run is stored now: the readout may fetch exact values
    writeUrl();
    if (!run.fromSession) session.onOwnImage?.();
  }
  schedule();
}

/** Why a run that never took the screen failed, in the page's words where they say more. */
function failureSentence(run, error) {
  if (run.replayOf && error.status === 404 && run.fromLink) return EXPIRED;
  return error.message;
}

// Resolved once the models are known (or could not be): an image chosen before then, on a
// slow network or by a quick hand, waits for them instead of being lost.
let modelsLoaded;
const modelsReady = new Promise((resolve) => (modelsLoaded = resolve));

async function startRun(file, info = {}) {
  if (!info.marked) performance.mark(MARK.chosen);
  await modelsReady;
  if (!modelInfo()) return; // the models could not be loaded: the page already says so
  if (info.source === "drawing") info = { ...info, model: digitsModel() };
  if (info.model && info.model !== state.model) setModel(info.model);
  state.pending?.dispose();
  const run = new Run(modelInfo(), file, info);
  run.fromLink = Boolean(info.fromLink);
  state.pending = run;
  if (!info.fromSession) session.onOwnImage?.(true);
  document.body.dataset.runState = "streaming";
  updateProgress();
  try {
    await run.stream((message) => receive(run, message), () => state.pending === run && updateProgress());
    if (state.run === run && !run.scores) throw new api.ApiError("The server ended the run before the scores.");
  } catch (error) {
    if (error.name === "AbortError" || (state.run !== run && state.pending !== run)) return;
    run.finish(error.message);
    const sentence = failureSentence(run, error);
    if (state.pending === run) {
      // Refused before it began (a bad file, an expired link): the run on screen stays.
      state.pending = null;
      run.dispose();
      const expired = sentence === EXPIRED;
      showError(sentence, expired ? uploadAgain : null);
      if (expired) state.sample = null;
      document.body.dataset.runState = "error";
      updateProgress();
      if (!currentRun()) setStatus("Stopped: see the message");
      return;
    }
    showError(sentence);
  } finally {
    if (state.run === run) {
      if (!run.done) run.finish(run.error);
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
  try {
    const file = await sampleBlob(sample);
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
    detail.clearHover();
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
  if (focus) detail.focusTile(state.slice);
  schedule();
}

function setModel(id) {
  if (!state.models.has(id)) return;
  if (state.run && state.run.model !== id) {
    state.run.dispose();
    state.run = null;
    hideError();
  }
  if (state.pending && state.pending.model !== id) {
    state.pending.dispose();
    state.pending = null;
  }
  const changed = id !== state.model;
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
  // Digits are drawn, photos picked; an Upload or Camera tab the user chose stays.
  const tab = document.querySelector('[role="tab"][aria-selected="true"]')?.id;
  if (changed && inputs && tab !== "tab-upload" && tab !== "tab-camera") {
    inputs.selectTab(info.input_style === "digits" ? "draw" : "samples");
  }
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
    detail.redraw3d();
  });
  if (session.onChange && !applyingView) session.onChange();
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
  neuronPanel.show({
    run,
    layer: layersOf()[state.layer],
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
      writeUrl();
    });
  };
  fill($("sequential-select"), SEQUENTIAL, "sequential");
  fill($("diverging-select"), DIVERGING, "diverging");
  for (const radio of document.querySelectorAll('input[name="scale"]')) {
    radio.checked = radio.value === state.scale;
    radio.addEventListener("change", () => {
      state.scale = radio.value;
      dirty.detail = true;
      schedule();
      writeUrl();
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
  api.startStreamWorker();
  const fromUrl = parseQuery(location.search);
  Object.assign(state, { sequential: fromUrl.sequential, diverging: fromUrl.diverging, scale: fromUrl.scale });
  if (!COLORMAPS[state.sequential]) state.sequential = "viridis";
  if (!COLORMAPS[state.diverging]) state.diverging = "coolwarm";
  row = new NetworkRow($("layer-row"), { onSelect: (index) => selectLayer(index) });
  detail = new LayerDetail({
    onSelectSlice: (d) => selectSlice(d),
    onHover: () => {
      dirty.slice = true;
      schedule();
      if (session.onChange && !applyingView) session.onChange();
    },
    onPick: (r, c) => setNeuron({ row: r, col: c }),
    onTurn: (angle) => {
      state.angle = angle;
      writeUrl();
    },
  });
  detail.setAngle(fromUrl.angle);
  state.angle = fromUrl.angle;
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
  inputs = setupInputs({ onImage: startRun, onError: (sentence) => showError(sentence) });
  document.addEventListener("keydown", onKey);
  $("model-select").addEventListener("change", (event) => {
    state.sample = null;
    setModel(event.target.value);
  });
  $("model-form").addEventListener("submit", (event) => event.preventDefault());
  new ResizeObserver(relayout).observe($("layer-row").parentElement);
  window.addEventListener("resize", relayout);
  new ResizeObserver(() => {
    dirty.slice = true;
    schedule();
  }).observe($("detail-grid"));

  const chosenTab = () => document.querySelector('[role="tab"][aria-selected="true"]')?.id;
  const tabBeforeModels = chosenTab();
  try {
    const [models, samples] = await Promise.all([api.getModels(), loadSamples()]);
    state.samples = withBorrowedSamples(samples, models);
    for (const model of models) state.models.set(model.id, model);
  } catch (error) {
    showError(error.message);
    modelsLoaded();
    return;
  }
  const picked = chosenTab() !== tabBeforeModels ? chosenTab() : null;
  const sample = state.samples.find((s) => s.id === fromUrl.sample);
  const model = sample?.model || (state.models.has(fromUrl.model) ? fromUrl.model : $("model-select").value);
  state.layer = fromUrl.layer;
  state.slice = fromUrl.slice;
  state.neuron = fromUrl.neuron;
  state.sample = sample?.id || null;
  setModel(state.models.has(model) ? model : state.models.keys().next().value);
  selectLayer(state.layer);
  modelsLoaded();
  // The model's own tab, unless the person picked one while the models were on their way.
  if (picked) inputs.selectTab(picked.replace("tab-", ""));
  else inputs.selectTab(modelInfo().input_style === "digits" && !sample ? "draw" : "samples");
  if (sample) pickSample(sample);
  else if (fromUrl.sample) {
    showError(`This link names a sample, "${fromUrl.sample}", that this server does not have: pick one from the gallery.`);
  } else if (fromUrl.run) {
    replayRun(fromUrl.run, state.model, { fromLink: true });
  }
  const showImage = (file, model) => startRun(file, { model });
  setupSession({ hooks: session, currentView, applyView, ownImage, showImage, showError });
  document.body.dataset.ready = "true"; // for tests: every control is wired
}

main();
