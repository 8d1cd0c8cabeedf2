"""Evaluate a JEPA world model by planning in its environment: ``jepaworld plan eval``.

Each episode is seeded: ``env.reset(seed + i)``, a goal from ``env.sample_goal(default_rng(seed + i))`` (or one
goal image for every episode). Receding-horizon MPC (`planning.run_mpc`) then plans from the encoded current frame
towards the encoded goal frame, entirely in embedding space, and executes the first planned step.

Frameskip: a model trained with ``data.frame_step = k`` predicts k raw steps at a time from their k concatenated
actions. The planner searches over `horizon` *held* actions (H, A): each is repeated k times (a macro-step). This
is DINO-WM's frameskip with a repeated action; it cuts the search space from H·k·A to H·A dimensions and lets a
horizon of 5 look 5k raw steps ahead, far enough to find TwoRooms' door. Plans are remade after every macro-step.

Reported per run: success rate, mean raw steps to success (successful episodes), planning seconds per decision
(one plan) and per environment step (a plan serves k steps), the true final distance to the goal, guardrail
violations (raw visited states strictly inside a keep-out zone), the largest executed action norm and, with an
action-norm guardrail (`max_action`), the share of executed steps above its limit. A planner whose cost turns NaN
fails that episode with a message, and the evaluation continues. With ``--baseline`` the same seeded episodes are
also run with random actions, as the floor a world model must beat.

Visuals: a JEPA cannot decode its predictions into frames, so each episode's PNG shows the executed frames (with the
goal frame) above a state-space plot in which the model's imagined rollouts are read out by the latent->state probe
(`state_probe`) next to the true path. The probe draws what the model believes will happen in the units the keep-out
zones are given in, which nearest-neighbour frames from the dataset would only approximate. An animated GIF per
episode plays the executed frames beside the goal frame.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepaworld.checkpoint import CheckpointError, load_strict, read_checkpoint
from jepaworld.config import ConfigError, ExperimentConfig, from_dict
from jepaworld.data.episodes import EpisodeWindows, random_policy
from jepaworld.envs import canonical_env_name, display_env_name, make_env
from jepaworld.methods import DataSpec, build_method
from jepaworld.methods.worldmodel import WorldModel
from jepaworld.planning import (
    CEM,
    MPPI,
    ActionMagnitude,
    CostFn,
    GoalCost,
    Gradient,
    KeepOut,
    Planner,
    PlanningError,
    TotalCost,
    Waypoints,
    run_mpc,
)  # fmt: skip

# State dimensions that hold the controlled position (keep-out zones, plots) and the ones the goal distance uses.
POSITION_DIMS = {"two_rooms": (0, 1), "pointmaze": (0, 1), "pusht": (0, 1), "reacher": (4, 5)}
DISTANCE_DIMS = {"two_rooms": (0, 1), "pointmaze": (0, 1), "pusht": (0, 1, 2, 3), "reacher": (4, 5)}
# A second body whose path the episode plots also show, beside the controlled position (PushT's block).
OBJECT_DIMS = {"pusht": (2, 3)}


def env_name(name: str) -> str:
    """The env registry's key for a name or alias (`envs.ENV_ALIASES`), which keys the tables above."""
    return canonical_env_name(name)


def open_env(name: str, **kwargs: Any) -> Any:
    """`make_env` with its errors (unknown env, no rgb_array, missing package, no GL) as one-line ConfigErrors."""
    try:
        return make_env(env_name(name), **kwargs)
    except (ValueError, ImportError, RuntimeError) as error:
        raise ConfigError(str(error)) from None


def default_planner(name: str, **overrides: Any) -> Planner:
    """Planners sized for < 1 s per decision on one CPU core with a micro world model (horizon 5)."""
    defaults: dict[str, dict[str, Any]] = {
        "cem": {"samples": 300, "iters": 10},  # CEM's elites: a tenth of the samples
        "mppi": {"samples": 300, "iters": 10, "temperature": 0.05, "noise_std": 0.5},
        "gradient": {"iters": 30, "lr": 0.2, "restarts": 8, "init_std": 0.5},
    }
    classes = {"cem": CEM, "mppi": MPPI, "gradient": Gradient}
    if name not in classes:
        raise ConfigError(f"unknown planner {name!r}: known planners are {', '.join(sorted(classes))}")
    kwargs = {**defaults[name], **{k: v for k, v in overrides.items() if v is not None}}
    if name == "gradient":
        kwargs.pop("samples", None)
    try:
        return classes[name](**kwargs)
    except ValueError as error:  # e.g. samples < 1
        raise ConfigError(str(error)) from None


# --------------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------------


def load_world_model(path: str | Path) -> tuple[WorldModel, ExperimentConfig, dict[str, Any]]:
    """A frozen, eval-mode `WorldModel` from a checkpoint; any other method is a one-line CheckpointError."""
    state = read_checkpoint(path)
    try:
        cfg = from_dict(state["config"])
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{state['path']}: saved config is invalid ({e})") from e
    if cfg.method.name != "worldmodel":
        raise CheckpointError(
            f"{state['path']}: a '{cfg.method.name}' checkpoint has no action-conditioned predictor to plan with; "
            "train a world model, e.g. `jepaworld pretrain --preset wm-tworooms`"
        )
    model = build_method(cfg, DataSpec(**state["spec"]), init_encoder=False)  # every weight is this checkpoint's
    assert isinstance(model, WorldModel)
    load_strict(model, state["method"], path=state["path"])
    return model.eval().requires_grad_(False), cfg, state


def to_tensor(pixels: np.ndarray, model: WorldModel, *, what: str = "frame") -> torch.Tensor:
    """(H, W, C) uint8 -> (1, C, H, W) float in [0, 1], refusing a frame of another size with one line."""
    C, H, W = model.img_shape
    if pixels.shape != (H, W, C):
        fix = f"; resize it to {W}×{H} pixels" if what.startswith("goal image") else ""
        raise ConfigError(f"{what} has shape {tuple(pixels.shape)}; the world model takes {H}×{W}×{C} frames{fix}")
    # A copy: frames resized by PIL (GymPixels) and read goal images are read-only arrays, which torch warns about.
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float().div(255.0)


def encode_obs(model: WorldModel, obs: dict[str, np.ndarray], *, target: bool = False, what: str = "frame"):
    """An env observation {"pixels": (H, W, C) uint8, "proprio": (P,)} -> its embedding (1, D).

    The proprioception is used exactly when the model was trained with it; a reading of another size is refused.
    """
    proprio = None
    if model.proprio_dim:
        reading = np.asarray(obs["proprio"], dtype=np.float32)
        if reading.shape != (model.proprio.input_dim,):
            raise ConfigError(
                f"the {what}'s proprioception has shape {reading.shape}; the world model was trained on "
                f"({model.proprio.input_dim},): plan in the environment its data was collected in"
            )
        proprio = torch.from_numpy(reading)[None]  # (1, P)
    return model.encode(to_tensor(obs["pixels"], model, what=what), proprio, target=target)


def load_goal_image(path: str | Path, model: WorldModel) -> np.ndarray:
    from PIL import Image

    try:
        pixels = np.asarray(Image.open(path).convert("RGB"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the goal image ({error})") from None
    to_tensor(pixels, model, what=f"goal image {path}")
    return pixels


def parse_keep_out(spec: str, *, position_fn: Any, weight: float, margin: float) -> KeepOut:
    """'x,y,r' -> a disc; 'x0,y0,x1,y1' -> a box (low corner, high corner), in the env's state units."""
    try:
        values = [float(v) for v in spec.split(",")]
    except ValueError:
        values = []
    if len(values) == 3:
        return KeepOut(position_fn=position_fn, center=(values[0], values[1]), radius=values[2], weight=weight,
                       margin=margin)  # fmt: skip
    if len(values) == 4:
        return KeepOut(position_fn=position_fn, low=(values[0], values[1]), high=(values[2], values[3]),
                       weight=weight, margin=margin)  # fmt: skip
    raise ConfigError(f"--keep-out {spec!r}: give a disc 'x,y,r' or a box 'x0,y0,x1,y1' in state units")


# --------------------------------------------------------------------------------------------------------------------
# Planning in the world model
# --------------------------------------------------------------------------------------------------------------------


class HeldActions:
    """Env adapter for frameskip: each planned action is held for `repeat` raw steps (stopping early on success).

    Records every raw state, frame and action, so that violations and steps are counted at the environment's rate.
    """

    def __init__(self, env: Any, *, repeat: int, goal_state: np.ndarray, max_raw_steps: int) -> None:
        self.env, self.repeat, self.goal_state, self.max_raw_steps = env, repeat, goal_state, max_raw_steps
        self.action_dim = env.action_dim
        self.max_episode_steps = math.ceil(max_raw_steps / repeat)
        self.states: list[np.ndarray] = []
        self.frames: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []

    def start(self, obs: dict[str, np.ndarray]) -> None:
        self.states, self.frames, self.actions = [obs["state"]], [obs["pixels"]], []

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        for _ in range(self.repeat):
            obs, info = self.env.step(action)
            self.states.append(obs["state"])
            self.frames.append(obs["pixels"])
            self.actions.append(np.asarray(action, dtype=np.float32))
            if self.success(obs["state"], self.goal_state) or len(self.states) > self.max_raw_steps:
                break
        return obs, info

    def success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        return bool(self.env.success(state, goal_state))


class _Recorder:
    """Planner wrapper keeping every plan it returns, to draw the imagined rollouts afterwards, and the time spent
    on them: an episode whose planning fails midway still reports the plans it made and their time."""

    def __init__(self, planner: Planner) -> None:
        self.planner, self.plans, self.seconds = planner, [], 0.0

    def optimise(self, cost_fn: CostFn, *, init: torch.Tensor, generator: torch.Generator):
        start = time.perf_counter()
        actions, cost, iters = self.planner.optimise(cost_fn, init=init, generator=generator)
        self.seconds += time.perf_counter() - start
        self.plans.append(actions.detach().clone())
        return actions, cost, iters


def _plan_episode(
    adapter: HeldActions, planner: Planner, *, i: int, episode_seed: int, log: Any, **mpc: Any
) -> tuple[_Recorder, str | None]:
    """`run_mpc` for one episode: its plans and their time, and the error of a plan that failed (NaN cost), which
    fails the episode and not the run."""
    recorder = _Recorder(planner)
    try:
        run_mpc(adapter, recorder, record_frames=False, **mpc)
    except PlanningError as e:
        log(f"episode {i} (seed {episode_seed}): planning failed: {e}; counted as a failure, continuing")
        return recorder, str(e)
    return recorder, None


@dataclass
class LatentPlanningCost:
    """Builds the planner's cost of held actions (N, H, A) from an observation: encode, roll out, score.

    z_mode (latent-variable models only): "mean" rolls out with z at the prior mean; "sample" draws one z per
    candidate and step; "worst" draws `z_samples` per candidate and keeps the highest cost (a pessimistic plan).
    """

    model: WorldModel
    cost: TotalCost
    repeat: int
    generator: torch.Generator
    z_mode: str = "sample"
    z_samples: int = 4
    waypoints: Waypoints | None = None  # with a goal set: each decision aims at the next subgoal on its graph
    starts: list[torch.Tensor] = field(default_factory=list)

    def __call__(self, obs: dict[str, np.ndarray]) -> CostFn:
        with torch.no_grad():
            z0 = encode_obs(self.model, obs)  # (1, D): rollouts start from the online encoder, as in training
            # The waypoint graph, the goal and the state probe live in the space the predictor predicts: the target
            # encoder's (the same encoder unless the target is an EMA copy).
            here = encode_obs(self.model, obs, target=True) if self.model.target == "ema" else z0
        self.starts.append(z0)
        cost = self.anchored(here)
        return lambda actions: self.evaluate(z0, actions, cost)

    def anchored(self, here: torch.Tensor) -> TotalCost:
        """`cost` with each segment-checking `KeepOut` starting from the current position (its readout of the
        current target embedding `here` (1, D)), and the goal term aimed at the next waypoint when there are
        waypoints."""
        terms = {}
        for name, term in self.cost.terms.items():
            if isinstance(term, GoalCost) and self.waypoints is not None:
                term = dataclasses.replace(term, goal=self.waypoints.subgoal(here[0]))
            if isinstance(term, KeepOut) and term.substeps > 1:
                with torch.no_grad():
                    origin = term.position_fn(here[:, None])[0, 0]  # (1, 1, D) -> (2,)
                term = dataclasses.replace(term, origin=(float(origin[0]), float(origin[1])))
            terms[name] = term
        return TotalCost(terms=terms, weights=self.cost.weights)

    def evaluate(self, z0: torch.Tensor, actions: torch.Tensor, cost: TotalCost | None = None) -> torch.Tensor:
        cost = self.cost if cost is None else cost
        N, H, _ = actions.shape
        full = actions.repeat(1, 1, self.repeat)  # (N, H, k·A): k copies of each action, the frameskip layout
        K = {"mean": 0, "sample": 1, "worst": self.z_samples}[self.z_mode] if self.model.latent_dim else 0
        if K == 0:
            return cost(self.model.rollout(z0.expand(N, -1), full), actions)
        latent = self.model.prior_latent((K * N, H), self.generator)  # (K·N, H, L)
        latents = self.model.rollout(z0.expand(K * N, -1), full.repeat(K, 1, 1), latent)  # (K·N, H, D)
        costs = cost(latents, actions.repeat(K, 1, 1)).view(K, N)
        return costs.max(0).values

    @torch.no_grad()
    def imagine(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The mean-z imagined embeddings (H, D) of one plan (H, A)."""
        return self.model.rollout(z0, actions.repeat(1, self.repeat)[None])[0]


@dataclass
class EpisodeReport:
    seed: int
    success: bool
    steps: int  # raw environment steps executed
    plan_seconds: float  # total planning time
    decisions: int  # plans made
    final_distance: float
    violations: int
    error: str | None = None
    max_action_norm: float = 0.0  # largest norm of an executed action (in [-1, 1] units)
    over_action_limit: int = 0  # executed steps whose action norm exceeded the action guardrail's limit


def action_stats(actions: list[np.ndarray] | np.ndarray, limit: float | None) -> dict[str, float | int]:
    """Executed actions (T, A) -> {"max_action_norm": largest norm, "over_action_limit": steps with a norm above
    `limit`}, the two `EpisodeReport` fields that show an `ActionMagnitude` guardrail's effect."""
    if len(actions) == 0:  # e.g. the first plan failed, or the episode started at its goal
        return {"max_action_norm": 0.0, "over_action_limit": 0}
    norms = np.linalg.norm(np.asarray(actions, dtype=np.float64).reshape(len(actions), -1), axis=-1)  # (T,)
    # A hair above the limit, so that an action whose norm is the limit up to float rounding does not count.
    over = int((norms > limit + 1e-6).sum()) if limit is not None else 0
    return {"max_action_norm": float(norms.max()), "over_action_limit": over}


@torch.no_grad()
def waypoints_from_data(
    model: WorldModel,
    data_path: str | Path,
    *,
    frame_step: int,
    windows: int = 1500,
    hops: int = 5,
    weights: torch.Tensor | None = None,
    seed: int = 0,
) -> Waypoints:
    """`Waypoints` from `windows` random recorded moves (two frames `frame_step` raw steps apart) of the training
    episodes, embedded by the target encoder (as goals are)."""
    moves = EpisodeWindows(data_path, window=1, frame_step=frame_step)
    try:
        picks = np.random.default_rng(seed).choice(len(moves), size=min(windows, len(moves)), replace=False)
        batch = moves.load(torch.from_numpy(np.sort(picks)))  # frames (n, 2, C, H, W), proprio (n, 2, P)
    finally:
        moves.close()
    z = model.encode(batch["frames"], batch["proprio"] if model.proprio_dim else None, target=True)  # (n, 2, D)
    n = z.shape[0]
    pairs = torch.stack([2 * torch.arange(n), 2 * torch.arange(n) + 1], dim=1)  # (n, 2): move from, move to
    return Waypoints(nodes=z.flatten(0, 1), pairs=pairs, weights=weights, hops=hops)


def goal_part_weights(model: WorldModel, weights: tuple[float, float]) -> torch.Tensor | None:
    """Per-feature goal-cost weights (D,) that make the cost ``(w_pix · MSE_pixels + w_prop · MSE_proprio) / (w_pix +
    w_prop)``: DINO-WM's objective, each part a mean, so that 32 pixel features do not outvote 8 proprioception
    features. None (the plain mean) for a model without proprioception."""
    pixels, proprio = weights
    if min(pixels, proprio) < 0 or pixels + proprio <= 0:
        raise ConfigError(f"goal-cost weights (pixels {pixels:g}, proprio {proprio:g}) must be >= 0, not both 0")
    if not model.proprio_dim:
        if (pixels, proprio) != (1.0, 1.0):
            raise ConfigError("goal-cost weights (pixels, proprio) weigh a proprioceptive world model's two parts; "
                              "this one takes no proprioception, so leave them at 1")  # fmt: skip
        return None
    P = model.proprio_dim
    V = model.frame_dim - P
    return torch.cat([torch.full((V,), pixels / V), torch.full((P,), proprio / P)])


def _distance(name: str, state: np.ndarray, goal: np.ndarray) -> float:
    dims = list(DISTANCE_DIMS.get(name, range(len(state))))
    return float(np.linalg.norm(np.asarray(state)[dims] - np.asarray(goal)[dims]))


def evaluate(
    model: WorldModel,
    probe: torch.nn.Module,
    *,
    env: str,
    planner: Planner,
    episodes: int,
    horizon: int = 5,
    seed: int = 0,
    repeat: int = 1,
    keep_outs: list[KeepOut] | None = None,
    watch: list[KeepOut] | None = None,
    reduction: str = "min",
    z_mode: str = "sample",
    goal_image: np.ndarray | None = None,
    max_steps: int | None = None,
    starts: list[np.ndarray] | None = None,
    goals: list[np.ndarray] | None = None,
    goal_weights: tuple[float, float] = (1.0, 1.0),
    waypoints: Waypoints | None = None,
    max_action: float | None = None,
    max_action_weight: float = 10.0,
    out: str | Path | None = None,
    gif: bool = True,
    log: Any = print,
) -> tuple[list[EpisodeReport], dict[str, float]]:
    """Plan `episodes` seeded episodes in `env`; returns the per-episode reports and their summary.

    `starts` / `goals` (optional, one state per episode) place the agent and the goal explicitly (via the env's
    `set_state` and `render`), e.g. for the keep-out demonstration. Violations are counted against `watch`
    (default: the planned `keep_outs`), so a run without guardrails can be scored against the same zones.
    `goal_weights` = (pixels, proprioception) weigh the two parts of a proprioceptive model's embedding in the
    goal cost, each part a mean (`goal_part_weights`). `waypoints` (see `waypoints_from_data`) route each
    episode through subgoals towards its goal. `max_action` adds the guardrail `ActionMagnitude` (planned action
    norms above it cost ``max_action_weight · excess²``); the reports then count executed steps above it. With
    `out`, each episode writes a PNG and, with `gif`, an animated GIF of its frames.
    """
    name = env_name(env)
    weights = goal_part_weights(model, goal_weights)
    environment = open_env(name)
    keep_outs = keep_outs or []
    watch = keep_outs if watch is None else watch
    dims = list(POSITION_DIMS.get(name, (0, 1)))
    if model.action_dim != environment.action_dim * repeat:
        environment.close()
        raise ConfigError(
            f"{display_env_name(name)} has action dimension {environment.action_dim}: with frame_step {repeat} the "
            f"model would need {environment.action_dim * repeat}, but it was trained with {model.action_dim}"
        )
    if model.proprio_dim and (goal_image is not None or goals is not None):
        environment.close()
        given = "a goal image" if goal_image is not None else "goal states"
        raise ConfigError(
            f"this world model takes proprioception, which {given} cannot supply; plan towards the env's sampled "
            "goals, or train with --model.proprio_dim 0"
        )
    guardrail = None if max_action is None else ActionMagnitude(limit=max_action, weight=max_action_weight)
    out = Path(out) if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    reports = []
    try:
        for i in range(episodes):
            reports.append(_episode(model, probe, environment, name, planner, i, seed=seed, horizon=horizon,
                                    repeat=repeat, keep_outs=keep_outs, watch=watch, dims=dims, reduction=reduction,
                                    z_mode=z_mode, goal_image=goal_image, max_steps=max_steps,
                                    start=None if starts is None else starts[i],
                                    goal=None if goals is None else goals[i], weights=weights,
                                    waypoints=waypoints, guardrail=guardrail, out=out, gif=gif,
                                    log=log))  # fmt: skip
    finally:
        environment.close()
    return reports, summarise(reports, action_limit=max_action)


def _episode(model, probe, environment, name, planner, i, *, seed, horizon, repeat, keep_outs, watch, dims, reduction,
             z_mode, goal_image, max_steps, start, goal, weights, waypoints, guardrail, out, gif,
             log) -> EpisodeReport:  # fmt: skip
    episode_seed = seed + i
    obs = environment.reset(seed=episode_seed)
    if start is not None:
        obs = environment.set_state(start)
    goal_obs = None
    if goal is not None:
        goal_state = np.asarray(goal, dtype=np.float32)
        goal_pixels = environment.render(goal_state)
    elif goal_image is not None:
        goal_pixels = goal_image
        with torch.no_grad():
            goal_state = probe(model.encode(to_tensor(goal_image, model), target=True))[0].numpy()
    else:
        goal_obs, goal_state = environment.sample_goal(np.random.default_rng(episode_seed))
        goal_pixels = goal_obs["pixels"]
    with torch.no_grad():
        goal_z = encode_obs(model, goal_obs or {"pixels": goal_pixels}, target=True, what="goal frame")[0]  # (D,)

    def position_fn(latents: torch.Tensor) -> torch.Tensor:
        return probe(latents)[..., dims]

    terms: dict[str, Any] = {"goal": GoalCost(goal=goal_z, reduction=reduction, weights=weights)}
    for j, zone in enumerate(keep_outs):
        # Held for k raw steps, a macro-step is a straight move: check every raw step on it, as violations are.
        terms[f"keep_out_{j}"] = dataclasses.replace(zone, position_fn=position_fn, substeps=repeat)
    if guardrail is not None:
        terms["max_action"] = guardrail  # on the held actions (N, H, A), each executed k times as it is
    generator = torch.Generator().manual_seed(episode_seed)
    if waypoints is not None:
        waypoints.set_goal(goal_z)
    costs = LatentPlanningCost(model=model, cost=TotalCost(terms=terms), repeat=repeat, generator=generator,
                               z_mode=z_mode, waypoints=waypoints)  # fmt: skip
    max_raw = max_steps or environment.max_episode_steps
    adapter = HeldActions(environment, repeat=repeat, goal_state=goal_state, max_raw_steps=max_raw)
    adapter.start(obs)
    recorder, error = _plan_episode(adapter, planner, i=i, episode_seed=episode_seed, log=log, obs=obs,
                                    goal_state=goal_state, cost_fn_factory=costs, horizon=horizon,
                                    generator=generator)  # fmt: skip
    states = np.stack(adapter.states)  # (T + 1, S)
    positions = torch.from_numpy(states[:, dims]).float()
    inside = [bool(z.inside(positions).any()) for z in watch]
    violations = int(sum(int(z.inside(positions).sum()) for z in watch))
    success = error is None and bool(environment.success(states[-1], goal_state))
    report = EpisodeReport(seed=episode_seed, success=success, steps=len(states) - 1, plan_seconds=recorder.seconds,
                           decisions=len(recorder.plans), final_distance=_distance(name, states[-1], goal_state),
                           violations=violations, error=error,
                           **action_stats(adapter.actions, None if guardrail is None else guardrail.limit))  # fmt: skip
    if out is not None:
        # An episode that failed mid-plan has one more start than finished plans: pair the finished ones.
        planned_from = costs.starts[: len(recorder.plans)]
        imagined = [probe(torch.cat([z0, costs.imagine(z0, plan)])).numpy()[:, dims]
                    for z0, plan in zip(planned_from, recorder.plans, strict=True)]  # fmt: skip
        walls = environment.blocked_regions() if hasattr(environment, "blocked_regions") else []
        body = list(OBJECT_DIMS.get(name, ()))
        save_episode_png(out / f"episode_{i:03d}.png", frames=adapter.frames, goal_frame=goal_pixels,
                         states=states[:, dims], goal=np.asarray(goal_state)[dims], imagined=imagined,
                         object_path=(states[:, body], np.asarray(goal_state)[body]) if body else None,
                         keep_outs=watch, walls=walls, title=f"{display_env_name(name)} seed {episode_seed}: "
                         f"{'success' if success else 'miss'} in {report.steps} steps"
                         + (f", {sum(inside)} zone(s) entered" if watch else ""))  # fmt: skip
        if gif:
            save_episode_gif(out / f"episode_{i:03d}.gif", frames=adapter.frames, goal_frame=goal_pixels)
    return report


def policy_baseline(
    env: str, make_policy: Callable[..., Callable[[dict[str, np.ndarray]], np.ndarray]], *, episodes: int,
    seed: int = 0, max_steps: int | None = None, max_action: float | None = None,
) -> dict[str, float]:  # fmt: skip
    """The same seeded episodes and goals as `evaluate`, run by a policy that needs no world model.

    ``make_policy(environment, episode_seed, goal_state, steps) -> act(obs) -> action`` builds each episode's policy.
    `max_action` only counts the executed steps above that action norm, as `evaluate` does.
    """
    name = env_name(env)
    environment = open_env(name)
    reports = []
    try:
        for i in range(episodes):
            episode_seed = seed + i
            obs = environment.reset(seed=episode_seed)
            _, goal_state = environment.sample_goal(np.random.default_rng(episode_seed))
            steps = max_steps or environment.max_episode_steps
            act = make_policy(environment, episode_seed, goal_state, steps)
            taken, success = [], bool(environment.success(obs["state"], goal_state))
            while not success and len(taken) < steps:
                # Clipped as every env clips it, so that the action norms are those executed.
                taken.append(np.clip(np.asarray(act(obs), dtype=np.float32), -1.0, 1.0))
                obs, _ = environment.step(taken[-1])
                success = bool(environment.success(obs["state"], goal_state))
            reports.append(EpisodeReport(seed=episode_seed, success=success, steps=len(taken), plan_seconds=0.0,
                                         decisions=0, final_distance=_distance(name, obs["state"], goal_state),
                                         violations=0, **action_stats(taken, max_action)))  # fmt: skip
    finally:
        environment.close()
    return summarise(reports, action_limit=max_action)


def random_baseline(
    env: str, *, episodes: int, seed: int = 0, max_steps: int | None = None, max_action: float | None = None
) -> dict[str, float]:
    """The same seeded episodes and goals, run with random held actions (`data.episodes.random_policy`)."""

    def make_policy(environment: Any, episode_seed: int, goal_state: np.ndarray, steps: int):
        actions = iter(random_policy(np.random.default_rng(10_000 + episode_seed), steps, environment.action_dim))
        return lambda _: next(actions)

    return policy_baseline(env, make_policy, episodes=episodes, seed=seed, max_steps=max_steps, max_action=max_action)


def true_dynamics_baseline(
    env: str,
    planner: Planner,
    *,
    episodes: int,
    horizon: int = 5,
    seed: int = 0,
    repeat: int = 1,
    reduction: str = "min",
    max_steps: int | None = None,
    log: Any = print,
) -> dict[str, float]:
    """The same seeded episodes planned with the env's own dynamics (``env.simulate``) and a state-space goal cost.

    Everything else (planner, horizon, held actions, replanning, goal-cost reduction) is as in `evaluate`, so this is
    the ceiling the planner itself allows: a world model can only approach it, and a gap between the two rows is
    the model's, not the planner's.
    """
    if isinstance(planner, Gradient):
        raise ConfigError("the true-dynamics baseline simulates in numpy, which has no gradients to follow; "
                          "plan it with cem or mppi")  # fmt: skip
    name = env_name(env)
    environment = open_env(name)
    if not hasattr(environment, "simulate"):
        environment.close()
        raise ConfigError(
            f"{display_env_name(name)} has no batched simulator (simulate) to plan with its true dynamics"
        )
    dims = list(DISTANCE_DIMS.get(name, (0, 1)))
    reports = []
    try:
        for i in range(episodes):
            episode_seed = seed + i
            obs = environment.reset(seed=episode_seed)
            _, goal_state = environment.sample_goal(np.random.default_rng(episode_seed))
            cost = GoalCost(goal=torch.tensor(goal_state[dims], dtype=torch.float32), reduction=reduction)
            adapter = HeldActions(environment, repeat=repeat, goal_state=goal_state,
                                  max_raw_steps=max_steps or environment.max_episode_steps)  # fmt: skip
            adapter.start(obs)

            def factory(current: dict[str, np.ndarray], cost: GoalCost = cost) -> CostFn:
                def cost_fn(actions: torch.Tensor) -> torch.Tensor:  # (N, H, A) held -> every k-th raw state
                    raw = actions.repeat_interleave(repeat, dim=1).numpy()  # (N, H·k, A)
                    states = environment.simulate(current["state"], raw)[:, repeat - 1 :: repeat]  # (N, H, S)
                    return cost(torch.from_numpy(states[..., dims]).float(), actions)

                return cost_fn

            recorder, error = _plan_episode(adapter, planner, i=i, episode_seed=episode_seed, log=log, obs=obs,
                                            goal_state=goal_state, cost_fn_factory=factory, horizon=horizon,
                                            generator=torch.Generator().manual_seed(episode_seed))  # fmt: skip
            states = np.stack(adapter.states)
            success = error is None and bool(environment.success(states[-1], goal_state))
            distance = _distance(name, states[-1], goal_state)
            reports.append(EpisodeReport(seed=episode_seed, success=success, steps=len(states) - 1,
                                         plan_seconds=recorder.seconds, decisions=len(recorder.plans),
                                         final_distance=distance, violations=0, error=error,
                                         **action_stats(adapter.actions, None)))  # fmt: skip
    finally:
        environment.close()
    return summarise(reports)


def summarise(reports: list[EpisodeReport], *, action_limit: float | None = None) -> dict[str, float]:
    """The run's row: rates, means and totals over its episodes. `share_over_action_limit` (of all executed steps)
    is NaN without an action-norm limit."""
    wins = [r for r in reports if r.success]
    steps = sum(r.steps for r in reports)
    decisions = sum(r.decisions for r in reports)
    seconds = sum(r.plan_seconds for r in reports)
    return {
        "episodes": len(reports),
        "success_rate": len(wins) / max(len(reports), 1),
        "mean_steps_to_success": float(np.mean([r.steps for r in wins])) if wins else float("nan"),
        "plan_seconds_per_decision": seconds / decisions if decisions else float("nan"),
        "plan_seconds_per_step": seconds / steps if steps else float("nan"),
        "mean_final_distance": float(np.mean([r.final_distance for r in reports])) if reports else float("nan"),
        "violations": sum(r.violations for r in reports),
        "episodes_with_violations": sum(r.violations > 0 for r in reports),
        "failed_plans": sum(r.error is not None for r in reports),
        "max_action_norm": max((r.max_action_norm for r in reports), default=float("nan")),
        "share_over_action_limit": sum(r.over_action_limit for r in reports) / steps
        if action_limit is not None and steps
        else float("nan"),
    }


# --------------------------------------------------------------------------------------------------------------------
# Visuals
# --------------------------------------------------------------------------------------------------------------------


def save_episode_png(
    path: Path,
    *,
    frames: list[np.ndarray],
    goal_frame: np.ndarray,
    states: np.ndarray,
    goal: np.ndarray,
    imagined: list[np.ndarray],
    keep_outs: list[KeepOut],
    title: str,
    walls: list[tuple[tuple[float, float], tuple[float, float]]] = (),  # type: ignore[assignment]
    object_path: tuple[np.ndarray, np.ndarray] | None = None,
    strip: int = 8,
) -> None:
    """Executed frames (evenly subsampled) and the goal frame above true vs imagined paths in state space.

    `object_path` = (positions (T + 1, 2), goal (2,)) of a second body the agent moves, e.g. PushT's block.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = np.linspace(0, len(frames) - 1, min(strip, len(frames))).round().astype(int)
    fig = plt.figure(figsize=(1.4 * (len(picks) + 1), 1.4 + 4.2))
    grid = fig.add_gridspec(2, len(picks) + 1, height_ratios=(1, 3))
    for j, t in enumerate(picks):
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(frames[t])
        ax.set_title(f"t={t}", fontsize=7)
        ax.axis("off")
    ax = fig.add_subplot(grid[0, -1])
    ax.imshow(goal_frame)
    ax.set_title("goal", fontsize=7)
    ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    for zone in keep_outs:
        if zone.center is not None and zone.radius is not None:
            ax.add_patch(plt.Circle(zone.center, zone.radius, color="tab:red", alpha=0.25))
        elif zone.low is not None and zone.high is not None:
            w, h = zone.high[0] - zone.low[0], zone.high[1] - zone.low[1]
            ax.add_patch(plt.Rectangle(zone.low, w, h, color="tab:red", alpha=0.25))
    for j, path_j in enumerate(imagined):
        ax.plot(path_j[:, 0], path_j[:, 1], color="tab:orange", alpha=0.9 if j == 0 else 0.25, lw=1.5 if j == 0
                else 0.8, label="imagined (probe readout)" if j == 0 else None)  # fmt: skip
    ax.plot(states[:, 0], states[:, 1], "-o", color="tab:blue", ms=2, lw=1.5, label="executed (true state)")
    ax.plot(*states[0], "s", color="tab:blue", ms=7, label="start")
    ax.plot(*goal, "*", color="tab:green", ms=14, label="goal")
    if object_path is not None:
        positions, target = object_path
        ax.plot(positions[:, 0], positions[:, 1], "-", color="tab:purple", lw=2, label="object (true state)")
        ax.plot(*positions[0], "s", color="tab:purple", ms=6)
        ax.plot(*target, "*", color="tab:purple", ms=12, label="object's goal")
    # Walls (TwoRooms' wall, PointMaze's wall cells) within the view the paths span, plus a margin: TwoRooms'
    # wall reaches past its arena, and PointMaze's outer walls would otherwise take half the plot.
    ax.autoscale_view()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    mx, my = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    for low, high in walls:
        ax.add_patch(plt.Rectangle(low, high[0] - low[0], high[1] - low[1], color="0.3", alpha=0.5, zorder=0))
    ax.set_xlim(x0 - mx, x1 + mx)
    ax.set_ylim(y0 - my, y1 + my)
    ax.set_aspect("equal", adjustable="box")
    ax.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_episode_gif(
    path: Path, *, frames: list[np.ndarray], goal_frame: np.ndarray, max_frames: int = 100, fps: float = 10.0
) -> None:
    """Animated GIF of the executed frames (H, W, 3), each beside the goal frame, at most `max_frames` of them
    (evenly subsampled, the last always shown): a 300-step episode at 64×64 takes 10-20 KB and ~50 ms."""
    from PIL import Image

    picks = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int))
    goal = np.asarray(goal_frame, dtype=np.uint8)
    gap = np.full((goal.shape[0], 2, 3), 255, dtype=np.uint8)  # a white line between the frame and the goal
    images = [Image.fromarray(np.concatenate([np.asarray(frames[t], dtype=np.uint8), gap, goal], axis=1))
              for t in picks]  # fmt: skip
    # One adaptive palette for the whole clip: per-frame palettes flicker, and 64×64 scenes have few colours.
    palette = images[len(images) // 2].quantize(colors=64)
    quantised = [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
    quantised[0].save(path, save_all=True, append_images=quantised[1:], duration=round(1000 / fps), loop=0)


def write_results(out: Path, rows: dict[str, dict[str, float]], reports: list[EpisodeReport], meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "summary": rows, "episodes": [dataclasses.asdict(r) for r in reports]}
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=float))
