"""Seeded noise sources for the stochastic samplers (ComfyUI / k-diffusion conventions).

(The run's starting noise is drawn elsewhere, by `diffdiff.sampling.noise.prepare_noise`.)
A noise sampler is a callable `noise_sampler(sigma, sigma_next) -> tensor shaped like x`.

- `default_noise_sampler(x, seed)`: independent standard normal draws from a `torch.Generator`
  on x's device. Like ComfyUI, a CPU generator is seeded with `seed + 1` (so the ancestral noise is not
  the very stream `prepare_noise` used for the starting noise).
- `BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed)`: increments of one Brownian motion, looked
  up in a torchsde `BrownianTree`, normalised to unit variance. Used by the SDE samplers.
- `independent_noise_source` / `brownian_noise_source`: the sampler's own `noise_sampler` when one is
  given, else one of the two above seeded from `extra_args["seed"]`.

A seed may be an int or a list of ints, one per batch item; with a list, each item gets its own
generator or tree, so batch item k equals a run of that item alone with seed k.
Follows k-diffusion (MIT, Katherine Crowson) and ComfyUI's semantics, written anew.
"""

from __future__ import annotations

import warnings

import torch
import torchsde

from .common import seed_of


def _seed_list(x: torch.Tensor, seed) -> list[int] | None:
    """The per-item seeds when `seed` is a list or tuple, else None; checks the length."""
    if isinstance(seed, (list, tuple)):
        if len(seed) != x.shape[0]:
            raise ValueError(
                f"a list of seeds needs one seed per batch item: got {len(seed)} seeds for a batch of "
                f"{x.shape[0]}"
            )
        return [int(s) for s in seed]
    return None


def _generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on `device`; on the CPU seeded with seed + 1 as ComfyUI does."""
    if device == torch.device("cpu"):
        seed = seed + 1
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


def default_noise_sampler(x: torch.Tensor, seed=None):
    """Fresh N(0, 1) noise shaped like x at every call, drawn from seeded generator(s).

    With `seed=None` the global torch RNG is used (not reproducible).
    """
    seeds = _seed_list(x, seed)

    def draw(shape, generator):
        return torch.randn(shape, dtype=x.dtype, layout=x.layout, device=x.device, generator=generator)

    if seeds is not None:
        generators = [_generator(x.device, s) for s in seeds]
        item_shape = (1, *x.shape[1:])
        return lambda sigma, sigma_next: torch.cat([draw(item_shape, g) for g in generators], dim=0)

    generator = None if seed is None else _generator(x.device, int(seed))
    return lambda sigma, sigma_next: draw(x.shape, generator)


class BatchedBrownianTree:
    """torchsde Brownian tree(s) over [t0, t1]: one for the batch, or one per item with a list of seeds.

    Calling it with (ta, tb) returns W(tb) - W(ta) shaped like x (sign follows the order of ta, tb).
    """

    def __init__(self, x: torch.Tensor, t0, t1, seed=None, cpu: bool = True, w0=None):
        self.on_cpu = cpu
        t0, t1 = torch.as_tensor(t0), torch.as_tensor(t1)
        t0, t1, self.sign = self._ordered(t0, t1)
        w0 = torch.zeros_like(x) if w0 is None else w0
        seeds = _seed_list(x, seed)
        self.batched = seeds is not None
        if seeds is None:
            seeds = [int(torch.randint(0, 2**63 - 1, ()).item()) if seed is None else int(seed)]
        else:
            w0 = w0[0]
        if self.on_cpu:
            t0, t1, w0 = t0.detach().cpu(), t1.detach().cpu(), w0.detach().cpu()
        self.trees = [torchsde.BrownianTree(t0, w0, t1, entropy=s) for s in seeds]

    @staticmethod
    def _ordered(a, b):
        return (a, b, 1) if a < b else (b, a, -1)

    def __call__(self, ta, tb) -> torch.Tensor:
        ta, tb = torch.as_tensor(ta), torch.as_tensor(tb)
        ta, tb, sign = self._ordered(ta, tb)
        device, dtype = ta.device, ta.dtype
        if self.on_cpu:
            ta, tb = ta.detach().cpu().float(), tb.detach().cpu().float()
        with warnings.catch_warnings():
            # torchsde rounds the tree's ends and clamps queries a hair outside them (and says so).
            warnings.filterwarnings("ignore", message="Should have t", category=UserWarning)
            increments = torch.stack([tree(ta, tb) for tree in self.trees])
        increments = increments.to(device=device, dtype=dtype) * (self.sign * sign)
        return increments if self.batched else increments[0]


class BrownianTreeNoiseSampler:
    """Unit-variance Brownian increments between two noise levels, from a seeded Brownian tree.

    `transform` maps sigma to the tree's time variable (identity by default). The tree covers
    [transform(sigma_min), transform(sigma_max)]. A call (sigma, sigma_next) returns
    (W(t_next) - W(t)) / sqrt(|t_next - t|), so successive calls over adjacent intervals are
    independent N(0, 1) draws, yet a finer or coarser schedule sees the same underlying path.
    """

    def __init__(self, x: torch.Tensor, sigma_min, sigma_max, seed=None, transform=lambda s: s,
                 cpu: bool = True):
        self.transform = transform
        t0 = self.transform(torch.as_tensor(sigma_min))
        t1 = self.transform(torch.as_tensor(sigma_max))
        self.tree = BatchedBrownianTree(x, t0, t1, seed, cpu=cpu)

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        t0 = self.transform(torch.as_tensor(sigma))
        t1 = self.transform(torch.as_tensor(sigma_next))
        return self.tree(t0, t1) / (t1 - t0).abs().sqrt()


def independent_noise_source(x: torch.Tensor, extra_args: dict, noise_sampler=None):
    """`noise_sampler` if given, else `default_noise_sampler` seeded from extra_args["seed"]."""
    if noise_sampler is not None:
        return noise_sampler
    return default_noise_sampler(x, seed=seed_of(extra_args))


def brownian_noise_source(x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict, noise_sampler=None,
                          cpu: bool = True):
    """`noise_sampler` if given, else a Brownian tree over the run's positive sigmas, seeded from
    extra_args["seed"]."""
    if noise_sampler is not None:
        return noise_sampler
    sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
    return BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seed_of(extra_args), cpu=cpu)
