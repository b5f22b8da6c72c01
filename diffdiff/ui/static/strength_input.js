// Strength input: the user's side of the painter. Pointer gestures on the view (strokes, fills, gradient
// drags, panning, wheel zoom), the keyboard shortcuts, files dropped or pasted or chosen, and the toolbar:
// its buttons and inputs call the painter, and it shows the painter's current settings.
// Plain browser JavaScript with one top-level binding, so the same text works as a classic <script>
// and as part of the body of Gradio's js_on_load (no modules, no template syntax, no network).
const StrengthInput = (() => {
  "use strict";

  const TOOLS = ["brush", "eraser", "fill", "linear", "radial", "pan"];
  const clamp = StrengthPaint.clamp;
  const finite = StrengthPaint.finite;

  function isEditable(el) {
    if (!el || el.nodeType !== 1) return false;
    if (el.isContentEditable) return true;
    const tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag !== "INPUT") return false;
    const type = (el.type || "text").toLowerCase();
    return ["range", "button", "checkbox", "radio", "color", "file", "submit", "reset", "image"].indexOf(type) < 0;
  }

  function imageFileOf(list) {
    if (!list) return null;
    for (let i = 0; i < list.length; i++) {
      const f = list[i];
      if (f && f.type && f.type.indexOf("image/") === 0) return f;
    }
    return null;
  }

  /** Listen on the `.dd-canvas` element `root` shown by view `v` (a StrengthView), acting through `app`:
   * the painter's setters and getters (setTool, tool, setBrush, brush, setGradientEnd, gradientEnd, setView,
   * undo, redo, canUndo, canRedo, clear, fillAll), its gestures (hasImage, beginStroke, strokeTo,
   * endStroke, fillAt, applyGradient) and offerFile (true when someone took the file). */
  function attach(root, v, app) {
    const byId = (id) => root.querySelector("#" + id);
    const stage = root.querySelector(".dd-stage");
    const view = v.canvas;
    const hover = v.hover;
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
    let drag = null; // {kind: "stroke" | "pan" | "gradient", id, ...}
    let spaceDown = false;

    // ------------------------------------------------------------ the toolbar shows the settings

    function syncControls() {
      const b = app.brush();
      const gradientEnd = app.gradientEnd();
      const vs = v.state();
      if (inputs.value) inputs.value.value = String(Math.round(b.value));
      if (inputs.size) inputs.size.value = String(b.size);
      if (inputs.hardness) inputs.hardness.value = String(Math.round(b.hardness));
      if (inputs.mode) inputs.mode.value = b.mode;
      if (inputs.gradientEnd) inputs.gradientEnd.value = String(Math.round(gradientEnd));
      if (inputs.show) inputs.show.value = vs.show;
      if (inputs.opacity) {
        inputs.opacity.value = String(Math.round(vs.opacity * 100));
        inputs.opacity.disabled = vs.show !== "overlay";
      }
      if (outputs.value) outputs.value.textContent = Math.round(b.value) + " %";
      if (outputs.size) outputs.size.textContent = b.size + " px";
      if (outputs.hardness) outputs.hardness.textContent = Math.round(b.hardness) + " %";
      if (outputs.gradientEnd) outputs.gradientEnd.textContent = Math.round(gradientEnd) + " %";
      if (outputs.opacity) outputs.opacity.textContent = Math.round(vs.opacity * 100) + " %";
    }

    function updateButtons() {
      if (buttons.undo) buttons.undo.disabled = !app.canUndo();
      if (buttons.redo) buttons.redo.disabled = !app.canRedo();
      for (const b of [buttons.clear, buttons.fillAll, buttons.zoomIn, buttons.zoomOut, buttons.zoomFit]) {
        if (b) b.disabled = !app.hasImage();
      }
    }

    function syncTool() {
      const tool = app.tool();
      for (const name of TOOLS) {
        const b = byId("dd-tool-" + name);
        if (b) {
          b.classList.toggle("active", name === tool);
          b.setAttribute("aria-pressed", name === tool ? "true" : "false");
        }
      }
      if (stage) stage.setAttribute("data-tool", tool);
      v.updateCursor();
    }

    // ------------------------------------------------------------ drags

    /** The brush's diameter in image pixels while its cursor should show, else 0. */
    function brushCursor() {
      const tool = app.tool();
      const visible = hover.on && app.hasImage() && (tool === "brush" || tool === "eraser") && !spaceDown &&
        !(drag && drag.kind === "pan");
      return visible ? app.brush().size : 0;
    }

    function finishDrag(cancelled) {
      const d = drag;
      if (!d) return;
      drag = null;
      if (stage) stage.classList.remove("dd-panning");
      if (d.kind === "stroke") {
        app.endStroke();
      } else if (d.kind === "gradient") {
        const length = Math.hypot(d.x1 - d.x0, d.y1 - d.y0);
        if (!cancelled && length * v.zoom() >= 2) app.applyGradient(d);
      }
      v.updateCursor();
      v.scheduleRender();
    }

    // ------------------------------------------------------------ events

    const listeners = [];

    function on(target, type, fn, options) {
      if (!target) return;
      target.addEventListener(type, fn, options);
      listeners.push([target, type, fn, options]);
    }

    on(view, "pointerdown", (e) => {
      if (!app.hasImage() || drag) return;
      const tool = app.tool();
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
      v.pointerAt(e);
      hover.on = true;
      if (panning) {
        const o = v.offset();
        drag = { kind: "pan", id: e.pointerId, sx: hover.x, sy: hover.y, ox: o.x, oy: o.y };
        if (stage) stage.classList.add("dd-panning");
        v.updateCursor();
        return;
      }
      const x = v.imageX(hover.x);
      const y = v.imageY(hover.y);
      if (tool === "brush" || tool === "eraser") {
        drag = { kind: "stroke", id: e.pointerId };
        app.beginStroke(x, y);
      } else if (tool === "fill") {
        app.fillAt(x, y);
      } else if (tool === "linear" || tool === "radial") {
        drag = { kind: "gradient", tool, id: e.pointerId, x0: x, y0: y, x1: x, y1: y };
        v.scheduleRender();
      }
    });

    on(view, "pointermove", (e) => {
      v.pointerAt(e);
      hover.on = true;
      v.updateCursor();
      if (!drag || e.pointerId !== drag.id) {
        v.updateStatus();
        return;
      }
      if (drag.kind === "pan") {
        v.moveTo(drag.ox + hover.x - drag.sx, drag.oy + hover.y - drag.sy);
      } else if (drag.kind === "stroke") {
        const events = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : null;
        if (events && events.length > 1) {
          const r = view.getBoundingClientRect();
          for (const ce of events) app.strokeTo(v.imageX(ce.clientX - r.left), v.imageY(ce.clientY - r.top));
        } else {
          app.strokeTo(v.imageX(hover.x), v.imageY(hover.y));
        }
      } else if (drag.kind === "gradient") {
        drag.x1 = v.imageX(hover.x);
        drag.y1 = v.imageY(hover.y);
        v.scheduleRender();
      }
    });

    const endPointer = (cancelled) => (e) => {
      if (!drag || e.pointerId !== drag.id) return;
      if (drag.kind === "gradient" && !cancelled) {
        v.pointerAt(e);
        drag.x1 = v.imageX(hover.x);
        drag.y1 = v.imageY(hover.y);
      }
      finishDrag(cancelled);
    };
    on(view, "pointerup", endPointer(false));
    on(view, "pointercancel", endPointer(true));
    on(view, "lostpointercapture", endPointer(false));
    on(window, "pointerup", endPointer(false)); // in case the capture could not be set

    on(view, "pointerleave", () => {
      if (drag) return;
      hover.on = false;
      v.updateCursor();
      v.updateStatus();
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
      if (!app.hasImage()) return;
      e.preventDefault();
      v.pointerAt(e);
      const unit = e.deltaMode === 1 ? 0.05 : e.deltaMode === 2 ? 1 : 0.0015;
      const factor = Math.exp(-clamp(e.deltaY * unit, -1, 1));
      v.setZoom(v.zoom() * factor, hover.x, hover.y);
    }, { passive: false });

    if (stage) {
      on(stage, "pointerenter", () => {
        hover.on = true;
      });
      on(stage, "pointerleave", () => {
        if (drag) return;
        hover.on = false;
        v.updateCursor();
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
        app.offerFile(imageFileOf(dt.files));
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
      if (!file || !app.wantsFiles()) return;
      e.preventDefault();
      app.offerFile(file);
    });

    on(document, "keydown", (e) => {
      if (!root.isConnected) return;
      const active = document.activeElement;
      if (!hover.on && !(active && root.contains(active))) return;
      if (isEditable(e.target) || isEditable(active)) return;
      const key = e.key || "";
      const lower = key.toLowerCase();
      const mod = e.ctrlKey || e.metaKey;
      if (mod && !e.altKey) {
        if (lower === "z") {
          if (e.shiftKey) app.redo();
          else app.undo();
          e.preventDefault();
        } else if (lower === "y") {
          app.redo();
          e.preventDefault();
        }
        return;
      }
      if (mod || e.altKey) return;
      if (key === " ") {
        if (!spaceDown) {
          spaceDown = true;
          if (stage) stage.classList.add("dd-space");
          v.updateCursor();
        }
        e.preventDefault();
      } else if (lower === "b") {
        app.setTool("brush");
      } else if (lower === "e") {
        app.setTool("eraser");
      } else if (lower === "g") {
        app.setTool("fill");
      } else if (key === "[" || key === "]") {
        const s = app.brush().size;
        const delta = Math.max(1, Math.round(s * 0.1));
        app.setBrush({ size: key === "[" ? s - delta : s + delta });
        e.preventDefault();
      }
    });

    const releaseSpace = () => {
      if (!spaceDown) return;
      spaceDown = false;
      if (stage) stage.classList.remove("dd-space");
      v.updateCursor();
    };
    on(document, "keyup", (e) => {
      if (e.key !== " " || !spaceDown) return;
      e.preventDefault(); // the Space that pans never presses a focused button
      releaseSpace();
    });
    on(window, "blur", releaseSpace);

    for (const name of TOOLS) on(byId("dd-tool-" + name), "click", () => app.setTool(name));
    on(buttons.undo, "click", () => app.undo());
    on(buttons.redo, "click", () => app.redo());
    on(buttons.clear, "click", () => app.clear());
    on(buttons.fillAll, "click", () => app.fillAll());
    on(buttons.zoomIn, "click", () => v.zoomIn());
    on(buttons.zoomOut, "click", () => v.zoomOut());
    on(buttons.zoomFit, "click", () => v.fit());
    on(inputs.value, "input", () => app.setBrush({ value: inputs.value.value }));
    on(inputs.size, "input", () => app.setBrush({ size: inputs.size.value }));
    on(inputs.hardness, "input", () => app.setBrush({ hardness: inputs.hardness.value }));
    on(inputs.mode, "change", () => app.setBrush({ mode: inputs.mode.value }));
    on(inputs.gradientEnd, "input", () => app.setGradientEnd(inputs.gradientEnd.value));
    on(inputs.show, "change", () => app.setView({ show: inputs.show.value }));
    on(inputs.opacity, "input", () => app.setView({ opacity: finite(inputs.opacity.value, 50) / 100 }));
    on(byId("dd-choose"), "click", () => {
      if (fileInput) fileInput.click();
    });
    on(fileInput, "change", () => {
      const file = imageFileOf(fileInput.files);
      fileInput.value = "";
      app.offerFile(file);
    });

    function destroy() {
      for (const [target, type, fn, options] of listeners) target.removeEventListener(type, fn, options);
      listeners.length = 0;
    }

    return {
      drag: () => drag,
      dropDrag() {
        drag = null;
      },
      finishDrag,
      guide: () => (drag && drag.kind === "gradient" ? drag : null),
      brushCursor,
      syncControls,
      updateButtons,
      syncTool,
      destroy,
    };
  }

  return { TOOLS, isEditable, attach };
})();
