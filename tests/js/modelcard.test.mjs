// node --test tests/js: the model card's chart geometry (static/js/modelcard.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { historyLines } from "../../static/js/modelcard.js";

const history = [
  { epoch: 1, loss: 2.0, train_accuracy: 0.25, test_accuracy: 0.5 },
  { epoch: 2, loss: 1.0, train_accuracy: 0.5, test_accuracy: 0.75 },
  { epoch: 3, loss: 0.5, train_accuracy: 1.0, test_accuracy: 1.0 },
];

test("epochs spread over the width inside the padding, accuracies on a 0-100% axis", () => {
  const g = historyLines(history, 236, 136, 18);
  // x: 18 .. 218 in two equal steps; y: 100% at 18, 0% at 118.
  assert.equal(g.test, "18.0,68.0 118.0,43.0 218.0,18.0");
  assert.equal(g.train, "18.0,93.0 118.0,68.0 218.0,18.0");
});

test("the loss is scaled to its own maximum", () => {
  const g = historyLines(history, 236, 136, 18);
  assert.equal(g.maxLoss, 2.0);
  assert.equal(g.loss, "18.0,18.0 118.0,68.0 218.0,93.0");
});

test("a single epoch sits on the left axis", () => {
  const g = historyLines(history.slice(0, 1), 100, 100, 10);
  assert.equal(g.test, "10.0,50.0");
});
