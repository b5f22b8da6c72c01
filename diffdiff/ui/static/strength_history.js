// Strength history: undo and redo for the strength map, kept as the changed rectangles only (each step holds
// the bytes before and after inside its tight bounding box). At most 50 steps and 256 MB of patches for undo
// and redo together; the oldest steps go first. Knows nothing of the page: it reads and writes the map.
// Plain browser JavaScript with one top-level binding, so the same text works as a classic <script>
// and as part of the body of Gradio's js_on_load (no modules, no template syntax, no network).
const StrengthHistory = (() => {
  "use strict";

  const MAX_STEPS = 50;
  const BUDGET_BYTES = 256 * 1024 * 1024; // patches kept for undo and redo (oldest dropped first)

  /** The bytes of `src` (a W-wide map) inside rectangle `r`, row after row. */
  function copyRect(src, W, r) {
    const out = new Uint8Array(r.w * r.h);
    for (let y = 0; y < r.h; y++) {
      const s = (r.y + y) * W + r.x;
      out.set(src.subarray(s, s + r.w), y * r.w);
    }
    return out;
  }

  /** Write a patch from `copyRect` back into `dst` (a W-wide map) at rectangle `r`. */
  function pasteRect(dst, W, patch, r) {
    for (let y = 0; y < r.h; y++) dst.set(patch.subarray(y * r.w, (y + 1) * r.w), (r.y + y) * W + r.x);
  }

  /** The tight bounding box {x, y, w, h} of the pixels inside `r` where `map` and `before` differ, or null. */
  function changedRect(map, before, W, H, r) {
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
    if (maxX < 0) return null;
    return { x: minX, y: minY, w: maxX - minX + 1, h: maxY - minY + 1 };
  }

  /** An empty history. `record` after each change; `undo` and `redo` write into the map and return the
   * rectangle they changed (or null when there was no step). */
  function create(maxSteps, budgetBytes) {
    const limit = maxSteps === undefined ? MAX_STEPS : maxSteps;
    const budget = budgetBytes === undefined ? BUDGET_BYTES : budgetBytes;
    let undoStack = [];
    let redoStack = [];

    function bytes() {
      let n = 0;
      for (const s of undoStack) n += 2 * s.w * s.h;
      for (const s of redoStack) n += 2 * s.w * s.h;
      return n;
    }

    /** Record the change between `before` and `map` inside `r` as one step; drops the redo steps.
     * Returns false when nothing changed. */
    function record(map, before, W, H, r) {
      const t = changedRect(map, before, W, H, r);
      if (!t) return false;
      t.before = copyRect(before, W, t);
      t.after = copyRect(map, W, t);
      undoStack.push(t);
      redoStack = [];
      while (undoStack.length > limit || (undoStack.length > 1 && bytes() > budget)) {
        undoStack.shift();
      }
      return true;
    }

    function step(from, to, map, W) {
      if (!from.length) return null;
      const s = from.pop();
      pasteRect(map, W, from === undoStack ? s.before : s.after, s);
      to.push(s);
      return s;
    }

    return {
      record,
      undo: (map, W) => step(undoStack, redoStack, map, W),
      redo: (map, W) => step(redoStack, undoStack, map, W),
      canUndo: () => undoStack.length > 0,
      canRedo: () => redoStack.length > 0,
      reset() {
        undoStack = [];
        redoStack = [];
      },
      bytes,
    };
  }

  return { MAX_STEPS, BUDGET_BYTES, copyRect, pasteRect, changedRect, create };
})();
