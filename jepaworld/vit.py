"""Vision Transformer encoder and narrow predictor for JEPA, in plain PyTorch.

Papers: Dosovitskiy et al. 2021 (ViT); Assran et al. 2023, "Self-Supervised Learning from Images with a
Joint-Embedding Predictive Architecture" (I-JEPA: encoder of a patch subset, narrow predictor with mask tokens);
Bardes et al. 2024 (V-JEPA: tubelet embedding, 3-D sin-cos positions).

Images are (B, C, H, W); videos are (B, C, T, H, W). Both become a flat token sequence (B, N, D) in raster order
(time, then rows, then columns), so masks are plain index tensors whatever the modality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------------------------------------
# positional embeddings


def sincos_1d(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) positions -> (N, dim) fixed sin-cos features (Vaswani et al. 2017)."""
    assert dim % 2 == 0, "sin-cos embedding needs an even width"
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = pos.double()[:, None] * omega[None, :]  # (N, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_2d(h: int, w: int, dim: int) -> torch.Tensor:
    """(h*w, dim) embedding: half the channels encode the row, half the column (as in MAE / I-JEPA)."""
    assert dim % 4 == 0, "2-D sin-cos embedding needs a width divisible by 4"
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.cat([sincos_1d(rows.flatten(), dim // 2), sincos_1d(cols.flatten(), dim // 2)], dim=1)


def sincos_3d(t: int, h: int, w: int, dim: int) -> torch.Tensor:
    """(t*h*w, dim) embedding: a quarter of the channels for time, three eighths each for rows and columns."""
    dt = dim // 4 // 2 * 2
    ds = (dim - dt) // 2 // 2 * 2
    dt = dim - 2 * ds
    tt, rr, cc = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    return torch.cat([sincos_1d(tt.flatten(), dt), sincos_1d(rr.flatten(), ds), sincos_1d(cc.flatten(), ds)], dim=1)


# ----------------------------------------------------------------------------------------------------------
# blocks


class PatchEmbed(nn.Module):
    """Non-overlapping patches (images) or tubelets (videos) -> tokens, via a strided convolution."""

    def __init__(
        self,
        *,
        img_size: int,
        patch_size: int,
        in_chans: int,
        dim: int,
        num_frames: int = 1,
        tubelet: int = 1,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"image size {img_size} is not divisible by patch size {patch_size}")
        self.video = num_frames > 1
        self.grid = (
            num_frames // tubelet if self.video else 1,
            img_size // patch_size,
            img_size // patch_size,
        )
        if self.video:
            if num_frames % tubelet:
                raise ValueError(f"{num_frames} frames are not divisible by tubelet {tubelet}")
            k = (tubelet, patch_size, patch_size)
            self.proj: nn.Module = nn.Conv3d(in_chans, dim, kernel_size=k, stride=k)
        else:
            self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    @property
    def num_patches(self) -> int:
        return math.prod(self.grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, *grid) -> (B, N, D)


class Attention(nn.Module):
    def __init__(self, *, dim: int, num_heads: int) -> None:
        super().__init__()
        assert dim % num_heads == 0, f"width {dim} is not divisible by {num_heads} heads"
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, D); mask (N, N) bool or None: token i attends to token j where mask[i, j]."""
        B, N, D = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.num_heads, D // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, N, hd)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, N, hd)
        return self.proj(x.transpose(1, 2).reshape(B, N, D))


class MLP(nn.Module):
    def __init__(self, *, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, *, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim=dim, num_heads=num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim=dim, hidden=int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


def _init_weights(m: nn.Module) -> None:
    # Truncated-normal linears and zero biases, as in the I-JEPA / MAE reference models.
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d | nn.Conv3d):
        # Patch projections are initialised like a linear layer on the flattened patch (MAE).
        nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
        nn.init.zeros_(m.bias)


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), idx (B, K) long -> (B, K, D)."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


# ----------------------------------------------------------------------------------------------------------
# encoder and predictor


@dataclass(frozen=True)
class ViTSize:
    dim: int
    depth: int
    heads: int


# Widths follow DeiT/timm; `micro` exists so that tests run in milliseconds.
VIT_SIZES: dict[str, ViTSize] = {
    "micro": ViTSize(dim=32, depth=2, heads=2),
    "tiny": ViTSize(dim=192, depth=12, heads=3),
    "small": ViTSize(dim=384, depth=12, heads=6),
    "base": ViTSize(dim=768, depth=12, heads=12),
}


class VisionTransformer(nn.Module):
    """ViT encoder that can encode any subset of its patch tokens.

    `forward(x, keep)` embeds all patches, adds fixed sin-cos positions, keeps only the tokens in `keep`
    (B, K) and runs the blocks on those: the context encoder of I-JEPA sees only its context block, and MAE's
    encoder only the visible patches.
    """

    def __init__(
        self,
        *,
        img_size: int,
        patch_size: int,
        in_chans: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        num_frames: int = 1,
        tubelet: int = 1,
        pixel_mean: float = 0.0,
        pixel_std: float = 1.0,
    ) -> None:
        super().__init__()
        # Inputs arrive in [0, 1]; standardising them here keeps every caller (trainer, probes, planners) in step.
        self.pixel_mean, self.pixel_std = pixel_mean, pixel_std
        self.dim, self.img_size, self.patch_size, self.in_chans = dim, img_size, patch_size, in_chans
        self.num_frames, self.tubelet = num_frames, tubelet
        self.patch_embed = PatchEmbed(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, dim=dim,
            num_frames=num_frames, tubelet=tubelet,
        )  # fmt: skip
        self.grid = self.patch_embed.grid  # (T', H', W'); T' = 1 for images
        t, h, w = self.grid
        pos = sincos_3d(t, h, w, dim) if self.patch_embed.video else sincos_2d(h, w, dim)
        self.register_buffer("pos_embed", pos.unsqueeze(0), persistent=False)  # (1, N, D), fixed
        self.blocks = nn.ModuleList(Block(dim=dim, num_heads=num_heads, mlp_ratio=mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.apply(_init_weights)
        # Variance-preserving (LeCun) init for the patch projection: with small patches (4x4x1 = 16 inputs) the
        # Xavier init leaves the content ~4x weaker than the sin-cos positions, and the features then start, and
        # tend to stay, position-only.
        w = self.patch_embed.proj.weight
        nn.init.trunc_normal_(w, std=w[0].numel() ** -0.5)

    @property
    def num_patches(self) -> int:
        return self.patch_embed.num_patches

    def check_input(self, x: torch.Tensor) -> None:
        expect = (self.in_chans, self.num_frames, self.img_size, self.img_size)
        got = (x.shape[1], x.shape[2] if x.dim() == 5 else 1, x.shape[-2], x.shape[-1])
        if got != expect or x.dim() != (5 if self.patch_embed.video else 4):
            raise ValueError(
                f"input of shape {tuple(x.shape)} does not fit this encoder (channels, frames, height, width) = "
                f"{expect}; resize the data or build the model for it"
            )

    def forward(
        self, x: torch.Tensor, keep: torch.Tensor | None = None, *, return_layers: int = 0
    ) -> torch.Tensor | list[torch.Tensor]:
        """x: (B, C, H, W) or (B, C, T, H, W); keep: (B, K) token indices or None for all tokens.

        Returns the normed tokens (B, K, D), or with `return_layers=n` the normed outputs of the last n blocks.
        """
        self.check_input(x)
        if self.pixel_mean != 0.0 or self.pixel_std != 1.0:
            x = (x - self.pixel_mean) / self.pixel_std
        tokens = self.patch_embed(x) + self.pos_embed  # (B, N, D)
        if keep is not None:
            tokens = gather_tokens(tokens, keep)  # (B, K, D)
        outs = []
        for i, blk in enumerate(self.blocks):
            tokens = blk(tokens)
            if return_layers and i >= len(self.blocks) - return_layers:
                outs.append(self.norm(tokens))
        return outs if return_layers else self.norm(tokens)


def vit(size: str, *, depth: int = 0, **kwargs) -> VisionTransformer:
    """Build an encoder from the size registry; `depth` > 0 overrides the size's depth."""
    if size not in VIT_SIZES:
        raise ValueError(f"unknown ViT size '{size}'; choose one of {', '.join(VIT_SIZES)}")
    s = VIT_SIZES[size]
    return VisionTransformer(dim=s.dim, depth=depth or s.depth, num_heads=s.heads, **kwargs)


class Predictor(nn.Module):
    """Narrow transformer that predicts tokens at target positions from context tokens.

    Context tokens (B, Nc, D_enc) are projected to the predictor width and given their positions; a shared
    learned mask token plus the target positions stands in for each target. Outputs at the target slots are
    projected to `out_dim` (the encoder width for JEPA, patch pixels for the MAE decoder).

    `carry_grid=(t, hw)` (videos): a target's query also gets the projected context token at its own spatial
    position in the latest earlier time slot that the context holds, if any. Predicting a future frame then starts
    from "nothing moved" and only has to learn the change. Without it a small predictor on a causal mask did worse
    than copying the last context slot's features forward (BENCHMARKS.md, intuitive physics). A tube mask hides a
    position in every slot, so its queries get nothing carried and stay as without the option.
    """

    def __init__(
        self,
        *,
        num_patches: int,
        pos: torch.Tensor,
        in_dim: int,
        dim: int,
        depth: int,
        num_heads: int,
        out_dim: int,
        carry_grid: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        assert pos.shape == (num_patches, dim), f"positions {tuple(pos.shape)} != ({num_patches}, {dim})"
        if carry_grid is not None and carry_grid[0] * carry_grid[1] != num_patches:
            raise ValueError(f"carry_grid={carry_grid} does not cover the {num_patches} positions")
        self.carry_grid = carry_grid
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos_embed", pos.unsqueeze(0), persistent=False)  # (1, N, d)
        self.blocks = nn.ModuleList(Block(dim=dim, num_heads=num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, out_dim)
        self.apply(_init_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, ctx: torch.Tensor, ctx_idx: torch.Tensor, tgt_idx: torch.Tensor) -> torch.Tensor:
        """ctx (B, Nc, D_enc), ctx_idx (B, Nc), tgt_idx (B, Nt) or (B, M, Nt) -> predictions of the same layout.

        With M > 1 target blocks all of them go through one pass, under an attention mask: the context attends
        only to itself and each block's mask tokens to the context and their own block. Each block's prediction
        thus depends on the context and its own positions alone, as with one pass per block (I-JEPA: blocks
        never see each other's mask tokens), for Nc + M*Nt tokens instead of M*(Nc + Nt): about 2x less
        predictor work at I-JEPA's 4 blocks. With one block, every token attends to every other.
        """
        blocks = tgt_idx.dim() == 3
        B, M, Nt = tgt_idx.shape if blocks else (tgt_idx.shape[0], 1, tgt_idx.shape[1])
        Nc = ctx_idx.shape[1]
        pos = self.pos_embed.expand(B, -1, -1)  # (B, N, d)
        c = self.embed(ctx)  # (B, Nc, d)
        x = c + gather_tokens(pos, ctx_idx)
        flat_tgt = tgt_idx.reshape(B, M * Nt)
        m = self.mask_token.expand(B, M * Nt, -1) + gather_tokens(pos, flat_tgt)  # (B, M*Nt, d)
        if self.carry_grid is not None:
            m = m + self._carried(c, ctx_idx, flat_tgt)
        x = torch.cat([x, m], dim=1)  # (B, Nc + M*Nt, d)
        attn = None
        if M > 1:
            dev = x.device  # built where it is used: no host-to-device copy per step
            group = torch.cat([torch.full((Nc,), -1, device=dev), torch.arange(M, device=dev).repeat_interleave(Nt)])
            attn = (group[:, None] == group[None, :]) | (group[None, :] == -1)  # (L, L): own block or context
        for blk in self.blocks:
            x = blk(x, attn)
        out = self.head(self.norm(x[:, Nc:]))  # (B, M*Nt, out_dim)
        return out.view(B, M, Nt, -1) if blocks else out

    def _carried(self, ctx: torch.Tensor, ctx_idx: torch.Tensor, tgt_idx: torch.Tensor) -> torch.Tensor:
        """ctx (B, Nc, d) projected context, indices (B, Nc), (B, K) -> (B, K, d): for each target, the context
        token at its spatial position in the latest earlier slot the context holds, or zeros where there is none."""
        t, hw = self.carry_grid  # type: ignore[misc]
        B, _, d = ctx.shape
        dense = ctx.new_zeros(B, t * hw, d).scatter(1, ctx_idx.unsqueeze(-1).expand(-1, -1, d), ctx)  # (B, N, d)
        # The time slot of each context token at its index, -1 elsewhere.
        held = torch.full((B, t * hw), -1, dtype=torch.long, device=ctx.device).scatter(1, ctx_idx, ctx_idx // hw)
        # Latest held slot at or before each (slot, position); a target is never in the context, so "at" is "before".
        latest = held.view(B, t, hw).cummax(dim=1).values.view(B, t * hw)  # (B, N), -1 where none
        src = latest.gather(1, tgt_idx)  # (B, K)
        pos_in_frame = tgt_idx % hw
        carried = gather_tokens(dense, src.clamp(min=0) * hw + pos_in_frame)  # (B, K, d)
        return carried * (src >= 0).unsqueeze(-1).to(carried.dtype)


def predictor_for(
    encoder: VisionTransformer, *, dim: int, depth: int, num_heads: int, out_dim: int, carry: bool = False
) -> Predictor:
    """A predictor on the same token grid as `encoder`, with sin-cos positions at its own width. `carry`: see
    `Predictor` (videos only)."""
    t, h, w = encoder.grid
    video = encoder.patch_embed.video
    if carry and not video:
        raise ValueError("carry needs a video encoder: it carries tokens forward in time")
    pos = sincos_3d(t, h, w, dim) if video else sincos_2d(h, w, dim)
    return Predictor(
        num_patches=encoder.num_patches, pos=pos, in_dim=encoder.dim, dim=dim, depth=depth,
        num_heads=num_heads, out_dim=out_dim, carry_grid=(t, h * w) if carry else None,
    )  # fmt: skip
