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

/** Base64 to bytes (uint8 volumes and images in the stream). */
export function decodeBase64(text) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * POST an image to a model and call onMessage(object) for each NDJSON line as it arrives.
 * Resolves when the stream ends; rejects with ApiError carrying the server's sentence.
 */
export async function forward(modelId, image, { signal, onMessage }) {
  const body = new FormData();
  body.append("image", image, image.name || "image.png");
  let response;
  try {
    response = await fetch(`/api/models/${encodeURIComponent(modelId)}/forward`, {
      method: "POST",
      body,
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

/** A stored run again, as the same lines forward() reads (GET /api/runs/{id}/stream). */
export async function replay(runId, { signal, onMessage }) {
  let response;
  try {
    response = await fetch(`/api/runs/${encodeURIComponent(runId)}/stream`, {
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
    const message = JSON.parse(line);
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
