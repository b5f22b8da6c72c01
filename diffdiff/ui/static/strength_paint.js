// Strength paint: the pure functions of the strength painter (no DOM, no state): percent ↔ map byte, the
// brush's coverage and the compositing rule (replace | max | min), strokes, flood fill, gradients, the ramp.
// The map is a Uint8Array of W×H bytes (byte b = strength b/255); 0 keeps the image, 255 changes it fully.
// Plain browser JavaScript with one top-level binding, so the same text works as a classic <script>
// and as part of the body of Gradio's js_on_load (no modules, no template syntax, no network).
const StrengthPaint = (() => {
  "use strict";

  const MODES = ["replace", "max", "min"];

  function clamp(v, lo, hi) {
    return v < lo ? lo : v > hi ? hi : v;
  }

  function finite(v, fallback) {
    const n = Number(v);
    return Number.isFinite(n) ? n : fallback;
  }

  /** A percentage 0–100 as a map byte: 40 → 102 (which reads back as exactly 0.4). */
  function percentToByte(p) {
    return Math.round(clamp(finite(p, 0), 0, 100) * 255 / 100);
  }

  /** A map byte as a rounded integer percentage. */
  function byteToPercent(b) {
    return Math.round(clamp(finite(b, 0), 0, 255) * 100 / 255);
  }

  /** Brush coverage in [0, 1] at `distance` from the stroke: 1 within radius·hardness, 0 from radius on,
   * a smoothstep fall between. Hardness 1 is a hard disc (1 inside the radius, 0 outside). */
  function coverage(distance, radius, hardness) {
    if (!(radius > 0) || !(distance < radius)) return 0;
    const inner = radius * clamp(finite(hardness, 1), 0, 1);
    if (distance <= inner) return 1;
    const t = (distance - inner) / (radius - inner);
    return 1 - t * t * (3 - 2 * t);
  }

  /** Raise `cov` (Float32Array W·H) to the coverage of the capsule around the segment (x0,y0)–(x1,y1),
   * measured from each pixel's centre (x+0.5, y+0.5); takes the max, so repeated passes never add up.
   * Touches only the segment's bounding box grown by the radius; returns it clipped: {x, y, w, h}. */
  function paintSegment(cov, W, H, x0, y0, x1, y1, radius, hardness) {
    const minX = Math.max(0, Math.floor(Math.min(x0, x1) - radius));
    const minY = Math.max(0, Math.floor(Math.min(y0, y1) - radius));
    const maxX = Math.min(W, Math.ceil(Math.max(x0, x1) + radius));
    const maxY = Math.min(H, Math.ceil(Math.max(y0, y1) + radius));
    if (!(maxX > minX && maxY > minY && radius > 0)) return { x: 0, y: 0, w: 0, h: 0 };
    const dx = x1 - x0;
    const dy = y1 - y0;
    const len2 = dx * dx + dy * dy;
    for (let y = minY; y < maxY; y++) {
      const py = y + 0.5;
      let i = y * W + minX;
      for (let x = minX; x < maxX; x++, i++) {
        const px = x + 0.5;
        let t = len2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / len2 : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const ex = px - (x0 + t * dx);
        const ey = py - (y0 + t * dy);
        const c = coverage(Math.sqrt(ex * ex + ey * ey), radius, hardness);
        if (c > cov[i]) cov[i] = c;
      }
    }
    return { x: minX, y: minY, w: maxX - minX, h: maxY - minY };
  }

  /** One pixel: lay `valueByte` over `before` at coverage `c` in a mode (replace | max | min). */
  function combine(before, valueByte, c, mode) {
    let d = valueByte - before;
    if (mode === "max") {
      if (d < 0) d = 0;
    } else if (mode === "min") {
      if (d > 0) d = 0;
    } else if (mode !== "replace") {
      throw new Error("unknown mode " + mode + " (replace, max or min)");
    }
    const v = Math.round(before + d * clamp(c, 0, 1));
    return v < 0 ? 0 : v > 255 ? 255 : v;
  }

  /** Write the stroke into `target` over `rect`, every pixel from `before` (the map as it was when the
   * stroke began) and the stroke's coverage, so the result never depends on how often the pointer passed. */
  function applyStroke(target, before, cov, W, valueByte, mode, rect) {
    if (!rect || rect.w <= 0 || rect.h <= 0) return rect;
    for (let y = rect.y; y < rect.y + rect.h; y++) {
      let i = y * W + rect.x;
      for (let x = 0; x < rect.w; x++, i++) {
        const c = cov[i];
        target[i] = c > 0 ? combine(before[i], valueByte, c, mode) : before[i];
      }
    }
    return rect;
  }

  /** Paint bucket: set the 4-connected region of pixels equal to the one at (x, y) to `valueByte`.
   * Returns the changed rectangle {x, y, w, h}, or null when nothing changed. */
  function floodFill(map, W, H, x, y, valueByte) {
    x = Math.floor(x);
    y = Math.floor(y);
    if (!(x >= 0 && y >= 0 && x < W && y < H)) return null;
    const target = map[y * W + x];
    if (target === valueByte) return null;
    let minX = x;
    let maxX = x;
    let minY = y;
    let maxY = y;
    const stack = [x, y];
    while (stack.length) {
      const sy = stack.pop();
      const sx = stack.pop();
      const row = sy * W;
      if (map[row + sx] !== target) continue;
      let l = sx;
      while (l > 0 && map[row + l - 1] === target) l--;
      let r = sx;
      while (r < W - 1 && map[row + r + 1] === target) r++;
      map.fill(valueByte, row + l, row + r + 1);
      if (l < minX) minX = l;
      if (r > maxX) maxX = r;
      if (sy < minY) minY = sy;
      if (sy > maxY) maxY = sy;
      for (let ny = sy - 1; ny <= sy + 1; ny += 2) {
        if (ny < 0 || ny >= H) continue;
        const nrow = ny * W;
        let inRun = false;
        for (let i = l; i <= r; i++) {
          if (map[nrow + i] === target) {
            if (!inRun) {
              stack.push(i, ny);
              inRun = true;
            }
          } else {
            inRun = false;
          }
        }
      }
    }
    return { x: minX, y: minY, w: maxX - minX + 1, h: maxY - minY + 1 };
  }

  /** Per-pixel values (Float32Array W·H): startByte at and before the start point (projected on the drag
   * direction), endByte at and after the end point, linear between. */
  function linearGradient(W, H, x0, y0, x1, y1, startByte, endByte) {
    const out = new Float32Array(W * H);
    const dx = x1 - x0;
    const dy = y1 - y0;
    const len2 = dx * dx + dy * dy;
    const span = endByte - startByte;
    for (let y = 0; y < H; y++) {
      let i = y * W;
      for (let x = 0; x < W; x++, i++) {
        let t = len2 > 0 ? ((x + 0.5 - x0) * dx + (y + 0.5 - y0) * dy) / len2 : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        out[i] = startByte + span * t;
      }
    }
    return out;
  }

  /** Per-pixel values (Float32Array W·H): centreByte at the centre, edgeByte at and beyond `radius`. */
  function radialGradient(W, H, cx, cy, radius, centreByte, edgeByte) {
    const out = new Float32Array(W * H);
    const span = edgeByte - centreByte;
    for (let y = 0; y < H; y++) {
      const ey = y + 0.5 - cy;
      let i = y * W;
      for (let x = 0; x < W; x++, i++) {
        const ex = x + 0.5 - cx;
        const t = radius > 0 ? Math.min(1, Math.sqrt(ex * ex + ey * ey) / radius) : 1;
        out[i] = centreByte + span * t;
      }
    }
    return out;
  }

  /** The ramp's colour [r, g, b] for a map byte (the ramp is the 256-entry table from the server). */
  function rampColour(ramp, byte) {
    const c = ramp[clamp(Math.round(finite(byte, 0)), 0, 255)];
    return [c[0], c[1], c[2]];
  }

  function greyRamp() {
    const ramp = [];
    for (let b = 0; b < 256; b++) ramp.push([b, b, b]);
    return ramp;
  }

  /** The ramp as 768 bytes r, g, b for bytes 0..255, for filling image data fast. */
  function flatRamp(ramp) {
    const flat = new Uint8Array(768);
    for (let b = 0; b < 256; b++) {
      const c = rampColour(ramp, b);
      flat[b * 3] = c[0];
      flat[b * 3 + 1] = c[1];
      flat[b * 3 + 2] = c[2];
    }
    return flat;
  }

  return {
    MODES,
    clamp,
    finite,
    percentToByte,
    byteToPercent,
    coverage,
    paintSegment,
    combine,
    applyStroke,
    floodFill,
    linearGradient,
    radialGradient,
    rampColour,
    greyRamp,
    flatRamp,
  };
})();
