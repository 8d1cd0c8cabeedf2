"""Intuitive-physics benchmark: V-JEPA vs a VideoMAE pixel baseline vs random init, at one CPU training budget.

    python benchmarks/physics_surprise.py                  # 15 min of training each, then the evaluation
    python benchmarks/physics_surprise.py --minutes 8      # what fits a shared 2-core machine

Both methods pretrain on the possible videos of the default suite (`jepaworld physics generate --out data/physics`,
suite seed 0; generated if missing) for the same wall-clock budget (`--train.time_budget_s`), with the presets
`vjepa-physics` and `videomae-physics` and training seed `--seed`. They are then scored, with a random-init copy of
the V-JEPA architecture, on the suite's held-out test pairs (scene seeds disjoint from training) by
`jepaworld.physics_eval`, and the table replaces the `physics` section of BENCHMARKS.md. Run folders that already
hold a checkpoint are reused, so an interrupted run re-evaluates without retraining.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from _sections import update_section  # benchmarks/ is on sys.path when a script runs

from jepaworld.checkpoint import CHECKPOINT, read_checkpoint
from jepaworld.config import apply_overrides, get_preset
from jepaworld.physics import generate_suite
from jepaworld.physics_eval import evaluate, format_table, to_json
from jepaworld.surprise import load_scorer, random_scorer
from jepaworld.train import train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=15.0, help="training wall time for each method")
    p.add_argument("--seed", type=int, default=0, help="training seed (weights, data order, masks)")
    p.add_argument("--suite", default="data/physics", help="suite folder (default suite generated if missing)")
    p.add_argument("--out", default="runs/bench-physics", help="folder for the two runs and results.json")
    p.add_argument("--stride", type=int, default=2, help="surprise window stride in frames")
    p.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"), help="file whose physics section is replaced")
    args = p.parse_args()

    suite, out = Path(args.suite), Path(args.out)
    if not (suite / "index.json").exists():
        generate_suite(suite, seed=0)
    load_start = os.getloadavg()
    runs = {}
    for name, preset in (("vjepa", "vjepa-physics"), ("videomae", "videomae-physics")):
        run = out / name
        overrides = {
            "data.path": str(suite), "train.out": str(run), "train.seed": str(args.seed),
            "train.time_budget_s": str(60 * args.minutes), "train.steps": "100000", "train.progress": "false",
        }  # fmt: skip
        if not (run / CHECKPOINT).exists():
            print(f"== training {preset} for {args.minutes:g} min", flush=True)
            train(apply_overrides(get_preset(preset), overrides))
        state = read_checkpoint(run)
        runs[name] = {"preset": preset, "steps": state["step"], "seconds": round(state["elapsed"])}

    vjepa = load_scorer(out / "vjepa")
    scorers = {
        "V-JEPA": vjepa,
        "VideoMAE (pixels)": load_scorer(out / "videomae"),
        "random init (V-JEPA arch.)": random_scorer(vjepa, seed=0),
    }
    t0 = time.perf_counter()
    results = evaluate(scorers, suite, stride=args.stride)
    eval_s = time.perf_counter() - t0
    table = format_table(results)
    print(table)
    (out / "results.json").write_text(json.dumps({"runs": runs, "results": to_json(results)}, indent=2))

    index = json.loads((suite / "index.json").read_text())
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    cmd = f"python benchmarks/physics_surprise.py --minutes {args.minutes:g} --seed {args.seed}"
    trained = "; ".join(f"{r['preset']}: {r['steps']} steps in {r['seconds']} s" for r in runs.values())
    body = f"""## Intuitive physics: surprise of V-JEPA vs a pixel baseline vs random init

Command: `{cmd}` ({date}; {machine}; load average {load_start[0]:.1f} at the start: the cores were shared).

Training: each method trained for the same wall-clock budget of {args.minutes:g} min on the {index["args"]["n_train"]}
possible videos of the default suite (`jepaworld physics generate --out data/physics`, suite seed 0), training
seed {args.seed}. {trained}. Held-out test: {len(index["videos"]) - index["args"]["n_train"]} videos,
{index["args"]["n_pairs_per_property"]} pairs per property, scenes disjoint from training. Surprise windows of 8
frames, stride {args.stride}, first 4 frames as context; a video's score is the max (or mean) over its windows.
Evaluation took {eval_s:.0f} s.

{table}

Pairwise: the share of pairs whose impossible video scores higher than its possible twin (ties count half). AUROC:
over all test videos of a property, impossible = 1. "overall" excludes the colour control, which a representation
may rightly ignore. Targets from the issue: V-JEPA >= 95% pairwise overall, random init about 50%, V-JEPA clearly
above the pixel baseline.
"""
    update_section("physics", body, Path(args.markdown))
    print(f"updated the physics section of {args.markdown}")


if __name__ == "__main__":
    main()
