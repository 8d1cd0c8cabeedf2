"""Train and export the default surprise checkpoint shipped as `jepaworld/assets/vjepa_physics.pt`.

    python benchmarks/make_default_physics_checkpoint.py   # seed 0, the preset's 6000 steps: 29 min on 1 thread

It runs `jepaworld pretrain --preset vjepa-physics --train.time_budget_s 0 --train.seed 0 --train.threads 1` on the
default suite (`jepaworld physics generate --out data/physics`, suite seed 0; generated if missing), then keeps only
the config and the weights in float16 (no optimiser state), which loads like any checkpoint. A fixed step count, not
a time budget, keeps the result independent of the machine's speed, and one thread keeps the order of the CPU's
sums, so that the command gives back the shipped weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jepaworld.checkpoint import CHECKPOINT, atomic_save, read_checkpoint, training_diff
from jepaworld.config import apply_overrides, get_preset
from jepaworld.train import train

ASSET = Path(__file__).resolve().parents[1] / "jepaworld" / "assets" / "vjepa_physics.pt"


def export(src: Path, dst: Path) -> Path:
    """Strip a run's checkpoint to config + float16 weights."""
    state = read_checkpoint(src)
    slim = {
        "format": state["format"],
        "config": state["config"],
        "spec": state["spec"],
        "method": {k: v.half() if v.is_floating_point() else v for k, v in state["method"].items()},
        "step": state["step"],
        "elapsed": state["elapsed"],
    }
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(slim, dst)
    return dst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=get_preset("vjepa-physics").train.steps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--suite", default="data/physics", help="physics suite (generated with seed 0 if missing)")
    p.add_argument("--run", default="runs/default-physics", help="run folder of the training")
    p.add_argument("--out", default=str(ASSET))
    args = p.parse_args()
    overrides = {
        "train.steps": str(args.steps), "train.time_budget_s": "0", "train.seed": str(args.seed),
        "train.out": args.run, "train.progress": "false", "data.path": args.suite, "train.threads": "1",
    }  # fmt: skip
    cfg = apply_overrides(get_preset("vjepa-physics"), overrides)
    run, index = Path(args.run) / CHECKPOINT, Path(args.suite) / "index.json"
    if run.exists() and index.exists() and run.stat().st_mtime < index.stat().st_mtime:
        raise SystemExit(f"{args.run} is older than {index} (the suite was regenerated); delete {args.run}")
    if not run.exists():
        train(cfg)
    elif diff := training_diff(read_checkpoint(run)["config"], cfg):  # an earlier run must be the one this makes
        raise SystemExit(f"{args.run} holds a run with another config (differs in {', '.join(diff)}); delete it or "
                         "pass another --run")  # fmt: skip
    out = export(run, Path(args.out))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
