"""The contract every self-supervised method follows, so that one trainer runs them all.

A method is an `nn.Module` that owns its networks. Per step the trainer calls, in order:
`prepare(batch, generator)` on the *global* batch (masks and other per-sample randomness, so that every DDP
rank sees the same draw), `forward(local_batch) -> (loss, logs)`, and after the optimiser step
`after_step(progress)` (EMA updates and the like). `features(x)` gives the frozen features used by probes and
collapse diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from jepaworld.vit import VisionTransformer


@dataclass(frozen=True)
class DataSpec:
    """What a model must be built for: the data's channels, side, frames (1 for images) and pixel statistics.

    `pixel_mean` / `pixel_std` (of the training set, inputs in [0, 1]) standardise inputs inside the encoder, so
    every path that rebuilds a model from a checkpoint's spec feeds it exactly as in training. `proprio_mean` /
    `proprio_std` (one per proprioception dimension; empty when the data has none) do the same for a world
    model's proprioception.
    """

    channels: int
    img_size: int
    frames: int = 1
    action_dim: int = 0
    pixel_mean: float = 0.0
    pixel_std: float = 1.0
    proprio_mean: tuple[float, ...] = ()
    proprio_std: tuple[float, ...] = ()


class Method(nn.Module):
    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        return batch

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def after_step(self, progress: float) -> None:
        """Called after each optimiser step with progress = step / total_steps in [0, 1]."""

    @property
    def eval_encoder(self) -> VisionTransformer:
        """The encoder whose frozen features are probed."""
        raise NotImplementedError

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Mean-pooled features (B, D) of the eval encoder, used for collapse diagnostics."""
        return self.eval_encoder(x).mean(dim=1)
