// The page's state modules: the URL (urlstate.js), a run's life (run.js) and the layer
// kinds (kinds.js), with node's own test runner: node --test tests/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { isClassVector, kindFamily, lesson, showsBefore } from "../../static/js/kinds.js";
import { Run, progressText } from "../../static/js/run.js";
import { DEFAULTS, parseAngle, parseQuery, queryString } from "../../static/js/urlstate.js";

const RUN_ID = "0123456789abcdef0123456789abcdef";

test("a link names the whole view and reads back as the same view", () => {
  const view = {
    model: "cifar10",
    sample: null,
    run: RUN_ID,
    layer: 5,
    slice: 3,
    neuron: { row: 4, col: 7 },
    sequential: "magma",
    diverging: "seismic",
    scale: "slice",
    angle: { yaw: 0.25, pitch: -0.5 },
  };
  const query = queryString(view);
  assert.equal(
    query,
    `model=cifar10&run=${RUN_ID}&layer=5&slice=3&neuron=4%2C7&colors=magma&signed=seismic&scale=slice&angle=0.25%2C-0.50`,
  );
  assert.deepEqual(parseQuery(`?${query}`), view);
});

test("defaults stay out of the link, and a sample wins over a run", () => {
  const query = queryString({ model: "mnist", sample: "digit-7", run: RUN_ID, layer: 0, slice: 0, ...DEFAULTS, angle: null });
  assert.equal(query, "model=mnist&sample=digit-7&layer=0&slice=0");
});

test("a malformed link falls back to defaults rather than failing", () => {
  const view = parseQuery("?layer=-3&slice=x&run=../../etc&scale=huge&angle=1,nope&neuron=a,b");
  assert.equal(view.layer, 0);
  assert.equal(view.slice, 0);
  assert.equal(view.run, null);
  assert.equal(view.scale, "layer");
  assert.equal(view.angle, null);
  assert.equal(view.neuron, null);
  assert.deepEqual(parseAngle("0.1,9"), { yaw: 0.1, pitch: 1.45 }); // pitch is clamped as dragging clamps it
});

const MODEL = {
  id: "tiny",
  classes: ["a", "b"],
  trained: true,
  layers: [
    { name: "conv1", kind: "conv", shape: [2, 2, 1] },
    { name: "fc1", kind: "fc", shape: [1, 1, 2] },
  ],
};
const bytes = (...values) => Buffer.from(values).toString("base64");

test("a run reads the server's lines and says what each one changed", () => {
  const run = new Run(MODEL, null, { url: "/static/x.png" });
  assert.equal(progressText(run, MODEL.layers), "Sending the image to tiny…");
  run.upload = { sent: 40, total: 100 };
  assert.equal(progressText(run, MODEL.layers), "Uploading 40%");

  const input = { shape: [2, 2, 1], data: bytes(0, 64, 128, 255) };
  assert.deepEqual(run.receive({ type: "run", id: RUN_ID, trained: true, classes: ["a", "b"], layer_count: 2, input }), {
    boxes: [-1],
    input: true,
  });
  assert.equal(run.id, RUN_ID);
  assert.deepEqual([...run.inputVolume.data], [0, 64, 128, 255]);
  assert.equal(progressText(run, MODEL.layers), "Computing conv1… 0 / 2");
  assert.ok(run.computing(0) && !run.computing(1));

  const layer = { type: "layer", index: 0, shape: [2, 2, 1], scale: { min: -1, max: 1 }, data: bytes(0, 1, 2, 3) };
  assert.deepEqual(run.receive(layer), { boxes: [0, 1], layer: 0 });
  assert.deepEqual([...run.layers[0].data], [0, 1, 2, 3]);
  assert.equal(progressText(run, MODEL.layers), "Computing fc1… 1 / 2");

  run.receive({ ...layer, index: 1, shape: [1, 1, 2], data: bytes(9, 10) });
  assert.equal(progressText(run, MODEL.layers), "Scoring…");
  assert.deepEqual(run.receive({ type: "scores", probabilities: [0.25, 0.75] }), { boxes: [], scores: true });
  run.finish();
  assert.match(progressText(run, MODEL.layers), /^2 layers in \d+ ms$/);
  // The server's time, when its scores line says it: the page's is the lines' arrival.
  run.scores.elapsed_ms = 312.4;
  assert.equal(progressText(run, MODEL.layers), "2 layers in 312 ms");
  run.error = "refused";
  assert.equal(progressText(run, MODEL.layers), "Stopped: see the message");
});

test("a run's time counts from the server's first line, not from the upload", async () => {
  const run = new Run(MODEL, null, { url: "/static/x.png" });
  await new Promise((resolve) => setTimeout(resolve, 60)); // the upload
  run.receive({ type: "run", id: RUN_ID, trained: true, classes: ["a", "b"], layer_count: 2, input: { shape: [1, 1, 1], data: bytes(0) } });
  run.finish();
  assert.ok(run.finished - run.computeStarted < 50, `${run.finished - run.computeStarted} ms`);
});

test("layer kinds: families, the words that teach, before-and-after, bars", () => {
  assert.equal(kindFamily("conv2d"), "conv");
  assert.equal(kindFamily("maxpool"), "pool");
  assert.equal(kindFamily("logsoftmax"), "softmax");
  assert.equal(kindFamily("mystery"), "other");
  const pool = { kind: "pool", shape: [16, 16, 32], size: 2 };
  assert.match(lesson(pool, [32, 32, 32]), /32×32 to 16×16/);
  assert.match(lesson({ kind: "fc", shape: [1, 1, 10] }, [4, 4, 128]), /2,048 numbers/);
  assert.match(lesson({ kind: "conv", shape: [32, 32, 32], size: 3 }, [32, 32, 3]), /32 small filters \(3×3×3\)/);
  for (const kind of ["conv", "relu", "pool", "fc", "softmax"]) assert.ok(lesson({ kind, shape: [1, 1, 10] }, [2, 2, 3]).length > 40);
  assert.ok(showsBefore("relu") && showsBefore("avgpool") && !showsBefore("conv"));
  assert.ok(isClassVector({ shape: [1, 1, 10] }, new Array(10).fill("x")));
  assert.ok(!isClassVector({ shape: [1, 1, 12] }, new Array(10).fill("x")));
});

test("a large photo is shrunk to a 256 px shorter side, a small one not at all", async () => {
  const { shrunkSize } = await import("../../static/js/shrink.js");
  assert.deepEqual(shrunkSize(4032, 3024), { width: 341, height: 256 });
  assert.deepEqual(shrunkSize(300, 451), { width: 256, height: 385 });
  assert.equal(shrunkSize(256, 900), null);
  assert.equal(shrunkSize(48, 40), null);
  assert.equal(shrunkSize(0, 0), null);
});
