/** Small helpers the page's modules share. */

export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export const shapeText = ([h, w, d]) => `${h}×${w}×${d}`;

export const clamp = (value, lo, hi) => Math.max(lo, Math.min(hi, value));

/** Size a canvas's backing store for `cssWidth` x `cssHeight` CSS pixels on this screen. */
export function fitCanvas(canvas, cssWidth, cssHeight) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(cssWidth * dpr);
  canvas.height = Math.round(cssHeight * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return ctx;
}

/** A screen without hover (a phone, a tablet): the page's hints say "tap". */
export const onTouch = () => typeof matchMedia === "function" && matchMedia("(hover: none)").matches;
