"""World-model subcommands of the `jepaworld` command line (registered in `cli.COMMANDS`).

jepaworld collect ENV --episodes N --steps T --out FILE.h5 [--policy random|noisy|scripted] [--seed S]
jepaworld plan eval CHECKPOINT --env ENV --planner cem|mppi|gradient --episodes N [--horizon H]
                    [--keep-out x,y,r | x0,y0,x1,y1 ...] [--max-action L] [--goal-image PNG] [--pixel-weight W]
                    [--proprio-weight W] [--waypoints N] [--baseline] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

from jepaworld.config import ConfigError, PlanConfig

# The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def _note(command: str, message: str) -> None:
    """A flag that has no effect here: say so, and carry on."""
    print(f"jepaworld {command}: note: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------------------
# collect


def collect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("env", help="environment: tworooms, pointmaze, pusht, reacher, or gym:<EnvId> "
                   "(also gym:<namespace>/<EnvId>, gym:<module>:<EnvId>)")  # fmt: skip
    p.add_argument("--episodes", type=int, default=1000, help="episodes to roll out")
    p.add_argument("--steps", type=int, default=100, help="steps per episode")
    p.add_argument("--out", required=True, help="HDF5 file to write (Ctrl-C stops after the current episode; the "
                   "same command resumes from the .partial file it leaves)")  # fmt: skip
    p.add_argument("--policy", default="random", choices=["random", "noisy", "scripted"],
                   help="exploration policy: random held actions, correlated noise, or the env's own noisy script "
                   "(pusht: pushes the block)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of every episode's start and actions")


def collect_run(args: argparse.Namespace, rest: list[str]) -> int:
    from jepaworld.data.episodes import CollectionInterrupted, collect, partial_path
    from jepaworld.envs import display_env_name
    from jepaworld.plan_eval import env_name, open_env

    if rest:
        raise ConfigError(f"collect: unexpected arguments {' '.join(rest)}")
    for flag, value in (("--episodes", args.episodes), ("--steps", args.steps)):
        if value < 1:
            raise ConfigError(f"{flag} {value}: pass a number >= 1")
    if Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out}: is a folder; pass the .h5 file to write")
    open_env(args.env).close()  # unknown env, no rgb_array, missing package: one line before any file is made
    name = display_env_name(env_name(args.env))
    already, resuming = Path(args.out).exists(), partial_path(args.out).exists()
    try:
        out = collect(env_name(args.env), episodes=args.episodes, steps_per_episode=args.steps, out=args.out,
                      policy=args.policy, seed=args.seed)  # fmt: skip
    except ValueError as error:  # bad counts; EpisodesError (a DataError) is reported by main()
        raise ConfigError(str(error)) from None
    except CollectionInterrupted as stop:
        print(f"jepaworld collect: interrupted after {stop.complete} episodes (of {stop.episodes}, kept in "
              f"{stop.partial}); re-run the same command to resume", file=sys.stderr)  # fmt: skip
        return INTERRUPTED
    if already:  # collect only checked that the file holds these settings
        print(f"{out} already holds all {args.episodes} episodes × {args.steps} steps of {name}; nothing to do")
    else:
        resumed = " (resumed an interrupted collection)" if resuming else ""
        print(f"collected {args.episodes} episodes × {args.steps} steps of {name} into {out}{resumed}")
    return 0


# ----------------------------------------------------------------------------------------------------------
# plan


def plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["eval"], help="eval: plan seeded episodes and report")
    p.add_argument("checkpoint", help="a world-model run folder or its checkpoint.pt")
    p.add_argument("--env", default="", help="environment: the one the training data came from (the default)")
    # Flags that default to None fall back to the run's saved [plan] section (see `config.PlanConfig`).
    p.add_argument("--planner", default=None, help="cem | mppi | gradient (default: the run's plan.planner)")
    p.add_argument("--episodes", type=int, default=20, help="seeded episodes (seeds seed .. seed + N - 1)")
    p.add_argument("--horizon", type=int, default=None,
                   help="planning horizon in macro-steps of frame_step raw steps (default: plan.horizon)")  # fmt: skip
    p.add_argument("--seed", type=int, default=1000, help="first episode seed (the data used seeds from 0)")
    p.add_argument("--samples", type=int, default=None, help="candidates per iteration (cem/mppi)")
    p.add_argument("--iters", type=int, default=None, help="planner iterations per decision")
    p.add_argument("--keep-out", action="append", default=[], help="forbidden zone 'x,y,r' or 'x0,y0,x1,y1'")
    p.add_argument("--keep-out-weight", type=float, default=100.0, help="weight of each keep-out cost")
    p.add_argument("--keep-out-margin", type=float, default=0.03, help="planning buffer around each zone")
    p.add_argument("--max-action", type=float, default=None,
                   help="guardrail: a cost on planned actions whose norm (actions are in [-1, 1] per dimension) "
                   "exceeds L; the table then reports the share of executed steps above L")  # fmt: skip
    p.add_argument("--max-action-weight", type=float, default=10.0,
                   help="weight of the --max-action cost: W · (norm - L)² per planned step")  # fmt: skip
    p.add_argument(
        "--reduction",
        default="min",
        choices=["last", "sum", "min"],
        help="goal cost: closest approach in the horizon (min), last step, or summed",
    )
    p.add_argument("--z", default=None, choices=["mean", "sample", "worst"],
                   help="latent variable z in planning, for a model that has one (default: sample)")  # fmt: skip
    p.add_argument("--pixel-weight", type=float, default=None,
                   help="goal cost of a world model with proprioception: weight of the pixel features' mean squared "
                   "error (0: plan on proprioception alone; default: the run's plan.pixel_weight)")  # fmt: skip
    p.add_argument(
        "--proprio-weight",
        type=float,
        default=None,
        help="goal cost: weight of the proprioception features' mean squared error (0: pixels alone; default: the "
        "run's plan.proprio_weight)",
    )
    p.add_argument("--waypoints", type=int, default=None,
                   help="plan through subgoals on a graph of this many recorded moves of the training data (search "
                   "on the replay buffer; 0 = straight at the goal; default: the run's plan.waypoints)")  # fmt: skip
    p.add_argument("--goal-image", default="", help="PNG goal frame for every episode (instead of sampled goals)")
    p.add_argument("--max-steps", type=int, default=0, help="raw env steps per episode (0 = the env's limit)")
    p.add_argument("--data", default="", help="episodes file for the state probe (default: the training data)")
    p.add_argument("--baseline", action="store_true", help="also run random actions on the same episodes")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared machine)")
    p.add_argument("--out", default="", help="folder for results.json and per-episode PNGs and GIFs")


def _data_path(args: argparse.Namespace, cfg, run_dir: Path) -> Path:
    candidates = [Path(args.data)] if args.data else [Path(cfg.data.path), run_dir / cfg.data.path]
    for path in candidates:
        if path.exists():
            return path
    if args.data:
        raise ConfigError(f"--data {args.data}: no such episodes file; pass the .h5 file the run was trained on")
    raise ConfigError(f"the state probe needs the training episodes ({cfg.data.path} not found); pass --data FILE.h5")


def check_plan_flags(args: argparse.Namespace) -> None:
    """Refuse impossible flag values with one line each, before anything is loaded or any folder is made."""
    at_least = [("--episodes", args.episodes, 1, "plan at least 1 episode"),
                ("--samples", args.samples, 1, "give at least 1 candidate per iteration"),
                ("--iters", args.iters, 1, "give at least 1 planner iteration per decision"),
                ("--horizon", args.horizon, 1, "plan at least 1 macro-step ahead"),
                ("--waypoints", args.waypoints, 0, "give a number of recorded moves, or 0 for none"),
                ("--max-steps", args.max_steps, 0, "give a number of raw steps, or 0 for the env's limit"),
                ("--threads", args.threads, 1, "use at least 1 thread"),
                ("--keep-out-weight", args.keep_out_weight, 0, "give a weight >= 0"),
                ("--keep-out-margin", args.keep_out_margin, 0, "give a buffer >= 0 in state units")]  # fmt: skip
    for flag, value, low, fix in at_least:
        if value is not None and not value >= low:
            raise ConfigError(f"{flag} {value:g}: {fix}")
    if args.max_action is not None and not args.max_action > 0:
        raise ConfigError(f"--max-action {args.max_action:g}: give a positive action norm (actions are in [-1, 1] "
                          "per dimension)")  # fmt: skip
    if not args.max_action_weight > 0:
        raise ConfigError(f"--max-action-weight {args.max_action_weight:g}: give a weight > 0")
    if args.out and (out := Path(args.out)).exists() and (out.is_file() or any(out.iterdir())):
        what = "is a file" if out.is_file() else "is not empty"
        raise ConfigError(f"--out {out}: {what}; pass a new or empty folder, so that no episode files of an "
                          "earlier evaluation are mixed with this one")  # fmt: skip
    if args.planner is not None and args.planner not in ("cem", "mppi", "gradient"):
        raise ConfigError(f"--planner {args.planner}: choose cem, mppi or gradient")


def _env_key(name: str) -> str:
    """What identifies an env across spellings: its registry key, and a gym id without the module that registers
    it (``gym:mod:Thing-v0`` and ``gym:Thing-v0`` are the same env once `mod` is imported)."""
    from jepaworld.envs import GYM_PREFIX, canonical_env_name

    name = canonical_env_name(name)
    return GYM_PREFIX + name[len(GYM_PREFIX) :].rpartition(":")[2] if name.startswith(GYM_PREFIX) else name


def check_env(env: str, data_env: str, data: Path) -> str:
    """`env` if it is a known env and the one the world model's data came from, else a one-line ConfigError.

    The model only knows the env it was trained in; another env with the same frame and action shapes (TwoRooms and
    PointMaze both have 2-D actions) would plan without complaint and mean nothing.
    """
    from jepaworld.envs import check_env_name, display_env_name

    try:
        check_env_name(env)
    except (ValueError, ImportError) as error:
        raise ConfigError(str(error)) from None
    if _env_key(env) != _env_key(data_env):
        trained = display_env_name(data_env)
        raise ConfigError(f"--env {env}: this world model was trained on {trained} episodes ({data}); plan in "
                          f"{trained} (leave out --env), or train a model on episodes of {env}")  # fmt: skip
    return env


def plan_settings(args: argparse.Namespace, cfg) -> PlanConfig:
    """The run's saved [plan] section with every flag the user gave on top; bad values are one-line errors."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(PlanConfig) if getattr(args, f.name) is not None}
    plan = dataclasses.replace(cfg.plan, **given)
    if plan.waypoints < 0:
        raise ConfigError(f"--waypoints {plan.waypoints}: give a number of recorded moves, or 0 for none")
    if plan.horizon < 1:
        raise ConfigError(f"--horizon {plan.horizon}: plan at least 1 macro-step ahead")
    return plan


def plan_run(args: argparse.Namespace, rest: list[str]) -> int:
    import torch

    from jepaworld.data.episodes import open_episodes
    from jepaworld.plan_eval import (
        default_planner,
        evaluate,
        goal_part_weights,
        load_goal_image,
        load_world_model,
        parse_keep_out,
        random_baseline,
        waypoints_from_data,
        write_results,
    )  # fmt: skip
    from jepaworld.state_probe import probe_for

    if rest:
        raise ConfigError(f"plan: unexpected arguments {' '.join(rest)}")
    check_plan_flags(args)
    keep_outs = [parse_keep_out(s, position_fn=None, weight=args.keep_out_weight, margin=args.keep_out_margin)
                 for s in args.keep_out]  # fmt: skip
    torch.set_num_threads(args.threads)
    model, cfg, state = load_world_model(args.checkpoint)
    run_dir = Path(state["path"]).parent
    data = _data_path(args, cfg, run_dir)
    with open_episodes(data) as f:
        data_env = str(f.attrs["env"])
    # The env the model was trained in, from its own training data where that is still there: `--data` only
    # supplies episodes for the state probe, and must not let another env through.
    trained = next((p for p in (Path(cfg.data.path), run_dir / cfg.data.path) if p.is_file()), None)
    if trained is not None and trained.resolve() != data.resolve():
        with open_episodes(trained) as f:
            trained_env = str(f.attrs["env"])
        if _env_key(trained_env) != _env_key(data_env):
            from jepaworld.envs import display_env_name

            shown, trained_env = display_env_name(data_env), display_env_name(trained_env)
            raise ConfigError(f"--data {data}: holds {shown} episodes, but this world model was trained on "
                              f"{trained_env} ({trained}); give episodes of {trained_env}")  # fmt: skip
    env = check_env(args.env or data_env, data_env, data)
    plan = plan_settings(args, cfg)
    weights = (f", goal-cost weights pixels {plan.pixel_weight:g} / proprioception {plan.proprio_weight:g}"
               if model.proprio_dim else "")  # fmt: skip
    print(f"planning: {plan.planner}, horizon {plan.horizon}{weights}, waypoints {plan.waypoints or 'none'}")
    if args.samples is not None and plan.planner == "gradient":
        _note("plan", "--samples is ignored: the gradient planner optimises its restarts, it samples no candidates")
    if args.z is not None and not model.latent_dim:
        _note("plan", f"--z {args.z} is ignored: this world model has no latent variable (--model.latent_dim 0)")
    if args.baseline and args.goal_image:
        _note("plan", "--baseline is skipped with --goal-image: random actions are scored against the env's goals")
    planner = default_planner(plan.planner, samples=args.samples, iters=args.iters)
    goal_image = load_goal_image(args.goal_image, model) if args.goal_image else None
    probe, probe_metrics = probe_for(model, run_dir=run_dir, data_path=data, step=int(state.get("step", -1)))
    goal_weights = (plan.pixel_weight, plan.proprio_weight)
    waypoints = None
    if plan.waypoints:
        waypoints = waypoints_from_data(model, data, frame_step=cfg.data.frame_step, windows=plan.waypoints,
                                        hops=plan.horizon, weights=goal_part_weights(model, goal_weights))  # fmt: skip
    out = Path(args.out) if args.out else None
    reports, summary = evaluate(
        model, probe, env=env, planner=planner, episodes=args.episodes, horizon=plan.horizon, seed=args.seed,
        repeat=cfg.data.frame_step, keep_outs=keep_outs, reduction=args.reduction, z_mode=args.z or "sample",
        goal_image=goal_image, max_steps=args.max_steps or None, goal_weights=goal_weights, waypoints=waypoints,
        max_action=args.max_action, max_action_weight=args.max_action_weight, out=out,
    )  # fmt: skip
    rows = {plan.planner: summary}
    if args.baseline and goal_image is None:
        rows["random"] = random_baseline(env, episodes=args.episodes, seed=args.seed, max_steps=args.max_steps or None,
                                         max_action=args.max_action)  # fmt: skip
    print(format_rows(rows, max_action=args.max_action))
    if out is not None:
        meta = {"checkpoint": state["path"], "env": env, "planner": repr(planner), "horizon": plan.horizon,
                "seed": args.seed, "frame_step": cfg.data.frame_step, "keep_out": args.keep_out,
                "max_action": args.max_action, "max_action_weight": args.max_action_weight,
                "probe": probe_metrics, "threads": args.threads,
                "goal_weights": {"pixels": plan.pixel_weight, "proprio": plan.proprio_weight},
                "waypoints": plan.waypoints}  # fmt: skip
        write_results(out, rows, reports, meta)
        print(f"written: {out / 'results.json'} and {len(reports)} episode PNGs and GIFs in {out}")
    return 0


def format_rows(rows: dict[str, dict[str, float]], *, max_action: float | None = None) -> str:
    """The results table; with an action-norm limit, a column of the share of executed steps above it."""

    def num(x: float, fmt: str) -> str:
        return "-" if isinstance(x, float) and math.isnan(x) else format(x, fmt)

    over = [] if max_action is None else [f"steps with action > {max_action:g}"]
    header = ["policy", "episodes", "success", "mean steps", "plan s / decision", "plan s / step", "final dist",
              "violations", "failed plans", "max action norm", *over]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in rows.items():
        cells = [name, str(r["episodes"]), f"{r['success_rate']:.0%}", num(r["mean_steps_to_success"], ".1f"),
                 num(r["plan_seconds_per_decision"], ".3f"), num(r["plan_seconds_per_step"], ".3f"),
                 f"{r['mean_final_distance']:.3f}", str(r["violations"]), str(r["failed_plans"]),
                 num(r["max_action_norm"], ".2f")]  # fmt: skip
        if max_action is not None:
            cells.append(num(r["share_over_action_limit"], ".0%"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
