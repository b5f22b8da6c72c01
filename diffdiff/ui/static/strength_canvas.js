// Strength painter: paint a per-pixel denoising strength map over an image. This file is the controller:
// `mount` holds the image, the map and the settings, does the painting operations and gives the page its
// API, using StrengthPaint (the pure functions, re-exported here), StrengthHistory (undo and redo),
// StrengthView (zoom, pan and drawing) and StrengthInput (pointer, keyboard and toolbar).
// The map is a Uint8Array of W×H bytes (byte b = strength b/255); 0 keeps the image, 255 changes it fully.
// Plain browser JavaScript with one top-level binding, so the same text works as a classic <script>
// after the other four and, after them, as part of the body of Gradio's js_on_load (no modules, no
// template syntax, no network).
const StrengthCanvas = (() => {
  "use strict";

  const P = StrengthPaint;
  const clamp = P.clamp;
  const finite = P.finite;
  const percentToByte = P.percentToByte;
  const combine = P.combine;
  const TOOLS = StrengthInput.TOOLS;
  const MODES = P.MODES;
  const MAX_SIZE = 400;

  function mount(root, props) {
    if (!root) throw new Error("StrengthCanvas.mount: no .dd-canvas element");
    props = props || {};
    let ramp = props.ramp;
    if (!Array.isArray(ramp) || ramp.length !== 256) {
      console.warn("StrengthCanvas: props.ramp should hold 256 [r, g, b] colours; showing the map in grey");
      ramp = P.greyRamp();
    }
    const stage = root.querySelector(".dd-stage");
    const hint = root.querySelector(".dd-hint");

    // State.
    let img = null;
    let W = 0;
    let H = 0;
    let map = null; // Uint8Array W·H: the strength map
    let before = null; // Uint8Array W·H: the map as it was when the current operation began (reused)
    let cov = null; // Float32Array W·H: the current stroke's coverage (reused; only dirty areas reset)
    let stroke = null; // the stroke being painted: {lastX, lastY, value, mode, radius, hardness, rect}
    let loadToken = 0;
    const brushState = { value: 50, size: 40, hardness: 50, mode: "max" };
    let gradientEnd = 0;
    let tool = "brush";
    const history = StrengthHistory.create();
    let input = null;
    const v = StrengthView.create(root, ramp, {
      guide: () => (input ? input.guide() : null),
      brushCursor: () => (input ? input.brushCursor() : 0),
    });

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

    /** Record the change between `before` and `map` inside `r` as one undo step (tight bounding box).
     * Returns false when nothing changed. */
    function commit(r) {
      if (!history.record(map, before, W, H, r)) return false;
      input.updateButtons();
      return true;
    }

    // ------------------------------------------------------------ operations

    function beginStroke(x, y) {
      const eraser = tool === "eraser";
      before.set(map);
      stroke = {
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
      const d = stroke;
      const r = P.paintSegment(cov, W, H, d.lastX, d.lastY, x, y, d.radius, d.hardness);
      d.lastX = x;
      d.lastY = y;
      if (r.w <= 0 || r.h <= 0) return;
      P.applyStroke(map, before, cov, W, d.value, d.mode, r);
      v.updateOverlay(r);
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
      v.scheduleRender();
    }

    function endStroke() {
      const r = stroke.rect;
      stroke = null;
      if (r.w > 0 && r.h > 0) {
        const changed = commit(r);
        for (let y = r.y; y < r.y + r.h; y++) cov.fill(0, y * W + r.x, y * W + r.x + r.w);
        if (changed) fireChange();
      }
    }

    function applyGradient(d) {
      const start = percentToByte(brushState.value);
      const end = percentToByte(gradientEnd);
      const g = d.tool === "radial"
        ? P.radialGradient(W, H, d.x0, d.y0, Math.hypot(d.x1 - d.x0, d.y1 - d.y0), start, end)
        : P.linearGradient(W, H, d.x0, d.y0, d.x1, d.y1, start, end);
      before.set(map);
      const mode = brushState.mode;
      for (let i = 0; i < map.length; i++) map[i] = combine(before[i], g[i], 1, mode);
      finishOperation(fullRect());
    }

    /** After `map` changed from `before` inside `r`: record undo, refresh, tell the page. */
    function finishOperation(r) {
      if (commit(r)) {
        v.updateOverlay(r);
        v.scheduleRender();
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
      const r = P.floodFill(map, W, H, px, py, value);
      return r ? finishOperation(r) : false;
    }

    function setEverything(value) {
      if (!img) return false;
      before.set(map);
      map.fill(value);
      return finishOperation(fullRect());
    }

    function step(redoing) {
      if (!img || input.drag() || !(redoing ? history.canRedo() : history.canUndo())) return false;
      const s = redoing ? history.redo(map, W) : history.undo(map, W);
      v.updateOverlay(s);
      v.scheduleRender();
      input.updateButtons();
      fireChange();
      return true;
    }

    function loadImage(url) {
      return new Promise((resolve, reject) => {
        const im = new Image();
        im.onload = () => resolve(im);
        im.onerror = () => reject(new Error("could not load the image"));
        im.src = url;
      });
    }

    // ------------------------------------------------------------ the controller's API

    function setImage(url) {
      const token = ++loadToken;
      return loadImage(url).then((im) => {
        if (token !== loadToken) throw new Error("another image was set meanwhile");
        const w = im.naturalWidth;
        const h = im.naturalHeight;
        if (!w || !h) throw new Error("the image has no pixels");
        if (input.drag()) input.dropDrag();
        stroke = null;
        img = im;
        W = w;
        H = h;
        map = new Uint8Array(W * H);
        before = new Uint8Array(W * H);
        cov = new Float32Array(W * H);
        v.setPicture(img, W, H, map);
        history.reset();
        if (hint) hint.hidden = true;
        if (stage) stage.classList.add("dd-has-image");
        input.updateButtons();
        v.fit();
        v.render();
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
        if (input.drag()) input.finishDrag(true);
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
      const d = input.drag();
      if (d && d.kind !== "pan") input.finishDrag(false);
      tool = name;
      input.syncTool();
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
      input.syncControls();
      v.updateCursor();
      return brush();
    }

    function brush() {
      return { value: brushState.value, size: brushState.size, hardness: brushState.hardness, mode: brushState.mode };
    }

    function setGradientEnd(p) {
      gradientEnd = clamp(finite(p, gradientEnd), 0, 100);
      input.syncControls();
      return gradientEnd;
    }

    function setView(o) {
      v.set(o);
      input.syncControls();
      v.scheduleRender();
      return v.state();
    }

    const undo = () => step(false);
    const redo = () => step(true);
    const clear = () => setEverything(0);
    const fillAll = () => setEverything(percentToByte(brushState.value));

    function destroy() {
      input.destroy();
      v.destroy();
    }

    // what both the page (the controller) and the pointer/keyboard/toolbar code may call
    const commands = {
      setTool,
      tool: () => tool,
      setBrush,
      brush,
      setGradientEnd,
      gradientEnd: () => gradientEnd,
      setView,
      undo,
      redo,
      canUndo: history.canUndo,
      canRedo: history.canRedo,
      clear,
      fillAll,
    };
    input = StrengthInput.attach(root, v, Object.assign({}, commands, {
      hasImage: () => !!img,
      beginStroke,
      strokeTo,
      endStroke,
      fillAt,
      applyGradient,
      offerFile,
      wantsFiles: () => typeof controller.onImageFile === "function",
    }));

    Object.assign(controller, commands, {
      setImage,
      setMap,
      exportMap,
      mapBytes: () => (map ? map.slice() : new Uint8Array(0)),
      size: () => ({ width: W, height: H }),
      view: v.state,
      setZoom: v.setZoom,
      fit: v.fit,
      panBy: v.panBy,
      render: v.render,
      destroy,
    });

    if (hint) hint.hidden = false;
    v.drawLegend();
    input.syncControls();
    input.syncTool();
    input.updateButtons();
    v.render();
    return controller;
  }

  return {
    TOOLS,
    MODES,
    percentToByte,
    byteToPercent: P.byteToPercent,
    coverage: P.coverage,
    paintSegment: P.paintSegment,
    combine,
    applyStroke: P.applyStroke,
    floodFill: P.floodFill,
    linearGradient: P.linearGradient,
    radialGradient: P.radialGradient,
    rampColour: P.rampColour,
    mount,
  };
})();
