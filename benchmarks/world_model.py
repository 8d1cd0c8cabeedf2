"""Benchmark: JEPA world models planning in their environments, at a stated CPU training budget.

For each environment: collect random-policy episodes, pretrain the `wm-<env>` preset for ``--train-seconds`` of
CPU time, then plan seeded episodes with CEM, MPPI and the gradient planner (plus random actions as the floor).
On TwoRooms it also runs the guardrail demonstration: fixed start/goal pairs whose straight path crosses a keep-out
disc, planned with the plain goal cost and with goal cost + KeepOut (through the latent->state probe).

Writes the section between ``<!-- worldmodel:start -->`` and ``<!-- worldmodel:end -->`` of BENCHMARKS.md.

    python benchmarks/world_model.py --envs tworooms --episodes 20 --train-seconds 300
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _sections import update_section  # benchmarks/ is on sys.path when a script runs

from jepaworld.config import apply_overrides, get_preset
from jepaworld.data.episodes import collect
from jepaworld.plan_eval import (
    default_planner,
    env_name,
    evaluate,
    load_world_model,
    parse_keep_out,
    random_baseline,
)  # fmt: skip
from jepaworld.state_probe import probe_for
from jepaworld.train import train

PRESET = {"two_rooms": "wm-tworooms", "pointmaze": "wm-pointmaze", "pusht": "wm-pusht", "reacher": "wm-reacher"}
ZONE = "0.3,0.5,0.08"  # a keep-out disc on the straight line from the left room to the door


def train_model(env: str, args: argparse.Namespace, root: Path) -> tuple[Path, Path]:
    data = root / f"{env}.h5"
    t0 = time.perf_counter()
    collect(env, episodes=args.data_episodes, steps_per_episode=args.steps, out=data, seed=args.seed)
    print(f"[{env}] collected {args.data_episodes} × {args.steps} steps in {time.perf_counter() - t0:.0f}s", flush=True)
    run = root / f"run-{env}"
    if not (run / "checkpoint.pt").exists() or not args.reuse:
        cfg = apply_overrides(get_preset(PRESET[env]), {
            "data.path": str(data), "train.out": str(run), "train.progress": "false",
            "train.time_budget_s": str(args.train_seconds), "train.seed": str(args.seed),
        })  # fmt: skip
        train(cfg)
    return data, run


def keep_out_demo(model, probe, repeat: int, args: argparse.Namespace, out: Path) -> list[str]:
    ys = np.linspace(0.44, 0.56, args.demo_episodes)
    starts = [np.array([0.12, y], np.float32) for y in ys]
    goals = [np.array([0.85, y], np.float32) for y in ys[::-1]]
    zone = parse_keep_out(ZONE, position_fn=None, weight=1.0, margin=0.0)
    rows = []
    for label, zones in (("goal cost only", []), ("goal + keep-out", [ZONE])):
        keep_outs = [parse_keep_out(z, position_fn=None, weight=100.0, margin=0.03) for z in zones]
        # Violations are counted against the zone in both runs; only the guarded run plans with it.
        _, summary = evaluate(model, probe, env="two_rooms", planner=default_planner("cem"), episodes=len(starts),
                              horizon=args.horizon, seed=args.seed + 5000, repeat=repeat, keep_outs=keep_outs,
                              watch=[zone], starts=starts, goals=goals, out=out / label.replace(" ", "_"))  # fmt: skip
        rows.append(f"| {label} | {summary['episodes']} | {summary['success_rate']:.0%} | "
                    f"{summary['episodes_with_violations']} | {summary['violations']} |")  # fmt: skip
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--envs", default="tworooms", help="comma-separated: tworooms,pointmaze,pusht,reacher")
    p.add_argument("--planners", default="cem,mppi,gradient")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--train-seconds", type=float, default=300.0)
    p.add_argument("--data-episodes", type=int, default=1000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--demo-episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="runs/bench-wm")
    p.add_argument("--reuse", action="store_true", help="reuse trained checkpoints found under --root")
    p.add_argument("--markdown", default="BENCHMARKS.md")
    args = p.parse_args()
    torch.set_num_threads(1)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    lines = []
    for env in [env_name(e) for e in args.envs.split(",")]:
        data, run = train_model(env, args, root)
        model, cfg, state = load_world_model(run)
        seconds = float(state["elapsed"])
        probe, metrics = probe_for(model, run_dir=run, data_path=data, step=int(state["step"]))
        lines.append(f"\n**{env}** — preset `{PRESET[env]}` (lr {cfg.train.lr:g}, batch {cfg.train.batch_size}), "
                     f"{state['step']} steps in {seconds:.0f} s of training on 1 thread, "
                     f"frameskip {cfg.data.frame_step}, horizon {args.horizon} macro-steps; probe held-out RMSE "
                     f"{metrics['probe/rmse']:.3f}\n")  # fmt: skip
        lines.append("| planner | episodes | success | mean steps | plan s / decision | plan s / env step | "
                     "final dist |")  # fmt: skip
        lines.append("|---|---|---|---|---|---|---|")
        for name in args.planners.split(","):
            _, s = evaluate(model, probe, env=env, planner=default_planner(name), episodes=args.episodes,
                            horizon=args.horizon, seed=args.seed + 1000, repeat=cfg.data.frame_step)  # fmt: skip
            lines.append(_row(name, s))
            print(lines[-1], flush=True)
        lines.append(_row("random actions", random_baseline(env, episodes=args.episodes, seed=args.seed + 1000)))
        if env == "two_rooms":
            lines.append(f"\nGuardrail demonstration (CEM): start (0.12, y), goal (0.85, y') through the door, "
                         f"keep-out disc x,y,r = {ZONE}; violations are true visited states inside the disc "
                         f"(PNGs in {root}/keep-out-demo).\n")  # fmt: skip
            lines.append("| cost | episodes | success | episodes that entered the zone | states inside |")
            lines.append("|---|---|---|---|---|")
            lines.extend(keep_out_demo(model, probe, cfg.data.frame_step, args, root / "keep-out-demo"))
            print("\n".join(lines[-4:]), flush=True)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    header = [
        "## World models: planning in the environment",
        "",
        f"`{command}` — seed {args.seed}, {dt.date.today().isoformat()}, {platform.machine()} "
        f"{os.cpu_count()} CPU cores shared with other jobs (load average {load:.1f} at start), torch "
        f"{torch.__version__}, 1 thread. Planning time is wall time per decision (one plan of H held actions) and "
        "per environment step (each plan serves frame_step steps). Success: the env's own criterion.",
    ]
    path = Path(args.markdown)
    update_section("worldmodel", "\n".join([*header, *lines]), path)
    print(f"written: {path}")
    return 0


def _row(name: str, s: dict) -> str:
    def num(x, fmt):
        return "-" if x != x else format(x, fmt)

    return (f"| {name} | {s['episodes']} | {s['success_rate']:.0%} | {num(s['mean_steps_to_success'], '.1f')} | "
            f"{num(s['plan_seconds_per_decision'], '.3f')} | {num(s['plan_seconds_per_step'], '.3f')} | "
            f"{s['mean_final_distance']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
