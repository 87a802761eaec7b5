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

/** Every class in its order, up to this many; past it (an imported 1000-class model) the
 * most likely SHOWN_CLASSES, most likely first: a thousand bars read as none. */
export const ALL_CLASSES_UP_TO = 20;
export const SHOWN_CLASSES = 10;

/** The class indices whose bars are shown, in the order shown. */
export function shownClasses(probabilities) {
  const order = probabilities.map((_, i) => i);
  if (order.length <= ALL_CLASSES_UP_TO) return order;
  return order.sort((a, b) => probabilities[b] - probabilities[a] || a - b).slice(0, SHOWN_CLASSES);
}

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
  const shown = shownClasses(probabilities);
  note.textContent =
    (shown.length < probabilities.length ? `The ${shown.length} most likely of ${classes.length} classes. ` : "") +
    `The network can only choose among its ${classes.length} classes: ` +
    "a picture of anything else still gets one of them, often with a low score.";
  prediction.title = run.trained ? "" : "The model's weights are random (not trained yet): this is a guess.";
  // Ten one-character names (digits) read as well in two columns, in half the height.
  bars.classList.toggle("two-columns", classes.every((name) => String(name).length <= 2));
  bars.style.setProperty("--score-rows", Math.ceil(shown.length / 2));
  bars.replaceChildren(
    ...shown.map((i) => {
      const p = probabilities[i];
      const item = el("li", i === top.index ? "score top" : "score");
      item.dataset.class = i;
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
