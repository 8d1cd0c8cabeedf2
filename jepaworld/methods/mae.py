"""MAE: the generative baseline. Reconstruct the pixels of randomly masked patches (He et al. 2022).

It uses the same `VisionTransformer` encoder as the JEPA methods, so the two are compared on equal footing.
The decoder is a `Predictor` whose output is a patch's pixels; the loss is the mean squared error on the masked
patches, on per-patch normalised pixels by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from jepaworld.masks import Random
from jepaworld.methods.base import Method
from jepaworld.vit import Predictor, VisionTransformer, gather_tokens


def patchify(x: torch.Tensor, patch: int, tubelet: int = 1) -> torch.Tensor:
    """Images (B, C, H, W) or videos (B, C, T, H, W) -> (B, N, pixels per patch), in the encoder's token order."""
    if x.dim() == 4:
        x = x.unsqueeze(2)  # a one-frame video
        tubelet = 1
    B, C, T, H, W = x.shape
    t, h, w = T // tubelet, H // patch, W // patch
    x = x.reshape(B, C, t, tubelet, h, patch, w, patch)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # (B, t, h, w, tubelet, p, p, C)
    return x.reshape(B, t * h * w, tubelet * patch * patch * C)


class MAE(Method):
    def __init__(
        self, *, encoder: VisionTransformer, decoder: Predictor, mask: Random, norm_pix_loss: bool = True
    ) -> None:
        super().__init__()
        self.encoder, self.decoder, self.mask, self.norm_pix_loss = encoder, decoder, mask, norm_pix_loss

    @property
    def eval_encoder(self) -> VisionTransformer:
        return self.encoder

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        keep, masked = self.mask(batch["x"].shape[0], generator)
        return {**batch, "ctx": keep, "tgt": masked}

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x, keep, masked = batch["x"], batch["ctx"], batch["tgt"][:, 0]  # (B, C, ...), (B, Nk), (B, Nm)
        z = self.encoder(x, keep)  # (B, Nk, D)
        pred = self.decoder(z, keep, masked).float()  # (B, Nm, P)
        target = gather_tokens(patchify(x, self.encoder.patch_size, self.encoder.tubelet), masked)  # (B, Nm, P)
        if self.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        loss = F.mse_loss(pred, target)
        return loss, {"loss/pixel": loss.item()}
