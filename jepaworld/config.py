"""Experiment configuration: frozen dataclasses, named presets and dotted command-line overrides.

Every component gets its own small frozen dataclass; `ExperimentConfig` nests them. Presets are plain Python
functions registered in `PRESETS`. Overrides look like ``--train.lr 3e-4``; an unknown key is an error that
suggests the closest valid keys. Each field's ``help`` metadata is the text that ``jepaworld presets`` prints;
an enumerated field also declares its ``choices``, which `validate` checks (with the values that must fit
together) whenever overrides are applied or a saved config is read.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A bad configuration key or value; the message is one line naming the key and the fix."""


def _f(
    default: Any,
    help: str,
    choices: tuple[str, ...] = (),
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with a default, its help text (shown by `jepaworld presets --keys`) and what `validate`
    checks up front, so that a typo is a one-line error rather than a traceback mid-run: for an enumerated value
    the values it accepts, for a number its bounds (>= ge, > gt, <= le, < lt; each element of a range pair)."""
    bounds = {op: b for op, b in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if b is not None}
    return field(default=default, metadata={"help": help, "choices": choices, "bounds": bounds})


@dataclass(frozen=True)
class DataConfig:
    name: str = _f(
        "fashion_mnist", "dataset: fashion_mnist | digits | folder | npz | video | episodes",
        ("fashion_mnist", "digits", "folder", "npz", "video", "episodes"),
    )  # fmt: skip
    path: str = _f(
        "", "dataset root / file (fashion_mnist: the Debian package folder by default; folder: DIR/<class>/* split "
        "80/20 per class with seed 0, or DIR/train/<class>/* + DIR/test/<class>/*)",
    )  # fmt: skip
    img_size: int = _f(32, "image side in pixels after resizing/padding")
    channels: int = _f(1, "image channels the model expects (1 grayscale, 3 RGB)", ge=1)
    resize: bool = _f(False, "folder/npz: resize images of another size instead of failing")
    augment: bool = _f(True, "random resized crop + horizontal flip during pretraining")
    crop_scale_min: float = _f(0.3, "random resized crop: smallest area fraction", gt=0, le=1)
    train_subset: int = _f(0, "use only the first N training images (0 = all)", ge=0)
    frames: int = _f(16, "video: frames per clip", ge=1)
    frame_step: int = _f(1, "video: temporal stride between sampled frames", ge=1)
    window: int = _f(4, "episodes: number of actions per training window", ge=1)


@dataclass(frozen=True)
class ModelConfig:
    size: str = _f(
        "tiny", "encoder size from the registry: micro | tiny | small | base", ("micro", "tiny", "small", "base")
    )
    depth: int = _f(0, "override the encoder depth (0 = the size's default)", ge=0)
    patch_size: int = _f(4, "patch side in pixels", ge=1)
    tubelet: int = _f(2, "video: frames per tubelet", ge=1)
    pred_dim: int = _f(96, "predictor (or MAE decoder) width", ge=1)
    pred_depth: int = _f(4, "predictor (or MAE decoder) depth", ge=1)
    pred_heads: int = _f(4, "predictor (or MAE decoder) attention heads", ge=1)
    pred_carry: bool = _f(
        False, "video predictor/decoder: a hidden token's query starts from the latest context token at its position"
    )
    action_dim: int = _f(2, "world model: action dimension", ge=1)
    latent_dim: int = _f(0, "world model: latent variable size (0 = deterministic predictor)", ge=0)
    frame_dim: int = _f(64, "world model: size of the per-frame pixel embedding the predictor rolls out", ge=1)
    proprio_dim: int = _f(
        0, "world model: features of proprioception appended to each frame's embedding (0 = none)", ge=0
    )
    history: int = _f(1, "world model: past frames the predictor attends to (1 = Markov)", ge=1)
    frame_pool: str = _f(
        "keypoints",
        "world model: tokens -> frame vector: keypoints (spatial soft-argmax) | flat",
        ("keypoints", "flat"),
    )
    encoder_init: str = _f("", "world model, vjepa: checkpoint whose encoder initialises this one ('' = random init)")
    freeze_encoder: bool = _f(False, "world model, vjepa: keep the encoder frozen (use with encoder_init)")


@dataclass(frozen=True)
class MaskConfig:
    num_targets: int = _f(4, "multi-block: number of target blocks", ge=1)
    target_scale: tuple[float, float] = _f((0.15, 0.2), "multi-block: target block area fraction range", gt=0, le=1)
    target_aspect: tuple[float, float] = _f((0.75, 1.5), "multi-block: target block aspect ratio range", gt=0)
    context_scale: tuple[float, float] = _f((0.85, 1.0), "multi-block: context block area fraction range", gt=0, le=1)
    min_keep: int = _f(4, "multi-block: fewest context patches a sample may keep", ge=1)
    ratio: float = _f(0.75, "random masking (MAE): fraction of patches masked", gt=0, lt=1)
    future_weight: float = _f(
        0.0,
        "vjepa/videomae: share of batches with a causal future-frames mask instead of tube masks (0 = none)",
        ge=0,
        le=1,
    )


@dataclass(frozen=True)
class MethodConfig:
    name: str = _f(
        "ijepa",
        "method: ijepa | mae | vjepa | videomae | worldmodel",
        ("ijepa", "mae", "vjepa", "videomae", "worldmodel"),
    )
    loss: str = _f("smooth_l1", "ijepa/vjepa regression loss: l1 | smooth_l1 | l2", ("l1", "smooth_l1", "l2"))
    target: str = _f(
        "ema", "target encoder: ema (momentum copy) | online (same weights, stop-gradient)", ("ema", "online")
    )
    ema_start: float = _f(0.996, "EMA momentum at step 0", ge=0, le=1)
    ema_end: float = _f(1.0, "EMA momentum at the last step", ge=0, le=1)
    regularizer: str = _f(
        "none", "collapse regulariser on context embeddings: none | vicreg | sigreg", ("none", "vicreg", "sigreg")
    )
    reg_weight: float = _f(1.0, "weight of the regulariser", ge=0)
    reg_on: str = _f(
        "pooled", "ijepa/vjepa regulariser input: pooled (per sample) | tokens (per position)", ("pooled", "tokens")
    )
    target_layers: int = _f(
        1, "ijepa/vjepa: regress the mean of the target encoder's last K blocks (data2vec 2.0)", ge=1
    )
    masks_per_image: int = _f(
        1, "ijepa/vjepa: masks drawn per sample, sharing one target-encoder pass (data2vec 2.0)", ge=1
    )
    vicreg_std_weight: float = _f(25.0, "VICReg variance-term weight (inside the regulariser)", ge=0)
    vicreg_cov_weight: float = _f(1.0, "VICReg covariance-term weight (inside the regulariser)", ge=0)
    expander_dim: int = _f(512, "VICReg expander output width", ge=1)
    sigreg_slices: int = _f(256, "SIGReg: random 1-D projections per step", ge=1)
    norm_pix_loss: bool = _f(True, "MAE: regress per-patch normalised pixels")
    rollout_steps: int = _f(2, "world model: multi-step rollout length in the loss", ge=1)
    inverse_dynamics: float = _f(0.0, "world model: inverse-dynamics loss weight (0 = off)", ge=0)
    latent_budget: float = _f(1.0, "world model: information budget of the latent variable z, nats per step", gt=0)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = _f(2000, "optimiser steps (schedules are laid out over this many)", ge=1)
    batch_size: int = _f(64, "global batch size (split across DDP ranks)", ge=1)
    lr: float = _f(3e-4, "peak learning rate", gt=0)
    min_lr: float = _f(1e-5, "final learning rate of the cosine schedule", ge=0)
    warmup_steps: int = _f(200, "linear warm-up steps", ge=0)
    weight_decay: float = _f(0.04, "weight decay at step 0", ge=0)
    weight_decay_end: float = _f(0.4, "weight decay at the last step (cosine schedule)", ge=0)
    grad_clip: float = _f(1.0, "gradient-norm clip (0 = off)", ge=0)
    bf16: bool = _f(False, "bf16 autocast for forward passes (CPU and CUDA)")
    seed: int = _f(0, "seed for data order, augmentation, masks and initialisation")
    time_budget_s: float = _f(0.0, "stop after this many seconds of training (0 = no limit)", ge=0)
    log_every: int = _f(20, "steps between metric lines", ge=1)
    diag_every: int = _f(100, "steps between collapse diagnostics", ge=1)
    ckpt_every: int = _f(500, "steps between periodic checkpoints", ge=1)
    keep_every: int = _f(
        0, "steps between states also kept as checkpoint-STEP.pt (0 = off); each is a checkpoint too", ge=0
    )
    out: str = _f("runs/default", "run folder (checkpoint, config, metrics)")
    device: str = _f("auto", "auto | cpu | cuda")
    threads: int = _f(0, "torch CPU threads (0 = all cores)", ge=0)
    progress: bool = _f(True, "show a progress bar")


@dataclass(frozen=True)
class ProbeConfig:
    pool: str = _f(
        "mean", "feature pooling: mean | mean_last4 | grid2 | grid2_last4 (see probe.POOLS)",
        ("mean", "mean_last4", "grid2", "grid2_last4"),
    )  # fmt: skip
    knn_k: int = _f(20, "kNN neighbours (cosine)", ge=1)
    shots: int = _f(10, "labels per class for the low-shot probe", ge=1)
    shot_seeds: int = _f(5, "seeds averaged for the low-shot probe", ge=1)
    # 20k labels and 300 iterations: the protocol of BENCHMARKS.md's 5- and 10-minute tables, minutes on 2 cores
    # where all 60k Fashion-MNIST labels and 1000 iterations took over 40.
    max_train: int = _f(
        20000, "cap on labelled training images for the linear/kNN probes (0 = all; the full protocol: "
        "--probe.max_train 0 --probe.max_iter 1000)", ge=0)  # fmt: skip
    max_iter: int = _f(300, "logistic regression iterations (L-BFGS; 1000 for the full protocol)", ge=1)
    device: str = _f("auto", "device that encodes the images: auto (CUDA when available) | cpu | cuda")


@dataclass(frozen=True)
class PlanConfig:
    """How `jepaworld plan eval` plans with a world model unless its flags say otherwise: saved with the run, so
    a preset can carry the planning settings that suit its environment."""

    planner: str = _f("cem", "world model: planner of `plan eval`: cem | mppi | gradient", ("cem", "mppi", "gradient"))
    horizon: int = _f(5, "world model: planning horizon of `plan eval`, in macro-steps (frame_step raw steps)", ge=1)
    pixel_weight: float = _f(1.0, "world model: goal-cost weight of the pixel features' mean squared error", ge=0)
    proprio_weight: float = _f(
        1.0, "world model: goal-cost weight of the proprioception features' mean squared error", ge=0
    )
    waypoints: int = _f(0, "world model: recorded moves in the waypoint graph of `plan eval` (0 = none)", ge=0)


@dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)


# ----------------------------------------------------------------------------------------------------------
# presets


PRESETS: dict[str, Callable[[], ExperimentConfig]] = {}


def preset(fn: Callable[[], ExperimentConfig]) -> Callable[[], ExperimentConfig]:
    """Register a preset under its function name with underscores written as dashes."""
    PRESETS[fn.__name__.replace("_", "-")] = fn
    return fn


def _replace(cfg: ExperimentConfig, **sections: dict[str, Any]) -> ExperimentConfig:
    return dataclasses.replace(cfg, **{s: dataclasses.replace(getattr(cfg, s), **kv) for s, kv in sections.items()})


@preset
def ijepa_fmnist() -> ExperimentConfig:
    """I-JEPA, ViT-Ti (depth 6, patch 4) on 32 px Fashion-MNIST: EMA target, no regulariser."""
    return _replace(
        ExperimentConfig(),
        model=dict(size="tiny", depth=6, patch_size=4),
        train=dict(steps=3000, batch_size=64, lr=3e-4, warmup_steps=200, out="runs/ijepa-fmnist"),
    )


@preset
def mae_fmnist() -> ExperimentConfig:
    """MAE with the same encoder, the generative baseline for `ijepa-fmnist`."""
    cfg = ijepa_fmnist()
    return _replace(
        cfg,
        method=dict(name="mae"),
        model=dict(pred_dim=128, pred_depth=2, pred_heads=4),
        train=dict(lr=1e-3, weight_decay=0.05, weight_decay_end=0.05, out="runs/mae-fmnist"),
    )


@preset
def ijepa_fmnist_noema() -> ExperimentConfig:
    """Collapse study: `ijepa-fmnist` with neither EMA nor regulariser (online target, stop-gradient only)."""
    return _replace(ijepa_fmnist(), method=dict(target="online"), train=dict(out="runs/ijepa-fmnist-noema"))


@preset
def ijepa_fmnist_vicreg() -> ExperimentConfig:
    """Collapse study: online target held apart by VICReg variance + covariance on an expander.

    VICReg's 25 : 25 : 1 (invariance : variance : covariance) with the prediction loss as the invariance term.
    """
    return _replace(
        ijepa_fmnist(), method=dict(target="online", regularizer="vicreg", reg_weight=0.04),
        train=dict(out="runs/ijepa-fmnist-vicreg"),
    )  # fmt: skip


@preset
def ijepa_fmnist_ema_vicreg() -> ExperimentConfig:
    """EMA target *and* VICReg on the pooled context embeddings (C-JEPA, Mo & Tong 2024): the demo's I-JEPA.

    At CPU budgets of minutes, plain EMA I-JEPA can end below its own random init on the linear probe
    (BENCHMARKS.md): it first loses information. The variance/covariance terms keep the pooled embeddings spread
    while the EMA target still supplies the prediction targets.
    """
    return _replace(
        ijepa_fmnist(), method=dict(regularizer="vicreg", reg_weight=0.04),
        train=dict(out="runs/ijepa-fmnist-ema-vicreg"),
    )  # fmt: skip


@preset
def ijepa_fmnist_sigreg() -> ExperimentConfig:
    """Collapse study: online target held apart by SIGReg (LeJEPA's weight 0.05)."""
    return _replace(
        ijepa_fmnist(), method=dict(target="online", regularizer="sigreg", reg_weight=0.05),
        train=dict(out="runs/ijepa-fmnist-sigreg"),
    )  # fmt: skip


@preset
def ijepa_digits_micro() -> ExperimentConfig:
    """A seconds-long I-JEPA on scikit-learn digits with the micro ViT: for tests and smoke checks."""
    return _replace(
        ExperimentConfig(),
        data=dict(name="digits", img_size=16, crop_scale_min=0.6),
        model=dict(size="micro", patch_size=4, pred_dim=32, pred_depth=2, pred_heads=2),
        mask=dict(num_targets=2, min_keep=2),
        train=dict(
            steps=30,
            batch_size=32,
            lr=1e-3,
            warmup_steps=5,
            log_every=5,
            diag_every=10,
            ckpt_every=20,
            out="runs/ijepa-digits-micro",
            progress=False,
        ),
        probe=dict(shot_seeds=2, max_iter=200),
    )


@preset
def mae_digits_micro() -> ExperimentConfig:
    """The MAE counterpart of `ijepa-digits-micro`."""
    return _replace(ijepa_digits_micro(), method=dict(name="mae"), train=dict(out="runs/mae-digits-micro"))


@preset
def vjepa_physics() -> ExperimentConfig:
    """V-JEPA, ViT-Ti depth 2, 32 px, 8-frame clips, on the possible videos of the physics suite (<30 min CPU).

    6000 steps, about 20 minutes on 2 idle cores (relative accuracy went from 80% at 2000 steps to 87% at 6000),
    and the L2 loss (73% pairwise on 180 held-out scenes, against 63% with V-JEPA's L1; BENCHMARKS.md). The time
    budget stops a slower machine at 30 minutes and says how far its schedules got."""
    return _replace(
        ExperimentConfig(),
        data=dict(name="video", path="data/physics", img_size=32, channels=3, frames=8, augment=False),
        # Patch 8 (a 4 x 4 x 4 token grid) and depth 2 keep a step near 0.2 s on 2 cores, and the fp16 checkpoint
        # near 4 MB.
        # pred_carry: the query of a hidden future token starts from the last context token at its position, so
        # the predictor learns the change instead of the frame. Without it the predictor scored worse than copying
        # the last context slot forward, and surprise barely beat random init (BENCHMARKS.md).
        model=dict(size="tiny", depth=2, patch_size=8, tubelet=2, pred_dim=96, pred_depth=3, pred_heads=4,
                   pred_carry=True),
        # Every batch uses a causal future-frames mask (context = the first k slots), the task surprise scoring asks
        # of the predictor: at 2000 steps it scored 72% relative accuracy against 65% with half the batches on
        # V-JEPA's tube masks (BENCHMARKS.md). `--mask.future_weight 0` gives V-JEPA's own masks back.
        mask=dict(future_weight=1.0),
        # L2, not V-JEPA's L1: squared errors weigh the few tokens where a body moves above the many still ones, so
        # the encoder keeps how fast bodies move. At 6000 steps it lifted pairwise accuracy from 63% to 73% on 180
        # held-out scenes (64% to 72% on another suite) and probe vy from 0.51 to 0.65 (BENCHMARKS.md). Surprise
        # is still scored in L1.
        method=dict(name="vjepa", loss="l2"),
        train=dict(
            steps=6000, batch_size=32, lr=5e-4, warmup_steps=60, time_budget_s=1800, log_every=50,
            diag_every=500, ckpt_every=500, threads=2, out="runs/vjepa-physics",
        ),
    )  # fmt: skip
    # threads=2: a step took 0.20 s on an idle 2-core machine, against 0.29 s on one thread (6000 steps: 20 against
    # 29 min). On cores shared with other jobs a 2-thread step has measured 4x slower: pass --train.threads 1 then.


@preset
def videomae_physics() -> ExperimentConfig:
    """VideoMAE (tube masks, raw-pixel targets) with the same encoder: the pixel baseline of `vjepa-physics`."""
    return _replace(
        vjepa_physics(),
        method=dict(name="videomae", norm_pix_loss=False),
        mask=dict(ratio=0.9),
        train=dict(lr=1e-3, weight_decay=0.05, weight_decay_end=0.05, out="runs/videomae-physics"),
    )


@preset
def vjepa_physics_micro() -> ExperimentConfig:
    """A seconds-long V-JEPA with the micro ViT on 16 px, 8-frame clips: for tests and smoke checks."""
    return _replace(
        vjepa_physics(),
        data=dict(path="data/physics-micro", img_size=16),
        model=dict(size="micro", depth=0, patch_size=4, pred_dim=32, pred_depth=1, pred_heads=2),
        train=dict(
            steps=4, batch_size=8, warmup_steps=1, time_budget_s=0.0, log_every=2, diag_every=2, ckpt_every=4,
            threads=1, progress=False, out="runs/vjepa-physics-micro",
        ),
    )  # fmt: skip


@preset
def videomae_physics_micro() -> ExperimentConfig:
    """The VideoMAE counterpart of `vjepa-physics-micro`."""
    return _replace(
        vjepa_physics_micro(),
        method=dict(name="videomae", norm_pix_loss=False),
        mask=dict(ratio=0.9),
        train=dict(out="runs/videomae-physics-micro"),
    )


@preset
def wm_tworooms() -> ExperimentConfig:
    """Action-conditioned JEPA world model on TwoRooms episodes: micro ViT, patch 16, frameskip 5. 12000 steps took
    8 CPU minutes on 1 thread (BENCHMARKS.md); the time budget stops it at 15."""
    return _replace(
        ExperimentConfig(),
        data=dict(name="episodes", path="data/tworooms.h5", img_size=64, channels=3, augment=False, window=3,
                  frame_step=5),
        model=dict(size="micro", patch_size=16, pred_dim=64, pred_depth=2, pred_heads=4, action_dim=10,
                   frame_dim=32, history=1),
        # PLDM's recipe (Sobal et al. 2025): VICReg's variance term on the embeddings plus inverse dynamics, but no
        # covariance term. TwoRooms' state is 2-D: decorrelating 32 unit-variance dimensions of it forces a folded,
        # high-frequency code in which the latent goal cost no longer ranks nearby states by distance (Spearman -0.02
        # within 0.3 of the goal with covariance weight 0.5, vs 0.99 without; BENCHMARKS.md), and which the predictor
        # cannot follow.
        method=dict(name="worldmodel", target="online", regularizer="vicreg", reg_weight=1.0, vicreg_std_weight=10.0,
                    vicreg_cov_weight=0.0, inverse_dynamics=1.0, rollout_steps=3),
        train=dict(steps=12000, batch_size=32, lr=1.5e-3, min_lr=1e-4, warmup_steps=30, weight_decay=0.01,
                   weight_decay_end=0.01, time_budget_s=900, log_every=100, diag_every=500, ckpt_every=1000,
                   threads=1, out="runs/wm-tworooms"),
    )  # fmt: skip


@preset
def wm_pointmaze() -> ExperimentConfig:
    """`wm-tworooms` on PointMaze episodes; two frames of history, since the ball's velocity is not in one frame.

    With VICReg's covariance term: without it (TwoRooms' setting) PointMaze's embedding collapsed to about one
    direction after 600 s (effective rank 1.03, the trainer's collapse warning), and an MLP probe read the ball's
    (x, y) from it with R² 0.26 at worst, against 0.94 with the term. (The benchmark's "worst R²" is a velocity,
    which no single frame shows.)

    With proprioception (the ball's x, y, vx, vy as 8 features beside the pixel embedding, DINO-WM's recipe):
    without it the pixel embedding alone planned 20-30% of 20 episodes to the goal (BENCHMARKS.md).

    Planning ([plan]): the goal cost on the proprioception features alone, through waypoints on a graph of 1500
    recorded moves. With CEM on 20 episodes (BENCHMARKS.md, 2026-11-23) that reached 100%, against 75% with both
    parts of the embedding weighed equally, whose pixel half ranks distances to the goal poorly at this budget,
    and 75% on the proprioception alone without waypoints, which missed exactly the goals across the U's wall.
    """
    return _replace(wm_tworooms(), data=dict(path="data/pointmaze.h5"), model=dict(history=2, proprio_dim=8),
                    method=dict(vicreg_cov_weight=0.5), train=dict(out="runs/wm-pointmaze"),
                    plan=dict(pixel_weight=0.0, waypoints=1500))  # fmt: skip


@preset
def wm_pusht() -> ExperimentConfig:
    """`wm-tworooms` on PushT episodes, with two frames of history (the block keeps moving after a push).

    Collect the data with the scripted pusher (`jepaworld collect pusht --policy scripted`): random actions move
    the block in 3% of steps, the script in 52% (`benchmarks/pusht_data.py`). Proprioception (the agent's x, y,
    vx, vy as 8 features) as DINO-WM does: the block's pose comes from the pixels alone. On 1000 scripted
    episodes, after 12000 steps (~11 min on 1 thread), an MLP probe read the block's x and y from the embedding
    with R² 0.93 (its angle not: R² -0.32). Planning ([plan]) weighs the pixel features at 0.1 against the
    proprioception's 1: the learned pixel features are a poor distance yet, and weighed equally CEM reached 2 of
    10 goals, where 0.1 did better than both 1 and 0 on 40 goals of a longer-trained model (BENCHMARKS.md).
    """
    return _replace(wm_tworooms(), data=dict(path="data/pusht.h5"), model=dict(history=2, proprio_dim=8),
                    method=dict(vicreg_cov_weight=0.5), train=dict(out="runs/wm-pusht"),
                    plan=dict(pixel_weight=0.1))  # fmt: skip


@preset
def wm_reacher() -> ExperimentConfig:
    """`wm-tworooms` on dm_control reacher episodes, with two frames of history and proprioception (the joints).

    Planning ([plan]) on the proprioception features alone: CEM reached 10/10 goals that way, against 7/10 with
    the pixel features weighed in (BENCHMARKS.md, 2026-11-23).
    """
    return _replace(wm_tworooms(), data=dict(path="data/reacher.h5"), model=dict(history=2, proprio_dim=8),
                    method=dict(vicreg_cov_weight=0.5), train=dict(out="runs/wm-reacher"),
                    plan=dict(pixel_weight=0.0))  # fmt: skip


@preset
def wm_tworooms_micro() -> ExperimentConfig:
    """A seconds-long `wm-tworooms` (smaller embedding, few steps): for tests and smoke checks."""
    return _replace(
        wm_tworooms(),
        data=dict(path="data/tworooms-micro.h5"),
        model=dict(frame_dim=32, pred_dim=32, pred_depth=1, pred_heads=2),
        train=dict(steps=400, lr=2e-3, warmup_steps=10, time_budget_s=0.0, log_every=100, diag_every=400,
                   ckpt_every=400, progress=False, out="runs/wm-tworooms-micro"),
    )  # fmt: skip


def get_preset(name: str) -> ExperimentConfig:
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown preset '{name}'.{hint} `jepaworld presets` lists them all.")
    return PRESETS[name]()


# ----------------------------------------------------------------------------------------------------------
# dotted overrides


def all_keys(cfg: ExperimentConfig) -> dict[str, dataclasses.Field]:
    """Every dotted key (`train.lr`, ...) with its dataclass field."""
    return {
        f"{sec.name}.{f.name}": f for sec in dataclasses.fields(cfg) for f in dataclasses.fields(getattr(cfg, sec.name))
    }


def _field_type(section: Any, name: str) -> Any:
    return typing.get_type_hints(type(section))[name]


def _parse(raw: str, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    try:
        if typ is bool:
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
        if typ is str:
            return raw
        if origin is tuple:
            parts = [p for p in raw.replace("(", "").replace(")", "").split(",") if p.strip()]
            args = typing.get_args(typ)
            if len(parts) != len(args):
                raise ValueError(raw)
            return tuple(_parse(p.strip(), a, key) for p, a in zip(parts, args, strict=True))
        if origin in (typing.Union, types.UnionType):
            raise ValueError(raw)
    except ValueError:
        pass
    else:
        raise ConfigError(f"cannot set {key}: unsupported type {typ}")
    form = {bool: "true or false", int: "a whole number", float: "a number"}.get(typ) or (
        f"{len(typing.get_args(typ))} comma-separated numbers, e.g. 0.15,0.2" if typing.get_origin(typ) is tuple
        else getattr(typ, "__name__", str(typ))
    )  # fmt: skip
    raise ConfigError(f"bad value '{raw}' for {key}: expected {form}")


def apply_overrides(cfg: ExperimentConfig, overrides: dict[str, str]) -> ExperimentConfig:
    """Apply `{"train.lr": "3e-4", ...}` to a config; unknown keys raise ConfigError with suggestions."""
    keys = all_keys(cfg)
    for key, raw in overrides.items():
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join('--' + c for c in close)}?" if close else ""
            raise ConfigError(f"unknown config key '--{key}'.{hint} `jepaworld presets --keys` lists them.")
        sec_name, name = key.split(".")
        section = getattr(cfg, sec_name)
        value = _parse(raw, _field_type(section, name), key)
        cfg = dataclasses.replace(cfg, **{sec_name: dataclasses.replace(section, **{name: value})})
    validate(cfg)
    return cfg


_IMAGES = ("fashion_mnist", "digits", "folder", "npz")
_DATA_OF_METHOD = {"ijepa": _IMAGES, "mae": _IMAGES, "vjepa": ("video",), "videomae": ("video",),
                   "worldmodel": ("episodes",)}  # fmt: skip
_BOUND_TESTS = {"ge": (">=", lambda v, b: v >= b), "gt": (">", lambda v, b: v > b), "le": ("<=", lambda v, b: v <= b),
                "lt": ("<", lambda v, b: v < b)}  # fmt: skip


def _check_bounds(key: str, value: Any, bounds: dict[str, float]) -> None:
    """A number within its field's bounds (NaN is within none); a range pair: both ends, and low <= high."""
    if not bounds:
        return
    ends = value if isinstance(value, tuple) else (value,)
    rule = " and ".join(f"{_BOUND_TESTS[op][0]} {b:g}" for op, b in bounds.items())
    for v in ends:
        if not all(_BOUND_TESTS[op][1](v, b) for op, b in bounds.items()):
            raise ConfigError(f"bad value {v!r} for --{key}: it must be {rule}")
    if len(ends) == 2 and ends[0] > ends[1]:
        raise ConfigError(f"bad range {ends[0]:g},{ends[1]:g} for --{key}: give the low end first")


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Check enumerated values against their field's `choices` and the values that must fit together, so that a
    bad value is a one-line ConfigError before any data is read or any run folder is made; returns `cfg`.

    Only whole configs are checked: overrides apply together, so `--data.img_size 30 --model.patch_size 5` works.
    """
    for key, f in all_keys(cfg).items():
        choices = f.metadata.get("choices")
        sec, name = key.split(".")
        value = getattr(getattr(cfg, sec), name)
        if choices and value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"bad value '{value}' for {key}: choose one of {', '.join(choices)}{hint}")
        _check_bounds(key, value, f.metadata.get("bounds", {}))
    d, m = cfg.data, cfg.model
    if d.name not in (takes := _DATA_OF_METHOD[cfg.method.name]):
        raise ConfigError(f"--data.name {d.name}: method {cfg.method.name} trains on {' | '.join(takes)} data; "
                          f"pick one of those or a preset for {d.name} data (`jepaworld presets`)")  # fmt: skip
    if d.name in ("fashion_mnist", "digits") and d.channels != 1:
        raise ConfigError(f"--data.channels {d.channels}: {d.name} is grayscale, 1 channel; drop the override")
    if d.img_size < 1 or m.patch_size < 1 or d.img_size % m.patch_size:
        fits = [p for p in range(2, d.img_size + 1) if d.img_size % p == 0][:6] if d.img_size > 0 else []
        raise ConfigError(
            f"--model.patch_size {m.patch_size} does not divide --data.img_size {d.img_size} into whole patches; "
            f"use a divisor of the image size ({', '.join(map(str, fits)) or 'none: fix the image size'})"
        )
    if m.pred_dim % m.pred_heads:
        raise ConfigError(f"--model.pred_dim {m.pred_dim} does not split into --model.pred_heads {m.pred_heads}; "
                          "use a number of heads that divides it")  # fmt: skip
    # Only video data has a time axis for tubelets: frames must fill whole tubelets.
    if d.name == "video" and (m.tubelet < 1 or d.frames < m.tubelet or d.frames % m.tubelet):
        lower = d.frames - d.frames % max(m.tubelet, 1)
        ok = " or ".join(str(n) for n in (lower, lower + m.tubelet) if n >= max(m.tubelet, 1)) or str(m.tubelet)
        raise ConfigError(
            f"--data.frames {d.frames} does not fill whole tubelets of --model.tubelet {m.tubelet}; use {ok} frames"
        )
    return cfg


def parse_override_args(args: list[str]) -> dict[str, str]:
    """`['--train.lr', '3e-4', '--data.augment=false']` -> `{'train.lr': '3e-4', 'data.augment': 'false'}`."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument '{arg}': overrides look like --section.key value")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args) or (args[i + 1].startswith("--") and "." in args[i + 1].split("=")[0]):
                raise ConfigError(f"missing value for '{arg}'")
            value = args[i + 1]
            i += 2
        out[key] = value
    return out


# ----------------------------------------------------------------------------------------------------------
# (de)serialisation


def to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(d: dict[str, Any]) -> ExperimentConfig:
    """Rebuild a config saved by `to_dict`; unknown keys raise ConfigError (no silent drops)."""
    unknown_sections = set(d) - {sec.name for sec in dataclasses.fields(ExperimentConfig)}
    if unknown_sections:
        raise ConfigError(f"saved config has unknown sections {sorted(unknown_sections)}")
    sections = {}
    for sec in dataclasses.fields(ExperimentConfig):
        cls = sec.default_factory  # type: ignore[misc]
        raw = dict(d.get(sec.name, {}))
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(raw) - set(known)
        if unknown:
            raise ConfigError(f"saved config has unknown keys {sorted(unknown)} in [{sec.name}]")
        for name, value in raw.items():
            if isinstance(value, list):
                raw[name] = tuple(value)
        sections[sec.name] = cls(**raw)
    return validate(ExperimentConfig(**sections))


def to_json(cfg: ExperimentConfig) -> str:
    return json.dumps(to_dict(cfg), indent=2)


def describe(cfg: ExperimentConfig) -> str:
    """A readable `[section] key = value` listing of the resolved config."""
    lines = []
    for sec in dataclasses.fields(cfg):
        lines.append(f"[{sec.name}]")
        section = getattr(cfg, sec.name)
        for f in dataclasses.fields(section):
            lines.append(f"  {f.name} = {getattr(section, f.name)!r}")
    return "\n".join(lines)
