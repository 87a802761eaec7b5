// node --test tests/js/: decodeSplit and decodeLine (static/js/api.js) read the server's
// "uint8-split" layer lines (app/stream.py). The pytest wrapper (tests/api/test_wire.py)
// passes the server's own encoding of known bytes in SPLIT_FIXTURE.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { ApiError, decodeBase64, decodeLine, decodeSplit } from "../../static/js/api.js";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The format written out by hand, independently of the decoder under test.
function encode(bytes) {
  let top = "";
  let low = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const l = [0, 1, 2].map((k) => (i + k < bytes.length ? bytes[i + k] & 3 : 0));
    low += ALPHABET[(l[0] << 4) | (l[1] << 2) | l[2]];
  }
  for (const b of bytes) top += ALPHABET[b >> 2];
  return top + low;
}

test("every byte value, and every length modulo 3, comes back exactly", () => {
  for (const length of [0, 1, 2, 3, 4, 5, 256, 1000]) {
    const bytes = Uint8Array.from({ length }, (_, i) => (i * 37 + (i >> 3)) & 255);
    assert.deepEqual(decodeSplit(encode(bytes), length), bytes);
  }
});

test("a text of the wrong length is refused with a sentence", () => {
  assert.throws(() => decodeSplit("AAAA", 4), ApiError);
});

test("a split layer line becomes a uint8 line with its bytes; others pass through", () => {
  const bytes = Uint8Array.from([0, 255, 7, 128, 3, 64]);
  const line = { type: "layer", shape: [1, 2, 3], encoding: "uint8-split", data: encode(bytes) };
  const decoded = decodeLine(line);
  assert.equal(decoded.encoding, "uint8");
  assert.deepEqual(decodeBase64(decoded.data), bytes); // what the page then calls
  const plain = { type: "layer", shape: [1, 1, 1], encoding: "uint8", data: "AA==" };
  assert.equal(decodeLine(plain), plain);
  assert.deepEqual(decodeBase64(plain.data), Uint8Array.from([0]));
});

test("the server's own encoding", { skip: !process.env.SPLIT_FIXTURE }, () => {
  const cases = JSON.parse(readFileSync(process.env.SPLIT_FIXTURE, "utf8"));
  for (const { bytes, text } of cases) {
    assert.deepEqual(Array.from(decodeSplit(text, bytes.length)), bytes);
  }
});
