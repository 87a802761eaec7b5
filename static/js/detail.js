/**
 * The selected layer in detail: its facts, every depth slice as a tile, one slice enlarged
 * (hover or arrow keys read a cell's exact value and outline its receptive field on the
 * input), the volume in 3D, and the filters of conv and fc layers (filters.js).
 */

import { VolumeView } from "./box3d.js";
import { COLORMAPS, cssGradient } from "./colormaps.js";
import { $, clamp, el, fitCanvas, onTouch, shapeText } from "./dom.js";
import { cellValue } from "./exact.js";
import { FilterView } from "./filters.js";
import { isClassVector, kindFamily, lesson, showsBefore } from "./kinds.js";
import { float32Text, shortValue } from "./numbers.js";
import { shownClasses } from "./scores.js";
import { colorScale, drawPixelated, formatValue, sliceCanvas, thumbCanvas, thumbSize, valueOf } from "./volume.js";

const EMPTY =
  "Pick a sample, upload, paste, drop, photograph or draw an image: each layer's volume appears above as it is computed.";
const TILE_GAP = 3;

/** The input pixels neuron (row, col) sees, clipped: {top, left, bottom, right}, inclusive. */
export function receptiveBox(rf, row, col, height, width) {
  const half = (rf.size - 1) / 2;
  const top = Math.ceil(rf.start + row * rf.jump - half);
  const left = Math.ceil(rf.start + col * rf.jump - half);
  return {
    top: Math.max(top, 0),
    left: Math.max(left, 0),
    bottom: Math.min(top + rf.size - 1, height - 1),
    right: Math.min(left + rf.size - 1, width - 1),
  };
}

/** The fewest columns (largest tiles, at most 96 px) that show all `count` slices in the
 * grid's box; past 24 px tiles the grid scrolls instead. */
function tileColumns(grid, count) {
  const width = grid.clientWidth - 8;
  const height = Number.parseFloat(getComputedStyle(grid).maxHeight) - 8 || 300;
  for (let columns = 1; columns <= count; columns++) {
    const tile = (width - TILE_GAP * (columns - 1)) / columns;
    if (tile > 96) continue;
    if (tile < 24 || Math.ceil(count / columns) * (tile + TILE_GAP) <= height) return columns;
  }
  return Math.max(1, Math.floor(width / 27));
}

const sameOptions = (a, b) => a.scale === b.scale && a.sequential === b.sequential && a.diverging === b.diverging;

/** The slices a task may paint before it yields to the page (a frame is 16 ms). */
const PAINT_BUDGET_MS = 8;
/** Slices kept at full size for the enlarged view, per layer shown. */
const FULL_KEPT = 8;

const blankCanvases = (count, width, height) =>
  Array.from({ length: count }, () => {
    const canvas = document.createElement("canvas");
    [canvas.width, canvas.height] = [width, height];
    return canvas;
  });

/**
 * One volume's slices as pictures, each coloured (colorScale) when first wanted: `thumbs`,
 * one canvas per slice of at most THUMB_SIDE pixels a side, off the document (the 3D view's
 * planes, and what the tiles show); the tiles' pictures all on one canvas, `sheet`, laid
 * over the tile buttons and letting their clicks through (a canvas the page changes costs
 * each frame a copy of its own: 64 tile canvases made a 224x224x64 layer's frames slow,
 * BENCHMARKS.md); and fullSize(d), slice d at its own size for the enlarged view. A small
 * volume's thumbs are its slices.
 */
class SliceImages {
  constructor(volume, options, sheet) {
    this.volume = volume;
    this.options = options;
    this.sheet = sheet;
    this.scales = new Map();
    this.painted = new Set();
    this.full = new Map();
    this.places = [];
    const [h, w, depth] = volume.shape;
    const [th, tw] = thumbSize(h, w);
    this.thumbs = blankCanvases(depth, tw, th);
  }

  scale(d) {
    const layerWide = this.options.scale === "layer";
    const key = layerWide ? 0 : d;
    if (!this.scales.has(key)) this.scales.set(key, colorScale(this.volume, key, this.options));
    return this.scales.get(key);
  }

  thumb(d) {
    if (!this.painted.has(d)) {
      this.painted.add(d);
      thumbCanvas(this.volume, d, this.scale(d).palette, this.thumbs[d]);
      this.drawTile(d);
    }
    return this.thumbs[d];
  }

  /** Where each tile's picture goes on the sheet: inside the tile's border, in CSS px
   * from the grid's top left. The sheet is sized to the grid's content and repainted. */
  place(grid, tiles) {
    const key = `${grid.clientWidth}x${grid.scrollHeight}`;
    if (key === this.placedAt) return;
    // Measured without the sheet, whose own size is part of the grid's scrolled content.
    this.sheet.style.width = this.sheet.style.height = "0px";
    this.placedAt = `${grid.clientWidth}x${grid.scrollHeight}`;
    this.places = tiles.map((tile) => [tile.offsetLeft + tile.clientLeft, tile.offsetTop + tile.clientTop, tile.clientWidth, tile.clientHeight]);
    const [width, height] = [grid.scrollWidth, grid.scrollHeight];
    this.sheet.style.width = `${width}px`;
    this.sheet.style.height = `${height}px`;
    const ctx = fitCanvas(this.sheet, width, height);
    ctx.clearRect(0, 0, width, height);
    for (const d of this.painted) this.drawTile(d);
  }

  drawTile(d) {
    const place = this.places[d];
    if (!place) return;
    const dpr = window.devicePixelRatio || 1;
    const ctx = this.sheet.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    drawPixelated(ctx, this.thumbs[d], ...place);
  }

  fullSize(d) {
    const [h, w] = this.volume.shape;
    if (thumbSize(h, w)[0] === h) return this.thumb(d);
    if (!this.full.has(d)) {
      if (this.full.size >= FULL_KEPT) this.full.delete(this.full.keys().next().value);
      this.full.set(d, sliceCanvas(this.volume, d, this.scale(d).palette));
    }
    return this.full.get(d);
  }

  /** Paint every thumb, slice `first` and those after it first, PAINT_BUDGET_MS at a time;
   * onPainted() after the first task's share and after the last. Returns {cancel}. */
  paintAll(first, onPainted) {
    const depth = this.thumbs.length;
    const order = Array.from({ length: depth }, (_, i) => (first + i) % depth);
    let next = 0;
    let timer = 0;
    let steps = 0;
    const step = () => {
      const until = performance.now() + PAINT_BUDGET_MS;
      do this.thumb(order[next++]);
      while (next < depth && performance.now() < until);
      if (next < depth) timer = setTimeout(step, 0);
      if (++steps === 1 || next === depth) onPainted();
    };
    step();
    return { cancel: () => clearTimeout(timer) };
  }
}

/** The values of a 1x1xD volume (from its quantised stream data). */
const vectorValues = (volume) => [...volume.data].map((q) => valueOf(volume, q));

/** A row per class of `listed`: its name, a bar (from zero, so negative scores point left)
 * and its value; rows[d] for class d, undefined for a class not listed. */
function classRows(values, classes, kind, listed) {
  const probabilities = kindFamily(kind) === "softmax";
  const limit = Math.max(...values.map(Math.abs)) || 1;
  const signed = !probabilities && values.some((v) => v < 0);
  const rows = [];
  for (const d of listed) rows[d] = classRow(values[d], classes[d], { probabilities, limit, signed });
  return rows;
}

function classRow(v, name, { probabilities, limit, signed }) {
  const bar = el("span", signed ? "class-bar signed" : "class-bar");
  const fill = el("span", v < 0 ? "class-fill negative" : "class-fill");
  const share = probabilities ? v : Math.abs(v) / limit;
  fill.style.setProperty("--share", String(signed ? share / 2 : share));
  bar.append(fill);
  const value = probabilities ? `${(100 * v).toFixed(1)}%` : formatValue(v);
  return [el("span", "tile-index", name), bar, el("span", "class-value", value)];
}

export class LayerDetail {
  /** onSelectSlice(d): a tile was chosen; onHover(): the inspected cell moved;
   * onPick(row, col): a cell was clicked, or Enter pressed on it (on a touch screen, a
   * cell tapped a second time); onTurn(angle): the 3D view was turned. */
  constructor({ onSelectSlice, onHover, onPick = () => {}, onTurn = () => {} }) {
    this.onSelectSlice = onSelectSlice;
    this.onHover = onHover;
    this.onPick = onPick;
    this.pinned = null; // {row, col}: the neuron whose arithmetic is shown (setPinned)
    this.shown = null; // {index, layer, volume, images (SliceImages), tiles, classes, before, options}
    this.painting = null; // the shown volume's thumbs being painted: {cancel}
    this.hover = null; // {row, col}
    this.run = null;
    this.slice = 0;
    this.filters = new FilterView();
    this.exactDigits = false;
    this.addExactToggle();
    this.volume3d = new VolumeView($("volume-canvas"), { onTurn });
    const canvas = $("slice-canvas");
    canvas.addEventListener("pointermove", (event) => {
      if (event.pointerType === "mouse") this.hoverAt(event);
    });
    canvas.addEventListener("pointerleave", (event) => {
      if (event.pointerType === "mouse" && document.activeElement !== canvas) this.setHover(null);
    });
    canvas.addEventListener("keydown", (event) => this.onKey(event));
    canvas.addEventListener("click", (event) => {
      // A tap shows the cell's value; tapping the same cell again opens its arithmetic.
      const before = this.hover;
      this.hoverAt(event);
      if (!this.hover) return;
      const again = before?.row === this.hover.row && before?.col === this.hover.col;
      if (event.pointerType === "mouse" || !event.pointerType || again) this.onPick(this.hover.row, this.hover.col);
    });
    canvas.addEventListener("blur", () => {
      if (!onTouch()) this.setHover(null);
    });
    const toggle = $("lesson-toggle");
    let hidden = false;
    try {
      hidden = localStorage.getItem("convscope.lessons") === "0";
    } catch {
      // No storage: the words show.
    }
    const showWords = (on) => {
      toggle.setAttribute("aria-pressed", String(on));
      $("layer-lesson").hidden = !on;
      try {
        localStorage.setItem("convscope.lessons", on ? "1" : "0");
      } catch {
        // The toggle still works for this page.
      }
    };
    toggle.addEventListener("click", () => showWords(toggle.getAttribute("aria-pressed") !== "true"));
    showWords(!hidden);
    $("spread-range").addEventListener("input", (event) => this.volume3d.setSpread(Number(event.target.value)));
    $("volume-reset").addEventListener("click", () => this.volume3d.reset());
  }

  /**
   * Everything about `layer` (from /api/models); `streamed` is its volume once it arrived,
   * `waiting` whether a run is still on its way, `before` the shape of the volume it reads.
   */
  render({ layer, streamed, previous, run, waiting, before, input, modelId, modelClasses, slice, options }) {
    $("detail-title").replaceChildren(
      el("span", `kind-tag kind-${layer.kind} family-${kindFamily(layer.kind)}`, layer.name),
      el("span", "layer-summary", layer.summary || layer.kind.toUpperCase()),
    );
    $("layer-lesson").textContent = lesson(layer, before);
    this.renderFacts(layer, streamed, input, Boolean(run?.replayOf));
    this.filters.show({ layer, before, modelId, slice, classes: run?.classes || modelClasses });
    $("detail-grid").hidden = !streamed;
    document.querySelector(".detail-controls").hidden = !streamed;
    const empty = $("detail-empty");
    if (!streamed) {
      empty.hidden = false;
      empty.textContent = waiting ? `${layer.name} is on its way…` : EMPTY;
      this.painting?.cancel();
      this.shown = null;
      return;
    }
    empty.hidden = true;
    const classes = isClassVector(layer, run.classes) ? run.classes : null;
    // Softmax's numbers are the scores' exact probabilities once they came; else the stream's.
    const exact = kindFamily(layer.kind) === "softmax" && run.scores?.probabilities;
    // RELU and POOL beside the volume they read: the same slice before and after.
    const shownBefore = showsBefore(layer.kind) && previous?.streamed ? previous : null;
    const grid = $("slice-grid");
    const columns = classes ? 1 : tileColumns(grid, streamed.shape[2]);
    grid.style.setProperty("--columns", classes ? "auto-fill" : columns);
    const same = this.shown?.volume === streamed && sameOptions(this.shown.options, options) && !classes;
    if (same) {
      // Drawn already (the run only ended, say): keep the tiles, painted or being painted.
      this.shown.before = shownBefore;
      return;
    }
    this.painting?.cancel();
    const depth = streamed.shape[2];
    const sheet = el("canvas", "tile-sheet pixelated");
    sheet.setAttribute("aria-hidden", "true");
    const images = new SliceImages(streamed, options, sheet);
    // A 1000-class vector lists its 10 largest (and the selected class), as the scores do.
    const values = classes && (exact || vectorValues(streamed));
    const largest = classes && shownClasses(values);
    const listed = classes && [...new Set([...largest, ...(slice < depth ? [slice] : [])])];
    const rows = classes && classRows(values, classes, layer.kind, listed);
    grid.classList.toggle("labelled", Boolean(classes));
    // Ten numbers read as the bars beside; the enlarged "slice" is then a single cell.
    document.querySelector(".focus-views").classList.toggle("class-vector", Boolean(classes));
    const tiles = images.thumbs.map((_, d) => {
      if (rows && !rows[d]) return null;
      const tile = el("button", "slice-tile");
      tile.type = "button";
      tile.setAttribute("role", "option");
      tile.dataset.slice = d;
      const label = classes ? classes[d] : `depth slice ${d}`;
      // A class row's visible words (name and value) are its accessible name already.
      if (!classes) tile.setAttribute("aria-label", label);
      tile.title = label;
      if (rows) tile.append(...rows[d]);
      else tile.append(el("span", "tile-index", String(d)));
      tile.addEventListener("click", () => this.onSelectSlice(d));
      return tile;
    });
    grid.replaceChildren(...(classes ? listed.map((d) => tiles[d]) : [sheet, ...tiles]));
    if (!classes) images.place(grid, tiles);
    const and = classes && listed.length > largest.length ? " and the selected one" : "";
    const some = classes && largest.length < depth ? `The ${largest.length} largest of ` : "";
    $("slices-title").textContent = classes ? `${some}${depth} numbers${and}, one per class` : `Depth slices (${depth})`;
    this.shown = { index: layer.index, layer, volume: streamed, images, tiles, classes, before: shownBefore, options };
    // The 3D view draws the tiles' pictures; a large volume's are painted a few per task
    // (the selected slice first), so the page answers while a 224x224x64 layer is drawn.
    this.volume3d.setVolume(images.thumbs, streamed.shape, slice);
    this.painting = images.paintAll(slice, () => this.volume3d.requestDraw());
  }

  /** `input` is the input volume's shape, to say when a neuron sees all of it. Facts a
   * projector can do without are marked "extra" (presenter mode hides them). */
  renderFacts(layer, streamed, input, replayed = false) {
    const EXTRA = new Set(["parameters", "std", "zeros", "ready after"]);
    const facts = [
      ["shape", shapeText(layer.shape)],
      ["parameters", layer.param_count.toLocaleString("en")],
    ];
    const rf = layer.receptive_field;
    if (rf) {
      // A window larger than the image hangs over the padding; say when every neuron (the
      // corner ones are enough to check) sees the whole image.
      const [h, w] = layer.shape;
      const covers = (box) => input && box.top === 0 && box.left === 0 && box.bottom === input[0] - 1 && box.right === input[1] - 1;
      const whole = input && covers(receptiveBox(rf, 0, 0, ...input)) && covers(receptiveBox(rf, h - 1, w - 1, ...input));
      const all = whole || kindFamily(layer.kind) === "fc" || kindFamily(layer.kind) === "softmax";
      facts.push(["receptive field", all ? "every input pixel" : `${rf.size}×${rf.size} px`]);
    }
    if (streamed?.stats) {
      const s = streamed.stats;
      for (const name of ["min", "max", "mean", "std"]) facts.push([name, formatValue(s[name])]);
      if (s.zeros !== undefined) {
        const percent = 100 * s.zeros;
        facts.push(["zeros", `${percent.toFixed(percent > 0 && percent < 1 ? 2 : 0)}%`]);
      }
      // A stored run read again was computed earlier: its times are not this page's.
      if (streamed.elapsed_ms !== undefined && !replayed) facts.push(["ready after", `${streamed.elapsed_ms.toFixed(1)} ms`]);
    }
    $("layer-facts").replaceChildren(
      ...facts.map(([term, value]) => {
        const item = el("div", EXTRA.has(term) ? "fact fact-extra" : "fact");
        item.append(el("dt", "", term), el("dd", "", value));
        return item;
      }),
    );
  }

  /** The selected slice enlarged, its colour bar, the receptive field and the readout. */
  drawFocus(run, slice) {
    this.run = run;
    this.filters.setSlice(slice);
    const shown = this.shown;
    if (!shown) return;
    const d = clamp(slice, 0, shown.tiles.length - 1);
    this.slice = d;
    if (!shown.classes) shown.images.place($("slice-grid"), shown.tiles); // resized: placed again
    for (const [i, tile] of shown.tiles.entries()) {
      if (!tile) continue; // a class not listed
      tile.setAttribute("aria-selected", String(i === d));
      tile.tabIndex = i === d ? 0 : -1;
    }
    const label = shown.classes
      ? `${shown.classes[d]} (depth slice ${d})`
      : `depth slice ${d} of ${shown.tiles.length}`;
    $("focus-title").textContent = `${shown.layer.name}, ${label}`;

    const canvas = $("slice-canvas");
    const { h, w, cell, width, height } = this.sliceLayout();
    canvas.style.height = `${height}px`;
    const ctx = fitCanvas(canvas, width, height);
    drawPixelated(ctx, shown.images.fullSize(d), 0, 0, width, height);
    if (cell >= 10) {
      ctx.strokeStyle = "rgba(0, 0, 0, 0.28)";
      ctx.lineWidth = 1 / (window.devicePixelRatio || 1);
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
    if (this.pinned && this.pinned.row < h && this.pinned.col < w) {
      const { row, col } = this.pinned;
      ctx.lineWidth = 3;
      ctx.strokeStyle = "#ffd166";
      ctx.strokeRect(col * cell + 1.5, row * cell + 1.5, cell - 3, cell - 3);
    }
    if (this.hover) {
      const { row, col } = this.hover;
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = "#ffffff";
      ctx.strokeRect(col * cell + 1, row * cell + 1, cell - 2, cell - 2);
      ctx.lineWidth = 1;
      ctx.strokeStyle = "#000000";
      ctx.strokeRect(col * cell - 0.5, row * cell - 0.5, cell + 1, cell + 1);
    }
    this.drawColorbar(shown.images.scale(d));
    this.drawBefore(d);
    this.drawReceptiveField();
    this.readout();
    this.volume3d.setSelected(d);
  }

  /** For RELU and POOL, slice d of the volume before, beside this one. */
  drawBefore(d) {
    const figure = $("before-figure");
    const before = this.shown?.before;
    figure.hidden = !before;
    document.querySelector(".focus-views").classList.toggle("with-before", Boolean(before));
    if (!before) return;
    const canvas = $("before-canvas");
    const size = canvas.clientWidth || 110;
    const [h, w] = before.streamed.shape;
    const cell = size / Math.max(h, w);
    const ctx = fitCanvas(canvas, size, size);
    ctx.clearRect(0, 0, size, size);
    const scale = colorScale(before.streamed, d, this.shown.options);
    drawPixelated(ctx, sliceCanvas(before.streamed, d, scale.palette), 0, 0, w * cell, h * cell);
    const change = kindFamily(this.shown.layer.kind) === "relu" ? "negatives become 0" : `${h}×${w} becomes ${this.shown.volume.shape[0]}×${this.shown.volume.shape[1]}`;
    $("before-caption").textContent = `before: ${before.layer.name}, slice ${d} (${change})`;
  }

  drawColorbar({ map, lo, hi, signed }) {
    const bar = $("colorbar");
    bar.querySelector(".colorbar-ramp").style.setProperty("background-image", cssGradient(map));
    bar.querySelector(".colorbar-min").textContent = formatValue(lo);
    bar.querySelector(".colorbar-max").textContent = formatValue(hi);
    bar.querySelector(".colorbar-zero").textContent = signed ? "0" : "";
    bar.title = `${COLORMAPS[map].label}: ${formatValue(lo)} to ${formatValue(hi)}`;
  }

  /** The input as the network sees it, with the inspected neuron's receptive field. */
  drawReceptiveField() {
    const run = this.run;
    const canvas = $("rf-canvas");
    const size = canvas.clientWidth || 160;
    const ctx = fitCanvas(canvas, size, size);
    ctx.clearRect(0, 0, size, size);
    if (!run?.input) return;
    const [ih, iw] = run.input.shape;
    const cell = size / Math.max(ih, iw);
    drawPixelated(ctx, run.inputImage, 0, 0, iw * cell, ih * cell);
    const caption = $("rf-caption");
    const rf = this.shown?.layer.receptive_field;
    const neuron = this.hover || this.pinned;
    if (kindFamily(this.shown?.layer.kind) === "fc" || kindFamily(this.shown?.layer.kind) === "softmax") {
      caption.textContent = "receptive field: every input pixel";
      return;
    }
    if (!neuron || !rf) {
      caption.textContent = `receptive field on the input (${onTouch() ? "tap" : "hover"} the slice)`;
      return;
    }
    const { top, left, bottom, right } = receptiveBox(rf, neuron.row, neuron.col, ih, iw);
    const [x, y, width, height] = [left * cell, top * cell, (right - left + 1) * cell, (bottom - top + 1) * cell];
    ctx.fillStyle = "rgba(0, 0, 0, 0.45)";
    ctx.beginPath();
    ctx.rect(0, 0, iw * cell, ih * cell);
    ctx.rect(x, y, width, height);
    ctx.fill("evenodd");
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#ffd166";
    ctx.strokeRect(x + 1, y + 1, width - 2, height - 2);
    caption.textContent = `receptive field: rows ${top}–${bottom}, cols ${left}–${right} (${rf.size}×${rf.size})`;
  }

  /** The inspected cell's position and value (exact once its slice is fetched: exact.js). */
  readout() {
    const out = $("hover-readout");
    const shown = this.shown;
    const hover = this.hover || this.pinned;
    if (!shown || !hover) {
      out.replaceChildren(
        onTouch()
          ? "Tap a cell to read its exact value; tap it again to see how it is computed."
          : "Hover a cell to read its exact value.",
      );
      return;
    }
    const d = this.slice;
    const cell = cellValue(this.run, shown.index, hover.row, hover.col, d, () => this.readout());
    const where = el("span", "readout-where", `${shown.layer.name} [row ${hover.row}, col ${hover.col}, depth ${d}]`);
    const value = el("strong", "readout-value");
    value.id = "hover-value";
    if (cell.exact !== undefined) {
      const exact = cell.exact;
      value.textContent = this.exactDigits ? float32Text(exact) : shortValue(exact);
      value.title = `exactly ${float32Text(exact)}`;
      Object.assign(value.dataset, { value: String(exact), row: hover.row, col: hover.col, depth: d });
    } else if (cell.approx !== null) {
      // The stream's value (a byte a number) until the exact one arrives.
      value.textContent = `≈ ${shortValue(cell.approx)}`;
      value.title = cell.error || "about: the exact value is on its way";
    } else {
      value.textContent = cell.error || "loading…";
    }
    out.replaceChildren(where, " = ", value);
  }

  /** A button after the readout: every digit of the float32, or four significant ones. */
  addExactToggle() {
    const button = el("button", "button button-small readout-exact", "exact");
    button.id = "readout-exact";
    button.type = "button";
    button.title = "Show every digit of the value (the float32 the network computed)";
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", () => {
      this.exactDigits = !this.exactDigits;
      button.setAttribute("aria-pressed", String(this.exactDigits));
      this.readout();
    });
    $("hover-readout").after(button);
  }

  sliceLayout() {
    const [h, w] = this.shown.volume.shape;
    const cssSize = $("slice-canvas").clientWidth || 240;
    const cell = Math.max(1, Math.floor(cssSize / Math.max(h, w)));
    return { h, w, cell, width: cell * w, height: cell * h };
  }

  setHover(next) {
    if (next?.row === this.hover?.row && next?.col === this.hover?.col) return;
    this.hover = next;
    this.onHover();
  }

  /** Forget the inspected cell without telling anyone (a new layer or run is coming). */
  clearHover() {
    this.hover = null;
  }

  /** The cell under the pointer (or the keys' cursor), {row, col}, or null. */
  hoveredCell() {
    return this.hover ? { row: this.hover.row, col: this.hover.col } : null;
  }

  /** The neuron whose arithmetic is shown, outlined on the slice; null for none. */
  setPinned(neuron) {
    this.pinned = neuron;
  }

  /** Move the focus to slice d's tile, scrolled into view. */
  focusTile(d) {
    const tile = this.shown?.tiles[d];
    if (!tile) return;
    tile.focus({ preventScroll: true });
    tile.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  redraw3d() {
    this.volume3d.requestDraw();
  }

  /** Turn the 3D view ({yaw, pitch}, or null for the start). */
  setAngle(angle) {
    this.volume3d.setAngle(angle);
  }

  hoverAt(event) {
    if (!this.shown) return;
    const rect = $("slice-canvas").getBoundingClientRect();
    const { h, w, cell } = this.sliceLayout();
    const col = Math.floor((event.clientX - rect.left) / cell);
    const row = Math.floor((event.clientY - rect.top) / cell);
    this.setHover(row >= 0 && row < h && col >= 0 && col < w ? { row, col } : null);
  }

  /** With the enlarged slice focused, the arrow keys move the inspected cell. */
  onKey(event) {
    if (event.key === "Enter" && this.shown && !event.shiftKey) {
      event.preventDefault();
      const [h, w] = this.shown.volume.shape;
      const at = this.hover || this.pinned || { row: Math.floor(h / 2), col: Math.floor(w / 2) };
      this.onPick(at.row, at.col);
      return;
    }
    const step = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] }[event.key];
    // Shift+arrows move the chosen neuron (the app's keys), not the hovered cell.
    if (!step || !this.shown || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    event.stopPropagation();
    const [h, w] = this.shown.volume.shape;
    const from = this.hover;
    this.setHover(
      from
        ? { row: clamp(from.row + step[0], 0, h - 1), col: clamp(from.col + step[1], 0, w - 1) }
        : { row: Math.floor(h / 2), col: Math.floor(w / 2) },
    );
  }
}
