"""Do a video model's frozen features say where a body is and how it moves? A linear probe per checkpoint.

    python benchmarks/physics_probe.py runs/bench-physics-s3/vjepa runs/bench-physics-s3/videomae

The surprise of V-JEPA scores no better than copying its own features forward (`physics eval --nothing-moves`),
so its predictor extrapolates no motion. This asks whether the motion is in the features at all. Scenes with a
single body and no occluder are drawn from the physics generator (`--seed`, disjoint from the training and test
suites of seeds 0-3), rendered at 64 px and resized to the checkpoint's 32 px as training was. Each 8-frame clip
is encoded by each checkpoint's evaluation encoder (V-JEPA: its EMA target encoder; VideoMAE: its encoder), and
a ridge regression (regularisation chosen by cross-validation on the training scenes) reads, from the tokens of
the clip's last two time slots, the body's position and velocity at the clip's last frame. Also probed: a
random-init copy of the first checkpoint's architecture, and the raw pixels of the same frames. Reported: R^2 on
held-out scenes (1 is perfect, 0 is no better than the mean).

Motion that a linear probe cannot read may still be there for a nonlinear predictor, so a low R^2 is a hint about
how the features hold motion, not a proof that they lack it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from jepaworld import physics
from jepaworld.surprise import Scorer, load_scorer, random_scorer

TARGETS = ("x", "y", "vx", "vy")


def single_body_clips(*, seed: int, scenes: int, size: int, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, frames, size, size, 3) uint8 clips, (N, 4) x, y, vx, vy at each clip's last frame, (N,) scene ids."""
    clips, labels, owners = [], [], []
    i = 0
    while len(set(owners)) < scenes:
        scene = physics.make_scene(physics.scene_seed(seed, "train", i))
        i += 1
        if len(scene.radius) != 1 or scene.occluder is not None:
            continue
        video, trace = physics._simulate(scene, frames=32, size=64)  # the suite's render, then its resize
        bilinear = Image.Resampling.BILINEAR
        small = np.stack([np.asarray(Image.fromarray(f).resize((size, size), bilinear)) for f in video])
        for start in range(0, len(small) - frames + 1, frames):
            last = start + frames - 1
            clips.append(small[start : start + frames])
            labels.append([*trace.pos[last, 0], *trace.vel[last, 0]])
            owners.append(i)
    return np.stack(clips), np.asarray(labels), np.asarray(owners)


@torch.inference_mode()
def features(scorer: Scorer, clips: np.ndarray) -> np.ndarray:
    """(N, 2 * h * w * D): the evaluation encoder's tokens of the last two time slots, layer-normed."""
    t, h, w = scorer.grid
    out = []
    for i in range(0, len(clips), 64):
        x = torch.from_numpy(clips[i : i + 64]).permute(0, 4, 1, 2, 3).float().div_(255.0)  # (B, 3, T, S, S)
        z = scorer.method.eval_encoder(x.to(scorer.device))  # (B, t * h * w, D)
        z = torch.nn.functional.layer_norm(z, z.shape[-1:])
        out.append(z[:, (t - 2) * h * w :].flatten(1).float().cpu().numpy())
    return np.concatenate(out)


def probe(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> dict[str, float]:
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 5, 13)))
    model.fit(x[train], y[train])
    pred = model.predict(x[~train])
    return {k: float(r2_score(y[~train, j], pred[:, j])) for j, k in enumerate(TARGETS)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", help="video checkpoints (run folders or .pt) of the same clip size")
    p.add_argument("--scenes", type=int, default=480, help="single-body scenes (default 480; a quarter held out)")
    p.add_argument("--seed", type=int, default=7, help="suite seed the scenes are drawn from (default 7)")
    p.add_argument("--json", default="", help="also write the R^2 table here")
    args = p.parse_args()
    torch.set_num_threads(2)
    scorers = {path: load_scorer(path, device="cpu") for path in args.checkpoints}
    first = next(iter(scorers.values()))
    scorers["random init"] = random_scorer(first)
    clips, y, owners = single_body_clips(seed=args.seed, scenes=args.scenes, size=first.img_size, frames=first.frames)
    held_out = np.unique(owners)[: args.scenes // 4]
    train = ~np.isin(owners, held_out)
    results = {name: probe(features(s, clips), y, train) for name, s in scorers.items()}
    last_two = clips[:, -2 * first.tubelet :].reshape(len(clips), -1).astype(np.float32) / 255.0
    results["raw pixels"] = probe(last_two, y, train)
    print(f"{len(clips)} clips of {args.scenes} single-body scenes (seed {args.seed}), {int((~train).sum())} held out")
    print("| features | " + " | ".join(f"R^2 {k}" for k in TARGETS) + " |")
    print("|---|" + "---|" * len(TARGETS))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r[k]:.2f}" for k in TARGETS) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
