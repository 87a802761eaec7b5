// The readout's number formatting and the 3D view's depth extent: node --test tests/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { stackExtent } from "../../static/js/box3d.js";
import { float32Text, shortValue } from "../../static/js/numbers.js";

test("a value is shown with four significant digits", () => {
  assert.equal(shortValue(-8.20040512084961), "-8.2");
  assert.equal(shortValue(-8.21540512084961), "-8.215");
  assert.equal(shortValue(0.123456), "0.1235");
  assert.equal(shortValue(1234.5678), "1235");
  assert.equal(shortValue(0), "0");
  assert.equal(shortValue(123456), "1.235e+5");
  assert.equal(shortValue(0.00012), "1.2e-4");
});

test("the exact text of a float32 is its shortest round-tripping decimal", () => {
  const f = Math.fround(-8.200405);
  assert.equal(String(f), "-8.20040512084961"); // what the page printed before
  assert.equal(float32Text(f), "-8.200405");
  for (const x of [Math.fround(0.1), Math.fround(1 / 3), Math.fround(-1e-7), Math.fround(3.4e38), 1, -2.5]) {
    const text = float32Text(x);
    assert.equal(Math.fround(Number(text)), x, text);
    assert.ok(text.replace(/[-.]|e.*$/g, "").length <= 9, text);
  }
});

test("the spread slider moves the stack over its whole range, for any depth", () => {
  for (const depth of [2, 3, 16, 32, 64, 128, 512]) {
    let last = -1;
    for (let step = 0; step <= 100; step++) {
      const extent = stackExtent(step / 100, depth);
      assert.ok(extent > last, `depth ${depth}: spread ${step / 100} gives ${extent}, not more than ${last}`);
      last = extent;
    }
  }
  assert.equal(stackExtent(0.7, 1), 0);
  // The default (0.35) keeps the look it had for deep layers.
  assert.ok(Math.abs(stackExtent(0.35, 128) - 2.4) < 0.05);
});
