"""I-JEPA vs MAE vs raw pixels vs random init on Fashion-MNIST at an equal wall-clock budget, plus a collapse study.

Every method trains for the same wall time on this machine (step times are calibrated round-robin, then each
trains for a fixed number of steps, see `jepaworld.compare`). Frozen features then go through the linear, kNN
(k=20) and 10-shot probes on the 10k test set, for each pooling given. The collapse study trains I-JEPA with an
online target and no regulariser, with VICReg and with SIGReg, and the EMA default plus VICReg (C-JEPA), at the
same budget.

    python benchmarks/ijepa_vs_mae.py --minutes 10 [--pools mean,grid2] [--no-collapse] [--seed 0]
    python benchmarks/ijepa_vs_mae.py --minutes 30 --rows "I-JEPA EMA + VICReg,MAE"   # chosen rows only

Writes benchmarks/results/fmnist-<minutes>min/ and the `fmnist-<minutes>min` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import torch
from _sections import update_section  # benchmarks/ is on sys.path when a script runs

from jepaworld.compare import report, train_equal_budget
from jepaworld.config import apply_overrides, get_preset
from jepaworld.probe import format_table

ROOT = Path(__file__).resolve().parents[1]
MAIN = {"I-JEPA": "ijepa-fmnist", "MAE": "mae-fmnist"}
COLLAPSE = {"I-JEPA no EMA, no reg": "ijepa-fmnist-noema", "I-JEPA + VICReg": "ijepa-fmnist-vicreg",
            "I-JEPA EMA + VICReg": "ijepa-fmnist-ema-vicreg", "I-JEPA + SIGReg": "ijepa-fmnist-sigreg"}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="wall-clock pretraining budget per method")
    p.add_argument("--pools", default="mean,grid2", help="probe poolings, comma-separated (see probe.POOLS)")
    p.add_argument("--no-collapse", action="store_true", help="skip the collapse-study rows")
    p.add_argument("--rows", default="", help=f"train only these rows, comma-separated: {', '.join(MAIN | COLLAPSE)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train", type=int, default=0, help="labelled images for linear/kNN probes (0 = all 60k)")
    p.add_argument("--max-iter", type=int, default=1000, help="L-BFGS iterations of each logistic regression")
    p.add_argument("--probe-only", action="store_true", help="re-probe the run folders of an earlier run")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = ROOT / "benchmarks" / "results" / f"fmnist-{args.minutes:g}min"
    presets = MAIN if args.no_collapse else MAIN | COLLAPSE
    if args.rows:
        unknown = [r for r in args.rows.split(",") if r not in MAIN | COLLAPSE]
        if unknown:
            p.error(f"unknown rows {unknown}; choose from {', '.join(MAIN | COLLAPSE)}")
        presets = {r: (MAIN | COLLAPSE)[r] for r in args.rows.split(",")}
    overrides = {"train.seed": str(args.seed), "train.progress": "false", "train.threads": str(args.threads)}
    cfgs = {name: apply_overrides(get_preset(preset), overrides) for name, preset in presets.items()}
    t0, load = time.time(), os.getloadavg()[0]
    if args.probe_only:
        runs = {name: out / name.replace(" ", "-").replace("/", "-") for name in cfgs}
    else:
        runs = train_equal_budget(cfgs, seconds=60 * args.minutes, out=out)
    train_wall = time.time() - t0
    first = next(iter(cfgs.values()))  # its data and probe settings are shared by every row
    first = dataclasses.replace(first, probe=dataclasses.replace(first.probe, max_train=args.max_train,
                                                                  max_iter=args.max_iter))  # fmt: skip
    sections = []
    for pool, results in report(runs, first, first.probe, out, pools=args.pools.split(",")).items():
        table = format_table(results, shots=first.probe.shots, knn_k=first.probe.knn_k)
        sections.append(f"Pooling `{pool}`:\n\n{table}")
        print(sections[-1], flush=True)
    cmd = (f"python benchmarks/ijepa_vs_mae.py --minutes {args.minutes:g} --pools {args.pools} --seed {args.seed} "
           f"--max-train {args.max_train} --max-iter {args.max_iter} --threads {args.threads}")  # fmt: skip
    labels = f"{args.max_train // 1000}k" if args.max_train else "60k"
    trained = ("the runs of an earlier invocation were re-probed (--probe-only)" if args.probe_only else
               f"the whole training part took {train_wall / 60:.0f} min of real time on this machine")  # fmt: skip
    body = f"""## Fashion-MNIST: I-JEPA vs MAE at {args.minutes:g} minutes per method

- command: `{cmd}{" --no-collapse" if args.no_collapse else ""}{f' --rows "{args.rows}"' if args.rows else ""}`
- seed {args.seed}; {platform.machine()}, {args.threads} threads, torch {torch.__version__};
  {time.strftime("%Y-%m-%d %H:%M")}; load average {load:.1f} at the start (2 cores: above 1 another process shared them)
- all rows train for the same calibrated wall time ({args.minutes:g} min at the measured step time); {trained}
- probes on frozen features: logistic regression on standardised features ({labels} labels, {args.max_iter}
  L-BFGS iterations), cosine kNN (k=20, same labels),
  10-shot logistic regression (mean ± std over 5 seeds); test set 10k. `rank` is the final effective rank
  (RankMe) of the mean-pooled eval-encoder features.

{(chr(10) * 2).join(sections)}
"""
    section = f"fmnist-{args.minutes:g}min"  # one section per budget, so the 10- and 30-minute tables coexist
    update_section(section, body)
    print(f"wrote BENCHMARKS.md section '{section}' and {out}")


if __name__ == "__main__":
    main()
