"""JEPA: predict the target encoder's features of masked tokens from the context tokens.

I-JEPA (Assran et al. 2023) on images with multi-block masks; V-JEPA (Bardes et al. 2024) on videos with
spatio-temporal tube masks. Both are this one class: only the encoder's patch embedding and the mask differ.

Collapse prevention is pluggable. `target="ema"`: the target encoder is a momentum copy behind a stop-gradient
(momentum annealed from `ema_start` to `ema_end`). `target="online"`: the target is the online encoder itself
behind a stop-gradient, which collapses unless a regulariser (`VICReg` or `SIGReg` in `losses.Regularizer`) holds
the context embeddings apart. The regulariser sees per-sample pooled context embeddings (`reg_on="pooled"`) or,
with `reg_on="tokens"`, the online encoder's features of every token, each position across the batch.

Two options from data2vec 2.0 (Baevski et al. 2023), which made this kind of training several times cheaper:
`target_layers=K` regresses the mean of the target encoder's last K blocks (each layer-normed) instead of the
last block alone, a target richer than one layer; `masks_per_image=R` draws R independent context/target masks
per image, so that one target-encoder pass serves R predictions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F

from jepaworld.losses import Regularizer, regression_loss
from jepaworld.methods.base import Method
from jepaworld.vit import Predictor, VisionTransformer, gather_tokens

MaskFn = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


class JEPA(Method):
    def __init__(
        self,
        *,
        encoder: VisionTransformer,
        predictor: Predictor,
        mask: MaskFn,
        loss: str = "smooth_l1",
        target: str = "ema",
        ema: tuple[float, float] = (0.996, 1.0),
        regularizer: Regularizer | None = None,
        reg_on: str = "pooled",
        target_layers: int = 1,
        masks_per_image: int = 1,
    ) -> None:
        super().__init__()
        if not 1 <= target_layers <= len(encoder.blocks):
            raise ValueError(f"target_layers={target_layers}: choose 1..{len(encoder.blocks)} (the encoder's depth)")
        if masks_per_image < 1:
            raise ValueError(f"masks_per_image={masks_per_image}: draw at least one mask per image")
        if masks_per_image > 1 and reg_on == "tokens":
            raise ValueError("masks_per_image > 1 needs reg_on='pooled': the per-token regulariser sees whole images")
        if target not in ("ema", "online"):
            raise ValueError(f"unknown target '{target}'; choose ema or online")
        if reg_on not in ("pooled", "tokens"):
            raise ValueError(f"unknown reg_on '{reg_on}'; choose pooled or tokens")
        self.encoder, self.predictor, self.mask = encoder, predictor, mask
        self.loss_kind, self.target, self.ema = loss, target, ema
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False) if target == "ema" else None
        self.reg = regularizer or Regularizer(kind="none", dim=encoder.dim)
        if reg_on == "tokens" and self.reg.kind == "none":  # it would pay for a full encoder pass for nothing
            raise ValueError("reg_on='tokens' needs a regulariser; set --method.regularizer vicreg or sigreg")
        self.reg_on, self.target_layers, self.masks_per_image = reg_on, target_layers, masks_per_image
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @property
    def eval_encoder(self) -> VisionTransformer:
        return self.target_encoder if self.target_encoder is not None else self.encoder

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        # Image b's R masks are rows b*R .. b*R + R - 1: a DDP split of the batch keeps each image's masks together.
        ctx, tgt = self.mask(batch["x"].shape[0] * self.masks_per_image, generator)
        return {**batch, "ctx": ctx, "tgt": tgt}

    @torch.no_grad()
    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """Layer-normed target-encoder features of every token (B, N, D), without gradient."""
        encoder = self.target_encoder or self.encoder
        if self.target_layers == 1:
            h = encoder(x)
        else:  # data2vec: normalise each block's output before averaging, so that no layer's scale dominates
            h = torch.stack([F.layer_norm(o, (o.shape[-1],)) for o in encoder(x, return_layers=self.target_layers)])
            h = h.mean(dim=0)  # (B, N, D)
        return F.layer_norm(h, (h.shape[-1],))

    def predict(self, x: torch.Tensor, ctx: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode the context and predict each target block: returns (z (B, Nc, D), pred (B, M, Nt, D))."""
        z = self.encoder(x, ctx)  # (B, Nc, D)
        # All blocks in one predictor pass; blocks never see each other's mask tokens (see `Predictor.forward`).
        return z, self.predictor(z, ctx, tgt)  # (B, M, Nt, D)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x, ctx, tgt = batch["x"], batch["ctx"], batch["tgt"]
        B, M, Nt = tgt.shape  # B = images * masks_per_image
        R = self.masks_per_image
        if self.reg_on == "tokens":
            # Every position of the full input through the online encoder, with gradient: the regulariser
            # asks each position to differ across the batch, which the sparse context tokens cannot show.
            online = self.encoder(x)  # (B, N, D)
            h = F.layer_norm(online.detach(), (online.shape[-1],)) if self.target_encoder is None else self.targets(x)
        else:
            h = self.targets(x)  # (B, N, D)
        if R > 1:  # one target pass per image, one context pass per mask
            h, x = h.repeat_interleave(R, dim=0), x.repeat_interleave(R, dim=0)  # (B, N, D), (B, ...)
        target = gather_tokens(h, tgt.flatten(1)).view(B, M, Nt, -1)  # (B, M, Nt, D)
        z, pred = self.predict(x, ctx, tgt)
        pred_loss = regression_loss(pred.float(), target.float(), self.loss_kind)
        # Pooled: per-image embeddings, since features that encode only the token position pool to one vector
        # for every image, which the regulariser sees as collapse (over tokens it would not). Tokens: the same
        # guard per position (`Regularizer` centres each position on its batch mean).
        reg_in = online if self.reg_on == "tokens" else z.mean(dim=1)
        reg_loss, logs = self.reg(reg_in, int(self.step))
        return pred_loss + reg_loss, {"loss/pred": pred_loss.item(), **logs}

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        self.step += 1
        if self.target_encoder is None:
            return
        m = self.ema[0] + (self.ema[1] - self.ema[0]) * min(max(progress, 0.0), 1.0)
        online = list(self.encoder.parameters())
        torch._foreach_lerp_(list(self.target_encoder.parameters()), online, 1.0 - m)
