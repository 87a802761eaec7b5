/**
 * The HTTP API, and nothing else: every request the page makes goes through here.
 * forward() reads the NDJSON stream line by line as it arrives (fetch + ReadableStream +
 * TextDecoder), so the page can draw each layer the moment the server sends it.
 */

import { decodePredicted } from "./predict.js";

export { errorFrom };

export class ApiError extends Error {
  constructor(detail, status = 0) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
  }
}

async function errorFrom(response) {
  let detail = `The server answered ${response.status} ${response.statusText}.`;
  try {
    const body = await response.json();
    if (typeof body.detail === "string") detail = body.detail;
    else if (Array.isArray(body.detail) && body.detail[0]?.msg) detail = body.detail[0].msg;
  } catch {
    // Not JSON: keep the status line.
  }
  if (response.status === 503 && response.headers.get("Retry-After")) {
    detail += ` Try again in ${response.headers.get("Retry-After")} s.`;
  }
  return new ApiError(detail, response.status);
}

async function getJson(url, signal) {
  let response;
  try {
    response = await fetch(url, { signal, headers: { Accept: "application/json" } });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("The server cannot be reached. Is it still running?");
  }
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

export const getModels = (signal) => getJson("/api/models", signal).then((body) => body.models);

export const getLayerValues = (runId, index, signal) =>
  getJson(`/api/runs/${encodeURIComponent(runId)}/layers/${index}.json`, signal);

/** An attribution map of a run (static/js/why.js): {values, range, class, probability...}. */
export function getAttribution(runId, method, params, signal) {
  const query = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)]));
  const url = `/api/runs/${encodeURIComponent(runId)}/attributions/${encodeURIComponent(method)}.json`;
  return getJson(`${url}?${query}`, signal);
}
/** How one neuron's number was computed: its parts, by layer kind. */
export const getNeuron = (runId, index, row, col, depth, signal) =>
  getJson(`/api/runs/${encodeURIComponent(runId)}/layers/${index}/neurons/${row}/${col}/${depth}`, signal);
/** A float32 .npy from `url`, parsed: {shape, data, at}. */
async function getNpy(url, signal) {
  let response;
  try {
    response = await fetch(url, { signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("The server cannot be reached. Is it still running?");
  }
  if (!response.ok) throw await errorFrom(response);
  return parseNpy(await response.arrayBuffer());
}

/** One depth slice of a layer, exact: {shape: [H, W], data: Float32Array (row-major)}
 * from the slice's .npy, a D-th of the layer's bytes. */
export const getSliceArray = (runId, index, depth, signal) =>
  getNpy(`/api/runs/${encodeURIComponent(runId)}/layers/${index}.npy?slice=${depth}`, signal);

/** A little-endian float32, C-order .npy file (what the server writes) as an accessor. */
export function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  const major = bytes[6];
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLength));
  if (!header.includes("'<f4'") || header.includes("'fortran_order': True")) {
    throw new ApiError("The layer's values came in a form this page does not read.");
  }
  const shape = header.match(/\(([^)]*)\)/)[1].split(",").filter((s) => s.trim()).map(Number);
  const data = new Float32Array(buffer, start + headerLength);
  const [, w, d] = shape;
  return { shape, data, at: (row, col, depth) => data[(row * w + col) * d + depth] };
}

/** A conv or fc layer's weights, exact, from weights.npy: all of them, (F, C, KH, KW) or
 * (out, in); or with `filter` a number, that one, (C, KH, KW) or (in,). {shape, data}. */
export function getWeightsArray(modelId, index, filter, signal) {
  const query = filter === null || filter === undefined ? "" : `?filter=${filter}`;
  return getNpy(`/api/models/${encodeURIComponent(modelId)}/layers/${index}/weights.npy${query}`, signal);
}

/** Base64 to bytes (uint8 volumes and images in the stream); bytes that decodeLine has
 * already decoded (a "uint8-split" layer) come back as they are. */
export function decodeBase64(text) {
  if (text instanceof Uint8Array) return text;
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const SIX_BITS = new Uint8Array(128).fill(255);
for (let i = 0; i < 64; i++) SIX_BITS[BASE64.charCodeAt(i)] = i;

/** A "uint8-split" volume (app/stream.py) to its `count` bytes: one character per number
 * with its top six bits, then one per three numbers with their low two bits. */
export function decodeSplit(text, count) {
  const groups = Math.ceil(count / 3);
  if (text.length !== count + groups) {
    throw new ApiError(`A layer came with ${text.length} characters where ${count + groups} were due.`);
  }
  const bytes = new Uint8Array(count);
  for (let g = 0; g < groups; g++) {
    const low = SIX_BITS[text.charCodeAt(count + g) & 127];
    const i = 3 * g;
    bytes[i] = (SIX_BITS[text.charCodeAt(i) & 127] << 2) | (low >> 4);
    if (i + 1 < count) bytes[i + 1] = (SIX_BITS[text.charCodeAt(i + 1) & 127] << 2) | ((low >> 2) & 3);
    if (i + 2 < count) bytes[i + 2] = (SIX_BITS[text.charCodeAt(i + 2) & 127] << 2) | (low & 3);
  }
  return bytes;
}

/** A stream line as the page uses it: a "uint8-split" or "uint8-predicted" layer's data
 * (the latter from `previous`, the layer line before it, already decoded) and the run's
 * input become their bytes. */
export function decodeLine(message, previous) {
  if (message.type === "layer" && message.encoding === "uint8-split") {
    const [h, w, d] = message.shape;
    return { ...message, encoding: "uint8", data: decodeSplit(message.data, h * w * d) };
  }
  if (message.type === "layer" && message.encoding === "uint8-predicted") {
    try {
      return { ...message, encoding: "uint8", data: decodePredicted(message, previous) };
    } catch (error) {
      if (error instanceof RangeError) throw new ApiError(error.message);
      throw error;
    }
  }
  if (message.type === "run" && typeof message.input?.data === "string") {
    return { ...message, input: { ...message.input, data: decodeBase64(message.input.data) } };
  }
  return message;
}

/**
 * NDJSON text, in pieces as it arrives, to onMessage(message) per line (decoded by
 * decodeLine, each layer line with the one before it); an "error" line throws its
 * sentence. A line's pieces are joined once, when its newline comes, so a 4 MB line is
 * neither rescanned nor copied per piece.
 */
export class LineReader {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.pieces = [];
    this.previousLayer = undefined;
  }

  push(text) {
    let start = 0;
    let newline;
    while ((newline = text.indexOf("\n", start)) >= 0) {
      this.pieces.push(text.slice(start, newline));
      this.emit();
      start = newline + 1;
    }
    if (start < text.length) this.pieces.push(start ? text.slice(start) : text);
  }

  end() {
    this.emit();
  }

  emit() {
    const line = this.pieces.length === 1 ? this.pieces[0] : this.pieces.join("");
    this.pieces = [];
    if (!line.trim()) return;
    const message = decodeLine(JSON.parse(line), this.previousLayer);
    if (message.type === "error") throw new ApiError(message.detail || "The run failed.");
    // The next line may be predicted from this one's bytes; a copy of them, since the
    // stream worker hands the line's own buffer over to the page (transferred, not copied).
    if (message.type === "layer") this.previousLayer = { ...message, data: message.data.slice() };
    this.onMessage(message);
  }
}

/** What the page asks the stream routes for: the split volumes, with ReLU and pool layers
 * as their difference from the layer before (a cifar10 run 125-130 KB gzip'd). */
const STREAM_QUERY = "?encoding=uint8-predicted";
const unreachable = () => new ApiError("The server cannot be reached. Is it still running?");
const replaced = () => new DOMException("The run was replaced.", "AbortError");

/**
 * POST an image to a model and call onMessage(object) for each NDJSON line as it arrives,
 * and onUpload(sent, total) as the image's bytes go up. Resolves when the stream ends;
 * rejects with ApiError carrying the server's sentence. The lines are read and decoded in
 * the stream worker (stream-worker.js) where the browser has workers, here otherwise.
 */
export function forward(modelId, image, options) {
  const url = `/api/models/${encodeURIComponent(modelId)}/forward${STREAM_QUERY}`;
  const name = image.name || "image.png";
  return inWorker({ op: "forward", url, image, name }, options) ?? forwardHere(url, image, name, options);
}

/** A stored run again, as the same lines forward() reads (GET /api/runs/{id}/stream). */
export function replay(runId, options) {
  const url = `/api/runs/${encodeURIComponent(runId)}/stream${STREAM_QUERY}`;
  return inWorker({ op: "replay", url }, options) ?? replayHere(url, options);
}

/** forward() on this thread (the stream worker calls it). */
export async function forwardHere(url, image, name, { signal, onMessage, onUpload }) {
  const body = new FormData();
  body.append("image", image, name);
  const lines = new LineReader(onMessage);
  let answer;
  try {
    answer = await postWatchingUpload(url, body, { signal, onUpload, onText: (text) => lines.push(text) });
  } catch (error) {
    if (error.name === "AbortError" || error instanceof ApiError || error instanceof SyntaxError) throw error;
    throw unreachable();
  }
  if (!answer.ok) throw await errorFrom(answer);
  lines.end();
}

/** replay() on this thread (the stream worker calls it). */
export async function replayHere(url, { signal, onMessage }) {
  let response;
  try {
    response = await fetch(url, { signal, headers: { Accept: "application/x-ndjson" } });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw unreachable();
  }
  if (!response.ok) throw await errorFrom(response);
  const lines = new LineReader(onMessage);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    lines.push(decoder.decode(value, { stream: true }));
  }
  lines.push(decoder.decode());
  lines.end();
}

/**
 * POST `body`, reporting the upload's progress, and hand a 2xx answer's text to
 * onText(piece) as it arrives; resolve with {ok: true} at its end, or with the whole error
 * answer as a Response. fetch() cannot report an upload's progress over HTTP/1.1, so this
 * is XMLHttpRequest. Its responseText is the whole answer so far, which the browser copies
 * on every read: read on a worker, that costs the page nothing.
 */
function postWatchingUpload(url, body, { signal, onUpload, onText }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    let read = 0;
    let ok = false;
    let failed = false;
    const push = () => {
      if (!ok || failed) return;
      const text = xhr.responseText;
      if (text.length === read) return;
      const piece = text.slice(read);
      read = text.length;
      try {
        onText(piece);
      } catch (error) {
        failed = true;
        xhr.abort();
        reject(error);
      }
    };
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/x-ndjson");
    xhr.overrideMimeType("application/x-ndjson; charset=utf-8");
    xhr.upload.onprogress = (event) => onUpload?.(event.loaded, event.lengthComputable ? event.total : 0);
    xhr.onreadystatechange = () => {
      if (xhr.readyState !== XMLHttpRequest.HEADERS_RECEIVED) return;
      onUpload?.(1, 1);
      ok = xhr.status >= 200 && xhr.status < 300;
    };
    xhr.onprogress = push;
    xhr.onload = () => {
      push();
      if (failed) return;
      if (ok) return resolve({ ok: true });
      const headers = new Headers();
      for (const line of xhr.getAllResponseHeaders().trim().split(/[\r\n]+/)) {
        const colon = line.indexOf(":");
        if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      resolve(new Response(xhr.responseText, { status: xhr.status, statusText: xhr.statusText, headers }));
    };
    xhr.onerror = () => failed || reject(new TypeError("network error"));
    xhr.onabort = () => failed || reject(replaced());
    if (signal?.aborted) return reject(replaced());
    signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

// --- the stream worker: reading and decoding a run's lines off the page's thread ----------------

let worker = null; // the Worker once started; false where there is none to be had
const jobs = new Map(); // job id -> {request, options, resolve, reject, heard}
let jobCount = 0;

function streamWorker() {
  if (worker !== null) return worker;
  worker = false;
  if (typeof Worker !== "function" || typeof document === "undefined") return worker;
  try {
    worker = new Worker(new URL("./stream-worker.js", import.meta.url), { type: "module" });
  } catch {
    return worker;
  }
  worker.addEventListener("message", ({ data }) => heard(data));
  // A worker that cannot start (its script refused, say): its jobs, and every later run,
  // are read on this thread instead.
  worker.addEventListener("error", () => {
    worker = false;
    for (const [id, job] of jobs) {
      jobs.delete(id);
      if (job.heard) job.reject(new ApiError("The page's stream reader stopped."));
      else here(job.request, job.options).then(job.resolve, job.reject);
    }
  });
  return worker;
}

/** Start the stream worker ahead of the first run, so that run does not wait for its script. */
export function startStreamWorker() {
  streamWorker();
}

const here = (request, options) =>
  request.op === "forward" ? forwardHere(request.url, request.image, request.name, options) : replayHere(request.url, options);

/** Run `request` on the stream worker: a Promise, or null where there is no worker. */
function inWorker(request, options) {
  const reader = streamWorker();
  if (!reader) return null;
  const { signal } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(replaced());
    const id = ++jobCount;
    jobs.set(id, { request, options, resolve, reject, heard: false });
    signal?.addEventListener(
      "abort",
      () => {
        if (!jobs.delete(id)) return;
        reader.postMessage({ id, abort: true });
        reject(replaced());
      },
      { once: true },
    );
    reader.postMessage({ id, ...request });
  });
}

/** A worker's report on job data.id: {message} (a line), {upload: [sent, total]}, {end},
 * or {error: {name, message, status}}. */
function heard(data) {
  const job = jobs.get(data.id);
  if (!job) return;
  job.heard = true;
  const settle = (error) => {
    jobs.delete(data.id);
    if (error) job.reject(error);
    else job.resolve();
  };
  if (data.upload) job.options.onUpload?.(...data.upload);
  else if (data.message) {
    try {
      job.options.onMessage(data.message);
    } catch (error) {
      if (worker) worker.postMessage({ id: data.id, abort: true });
      settle(error);
    }
  } else if (data.error) {
    const { name, message, status } = data.error;
    settle(name === "AbortError" ? replaced() : name === "ApiError" ? new ApiError(message, status) : new Error(message));
  } else if (data.end) settle();
}

export const runInputUrl = (runId) => `/api/runs/${encodeURIComponent(runId)}/input.png?scale=8`;

// --- channel views: top dataset patches and feature visualisations ------------------------------

const channelBase = (modelId, layer, channel) =>
  `/api/models/${encodeURIComponent(modelId)}/layers/${layer}/channels/${channel}`;

export const getChannelsInfo = (modelId, signal) =>
  getJson(`/api/models/${encodeURIComponent(modelId)}/channels`, signal);

export const getChannelExamples = (modelId, layer, channel, signal) =>
  getJson(`${channelBase(modelId, layer, channel)}/examples`, signal).then((body) => body.examples);

/** One channel's visualisation as a Blob; ApiError (status 503 when busy) otherwise. */
export async function getVisualizationPng(modelId, layer, channel, signal) {
  let response;
  try {
    response = await fetch(`${channelBase(modelId, layer, channel)}/visualization.png`, { signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("The server cannot be reached. Is it still running?");
  }
  if (!response.ok) throw await errorFrom(response);
  return response.blob();
}

/** Follow a visualisation as it forms: onMessage({type: "frame" | "done", ...}) per line. */
export async function streamVisualization(modelId, layer, channel, { signal, onMessage }) {
  let response;
  try {
    response = await fetch(`${channelBase(modelId, layer, channel)}/visualization/stream`, {
      signal,
      headers: { Accept: "application/x-ndjson" },
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("The server cannot be reached. Is it still running?");
  }
  if (!response.ok) throw await errorFrom(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  const emit = (line) => {
    if (!line.trim()) return;
    const message = JSON.parse(line);
    if (message.type === "error") throw new ApiError(message.detail || "The visualisation failed.");
    onMessage(message);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      emit(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
    }
  }
  emit(buffered + decoder.decode());
}
