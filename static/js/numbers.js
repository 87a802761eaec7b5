/**
 * Numbers for people: a neuron's value shown with four significant digits, and on demand
 * exactly, as the shortest decimal that reads back as the same float32 (the volumes are
 * float32: 17 digits of a float64 would only print the float32's rounding error).
 */

/** Four significant digits, no trailing zeros; exponent form outside [1e-3, 1e4). */
export function shortValue(v) {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(3).replace(/\.?0+e/, "e");
  return v.toPrecision(4).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

/** The shortest decimal text whose float32 rounding is `v`'s (v holds a float32). */
export function float32Text(v) {
  if (!Number.isFinite(v) || v === 0) return String(v);
  const target = Math.fround(v);
  for (let digits = 1; digits < 9; digits++) {
    const text = v.toPrecision(digits);
    if (Math.fround(Number(text)) === target) return String(Number(text));
  }
  return String(Number(v.toPrecision(9)));
}
