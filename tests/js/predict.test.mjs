// node --test tests/js/: decodePredicted (static/js/predict.js) reads the server's
// "uint8-predicted" layer lines (app/stream.py, app/prediction.py). The pytest wrapper
// (tests/api/test_wire.py) passes a stream the server encoded in PREDICTED_FIXTURE.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { decodePredicted, predictionTable } from "../../static/js/predict.js";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

test("the relu table: a previous byte's value, clipped at 0, on the layer's own scale", () => {
  // Previous scale -1..1.55 (step 0.01), ReLU scale 0..1.55: q 100 is 0.0, q 255 is 1.55.
  const table = predictionTable("relu", [-1, 1.55], [0, 1.55]);
  assert.equal(table[0], 0);
  assert.equal(table[100], 0);
  assert.equal(table[255], 255);
  assert.equal(table[178], Math.floor(((178 * 0.01 - 1) * 255) / 1.55 + 0.5));
});

test("a 2x2 pool line comes back from its differences and the blocks' largest bytes", () => {
  const previous = { type: "layer", shape: [2, 2, 1], scale: { min: 0, max: 255 }, data: Uint8Array.from([1, 9, 4, 3]) };
  // Same scale: the prediction is the largest byte, 9; the pool's byte is 11, a difference of +2.
  const line = { type: "layer", index: 1, shape: [1, 1, 1], scale: { min: 0, max: 255 }, prediction: "max2x2", data: ALPHABET[34] };
  assert.deepEqual(decodePredicted(line, previous), Uint8Array.from([11]));
});

test("damage and a missing predecessor are refused with a sentence", () => {
  const previous = { type: "layer", shape: [1, 2, 1], scale: { min: 0, max: 1 }, data: Uint8Array.from([0, 255]) };
  const line = { type: "layer", index: 3, shape: [1, 2, 1], scale: { min: 0, max: 1 }, prediction: "relu", data: "gg" };
  assert.deepEqual(decodePredicted(line, previous), Uint8Array.from([0, 255]));
  assert.throws(() => decodePredicted({ ...line, data: "g=" }, previous), /damaged/);
  assert.throws(() => decodePredicted({ ...line, data: "g/" }, previous), /damaged/); // 255 + 31
  assert.throws(() => decodePredicted(line, undefined), /came before/);
  assert.throws(() => decodePredicted({ ...line, data: "g" }, previous), /numbers where 2/);
});

test("the server's own encoding", { skip: !process.env.PREDICTED_FIXTURE }, () => {
  const { lines, bytes } = JSON.parse(readFileSync(process.env.PREDICTED_FIXTURE, "utf8"));
  let previous;
  lines.forEach((line, i) => {
    const decoded = line.encoding === "uint8-predicted" ? decodePredicted(line, previous) : Uint8Array.from(bytes[i]);
    assert.deepEqual(Array.from(decoded), bytes[i], `line ${i}`);
    previous = { ...line, data: decoded };
  });
});

test("the page's line reader decodes a predicted stream in order", { skip: !process.env.PREDICTED_FIXTURE }, async () => {
  const { LineReader } = await import("../../static/js/api.js");
  const { lines, bytes } = JSON.parse(readFileSync(process.env.PREDICTED_FIXTURE, "utf8"));
  const seen = [];
  // As the stream worker does: each line's bytes are handed over (transferred), which
  // leaves the reader's own view of them empty.
  const reader = new LineReader((message) => {
    seen.push({ ...message, data: Uint8Array.from(message.data) });
    if (message.data instanceof Uint8Array) structuredClone(message.data.buffer, { transfer: [message.data.buffer] });
  });
  const text = lines.map((line) => JSON.stringify(line)).join("\n") + "\n";
  for (let i = 0; i < text.length; i += 997) reader.push(text.slice(i, i + 997)); // any pieces
  reader.end();
  assert.equal(seen.length, lines.length);
  seen.forEach((message, i) => {
    assert.equal(message.encoding, "uint8");
    assert.deepEqual(Array.from(message.data), bytes[i], `line ${i}`);
  });
});
