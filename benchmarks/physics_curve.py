"""Surprise accuracy along one training run: every kept checkpoint of a V-JEPA run scored on held-out suites.

    jepaworld pretrain --preset vjepa-physics --train.steps 12313 --train.time_budget_s 0 --train.log_every 615 \
        --train.diag_every 1231 --train.ckpt_every 1000 --train.keep_every 1000 --train.device cpu \
        --train.threads 2 --train.progress false --train.out runs/curve-12313
    OMP_NUM_THREADS=1 python benchmarks/physics_curve.py runs/curve-12313 --suite data/physics-s3 \
        --suite data/physics-s4 --json benchmarks/results/physics-cpu/curve-12313-on-seed3-seed4.json

Does a longer schedule lose pairwise accuracy because the model trains longer (it would lose it along the way
too) or because of where the schedule ends (the learning rate, weight decay and EMA reach their end values only
at the last step)? The kept checkpoints (`checkpoint-STEP.pt`, `--train.keep_every`) are the states of one run
on its own schedule, so the curve answers the first; a shorter run's final checkpoint answers the second.

The protocol is `jepaworld physics eval`'s (windows of the checkpoint's clip length, stride 2, the first half as
context, one thread), without the baselines: every checkpoint of a suite is scored in one pass, so each video
is decoded once. Prints a table per suite; `--json` keeps every property's scores per step.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from jepaworld.checkpoint import CHECKPOINT, kept_checkpoints, read_checkpoint
from jepaworld.physics_eval import OVERALL, evaluate
from jepaworld.surprise import load_scorer


def states(run: Path) -> dict[int, Path]:
    """{step: path} of the run's kept states and its final `checkpoint.pt`, by step."""
    found = kept_checkpoints(run)
    if not found:
        raise SystemExit(f"{run}: no checkpoint-STEP.pt files; train it with --train.keep_every N")
    final = run / CHECKPOINT  # the last step is kept only when --train.keep_every divides it
    found.setdefault(read_checkpoint(final)["step"], final)
    return dict(sorted(found.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="run folder trained with --train.keep_every")
    p.add_argument("--suite", action="append", required=True, help="held-out suite folder (repeatable)")
    p.add_argument("--stride", type=int, default=2)
    p.add_argument("--json", type=Path, help="write every property's scores per step here")
    args = p.parse_args()

    scorers = {str(step): load_scorer(path, device="cpu") for step, path in states(args.run).items()}
    results = {}
    for suite in args.suite:
        res = evaluate(scorers, suite, stride=args.stride, progress=True)
        results[suite] = {step: {prop: asdict(s) for prop, s in props.items()} for step, props in res.items()}
        print(f"\n{suite}: overall pairwise (max / mean / max after divergence), relative (mean), float (mean / max)")
        print("| steps | pairwise max | pairwise mean | pairwise event | relative mean | float mean / max |")
        print("|---|---|---|---|---|---|")
        for step, props in res.items():
            o, fl = props[OVERALL], props["gravity"].variants.get("float", {}) if "gravity" in props else {}
            print(f"| {step} | {o.pairwise_max:.0%} | {o.pairwise_mean:.0%} | {o.pairwise_event:.0%} | "
                  f"{o.relative_mean:.0%} | {fl.get('pairwise_mean', float('nan')):.0%} / "
                  f"{fl.get('pairwise_max', float('nan')):.0%} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run), "stride": args.stride, "results": results}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
