// Strength view: what the painter shows. The view transform (zoom, pan, fit, view ↔ image coordinates) and
// the rendering: the map in ramp colours on an offscreen canvas updated in dirty rectangles, drawn as the
// map, the image, or the image under the map at some opacity; the gradient guide, the status line, the
// legend and the brush cursor. Reads the map; never changes it.
// Plain browser JavaScript with one top-level binding, so the same text works as a classic <script>
// and as part of the body of Gradio's js_on_load (no modules, no template syntax, no network).
const StrengthView = (() => {
  "use strict";

  const P = StrengthPaint;
  const clamp = P.clamp;
  const finite = P.finite;
  const SHOWS = ["overlay", "image", "map"];
  const MIN_ZOOM = 0.01;
  const MAX_ZOOM = 64;
  const ZOOM_STEP = 1.25;

  /** The view of the `.dd-canvas` element `root`, colouring the map with `ramp` (256 [r, g, b]).
   * `hooks.guide()` is the gradient being dragged ({tool, x0, y0, x1, y1} in image pixels) or null;
   * `hooks.brushCursor()` the brush's diameter in image pixels while its cursor should show, else 0. */
  function create(root, ramp, hooks) {
    const rampFlat = P.flatRamp(ramp);
    const byId = (id) => root.querySelector("#" + id);
    const view = byId("dd-view");
    const ctx = view.getContext("2d");
    const cursorEl = root.querySelector(".dd-brush-cursor");
    const statusEl = byId("dd-status");

    let img = null;
    let W = 0;
    let H = 0;
    let map = null;
    const overlay = document.createElement("canvas"); // W×H: the map in ramp colours, opaque
    const overlayCtx = overlay.getContext("2d");
    let overlayData = null;
    const vs = { show: "overlay", opacity: 0.5, zoom: 1, offsetX: 0, offsetY: 0 };
    const hover = { x: 0, y: 0, on: false }; // the pointer in view pixels, and whether it is over the view
    let needsFit = false;
    let frame = 0;

    /** Show `image` (W×H) with its `map` (Uint8Array W·H, read on each update and render). */
    function setPicture(image, w, h, strengthMap) {
      img = image;
      W = w;
      H = h;
      map = strengthMap;
      overlay.width = W;
      overlay.height = H;
      overlayData = overlayCtx.createImageData(W, H);
      updateOverlay({ x: 0, y: 0, w: W, h: H });
    }

    /** Recolour the offscreen overlay inside rectangle `r` from the map. */
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

    /** Where a pointer event is, in view pixels: becomes the hover position. */
    function pointerAt(e) {
      const r = view.getBoundingClientRect();
      hover.x = e.clientX - r.left;
      hover.y = e.clientY - r.top;
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
        const guide = hooks.guide();
        if (guide) drawGuide(guide);
      }
      updateStatus();
    }

    function drawGuide(g) {
      const z = vs.zoom;
      const ax = vs.offsetX + g.x0 * z;
      const ay = vs.offsetY + g.y0 * z;
      const bx = vs.offsetX + g.x1 * z;
      const by = vs.offsetY + g.y1 * z;
      ctx.save();
      ctx.lineCap = "round";
      for (const pass of [["rgba(0, 0, 0, 0.7)", 3], ["rgba(255, 255, 255, 0.95)", 1.25]]) {
        ctx.strokeStyle = pass[0];
        ctx.lineWidth = pass[1];
        ctx.beginPath();
        ctx.moveTo(ax, ay);
        ctx.lineTo(bx, by);
        if (g.tool === "radial") {
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
      if (hover.on) {
        const x = Math.floor(imageX(hover.x));
        const y = Math.floor(imageY(hover.y));
        if (x >= 0 && y >= 0 && x < W && y < H) s += " · strength here " + P.byteToPercent(map[y * W + x]) + " %";
      }
      statusEl.textContent = s;
    }

    function updateCursor() {
      if (!cursorEl) return;
      const size = hooks.brushCursor();
      if (!size) {
        cursorEl.style.display = "none";
        return;
      }
      const d = Math.max(2, size * vs.zoom);
      // The stage's border: the canvas sits at the stage's padding box origin.
      const left = view.offsetLeft + hover.x - d / 2;
      const top = view.offsetTop + hover.y - d / 2;
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

    // ------------------------------------------------------------ the transform

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
      return state();
    }

    function fit() {
      if (!img) return state();
      const cw = viewWidth();
      const ch = viewHeight();
      if (!cw || !ch) {
        needsFit = true; // not laid out yet (a hidden tab): fit once it has a size
        return state();
      }
      needsFit = false;
      const z = clamp(Math.min(cw / W, ch / H), MIN_ZOOM, MAX_ZOOM);
      vs.zoom = z;
      vs.offsetX = Math.round((cw - W * z) / 2);
      vs.offsetY = Math.round((ch - H * z) / 2);
      updateCursor();
      scheduleRender();
      return state();
    }

    function panBy(dx, dy) {
      vs.offsetX = Math.round(vs.offsetX + finite(dx, 0));
      vs.offsetY = Math.round(vs.offsetY + finite(dy, 0));
      needsFit = false;
      scheduleRender();
      return state();
    }

    /** Put the image's origin at view pixel (x, y) (rounded): a pan drag, which keeps a pending fit. */
    function moveTo(x, y) {
      vs.offsetX = Math.round(x);
      vs.offsetY = Math.round(y);
      scheduleRender();
    }

    /** Choose what shows ({show, opacity}, either optional); the caller renders. */
    function set(o) {
      o = o || {};
      if (o.show !== undefined) {
        if (SHOWS.indexOf(o.show) < 0) throw new Error("unknown view " + o.show + " (" + SHOWS.join(", ") + ")");
        vs.show = o.show;
      }
      if (o.opacity !== undefined) vs.opacity = clamp(finite(o.opacity, vs.opacity), 0, 1);
    }

    function state() {
      return { show: vs.show, opacity: vs.opacity, zoom: vs.zoom, offsetX: vs.offsetX, offsetY: vs.offsetY };
    }

    let resizeObserver = null;
    if (typeof ResizeObserver === "function") {
      resizeObserver = new ResizeObserver(() => {
        if (needsFit) fit();
        else scheduleRender();
      });
      resizeObserver.observe(view);
    }

    function destroy() {
      if (resizeObserver) resizeObserver.disconnect();
      if (frame) cancelAnimationFrame(frame);
      frame = 0;
    }

    return {
      canvas: view,
      hover,
      setPicture,
      updateOverlay,
      imageX,
      imageY,
      pointerAt,
      render,
      scheduleRender,
      updateStatus,
      updateCursor,
      drawLegend,
      setZoom,
      zoomIn: () => setZoom(vs.zoom * ZOOM_STEP),
      zoomOut: () => setZoom(vs.zoom / ZOOM_STEP),
      zoom: () => vs.zoom,
      offset: () => ({ x: vs.offsetX, y: vs.offsetY }),
      fit,
      panBy,
      moveTo,
      set,
      state,
      destroy,
    };
  }

  return { SHOWS, MIN_ZOOM, MAX_ZOOM, ZOOM_STEP, create };
})();
