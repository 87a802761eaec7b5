/**
 * Layer kinds: the family each belongs to (an imported model's maxpool is a pool), its
 * colour (defined once, as --kind-<family> in app.css) and a few words on what it does to
 * the volume, for the page to teach with. No DOM but kindColor, so `node --test tests/js`
 * checks the rest.
 */

const FAMILIES = {
  input: "input",
  conv: "conv",
  conv2d: "conv",
  relu: "relu",
  leakyrelu: "relu",
  sigmoid: "relu",
  tanh: "relu",
  pool: "pool",
  maxpool: "pool",
  avgpool: "pool",
  gap: "pool",
  fc: "fc",
  flatten: "fc",
  softmax: "softmax",
  logsoftmax: "softmax",
  batchnorm: "norm",
};

/** "conv", "relu", "pool", "fc", "softmax", "input" or "norm"; "other" for the unknown. */
export const kindFamily = (kind) => FAMILIES[kind] || "other";

/** The family's colour as app.css defines it (--kind-conv, ...). */
export function kindColor(kind) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(`--kind-${kindFamily(kind)}`);
  return value.trim() || getComputedStyle(document.documentElement).getPropertyValue("--kind-other").trim();
}

/**
 * What a layer does to the volume, in a sentence or two, for a learner. `layer` is an
 * /api/models entry; `before` the shape of the volume it reads.
 */
export function lesson(layer, before) {
  const [h, w, d] = layer.shape;
  const [bh, bw, bd] = before || layer.shape;
  const size = layer.kernel ? layer.kernel[0] : layer.size;
  switch (kindFamily(layer.kind)) {
    case "conv":
      return (
        `A CONV layer slides ${d} small filters${size ? ` (${size}×${size}×${bd})` : ""} over the volume before it. ` +
        `Each filter gives one depth slice: a map of where its pattern appears, strongly (high) or not at all (low or negative).`
      );
    case "relu":
      return (
        "A RELU layer keeps every positive number and turns every negative one into 0. " +
        "The shape stays the same; only the signed values change."
      );
    case "pool": {
      const window = size ? `${size}×${size} window` : "small window";
      const keeps = ["avgpool", "gap"].includes(layer.kind) ? "the average" : "the largest number";
      return (
        `A POOL layer shrinks each depth slice on its own, ${bh}×${bw} to ${h}×${w}, keeping ${keeps} of each ${window}. ` +
        "The depth stays the same: the pattern is still found, its exact place matters less."
      );
    }
    case "fc":
      return (
        `An FC layer multiplies every one of the ${(bh * bw * bd).toLocaleString("en")} numbers before it by its own weight and adds them up, ` +
        `once for each of its ${d} outputs: one score per class, not yet probabilities.`
      );
    case "softmax":
      return (
        "SOFTMAX turns the scores into probabilities: each becomes positive, and together they add up to 100%. " +
        "The largest score gets the largest share."
      );
    case "norm":
      return "A normalisation layer shifts and scales each depth slice by numbers learned in training.";
    default:
      return "";
  }
}

/** Kinds whose effect is clearest beside the volume they read: the same slice before and after. */
export const showsBefore = (kind) => ["relu", "pool"].includes(kindFamily(kind));

/** Kinds whose output is one number per class, best read as labelled bars. */
export const isClassVector = (layer, classes) =>
  layer.shape[0] === 1 && layer.shape[1] === 1 && Array.isArray(classes) && layer.shape[2] === classes.length;
