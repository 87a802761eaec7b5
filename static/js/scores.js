/** The input as chosen and as the network sees it, and the class probabilities. */

import { $, el, shapeText } from "./dom.js";
import { inputCanvas } from "./volume.js";

export function drawInputViews(run) {
  const views = $("input-views");
  // A file the server refused is no picture: show nothing rather than a broken image.
  views.hidden = !run || Boolean(run.error && !run.input);
  if (views.hidden) return;
  const original = $("original-image");
  if (original.src !== run.originalUrl) original.src = run.originalUrl;
  if (run.input) {
    const canvas = $("preprocessed-canvas");
    inputCanvas(run.input, canvas);
    $("preprocessed-caption").textContent = "network input";
    canvas.title = `What the network sees: ${shapeText(run.input.shape)}, after resizing`;
  }
}

const percent = (p, digits = 1) => `${(100 * p).toFixed(digits)}%`;

/** A labelled bar per class, the top class named; `classes` before any run. */
export function drawScores(run, classes) {
  const bars = $("score-bars");
  const prediction = $("prediction");
  const probabilities = run?.scores?.probabilities;
  const note = $("classes-note");
  note.hidden = !probabilities;
  if (!probabilities) {
    prediction.textContent =
      run && !run.error ? "Thinking…" : "Choose an image to see what the network thinks it is.";
    bars.replaceChildren();
    return;
  }
  classes = run.classes || classes;
  const top = run.scores.top?.[0] || { index: probabilities.indexOf(Math.max(...probabilities)) };
  prediction.replaceChildren(
    el("span", "prediction-label", "It looks like"),
    el("strong", "prediction-class", top.class ?? classes[top.index]),
    el("span", "prediction-prob", percent(top.probability ?? probabilities[top.index])),
  );
  note.textContent =
    `The network can only choose among its ${classes.length} classes: ` +
    "a picture of anything else still gets one of them, often with a low score.";
  prediction.title = run.trained ? "" : "The model's weights are random (not trained yet): this is a guess.";
  // Ten one-character names (digits) read as well in two columns, in half the height.
  bars.classList.toggle("two-columns", classes.every((name) => String(name).length <= 2));
  bars.style.setProperty("--score-rows", Math.ceil(probabilities.length / 2));
  bars.replaceChildren(
    ...probabilities.map((p, i) => {
      const item = el("li", i === top.index ? "score top" : "score");
      const bar = el("span", "score-bar");
      const fill = el("span", "score-fill");
      fill.style.setProperty("width", percent(p, 2));
      bar.append(fill);
      item.append(el("span", "score-class", classes[i]), bar, el("span", "score-prob", percent(p)));
      item.title = `${classes[i]}: ${percent(p, 2)}`;
      return item;
    }),
  );
}
