"""Skip-layer guidance for SD3 / SD3.5 (ComfyUI's SkipLayerGuidanceDiT, StabilityAI's SD3.5 recipe).

Over an early window of the run the guided x0 is pushed away from what the network predicts for the
prompt with some of its blocks skipped: x0 ← x0 + scale · (x0_cond − x0_cond,skip), for
σ_end < σ ≤ σ_start, where σ_start / σ_end are the model's σ at 1 % and 15 % of the way through its
schedule (`percent_to_sigma`). Skipping a block passes its input through unchanged (diffusers'
`skip_layers`). Outside the window, or at scale 0, x0 is left as it is and no extra call runs.
"""

from __future__ import annotations

START_PERCENT = 0.01
END_PERCENT = 0.15


class SkipLayerGuidance:
    """The post-CFG step `(guided, x0_cond, sigma, run_cond) -> x0`; `run_cond(**network_kwargs)` runs the
    conditional branch again with extra network keywords (here `skip_layers`)."""

    def __init__(self, scale: float, layers, model_sampling):
        self.scale = float(scale)
        self.layers = tuple(int(layer) for layer in layers)
        self.sigma_start = float(model_sampling.percent_to_sigma(START_PERCENT))
        self.sigma_end = float(model_sampling.percent_to_sigma(END_PERCENT))

    def active(self, sigma) -> bool:
        value = float(sigma.reshape(-1)[0])
        return self.scale > 0 and self.sigma_end < value <= self.sigma_start

    def __call__(self, guided, x0_cond, sigma, run_cond):
        if not self.active(sigma):
            return guided
        skipped = run_cond(skip_layers=self.layers)
        return guided + (x0_cond - skipped) * self.scale
