/**
 * The exact values behind the hover readout, fetched only when a cell is inspected and only
 * for its depth slice (float32 .npy, H x W x 4 bytes: 4 KB for a 32x32 slice, where the
 * whole layer's JSON was 654 KB). The stream's byte-a-number volume gives an approximate
 * value at once; the exact one replaces it when its slice arrives.
 */

import { getSliceArray } from "./api.js";
import { valueOf } from "./volume.js";

const KEEP = 64; // slices kept per run, the oldest dropped first

class RunValues {
  constructor(run) {
    this.run = run;
    this.slices = new Map(); // "index/depth" -> {data, shape} | {error} | {pending}
  }

  /** {exact} | {approx, pending} | {approx, error} for cell (row, col) of slice `depth`. */
  value(index, row, col, depth, onArrive) {
    const layer = this.run.layers[index];
    const [h, w] = layer ? layer.shape : [0, 0];
    const approx = layer ? valueOf(layer, layer.data[depth * h * w + row * w + col]) : null;
    const key = `${index}/${depth}`;
    const entry = this.slices.get(key);
    if (entry?.data) return { exact: entry.data[row * entry.shape[1] + col] };
    if (entry?.error) return { approx, error: entry.error };
    if (!entry && this.run.id && this.run.scores) this.fetch(key, index, depth, onArrive);
    return { approx, pending: true };
  }

  fetch(key, index, depth, onArrive) {
    const entry = { pending: true };
    this.slices.set(key, entry);
    if (this.slices.size > KEEP) this.slices.delete(this.slices.keys().next().value);
    getSliceArray(this.run.id, index, depth, this.run.controller?.signal)
      .then(({ data, shape }) => Object.assign(entry, { data, shape, pending: false }))
      .catch((error) => {
        if (error.name === "AbortError") this.slices.delete(key);
        else Object.assign(entry, { error: error.message, pending: false });
      })
      .finally(onArrive);
  }
}

const byRun = new WeakMap();

/** The readout's value of cell (row, col, depth) of layer `index` in `run`; onArrive() is
 * called when a fetch it started ends. */
export function cellValue(run, index, row, col, depth, onArrive) {
  if (!run) return { approx: null, pending: true };
  if (!byRun.has(run)) byRun.set(run, new RunValues(run));
  return byRun.get(run).value(index, row, col, depth, onArrive);
}
