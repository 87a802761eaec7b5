/**
 * The HTTP API, and nothing else: every request the page makes goes through here.
 * forward() reads the NDJSON stream line by line as it arrives (fetch + ReadableStream +
 * TextDecoder), so the page can draw each layer the moment the server sends it.
 */

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

/** Base64 to bytes (uint8 volumes and images in the stream); bytes that readLines has
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

/** A stream line as the page uses it: a "uint8-split" layer's data becomes its bytes. */
export function decodeLine(message) {
  if (message.type === "layer" && message.encoding === "uint8-split") {
    const [h, w, d] = message.shape;
    return { ...message, encoding: "uint8", data: decodeSplit(message.data, h * w * d) };
  }
  return message;
}

/** What the page asks the stream routes for: the split volumes, which gzip to half. */
const STREAM_QUERY = "?encoding=uint8-split";

/**
 * POST an image to a model and call onMessage(object) for each NDJSON line as it arrives,
 * and onUpload(sent, total) as the image's bytes go up. Resolves when the stream ends;
 * rejects with ApiError carrying the server's sentence.
 */
export async function forward(modelId, image, { signal, onMessage, onUpload }) {
  const body = new FormData();
  body.append("image", image, image.name || "image.png");
  const url = `/api/models/${encodeURIComponent(modelId)}/forward${STREAM_QUERY}`;
  let response;
  try {
    response = await postWatchingUpload(url, body, { signal, onUpload });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("The server cannot be reached. Is it still running?");
  }
  if (!response.ok) throw await errorFrom(response);
  await readLines(response, onMessage);
}

/**
 * POST `body`, reporting the upload's progress, and resolve with a Response whose body
 * streams the answer as it arrives. fetch() cannot report an upload's progress over
 * HTTP/1.1, so this is XMLHttpRequest, its answer read as bytes (the x-user-defined
 * charset maps each byte to one character) and handed on as a ReadableStream.
 */
function postWatchingUpload(url, body, { signal, onUpload }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    let controller = null;
    let read = 0;
    const push = () => {
      const text = xhr.responseText;
      if (!controller || text.length === read) return;
      const bytes = new Uint8Array(text.length - read);
      for (let i = 0; i < bytes.length; i++) bytes[i] = text.charCodeAt(read + i) & 0xff;
      read = text.length;
      controller.enqueue(bytes);
    };
    const aborted = () => new DOMException("The run was replaced.", "AbortError");
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/x-ndjson");
    xhr.overrideMimeType("text/plain; charset=x-user-defined");
    xhr.upload.onprogress = (event) => onUpload?.(event.loaded, event.lengthComputable ? event.total : 0);
    xhr.onreadystatechange = () => {
      if (xhr.readyState !== XMLHttpRequest.HEADERS_RECEIVED) return;
      onUpload?.(1, 1);
      const stream = new ReadableStream({
        start(c) {
          controller = c;
        },
      });
      const headers = new Headers();
      for (const line of xhr.getAllResponseHeaders().trim().split(/[\r\n]+/)) {
        const colon = line.indexOf(":");
        if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      resolve(new Response(stream, { status: xhr.status, statusText: xhr.statusText, headers }));
    };
    xhr.onprogress = push;
    xhr.onload = () => {
      push();
      controller?.close();
    };
    xhr.onerror = () => {
      const error = new TypeError("network error");
      if (controller) controller.error(error);
      else reject(error);
    };
    xhr.onabort = () => {
      if (controller) controller.error(aborted());
      else reject(aborted());
    };
    if (signal?.aborted) return reject(aborted());
    signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

/** A stored run again, as the same lines forward() reads (GET /api/runs/{id}/stream). */
export async function replay(runId, { signal, onMessage }) {
  let response;
  try {
    response = await fetch(`/api/runs/${encodeURIComponent(runId)}/stream${STREAM_QUERY}`, {
      signal,
      headers: { Accept: "application/x-ndjson" },
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("The server cannot be reached. Is it still running?");
  }
  if (!response.ok) throw await errorFrom(response);
  await readLines(response, onMessage);
}

export const runInputUrl = (runId) => `/api/runs/${encodeURIComponent(runId)}/input.png?scale=8`;

async function readLines(response, onMessage) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  let scanned = 0; // buffered[0:scanned] has no newline: a 4 MB line is not rescanned per chunk
  const emit = (line) => {
    if (!line.trim()) return;
    const message = decodeLine(JSON.parse(line));
    if (message.type === "error") throw new ApiError(message.detail || "The run failed.");
    onMessage(message);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffered.indexOf("\n", scanned)) >= 0) {
      emit(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      scanned = 0;
    }
    scanned = buffered.length;
  }
  emit(buffered + decoder.decode());
}

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
