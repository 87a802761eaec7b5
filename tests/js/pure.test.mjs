// The page's pure functions, with node's own test runner: node --test tests/js/
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { replayInterval } from "../../static/js/channels.js";
import { receptiveBox } from "../../static/js/detail.js";
import { formatValue } from "../../static/js/volume.js";

const cases = JSON.parse(readFileSync(new URL("./receptive_fields.json", import.meta.url)));

test("the receptive-field box is model/'s, for every layer of every shipped model", () => {
  assert.ok(cases.length > 50);
  for (const c of cases) {
    const [row, col] = c.neuron;
    assert.deepEqual(receptiveBox(c.rf, row, col, ...c.input), c.box, `${c.model} layer ${c.layer} (${row}, ${col})`);
  }
});

test("a box is clipped to the input", () => {
  assert.deepEqual(receptiveBox({ size: 5, jump: 1, start: 0 }, 0, 0, 8, 8), { top: 0, left: 0, bottom: 2, right: 2 });
  assert.deepEqual(receptiveBox({ size: 5, jump: 2, start: 0.5 }, 3, 3, 8, 8), { top: 5, left: 5, bottom: 7, right: 7 });
});

test("values are formatted with three significant digits, no trailing zeros", () => {
  assert.equal(formatValue(0), "0");
  assert.equal(formatValue(1.5), "1.5");
  assert.equal(formatValue(2), "2");
  assert.equal(formatValue(-0.12345), "-0.123");
  assert.equal(formatValue(123.456), "123");
  assert.equal(formatValue(12345), "1.23e+4");
  assert.equal(formatValue(0.0001234), "1.23e-4");
});

test("a replay of 6 stored frames lasts as long as one of 30, and many frames stay 80 ms each", () => {
  assert.equal(replayInterval(6), 400);
  assert.equal(replayInterval(30), 80);
  assert.equal(replayInterval(33), 80);
  assert.equal(replayInterval(0), 2400);
});
