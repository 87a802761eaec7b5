// node --test tests/js/: parseNpy (static/js/api.js) reads the server's .npy layers. The
// pytest wrapper (tests/test_modelcard_js.py) passes a file numpy.save wrote, in NPY_FIXTURE.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { parseNpy } from "../../static/js/api.js";

function npyBytes(shape, values) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}), }`;
  while ((10 + header.length + 1) % 64) header += " ";
  header += "\n";
  const out = new Uint8Array(10 + header.length + 4 * values.length);
  out.set([0x93, ..."NUMPY"].map((c) => (typeof c === "string" ? c.charCodeAt(0) : c)));
  out.set([1, 0, header.length & 255, header.length >> 8], 6);
  out.set(new TextEncoder().encode(header), 10);
  new Float32Array(out.buffer, 10 + header.length).set(values);
  return out.buffer;
}

test("values are read at [row][col][depth] of an (H, W, D) volume", () => {
  const values = Array.from({ length: 24 }, (_, i) => i / 8);
  const array = parseNpy(npyBytes([2, 3, 4], values));
  assert.deepEqual(array.shape, [2, 3, 4]);
  assert.equal(array.at(1, 2, 3), values[(1 * 3 + 2) * 4 + 3]);
  assert.equal(array.at(0, 1, 0), values[4]);
});

test("a file numpy wrote", { skip: !process.env.NPY_FIXTURE }, () => {
  const file = readFileSync(process.env.NPY_FIXTURE);
  const array = parseNpy(file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength));
  assert.deepEqual(array.shape, [3, 5, 2]);
  // numpy: np.arange(30, dtype=np.float32).reshape(3, 5, 2) / 7
  assert.equal(array.at(2, 4, 1), Math.fround(29 / 7));
  assert.equal(array.at(1, 0, 1), Math.fround(11 / 7));
});
