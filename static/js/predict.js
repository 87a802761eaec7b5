// "uint8-predicted" layer lines (app/stream.py): a ReLU or 2x2 max pool layer's bytes sent as
// their difference from what the previous layer's bytes predict. The prediction is
// app/prediction.py's arithmetic in the same order, so these are the same double-precision
// numbers, and the bytes come back exactly.

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const VALUE = new Uint8Array(128).fill(255);
for (let i = 0; i < 64; i++) VALUE[BASE64.charCodeAt(i)] = i;
const OFFSET = 32; // a difference d travels as BASE64[d + OFFSET]

/** The predicted byte for each previous byte 0..255 (app/prediction.py `table`). */
export function predictionTable(how, [loPrev, hiPrev], [lo, hi]) {
  const table = new Int16Array(256);
  const step = (hiPrev - loPrev) / 255;
  const k = 255 / (hi - lo);
  for (let q = 0; q < 256; q++) {
    let x = q * step + loPrev;
    if (how === "relu") x = Math.max(x, 0);
    table[q] = Math.min(255, Math.max(0, Math.floor((x - lo) * k + 0.5)));
  }
  return table;
}

/**
 * A "uint8-predicted" line's bytes (D, H, W) from the line before it, whose `data` is
 * already its bytes. Throws RangeError with a sentence if the two do not fit together.
 */
export function decodePredicted(message, previous) {
  const [h, w, d] = message.shape;
  const text = message.data;
  const before = previous?.data;
  if (!(before instanceof Uint8Array) || previous.type !== "layer") {
    throw new RangeError(`Layer ${message.index} came before the layer it is predicted from.`);
  }
  if (text.length !== h * w * d) {
    throw new RangeError(`Layer ${message.index} came with ${text.length} numbers where ${h * w * d} were due.`);
  }
  const table = predictionTable(
    message.prediction,
    [previous.scale.min, previous.scale.max],
    [message.scale.min, message.scale.max],
  );
  const bytes = new Uint8Array(h * w * d);
  let bad = 0;
  if (message.prediction === "relu") {
    if (before.length !== bytes.length) throw new RangeError(`Layer ${message.index} does not fit the layer before it.`);
    for (let i = 0; i < bytes.length; i++) {
      const difference = VALUE[text.charCodeAt(i) & 127];
      const value = table[before[i]] + difference - OFFSET;
      bad |= (difference & 64) | (value & ~255);
      bytes[i] = value;
    }
  } else if (message.prediction === "max2x2") {
    const [ph, pw] = [2 * h, 2 * w];
    if (before.length !== ph * pw * d) throw new RangeError(`Layer ${message.index} does not fit the layer before it.`);
    let i = 0;
    for (let c = 0; c < d; c++) {
      for (let r = 0; r < h; r++) {
        let top = (c * ph + 2 * r) * pw;
        for (let col = 0; col < w; col++, top += 2) {
          const bottom = top + pw;
          const largest = Math.max(before[top], before[top + 1], before[bottom], before[bottom + 1]);
          const difference = VALUE[text.charCodeAt(i) & 127];
          const value = table[largest] + difference - OFFSET;
          bad |= (difference & 64) | (value & ~255);
          bytes[i++] = value;
        }
      }
    }
  } else {
    throw new RangeError(`Layer ${message.index} names a prediction this page does not know.`);
  }
  // A character outside the alphabet is 255 in VALUE (bit 64 set); a value outside 0..255
  // has bits above the low eight.
  if (bad) throw new RangeError(`Layer ${message.index}'s numbers are damaged.`);
  return bytes;
}
