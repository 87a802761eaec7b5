/**
 * "How this number is computed": the arithmetic of one chosen neuron, as the server breaks
 * it into parts (GET /api/runs/{run}/layers/{i}/neurons/{row}/{col}/{depth}).
 *
 * conv: each input channel's window with the filter over it and their products, ranked by
 * contribution (the rest summarised), the partial sums meeting the bias at the total, and a
 * step-through that slides the filter across the slice; relu: max(0, x); pool: the window
 * with its maximum marked; fc: the largest input x weight terms and where in the previous
 * volume every term comes from; softmax: logits, exponentials, their sum and the division.
 * An imported model's conv2d is drawn as a conv; its other kinds as arithmetic.js describes.
 *
 * The app owns the chosen neuron (state and URL); this panel shows it and asks for moves
 * through onMove(row, col, depth) and for closing through onClose().
 */

import { getNeuron } from "./api.js";
import {
  MINUS,
  convNote,
  describeNeuron,
  float32Text,
  inputChannel,
  kernelOf,
  plain,
  rankChannels,
  signClass,
  signed,
  stepPosition,
  weightCountText,
} from "./arithmetic.js";
import { $, el, fitCanvas, shapeText } from "./dom.js";
import { colorScale, drawPixelated, sliceCanvas } from "./volume.js";

const CHANNELS_SHOWN = 3; // input channels drawn in full before the rest are summarised
const CACHE_LIMIT = 256; // neurons kept per run, so stepping back does not ask again
const SPEEDS = [0.5, 1, 2, 4]; // steps per second
const INPUT_CHANNEL_NAMES = { 3: ["red", "green", "blue"], 1: ["grey"] };

/** A number as a span coloured (and signed) by its sign. */
function num(v, { sign = true, digits = 3, className = "" } = {}) {
  const span = el("span", `num ${signClass(v)} ${className}`.trim(), sign ? signed(v, digits) : plain(v, digits));
  span.title = String(v);
  return span;
}

/** A wide table in a box that scrolls sideways on a narrow screen. */
function scrolling(table) {
  const box = el("div", "nc-scroll");
  box.append(table);
  return box;
}

function row(...children) {
  const line = el("p", "nc-line");
  line.append(...children);
  return line;
}

/** A kh x kw grid of numbers; `mark` [r, c] gets outlined. */
function grid(values, { sign = true, mark = null, caption = "" } = {}) {
  const table = el("table", "nc-grid");
  if (caption) table.createCaption().textContent = caption;
  const body = table.createTBody();
  values.forEach((line, r) => {
    const tr = body.insertRow();
    line.forEach((v, c) => {
      const td = tr.insertCell();
      td.append(num(v, { sign, digits: 2 }));
      if (mark && mark[0] === r && mark[1] === c) td.className = "nc-max";
    });
  });
  return table;
}

/** Slice `d` of a streamed volume with a window box drawn over it (it may hang past the
 * edges, where the layer pads); `cells` [[r, c]...] get small outlines instead. */
function sliceWithWindow(volume, d, { rows, cols, cells = [], size = 96 } = {}) {
  const canvas = el("canvas", "nc-slice");
  if (!volume) return canvas;
  const [h, w] = volume.shape;
  const cell = Math.max(1, Math.floor(size / Math.max(h, w)));
  // A margin of at least one cell, so an outline at the edge (or over the padding) shows.
  const pad = Math.max(1, rows ? Math.max(-rows[0], -cols[0], rows[1] - h, cols[1] - w) : 0);
  const side = (Math.max(h, w) + 2 * pad) * cell;
  const ctx = fitCanvas(canvas, side, side);
  canvas.style.width = canvas.style.height = `${side}px`;
  ctx.fillStyle = "#2a3951";
  ctx.fillRect(0, 0, side, side);
  const source = sliceCanvas(volume, d, colorScale(volume, d).palette);
  drawPixelated(ctx, source, pad * cell, pad * cell, w * cell, h * cell);
  const outline = (x, y, width, height) => {
    ctx.lineWidth = 4;
    ctx.strokeStyle = "#000000";
    ctx.strokeRect(x - 1, y - 1, width + 2, height + 2);
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#ffd166";
    ctx.strokeRect(x - 1, y - 1, width + 2, height + 2);
  };
  if (rows) {
    const [x, y] = [(cols[0] + pad) * cell, (rows[0] + pad) * cell];
    outline(x, y, (cols[1] - cols[0]) * cell, (rows[1] - rows[0]) * cell);
  }
  for (const [r, c] of cells) outline((c + pad) * cell, (r + pad) * cell, cell, cell);
  return canvas;
}

export class NeuronPanel {
  constructor({ onMove, onClose }) {
    this.onMove = onMove;
    this.onClose = onClose;
    this.section = $("neuron-panel");
    this.view = null; // what show() was given
    this.body = null; // the server's answer for view's neuron
    this.cache = new Map();
    this.cacheRun = null;
    this.controller = null;
    this.timer = null;
    this.playing = false;
    this.speed = 1;
    this.extraChannels = 0;
    this.build();
  }

  build() {
    const head = el("div", "nc-head");
    const title = el("h3", "", "How this number is computed");
    title.id = "neuron-title";
    this.where = el("span", "nc-where");
    this.where.id = "neuron-where";
    const close = el("button", "button button-small nc-close", "Close");
    close.type = "button";
    close.setAttribute("aria-label", "Close the arithmetic panel (Escape)");
    close.addEventListener("click", () => this.onClose());
    const controls = this.stepControls();
    controls.append(close);
    head.append(title, controls);
    this.result = el("div", "nc-result");
    this.result.id = "neuron-result";
    this.content = el("div", "nc-content");
    this.content.id = "neuron-content";
    this.weightsLine = el("p", "nc-weights");
    this.weightsLine.id = "neuron-weights";
    const keys = el("p", "hint nc-keys");
    keys.innerHTML =
      "Click a cell of the enlarged slice (or focus it and press <kbd>Enter</kbd>) to choose a neuron; " +
      "<kbd>Shift</kbd>+<kbd>←</kbd><kbd>→</kbd><kbd>↑</kbd><kbd>↓</kbd> move it, <kbd>Esc</kbd> closes.";
    this.section.replaceChildren(head, this.result, this.content, this.weightsLine, keys);
  }

  stepControls() {
    const box = el("div", "nc-step");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Step-through: slide the filter across the slice");
    const button = (text, label, action) => {
      const b = el("button", "button button-small", text);
      b.type = "button";
      b.setAttribute("aria-label", label);
      b.addEventListener("click", action);
      box.append(b);
      return b;
    };
    button("◀", "Previous neuron", () => this.step(-1));
    this.playButton = button("▶ Play", "Play: slide the filter across the slice", () => this.togglePlay());
    this.playButton.id = "neuron-play";
    button("▶|", "Next neuron", () => this.step(1)).id = "neuron-next";
    const speed = el("select", "nc-speed");
    speed.id = "neuron-speed";
    speed.setAttribute("aria-label", "Steps per second");
    for (const s of SPEEDS) speed.append(new Option(`${s}/s`, String(s), false, s === this.speed));
    speed.addEventListener("change", () => {
      this.speed = Number(speed.value);
      if (this.playing) this.schedule();
    });
    box.append(speed);
    return box;
  }

  get open() {
    return !this.section.hidden;
  }

  /** Show neuron `position` [row, col, depth] of `layer` (from /api/models) in `run`;
   * `layers` all of the model's layers, `inputShape` the network input's. */
  show(view) {
    this.view = view;
    this.section.hidden = false;
    const { run, layer, position } = view;
    this.where.textContent = `${layer.name} [row ${position[0]}, col ${position[1]}, depth ${position[2]}]`;
    if (this.cacheRun !== run) {
      this.cache.clear();
      this.cacheRun = run;
      this.extraChannels = 0;
    }
    if (!run?.id || !run.scores) {
      this.pause();
      this.setResult(run?.error ? "This run failed: choose another image." : "Waiting for the run to finish…");
      this.content.replaceChildren();
      this.weightsLine.replaceChildren();
      return;
    }
    const key = `${layer.index}/${position.join("/")}`;
    const cached = this.cache.get(key);
    if (cached) {
      this.render(cached);
      return Promise.resolve();
    }
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.section.dataset.state = "loading";
    return getNeuron(run.id, layer.index, ...position, controller.signal)
      .then((body) => {
        if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value);
        this.cache.set(key, body);
        if (this.controller === controller) this.render(body);
      })
      .catch((error) => {
        if (error.name === "AbortError") return;
        this.pause();
        this.setResult(error.message);
        this.content.replaceChildren();
        this.section.dataset.state = "error";
      });
  }

  hide() {
    this.pause();
    this.controller?.abort();
    this.section.hidden = true;
    this.view = null;
    this.body = null;
  }

  setResult(text) {
    this.result.replaceChildren(this.where, el("span", "nc-status", text));
  }

  // --- step-through ------------------------------------------------------------------------

  step(direction) {
    if (!this.view) return;
    const [row, col, depth] = stepPosition(this.view.position, this.view.layer.shape, direction);
    this.onMove(row, col, depth);
  }

  togglePlay() {
    if (this.playing) this.pause();
    else this.play();
  }

  play() {
    this.playing = true;
    this.playButton.textContent = "❚❚ Pause";
    this.playButton.setAttribute("aria-label", "Pause the step-through");
    this.playButton.setAttribute("aria-pressed", "true");
    this.schedule();
  }

  pause() {
    this.playing = false;
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.playButton) return;
    this.playButton.textContent = "▶ Play";
    this.playButton.setAttribute("aria-label", "Play: slide the filter across the slice");
    this.playButton.setAttribute("aria-pressed", "false");
  }

  /** The next step once this one is drawn, never faster than the speed asks. */
  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (!this.playing) return;
      if (this.section.dataset.state === "loading") {
        this.schedule();
        return;
      }
      this.step(1);
      this.schedule();
    }, 1000 / this.speed);
  }

  // --- drawing -------------------------------------------------------------------------------

  /** The volume the layer reads, as streamed (for pictures), and its channels' names. */
  previous() {
    const { run, layer, layers } = this.view;
    const volume = layer.index === 0 ? run.inputVolume : run.layers[layer.index - 1];
    const name = layer.index === 0 ? "input" : layers[layer.index - 1].name;
    return { volume, name };
  }

  render(body) {
    this.body = body;
    this.section.dataset.state = "ready";
    this.section.dataset.kind = body.kind;
    Object.assign(this.section.dataset, {
      layer: body.layer,
      row: body.position[0],
      col: body.position[1],
      depth: body.position[2],
      value: String(body.value),
    });
    const value = el("strong", "nc-value", float32Text(body.value).replace("-", MINUS));
    value.title = `exactly ${body.value} (float32)`;
    value.id = "neuron-value";
    value.classList.add(signClass(body.value));
    const check = body.agrees
      ? el("span", "nc-check ok", "✓ the parts below add up to this very number, the one the stream delivered")
      : el("span", "nc-check bad", "✗ the parts do not add up to the stored number: the model changed since this run");
    check.title = `recomputed from the parts: ${body.recomputed}; float32 rounding allows ±${body.tolerance.toExponential(1)}`;
    const here = [];
    const [h, w] = this.view.layer.shape;
    const volume = this.view.run.layers[body.layer];
    if (h * w > 1 && volume) {
      const [r, c] = body.position;
      const picture = sliceWithWindow(volume, body.position[2], { cells: [[r, c]], size: 56 });
      picture.classList.add("nc-here");
      picture.title = `${body.name}, depth slice ${body.position[2]}: this neuron outlined`;
      here.push(picture);
    }
    this.result.replaceChildren(...here, this.where, el("span", "nc-name", "="), value, check);
    const draw = { conv: this.conv, conv2d: this.conv, relu: this.relu, pool: this.pool, fc: this.fc, softmax: this.softmax }[body.kind] ?? this.described;
    this.content.replaceChildren(...draw.call(this, body));
    this.weightsLine.replaceChildren(...this.weightCount(body));
  }

  weightCount(body) {
    if (!body.weight_count) return [];
    const [h, w, c] = body.input.shape;
    const { neuron, fully_connected: full } = body.weight_count;
    if (body.kind === "fc") {
      return [
        `This neuron has ${weightCountText([h, w, c])} weights (with its bias): one for every number of ` +
          `${body.input.name}, as every fully connected neuron does.`,
      ];
    }
    const [oh, ow] = this.view.layer.shape;
    return [
      el("strong", "", `${weightCountText(kernelOf(body))} weights`),
      ` (with its bias) for this neuron; a fully connected neuron on the same ${shapeText([h, w, c])} input ` +
        `would need ${weightCountText([h, w, c])}, ${Math.round(full / neuron)}× as many. ` +
        `And all ${(oh * ow).toLocaleString("en")} neurons of this depth slice share these same weights.`,
    ];
  }

  conv(body) {
    const { volume, name } = this.previous();
    const c = body.channel_sums.length;
    const names = body.layer === 0 ? INPUT_CHANNEL_NAMES[c] : null;
    const channelName = (k) => (names ? `${names[inputChannel(body, k)]} channel` : `${name} depth ${inputChannel(body, k)}`);
    const keep = Math.min(c, CHANNELS_SHOWN + this.extraChannels);
    const { top, rest, order } = rankChannels(body.channel_sums, keep);
    const [kh, kw] = kernelOf(body);
    const k = kh === kw ? `${kh}×${kh}` : `${kh}×${kw}`;

    const intro = row(
      c === 1
        ? `Filter ${body.position[2]} (${k}×1) lies over a ${k} window of ${name}: multiply each ` +
            `number by the weight over it, add up the products, then add the bias. ${convNote(body)}`
        : `Filter ${body.position[2]} (${k}×${c}) lies over a ${k} window of ${name} on every one of ` +
            `its ${c} input channels: multiply each number by the weight over it, add up the products of each ` +
            `channel, then add the ${c} partial sums and the bias. ${convNote(body)}`,
    );
    intro.classList.add("hint");

    const cards = top.map(({ channel, sum }, rank) => {
      const card = el("figure", "nc-channel");
      card.dataset.channel = channel;
      const window = body.window.map((line) => line.map((cell) => cell[channel]));
      const weights = body.weights.map((line) => line.map((cell) => cell[channel]));
      const products = window.map((line, i) => line.map((x, j) => x * weights[i][j]));
      const caption = el("figcaption", "nc-channel-title");
      caption.append(
        el("span", "nc-rank", c > 1 ? `#${rank + 1}` : ""),
        ` ${channelName(channel)}: Σ = `,
        num(sum),
      );
      const parts = el("div", "nc-channel-parts");
      parts.append(
        sliceWithWindow(volume, inputChannel(body, channel), { rows: body.input.rows, cols: body.input.cols }),
        grid(window, { sign: false, caption: "input" }),
        el("span", "nc-op", "×"),
        grid(weights, { caption: "weights" }),
        el("span", "nc-op", "="),
        grid(products, { caption: "products" }),
      );
      card.append(caption, parts);
      return card;
    });
    const channels = el("div", "nc-channels");
    channels.append(...cards);

    const pieces = [];
    if (rest.count) {
      const more = el("p", "nc-rest");
      more.id = "neuron-rest";
      more.append(
        `+ the other ${rest.count} channels add `,
        num(rest.sum),
        ` (${rest.up} push it up by `,
        num(rest.upSum),
        `, ${rest.down} pull it down by `,
        num(rest.downSum),
        ")",
      );
      const button = el("button", "button button-small", `show ${Math.min(CHANNELS_SHOWN, rest.count)} more`);
      button.type = "button";
      button.addEventListener("click", () => {
        this.extraChannels += CHANNELS_SHOWN;
        this.render(this.body);
      });
      more.append(" ", button);
      pieces.push(more, this.channelBars(order, keep));
    }

    // The partial sums meet the bias at the total.
    const total = el("p", "nc-total");
    total.id = "neuron-total";
    for (const { channel, sum } of top) {
      const chip = el("span", "nc-chip");
      chip.append(el("small", "", names ? names[inputChannel(body, channel)] : `ch ${inputChannel(body, channel)}`), num(sum));
      total.append(chip, el("span", "nc-op", "+"));
    }
    if (rest.count) {
      const chip = el("span", "nc-chip");
      chip.append(el("small", "", `${rest.count} others`), num(rest.sum));
      total.append(chip, el("span", "nc-op", "+"));
    }
    const bias = el("span", "nc-chip nc-bias");
    bias.append(el("small", "", "bias"), num(body.bias));
    const result = el("span", "nc-chip nc-sum");
    result.append(el("small", "", "total"), num(body.recomputed, { digits: 6 }));
    total.append(bias, el("span", "nc-op", "="), result);
    return [intro, total, ...pieces, channels];
  }

  /** Every channel's partial sum as a bar, largest contribution first; the ones drawn in
   * full are labelled. One picture however many channels there are. */
  channelBars(order, keep) {
    const figure = el("figure", "nc-bars");
    const canvas = el("canvas", "nc-bars-canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "Every input channel's partial sum, largest first");
    const caption = el("figcaption", "hint", `All ${order.length} partial sums, largest first (red adds, blue takes away)`);
    figure.append(canvas, caption);
    requestAnimationFrame(() => {
      const width = Math.max(200, figure.clientWidth || 400);
      const height = 56;
      const ctx = fitCanvas(canvas, width, height);
      const biggest = Math.max(...order.map((o) => Math.abs(o.sum)), 1e-12);
      const bar = Math.min(28, width / order.length);
      const mid = height / 2;
      order.forEach(({ sum }, i) => {
        ctx.fillStyle = sum >= 0 ? "#ff8a65" : "#64b5f6";
        const length = (Math.abs(sum) / biggest) * (mid - 2);
        ctx.fillRect(i * bar + (bar > 3 ? 0.5 : 0), sum >= 0 ? mid - length : mid, Math.max(1, bar - 1), length);
        if (i < keep) {
          ctx.strokeStyle = "#ffd166";
          ctx.lineWidth = 1.5;
          ctx.strokeRect(i * bar + 0.5, 1, Math.max(1, bar - 1), height - 2);
        }
      });
      ctx.fillStyle = "#a3b2c8";
      ctx.fillRect(0, mid, bar * order.length, 1);
    });
    return figure;
  }

  relu(body) {
    const { volume, name } = this.previous();
    const x = body.input_value;
    const line = el("p", "nc-formula");
    line.append("max(0, ", num(x), ") = ", num(body.value));
    const why = row(
      `${name} gave `,
      num(x),
      x > 0 ? " here: positive, so it passes through unchanged." : " here: not positive, so the relu outputs 0.",
    );
    const [r, c] = body.position;
    const picture = el("div", "nc-pictures");
    picture.append(sliceWithWindow(volume, body.position[2], { cells: [[r, c]] }));
    return [line, why, picture];
  }

  pool(body) {
    const { volume, name } = this.previous();
    const values = body.window.flat();
    const line = el("p", "nc-formula");
    line.append("max(");
    values.forEach((v, i) => {
      if (i) line.append(", ");
      line.append(num(v, { sign: false }));
    });
    line.append(") = ", num(body.value, { sign: false }));
    const k = body.window.length;
    const parts = el("div", "nc-pictures");
    parts.append(
      sliceWithWindow(volume, body.position[2], { rows: body.input.rows, cols: body.input.cols }),
    );
    const table = grid(body.window, { sign: false, mark: body.argmax, caption: `${k}×${k} window of ${name}` });
    table.classList.add("nc-grid-big");
    parts.append(table);
    const [r, c] = body.argmax;
    const ties = values.filter((v) => v === body.value).length;
    const note = row(
      `The largest${ties > 1 ? ` (the first of ${ties} equal)` : ""} is at row ${body.input.rows[0] + r}, `,
      `col ${body.input.cols[0] + c} of ${name} (depth ${body.position[2]}): only it passes on, `,
      "and in training only it gets the gradient.",
    );
    note.classList.add("hint");
    return [line, parts, note];
  }

  fc(body) {
    const { name } = this.previous();
    const [h, w, c] = body.input.shape;
    const shownSum = body.top.reduce((sum, t) => sum + t.term, 0);
    const restSum = body.recomputed - body.bias - shownSum;
    const intro = row(
      `Every one of the ${(h * w * c).toLocaleString("en")} numbers of ${name} (${shapeText([h, w, c])}), `,
      "times its own weight, plus the bias. The largest terms:",
    );
    intro.classList.add("hint");
    const table = el("table", "nc-table nc-terms");
    table.id = "neuron-terms";
    const head = table.createTHead().insertRow();
    for (const text of ["", `from ${name}`, "input", "", "weight", "", "term"]) head.append(el("th", "", text));
    const tbody = table.createTBody();
    const biggest = Math.abs(body.top[0]?.term || 1);
    body.top.forEach((t, i) => {
      const tr = tbody.insertRow();
      const [r, cc, d] = t.position;
      tr.insertCell().textContent = `#${i + 1}`;
      tr.insertCell().textContent = `row ${r}, col ${cc}, depth ${d}`;
      tr.insertCell().append(num(t.input, { sign: false }));
      tr.insertCell().textContent = "×";
      tr.insertCell().append(num(t.weight));
      tr.insertCell().textContent = "=";
      const cell = tr.insertCell();
      const bar = el("span", `nc-bar ${signClass(t.term)}`);
      bar.style.width = `${(3 * Math.abs(t.term)) / biggest}rem`;
      cell.append(num(t.term), bar);
    });
    const total = el("p", "nc-total");
    total.id = "neuron-total";
    const chip = (label, v, extra = "") => {
      const span = el("span", `nc-chip ${extra}`.trim());
      span.append(el("small", "", label), num(v, { digits: extra === "nc-sum" ? 6 : 3 }));
      return span;
    };
    total.append(
      chip(`top ${body.top.length}`, shownSum),
      el("span", "nc-op", "+"),
      chip(`${body.terms.length - body.top.length} others`, restSum),
      el("span", "nc-op", "+"),
      chip("bias", body.bias, "nc-bias"),
      el("span", "nc-op", "="),
      chip("total", body.recomputed, "nc-sum"),
    );
    return [intro, scrolling(table), total, this.termMap(body, name)];
  }

  /** Every term at its place in the previous volume: one tile per depth slice, the
   * largest terms outlined. */
  termMap(body, name) {
    const [h, w, c] = body.input.shape;
    const figure = el("figure", "nc-map");
    const canvas = el("canvas", "nc-map-canvas");
    canvas.id = "neuron-map";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `Every term at its place in ${name}, one tile per depth slice`);
    figure.append(
      canvas,
      el(
        "figcaption",
        "hint",
        `Where the terms come from: ${name}, one ${h}×${w} tile per depth slice (0 to ${c - 1}), ` +
          "red adds, blue takes away; outlined: the largest terms above.",
      ),
    );
    const columns = Math.min(c, 32);
    const room = Math.max(320, (this.section.clientWidth || 900) - 40);
    const cell = Math.max(2, Math.min(10, Math.floor(room / (columns * (w + 1)))));
    const tile = w * cell + cell;
    const width = columns * tile;
    const height = Math.ceil(c / columns) * (h * cell + cell);
    const ctx = fitCanvas(canvas, width, height);
    canvas.style.width = `${width}px`;
    ctx.fillStyle = "#0b1019";
    for (let d = 0; d < c; d++) {
      ctx.fillRect((d % columns) * tile, Math.floor(d / columns) * (h * cell + cell), w * cell, h * cell);
    }
    const biggest = Math.max(...body.terms.map(Math.abs), 1e-12);
    body.terms.forEach((t, index) => {
      const d = Math.floor(index / (h * w));
      const r = Math.floor((index % (h * w)) / w);
      const col = index % w;
      const x = (d % columns) * tile + col * cell;
      const y = Math.floor(d / columns) * (h * cell + cell) + r * cell;
      const a = Math.sqrt(Math.abs(t) / biggest);
      ctx.fillStyle = t >= 0 ? `rgba(255, 138, 101, ${a})` : `rgba(100, 181, 246, ${a})`;
      ctx.fillRect(x, y, cell, cell);
    });
    ctx.strokeStyle = "#ffd166";
    ctx.lineWidth = 1.5;
    for (const t of body.top) {
      const [r, col, d] = t.position;
      const x = (d % columns) * tile + col * cell;
      const y = Math.floor(d / columns) * (h * cell + cell) + r * cell;
      ctx.strokeRect(x - 1, y - 1, cell + 2, cell + 2);
    }
    return figure;
  }

  /** A kind arithmetic.js describes as plain data: its formula, the input slice with the
   * window or cell outlined, the window's numbers, a small table and notes. */
  described(body) {
    const { volume, name } = this.previous();
    const shown = describeNeuron(body, { inputName: name, classes: this.view.run.classes || [] });
    if (!shown) return [row(`No drawing for a ${body.kind} layer yet: its number is ${body.value}.`)];
    const tokens = (list) => list.map((t) => (typeof t === "string" ? t : num(t.v, t)));
    const formula = el("p", "nc-formula");
    formula.append(...tokens(shown.formula));
    const pictures = el("div", "nc-pictures");
    if (shown.slice) pictures.append(sliceWithWindow(volume, shown.slice.depth, shown.slice));
    if (shown.grid) pictures.append(grid(shown.grid.values, shown.grid));
    pictures.querySelector(".nc-grid")?.classList.add("nc-grid-big");
    const pieces = [formula, pictures];
    if (shown.table) {
      const table = el("table", "nc-table");
      table.id = "neuron-table";
      const head = table.createTHead().insertRow();
      for (const text of shown.table.head) head.append(el("th", "", text));
      const tbody = table.createTBody();
      shown.table.rows.forEach((cells, i) => {
        const tr = tbody.insertRow();
        if (i === shown.table.chosen) tr.className = "nc-chosen";
        for (const cell of cells) tr.insertCell().append(...tokens([cell]));
      });
      pieces.push(scrolling(table));
    }
    for (const note of shown.notes) pieces.push(Object.assign(row(...tokens(note)), { className: "nc-line hint" }));
    return pieces;
  }

  softmax(body) {
    const classes = this.view.run.classes || [];
    const k = body.position[2];
    const e = body.shift ? `e^(x ${MINUS} ${plain(body.shift)})` : "eˣ";
    const line = el("p", "nc-formula");
    line.append(
      `${e} of its own score, divided by the sum over all ${body.logits.length} classes: `,
      num(body.exps[k], { sign: false, digits: 4 }),
      " ÷ ",
      num(body.sum, { sign: false, digits: 4 }),
      " = ",
      num(body.recomputed, { sign: false, digits: 4 }),
    );
    const table = el("table", "nc-table nc-softmax");
    table.id = "neuron-classes";
    const head = table.createTHead().insertRow();
    for (const text of ["class", "score x", e, "÷ sum", "= probability"]) head.append(el("th", "", text));
    const tbody = table.createTBody();
    body.logits.forEach((x, i) => {
      const tr = tbody.insertRow();
      if (i === k) tr.className = "nc-chosen";
      tr.insertCell().textContent = classes[i] ?? String(i);
      tr.insertCell().append(num(x));
      tr.insertCell().append(num(body.exps[i], { sign: false, digits: 4 }));
      tr.insertCell().append(num(body.sum, { sign: false, digits: 4 }));
      const p = body.exps[i] / body.sum;
      const cell = tr.insertCell();
      const bar = el("span", "nc-bar pos");
      bar.style.width = `${4 * p}rem`;
      const percent = p >= 0.001 || p === 0 ? (100 * p).toFixed(1) : plain(100 * p, 2);
      cell.append(el("span", "num", `${percent}%`), bar);
    });
    const foot = table.createTFoot().insertRow();
    foot.insertCell().textContent = "sum";
    foot.insertCell();
    foot.insertCell().append(num(body.sum, { sign: false, digits: 4 }));
    foot.insertCell();
    foot.insertCell().textContent = "100%";
    return [line, scrolling(table)];
  }
}
