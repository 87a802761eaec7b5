/**
 * Volumes as 3D boxes, drawn with canvas 2D (no WebGL needed).
 *
 * drawBox: the network row's boxes, like the volumes in the CS231n notes: the front face is
 * height x width, depth recedes up and to the right (an oblique projection), and each face
 * shows the values on that side of the volume.
 * VolumeView: one volume as its depth slices stacked along depth, turned by dragging; an
 * orthographic projection maps every slice to a parallelogram, so each is one drawImage.
 */

const DEPTH_ANGLE_X = 0.62;
const DEPTH_ANGLE_Y = 0.42;

/** Box size in CSS pixels for a volume of shape [H, W, D]: compressive, so 1x1x10 and
 * 32x32x128 both read, while pooling's halving still shows. */
export function boxGeometry([h, w, d], scale = 1) {
  const side = (n) => scale * (8 + 62 * (n / 32) ** 0.7);
  const depth = scale * (6 + 9 * Math.log2(Math.max(1, d)));
  return { fw: side(w), fh: side(h), ox: depth * DEPTH_ANGLE_X, oy: depth * DEPTH_ANGLE_Y };
}

function polygon(ctx, points) {
  ctx.beginPath();
  ctx.moveTo(points[0][0], points[0][1]);
  for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
  ctx.closePath();
}

/**
 * Draw one box with its front face's top-left corner at (x, y + oy), in CSS pixels on a
 * context already scaled by `dpr`. faces: {front, top, side} canvases, or null while
 * the layer has not arrived (then the box is a dashed outline); color: the layer kind's.
 */
export function drawBox(ctx, dpr, x, y, geometry, faces, { color, selected = false }) {
  const { fw, fh, ox, oy } = geometry;
  const front = [[x, y + oy], [x + fw, y + oy], [x + fw, y + oy + fh], [x, y + oy + fh]];
  const top = [[x, y + oy], [x + ox, y], [x + ox + fw, y], [x + fw, y + oy]];
  const side = [[x + fw, y + oy], [x + fw + ox, y], [x + fw + ox, y + fh], [x + fw, y + oy + fh]];

  ctx.save();
  ctx.lineJoin = "round";
  if (!faces) {
    ctx.fillStyle = "rgba(140, 160, 190, 0.08)";
    for (const face of [front, top, side]) {
      polygon(ctx, face);
      ctx.fill();
    }
    ctx.setLineDash([3, 3]);
    ctx.strokeStyle = color;
    ctx.globalAlpha = 0.55;
    ctx.lineWidth = 1;
    for (const face of [front, top, side]) {
      polygon(ctx, face);
      ctx.stroke();
    }
    ctx.restore();
    return;
  }

  ctx.imageSmoothingEnabled = false;
  const [h, w] = [faces.front.height, faces.front.width];
  const depth = faces.top.height;
  ctx.setTransform(dpr * (fw / w), 0, 0, dpr * (fh / h), dpr * x, dpr * (y + oy));
  ctx.drawImage(faces.front, 0, 0);
  ctx.setTransform(dpr * (fw / w), 0, (dpr * ox) / depth, (-dpr * oy) / depth, dpr * x, dpr * (y + oy));
  ctx.drawImage(faces.top, 0, 0);
  ctx.setTransform((dpr * ox) / depth, (-dpr * oy) / depth, 0, dpr * (fh / h), dpr * (x + fw), dpr * (y + oy));
  ctx.drawImage(faces.side, 0, 0);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);

  ctx.fillStyle = "rgba(255, 255, 255, 0.14)";
  polygon(ctx, top);
  ctx.fill();
  ctx.fillStyle = "rgba(0, 0, 0, 0.32)";
  polygon(ctx, side);
  ctx.fill();

  ctx.strokeStyle = color;
  ctx.lineWidth = selected ? 2.5 : 1.25;
  for (const face of [front, top, side]) {
    polygon(ctx, face);
    ctx.stroke();
  }
  ctx.restore();
}

const DEFAULT_VIEW = { yaw: -0.62, pitch: 0.38 };
const MAX_EXTENT = 6.9;

/** How far the stacked slices reach along depth (the slice's larger side is 1), for the
 * spread slider's value in [0, 1]: in proportion to it over the whole slider, for any
 * depth (deep volumes reach further, but never with a stop part-way along the slider). */
export function stackExtent(spread, depth) {
  if (depth <= 1) return 0;
  return spread * Math.min(MAX_EXTENT, 2.4 * Math.sqrt(depth - 1));
}

/**
 * A volume's slices stacked along depth, turned by dragging (pointer events) and drawn in
 * back-to-front order. setVolume(slices, shape) takes one W x H canvas per depth slice.
 */
export class VolumeView {
  constructor(canvas, { onTurn } = {}) {
    this.canvas = canvas;
    this.slices = [];
    this.shape = [1, 1, 1];
    this.selected = 0;
    this.spread = 0.35;
    this.view = { ...DEFAULT_VIEW };
    this.onTurn = onTurn;
    this.frame = 0;
    let drag = null;
    canvas.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, y: event.clientY, ...this.view };
      canvas.setPointerCapture(event.pointerId);
      canvas.classList.add("dragging");
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drag) return;
      this.view.yaw = drag.yaw + (event.clientX - drag.x) * 0.01;
      this.view.pitch = Math.max(-1.45, Math.min(1.45, drag.pitch + (event.clientY - drag.y) * 0.01));
      this.requestDraw();
    });
    const end = () => {
      if (drag) this.onTurn?.(this.angle);
      drag = null;
      canvas.classList.remove("dragging");
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
  }

  setVolume(slices, shape, selected = 0) {
    this.slices = slices;
    this.shape = shape;
    this.selected = selected;
    this.requestDraw();
  }

  setSelected(d) {
    this.selected = d;
    this.requestDraw();
  }

  setSpread(spread) {
    this.spread = spread;
    this.requestDraw();
  }

  reset() {
    this.view = { ...DEFAULT_VIEW };
    this.requestDraw();
    this.onTurn?.(null);
  }

  /** How the volume is turned, {yaw, pitch}; null while it is as it starts. */
  get angle() {
    const same = this.view.yaw === DEFAULT_VIEW.yaw && this.view.pitch === DEFAULT_VIEW.pitch;
    return same ? null : { ...this.view };
  }

  /** Turn the volume to `angle` ({yaw, pitch}), or back to the start with null. */
  setAngle(angle) {
    this.view = angle ? { yaw: angle.yaw, pitch: angle.pitch } : { ...DEFAULT_VIEW };
    this.requestDraw();
  }

  requestDraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  draw() {
    const canvas = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const cssWidth = canvas.clientWidth || 300;
    const cssHeight = canvas.clientHeight || 260;
    if (canvas.width !== Math.round(cssWidth * dpr)) canvas.width = Math.round(cssWidth * dpr);
    if (canvas.height !== Math.round(cssHeight * dpr)) canvas.height = Math.round(cssHeight * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!this.slices.length) return;

    const [h, w, depth] = this.shape;
    // World units: the larger of width and height is 1; depth spans `extent`.
    const unit = 1 / Math.max(h, w);
    const extent = stackExtent(this.spread, depth);
    const gap = depth > 1 ? extent / (depth - 1) : 0;
    const { yaw, pitch } = this.view;
    const [cy, sy, cp, sp] = [Math.cos(yaw), Math.sin(yaw), Math.cos(pitch), Math.sin(pitch)];
    const rotate = ([x, y, z]) => {
      const x1 = x * cy + z * sy;
      const z1 = -x * sy + z * cy;
      return [x1, y * cp - z1 * sp, y * sp + z1 * cp];
    };
    // Fit the rotated bounding box into the canvas.
    const corners = [];
    for (const x of [-w * unit / 2, (w * unit) / 2])
      for (const y of [-h * unit / 2, (h * unit) / 2])
        for (const z of [-extent / 2, extent / 2]) corners.push(rotate([x, y, z]));
    const span = (i) => Math.max(...corners.map((c) => c[i])) - Math.min(...corners.map((c) => c[i]));
    const size = 0.86 * Math.min(canvas.width / span(0), canvas.height / span(1));
    const cx = canvas.width / 2;
    const cyy = canvas.height / 2;

    const ex = rotate([unit, 0, 0]);
    const ey = rotate([0, unit, 0]);
    const order = [...this.slices.keys()].map((d) => {
      const z = -extent / 2 + d * gap;
      return { d, origin: rotate([(-w * unit) / 2, (-h * unit) / 2, z]), depth: rotate([0, 0, z])[2] };
    });
    order.sort((a, b) => b.depth - a.depth);

    ctx.imageSmoothingEnabled = false;
    const outline = (d, o) => {
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      const p = (x, y) => [cx + size * (o[0] + x * ex[0] + y * ey[0]), cyy + size * (o[1] + x * ex[1] + y * ey[1])];
      ctx.beginPath();
      ctx.moveTo(...p(0, 0));
      ctx.lineTo(...p(w, 0));
      ctx.lineTo(...p(w, h));
      ctx.lineTo(...p(0, h));
      ctx.closePath();
    };
    for (const { d, origin } of order) {
      ctx.setTransform(size * ex[0], size * ex[1], size * ey[0], size * ey[1], cx + size * origin[0], cyy + size * origin[1]);
      ctx.globalAlpha = 0.94;
      ctx.drawImage(this.slices[d], 0, 0, w, h); // a large slice comes as a smaller thumb
      ctx.globalAlpha = 1;
      outline(d, origin);
      ctx.lineWidth = d === this.selected ? 3 * dpr : 0.6 * dpr;
      ctx.strokeStyle = d === this.selected ? "#ffd166" : "rgba(210, 225, 245, 0.35)";
      ctx.stroke();
    }
    // The selected slice stays findable when slices in front of it hide it.
    const chosen = order.find((entry) => entry.d === this.selected);
    if (chosen) {
      outline(chosen.d, chosen.origin);
      ctx.setLineDash([4 * dpr, 4 * dpr]);
      ctx.lineWidth = 1.5 * dpr;
      ctx.strokeStyle = "rgba(255, 209, 102, 0.8)";
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }
}
