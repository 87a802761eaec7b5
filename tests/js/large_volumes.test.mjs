// node --test tests/js/: the pieces that let the page take a 224x224 run: LineReader
// (static/js/api.js, what the stream worker runs) splitting NDJSON that arrives in any
// pieces, the thumbs a large slice is drawn as (static/js/volume.js), and the scores of a
// model with many classes (static/js/scores.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, LineReader } from "../../static/js/api.js";
import { shownClasses } from "../../static/js/scores.js";
import { sampleIndex, thumbSize } from "../../static/js/volume.js";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** The "uint8-split" text of `bytes`, written out by hand (app/stream.py's format). */
function split(bytes) {
  let top = "";
  let low = "";
  for (const b of bytes) top += ALPHABET[b >> 2];
  for (let i = 0; i < bytes.length; i += 3) {
    const l = [0, 1, 2].map((k) => (i + k < bytes.length ? bytes[i + k] & 3 : 0));
    low += ALPHABET[(l[0] << 4) | (l[1] << 2) | l[2]];
  }
  return top + low;
}

function stream() {
  const bytes = Uint8Array.from({ length: 2 * 3 * 5 }, (_, i) => (i * 53) & 255);
  const lines = [
    { type: "run", id: "r1", input: { shape: [1, 2, 1], encoding: "uint8", data: Buffer.from([7, 250]).toString("base64") } },
    { type: "layer", index: 0, shape: [2, 3, 5], encoding: "uint8-split", data: split(bytes) },
    { type: "scores", probabilities: [0.25, 0.75] },
  ];
  return { bytes, text: lines.map((line) => JSON.stringify(line)).join("\n") + "\n" };
}

test("lines come out whole and decoded, whatever pieces the text arrives in", () => {
  const { bytes, text } = stream();
  for (const size of [1, 2, 7, 64, text.length]) {
    const got = [];
    const reader = new LineReader((message) => got.push(message));
    for (let i = 0; i < text.length; i += size) reader.push(text.slice(i, i + size));
    reader.end();
    assert.deepEqual(got.map((m) => m.type), ["run", "layer", "scores"], `pieces of ${size}`);
    assert.deepEqual(got[0].input.data, Uint8Array.from([7, 250]));
    assert.equal(got[1].encoding, "uint8");
    assert.deepEqual(got[1].data, bytes);
    // Its own buffer, so the worker can hand it to the page without a copy.
    assert.equal(got[1].data.buffer.byteLength, bytes.length);
  }
});

test("a last line without its newline still counts; an error line throws its sentence", () => {
  const got = [];
  const reader = new LineReader((message) => got.push(message));
  reader.push('{"type":"scores","probabilities":[1]}');
  reader.end();
  assert.equal(got.length, 1);
  const failing = new LineReader(() => {});
  assert.throws(() => failing.push('{"type":"error","detail":"The model failed at conv3."}\n'), (error) => {
    return error instanceof ApiError && error.message === "The model failed at conv3.";
  });
});

test("a large slice's thumb keeps its proportions and samples the nearest cells", () => {
  assert.deepEqual(thumbSize(224, 224), [96, 96]);
  assert.deepEqual(thumbSize(224, 112), [96, 48]);
  assert.deepEqual(thumbSize(32, 32), [32, 32]); // a small slice is drawn as it is
  assert.deepEqual(thumbSize(1, 1000), [1, 96]);
  const rows = Array.from(sampleIndex(224, 96));
  assert.equal(rows.length, 96);
  assert.ok(rows.every((r, i) => r >= 0 && r < 224 && (i === 0 || r > rows[i - 1])));
  // Cell i of the thumb shows the source cell under its centre.
  assert.deepEqual(rows.slice(0, 3), [1, 3, 5]);
  assert.equal(rows.at(-1), 222);
  assert.deepEqual(Array.from(sampleIndex(3, 3)), [0, 1, 2]);
});

test("up to 20 classes are shown in order; past that the 10 most likely, most likely first", () => {
  const ten = [0.1, 0.3, 0.05, 0.05, 0.1, 0.1, 0.1, 0.05, 0.05, 0.1];
  assert.deepEqual(shownClasses(ten), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const many = Array.from({ length: 1000 }, (_, i) => (i % 7 === 0 ? 0.002 : 0.0005));
  many[676] = 0.016;
  many[66] = 0.01;
  const shown = shownClasses(many);
  assert.equal(shown.length, 10);
  assert.deepEqual(shown.slice(0, 3), [676, 66, 0]); // ties by index
  assert.ok(shown.slice(2).every((i) => many[i] === 0.002));
});
