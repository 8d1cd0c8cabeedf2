"""Masking strategies: which patch tokens the context encoder sees and which ones are targets.

- `MultiBlock2D`: I-JEPA (Assran et al. 2023): several target blocks and one large context block with the
  targets removed.
- `MultiBlock3D`: V-JEPA (Bardes et al. 2024): spatial blocks extended through time as tubes; the union of the
  blocks is the target, the rest is the context. Short-range (8 x 0.15) and long-range (2 x 0.7) presets.
- `FutureFrames`: a causal mask; the first frames are context, the later ones are targets.
- `Random`: MAE (He et al. 2022): a uniformly random subset of patches is masked.

Every mask is called as `mask(batch_size, generator) -> (context (B, Nc), targets (B, M, Nt))`, with long index
tensors into the flat raster token order of `vit.py`. Lengths are equal across the batch so tensors stack; where
samples differ, each one keeps a *uniformly random* subset of the common length (then sorted), so that the
collation does not favour low token indices as truncating the tail would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

Masks = tuple[torch.Tensor, torch.Tensor]


def _uniforms(g: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=g).double()  # float32 draws, float64 arithmetic


def _block_sizes(
    g: torch.Generator, shape: tuple[int, ...], h: int, w: int, scale: tuple[float, float], aspect: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block sizes (bh, bw), each long of `shape`: area a `scale` fraction of h*w, aspect ratio bh/bw in `aspect`."""
    area = _uniforms(g, shape, *scale) * h * w
    # Log-uniform aspect so that 0.75 and 1.5 are equally likely deviations from square.
    ar = _uniforms(g, shape, math.log(aspect[0]), math.log(aspect[1])).exp()
    return (area * ar).sqrt().round().clamp(1, h).long(), (area / ar).sqrt().round().clamp(1, w).long()


def _box_maps(rows: torch.Tensor, cols: torch.Tensor, top, left, bh, bw) -> torch.Tensor:
    """Bool maps over (rows, cols) that are True inside the blocks [top, top + bh) x [left, left + bw)."""
    return (rows >= top) & (rows < top + bh) & (cols >= left) & (cols < left + bw)


@dataclass(frozen=True)
class MultiBlock2D:
    """I-JEPA multi-block mask on an (h, w) patch grid.

    One target size (bh, bw) is drawn per batch, as in I-JEPA, so every sample has `num_targets` blocks of
    exactly bh*bw tokens; each sample places its own blocks. The context block (scale 0.85-1.0, aspect 1) then
    loses every target token; a sample whose context would keep fewer than `min_keep` tokens is redrawn.
    """

    height: int
    width: int
    num_targets: int = 4
    target_scale: tuple[float, float] = (0.15, 0.2)
    target_aspect: tuple[float, float] = (0.75, 1.5)
    context_scale: tuple[float, float] = (0.85, 1.0)
    min_keep: int = 4
    max_tries: int = 50

    def __call__(self, batch_size: int, generator: torch.Generator) -> Masks:
        # Vectorised over the batch: a Python loop per sample cost 110 ms at batch 512 (the whole step on a GPU).
        g, h, w, B, M = generator, self.height, self.width, batch_size, self.num_targets
        bh, bw = (int(x) for x in _block_sizes(g, (), h, w, self.target_scale, self.target_aspect))
        ch, cw = (int(x) for x in _block_sizes(g, (), h, w, self.context_scale, (1.0, 1.0)))
        rows, cols = torch.arange(h).view(h, 1), torch.arange(w).view(1, w)
        blocks = torch.zeros(B, M, h, w, dtype=torch.bool)
        ctx = torch.zeros(B, h, w, dtype=torch.bool)
        todo = torch.arange(B)  # samples still without a valid draw
        for _ in range(self.max_tries):
            n = len(todo)
            b = _boxes(g, (n, M), h, w, bh, bw, rows, cols)  # (n, M, h, w)
            c = _boxes(g, (n,), h, w, ch, cw, rows, cols) & ~b.any(1)  # (n, h, w)
            blocks[todo], ctx[todo] = b, c
            todo = todo[c.flatten(1).sum(1) < self.min_keep]  # redraw only the samples that kept too few
            if len(todo) == 0:
                break
        else:
            raise RuntimeError(
                f"MultiBlock2D: no context with >= {self.min_keep} tokens after {self.max_tries} tries; "
                "lower mask.min_keep or the target scale"
            )
        # Row-major nonzero lists each block's tokens in ascending order: (B, M, bh*bw).
        targets = blocks.flatten(2).nonzero()[:, 2].view(B, M, bh * bw)
        return _random_subsets(ctx.flatten(1), g), targets


def _boxes(
    g: torch.Generator, lead: tuple[int, ...], h: int, w: int, bh: int, bw: int, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """(*lead, h, w) bool maps, each with one bh x bw block at a uniformly random position."""
    top = torch.randint(0, h - bh + 1, (*lead, 1, 1), generator=g)
    left = torch.randint(0, w - bw + 1, (*lead, 1, 1), generator=g)
    return _box_maps(rows, cols, top, left, bh, bw)


def _random_subsets(keep: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """keep (B, N) bool -> (B, n) sorted indices: a uniformly random subset of each row's kept positions, of the
    smallest row's size n (rows of exactly n keep everything), so the batch stacks without positional bias."""
    n = int(keep.sum(1).min())
    # Random keys for kept positions, +inf for the others: the n smallest keys are a uniform subset of the kept.
    keys = torch.rand(keep.shape, generator=g).masked_fill_(~keep, float("inf"))
    return keys.argsort(1)[:, :n].sort(1).values


@dataclass(frozen=True)
class MultiBlock3D:
    """V-JEPA spatio-temporal multi-block mask on a (t, h, w) token grid.

    `num_blocks` spatial blocks are drawn per sample and extended through all `t` time slots (tubes), so the
    model cannot copy a masked patch from a neighbouring frame. The union of the tubes is one target set; the
    remaining tokens are the context.
    """

    frames: int
    height: int
    width: int
    num_blocks: int = 8
    scale: tuple[float, float] = (0.15, 0.15)
    aspect: tuple[float, float] = (0.75, 1.5)
    min_keep: int = 4
    max_tries: int = 50

    @classmethod
    def short_range(cls, frames: int, height: int, width: int) -> MultiBlock3D:
        return cls(frames=frames, height=height, width=width, num_blocks=8, scale=(0.15, 0.15))

    @classmethod
    def long_range(cls, frames: int, height: int, width: int) -> MultiBlock3D:
        return cls(frames=frames, height=height, width=width, num_blocks=2, scale=(0.7, 0.7))

    def __call__(self, batch_size: int, generator: torch.Generator) -> Masks:
        # Vectorised over the batch like MultiBlock2D; every block of every sample draws its own size.
        g, t, h, w, B, K = generator, self.frames, self.height, self.width, batch_size, self.num_blocks
        rows, cols = torch.arange(h).view(h, 1), torch.arange(w).view(1, w)
        union = torch.zeros(B, h, w, dtype=torch.bool)
        todo = torch.arange(B)
        for _ in range(self.max_tries):
            n = len(todo)
            bh, bw = (x[..., None, None] for x in _block_sizes(g, (n, K), h, w, self.scale, self.aspect))  # (n,K,1,1)
            top = (torch.rand(n, K, 1, 1, generator=g) * (h - bh + 1)).long()  # uniform in [0, h - bh]
            left = (torch.rand(n, K, 1, 1, generator=g) * (w - bw + 1)).long()
            u = _box_maps(rows, cols, top, left, bh, bw).any(1)  # (n, h, w)
            union[todo] = u
            todo = todo[(~u).flatten(1).sum(1) * t < self.min_keep]
            if len(todo) == 0:
                break
        else:
            raise RuntimeError(f"MultiBlock3D: context kept < {self.min_keep} tokens; lower the block scale")
        tube = union.unsqueeze(1).expand(B, t, h, w).flatten(1)  # (B, t*h*w)
        return _random_subsets(~tube, g), _random_subsets(tube, g).unsqueeze(1)


@dataclass(frozen=True)
class FutureFrames:
    """Causal mask: the first `context_frames` time slots are context, all later ones are the target."""

    frames: int
    height: int
    width: int
    context_frames: int

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> Masks:
        if not 0 < self.context_frames < self.frames:
            raise ValueError(f"context_frames must be in 1..{self.frames - 1}, got {self.context_frames}")
        n_ctx = self.context_frames * self.height * self.width
        n = self.frames * self.height * self.width
        ctx = torch.arange(n_ctx).expand(batch_size, -1)
        tgt = torch.arange(n_ctx, n).expand(batch_size, 1, -1)
        return ctx.contiguous(), tgt.contiguous()


@dataclass(frozen=True)
class Random:
    """MAE random masking: each sample hides a uniformly random `ratio` of its `num_tokens` tokens."""

    num_tokens: int
    ratio: float = 0.75

    def __call__(self, batch_size: int, generator: torch.Generator) -> Masks:
        n_mask = round(self.num_tokens * self.ratio)
        if not 0 < n_mask < self.num_tokens:
            raise ValueError(f"mask ratio {self.ratio} leaves no visible or no masked token")
        noise = torch.rand(batch_size, self.num_tokens, generator=generator)
        order = noise.argsort(dim=1)  # (B, N): a random permutation per sample
        keep = order[:, : self.num_tokens - n_mask].sort(dim=1).values
        masked = order[:, self.num_tokens - n_mask :].sort(dim=1).values
        return keep, masked.unsqueeze(1)


@dataclass(frozen=True)
class Tube:
    """VideoMAE tube masking (Tong et al. 2022): each sample hides a random `ratio` of the spatial positions in
    every time slot, so a masked patch cannot be copied from the same place in a neighbouring frame."""

    frames: int
    height: int
    width: int
    ratio: float = 0.9

    def __call__(self, batch_size: int, generator: torch.Generator) -> Masks:
        hw = self.height * self.width
        n_mask = round(hw * self.ratio)
        if not 0 < n_mask < hw:
            raise ValueError(f"tube mask ratio {self.ratio} leaves no visible or no masked position")
        order = torch.rand(batch_size, hw, generator=generator).argsort(dim=1)  # (B, hw) random permutations
        offsets = torch.arange(self.frames) * hw  # (t,) first token of each time slot

        def tubes(spatial: torch.Tensor) -> torch.Tensor:  # (B, k) positions -> (B, t*k) sorted token indices
            return (spatial[:, None, :] + offsets[None, :, None]).flatten(1).sort(dim=1).values

        return tubes(order[:, : hw - n_mask]), tubes(order[:, hw - n_mask :]).unsqueeze(1)  # keep, masked


@dataclass(frozen=True)
class Mixture:
    """One of several masks per batch, drawn with `weights` from the step's generator.

    V-JEPA alternates its short-range and long-range multi-block masks this way; adding `FutureFrames` masks
    teaches the predictor the causal task that surprise scoring asks of it. Every mask must return targets of
    the same (B, 1, Nt) layout (one target set per sample).
    """

    masks: tuple[MultiBlock3D | FutureFrames | Tube | Random, ...]
    weights: tuple[float, ...] = ()

    def __call__(self, batch_size: int, generator: torch.Generator) -> Masks:
        w = torch.tensor(self.weights or (1.0,) * len(self.masks), dtype=torch.float)
        if len(w) != len(self.masks) or not (w >= 0).all() or w.sum() <= 0:
            raise ValueError(f"Mixture: {len(self.masks)} masks need as many non-negative weights, got {self.weights}")
        i = int(torch.multinomial(w, 1, generator=generator))
        return self.masks[i](batch_size, generator)
