/**
 * Pure helpers of the "How this number is computed" panel (static/js/neuron.js): signed
 * numbers a projector shows clearly, the ranking of a conv neuron's input channels, the
 * order a step-through visits neurons in, and the neuron's place in the URL. No DOM here,
 * so `node --test tests/js` checks them.
 */

export const MINUS = "\u2212"; // a real minus sign: as wide as the plus, unlike a hyphen

/** v with an explicit sign ("+0.347", "−1.23", "0"), `digits` significant digits. */
export function signed(v, digits = 3) {
  if (v === 0 || Object.is(v, -0)) return "0";
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
