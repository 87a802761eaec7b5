/**
 * What the page says about a model, shipped or imported (`convscope import`): the line of
 * facts beside the model picker, and sample pictures for a model that has none of its own.
 * Pure functions of /api/models' answer; tests/js/modelfacts.test.mjs runs them under node.
 */

/** "17 layers · 307k parameters · 86.1% on the test set", plus, for an imported model,
 * where it came from and "accuracy not measured" until `convscope eval` measured it. */
export function modelFacts(info) {
  const params = info.layers.reduce((sum, layer) => sum + layer.param_count, 0);
  const parts = [`${info.layers.length} layers`, `${formatCount(params)} parameters`];
  if (info.trained && info.test_accuracy != null) {
    parts.push(`${(100 * info.test_accuracy).toFixed(1)}% on the test set`);
  } else if (info.source) {
    parts.push("accuracy not measured");
  }
  if (info.source) {
    parts.push(`imported from ${info.source.file} on ${String(info.source.imported).slice(0, 10)}`);
  }
  return parts.join(" · ");
}

/** 437 -> "0.4k", 307,498 -> "307k", 20,123,456 -> "20.1M". */
export function formatCount(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  return `${(n / 1e3).toFixed(1)}k`;
}

/** The samples, plus, for each model with none of its own, copies of the first model's
 * that has the same number of input channels (photos for colour, digits for grey). */
export function withBorrowedSamples(samples, models) {
  const out = [...samples];
  for (const model of models) {
    if (samples.some((s) => s.model === model.id)) continue;
    const donor = models.find(
      (m) => m.input[2] === model.input[2] && samples.some((s) => s.model === m.id),
    );
    if (!donor) continue;
    for (const s of samples.filter((sample) => sample.model === donor.id)) {
      out.push({ ...s, id: `${model.id}-${s.id}`, model: model.id });
    }
  }
  return out;
}
