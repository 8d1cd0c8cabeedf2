"""Method registry: config -> a `Method` that owns its networks. The trainer looks methods up here only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from jepaworld.config import ExperimentConfig
from jepaworld.losses import Regularizer
from jepaworld.masks import MultiBlock2D, Random
from jepaworld.methods.base import DataSpec, Method
from jepaworld.methods.jepa import JEPA
from jepaworld.methods.mae import MAE
from jepaworld.methods.video import videomae_mask, vjepa_mask
from jepaworld.methods.worldmodel import WorldModel, build_worldmodel
from jepaworld.vit import VisionTransformer, predictor_for, vit


def build_encoder(cfg: ExperimentConfig, spec: DataSpec) -> VisionTransformer:
    m = cfg.model
    return vit(
        m.size, depth=m.depth, img_size=spec.img_size, patch_size=m.patch_size, in_chans=spec.channels,
        num_frames=spec.frames, tubelet=m.tubelet if spec.frames > 1 else 1, pixel_mean=spec.pixel_mean,
        pixel_std=spec.pixel_std,
    )  # fmt: skip


def initial_encoder(path: str, encoder: VisionTransformer) -> VisionTransformer:
    """Copy the eval encoder of the checkpoint at `path` into `encoder` (same architecture required)."""
    from jepaworld.checkpoint import CheckpointError, load_method

    source, _, _, state = load_method(path)
    other = source.eval_encoder
    if not isinstance(other, VisionTransformer):
        raise CheckpointError(f"{state['path']}: its method has no ViT encoder to initialise this model from")
    mine = (encoder.dim, len(encoder.blocks), encoder.patch_size, encoder.in_chans, encoder.img_size, encoder.grid)
    theirs = (other.dim, len(other.blocks), other.patch_size, other.in_chans, other.img_size, other.grid)
    if mine != theirs:
        raise CheckpointError(
            f"{state['path']}: encoder (dim, depth, patch, channels, img_size, grid) = {theirs} does not match "
            f"this model's {mine}; set --model.size/--model.depth/--model.patch_size and the data to match"
        )
    encoder.load_state_dict(other.state_dict())
    return encoder


def build_regularizer(cfg: ExperimentConfig, dim: int) -> Regularizer:
    me = cfg.method
    return Regularizer(
        kind=me.regularizer, dim=dim, weight=me.reg_weight, std_weight=me.vicreg_std_weight,
        cov_weight=me.vicreg_cov_weight, expander_dim=me.expander_dim, slices=me.sigreg_slices,
    )  # fmt: skip


def build_ijepa(cfg: ExperimentConfig, spec: DataSpec) -> JEPA:
    enc = build_encoder(cfg, spec)
    _, h, w = enc.grid
    mk = cfg.mask
    mask = MultiBlock2D(
        height=h, width=w, num_targets=mk.num_targets, target_scale=mk.target_scale,
        target_aspect=mk.target_aspect, context_scale=mk.context_scale, min_keep=mk.min_keep,
    )  # fmt: skip
    pred = predictor_for(
        enc,
        dim=cfg.model.pred_dim,
        depth=cfg.model.pred_depth,
        num_heads=cfg.model.pred_heads,
        out_dim=enc.dim,
    )
    me = cfg.method
    return JEPA(
        encoder=enc, predictor=pred, mask=mask, loss=me.loss, target=me.target,
        ema=(me.ema_start, me.ema_end), regularizer=build_regularizer(cfg, enc.dim), reg_on=me.reg_on,
        target_layers=me.target_layers, masks_per_image=me.masks_per_image,
    )  # fmt: skip


def build_mae(cfg: ExperimentConfig, spec: DataSpec) -> MAE:
    enc = build_encoder(cfg, spec)
    pixels = spec.channels * enc.patch_size**2 * enc.tubelet
    dec = predictor_for(
        enc,
        dim=cfg.model.pred_dim,
        depth=cfg.model.pred_depth,
        num_heads=cfg.model.pred_heads,
        out_dim=pixels,
    )
    mask = Random(num_tokens=enc.num_patches, ratio=cfg.mask.ratio)
    return MAE(encoder=enc, decoder=dec, mask=mask, norm_pix_loss=cfg.method.norm_pix_loss)


def build_vjepa(cfg: ExperimentConfig, spec: DataSpec) -> JEPA:
    """V-JEPA (Bardes et al. 2024): the JEPA class on a tubelet encoder with multi-block tube masks.

    `model.encoder_init` starts the encoder (and its EMA target) from another checkpoint's; with
    `model.freeze_encoder` only the predictor trains, on fixed targets, as V-JEPA 2 trains its action-conditioned
    predictor on a frozen encoder (Assran et al. 2025)."""
    enc = build_encoder(cfg, spec)
    m, me = cfg.model, cfg.method
    if m.encoder_init:
        enc = initial_encoder(m.encoder_init, enc)
    enc.requires_grad_(not m.freeze_encoder)
    pred = predictor_for(
        enc, dim=m.pred_dim, depth=m.pred_depth, num_heads=m.pred_heads, out_dim=enc.dim, carry=m.pred_carry
    )
    return JEPA(
        encoder=enc, predictor=pred, mask=vjepa_mask(cfg.mask, enc.grid), loss=me.loss, target=me.target,
        ema=(me.ema_start, me.ema_end), regularizer=build_regularizer(cfg, enc.dim), reg_on=me.reg_on,
        target_layers=me.target_layers, masks_per_image=me.masks_per_image,
    )  # fmt: skip


def build_videomae(cfg: ExperimentConfig, spec: DataSpec) -> MAE:
    """VideoMAE (Tong et al. 2022), the pixel baseline of V-JEPA: the MAE class with tube masks."""
    enc = build_encoder(cfg, spec)
    m = cfg.model
    pixels = spec.channels * enc.patch_size**2 * enc.tubelet
    dec = predictor_for(
        enc, dim=m.pred_dim, depth=m.pred_depth, num_heads=m.pred_heads, out_dim=pixels, carry=m.pred_carry
    )
    mask = videomae_mask(cfg.mask, enc.grid)
    return MAE(encoder=enc, decoder=dec, mask=mask, norm_pix_loss=cfg.method.norm_pix_loss)  # type: ignore[arg-type]


METHODS: dict[str, Callable[[ExperimentConfig, DataSpec], Method]] = {
    "ijepa": build_ijepa,
    "mae": build_mae,
    "vjepa": build_vjepa,
    "videomae": build_videomae,
    "worldmodel": build_worldmodel,
}


def build_method(cfg: ExperimentConfig, spec: DataSpec, *, init_encoder: bool = True) -> Method:
    """The method `cfg` names, with fresh weights. `init_encoder=False` ignores `model.encoder_init`: for a method
    whose weights come from its own checkpoint (the initial one may have moved since), and for a random-init
    baseline, which must not copy another run's encoder."""
    if cfg.method.name not in METHODS:
        raise ValueError(f"unknown method '{cfg.method.name}'; choose one of {', '.join(METHODS)}")
    if not init_encoder:
        cfg = replace(cfg, model=replace(cfg.model, encoder_init=""))
    return METHODS[cfg.method.name](cfg, spec)


__all__ = ["JEPA", "MAE", "METHODS", "DataSpec", "Method", "WorldModel", "build_encoder", "build_method"]
