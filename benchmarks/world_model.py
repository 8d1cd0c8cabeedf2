"""Benchmark: JEPA world models planning in their environments, at a stated CPU training budget.

For each environment: collect random-policy episodes (PushT: the scripted pusher), pretrain the `wm-<env>` preset
for ``--train-seconds`` of CPU time, then plan seeded episodes with CEM, MPPI and the gradient planner (plus random
actions as the floor).
On TwoRooms it also:

- plans the same episodes with the env's true dynamics (``TwoRooms.simulate``) as the model: the ceiling that the
  planner and goal cost allow, which separates planner failures from world-model failures;
- measures the model itself: how well the latent goal cost ranks true distances to the goal (Spearman, globally
  and within 0.3 of the goal), and the error of one predicted macro-step read out by the latent->state probe, for
  free moves and for moves the wall blocks;
- with ``--ablate-cov W``, trains a second model with ``method.vicreg_cov_weight = W`` (the preset before issue
  4 used 0.5) for the same budget, and compares goal-cost reductions ("last", "sum", "min") with CEM;
- runs the guardrail demonstration: fixed start/goal pairs whose straight path crosses a keep-out disc, planned
  with the plain goal cost and with goal cost + KeepOut (through the latent->state probe).

Each environment gets its own section of BENCHMARKS.md (``<!-- worldmodel-<env>:start -->`` .. ``:end``), so
running one environment leaves the others' results in place.

    python benchmarks/world_model.py --envs tworooms --episodes 100 --train-seconds 900 --ablate-cov 0.5
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
from jepaworld.envs import TwoRooms
from jepaworld.plan_eval import (
    default_planner,
    env_name,
    evaluate,
    goal_part_weights,
    load_world_model,
    parse_keep_out,
    policy_baseline,
    random_baseline,
    to_tensor,
    true_dynamics_baseline,
    waypoints_from_data,
)  # fmt: skip
from jepaworld.state_probe import probe_for
from jepaworld.train import train

PRESET = {"two_rooms": "wm-tworooms", "pointmaze": "wm-pointmaze", "pusht": "wm-pusht", "reacher": "wm-reacher"}
POLICY = {"pusht": "scripted"}  # exploration policy of `collect` (default random): random actions rarely push the T
WAYPOINTS = 1500  # recorded moves in the waypoint graph (`plan eval --waypoints`)
ZONE = "0.3,0.5,0.08"  # a keep-out disc on the straight line from the left room to the door


def train_model(env: str, args: argparse.Namespace, root: Path, *, name: str = "", overrides=None) -> tuple[Path, Path]:
    data, run = root / f"{env}.h5", root / f"run-{env}{name}"
    if run.exists() and any(run.iterdir()) and not args.reuse:
        sys.exit(f"{run}: already holds a run; pass --reuse to evaluate it again, or choose another --root")
    t0 = time.perf_counter()
    policy = POLICY.get(env, "random")
    collect(env, episodes=args.data_episodes, steps_per_episode=args.steps, out=data, seed=args.seed, policy=policy)
    print(f"[{env}] collected {args.data_episodes} × {args.steps} steps ({policy} policy) in "
          f"{time.perf_counter() - t0:.0f}s", flush=True)  # fmt: skip
    if not (run / "checkpoint.pt").exists():
        cfg = apply_overrides(get_preset(PRESET[env]), {
            "data.path": str(data), "train.out": str(run), "train.progress": "false",
            "train.time_budget_s": str(args.train_seconds), "train.seed": str(args.seed), **(overrides or {}),
        })  # fmt: skip
        train(cfg)
    return data, run


def _ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x)).astype(np.float64)  # continuous distances: ties do not occur


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


@torch.no_grad()
def model_diagnostics(model, probe, repeat: int, *, seed: int, samples: int = 600) -> dict[str, float]:
    """TwoRooms only: is the latent goal cost a usable distance, and does one predicted macro-step hit the wall?

    - Rank correlation between the latent L2 cost and the true distance to a goal, over a grid of free positions
      and 30 goals, for all positions and for positions within 0.3 of the goal (what fine steering relies on).
    - One macro-step (an action held `repeat` steps) from random free states, half of them near the wall: the
      probe's readout of the predicted embedding against the true next position, for free and wall-blocked moves.
    """
    env, rng = TwoRooms(), np.random.default_rng(seed)
    grid = np.linspace(0.05, 0.95, 19)
    points = np.array([(x, y) for x in grid for y in grid
                       if not (env._x_lo < x < env._x_hi and not env._door_lo <= y <= env._door_hi)])  # fmt: skip
    # TwoRooms' proprioception is its state, the agent's (x, y).
    z = model.encode(
        torch.cat([to_tensor(env.render(p), model) for p in points]),
        torch.tensor(points, dtype=torch.float32) if model.proprio_dim else None,
    )  # (P, D)
    glob, local = [], []
    for g in rng.choice(len(points), 30, replace=False):
        cost = (z - z[g]).pow(2).mean(1).numpy()
        distance = np.hypot(*(points - points[g]).T)
        near = distance < 0.3
        glob.append(_spearman(cost, distance))
        local.append(_spearman(cost[near], distance[near]))
    errors: dict[str, list[float]] = {"free": [], "blocked": []}
    while len(errors["free"]) + len(errors["blocked"]) < samples:
        start = np.array([rng.uniform(0.3, 0.7) if rng.random() < 0.5 else rng.uniform(env._lo, env._hi),
                          rng.uniform(env._lo, env._hi)])  # fmt: skip
        if env._x_lo < start[0] < env._x_hi and not env._door_lo <= start[1] <= env._door_hi:
            continue  # inside the wall
        action = rng.uniform(-1.0, 1.0, 2)
        end = env.simulate(start, np.tile(action, (1, repeat, 1)))[0, -1]
        unobstructed = np.clip(start + repeat * env.max_step * action, env._lo, env._hi)
        z0 = model.encode(
            to_tensor(env.render(start), model),
            torch.tensor(start, dtype=torch.float32)[None] if model.proprio_dim else None,
        )
        predicted = probe(model.rollout(z0, torch.tensor(np.tile(action, repeat), dtype=torch.float32)[None, None]))
        key = "blocked" if np.hypot(*(unobstructed - end)) > 0.02 else "free"
        errors[key].append(float(np.hypot(*(predicted[0, 0].numpy() - end))))
    return {"spearman": float(np.mean(glob)), "spearman_local": float(np.mean(local)),
            "error_free": float(np.mean(errors["free"])), "error_blocked": float(np.mean(errors["blocked"])),
            "n_free": len(errors["free"]), "n_blocked": len(errors["blocked"])}  # fmt: skip


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


def _r2(metrics: dict) -> str:
    """The probe's held-out R² per state dimension (probes saved before it was recorded have only the worst)."""
    if "probe/r2" in metrics:
        return "[" + ", ".join(f"{v:.2f}" for v in metrics["probe/r2"]) + "]"
    return f"(worst {metrics['probe/r2_min']:.2f})"


def _model_lines(env: str, run: Path, data: Path, args: argparse.Namespace, label: str):
    model, cfg, state = load_world_model(run)
    probe, metrics = probe_for(model, run_dir=run, data_path=data, step=int(state["step"]))
    lines = [f"\n**{env}, {label}** — preset `{PRESET[env]}` (lr {cfg.train.lr:g}, batch {cfg.train.batch_size}, "
             f"VICReg cov weight {cfg.method.vicreg_cov_weight:g}, history {cfg.model.history}, proprioception "
             f"features {cfg.model.proprio_dim}), {state['step']} steps in "
             f"{float(state['elapsed']):.0f} s of training on 1 thread, frameskip {cfg.data.frame_step}, horizon "
             f"{args.horizon} macro-steps; probe held-out RMSE {metrics['probe/rmse']:.3f}, R² per state dimension "
             f"{_r2(metrics)}"]  # fmt: skip
    if env == "two_rooms":
        d = model_diagnostics(model, probe, cfg.data.frame_step, seed=args.seed + 123)
        lines[-1] += (f"; latent goal cost vs true distance: Spearman {d['spearman']:.2f} (within 0.3 of the goal "
                      f"{d['spearman_local']:.2f}); one predicted macro-step, probe readout error: free moves "
                      f"{d['error_free']:.3f} (n={d['n_free']}), wall-blocked moves {d['error_blocked']:.3f} "
                      f"(n={d['n_blocked']})")  # fmt: skip
    lines[-1] += "\n"
    print(lines[-1], flush=True)
    return model, cfg, probe, lines


HEAD = ["| planner | model | goal cost | episodes | success | mean steps | plan s / decision | plan s / env step | "
        "final dist |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip


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
    p.add_argument(
        "--ablate-cov",
        type=float,
        default=None,
        help="TwoRooms: also train with this VICReg covariance weight and compare goal-cost reductions",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="runs/bench-wm")
    p.add_argument("--reuse", action="store_true", help="reuse trained checkpoints found under --root")
    p.add_argument("--note", default="", help="how the machine was shared during the run, for the header")
    p.add_argument("--markdown", default="BENCHMARKS.md")
    args = p.parse_args()
    torch.set_num_threads(1)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    eval_seed = args.seed + 1000
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    meta = (
        f"`{command}` — seed {args.seed} (data seeds from {args.seed}, evaluation episodes seeds {eval_seed}.."
        f"{eval_seed + args.episodes - 1}), {dt.date.today().isoformat()}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores (load average {load:.1f} at start{'; ' + args.note if args.note else ''}), "
        f"torch {torch.__version__}, 1 thread, training budget {args.train_seconds:g} s per model. Planning time is "
        "wall time per decision (one plan of H held actions) and per environment step (each plan serves frame_step "
        "steps). Success: the env's own criterion. Goal cost `min`: the closest approach to the goal embedding "
        'anywhere in the horizon (`GoalCost(reduction="min")`, the default of `plan eval`).'
    )
    path = Path(args.markdown)
    for env in [env_name(e) for e in args.envs.split(",")]:
        lines = []
        data, run = train_model(env, args, root)
        model, cfg, probe, model_lines = _model_lines(env, run, data, args, "the preset")
        lines += [*model_lines, *HEAD]
        k = cfg.data.frame_step
        missed = []  # (row, seeds of the episodes it did not reach the goal in): which goals are hard, per row

        # Every planner with the preset's own plan settings ([plan], what `plan eval` uses by default) ...
        preset_weights, preset_n = (cfg.plan.pixel_weight, cfg.plan.proprio_weight), cfg.plan.waypoints
        waypoints = _route(model, data, k, args.horizon, preset_weights, preset_n)
        for name in args.planners.split(","):
            reports, s = evaluate(model, probe, env=env, planner=default_planner(name), episodes=args.episodes,
                                  horizon=args.horizon, seed=eval_seed, repeat=k, goal_weights=preset_weights,
                                  waypoints=waypoints)  # fmt: skip
            label = f"world model{_settings_label(preset_weights, preset_n)} (the preset's plan)"
            lines.append(_row(name, label, "min", s))
            missed.append((f"{name}, preset's plan", [r.seed for r in reports if not r.success]))
            print(lines[-1], flush=True)
        # ... and CEM with the other settings: both parts of the embedding or (with proprioception) the
        # proprioception alone, which shows what the pixel features add, each with and without waypoints.
        weightings = [(1.0, 1.0), (0.0, 1.0)] if model.proprio_dim else [(1.0, 1.0)]
        for weights in weightings:
            for n in (0, preset_n or WAYPOINTS):
                if weights == preset_weights and n == preset_n:
                    continue
                reports, s = evaluate(model, probe, env=env, planner=default_planner("cem"), episodes=args.episodes,
                                      horizon=args.horizon, seed=eval_seed, repeat=k, goal_weights=weights,
                                      waypoints=_route(model, data, k, args.horizon, weights, n))  # fmt: skip
                label = _settings_label(weights, n)
                lines.append(_row("cem", f"world model{label}", "min", s))
                missed.append((f"cem{label}", [r.seed for r in reports if not r.success]))
                print(lines[-1], flush=True)
        if env == "two_rooms":
            for name in [n for n in args.planners.split(",") if n != "gradient"]:  # simulate is not differentiable
                s = true_dynamics_baseline(env, default_planner(name), episodes=args.episodes, horizon=args.horizon,
                                           seed=eval_seed, repeat=k)  # fmt: skip
                lines.append(_row(name, "true dynamics", "min", s))
                print(lines[-1], flush=True)
        lines.append(_row("random actions", "-", "-", random_baseline(env, episodes=args.episodes, seed=eval_seed)))
        if env == "pusht":
            s = policy_baseline(env, _agent_to_goal, episodes=args.episodes, seed=eval_seed)
            lines.append(_row("agent straight to its goal", "true state, no model", "-", s))
        lines.append("\nEpisodes missed (seeds): " + "; ".join(
            f"{name}: {', '.join(map(str, seeds)) or 'none'}" for name, seeds in missed) + ".")  # fmt: skip
        if env == "two_rooms" and args.ablate_cov is not None:
            lines.append(
                "\nGoal-cost reductions (CEM, same episodes): `last` = distance at the end of the horizon "
                "(the default before issue 4), `sum` = summed over the horizon, `min` = closest approach."
            )
            _, ablated = train_model(env, args, root, name=f"-cov{args.ablate_cov:g}",
                                     overrides={"method.vicreg_cov_weight": str(args.ablate_cov)})  # fmt: skip
            other, other_cfg, other_probe, other_lines = _model_lines(
                env, ablated, data, args, f"ablation: VICReg covariance weight {args.ablate_cov:g}")  # fmt: skip
            lines += [*other_lines, *HEAD]
            for label, m, pr, c in (("preset", model, probe, cfg), (f"cov {args.ablate_cov:g}", other, other_probe,
                                                                     other_cfg)):  # fmt: skip
                for reduction in ("last", "sum", "min"):
                    _, s = evaluate(m, pr, env=env, planner=default_planner("cem"), episodes=args.episodes,
                                    horizon=args.horizon, seed=eval_seed, repeat=c.data.frame_step,
                                    reduction=reduction)  # fmt: skip
                    lines.append(_row("cem", f"world model ({label})", reduction, s))
                    print(lines[-1], flush=True)
            for reduction in ("last", "sum"):
                s = true_dynamics_baseline(env, default_planner("cem"), episodes=args.episodes, horizon=args.horizon,
                                           seed=eval_seed, repeat=k, reduction=reduction)  # fmt: skip
                lines.append(_row("cem", "true dynamics", reduction, s))
                print(lines[-1], flush=True)
        if env == "two_rooms":
            lines.append(f"\nGuardrail demonstration (CEM, the preset's model): start (0.12, y), goal (0.85, y') "
                         f"through the door, keep-out disc x,y,r = {ZONE}; violations are true visited states inside "
                         f"the disc (PNGs in {root}/keep-out-demo).\n")  # fmt: skip
            lines.append("| cost | episodes | success | episodes that entered the zone | states inside |")
            lines.append("|---|---|---|---|---|")
            lines.extend(keep_out_demo(model, probe, k, args, root / "keep-out-demo"))
            print("\n".join(lines[-4:]), flush=True)
        update_section(f"worldmodel-{env}", "\n".join([f"## World models: planning in {env}", "", meta, *lines]), path)
        print(f"written: section worldmodel-{env} of {path}", flush=True)
    return 0


def _agent_to_goal(environment, episode_seed: int, goal_state: np.ndarray, steps: int):
    """PushT without a model of the block: drive the agent straight at its own goal position (true state). The
    goals come from a scripted push, which ends with the agent behind the pushed block, so this alone re-enacts
    part of the push: the share it reaches is the share a planner can reach without modelling the block."""
    return lambda obs: np.clip((goal_state[:2] - obs["state"][:2]) / environment.max_step, -1.0, 1.0)


def _route(model, data: Path, frame_step: int, horizon: int, weights: tuple[float, float], n: int):
    """The waypoint graph over `n` recorded moves for these goal-cost weights (None for n = 0)."""
    if not n:
        return None
    return waypoints_from_data(model, data, frame_step=frame_step, windows=n, hops=horizon,
                               weights=goal_part_weights(model, weights))  # fmt: skip


def _settings_label(weights: tuple[float, float], waypoints: int) -> str:
    """', proprioception only, waypoints'-style suffix of a row's goal-cost weights and waypoint graph."""
    names = {(1.0, 1.0): "", (0.0, 1.0): ", proprioception only", (1.0, 0.0): ", pixels only"}
    label = names.get(weights, f", weights pixels {weights[0]:g} / proprioception {weights[1]:g}")
    return label + (f", waypoints ({waypoints} moves)" if waypoints else "")


def _row(name: str, model: str, cost: str, s: dict) -> str:
    def num(x, fmt):
        return "-" if x != x else format(x, fmt)

    return (f"| {name} | {model} | {cost} | {s['episodes']} | {s['success_rate']:.0%} | "
            f"{num(s['mean_steps_to_success'], '.1f')} | {num(s['plan_seconds_per_decision'], '.3f')} | "
            f"{num(s['plan_seconds_per_step'], '.3f')} | {s['mean_final_distance']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
