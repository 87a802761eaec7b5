/**
 * Draw a volume's depth slices with a colour map.
 *
 * A streamed volume is {shape: [H, W, D], scale: {min, max}, data: Uint8Array}, the data
 * slice-major (D, H, W) and quantised: value = min + q / 255 * (max - min). The mapping
 * from value to colour is affine in q, so a whole slice is coloured through one 256-entry
 * palette of packed RGBA pixels.
 */

import { COLORMAPS } from "./colormaps.js";

/** An opaque colour as one pixel of a Uint32Array over ImageData (little-endian RGBA). */
export const rgba = (r, g, b) => (0xff000000 | (b << 16) | (g << 8) | r) >>> 0;

export const valueOf = (volume, q) =>
  volume.scale.min + (q / 255) * (volume.scale.max - volume.scale.min);

/** Signed volumes (negative and positive values) get a diverging map centred on zero. */
export const isSigned = (volume) => volume.scale.min < 0 && volume.scale.max > 0;

function sliceRange(volume, d) {
  const [h, w] = volume.shape;
  const slice = volume.data.subarray(d * h * w, (d + 1) * h * w);
  let lo = 255;
  let hi = 0;
  for (const q of slice) {
    if (q < lo) lo = q;
    if (q > hi) hi = q;
  }
  return [valueOf(volume, lo), valueOf(volume, hi)];
}

function pack(lut, t) {
  const i = 3 * Math.max(0, Math.min(255, Math.round(t * 255)));
  return rgba(lut[i], lut[i + 1], lut[i + 2]);
}

/**
 * How slice d of a volume is coloured: the map, the value range the colour bar shows,
 * and the palette (q -> packed RGBA).
 * options: {scale: "layer" | "slice", sequential: map name, diverging: map name}
 */
export function colorScale(volume, d, { scale = "layer", sequential = "viridis", diverging = "coolwarm" } = {}) {
  const signed = isSigned(volume);
  let [lo, hi] = scale === "slice" ? sliceRange(volume, d) : [volume.scale.min, volume.scale.max];
  const map = signed ? diverging : sequential;
  const lut = COLORMAPS[map].lut;
  if (signed) {
    const m = Math.max(Math.abs(lo), Math.abs(hi));
    [lo, hi] = [-m, m];
  }
  const palette = new Uint32Array(256);
  for (let q = 0; q < 256; q++) {
    const v = valueOf(volume, q);
    const t = hi > lo ? (v - lo) / (hi - lo) : signed ? 0.5 : 0;
    palette[q] = pack(lut, t);
  }
  return { map, signed, lo, hi, palette };
}

/** A tinted ramp for one channel of an RGB input (or gray for a single channel). */
export function channelPalette(channel, channels) {
  const palette = new Uint32Array(256);
  for (let q = 0; q < 256; q++) {
    const rgb = channels === 3 ? [0, 0, 0].map((_, c) => (c === channel ? q : q >> 3)) : [q, q, q];
    palette[q] = rgba(...rgb);
  }
  return palette;
}

function canvasOf(width, height, canvas) {
  const out = canvas || document.createElement("canvas");
  if (out.width !== width) out.width = width;
  if (out.height !== height) out.height = height;
  return out;
}

function paint(canvas, width, height, fill) {
  const image = new ImageData(width, height);
  fill(new Uint32Array(image.data.buffer));
  canvas.getContext("2d").putImageData(image, 0, 0);
  return canvas;
}

/** Slice d as a W x H canvas (a new one, or `canvas` resized). */
export function sliceCanvas(volume, d, palette, canvas) {
  const [h, w] = volume.shape;
  const offset = d * h * w;
  return paint(canvasOf(w, h, canvas), w, h, (pixels) => {
    for (let i = 0; i < h * w; i++) pixels[i] = palette[volume.data[offset + i]];
  });
}

/** The largest side of a slice's small picture (a tile, a plane of the 3D view). */
export const THUMB_SIDE = 96;

/** [height, width] of slice h x w drawn at most `side` pixels a side, in its proportions. */
export function thumbSize(h, w, side = THUMB_SIDE) {
  const k = Math.min(1, side / Math.max(h, w));
  return [Math.max(1, Math.round(h * k)), Math.max(1, Math.round(w * k))];
}

/** Which source row (or column) each of `n` thumb pixels shows, of `size`: the nearest. */
export function sampleIndex(size, n) {
  return Int32Array.from({ length: n }, (_, i) => Math.min(size - 1, Math.floor(((i + 0.5) * size) / n)));
}

/** Slice d at most THUMB_SIDE pixels a side (nearest neighbour), into `canvas` (resized). */
export function thumbCanvas(volume, d, palette, canvas) {
  const [h, w] = volume.shape;
  const [th, tw] = thumbSize(h, w);
  if (th === h && tw === w) return sliceCanvas(volume, d, palette, canvas);
  const rows = sampleIndex(h, th);
  const cols = sampleIndex(w, tw);
  const offset = d * h * w;
  return paint(canvasOf(tw, th, canvas), tw, th, (pixels) => {
    for (let y = 0; y < th; y++) {
      const from = offset + rows[y] * w;
      for (let x = 0; x < tw; x++) pixels[y * tw + x] = palette[volume.data[from + cols[x]]];
    }
  });
}

/**
 * The three visible faces of a volume seen from the front, above and right:
 * front = slice 0 (W x H), top = row 0 across depth (W x D, depth downwards),
 * side = last column across depth (D x H). paletteOf(d) colours depth d.
 */
export function faceCanvases(volume, paletteOf) {
  const [h, w, depth] = volume.shape;
  const data = volume.data;
  const front = sliceCanvas(volume, 0, paletteOf(0));
  const top = paint(canvasOf(w, depth), w, depth, (pixels) => {
    for (let d = 0; d < depth; d++) {
      const palette = paletteOf(d);
      for (let x = 0; x < w; x++) pixels[d * w + x] = palette[data[d * h * w + x]];
    }
  });
  const side = paint(canvasOf(depth, h), depth, h, (pixels) => {
    for (let d = 0; d < depth; d++) {
      const palette = paletteOf(d);
      for (let y = 0; y < h; y++) pixels[y * depth + d] = palette[data[d * h * w + y * w + w - 1]];
    }
  });
  return { front, top, side };
}

/** The preprocessed input (H, W, D uint8, row-major HWD) as a volume (DHW, 0..255). */
export function inputVolume(input) {
  const [h, w, depth] = input.shape;
  const data = new Uint8Array(h * w * depth);
  for (let i = 0; i < h * w; i++) {
    for (let d = 0; d < depth; d++) data[d * h * w + i] = input.data[i * depth + d];
  }
  return { shape: [h, w, depth], scale: { min: 0, max: 255 }, data };
}

/** The preprocessed input drawn as the picture it is (RGB, or gray for one channel). */
export function inputCanvas(input, canvas) {
  const [h, w, depth] = input.shape;
  const src = input.data;
  return paint(canvasOf(w, h, canvas), w, h, (pixels) => {
    for (let i = 0; i < h * w; i++) {
      const r = src[i * depth];
      const g = depth === 3 ? src[i * depth + 1] : r;
      const b = depth === 3 ? src[i * depth + 2] : r;
      pixels[i] = rgba(r, g, b);
    }
  });
}

/** Draw a small canvas scaled up, without smoothing, into a rectangle of a context. */
export function drawPixelated(ctx, source, x, y, width, height) {
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(source, x, y, width, height);
}

/** Format a value for people: enough digits to tell neighbours apart, no more. */
export function formatValue(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(2);
  return v.toPrecision(3).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}
