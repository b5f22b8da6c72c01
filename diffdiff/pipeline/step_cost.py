"""What each sampler step will cost, known before the run: the tiles (or the whole image) that have an
active pixel at that step's noise level, by the gate's own rule. The progress bar advances by it, so its
ETA stays right when a low-strength map makes the early steps free and the late ones expensive."""

from __future__ import annotations

import torch

from ..sampling import DifferentialGate, run_sigmas

IDLE_STEP_COST = 0.02  # a step with no network work still takes a little time, in units of one tile


def step_costs(model_sampling, sampling, gate, strength: torch.Tensor, tiles) -> list[float]:
    """Per sampler step: the tiles it evaluates (`tiles` None: 1 for the whole image), or a small cost when
    none."""
    s = sampling
    sigmas = run_sigmas(model_sampling, s.scheduler, s.steps, s.denoise, s.sampler)
    plane = strength.reshape(1, 1, *strength.shape[-2:]).cpu()
    probe = DifferentialGate(None, plane, plane, plane, sigmas.cpu(), model_sampling, mode=gate.mode,
                             gate_strength=gate.strength, levels=gate.levels)
    costs = []
    for sigma in sigmas[:-1]:
        active = probe.active_mask(sigma)[0, 0] != 0
        if tiles is None:
            busy = float(bool(active.any()))
        else:
            busy = float(sum(bool(active[tile.rows, tile.cols].any()) for tile in tiles))
        costs.append(max(busy, IDLE_STEP_COST))
    return costs


def weighted(callback, costs: list[float]):
    """`callback` with each step's info extended by `step_cost` and `total_cost`."""
    total = sum(costs)

    def report(info: dict) -> None:
        step = min(int(info.get("i", 0)), len(costs) - 1)
        callback({**info, "step_cost": costs[step], "total_cost": total})

    return report
