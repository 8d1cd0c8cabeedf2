"""Masks of the video methods: V-JEPA (Bardes et al. 2024) and the VideoMAE pixel baseline (Tong et al. 2022).

Both methods are the image classes (`JEPA`, `MAE`) on a tubelet encoder; only the mask differs, so it is all
this module builds. V-JEPA draws its short-range (8 blocks of 0.15) or long-range (2 blocks of 0.7) multi-block
tube mask per batch; VideoMAE hides 90% of the spatial positions as tubes through time.

`future_weight` > 0 gives that share of batches a causal `FutureFrames` mask instead (context = the first k
time slots, k uniform in 1..t-1). That is the task surprise scoring asks of the predictor (`jepaworld.surprise`);
V-JEPA itself never trains on it, so the default is 0 and only the physics presets turn it on.
"""

from __future__ import annotations

from jepaworld.config import ConfigError, MaskConfig
from jepaworld.masks import FutureFrames, Mixture, MultiBlock3D, Tube


def _with_future(masks: list, mk: MaskConfig, grid: tuple[int, int, int]) -> Mixture:
    t, h, w = grid
    if not 0.0 <= mk.future_weight <= 1.0:
        raise ConfigError(f"mask.future_weight={mk.future_weight} must lie in [0, 1]")
    future = [FutureFrames(frames=t, height=h, width=w, context_frames=k) for k in range(1, t)]
    if mk.future_weight == 0 or not future:
        return Mixture(masks=tuple(masks))
    weights = [(1 - mk.future_weight) / len(masks)] * len(masks) + [mk.future_weight / len(future)] * len(future)
    return Mixture(masks=(*masks, *future), weights=tuple(weights))


def vjepa_mask(mk: MaskConfig, grid: tuple[int, int, int]) -> Mixture:
    """V-JEPA's short- or long-range multi-block tube mask per batch, plus optional causal masks."""
    t, h, w = grid
    if t < 2:
        raise ConfigError("vjepa needs a video encoder (data with frames > 1 and at least two tubelet slots)")
    short = MultiBlock3D.short_range(t, h, w)
    long = MultiBlock3D.long_range(t, h, w)
    return _with_future([short, long], mk, grid)


def videomae_mask(mk: MaskConfig, grid: tuple[int, int, int]) -> Mixture:
    """VideoMAE tube masking with ratio `mask.ratio`, plus optional causal masks."""
    t, h, w = grid
    if t < 2:
        raise ConfigError("videomae needs a video encoder (data with frames > 1 and at least two tubelet slots)")
    return _with_future([Tube(frames=t, height=h, width=w, ratio=mk.ratio)], mk, grid)
