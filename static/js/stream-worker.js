/**
 * The page's stream reader, a dedicated worker (same origin, so the page's
 * `script-src 'self'` admits it). A run's answer is one NDJSON line per layer, 4 MB each for
 * a 224x224x64 volume: reading it from the XMLHttpRequest, parsing it and decoding its
 * bytes (api.js) happen here, and each decoded line goes to the page with its bytes
 * transferred, not copied, so the page's own thread only draws.
 *
 * In: {id, op: "forward", url, image, name} | {id, op: "replay", url} | {id, abort: true}.
 * Out: {id, message} per line, {id, upload: [sent, total]}, then {id, end: true} or
 * {id, error: {name, message, status}}.
 */

import { forwardHere, replayHere } from "./api.js";

const running = new Map(); // job id -> AbortController

/** The buffers of a line's byte arrays (a layer's volume, the run's input). */
function buffersOf(message) {
  const arrays = [message.data, message.input?.data].filter((a) => a instanceof Uint8Array);
  return arrays.map((a) => a.buffer);
}

self.addEventListener("message", async ({ data }) => {
  const { id } = data;
  if (data.abort) {
    running.get(id)?.abort();
    running.delete(id);
    return;
  }
  const controller = new AbortController();
  running.set(id, controller);
  const options = {
    signal: controller.signal,
    onMessage: (message) => self.postMessage({ id, message }, buffersOf(message)),
    onUpload: (sent, total) => self.postMessage({ id, upload: [sent, total] }),
  };
  try {
    if (data.op === "forward") await forwardHere(data.url, data.image, data.name, options);
    else await replayHere(data.url, options);
    self.postMessage({ id, end: true });
  } catch (error) {
    self.postMessage({ id, error: { name: error.name, message: error.message, status: error.status || 0 } });
  } finally {
    running.delete(id);
  }
});
