"""The JEPA method on images: data2vec 2.0's multi-layer targets and several masks per image."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from jepaworld.config import apply_overrides, get_preset
from jepaworld.losses import regression_loss
from jepaworld.methods import JEPA, DataSpec, build_method
from jepaworld.vit import gather_tokens

SPEC = DataSpec(channels=1, img_size=16)  # ijepa-digits-micro: a 4 x 4 token grid, micro ViT


def _method(**overrides: str) -> JEPA:
    torch.manual_seed(0)
    method = build_method(apply_overrides(get_preset("ijepa-digits-micro"), overrides), SPEC)
    assert isinstance(method, JEPA)
    return method


def _images(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(1))


def test_multi_layer_target_matches_a_hand_written_reference() -> None:
    method = _method(**{"method.target_layers": "2"})
    x, enc = _images(), method.target_encoder
    # By hand: run the blocks, layer-norm the last two (final norm, then a plain layer norm), average, normalise.
    tokens = enc.patch_embed((x - enc.pixel_mean) / enc.pixel_std) + enc.pos_embed
    outs = []
    for blk in enc.blocks:
        tokens = blk(tokens)
        outs.append(F.layer_norm(enc.norm(tokens), (enc.dim,)))
    expected = F.layer_norm((outs[-1] + outs[-2]) / 2, (enc.dim,))
    torch.testing.assert_close(method.targets(x), expected)
    one = _method()
    torch.testing.assert_close(one.targets(x), F.layer_norm(one.target_encoder(x), (enc.dim,)))


def test_several_masks_per_image_pair_each_mask_with_its_own_image() -> None:
    """R masks of image b are rows b*R .. b*R + R - 1; the loss equals that of the R-times repeated batch."""
    R = 3
    method = _method(**{"method.masks_per_image": str(R)})
    x = _images()
    batch = method.prepare({"x": x}, torch.Generator().manual_seed(0))
    assert batch["ctx"].shape[0] == batch["tgt"].shape[0] == len(x) * R
    loss, _ = method(batch)
    # The reference: every mask on its own copy of the image, one target pass per copy.
    xr = x.repeat_interleave(R, dim=0)
    B, M, Nt = batch["tgt"].shape
    target = gather_tokens(method.targets(xr), batch["tgt"].flatten(1)).view(B, M, Nt, -1)
    _, pred = method.predict(xr, batch["ctx"], batch["tgt"])
    torch.testing.assert_close(loss, regression_loss(pred, target, method.loss_kind))
    loss.backward()
    trainable = [(n, p) for n, p in method.named_parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for _, p in trainable)
    assert all(p.grad is None for p in method.target_encoder.parameters())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"method.target_layers": "0"}, "bad value 0 for --method.target_layers: it must be >= 1"),  # the config
        ({"method.target_layers": "9"}, "target_layers=9"),
        ({"method.masks_per_image": "0"}, "--method.masks_per_image: it must be >= 1"),
        (
            {"method.masks_per_image": "2", "method.reg_on": "tokens", "method.regularizer": "vicreg"},
            "reg_on='pooled'",
        ),
    ],
)
def test_bad_options_are_refused(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _method(**overrides)
