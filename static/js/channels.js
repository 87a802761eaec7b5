/**
 * What the selected channel responds to: the dataset patches that excite it most (hover or
 * focus one: the image it came from, its label, the value) and the image that excites it
 * most, formed live from the server's stream and replayable ("Watch it form"); and a
 * gallery of every channel's visualisation in the layer, each a button selecting that
 * slice. app.js calls show() when the layer or slice changes; nothing else.
 */

import * as api from "./api.js";
import { el } from "./dom.js";
import { formatValue } from "./volume.js";

const CHANNEL_KINDS = new Set(["conv", "relu", "pool"]);
const START_DELAY_MS = 250; // arrow keys move fast: start a visualisation once they rest
const REPLAY_MS = 80; // the least time a frame stays up
const REPLAY_SPAN_MS = 2400; // a replay of a few stored frames lasts as long as one of many
const GALLERY_PARALLEL = 2;

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    });
  });

/** Milliseconds each of `count` frames stays up in a replay. */
export function replayInterval(count) {
  return Math.max(REPLAY_MS, Math.round(REPLAY_SPAN_MS / Math.max(count, 1)));
}

/** "test/cat/0042.jpg · cat · 3.21 at row 4, col 7": what a patch's hover says. */
export function exampleText(example) {
  return `${example.path} · ${example.label} · ${formatValue(example.value)} at row ${example.row}, col ${example.col}`;
}

export class ChannelView {
  constructor(root, { onSelectSlice }) {
    this.root = root;
    this.onSelectSlice = onSelectSlice;
    this.key = null;
    this.galleryKey = null;
    this.controller = null;
    this.galleryController = null;
    this.frames = [];
    this.replayTimer = null;
    this.build();
  }

  build() {
    this.title = el("h3", "channel-title", "Channel");
    this.title.id = "channel-title";
    this.visImage = el("img", "vis-image pixelated");
    this.visImage.id = "vis-image";
    this.visImage.alt = "";
    this.visCaption = el("figcaption", "hint", "");
    this.visCaption.id = "vis-caption";
    this.replay = el("button", "button button-small", "Watch it form");
    this.replay.type = "button";
    this.replay.id = "vis-replay";
    this.replay.disabled = true;
    this.replay.addEventListener("click", () => this.startReplay());
    const vis = el("figure", "channel-vis");
    vis.append(el("h4", "", "Image that excites it most"), this.visImage, this.visCaption, this.replay);

    this.examplesGrid = el("ol", "examples-grid");
    this.examplesGrid.id = "examples-grid";
    this.examplesGrid.setAttribute("aria-label", "Top dataset patches, largest activation first");
    this.examplesNote = el("p", "hint examples-note", "");
    this.examplesNote.id = "examples-note";
    this.readout = el("output", "readout", "Hover a patch: the image it came from, its label, the value.");
    this.readout.id = "example-readout";
    const examples = el("div", "channel-examples");
    examples.append(el("h4", "", "Dataset patches that excite it most"), this.examplesGrid, this.examplesNote, this.readout);

    const body = el("div", "channel-body");
    body.append(vis, examples);
    this.gallery = el("details", "channel-gallery");
    this.gallery.id = "channel-gallery";
    const summary = el("summary", "", "Every channel of this layer");
    this.galleryGrid = el("div", "gallery-grid");
    this.galleryGrid.id = "gallery-grid";
    this.gallery.append(summary, this.galleryGrid);
    this.gallery.addEventListener("toggle", () => this.gallery.open && this.fillGallery());
    const hint = el(
      "p",
      "hint",
      "What this channel responds to: where in the test images it fires most, and an image made by gradient ascent to make it fire.",
    );
    this.root.replaceChildren(this.title, hint, body, this.gallery);
  }

  /** Show channel `slice` of `layer` (an entry of /api/models) of model `modelId`. */
  show(modelId, layer, slice) {
    if (!layer || !CHANNEL_KINDS.has(layer.kind)) {
      this.root.hidden = true;
      this.key = null;
      this.controller?.abort();
      return;
    }
    this.root.hidden = false;
    this.modelId = modelId;
    this.layer = layer;
    this.slice = slice;
    this.markGallery();
    const key = `${modelId}/${layer.index}/${slice}`;
    if (key === this.key) return;
    this.key = key;
    this.controller?.abort();
    this.controller = new AbortController();
    this.title.textContent = `Channel ${slice} of ${layer.name}`;
    this.loadExamples(modelId, layer.index, slice, this.controller.signal);
    this.loadVisualization(modelId, layer.index, slice, this.controller.signal);
    if (this.gallery.open) this.fillGallery();
  }

  async loadExamples(modelId, index, channel, signal) {
    this.examplesGrid.replaceChildren();
    this.examplesNote.textContent = "Loading…";
    try {
      const examples = await api.getChannelExamples(modelId, index, channel, signal);
      this.examplesNote.textContent = "";
      this.examplesGrid.replaceChildren(...examples.map((example) => this.exampleTile(example)));
    } catch (error) {
      if (error.name === "AbortError") return;
      this.examplesNote.textContent = error.message;
      this.examplesGrid.replaceChildren();
    }
  }

  exampleTile(example) {
    const item = el("li", "example");
    const image = el("img", "example-image pixelated");
    image.src = example.image;
    image.alt = `${example.label}, value ${formatValue(example.value)}`;
    image.title = exampleText(example);
    image.tabIndex = 0;
    const say = () => {
      this.readout.textContent = exampleText(example);
    };
    image.addEventListener("pointerenter", say);
    image.addEventListener("focus", say);
    item.append(image, el("span", "example-value", formatValue(example.value)));
    return item;
  }

  async loadVisualization(modelId, index, channel, signal) {
    this.stopReplay();
    this.frames = [];
    this.replay.disabled = true;
    this.visImage.removeAttribute("src");
    this.visCaption.textContent = "Waiting…";
    this.root.dataset.vis = "waiting";
    try {
      await sleep(START_DELAY_MS, signal);
      await api.streamVisualization(modelId, index, channel, {
        signal,
        onMessage: (message) => {
          if (message.type === "frame") {
            this.frames.push(message);
            this.visImage.src = message.image;
            this.visCaption.textContent = `forming: step ${message.step}, activation ${formatValue(message.activation)}`;
            this.root.dataset.vis = "forming";
          } else if (message.type === "done") {
            this.done = message;
            this.visImage.alt = `Feature visualisation of channel ${channel}`;
            this.visCaption.textContent = `mean activation ${formatValue(message.activation)} (random start ${formatValue(message.start_activation)}) after ${message.steps} steps`;
            this.replay.disabled = this.frames.length < 2;
            this.root.dataset.vis = "done";
          }
        },
      });
    } catch (error) {
      if (error.name === "AbortError") return;
      this.visCaption.textContent = error.message;
      this.root.dataset.vis = "error";
    }
  }

  startReplay() {
    this.stopReplay();
    const frames = this.frames;
    let k = 0;
    this.replayTimer = setInterval(() => {
      const frame = frames[k];
      this.visImage.src = frame.image;
      this.visCaption.textContent = `step ${frame.step}, activation ${formatValue(frame.activation)}`;
      k += 1;
      if (k >= frames.length) {
        this.stopReplay();
        if (this.done) this.visCaption.textContent += ` (done after ${this.done.steps} steps)`;
      }
    }, replayInterval(frames.length));
  }

  stopReplay() {
    clearInterval(this.replayTimer);
    this.replayTimer = null;
  }

  markGallery() {
    for (const button of this.galleryGrid.children) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.channel) === this.slice));
    }
  }

  /** Every channel's visualisation, a couple at a time (each may be computed on demand). */
  fillGallery() {
    const key = `${this.modelId}/${this.layer.index}`;
    if (key === this.galleryKey) return;
    this.galleryKey = key;
    this.galleryController?.abort();
    const controller = new AbortController();
    this.galleryController = controller;
    const depth = this.layer.shape[2];
    const buttons = Array.from({ length: depth }, (_, d) => {
      const button = el("button", "gallery-tile");
      button.type = "button";
      button.dataset.channel = d;
      button.title = `Channel ${d}`;
      button.append(el("img", "pixelated"), el("span", "gallery-label", String(d)));
      button.addEventListener("click", () => this.onSelectSlice(d));
      return button;
    });
    this.galleryGrid.replaceChildren(...buttons);
    this.markGallery();
    let next = 0;
    const { modelId } = this;
    const index = this.layer.index;
    const worker = async () => {
      while (next < depth && !controller.signal.aborted) {
        const d = next++;
        for (;;) {
          try {
            const blob = await api.getVisualizationPng(modelId, index, d, controller.signal);
            const image = buttons[d].querySelector("img");
            image.src = URL.createObjectURL(blob);
            image.onload = () => URL.revokeObjectURL(image.src);
            buttons[d].classList.add("loaded");
            break;
          } catch (error) {
            if (error.name === "AbortError") return;
            if (error.status !== 503) {
              buttons[d].title = error.message;
              break;
            }
            await sleep(1000, controller.signal).catch(() => {});
          }
        }
      }
    };
    for (let i = 0; i < GALLERY_PARALLEL; i++) worker();
  }
}
