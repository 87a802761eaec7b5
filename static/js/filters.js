/**
 * The filters of a conv layer (and the weights of an fc layer), drawn in the page from the
 * exact float32 weights (weights.npy), laid out to fit the panel, with each number on hover.
 *
 * A first layer (each filter 1 or 3 deep) shows every filter, a colour picture for RGB; a
 * deeper one shows one filter at a time, the one that makes the selected depth slice, as
 * one tile per depth slice of the volume it reads (fc: the selected output's weights, one
 * tile per depth slice of its input). A deep layer's filter is fetched alone (conv6's is
 * 4.6 KB, the whole layer 590 KB), and the last few are kept.
 */

import { getWeightsArray } from "./api.js";
import { COLORMAPS, cssGradient } from "./colormaps.js";
import { $, el } from "./dom.js";
import { float32Text, shortValue } from "./numbers.js";

const KEEP = 16; // fetched weights kept, the oldest dropped first
const MAP = "coolwarm";

const isConv = (layer) => layer.kind === "conv" || layer.kind === "conv2d";

/**
 * What to draw for `layer`, reading a volume of shape `before` [h, w, d]:
 * {mode: "all" | "one", count, channels, kh, kw}. In "all" mode a tile is one filter
 * (kh x kw, `channels` colours); in "one" mode a tile is one input depth slice of the
 * selected filter. null for layers without weights.
 */
export function filterPlan(layer, [h, w, d]) {
  const count = layer.shape[2];
  if (isConv(layer)) {
    const [kh, kw] = layer.kernel || [layer.size, layer.size];
    const channels = layer.groups > 1 ? d / layer.groups : d;
    return { mode: channels === 1 || channels === 3 ? "all" : "one", count, channels, kh, kw };
  }
  if (layer.kind === "fc") return { mode: "one", count, channels: d, kh: h, kw: w };
  return null;
}

/** Tiles for `plan` from weights `data` (all filters, or the selected one): each
 * {label, width, height, values(row, col) -> number[] (one per colour)}. */
export function filterTiles(plan, data, filter) {
  const { mode, count, channels, kh, kw } = plan;
  const size = kh * kw;
  if (mode === "all") {
    return Array.from({ length: count }, (_, f) => ({
      label: String(f),
      filter: f,
      width: kw,
      height: kh,
      values: (r, c) => Array.from({ length: channels }, (_, ch) => data[(f * channels + ch) * size + r * kw + c]),
    }));
  }
  return Array.from({ length: channels }, (_, ch) => ({
    label: String(ch),
    filter,
    channel: ch,
    width: kw,
    height: kh,
    values: (r, c) => [data[ch * size + r * kw + c]],
  }));
}

function maxAbs(data) {
  let m = 0;
  for (const v of data) m = Math.max(m, Math.abs(v));
  return m || 1;
}

function paintTile(canvas, tile, limit) {
  canvas.width = tile.width;
  canvas.height = tile.height;
  const image = new ImageData(tile.width, tile.height);
  const lut = COLORMAPS[MAP].lut;
  for (let r = 0; r < tile.height; r++) {
    for (let c = 0; c < tile.width; c++) {
      const values = tile.values(r, c);
      const i = 4 * (r * tile.width + c);
      if (values.length === 3) {
        // RGB: what the filter looks for, as a colour (grey is zero).
        for (let ch = 0; ch < 3; ch++) image.data[i + ch] = Math.round((values[ch] / limit + 1) * 127.5);
      } else {
        const q = Math.max(0, Math.min(255, Math.round((values[0] / limit + 1) * 127.5)));
        image.data.set(lut.subarray(3 * q, 3 * q + 3), i);
      }
      image.data[i + 3] = 255;
    }
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
}

export class FilterView {
  constructor() {
    this.section = $("filters");
    this.grid = $("filters-grid");
    this.readout = $("filters-readout");
    this.cache = new Map(); // "model/index/filter" -> Promise<{shape, data}>
    this.shown = null; // {key, plan, tiles, layer, modelId, filter}
    this.want = null;
    this.grid.addEventListener("pointermove", (event) => this.hoverAt(event));
    this.grid.addEventListener("pointerdown", (event) => this.hoverAt(event)); // a tap
    this.grid.addEventListener("pointerleave", (event) => {
      if (event.pointerType === "mouse") this.say(null);
    });
  }

  /** The weights of `layer` of `modelId`, reading a volume of shape `before`; `slice` the
   * selected depth slice of the layer (the filter that makes it). `classes` name fc rows. */
  show({ layer, before, modelId, slice, classes }) {
    const plan = filterPlan(layer, before);
    this.section.hidden = !plan;
    if (!plan) {
      this.want = null;
      return;
    }
    this.want = { layer, before, modelId, plan, classes, slice: Math.min(slice, plan.count - 1) };
    this.update();
  }

  /** The selected depth slice changed: a deep layer shows that slice's filter. */
  setSlice(slice) {
    if (!this.want || this.want.slice === slice) return;
    this.want.slice = Math.min(slice, this.want.plan.count - 1);
    if (this.want.plan.mode === "one") this.update();
    else this.mark();
  }

  update() {
    const want = this.want;
    const filter = want.plan.mode === "all" ? null : want.slice;
    const key = `${want.modelId}/${want.layer.index}/${filter}`;
    this.caption(want, filter);
    if (this.shown?.key === key) {
      this.mark();
      return;
    }
    this.grid.setAttribute("aria-busy", "true");
    this.load(key, want, filter)
      .then(({ data }) => {
        if (this.want !== want || (want.plan.mode === "one" && want.slice !== filter)) return;
        this.draw(key, want, filter, data);
      })
      .catch((error) => {
        if (this.want === want) this.readout.textContent = error.message;
      })
      .finally(() => this.grid.removeAttribute("aria-busy"));
  }

  load(key, want, filter) {
    if (!this.cache.has(key)) {
      const promise = getWeightsArray(want.modelId, want.layer.index, filter);
      promise.catch(() => this.cache.delete(key));
      this.cache.set(key, promise);
      if (this.cache.size > KEEP) this.cache.delete(this.cache.keys().next().value);
    }
    return this.cache.get(key);
  }

  caption({ layer, plan, before, classes }, filter) {
    const { count, channels, kh, kw } = plan;
    const [h, w, d] = before;
    const conv = isConv(layer);
    const name = classes?.[filter];
    $("filters-title").textContent =
      plan.mode === "all"
        ? `Filters of ${layer.name}`
        : conv
          ? `Filter ${filter} of ${layer.name}`
          : `Weights of ${layer.name}'s output ${filter}${name ? ` (${name})` : ""}`;
    const hover = "Hover (or tap) a square for its number.";
    let text;
    if (plan.mode === "all") {
      text =
        `${count} filters, each ${kh}×${kw}×${channels}: filter k makes depth slice k of this layer ` +
        `by sliding over the volume before it. ${channels === 3 ? "Each is drawn as a small colour picture (grey is 0)." : "Blue < 0 < red."} ${hover}`;
    } else if (conv) {
      text =
        `Filter ${filter} of ${count}, ${kh}×${kw}×${channels}: it makes depth slice ${filter} of this layer (the one selected; ↑ ↓ choose another). ` +
        `One ${kh}×${kw} tile per depth slice of the ${h}×${w}×${d} volume before it, blue < 0 < red. ${hover}`;
    } else {
      text =
        `What output ${filter}${name ? ` (${name})` : ""} of ${count} adds up (the selected one; ↑ ↓ choose another): ` +
        `one ${h}×${w} tile per depth slice of the ${h}×${w}×${d} volume before it, blue < 0 < red. ${hover}`;
    }
    $("filters-caption").textContent = text;
  }

  draw(key, want, filter, data) {
    const tiles = filterTiles(want.plan, data, filter);
    const limit = maxAbs(data);
    const { kh, kw, mode } = want.plan;
    // About 14 px a weight (a 3x3 filter 42 px), smaller when there are many tiles.
    const side = Math.max(30, Math.min(tiles.length > 64 ? 40 : 96, 14 * Math.max(kh, kw)));
    this.grid.style.setProperty("--filter-tile", `${side}px`);
    this.grid.style.setProperty("--filter-aspect", `${kw} / ${kh}`);
    this.grid.classList.toggle("one-filter", mode === "one");
    // Each tile a picture (a PNG painted on one canvas), not a canvas of its own: a deep
    // layer's 512 tile canvases stalled the page when it was shown (BENCHMARKS.md).
    const painter = document.createElement("canvas");
    this.grid.replaceChildren(
      ...tiles.map((tile, i) => {
        const figure = el("figure", "filter-tile");
        figure.dataset.tile = i;
        const image = el("img", "pixelated");
        image.alt = "";
        paintTile(painter, tile, limit);
        image.src = painter.toDataURL();
        figure.append(image, el("figcaption", "", tile.label));
        return figure;
      }),
    );
    this.grid.setAttribute(
      "aria-label",
      mode === "all" ? `The ${tiles.length} filters of ${want.layer.name}` : `Filter ${filter} of ${want.layer.name}, one tile per input depth slice`,
    );
    const bar = $("filters-colorbar");
    bar.hidden = tiles[0] && tiles[0].values(0, 0).length === 3;
    bar.querySelector(".colorbar-ramp").style.setProperty("background-image", cssGradient(MAP));
    bar.querySelector(".colorbar-min").textContent = shortValue(-limit);
    bar.querySelector(".colorbar-zero").textContent = "0";
    bar.querySelector(".colorbar-max").textContent = shortValue(limit);
    this.shown = { key, tiles, want, filter };
    this.section.dataset.filter = filter ?? "all";
    this.say(null);
    this.mark();
  }

  /** In "all" mode, outline the filter that makes the selected slice. */
  mark() {
    if (!this.shown || this.shown.want !== this.want) return;
    const all = this.want.plan.mode === "all";
    for (const tile of this.grid.children) {
      tile.classList.toggle("selected", all && Number(tile.dataset.tile) === this.want.slice);
    }
  }

  hoverAt(event) {
    const figure = event.target.closest?.(".filter-tile");
    const picture = figure?.querySelector("img");
    if (!picture || !this.shown || event.target !== picture) {
      this.say(null);
      return;
    }
    const tile = this.shown.tiles[Number(figure.dataset.tile)];
    const rect = picture.getBoundingClientRect();
    const col = Math.floor(((event.clientX - rect.left) / rect.width) * tile.width);
    const row = Math.floor(((event.clientY - rect.top) / rect.height) * tile.height);
    if (row < 0 || col < 0 || row >= tile.height || col >= tile.width) return;
    this.say({ tile, row, col });
  }

  say(at) {
    const out = this.readout;
    if (!at) {
      out.replaceChildren("Hover (or tap) a square to read its weight.");
      delete out.dataset.value;
      return;
    }
    const { tile, row, col } = at;
    const values = tile.values(row, col);
    const where =
      tile.channel === undefined
        ? `filter ${tile.filter}, row ${row}, col ${col}`
        : `${this.shown.filter === null ? "" : `${isConv(this.shown.want.layer) ? "filter" : "output"} ${tile.filter}, `}input slice ${tile.channel}, row ${row}, col ${col}`;
    const text = values.length === 3 ? values.map((v, i) => `${"RGB"[i]} ${shortValue(v)}`).join("  ") : shortValue(values[0]);
    const value = el("strong", "readout-value", text);
    value.title = values.map(float32Text).join(", ");
    out.replaceChildren(el("span", "readout-where", where), " = ", value);
    out.dataset.value = values.map(String).join(",");
  }
}
