/**
 * One run's life on the page: an image goes up (its upload a step of its own, with its
 * progress), the server's lines come back (run, one per layer, scores) and fill in the
 * run, and the run ends done, failed or replaced. A Run holds what arrived and says what
 * each line changed; app.js decides what to draw. No drawing here: `node --test tests/js`
 * drives a Run with the server's lines.
 */

import * as api from "./api.js";
import { shrinkPhoto } from "./shrink.js";
import { inputCanvas, inputVolume } from "./volume.js";

/** "Uploading 40%", "Computing conv3… 4 / 17", "Scoring…", "17 layers in 312 ms". */
export function progressText(run, layers) {
  if (run.error) return "Stopped: see the message";
  const total = run.layerCount;
  if (run.done) {
    // The server's own time where it said it: lines read on a worker reach the page in bursts.
    const server = run.replayOf ? undefined : run.scores?.elapsed_ms;
    const ms = Number.isFinite(server) ? server : run.finished - run.computeStarted;
    return `${total} layers in ${ms.toFixed(0)} ms`;
  }
  if (!run.id) {
    if (run.upload && run.upload.total > 0 && run.upload.sent < run.upload.total) {
      return `Uploading ${Math.floor((100 * run.upload.sent) / run.upload.total)}%`;
    }
    return run.replayOf ? "Reading the stored run…" : `Sending the image to ${run.model}…`;
  }
  const next = layers[run.layers.length];
  return next ? `Computing ${next.name}… ${run.layers.length} / ${total}` : "Scoring…";
}

export class Run {
  /**
   * model: the model's /api/models entry; file: the image (a Blob), or null for a replay;
   * info: {url (the original's picture), replay (a stored run id), sampleId, fromSession,
   * source ("file", "drawing", ...)}.
   */
  constructor(model, file, info = {}) {
    this.model = model.id;
    this.file = file;
    this.controller = new AbortController();
    this.layers = [];
    this.drawn = new Set();
    this.values = new Map();
    this.faces = new Map();
    this.layerCount = model.layers.length;
    this.classes = model.classes;
    this.trained = model.trained;
    this.started = performance.now();
    this.computeStarted = this.started;
    this.originalUrl = info.url || URL.createObjectURL(file);
    this.ownsUrl = !info.url;
    this.sampleId = info.sampleId || null;
    this.replayOf = info.replay || null;
    this.fromSession = Boolean(info.fromSession);
    this.isDrawing = info.source === "drawing";
    // A person's own picture may be a phone's 4 MB photo: it goes up shrunk (shrink.js).
    this.shrinks = ["file", "drop", "paste", "camera"].includes(info.source);
    this.upload = null; // {sent, total} bytes while the image goes up
    this.id = null;
    this.scores = null;
    this.done = false;
    this.error = null;
    this.expired = false;
    this.image = null;
  }

  /** Read one server line into the run; what it changed: {boxes: [index...], input,
   * layer (its index), scores}. Index -1 is the input's box. */
  receive(message) {
    if (message.type === "run") {
      this.id = message.id;
      this.computeStarted = performance.now();
      this.trained = message.trained;
      this.classes = message.classes;
      this.layerCount = message.layer_count;
      this.input = { shape: message.input.shape, data: api.decodeBase64(message.input.data) };
      this.inputVolume = inputVolume(this.input);
      return { boxes: [-1], input: true };
    }
    if (message.type === "layer") {
      this.layers[message.index] = { ...message, data: api.decodeBase64(message.data) };
      // The next box shows that it is being computed.
      return { boxes: [message.index, message.index + 1], layer: message.index };
    }
    if (message.type === "scores") {
      this.scores = message;
      return { boxes: [], scores: true };
    }
    return { boxes: [] };
  }

  /** The input as a picture (a canvas, made once). */
  get inputImage() {
    if (!this.image && this.input) this.image = inputCanvas(this.input);
    return this.image;
  }

  /** Layer `index` is on its way: the run has not ended and the layers before it arrived. */
  computing(index) {
    return !this.done && index >= 0 && index === this.layers.length;
  }

  /** Send the image (or read the stored run) and feed each line to onMessage(message). */
  async stream(onMessage, onUpload) {
    const reading = { signal: this.controller.signal, onMessage };
    if (this.replayOf) return api.replay(this.replayOf, reading);
    this.sent = this.shrinks ? await shrinkPhoto(this.file) : this.file;
    // The bytes that go up (benchmarks/page_speed.py reads them: a worker's upload is not
    // reported to the browser's devtools).
    performance.mark("convscope:image-sent", { detail: { bytes: this.sent.size } });
    return api.forward(this.model, this.sent, {
      ...reading,
      onUpload: (sent, total) => {
        this.upload = { sent, total };
        onUpload?.();
      },
    });
  }

  finish(error = null) {
    this.done = true;
    this.error = error;
    this.finished = performance.now();
  }

  /** Stop the stream and let go of the original's object URL. */
  dispose() {
    this.controller.abort();
    if (this.ownsUrl) URL.revokeObjectURL(this.originalUrl);
  }
}
