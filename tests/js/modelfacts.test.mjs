// node --test tests/js/: the model facts and the borrowed samples (static/js/modelfacts.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { formatCount, modelFacts, withBorrowedSamples } from "../../static/js/modelfacts.js";

const layers = [{ param_count: 300000 }, { param_count: 7498 }];

test("a shipped model states its accuracy", () => {
  const info = { layers, trained: true, test_accuracy: 0.8606, source: null };
  assert.equal(modelFacts(info), "2 layers · 307k parameters · 86.1% on the test set");
});

test("an imported model states its source and that its accuracy is not measured", () => {
  const source = { file: "net.onnx", imported: "2026-12-01T22:35:54+00:00" };
  const info = { layers, trained: true, test_accuracy: null, source };
  assert.equal(
    modelFacts(info),
    "2 layers · 307k parameters · accuracy not measured · imported from net.onnx on 2026-12-01",
  );
  assert.match(modelFacts({ ...info, test_accuracy: 0.5 }), /50\.0% on the test set · imported/);
});

test("counts are short", () => {
  assert.deepEqual([437, 29000, 307498, 20123456].map(formatCount), ["0.4k", "29k", "307k", "20.1M"]);
});

test("a model without samples borrows those of a model with as many channels", () => {
  const samples = [
    { id: "c-cat", model: "cifar10" },
    { id: "m-7", model: "mnist" },
  ];
  const models = [
    { id: "cifar10", input: [32, 32, 3] },
    { id: "mnist", input: [28, 28, 1] },
    { id: "mine", input: [224, 224, 3] },
    { id: "grey", input: [12, 12, 1] },
  ];
  assert.deepEqual(withBorrowedSamples(samples, models).slice(2), [
    { id: "mine-c-cat", model: "mine" },
    { id: "grey-m-7", model: "grey" },
  ]);
});
