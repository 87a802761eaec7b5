/**
 * The network row: one 3D box per layer (and one for the input), labelled with its kind and
 * H x W x D, sized so that the whole row fits the screen. It draws what it is given; app.js
 * decides what that is.
 */

import { boxGeometry, drawBox } from "./box3d.js";
import { el, shapeText } from "./dom.js";
import { kindColor, kindFamily } from "./kinds.js";

const PAD = 8;
const TALLEST_AT_LEAST = 60; // px: the tallest box at the smallest scale

export class NetworkRow {
  constructor(list, { onSelect }) {
    this.list = list;
    this.onSelect = onSelect;
    this.boxes = [];
  }

  /** One box for the input (index -1) and one per layer. */
  build(inputShape, layers) {
    const entries = [{ index: -1, kind: "input", name: "input", shape: inputShape }, ...layers];
    this.boxes = entries.map((layer) => {
      const item = el("li", "layer-item");
      const box = el(layer.index < 0 ? "div" : "button", `layer-box kind-${layer.kind} family-${kindFamily(layer.kind)}`);
      const canvas = el("canvas", "box-canvas");
      canvas.setAttribute("aria-hidden", "true");
      const label = el("span", "box-label");
      // The space is no flex item (not drawn) but keeps the words apart in the button's name.
      label.append(el("span", "box-kind", layer.kind.toUpperCase()), " ", el("span", "box-shape", shapeText(layer.shape)));
      box.append(canvas, label);
      box.dataset.index = layer.index;
      if (layer.index >= 0) {
        box.type = "button";
        box.title = `${layer.name}: ${layer.summary || layer.kind}`;
        // Named by its visible words and then the layer's name (no aria-label that differs
        // from what is shown: a voice command says what it sees).
        box.append(el("span", "visually-hidden", `(${layer.name})`));
        box.addEventListener("click", () => this.onSelect(layer.index));
      } else {
        box.title = `The input image, ${shapeText(layer.shape)}`;
      }
      item.append(box);
      return { index: layer.index, kind: layer.kind, color: kindColor(layer.kind), shape: layer.shape, item, box, canvas, label };
    });
    this.list.replaceChildren(...this.boxes.map((b) => b.item));
  }

  get indices() {
    return this.boxes.map((b) => b.index);
  }

  /**
   * Size every box so that the row fits the panel's width, wrapping onto balanced lines
   * when even the smallest boxes would not fit, and never taller than a share of the
   * window. Returns false when there is nothing to lay out yet.
   */
  layout(presenter) {
    const row = this.list;
    const boxes = this.boxes;
    if (!boxes.length || !row.clientWidth) return false;
    const style = getComputedStyle(row);
    const gap = Number.parseFloat(style.columnGap) || 8;
    // The panel's width, not the row's: the row itself is narrowed below when it wraps.
    const panel = row.parentElement;
    const panelStyle = getComputedStyle(panel);
    const available =
      panel.clientWidth -
      Number.parseFloat(panelStyle.paddingLeft) -
      Number.parseFloat(panelStyle.paddingRight) -
      Number.parseFloat(style.paddingLeft) -
      Number.parseFloat(style.paddingRight);
    const border = boxes[0].box.offsetWidth - boxes[0].canvas.offsetWidth;
    const labels = boxes.map((b) => b.label.scrollWidth + 6);
    const cellWidth = (b, i, scale) => {
      const g = boxGeometry(b.shape, scale);
      return Math.max(g.fw + g.ox + PAD, labels[i]);
    };
    const widthAt = (scale) =>
      boxes.reduce((sum, b, i) => sum + cellWidth(b, i, scale) + border, gap * (boxes.length - 1) + 1);

    const tallest = Math.max(...boxes.map((b) => boxGeometry(b.shape, 1)).map((g) => g.fh + g.oy));
    // The smallest scale: 0.35, or less where a box would be taller than TALLEST_AT_LEAST
    // (a 224x224 input's is 275 px at scale 1: three lines of 90 px boxes filled the screen).
    const floor = Math.min(0.35, TALLEST_AT_LEAST / tallest);
    const lines = Math.max(1, Math.ceil(widthAt((0.5 * floor) / 0.35) / available));
    row.classList.toggle("wrapped", lines > 1);
    const fits = (scale) => widthAt(scale) <= available * lines * (lines > 1 ? 0.92 : 1);
    const maxHeight = (window.innerHeight * (presenter ? 0.16 : 0.14)) / lines;
    let lo = floor;
    let hi = Math.max(lo, Math.min(presenter ? 2.2 : 1.6, maxHeight / tallest));
    for (let step = 0; step < 20; step++) {
      const mid = (lo + hi) / 2;
      if (fits(mid)) lo = mid;
      else hi = mid;
    }
    // Wrapped lines of about equal length, rather than a full line and a stub.
    const widest = Math.max(...boxes.map((b, i) => cellWidth(b, i, lo) + border + gap));
    row.style.setProperty("max-width", lines > 1 ? `${Math.ceil(widthAt(lo) / lines + widest)}px` : "none");

    const height = Math.max(...boxes.map((b) => boxGeometry(b.shape, lo)).map((g) => g.fh + g.oy)) + PAD;
    const dpr = window.devicePixelRatio || 1;
    boxes.forEach((b, i) => {
      b.geometry = boxGeometry(b.shape, lo);
      b.cssWidth = cellWidth(b, i, lo);
      b.cssHeight = height;
      b.canvas.style.width = `${b.cssWidth}px`;
      b.canvas.style.height = `${height}px`;
      b.canvas.width = Math.round(b.cssWidth * dpr);
      b.canvas.height = Math.round(height * dpr);
    });
    return true;
  }

  /** Draw box `index`: its faces ({front, top, side} canvases) or, without, its outline. */
  draw(index, faces, { selected = false, computing = false } = {}) {
    const b = this.boxes.find((box) => box.index === index);
    if (!b?.geometry) return;
    const dpr = window.devicePixelRatio || 1;
    const ctx = b.canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, b.canvas.width, b.canvas.height);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const g = b.geometry;
    const x = (b.cssWidth - g.fw - g.ox) / 2;
    const y = (b.cssHeight - g.fh - g.oy) / 2;
    drawBox(ctx, dpr, x, y, g, faces, { color: b.color, selected });
    b.box.classList.toggle("arrived", Boolean(faces));
    b.box.classList.toggle("computing", computing);
  }

  /** Mark layer `index` selected (roving tabindex); with `focus`, move the focus to it. */
  select(index, focus = false) {
    for (const b of this.boxes) {
      if (b.index < 0) continue;
      const selected = b.index === index;
      b.box.setAttribute("aria-pressed", String(selected));
      b.box.tabIndex = selected ? 0 : -1;
      if (selected && focus) {
        b.box.focus();
        b.box.scrollIntoView({ block: "nearest", inline: "nearest" });
      }
    }
  }
}
