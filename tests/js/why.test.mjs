// The Why view's pure functions (static/js/why.js), with node's own test runner:
//   node --test tests/js/
import assert from "node:assert/strict";
import test from "node:test";

import { centreCrop, gradcamLayers, mapRange } from "../../static/js/why.js";

test("the centre crop is the server's (app/imaging.py fit)", () => {
  assert.deepEqual(centreCrop(60, 40, 32, 32), { x: 10, y: 0, width: 40, height: 40 });
  assert.deepEqual(centreCrop(40, 100, 32, 32), { x: 0, y: 30, width: 40, height: 40 });
  assert.deepEqual(centreCrop(64, 32, 32, 16), { x: 0, y: 0, width: 64, height: 32 });
});

test("colour limits: 0..limit, or symmetric when the map is signed", () => {
  assert.deepEqual(mapRange([[0, 1]], [0, 2]), { signed: false, limit: 2, lo: 0, hi: 2, map: "viridis" });
  assert.deepEqual(mapRange([[-1, 1]], [-3, 3]), { signed: true, limit: 3, lo: -3, hi: 3, map: "coolwarm" });
  assert.equal(mapRange([[0]], [0, 0]).limit, 1); // a blank map draws nothing, not NaN
});

test("Grad-CAM layers: conv, relu or pool before the fc; the last larger than 1x1 preferred", () => {
  const layers = [
    { index: 0, kind: "conv", shape: [4, 4, 2] },
    { index: 1, kind: "relu", shape: [4, 4, 2] },
    { index: 2, kind: "pool", shape: [2, 2, 2] },
    { index: 3, kind: "conv", shape: [1, 1, 8] },
    { index: 4, kind: "fc", shape: [1, 1, 3] },
    { index: 5, kind: "softmax", shape: [1, 1, 3] },
  ];
  const { usable, preferred } = gradcamLayers(layers);
  assert.deepEqual(usable.map((l) => l.index), [0, 1, 2, 3]);
  assert.equal(preferred, 2);
});
