/**
 * The page's state in the query string, so that a copied link opens the same view:
 * ?model=&sample=|run=&layer=&slice=&neuron=&colors=&signed=&scale=&angle=
 *
 * `sample` names a sample the page runs again; `run` a stored run (any upload, a drawing,
 * a photo) that the server keeps for a while and the page reads again. Values left at
 * their defaults stay out of the link, to keep it short. Pure functions: no DOM, so
 * `node --test tests/js` checks them.
 */

import { neuronParam, parseNeuron } from "./arithmetic.js";

export const DEFAULTS = Object.freeze({
  sequential: "viridis",
  diverging: "coolwarm",
  scale: "layer",
});

const RUN_ID = /^[0-9a-f]{32}$/;

const count = (text) => {
  const value = Number.parseInt(text, 10);
  return Number.isFinite(value) && value >= 0 ? value : 0;
};

/** The 3D view's turn, "yaw,pitch" in radians with two decimals; null if absent or bad. */
export function parseAngle(text) {
  const parts = String(text ?? "").split(",").map(Number);
  if (parts.length !== 2 || !parts.every(Number.isFinite)) return null;
  return { yaw: parts[0], pitch: Math.max(-1.45, Math.min(1.45, parts[1])) };
}

export const angleParam = ({ yaw, pitch }) => `${yaw.toFixed(2)},${pitch.toFixed(2)}`;

/** The view a query string names; anything missing or malformed falls back to a default. */
export function parseQuery(search) {
  const params = new URLSearchParams(search);
  const run = params.get("run");
  const scale = params.get("scale");
  return {
    model: params.get("model"),
    sample: params.get("sample"),
    run: run && RUN_ID.test(run) ? run : null,
    layer: count(params.get("layer")),
    slice: count(params.get("slice")),
    neuron: parseNeuron(params.get("neuron")),
    sequential: params.get("colors") || DEFAULTS.sequential,
    diverging: params.get("signed") || DEFAULTS.diverging,
    scale: scale === "slice" ? "slice" : DEFAULTS.scale,
    angle: parseAngle(params.get("angle")),
  };
}

/** The query string ("model=...&layer=...") for a view; a sample wins over a run. */
export function queryString(view) {
  const params = new URLSearchParams();
  params.set("model", view.model);
  if (view.sample) params.set("sample", view.sample);
  else if (view.run) params.set("run", view.run);
  params.set("layer", view.layer);
  params.set("slice", view.slice);
  if (view.neuron) params.set("neuron", neuronParam(view.neuron));
  if (view.sequential && view.sequential !== DEFAULTS.sequential) params.set("colors", view.sequential);
  if (view.diverging && view.diverging !== DEFAULTS.diverging) params.set("signed", view.diverging);
  if (view.scale && view.scale !== DEFAULTS.scale) params.set("scale", view.scale);
  if (view.angle) params.set("angle", angleParam(view.angle));
  return params.toString();
}
