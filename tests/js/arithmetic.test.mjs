// node --test tests/js: the pure helpers of the neuron arithmetic panel.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MINUS,
  convNote,
  describeNeuron,
  float32Text,
  inputChannel,
  kernelOf,
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

// --- an imported model's kinds --------------------------------------------------------------

const base = (kind, extra) => ({
  kind,
  position: [1, 2, 3],
  input: { layer: 0, name: "conv1", shape: [4, 5, 6], rows: [-1, 2], cols: [0, 3] },
  ...extra,
});
const numbers = (tokens) => tokens.filter((t) => typeof t !== "string").map((t) => t.v);

test("a conv2d neuron is a conv with its kernel, channels read and what it does beyond", () => {
  const window = [[[1], [2]], [[3], [4]], [[5], [6]]]; // 3x2, one channel
  const depthwise = base("conv2d", { window, input_channels: [5], dilation: [2, 2], stride: [1, 2] });
  assert.deepEqual(kernelOf(depthwise), [3, 2, 1]);
  assert.equal(inputChannel(depthwise, 0), 5);
  assert.equal(inputChannel({ kind: "conv" }, 4), 4);
  const note = convNote(depthwise);
  assert.match(note, /^This filter reads every 2 numbers apart \(dilation\)/);
  assert.match(note, /moves 1×2 steps to the next neuron \(stride\)/);
  assert.match(note, /; is depthwise: it reads input channel 5 only, of 6\.$/);
  const plainConv = base("conv2d", { window, input_channels: [0], dilation: [1, 1], stride: [1, 1] });
  plainConv.input.shape = [4, 5, 1];
  assert.equal(convNote(plainConv), "");
  assert.equal(convNote({ kind: "conv" }), "");
});

test("a max pool marks its maximum and shows the padding as minus infinity", () => {
  const body = base("maxpool", { window: [[null, null], [0.5, 2]], argmax: [1, 1], value: 2, recomputed: 2 });
  const shown = describeNeuron(body, { inputName: "conv1" });
  assert.deepEqual(shown.grid.values, [[-Infinity, -Infinity], [0.5, 2]]);
  assert.deepEqual(shown.grid.mark, [1, 1]);
  assert.deepEqual(shown.slice, { depth: 3, rows: [-1, 2], cols: [0, 3] });
  assert.match(shown.notes[0][0], /row 0, col 1 of conv1/);
  assert.match(shown.notes[1][0], /2 places of the window lie in the padding/);
  assert.equal(signed(-Infinity), `${MINUS}∞`);
});

test("an average pool says its divisor and why it is not the window's size", () => {
  const window = [[0, 0, 0], [0, 1, 2], [0, 3, 4]];
  const counted = [[false, false, false], [false, true, true], [false, true, true]];
  const body = base("avgpool", { window, counted, count: 4, sum: 10, count_include_pad: false, recomputed: 2.5 });
  const shown = describeNeuron(body);
  assert.deepEqual(numbers(shown.formula), [10, 2.5]);
  assert.ok(shown.formula.includes(" ÷ 4 = "));
  assert.match(shown.notes[0][0], /divisor is 4, not 9: 5 places .* only the input's own numbers count/);
  const all = describeNeuron({ ...body, count: 9, count_include_pad: true, recomputed: 10 / 9 });
  assert.match(all.notes[0][0], /all 9 places .*padding, as 0, counts too/);
});

test("a global average pool shows the corner the server sent and the sum of the whole channel", () => {
  const input = { layer: 3, name: "relu2", shape: [224, 224, 64], rows: [0, 224], cols: [0, 224] };
  const window = Array.from({ length: 12 }, (_, r) => Array.from({ length: 12 }, (_, c) => r - c));
  const body = { ...base("gap", { window, count: 50176, sum: 25088, mean: 0.5, recomputed: 0.5 }), position: [0, 0, 7], input };
  const shown = describeNeuron(body, { inputName: "relu2" });
  assert.deepEqual(numbers(shown.formula), [25088, 0.5]);
  assert.match(shown.formula[0], /all 50176 numbers/);
  assert.equal(shown.grid.values, window);
  assert.equal(shown.grid.caption, "rows 0–11, cols 0–11 of the 224×224 slice 7 of relu2");
  assert.deepEqual(shown.slice, { depth: 7, rows: [0, 224], cols: [0, 224] }); // all of it is summed
  assert.match(shown.notes[1][0], /first 12×12 numbers are shown; the sum is of all 50176/);
  // A channel small enough to send whole is captioned as the whole.
  const small = { ...input, shape: [5, 5, 6], rows: [0, 5], cols: [0, 5] };
  const five = Array(5).fill(Array(5).fill(1));
  const whole = describeNeuron({ ...body, window: five, count: 25, sum: 25, input: small }, { inputName: "pool1" });
  assert.equal(whole.grid.caption, "5×5 of pool1, depth 7");
  assert.equal(whole.notes.length, 1);
});

test("batchnorm, the squashing kinds and flatten put their numbers in the formula", () => {
  const bn = describeNeuron(
    base("batchnorm", { input_value: 1.5, mean: 0.5, var: 3, eps: 1, std: 2, normalized: 0.5, gamma: 2, beta: -1, recomputed: 0 }),
  );
  assert.deepEqual(numbers(bn.formula), [2, 1.5, 0.5, 2, -1, 0]);
  assert.deepEqual(bn.slice, { depth: 3, cells: [[1, 2]] });
  assert.equal(bn.table.rows.length, 8);
  const leaky = describeNeuron(base("leakyrelu", { input_value: -2, alpha: 0.1, recomputed: -0.2 }));
  assert.ok(leaky.formula.some((t) => typeof t === "string" && t.includes("0.1 ×")));
  const sig = describeNeuron(base("sigmoid", { input_value: 0, recomputed: 0.5 }));
  assert.deepEqual(numbers(sig.formula), [1, 0.5]); // e^0 = 1
  const tanh = describeNeuron(base("tanh", { input_value: Math.log(2), recomputed: 0.6 }));
  assert.deepEqual(numbers(tanh.formula).map((v) => Math.round(v * 1e9) / 1e9), [0.693147181, 2, 0.5, 2, 0.5, 0.6]);
  const flat = describeNeuron(base("flatten", { position: [0, 0, 47], source: [1, 2, 2], recomputed: 7 }), { inputName: "pool1" });
  assert.deepEqual(flat.slice, { depth: 2, cells: [[1, 2]] });
  assert.match(flat.notes[0][0], /place 47 = 2 × 4×5 \+ 1 × 5 \+ 2/);
  assert.equal(describeNeuron(base("conv", {})), null);
});

test("log-softmax lists every class with its log-probability and probability", () => {
  const logits = [1, 2, 3];
  const max = 3;
  const exps = logits.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b);
  const logsumexp = max + Math.log(sum);
  const body = base("logsoftmax", { position: [0, 0, 1], logits, max, exps, sum, logsumexp, recomputed: 2 - logsumexp });
  const shown = describeNeuron(body, { classes: ["cat", "dog", "bird"] });
  assert.equal(shown.table.chosen, 1);
  assert.deepEqual(shown.table.rows.map((r) => r[0]), ["cat", "dog", "bird"]);
  const percents = shown.table.rows.map((r) => Number(r[5].replace("%", "")));
  assert.ok(Math.abs(percents.reduce((a, b) => a + b) - 100) < 0.2);
  assert.equal(shown.table.rows[2][2].v, 0); // the largest logit less the max
});
