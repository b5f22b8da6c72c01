// Strength painter: paint a per-pixel denoising strength map over an image.
// The map is a Uint8Array of W×H bytes (byte b = strength b/255); 0 keeps the image, 255 changes it fully.
// Plain browser JavaScript with one top-level binding, so the same text works as a classic <script>
// and as the body of Gradio's js_on_load (no modules, no template syntax, no network).
const StrengthCanvas = (() => {
  "use strict";

  const TOOLS = ["brush", "eraser", "fill", "linear", "radial", "pan"];
  const MODES = ["replace", "max", "min"];
  const SHOWS = ["overlay", "image", "map"];
  const MAX_UNDO = 50;
  const UNDO_BUDGET_BYTES = 256 * 1024 * 1024; // patches kept for undo and redo (oldest dropped first)
  const MIN_ZOOM = 0.01;
  const MAX_ZOOM = 64;
  const ZOOM_STEP = 1.25;
  const MAX_SIZE = 400;

  // ---------------------------------------------------------------- pure functions

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

  function isEditable(el) {
    if (!el || el.nodeType !== 1) return false;
    if (el.isContentEditable) return true;
    const tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag !== "INPUT") return false;
    const type = (el.type || "text").toLowerCase();
    return ["range", "button", "checkbox", "radio", "color", "file", "submit", "reset", "image"].indexOf(type) < 0;
  }

  // ---------------------------------------------------------------- the component

  function mount(root, props) {
    if (!root) throw new Error("StrengthCanvas.mount: no .dd-canvas element");
    props = props || {};
    let ramp = props.ramp;
    if (!Array.isArray(ramp) || ramp.length !== 256) {
      console.warn("StrengthCanvas: props.ramp should hold 256 [r, g, b] colours; showing the map in grey");
      ramp = greyRamp();
    }
    const rampFlat = new Uint8Array(768);
    for (let b = 0; b < 256; b++) {
      const c = rampColour(ramp, b);
      rampFlat[b * 3] = c[0];
      rampFlat[b * 3 + 1] = c[1];
      rampFlat[b * 3 + 2] = c[2];
    }

    const byId = (id) => root.querySelector("#" + id);
    const stage = root.querySelector(".dd-stage");
    const view = byId("dd-view");
    const ctx = view.getContext("2d");
    const cursorEl = root.querySelector(".dd-brush-cursor");
    const hint = root.querySelector(".dd-hint");
    const statusEl = byId("dd-status");
    const fileInput = byId("dd-file");
    const inputs = {
      value: byId("dd-value"),
      size: byId("dd-size"),
      hardness: byId("dd-hardness"),
      mode: byId("dd-mode"),
      gradientEnd: byId("dd-gradient-end"),
      show: byId("dd-show"),
      opacity: byId("dd-opacity"),
    };
    const outputs = {
      value: byId("dd-value-out"),
      size: byId("dd-size-out"),
      hardness: byId("dd-hardness-out"),
      gradientEnd: byId("dd-gradient-end-out"),
      opacity: byId("dd-opacity-out"),
    };
    const buttons = {
      undo: byId("dd-undo"),
      redo: byId("dd-redo"),
      clear: byId("dd-clear"),
      fillAll: byId("dd-fill-all"),
      zoomIn: byId("dd-zoom-in"),
      zoomOut: byId("dd-zoom-out"),
      zoomFit: byId("dd-zoom-fit"),
    };

    // State.
    let img = null;
    let W = 0;
    let H = 0;
    let map = null; // Uint8Array W·H: the strength map
    let before = null; // Uint8Array W·H: the map as it was when the current operation began (reused)
    let cov = null; // Float32Array W·H: the current stroke's coverage (reused; only dirty areas reset)
    let loadToken = 0;
    const overlay = document.createElement("canvas"); // W×H: the map in ramp colours, opaque
    const overlayCtx = overlay.getContext("2d");
    let overlayData = null;
    const brushState = { value: 50, size: 40, hardness: 50, mode: "max" };
    let gradientEnd = 0;
    let tool = "brush";
    const vs = { show: "overlay", opacity: 0.5, zoom: 1, offsetX: 0, offsetY: 0 };
    let undoStack = [];
    let redoStack = [];
    let drag = null; // {kind: "stroke" | "pan" | "gradient", id, ...}
    let hoverX = 0;
    let hoverY = 0;
    let hovering = false;
    let spaceDown = false;
    let needsFit = false;
    let frame = 0;

    const controller = {
      onImageFile: null,
      onChange: null,
    };

    // ------------------------------------------------------------ helpers

    function fullRect() {
      return { x: 0, y: 0, w: W, h: H };
    }

    function fireChange() {
      if (typeof controller.onChange === "function") {
        try {
          controller.onChange();
        } catch (err) {
          console.error("StrengthCanvas onChange:", err);
        }
      }
    }

    function offerFile(file) {
      if (!file || typeof controller.onImageFile !== "function") return false;
      try {
        controller.onImageFile(file);
      } catch (err) {
        console.error("StrengthCanvas onImageFile:", err);
      }
      return true;
    }

    function imageFileOf(list) {
      if (!list) return null;
      for (let i = 0; i < list.length; i++) {
        const f = list[i];
        if (f && f.type && f.type.indexOf("image/") === 0) return f;
      }
      return null;
    }

    function updateOverlay(r) {
      if (!overlayData || !r || r.w <= 0 || r.h <= 0) return;
      const d = overlayData.data;
      for (let y = r.y; y < r.y + r.h; y++) {
        let i = y * W + r.x;
        let o = i * 4;
        for (let x = 0; x < r.w; x++, i++, o += 4) {
          const k = map[i] * 3;
          d[o] = rampFlat[k];
          d[o + 1] = rampFlat[k + 1];
          d[o + 2] = rampFlat[k + 2];
          d[o + 3] = 255;
        }
      }
      overlayCtx.putImageData(overlayData, 0, 0, r.x, r.y, r.w, r.h);
    }

    function copyRect(src, r) {
      const out = new Uint8Array(r.w * r.h);
      for (let y = 0; y < r.h; y++) {
        const s = (r.y + y) * W + r.x;
        out.set(src.subarray(s, s + r.w), y * r.w);
      }
      return out;
    }

    function pasteRect(dst, patch, r) {
      for (let y = 0; y < r.h; y++) dst.set(patch.subarray(y * r.w, (y + 1) * r.w), (r.y + y) * W + r.x);
    }

    function undoBytes() {
      let n = 0;
      for (const s of undoStack) n += 2 * s.w * s.h;
      for (const s of redoStack) n += 2 * s.w * s.h;
      return n;
    }

    /** Record the change between `before` and `map` inside `r` as one undo step (tight bounding box).
     * Returns false when nothing changed. */
    function commit(r) {
      let minX = W;
      let minY = H;
      let maxX = -1;
      let maxY = -1;
      for (let y = r.y; y < r.y + r.h; y++) {
        let i = y * W + r.x;
        for (let x = r.x; x < r.x + r.w; x++, i++) {
          if (map[i] !== before[i]) {
            if (x < minX) minX = x;
            if (x > maxX) maxX = x;
            if (y < minY) minY = y;
            if (y > maxY) maxY = y;
          }
        }
      }
      if (maxX < 0) return false;
      const t = { x: minX, y: minY, w: maxX - minX + 1, h: maxY - minY + 1 };
      t.before = copyRect(before, t);
      t.after = copyRect(map, t);
      undoStack.push(t);
      redoStack = [];
      while (undoStack.length > MAX_UNDO || (undoStack.length > 1 && undoBytes() > UNDO_BUDGET_BYTES)) {
        undoStack.shift();
      }
      updateButtons();
      return true;
    }

    function viewWidth() {
      return view.clientWidth;
    }

    function viewHeight() {
      return view.clientHeight;
    }

    function imageX(vx) {
      return (vx - vs.offsetX) / vs.zoom;
    }

    function imageY(vy) {
      return (vy - vs.offsetY) / vs.zoom;
    }

    // ------------------------------------------------------------ drawing

    function render() {
      if (frame) cancelAnimationFrame(frame);
      frame = 0;
      const dpr = window.devicePixelRatio || 1;
      const bw = Math.max(1, Math.round(viewWidth() * dpr));
      const bh = Math.max(1, Math.round(viewHeight() * dpr));
      if (view.width !== bw || view.height !== bh) {
        view.width = bw;
        view.height = bh;
      }
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.globalAlpha = 1;
      ctx.fillStyle = "#3a3a3a";
      ctx.fillRect(0, 0, bw, bh);
      if (img) {
        ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
        ctx.imageSmoothingEnabled = vs.zoom < 1;
        const x = vs.offsetX;
        const y = vs.offsetY;
        const w = W * vs.zoom;
        const h = H * vs.zoom;
        if (vs.show === "map") {
          ctx.drawImage(overlay, x, y, w, h);
        } else {
          ctx.drawImage(img, x, y, w, h);
          if (vs.show === "overlay" && vs.opacity > 0) {
            ctx.globalAlpha = vs.opacity;
            ctx.drawImage(overlay, x, y, w, h);
            ctx.globalAlpha = 1;
          }
        }
        if (drag && drag.kind === "gradient") drawGuide();
      }
      updateStatus();
    }

    function drawGuide() {
      const z = vs.zoom;
      const ax = vs.offsetX + drag.x0 * z;
      const ay = vs.offsetY + drag.y0 * z;
      const bx = vs.offsetX + drag.x1 * z;
      const by = vs.offsetY + drag.y1 * z;
      ctx.save();
      ctx.lineCap = "round";
      for (const pass of [["rgba(0, 0, 0, 0.7)", 3], ["rgba(255, 255, 255, 0.95)", 1.25]]) {
        ctx.strokeStyle = pass[0];
        ctx.lineWidth = pass[1];
        ctx.beginPath();
        ctx.moveTo(ax, ay);
        ctx.lineTo(bx, by);
        if (drag.tool === "radial") {
          ctx.moveTo(ax + Math.hypot(bx - ax, by - ay), ay);
          ctx.arc(ax, ay, Math.hypot(bx - ax, by - ay), 0, 2 * Math.PI);
        }
        ctx.stroke();
        ctx.beginPath();
        ctx.arc(ax, ay, 4, 0, 2 * Math.PI);
        ctx.moveTo(bx + 4, by);
        ctx.arc(bx, by, 4, 0, 2 * Math.PI);
        ctx.stroke();
      }
      ctx.restore();
    }

    function scheduleRender() {
      if (!frame) frame = requestAnimationFrame(render);
    }

    function updateStatus() {
      if (!statusEl) return;
      if (!img) {
        statusEl.textContent = "No image";
        return;
      }
      let s = W + "×" + H + " · zoom " + Math.round(vs.zoom * 100) + " %";
      if (hovering) {
        const x = Math.floor(imageX(hoverX));
        const y = Math.floor(imageY(hoverY));
        if (x >= 0 && y >= 0 && x < W && y < H) s += " · strength here " + byteToPercent(map[y * W + x]) + " %";
      }
      statusEl.textContent = s;
    }

    function brushCursorVisible() {
      return hovering && !!img && (tool === "brush" || tool === "eraser") && !spaceDown &&
        !(drag && drag.kind === "pan");
    }

    function updateCursor() {
      if (!cursorEl) return;
      if (!brushCursorVisible()) {
        cursorEl.style.display = "none";
        return;
      }
      const d = Math.max(2, brushState.size * vs.zoom);
      // The stage's border: the canvas sits at the stage's padding box origin.
      const left = view.offsetLeft + hoverX - d / 2;
      const top = view.offsetTop + hoverY - d / 2;
      cursorEl.style.display = "block";
      cursorEl.style.width = d + "px";
      cursorEl.style.height = d + "px";
      cursorEl.style.transform = "translate(" + left + "px, " + top + "px)";
    }

    function drawLegend() {
      const legend = byId("dd-legend");
      if (!legend) return;
      const lctx = legend.getContext("2d");
      const w = legend.width;
      const h = legend.height;
      const data = lctx.createImageData(w, h);
      for (let x = 0; x < w; x++) {
        const b = w > 1 ? Math.round(x * 255 / (w - 1)) : 0;
        for (let y = 0; y < h; y++) {
          const o = (y * w + x) * 4;
          data.data[o] = rampFlat[b * 3];
          data.data[o + 1] = rampFlat[b * 3 + 1];
          data.data[o + 2] = rampFlat[b * 3 + 2];
          data.data[o + 3] = 255;
        }
      }
      lctx.putImageData(data, 0, 0);
    }

    // ------------------------------------------------------------ controls

    function syncControls() {
      if (inputs.value) inputs.value.value = String(Math.round(brushState.value));
      if (inputs.size) inputs.size.value = String(brushState.size);
      if (inputs.hardness) inputs.hardness.value = String(Math.round(brushState.hardness));
      if (inputs.mode) inputs.mode.value = brushState.mode;
      if (inputs.gradientEnd) inputs.gradientEnd.value = String(Math.round(gradientEnd));
      if (inputs.show) inputs.show.value = vs.show;
      if (inputs.opacity) {
        inputs.opacity.value = String(Math.round(vs.opacity * 100));
        inputs.opacity.disabled = vs.show !== "overlay";
      }
      if (outputs.value) outputs.value.textContent = Math.round(brushState.value) + " %";
      if (outputs.size) outputs.size.textContent = brushState.size + " px";
      if (outputs.hardness) outputs.hardness.textContent = Math.round(brushState.hardness) + " %";
      if (outputs.gradientEnd) outputs.gradientEnd.textContent = Math.round(gradientEnd) + " %";
      if (outputs.opacity) outputs.opacity.textContent = Math.round(vs.opacity * 100) + " %";
    }

    function updateButtons() {
      if (buttons.undo) buttons.undo.disabled = undoStack.length === 0;
      if (buttons.redo) buttons.redo.disabled = redoStack.length === 0;
      for (const b of [buttons.clear, buttons.fillAll, buttons.zoomIn, buttons.zoomOut, buttons.zoomFit]) {
        if (b) b.disabled = !img;
      }
    }

    function syncTool() {
      for (const name of TOOLS) {
        const b = byId("dd-tool-" + name);
        if (b) {
          b.classList.toggle("active", name === tool);
          b.setAttribute("aria-pressed", name === tool ? "true" : "false");
        }
      }
      if (stage) stage.setAttribute("data-tool", tool);
      updateCursor();
    }

    // ------------------------------------------------------------ operations

    function finishDrag(cancelled) {
      const d = drag;
      if (!d) return;
      drag = null;
      if (stage) stage.classList.remove("dd-panning");
      if (d.kind === "stroke") {
        const r = d.rect;
        if (r.w > 0 && r.h > 0) {
          const changed = commit(r);
          for (let y = r.y; y < r.y + r.h; y++) cov.fill(0, y * W + r.x, y * W + r.x + r.w);
          if (changed) fireChange();
        }
      } else if (d.kind === "gradient") {
        const length = Math.hypot(d.x1 - d.x0, d.y1 - d.y0);
        if (!cancelled && length * vs.zoom >= 2) applyGradient(d);
      }
      updateCursor();
      scheduleRender();
    }

    function beginStroke(x, y, pointerId) {
      const eraser = tool === "eraser";
      before.set(map);
      drag = {
        kind: "stroke",
        id: pointerId,
        lastX: x,
        lastY: y,
        value: eraser ? 0 : percentToByte(brushState.value),
        mode: eraser ? "replace" : brushState.mode,
        radius: brushState.size / 2,
        hardness: brushState.hardness / 100,
        rect: { x: 0, y: 0, w: 0, h: 0 },
      };
      strokeTo(x, y);
    }

    function strokeTo(x, y) {
      const d = drag;
      const r = paintSegment(cov, W, H, d.lastX, d.lastY, x, y, d.radius, d.hardness);
      d.lastX = x;
      d.lastY = y;
      if (r.w <= 0 || r.h <= 0) return;
      applyStroke(map, before, cov, W, d.value, d.mode, r);
      updateOverlay(r);
      const u = d.rect;
      if (u.w <= 0) {
        u.x = r.x;
        u.y = r.y;
        u.w = r.w;
        u.h = r.h;
      } else {
        const x1 = Math.max(u.x + u.w, r.x + r.w);
        const y1 = Math.max(u.y + u.h, r.y + r.h);
        u.x = Math.min(u.x, r.x);
        u.y = Math.min(u.y, r.y);
        u.w = x1 - u.x;
        u.h = y1 - u.y;
      }
      scheduleRender();
    }

    function applyGradient(d) {
      const start = percentToByte(brushState.value);
      const end = percentToByte(gradientEnd);
      const g = d.tool === "radial"
        ? radialGradient(W, H, d.x0, d.y0, Math.hypot(d.x1 - d.x0, d.y1 - d.y0), start, end)
        : linearGradient(W, H, d.x0, d.y0, d.x1, d.y1, start, end);
      before.set(map);
      const mode = brushState.mode;
      for (let i = 0; i < map.length; i++) map[i] = combine(before[i], g[i], 1, mode);
      finishOperation(fullRect());
    }

    /** After `map` changed from `before` inside `r`: record undo, refresh, tell the page. */
    function finishOperation(r) {
      if (commit(r)) {
        updateOverlay(r);
        scheduleRender();
        fireChange();
        return true;
      }
      return false;
    }

    function fillAt(x, y) {
      const px = Math.floor(x);
      const py = Math.floor(y);
      if (!(px >= 0 && py >= 0 && px < W && py < H)) return false;
      const value = combine(map[py * W + px], percentToByte(brushState.value), 1, brushState.mode);
      before.set(map);
      const r = floodFill(map, W, H, px, py, value);
      return r ? finishOperation(r) : false;
    }

    function setEverything(value) {
      if (!img) return false;
      before.set(map);
      map.fill(value);
      return finishOperation(fullRect());
    }

    function step(from, to) {
      if (!img || drag || !from.length) return false;
      const s = from.pop();
      pasteRect(map, from === undoStack ? s.before : s.after, s);
      to.push(s);
      updateOverlay(s);
      scheduleRender();
      updateButtons();
      fireChange();
      return true;
    }

    function setZoom(zoom, cx, cy) {
      const old = vs.zoom;
      const z = clamp(finite(zoom, old), MIN_ZOOM, MAX_ZOOM);
      const px = cx == null ? viewWidth() / 2 : finite(cx, viewWidth() / 2);
      const py = cy == null ? viewHeight() / 2 : finite(cy, viewHeight() / 2);
      const ix = (px - vs.offsetX) / old;
      const iy = (py - vs.offsetY) / old;
      vs.zoom = z;
      vs.offsetX = Math.round(px - ix * z);
      vs.offsetY = Math.round(py - iy * z);
      needsFit = false;
      updateCursor();
      scheduleRender();
      return view_();
    }

    function fit() {
      if (!img) return view_();
      const cw = viewWidth();
      const ch = viewHeight();
      if (!cw || !ch) {
        needsFit = true; // not laid out yet (a hidden tab): fit once it has a size
        return view_();
      }
      needsFit = false;
      const z = clamp(Math.min(cw / W, ch / H), MIN_ZOOM, MAX_ZOOM);
      vs.zoom = z;
      vs.offsetX = Math.round((cw - W * z) / 2);
      vs.offsetY = Math.round((ch - H * z) / 2);
      updateCursor();
      scheduleRender();
      return view_();
    }

    function panBy(dx, dy) {
      vs.offsetX = Math.round(vs.offsetX + finite(dx, 0));
      vs.offsetY = Math.round(vs.offsetY + finite(dy, 0));
      needsFit = false;
      scheduleRender();
      return view_();
    }

    function view_() {
      return { show: vs.show, opacity: vs.opacity, zoom: vs.zoom, offsetX: vs.offsetX, offsetY: vs.offsetY };
    }

    function loadImage(url) {
      return new Promise((resolve, reject) => {
        const im = new Image();
        im.onload = () => resolve(im);
        im.onerror = () => reject(new Error("could not load the image"));
        im.src = url;
      });
    }

    // ------------------------------------------------------------ events

    const listeners = [];

    function on(target, type, fn, options) {
      if (!target) return;
      target.addEventListener(type, fn, options);
      listeners.push([target, type, fn, options]);
    }

    function pointerPos(e) {
      const r = view.getBoundingClientRect();
      hoverX = e.clientX - r.left;
      hoverY = e.clientY - r.top;
    }

    on(view, "pointerdown", (e) => {
      if (!img || drag) return;
      const panning = e.button === 1 || (e.button === 0 && (tool === "pan" || spaceDown));
      if (!panning && e.button !== 0) return;
      e.preventDefault();
      if (stage && document.activeElement !== stage) {
        try {
          stage.focus({ preventScroll: true });
        } catch (err) {
          /* focus is a convenience for the keyboard shortcuts */
        }
      }
      try {
        view.setPointerCapture(e.pointerId);
      } catch (err) {
        /* synthetic pointers may not be capturable */
      }
      pointerPos(e);
      hovering = true;
      if (panning) {
        drag = { kind: "pan", id: e.pointerId, sx: hoverX, sy: hoverY, ox: vs.offsetX, oy: vs.offsetY };
        if (stage) stage.classList.add("dd-panning");
        updateCursor();
        return;
      }
      const x = imageX(hoverX);
      const y = imageY(hoverY);
      if (tool === "brush" || tool === "eraser") {
        beginStroke(x, y, e.pointerId);
      } else if (tool === "fill") {
        fillAt(x, y);
      } else if (tool === "linear" || tool === "radial") {
        drag = { kind: "gradient", tool, id: e.pointerId, x0: x, y0: y, x1: x, y1: y };
        scheduleRender();
      }
    });

    on(view, "pointermove", (e) => {
      pointerPos(e);
      hovering = true;
      updateCursor();
      if (!drag || e.pointerId !== drag.id) {
        updateStatus();
        return;
      }
      if (drag.kind === "pan") {
        vs.offsetX = Math.round(drag.ox + hoverX - drag.sx);
        vs.offsetY = Math.round(drag.oy + hoverY - drag.sy);
        scheduleRender();
      } else if (drag.kind === "stroke") {
        const events = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : null;
        if (events && events.length > 1) {
          const r = view.getBoundingClientRect();
          for (const ce of events) strokeTo(imageX(ce.clientX - r.left), imageY(ce.clientY - r.top));
        } else {
          strokeTo(imageX(hoverX), imageY(hoverY));
        }
      } else if (drag.kind === "gradient") {
        drag.x1 = imageX(hoverX);
        drag.y1 = imageY(hoverY);
        scheduleRender();
      }
    });

    const endPointer = (cancelled) => (e) => {
      if (!drag || e.pointerId !== drag.id) return;
      if (drag.kind === "gradient" && !cancelled) {
        pointerPos(e);
        drag.x1 = imageX(hoverX);
        drag.y1 = imageY(hoverY);
      }
      finishDrag(cancelled);
    };
    on(view, "pointerup", endPointer(false));
    on(view, "pointercancel", endPointer(true));
    on(view, "lostpointercapture", endPointer(false));
    on(window, "pointerup", endPointer(false)); // in case the capture could not be set

    on(view, "pointerleave", () => {
      if (drag) return;
      hovering = false;
      updateCursor();
      updateStatus();
    });
    on(view, "auxclick", (e) => {
      if (e.button === 1) e.preventDefault();
    });
    on(view, "mousedown", (e) => {
      if (e.button === 1) e.preventDefault(); // no autoscroll on middle-drag
    });
    on(view, "contextmenu", (e) => {
      if (drag) e.preventDefault();
    });

    on(view, "wheel", (e) => {
      if (!img) return;
      e.preventDefault();
      pointerPos(e);
      const unit = e.deltaMode === 1 ? 0.05 : e.deltaMode === 2 ? 1 : 0.0015;
      const factor = Math.exp(-clamp(e.deltaY * unit, -1, 1));
      setZoom(vs.zoom * factor, hoverX, hoverY);
    }, { passive: false });

    if (stage) {
      on(stage, "pointerenter", () => {
        hovering = true;
      });
      on(stage, "pointerleave", () => {
        if (drag) return;
        hovering = false;
        updateCursor();
      });
      on(stage, "dragover", (e) => {
        if (!e.dataTransfer) return;
        const types = Array.prototype.slice.call(e.dataTransfer.types || []);
        if (types.indexOf("Files") < 0) return;
        e.preventDefault();
        e.dataTransfer.dropEffect = "copy";
        stage.classList.add("dd-dragover");
      });
      on(stage, "dragleave", () => stage.classList.remove("dd-dragover"));
      on(stage, "drop", (e) => {
        stage.classList.remove("dd-dragover");
        const dt = e.dataTransfer;
        if (!dt || !dt.files || !dt.files.length) return;
        e.preventDefault(); // never let the browser open the dropped file
        offerFile(imageFileOf(dt.files));
      });
    }

    on(document, "paste", (e) => {
      if (!root.isConnected) return;
      const dt = e.clipboardData;
      if (!dt) return;
      let file = null;
      const items = dt.items || [];
      for (let i = 0; i < items.length && !file; i++) {
        const item = items[i];
        if (item.kind === "file" && item.type.indexOf("image/") === 0) file = item.getAsFile();
      }
      if (!file) file = imageFileOf(dt.files);
      if (!file || typeof controller.onImageFile !== "function") return;
      e.preventDefault();
      offerFile(file);
    });

    on(document, "keydown", (e) => {
      if (!root.isConnected) return;
      const active = document.activeElement;
      if (!hovering && !(active && root.contains(active))) return;
      if (isEditable(e.target) || isEditable(active)) return;
      const key = e.key || "";
      const lower = key.toLowerCase();
      const mod = e.ctrlKey || e.metaKey;
      if (mod && !e.altKey) {
        if (lower === "z") {
          if (e.shiftKey) redo();
          else undo();
          e.preventDefault();
        } else if (lower === "y") {
          redo();
          e.preventDefault();
        }
        return;
      }
      if (mod || e.altKey) return;
      if (key === " ") {
        if (!spaceDown) {
          spaceDown = true;
          if (stage) stage.classList.add("dd-space");
          updateCursor();
        }
        e.preventDefault();
      } else if (lower === "b") {
        setTool("brush");
      } else if (lower === "e") {
        setTool("eraser");
      } else if (lower === "g") {
        setTool("fill");
      } else if (key === "[" || key === "]") {
        const s = brushState.size;
        const delta = Math.max(1, Math.round(s * 0.1));
        setBrush({ size: key === "[" ? s - delta : s + delta });
        e.preventDefault();
      }
    });

    const releaseSpace = () => {
      if (!spaceDown) return;
      spaceDown = false;
      if (stage) stage.classList.remove("dd-space");
      updateCursor();
    };
    on(document, "keyup", (e) => {
      if (e.key !== " " || !spaceDown) return;
      e.preventDefault(); // the Space that pans never presses a focused button
      releaseSpace();
    });
    on(window, "blur", releaseSpace);

    for (const name of TOOLS) on(byId("dd-tool-" + name), "click", () => setTool(name));
    on(buttons.undo, "click", () => undo());
    on(buttons.redo, "click", () => redo());
    on(buttons.clear, "click", () => clear());
    on(buttons.fillAll, "click", () => fillAll());
    on(buttons.zoomIn, "click", () => setZoom(vs.zoom * ZOOM_STEP));
    on(buttons.zoomOut, "click", () => setZoom(vs.zoom / ZOOM_STEP));
    on(buttons.zoomFit, "click", () => fit());
    on(inputs.value, "input", () => setBrush({ value: inputs.value.value }));
    on(inputs.size, "input", () => setBrush({ size: inputs.size.value }));
    on(inputs.hardness, "input", () => setBrush({ hardness: inputs.hardness.value }));
    on(inputs.mode, "change", () => setBrush({ mode: inputs.mode.value }));
    on(inputs.gradientEnd, "input", () => setGradientEnd(inputs.gradientEnd.value));
    on(inputs.show, "change", () => setView({ show: inputs.show.value }));
    on(inputs.opacity, "input", () => setView({ opacity: finite(inputs.opacity.value, 50) / 100 }));
    on(byId("dd-choose"), "click", () => {
      if (fileInput) fileInput.click();
    });
    on(fileInput, "change", () => {
      const file = imageFileOf(fileInput.files);
      fileInput.value = "";
      offerFile(file);
    });

    let resizeObserver = null;
    if (typeof ResizeObserver === "function") {
      resizeObserver = new ResizeObserver(() => {
        if (needsFit) fit();
        else scheduleRender();
      });
      resizeObserver.observe(view);
    }

    // ------------------------------------------------------------ the controller's API

    function setImage(url) {
      const token = ++loadToken;
      return loadImage(url).then((im) => {
        if (token !== loadToken) throw new Error("another image was set meanwhile");
        const w = im.naturalWidth;
        const h = im.naturalHeight;
        if (!w || !h) throw new Error("the image has no pixels");
        if (drag) drag = null;
        img = im;
        W = w;
        H = h;
        map = new Uint8Array(W * H);
        before = new Uint8Array(W * H);
        cov = new Float32Array(W * H);
        overlay.width = W;
        overlay.height = H;
        overlayData = overlayCtx.createImageData(W, H);
        updateOverlay(fullRect());
        undoStack = [];
        redoStack = [];
        if (hint) hint.hidden = true;
        if (stage) stage.classList.add("dd-has-image");
        updateButtons();
        fit();
        render();
        return { width: W, height: H };
      });
    }

    function setMap(dataUrl) {
      if (!img) return Promise.reject(new Error("set an image before its map"));
      const token = loadToken;
      return loadImage(dataUrl).then((im) => {
        if (token !== loadToken) throw new Error("the image changed while the map was loading");
        if (im.naturalWidth !== W || im.naturalHeight !== H) {
          throw new Error("the map is " + im.naturalWidth + "×" + im.naturalHeight + " but the image is " +
            W + "×" + H);
        }
        const c = document.createElement("canvas");
        c.width = W;
        c.height = H;
        const cctx = c.getContext("2d", { willReadFrequently: true });
        cctx.drawImage(im, 0, 0);
        const data = cctx.getImageData(0, 0, W, H).data;
        if (drag) finishDrag(true);
        before.set(map);
        for (let i = 0, o = 0; i < map.length; i++, o += 4) map[i] = data[o];
        finishOperation(fullRect());
      });
    }

    function exportMap() {
      if (!img) return null;
      const c = document.createElement("canvas");
      c.width = W;
      c.height = H;
      const cctx = c.getContext("2d");
      const out = cctx.createImageData(W, H);
      const d = out.data;
      for (let i = 0, o = 0; i < map.length; i++, o += 4) {
        const b = map[i];
        d[o] = b;
        d[o + 1] = b;
        d[o + 2] = b;
        d[o + 3] = 255;
      }
      cctx.putImageData(out, 0, 0);
      return c.toDataURL("image/png");
    }

    function setTool(name) {
      if (TOOLS.indexOf(name) < 0) throw new Error("unknown tool " + name + " (" + TOOLS.join(", ") + ")");
      if (drag && drag.kind !== "pan") finishDrag(false);
      tool = name;
      syncTool();
      return tool;
    }

    function setBrush(o) {
      o = o || {};
      if (o.mode !== undefined) {
        if (MODES.indexOf(o.mode) < 0) throw new Error("unknown mode " + o.mode + " (" + MODES.join(", ") + ")");
        brushState.mode = o.mode;
      }
      if (o.value !== undefined) brushState.value = clamp(finite(o.value, brushState.value), 0, 100);
      if (o.size !== undefined) brushState.size = clamp(Math.round(finite(o.size, brushState.size)), 1, MAX_SIZE);
      if (o.hardness !== undefined) brushState.hardness = clamp(finite(o.hardness, brushState.hardness), 0, 100);
      syncControls();
      updateCursor();
      return brush();
    }

    function brush() {
      return { value: brushState.value, size: brushState.size, hardness: brushState.hardness, mode: brushState.mode };
    }

    function setGradientEnd(p) {
      gradientEnd = clamp(finite(p, gradientEnd), 0, 100);
      syncControls();
      return gradientEnd;
    }

    function setView(o) {
      o = o || {};
      if (o.show !== undefined) {
        if (SHOWS.indexOf(o.show) < 0) throw new Error("unknown view " + o.show + " (" + SHOWS.join(", ") + ")");
        vs.show = o.show;
      }
      if (o.opacity !== undefined) vs.opacity = clamp(finite(o.opacity, vs.opacity), 0, 1);
      syncControls();
      scheduleRender();
      return view_();
    }

    function undo() {
      return step(undoStack, redoStack);
    }

    function redo() {
      return step(redoStack, undoStack);
    }

    function clear() {
      return setEverything(0);
    }

    function fillAll() {
      return setEverything(percentToByte(brushState.value));
    }

    function destroy() {
      for (const [target, type, fn, options] of listeners) target.removeEventListener(type, fn, options);
      listeners.length = 0;
      if (resizeObserver) resizeObserver.disconnect();
      if (frame) cancelAnimationFrame(frame);
      frame = 0;
    }

    Object.assign(controller, {
      setImage,
      setMap,
      exportMap,
      mapBytes: () => (map ? map.slice() : new Uint8Array(0)),
      size: () => ({ width: W, height: H }),
      setTool,
      tool: () => tool,
      setBrush,
      brush,
      setGradientEnd,
      gradientEnd: () => gradientEnd,
      setView,
      view: view_,
      undo,
      redo,
      canUndo: () => undoStack.length > 0,
      canRedo: () => redoStack.length > 0,
      clear,
      fillAll,
      setZoom,
      fit,
      panBy,
      render,
      destroy,
    });

    if (hint) hint.hidden = false;
    drawLegend();
    syncControls();
    syncTool();
    updateButtons();
    render();
    return controller;
  }

  return {
    TOOLS,
    MODES,
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
    mount,
  };
})();
