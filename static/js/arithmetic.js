/**
 * Pure helpers of the "How this number is computed" panel (static/js/neuron.js): signed
 * numbers a projector shows clearly, the ranking of a conv neuron's input channels, the
 * order a step-through visits neurons in, the neuron's place in the URL, and what the
 * panel shows for an imported model's kinds (describeNeuron: a formula, a window, a small
 * table and notes, as plain data the panel turns into elements). No DOM here, so
 * `node --test tests/js` checks them.
 */

export const MINUS = "\u2212"; // a real minus sign: as wide as the plus, unlike a hyphen

/** v with an explicit sign ("+0.347", "−1.23", "0"), `digits` significant digits. */
export function signed(v, digits = 3) {
  if (v === 0 || Object.is(v, -0)) return "0";
  if (!Number.isFinite(v)) return Number.isNaN(v) ? "NaN" : v > 0 ? "+∞" : `${MINUS}∞`;
  const a = Math.abs(v);
  let text = a >= 1e4 || a < 1e-3 ? a.toExponential(digits - 1) : a.toPrecision(digits);
  if (!text.includes("e")) text = text.replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
  text = text.replace("e-", `e${MINUS}`).replace("e+", "e");
  return (v < 0 ? MINUS : "+") + text;
}

/** Like signed() but no "+" on positives (for inputs, weights, probabilities). */
export function plain(v, digits = 3) {
  const text = signed(v, digits);
  return text.startsWith("+") ? text.slice(1) : text;
}

/** A float32 number in the fewest digits that still name it exactly (as numpy prints it). */
export function float32Text(v) {
  for (let digits = 1; digits < 10; digits++) {
    const text = v.toPrecision(digits);
    if (Math.fround(Number(text)) === v) return String(Number(text));
  }
  return String(v);
}

/** "pos", "neg" or "zero": the class that colours a number by its sign. */
export const signClass = (v) => (v > 0 ? "pos" : v < 0 ? "neg" : "zero");

/**
 * A conv neuron's input channels by how much they move the sum (|partial sum|, largest
 * first): the first `keep` in `top`, the others summarised in `rest` (count, their sum,
 * and how many push the number up or pull it down, with those sums).
 */
export function rankChannels(sums, keep) {
  const order = sums.map((sum, channel) => ({ channel, sum }));
  order.sort((a, b) => Math.abs(b.sum) - Math.abs(a.sum) || a.channel - b.channel);
  const top = order.slice(0, keep);
  const others = order.slice(keep);
  const rest = { count: others.length, sum: 0, up: 0, upSum: 0, down: 0, downSum: 0 };
  for (const { sum } of others) {
    rest.sum += sum;
    if (sum > 0) {
      rest.up += 1;
      rest.upSum += sum;
    } else if (sum < 0) {
      rest.down += 1;
      rest.downSum += sum;
    }
  }
  return { top, rest, order };
}

/**
 * The neuron a step-through visits after (or, with step -1, before) `position` in a
 * volume of `shape`: along the row, then down, wrapping at the end, as the filter slides
 * over the slice; a 1x1xD volume (fc, softmax) steps through depth instead.
 */
export function stepPosition([row, col, depth], [h, w, d], step = 1) {
  if (h * w === 1) return [0, 0, (((depth + step) % d) + d) % d];
  const cells = h * w;
  const next = (((row * w + col + step) % cells) + cells) % cells;
  return [Math.floor(next / w), next % w, depth];
}

/** The neuron's place in the URL: "row,col" (its depth is the slice). */
export const neuronParam = ({ row, col }) => `${row},${col}`;

/** "row,col" back to {row, col}, or null if it is not two non-negative integers. */
export function parseNeuron(text) {
  const match = /^(\d{1,5}),(\d{1,5})$/.exec(text || "");
  return match ? { row: Number(match[1]), col: Number(match[2]) } : null;
}

/** The neuron at the same place of another layer's volume (proportionally), in range. */
export function followPosition({ row, col }, [fromH, fromW], [toH, toW]) {
  const scale = (i, from, to) => Math.min(to - 1, Math.max(0, Math.floor(((i + 0.5) * to) / from)));
  return { row: scale(row, fromH, toH), col: scale(col, fromW, toW) };
}

/** "3×3×64 + 1 = 577": a neuron's weight count, spelled out. */
export function weightCountText(factors) {
  const count = factors.reduce((product, f) => product * f, 1) + 1;
  return `${factors.join("×")} + 1 = ${count.toLocaleString("en")}`;
}

// --- conv2d (an imported model's general convolution) drawn as a conv ----------------------

/** [kh, kw, channels read] of a conv or conv2d neuron's window. */
export function kernelOf(body) {
  const w = body.window;
  return [w.length, w[0].length, w[0][0].length];
}

/** The input channel the window's k-th channel is (a depthwise filter reads only one). */
export const inputChannel = (body, k) => body.input_channels?.[k] ?? k;

/** What a conv2d does beyond a plain conv, in a sentence ("" when nothing). */
export function convNote(body) {
  if (body.kind !== "conv2d") return "";
  const pair = ([a, b], one, many) => (a === b ? `${a} ${a === 1 ? one : many}` : `${a}×${b} ${many}`);
  const parts = [];
  if (body.dilation.some((d) => d > 1)) {
    parts.push(`reads every ${pair(body.dilation, "number", "numbers")} apart (dilation), so it spans rows ${body.input.rows.join("–")} and cols ${body.input.cols.join("–")}`);
  }
  if (body.stride.some((s) => s > 1)) parts.push(`moves ${pair(body.stride, "step", "steps")} to the next neuron (stride)`);
  if (body.input_channels.length === 1 && body.input.shape[2] > 1) {
    parts.push(`is depthwise: it reads input channel ${body.input_channels[0]} only, of ${body.input.shape[2]}`);
  }
  return parts.length ? `This filter ${parts.join("; ")}.` : "";
}

// --- the other imported kinds, as plain data -------------------------------------------------

const n = (v, options = {}) => ({ v, ...options }); // a number token: neuron.js draws it signed
const GRID_LIMIT = 12; // a window drawn as numbers only up to 12x12

/**
 * What the panel shows for an imported model's kind other than conv2d: {formula (tokens),
 * slice ({depth, rows, cols} or {depth, cells}: the input slice with the window or cells
 * outlined), grid ({values, mark, caption, sign}), table ({head, rows of tokens, chosen}),
 * notes (lists of tokens)}. A token is a string or {v, sign, digits}; null if the kind is
 * not one of these. `inputName` names the volume read, `classes` the model's classes.
 */
export function describeNeuron(body, { inputName = "the input", classes = [] } = {}) {
  const [row, col, depth] = body.position;
  const x = body.input_value;
  const value = n(body.recomputed, { digits: 6 });
  const window = { depth, rows: body.input.rows, cols: body.input.cols };
  const cell = { depth, cells: [[row, col]] };
  const out = { formula: [], slice: null, grid: null, table: null, notes: [] };
  const at = (r, c) => `row ${body.input.rows[0] + r}, col ${body.input.cols[0] + c}`;
  switch (body.kind) {
    case "maxpool": {
      const [r, c] = body.argmax;
      const padded = body.window.flat().filter((v) => v === null).length;
      out.formula = ["max of the window = ", n(body.value, { sign: false })];
      out.slice = window;
      out.grid = {
        values: body.window.map((line) => line.map((v) => (v === null ? -Infinity : v))),
        mark: body.argmax,
        sign: false,
        caption: `${body.window.length}×${body.window[0].length} window of ${inputName}`,
      };
      out.notes.push([`The largest is at ${at(r, c)} of ${inputName} (depth ${depth}): only it passes on.`]);
      if (padded) out.notes.push([`${padded} places of the window lie in the padding, which counts as ${MINUS}∞: it never wins.`]);
      return out;
    }
    case "avgpool": {
      const cells = body.window.length * body.window[0].length;
      out.formula = ["sum of the window ", n(body.sum), ` ÷ ${body.count} = `, value];
      out.slice = window;
      if (body.window.length <= GRID_LIMIT && body.window[0].length <= GRID_LIMIT) {
        out.grid = { values: body.window, sign: true, caption: `${body.window.length}×${body.window[0].length} of ${inputName}, depth ${depth}` };
      }
      if (body.count !== cells) {
        out.notes.push([`The divisor is ${body.count}, not ${cells}: ${cells - body.count} places of the window are not counted (${body.count_include_pad ? "past the padding" : "padding: only the input's own numbers count"}).`]);
      } else {
        out.notes.push([`The divisor is all ${cells} places of the window${body.count_include_pad ? " (padding, as 0, counts too)" : ""}.`]);
      }
      return out;
    }
    case "gap": {
      // The server sends the channel's first numbers only (window_rows x window_cols) and
      // the exact sum of all of them.
      const [h, w] = [body.input.rows[1] - body.input.rows[0], body.input.cols[1] - body.input.cols[0]];
      const [shownH, shownW] = [body.window.length, body.window[0]?.length || 0];
      const whole = shownH === h && shownW === w;
      out.formula = [`sum of all ${body.count} numbers of the channel `, n(body.sum), ` ÷ ${body.count} = `, value];
      out.slice = window;
      if (shownH <= GRID_LIMIT && shownW <= GRID_LIMIT) {
        const caption = whole
          ? `${h}×${w} of ${inputName}, depth ${depth}`
          : `rows 0–${shownH - 1}, cols 0–${shownW - 1} of the ${h}×${w} slice ${depth} of ${inputName}`;
        out.grid = { values: body.window, sign: true, caption };
      }
      out.notes.push([`Global average pool: the mean of the whole ${h}×${w} slice ${depth} of ${inputName}.`]);
      if (!whole) out.notes.push([`Its first ${shownH}×${shownW} numbers are shown; the sum is of all ${body.count}.`]);
      return out;
    }
    case "batchnorm":
      out.formula = ["γ × (x ", MINUS, " mean) ÷ √(var + ε) + β = ", n(body.gamma, { sign: false }), " × (", n(x, { sign: false }), ` ${MINUS} `, n(body.mean, { sign: false }), ") ÷ ", n(body.std, { sign: false, digits: 4 }), " + ", n(body.beta, { sign: false }), " = ", value];
      out.slice = cell;
      out.table = {
        head: ["", "number", "what it is"],
        rows: [
          ["x", n(x), `${inputName} at row ${row}, col ${col}, depth ${depth}`],
          ["mean", n(body.mean), `channel ${depth}'s running mean, frozen after training`],
          ["var", n(body.var, { sign: false }), "its running variance"],
          ["ε", n(body.eps, { sign: false }), "keeps the division finite"],
          ["√(var + ε)", n(body.std, { sign: false, digits: 4 }), "the channel's standard deviation"],
          ["(x − mean) ÷ √(var + ε)", n(body.normalized, { digits: 4 }), "x in standard deviations from the mean"],
          ["γ", n(body.gamma), "the learned scale"],
          ["β", n(body.beta), "the learned shift"],
        ],
        chosen: -1,
      };
      return out;
    case "leakyrelu":
      out.formula = x > 0 ? ["x = ", n(x), " > 0, so it passes: ", value] : ["x = ", n(x), ` ≤ 0, so α × x = ${body.alpha} × `, n(x), " = ", value];
      out.slice = cell;
      out.notes.push([`Leaky relu: positive numbers pass unchanged, the others are scaled by α = ${body.alpha} instead of set to 0, so a little gradient still flows.`]);
      return out;
    case "sigmoid": {
      const e = Math.exp(-x);
      out.formula = ["1 ÷ (1 + e^(", MINUS, "x)) = 1 ÷ (1 + ", n(e, { sign: false, digits: 4 }), ") = ", value];
      out.slice = cell;
      out.notes.push(["Sigmoid squashes any number into (0, 1): large positive near 1, large negative near 0, 0 to 0.5."]);
      return out;
    }
    case "tanh": {
      const [ep, em] = [Math.exp(x), Math.exp(-x)];
      out.formula = ["tanh(", n(x), ") = (eˣ ", MINUS, " e^(", MINUS, "x)) ÷ (eˣ + e^(", MINUS, "x)) = (", n(ep, { sign: false, digits: 4 }), ` ${MINUS} `, n(em, { sign: false, digits: 4 }), ") ÷ (", n(ep, { sign: false, digits: 4 }), " + ", n(em, { sign: false, digits: 4 }), ") = ", value];
      out.slice = cell;
      out.notes.push(["Tanh squashes any number into (−1, 1), keeping its sign; 0 stays 0."]);
      return out;
    }
    case "flatten": {
      const [r, c, d] = body.source;
      const [h, w] = body.input.shape;
      out.formula = [`copies ${inputName} at row ${r}, col ${c}, depth ${d}: `, value];
      out.slice = { depth: d, cells: [[r, c]] };
      out.notes.push([`Flatten lays the volume out depth slice by depth slice, row by row (as torch.flatten on NCHW): place ${depth} = ${d} × ${h}×${w} + ${r} × ${w} + ${c}.`]);
      return out;
    }
    case "logsoftmax": {
      const name = (i) => classes[i] ?? String(i);
      out.formula = ["x ", MINUS, " (max + log Σ e^(x ", MINUS, " max)) = ", n(body.logits[depth]), ` ${MINUS} `, n(body.logsumexp, { digits: 5 }), " = ", value];
      out.table = {
        head: ["class", "score x", `x ${MINUS} max`, `e^(x ${MINUS} max)`, "log-probability", "probability"],
        rows: body.logits.map((v, i) => [name(i), n(v), n(v - body.max), n(body.exps[i], { sign: false, digits: 4 }), n(v - body.logsumexp, { digits: 4 }), `${(100 * Math.exp(v - body.logsumexp)).toFixed(1)}%`]),
        chosen: depth,
      };
      out.notes.push(["max = ", n(body.max), ", Σ e^(x − max) = ", n(body.sum, { sign: false, digits: 5 }), ", log Σ = ", n(Math.log(body.sum), { sign: false, digits: 5 }), ": subtracting the max first keeps every exponential ≤ 1, so none overflows."]);
      return out;
    }
    default:
      return null;
  }
}
