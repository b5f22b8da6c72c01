"""A browser session's results: the variations of the last run (one selected; keep or discard each), the
files kept, and the history of this session's runs with their settings. Plain dicts, so Gradio can hold
them as session state; every function returns the new state and leaves the old one alone."""

from __future__ import annotations

import copy

HISTORY_COLUMNS = ("run", "prompt", "model", "sampler", "steps", "cfg", "seed", "variations", "seconds")


def new_state() -> dict:
    return {"variations": [], "selected": None, "input": None, "kept": [], "history": []}


def add_outcome(state: dict, outcome) -> dict:
    """The state after a run: its variations replace the last run's (the first selected), and the run
    joins the history."""
    state = copy.deepcopy(state)
    seed = int(outcome.settings.get("seed", 0))
    state["variations"] = [{"path": path, "seed": seed + k} for k, path in enumerate(outcome.paths)]
    state["selected"] = 0 if outcome.paths else None
    state["input"] = outcome.input_path
    entry = {"settings": dict(outcome.settings), "model": outcome.model, "variations": len(outcome.paths),
             "seconds": round(outcome.seconds, 1), "paths": list(outcome.paths)}
    state["history"].append(entry)
    return state


def selected(state: dict) -> dict | None:
    """The selected variation ({path, seed}) or None."""
    index = state.get("selected")
    variations = state.get("variations", [])
    return variations[index] if index is not None and 0 <= index < len(variations) else None


def select(state: dict, index: int) -> dict:
    state = copy.deepcopy(state)
    state["selected"] = int(index) if 0 <= int(index) < len(state["variations"]) else state["selected"]
    return state


def keep(state: dict) -> dict:
    """The selected variation joins the kept files (once)."""
    state = copy.deepcopy(state)
    chosen = selected(state)
    if chosen is not None and chosen["path"] not in state["kept"]:
        state["kept"].append(chosen["path"])
    return state


def discard(state: dict) -> dict:
    """The selected variation leaves the grid (and the kept files); the next one is selected."""
    state = copy.deepcopy(state)
    chosen = selected(state)
    if chosen is None:
        return state
    state["variations"].remove(chosen)
    if chosen["path"] in state["kept"]:
        state["kept"].remove(chosen["path"])
    count = len(state["variations"])
    state["selected"] = min(state["selected"], count - 1) if count else None
    return state


def gallery(state: dict) -> list[tuple[str, str]]:
    """The grid's items: (path, caption)."""
    return [(v["path"], f"seed {v['seed']}") for v in state["variations"]]


def history_rows(state: dict) -> list[list]:
    """One row per run, newest first, in HISTORY_COLUMNS order."""
    rows = []
    for number, entry in enumerate(state["history"], start=1):
        settings = entry["settings"]
        rows.append([number, settings.get("prompt", ""), entry["model"], settings.get("sampler"),
                     settings.get("steps"), settings.get("cfg"), settings.get("seed"), entry["variations"],
                     entry["seconds"]])
    return rows[::-1]


def history_entry(state: dict, row: int) -> dict | None:
    """The history entry shown on table row `row` (newest first)."""
    history = state["history"]
    return history[len(history) - 1 - row] if 0 <= row < len(history) else None
