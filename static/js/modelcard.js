/** The model card: what a model is, how it was trained, and its training history as a
 * chart of loss and accuracy per epoch (SVG, drawn here from /api/models' JSON). */

import { $, el } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

/** Chart geometry for a history: pure, so node --test can check it.
 * Returns the polyline points (as "x,y ..." strings) of the loss (scaled to its own
 * maximum) and of the train and test accuracy (0-100%), inside a width x height box
 * with `pad` pixels kept for the axes. */
export function historyLines(history, width, height, pad = 36) {
  const n = history.length;
  const maxLoss = Math.max(...history.map((h) => h.loss), 1e-9);
  const x = (i) => pad + (n === 1 ? 0 : (i * (width - 2 * pad)) / (n - 1));
  const y = (fraction) => height - pad + -fraction * (height - 2 * pad);
  const line = (value) => history.map((h, i) => `${x(i).toFixed(1)},${y(value(h)).toFixed(1)}`).join(" ");
  return {
    maxLoss,
    loss: line((h) => h.loss / maxLoss),
    train: line((h) => h.train_accuracy),
    test: line((h) => h.test_accuracy),
    x,
    y,
  };
}

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The history chart as an <svg> element. */
export function historyChart(history, width = 520, height = 260) {
  const pad = 36;
  const g = historyLines(history, width, height, pad);
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "history-chart",
    role: "img",
    "aria-label": `Training history over ${history.length} epochs: final test accuracy ${(100 * history.at(-1).test_accuracy).toFixed(1)}%`,
  });
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(svg("line", { x1: pad, x2: width - pad, y1: g.y(fraction), y2: g.y(fraction), class: "grid" }));
    chart.append(svg("text", { x: width - pad + 4, y: g.y(fraction) + 4, class: "axis acc" }, `${100 * fraction}%`));
    chart.append(svg("text", { x: pad - 4, y: g.y(fraction) + 4, class: "axis loss", "text-anchor": "end" }, Number((fraction * g.maxLoss).toPrecision(2)).toString()));
  }
  const last = history.length - 1;
  for (const i of [0, Math.floor(last / 2), last]) {
    chart.append(svg("text", { x: g.x(i), y: height - pad + 16, class: "axis", "text-anchor": "middle" }, `${history[i].epoch}`));
  }
  chart.append(svg("text", { x: width / 2, y: height - 4, class: "axis", "text-anchor": "middle" }, "epoch"));
  chart.append(svg("polyline", { points: g.loss, class: "line loss" }));
  chart.append(svg("polyline", { points: g.train, class: "line train" }));
  chart.append(svg("polyline", { points: g.test, class: "line test" }));
  return chart;
}

/** Fill the model card dialog for `info` (one entry of /api/models) and open it. */
export function showModelCard(info) {
  const body = $("model-card-body");
  const training = info.training;
  const facts = el("dl", "card-facts");
  const fact = (term, value) => value !== undefined && value !== null && facts.append(el("dt", "", term), el("dd", "", value));
  fact("Model", `${info.id}: ${info.description}`);
  fact("Input", `${info.input.join("×")} · ${info.classes.length} classes`);
  fact("Test accuracy", info.trained && info.test_accuracy ? `${(100 * info.test_accuracy).toFixed(2)}%` : "not measured");
  if (info.source) fact("Imported from", `${info.source.file} on ${String(info.source.imported).slice(0, 10)}`);
  if (training) {
    fact("Dataset", training.dataset);
    fact("Epochs", String(training.epochs));
    if (training.command) {
      const command = el("dd");
      command.append(el("code", "", training.command));
      facts.append(el("dt", "", "Trained by"), command);
    }
  }
  body.replaceChildren(facts);
  if (training && training.history.length) {
    const legend = el("p", "chart-legend");
    legend.append(el("span", "key loss", "loss"), el("span", "key train", "train accuracy"), el("span", "key test", "test accuracy"));
    body.append(historyChart(training.history), legend);
  } else {
    body.append(el("p", "hint", info.trained ? "This model's card has no training history." : "Untrained weights: nothing to show yet."));
  }
  $("model-card-title").textContent = `Model card: ${info.id}`;
  $("model-card").showModal();
}

export function setupModelCard(currentInfo) {
  $("model-card-open").addEventListener("click", () => showModelCard(currentInfo()));
  $("model-card-close").addEventListener("click", () => $("model-card").close());
}
