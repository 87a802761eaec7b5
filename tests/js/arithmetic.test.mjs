// node --test tests/js: the pure helpers of the neuron arithmetic panel.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MINUS,
  float32Text,
  followPosition,
  neuronParam,
  parseNeuron,
  plain,
  rankChannels,
  signed,
  stepPosition,
  weightCountText,
} from "../../static/js/arithmetic.js";

test("signed numbers carry a sign a projector shows: + or a real minus", () => {
  assert.equal(signed(0.34663), "+0.347");
  assert.equal(signed(-1.2304), `${MINUS}1.23`);
  assert.equal(signed(0), "0");
  assert.equal(signed(-0), "0");
  assert.equal(signed(12345.6), "+1.23e4");
  assert.equal(signed(-0.00012), `${MINUS}1.20e${MINUS}4`);
  assert.equal(signed(2), "+2");
  assert.equal(plain(0.5), "0.5");
  assert.equal(plain(-0.5), `${MINUS}0.5`);
  assert.ok(!signed(-3).includes("-"), "no hyphen-minus");
});

test("channels rank by how much they move the sum; the rest is summarised", () => {
  const sums = [0.1, -2, 0.5, 0, -0.3, 1.5];
  const { top, rest, order } = rankChannels(sums, 3);
  assert.deepEqual(
    top.map((c) => c.channel),
    [1, 5, 2],
  );
  assert.equal(order.length, 6);
  assert.equal(rest.count, 3);
  assert.ok(Math.abs(rest.sum - (0.1 + 0 - 0.3)) < 1e-12);
  assert.deepEqual([rest.up, rest.down], [1, 1]);
  assert.ok(Math.abs(rest.upSum - 0.1) < 1e-12 && Math.abs(rest.downSum + 0.3) < 1e-12);
  const all = rankChannels(sums, 10);
  assert.equal(all.rest.count, 0);
  assert.equal(all.top.length, 6);
});

test("a step-through slides along each row, then down, and wraps both ways", () => {
  assert.deepEqual(stepPosition([0, 0, 4], [3, 3, 8]), [0, 1, 4]);
  assert.deepEqual(stepPosition([0, 2, 4], [3, 3, 8]), [1, 0, 4]);
  assert.deepEqual(stepPosition([2, 2, 4], [3, 3, 8]), [0, 0, 4]);
  assert.deepEqual(stepPosition([0, 0, 4], [3, 3, 8], -1), [2, 2, 4]);
  assert.deepEqual(stepPosition([0, 0, 9], [1, 1, 10]), [0, 0, 0]);
  assert.deepEqual(stepPosition([0, 0, 0], [1, 1, 10], -1), [0, 0, 9]);
});

test("the neuron's URL parameter round-trips and refuses anything else", () => {
  assert.equal(neuronParam({ row: 3, col: 12 }), "3,12");
  assert.deepEqual(parseNeuron("3,12"), { row: 3, col: 12 });
  for (const bad of [null, "", "3", "-1,2", "1,2,3", "a,b", "1, 2"]) assert.equal(parseNeuron(bad), null);
});

test("following a neuron to another layer keeps its place in the picture", () => {
  assert.deepEqual(followPosition({ row: 31, col: 0 }, [32, 32], [16, 16]), { row: 15, col: 0 });
  assert.deepEqual(followPosition({ row: 5, col: 9 }, [16, 16], [32, 32]), { row: 11, col: 19 });
  assert.deepEqual(followPosition({ row: 7, col: 7 }, [8, 8], [1, 1]), { row: 0, col: 0 });
});

test("float32 numbers print in the fewest digits that name them", () => {
  assert.equal(float32Text(0.9857866764068604), "0.9857867");
  assert.equal(float32Text(Math.fround(0.1)), "0.1");
  assert.equal(float32Text(0), "0");
  assert.equal(float32Text(Math.fround(-2.1456499099731445)), "-2.14565");
  assert.equal(float32Text(Math.fround(3e-8)), "3e-8");
});

test("weight counts are spelled out", () => {
  assert.equal(weightCountText([3, 3, 64]), "3×3×64 + 1 = 577");
  assert.equal(weightCountText([16, 16, 64]), "16×16×64 + 1 = 16,385");
});
