"""Tests for jepaworld.planning: planners on a known optimum, determinism, NaN handling, guardrails and MPC."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepaworld.config import ConfigError
from jepaworld.envs import TwoRooms
from jepaworld.plan_eval import true_dynamics_baseline
from jepaworld.planning import (
    CEM,
    PLANNERS,
    ActionMagnitude,
    GoalCost,
    Gradient,
    KeepOut,
    PlanningError,
    TotalCost,
    Waypoints,
    make_cost_fn,
    make_planner,
    plan,
    run_mpc,
    shift_plan,
)

H, A = 5, 2
SMALL = {
    "cem": {"samples": 200, "elites": 20, "iters": 20},
    "mppi": {"samples": 300, "iters": 30, "temperature": 0.02, "noise_std": 0.2},
    "gradient": {"iters": 200, "lr": 0.05, "restarts": 2},
}


def target() -> torch.Tensor:
    return torch.linspace(-0.8, 0.8, H * A).reshape(H, A)  # a* strictly inside (-1, 1)


def quadratic(actions: torch.Tensor) -> torch.Tensor:  # (N, H, A) -> (N,)
    return (actions - target()).pow(2).sum((1, 2))


def test_registry_and_unknown_name():
    assert set(PLANNERS) == set(SMALL)
    assert isinstance(make_planner("cem", samples=10, elites=2), CEM)
    with pytest.raises(ValueError, match="known planners are cem, gradient, mppi"):
        make_planner("cme")


def test_cem_elites_follow_the_sample_count_and_bad_sizes_fail_at_construction():
    # A tenth of the samples (DINO-WM's 30 of 300), at least 2 so that the refit Gaussian has a spread.
    assert [CEM(samples=n).elites for n in (300, 20, 1000, 12, 5, 1)] == [30, 2, 100, 2, 2, 1]
    assert CEM(samples=20, elites=5).elites == 5  # an explicit count is kept
    result = plan(CEM(samples=20, iters=3), quadratic, horizon=H, action_dim=A, generator=torch.Generator())
    assert result.actions.shape == (H, A)
    with pytest.raises(ValueError, match="CEM needs samples >= 1, got 0"):
        CEM(samples=0)
    with pytest.raises(ValueError, match="CEM needs 0 < elites <= samples, got elites=30, samples=20"):
        CEM(samples=20, elites=30)
    with pytest.raises(ValueError, match="MPPI needs iters >= 1, got 0"):
        make_planner("mppi", iters=0)
    with pytest.raises(ValueError, match="Gradient needs restarts >= 1, got 0"):
        Gradient(restarts=0)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_planner_reaches_quadratic_optimum(name):
    result = plan(
        make_planner(name, **SMALL[name]),
        quadratic,
        horizon=H,
        action_dim=A,
        generator=torch.Generator().manual_seed(0),
    )
    assert result.actions.shape == (H, A)
    assert result.iters == SMALL[name]["iters"]
    assert result.seconds > 0
    assert result.cost == pytest.approx(float(quadratic(result.actions[None])[0]), abs=1e-5)
    assert torch.allclose(result.actions, target(), atol=0.1), (result.actions - target()).abs().max()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_seed_same_plan(name):
    planner = make_planner(name, **SMALL[name])

    def run(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return plan(planner, quadratic, horizon=H, action_dim=A, generator=generator).actions

    assert torch.equal(run(3), run(3))
    if name != "gradient":  # a deterministic gradient descent may converge to the same point from any seed
        assert not torch.equal(run(3), run(4))


def test_cem_momentum_blends_the_old_mean_with_the_elites():
    seen: list[torch.Tensor] = []

    def cost(actions: torch.Tensor) -> torch.Tensor:
        seen.append(actions.clone())
        return quadratic(actions)

    init = torch.full((H, A), 0.5)
    plan(CEM(samples=40, elites=4, iters=2, momentum=0.7), cost, horizon=H, action_dim=A,
         generator=torch.Generator().manual_seed(0), init=init)  # fmt: skip
    first = seen[0]  # (N, H, A); candidate 0 of each iteration is that iteration's mean
    elites = first[quadratic(first).argsort()[:4]]
    assert torch.allclose(seen[1][0], 0.7 * init + 0.3 * elites.mean(0))


def test_gradient_restarts_draw_their_noise_from_the_given_generator():
    def first_candidates(seed: int) -> torch.Tensor:
        seen: list[torch.Tensor] = []

        def cost(actions: torch.Tensor) -> torch.Tensor:
            seen.append(actions.detach().clone())
            return quadratic(actions)

        plan(
            Gradient(iters=1, restarts=3), cost, horizon=H, action_dim=A, generator=torch.Generator().manual_seed(seed)
        )
        return seen[0]  # (restarts, H, A): restart 0 at the (zero) warm start, the others at it plus noise

    assert torch.equal(first_candidates(3), first_candidates(3))
    a, b = first_candidates(3), first_candidates(4)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1:], b[1:])


def test_cem_keeps_its_sampling_spread_at_min_std():
    """The elites' spread collapses on a smooth optimum; `min_std` keeps the search exploring."""

    def last_spread(floor: float) -> float:
        seen: list[torch.Tensor] = []

        def cost(actions: torch.Tensor) -> torch.Tensor:
            seen.append(actions)
            return quadratic(actions)

        plan(CEM(samples=50, elites=5, iters=20, min_std=floor), cost, horizon=H, action_dim=A,
             generator=torch.Generator().manual_seed(0))  # fmt: skip
        return float(seen[-1].std(0).mean())  # over the last iteration's candidates

    assert last_spread(0.0) < 0.002 and 0.07 < last_spread(0.1) < 0.13


def test_actions_are_clamped_when_the_optimum_is_outside():
    def far(actions: torch.Tensor) -> torch.Tensor:
        return (actions - 5.0).pow(2).sum((1, 2))

    for name in SMALL:
        result = plan(make_planner(name, **SMALL[name]), far, horizon=H, action_dim=A, generator=torch.Generator())
        assert result.actions.abs().max() <= 1.0
        assert result.actions.min() > 0.95, name


@pytest.mark.parametrize("name", sorted(SMALL))
def test_nan_cost_raises_planning_error(name):
    def nan_cost(actions: torch.Tensor) -> torch.Tensor:
        return quadratic(actions) * torch.nan

    with pytest.raises(PlanningError, match="NaN"):
        plan(make_planner(name, **SMALL[name]), nan_cost, horizon=H, action_dim=A, generator=torch.Generator())


def test_gradient_planner_needs_a_differentiable_cost():
    def detached(actions: torch.Tensor) -> torch.Tensor:
        return quadratic(actions).detach()

    with pytest.raises(PlanningError, match="differentiable"):
        plan(Gradient(iters=2), detached, horizon=H, action_dim=A, generator=torch.Generator())


def test_warm_start_is_kept_and_shifted():
    init = target()
    result = plan(
        CEM(samples=50, elites=5, iters=1), quadratic, horizon=H, action_dim=A, generator=torch.Generator(), init=init
    )
    assert result.cost == pytest.approx(0.0, abs=1e-9)  # the warm start is the optimum and is always a candidate
    shifted = shift_plan(init, 2)
    assert torch.equal(shifted[:-2], init[2:]) and torch.equal(shifted[-2:], init[-1:].expand(2, A))
    with pytest.raises(ValueError, match="init must have shape"):
        plan(CEM(), quadratic, horizon=H + 1, action_dim=A, generator=torch.Generator(), init=init)


def test_costs_and_breakdown():
    latents = torch.tensor([[[0.0, 0.0], [1.0, 1.0]], [[2.0, 0.0], [0.0, 2.0]]])  # (N=2, H=2, D=2)
    actions = torch.tensor([[[0.5, 0.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])  # (N=2, H=2, A=2)
    goal = torch.tensor([1.0, 1.0])
    last = GoalCost(goal=goal)(latents, actions)
    assert torch.allclose(last, torch.tensor([0.0, 1.0]))  # mean squared error at the last step
    path = GoalCost(goal=goal, reduction="sum")(latents, actions)
    assert torch.allclose(path, torch.tensor([1.0, 2.0]))
    closest = GoalCost(goal=goal, reduction="min")(latents, actions)
    assert torch.allclose(closest, torch.tensor([0.0, 1.0]))  # the closest approach anywhere in the horizon
    cosine = GoalCost(goal=goal, metric="cosine")(latents, actions)
    assert torch.allclose(cosine, torch.tensor([0.0, 1 - 2**-0.5]), atol=1e-6)
    # Weighted: (w·(z - g)²).sum / w.sum. Last steps (1, 1) and (0, 2): errors (0, 0) and (1, 1).
    weighted = GoalCost(goal=goal, weights=torch.tensor([3.0, 1.0]))(latents, actions)
    assert torch.allclose(weighted, torch.tensor([0.0, (3 * 1 + 1 * 1) / 4]))
    only_first = GoalCost(goal=goal, weights=torch.tensor([1.0, 0.0]), reduction="sum")(latents, actions)
    assert torch.allclose(only_first, torch.tensor([1.0 + 0.0, 1.0 + 1.0]))  # (0-1)², (1-1)²; (2-1)², (0-1)²
    with pytest.raises(ValueError, match="non-negative"):
        GoalCost(goal=goal, weights=torch.tensor([1.0, -1.0]))(latents, actions)

    disc = KeepOut(position_fn=lambda z: z, center=(0.0, 0.0), radius=0.5, weight=10.0)
    assert torch.allclose(disc(latents, actions), torch.tensor([10 * 0.25, 0.0]))
    box = KeepOut(position_fn=lambda z: z, low=(1.5, -1.0), high=(2.5, 1.0), weight=1.0)
    assert torch.allclose(box(latents, actions), torch.tensor([0.0, 0.25]))
    assert box.inside(latents).tolist() == [[False, False], [True, False]]
    with pytest.raises(ValueError, match="disc"):
        KeepOut(position_fn=lambda z: z, center=(0.0, 0.0))

    magnitude = ActionMagnitude(limit=1.0, weight=1.0)(latents, actions)
    assert torch.allclose(magnitude, torch.tensor([(2**0.5 - 1) ** 2, 0.0]))

    total = TotalCost(terms={"goal": GoalCost(goal=goal), "keep_out": disc}, weights={"keep_out": 2.0})
    parts = total.breakdown(latents, actions)
    assert torch.allclose(parts["keep_out"], 2 * disc(latents, actions))
    assert torch.allclose(total(latents, actions), parts["goal"] + parts["keep_out"])
    with pytest.raises(ValueError, match="unknown cost terms"):
        TotalCost(terms={"goal": GoalCost(goal=goal)}, weights={"gaol": 1.0})


def test_keep_out_checks_the_segments_between_predictions():
    """Two predictions outside a disc whose straight segment cuts through it: only substeps see the violation."""
    latents = torch.tensor([[[-0.2, 0.05], [0.2, 0.05]]])  # (N=1, H=2, 2): both about 0.2 from the centre
    disc = {"position_fn": lambda z: z, "center": (0.0, 0.0), "radius": 0.1, "weight": 1.0}
    assert KeepOut(**disc)(latents, latents).item() == 0.0
    crossing = KeepOut(**disc, substeps=4)
    assert crossing.path(latents).shape == (1, 8, 2)
    assert torch.allclose(crossing.path(latents)[0, 4:6], torch.tensor([[-0.1, 0.05], [0.0, 0.05]]))
    assert crossing(latents, latents).item() == pytest.approx(0.05**2)  # only (0, 0.05) is inside, 0.05 deep
    # From an origin inside the zone, the first segment starts there.
    anchored = KeepOut(**disc, substeps=4, origin=(0.0, 0.0))
    assert torch.allclose(anchored.path(latents)[0, 0], torch.tensor([-0.05, 0.0125]))
    assert anchored(latents, latents).item() > crossing(latents, latents).item()


# Guardrail demo with the true dynamics of a TwoRooms-like point: position = start + cumsum(actions) * step.
START, GOAL, STEP = (0.1, 0.5), (0.9, 0.5), 0.1
ZONE = {"center": (0.5, 0.5), "radius": 0.15}


def point_rollout(actions: torch.Tensor) -> torch.Tensor:  # (N, H, 2) -> positions (N, H, 2)
    return torch.tensor(START) + STEP * actions.cumsum(1)


@pytest.mark.parametrize("planner", [CEM(samples=300, elites=30, iters=30), Gradient(iters=200, lr=0.05, restarts=8)])
def test_keep_out_guardrail_avoids_the_zone_and_still_reaches_the_goal(planner):
    goal_cost = GoalCost(goal=torch.tensor(GOAL), reduction="sum")
    keep_out = KeepOut(position_fn=lambda z: z, margin=0.03, **ZONE)

    def solve(cost) -> torch.Tensor:
        cost_fn = make_cost_fn(point_rollout, cost)
        result = plan(planner, cost_fn, horizon=12, action_dim=2, generator=torch.Generator().manual_seed(0))
        return point_rollout(result.actions[None])[0]  # (H, 2)

    plain = solve(goal_cost)
    guarded = solve(TotalCost(terms={"goal": goal_cost, "keep_out": keep_out}))
    inside = KeepOut(position_fn=lambda z: z, **ZONE).inside
    assert inside(plain).any()  # the straight path to the goal runs through the zone
    assert not inside(guarded).any()
    assert torch.linalg.norm(guarded[-1] - torch.tensor(GOAL)) < 0.05


def test_run_mpc_crosses_the_door_with_wall_guardrails():
    """A wall-unaware point model plus KeepOut guardrails on the wall plans TwoRooms through the door."""
    env = TwoRooms()
    obs = env.reset(seed=0)
    goal_obs, goal_state = env.sample_goal(np.random.default_rng(0))
    lower, upper = (KeepOut(position_fn=lambda z: z, low=lo, high=hi, margin=0.01) for lo, hi in env.blocked_regions())
    walls = {"lower_wall": lower, "upper_wall": upper}
    goal = torch.tensor(goal_state)

    def factory(current: dict[str, np.ndarray]):
        start = torch.tensor(current["state"])

        def rollout(actions: torch.Tensor) -> torch.Tensor:
            return start + env.max_step * actions.cumsum(1)

        return make_cost_fn(rollout, TotalCost(terms={"goal": GoalCost(goal=goal, reduction="sum"), **walls}))

    result = run_mpc(
        env,
        CEM(samples=200, elites=20, iters=8),
        obs=obs,
        goal_state=goal_state,
        cost_fn_factory=factory,
        horizon=30,
        replan_every=2,
        generator=torch.Generator().manual_seed(0),
        violation_fn=lambda s: bool(lower.inside(torch.tensor(s)) or upper.inside(torch.tensor(s))),
    )
    assert result.success, result.states[-1]
    assert result.violations == 0
    assert env.room(result.states[0]) != env.room(result.states[-1])
    assert result.states.shape == (result.steps + 1, 2)
    assert result.frames.shape == (result.steps + 1, 64, 64, 3)
    assert result.plan_seconds_per_action > 0
    assert goal_obs["pixels"].shape == (64, 64, 3)


def test_run_mpc_replans_every_k_steps_from_the_shifted_plan():
    """Each plan is executed for `replan_every` steps, and the next search starts from it shifted by as many."""

    class Recording:
        def __init__(self) -> None:
            self.inits: list[torch.Tensor] = []
            self.plans: list[torch.Tensor] = []

        def optimise(self, cost_fn, *, init, generator):
            self.inits.append(init.clone())
            self.plans.append(torch.rand(init.shape, generator=generator) * 2 - 1)  # a distinct plan each time
            return self.plans[-1], 0.0, 1

    env, planner, k = TwoRooms(), Recording(), 3
    obs = env.reset(seed=0)
    _, goal_state = env.sample_goal(np.random.default_rng(0))
    result = run_mpc(env, planner, obs=obs, goal_state=goal_state, cost_fn_factory=lambda _: quadratic, horizon=H,
                     generator=torch.Generator().manual_seed(0), max_steps=8, replan_every=k,
                     record_frames=False)  # fmt: skip
    assert result.steps == 8 and len(planner.plans) == 3  # steps 0-2, 3-5, 6-7
    assert torch.equal(planner.inits[0], torch.zeros(H, A))
    for previous, init in zip(planner.plans[:-1], planner.inits[1:], strict=True):  # each plan seeds the next
        assert torch.equal(init, shift_plan(previous, k))


def test_closest_approach_cost_crosses_the_door_with_the_true_dynamics():
    """With the env's own dynamics as the model, only the goal cost's reduction differs between the two runs.

    "min" (closest approach in the horizon) reaches every goal in the other room; "last" lets each replan postpone
    arrival and fails some (measured on 50 episodes: 100% vs 42% for CEM).
    """
    planner = CEM(samples=300, elites=30, iters=10)
    runs = {r: true_dynamics_baseline("tworooms", planner, episodes=8, seed=1000, repeat=5, reduction=r)
            for r in ("min", "last")}  # fmt: skip
    assert runs["min"]["success_rate"] == 1.0
    assert runs["last"]["success_rate"] < runs["min"]["success_rate"]


class FailsOnCall:
    """A CEM that raises PlanningError on its n-th plan (counting from 1), as a NaN cost would."""

    def __init__(self, n: int) -> None:
        self.n, self.calls, self.inner = n, 0, CEM(samples=20, elites=4, iters=2)

    def optimise(self, cost_fn, *, init, generator):
        self.calls += 1
        if self.calls == self.n:
            raise PlanningError("cost_fn returned NaN")
        return self.inner.optimise(cost_fn, init=init, generator=generator)


def test_true_dynamics_baseline_counts_a_failed_plan_and_goes_on():
    messages: list[str] = []
    summary = true_dynamics_baseline("tworooms", FailsOnCall(2), episodes=2, seed=0, repeat=5, max_steps=20,
                                     log=messages.append)  # fmt: skip
    assert summary["failed_plans"] == 1 and summary["episodes"] == 2
    assert len(messages) == 1 and "episode 0" in messages[0] and "NaN" in messages[0]


def test_true_dynamics_baseline_refuses_the_gradient_planner():
    # its numpy simulator has no gradients; the error says which planners work
    with pytest.raises(ConfigError, match="cem or mppi"):
        true_dynamics_baseline("tworooms", Gradient(iters=2), episodes=1)


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(SMALL))
def test_planner_on_cuda(name):
    """Candidates are drawn on the CPU generator and moved, so the plan lives on the cost's device."""
    goal = target().cuda()
    result = plan(
        make_planner(name, **SMALL[name]),
        lambda actions: (actions - goal).pow(2).sum((1, 2)),
        horizon=H,
        action_dim=A,
        generator=torch.Generator().manual_seed(0),
        device="cuda",
    )
    assert result.actions.device.type == "cuda"
    assert torch.allclose(result.actions.cpu(), target(), atol=0.1)


def _corridor() -> tuple[torch.Tensor, torch.Tensor]:
    """A U-shaped corridor of recorded moves: right along y = 1, down x = 2, left along y = -1, 0.25 apart, both
    ways. Its two ends are 2 apart in a straight line, through the (unrecorded) wall, and 6 along the corridor."""
    top = [(x, 1.0) for x in np.arange(0.0, 2.0, 0.25)]
    side = [(2.0, y) for y in np.arange(1.0, -1.0, -0.25)]
    bottom = [(x, -1.0) for x in np.arange(2.0, -0.01, -0.25)]
    nodes = torch.tensor(top + side + bottom, dtype=torch.float32)  # (N, 2) in walking order
    forward = torch.stack([torch.arange(len(nodes) - 1), torch.arange(1, len(nodes))], dim=1)
    return nodes, torch.cat([forward, forward.flip(1)])


def test_waypoints_lead_around_the_wall_not_through_it():
    nodes, pairs = _corridor()
    waypoints = Waypoints(nodes=nodes, pairs=pairs, hops=3)
    assert waypoints.radius == pytest.approx(0.25)
    goal = torch.tensor([0.0, -1.0])
    waypoints.set_goal(goal)
    # From the top end, 3 edges along the corridor (the greedy direction, straight down, has no edge).
    assert waypoints.subgoal(torch.tensor([0.05, 1.0])).tolist() == pytest.approx([0.75, 1.0])
    assert waypoints.subgoal(torch.tensor([2.0, -0.5])).tolist() == pytest.approx([1.75, -1.0])
    assert waypoints.subgoal(torch.tensor([0.5, -1.0])) is goal  # within 3 edges: the goal itself
    assert waypoints.subgoal(torch.tensor([0.75, -1.0])) is goal  # exactly 3 edges: the last hop reaches it
    # A goal no recorded move leads to is aimed at directly.
    stray = Waypoints(nodes=torch.cat([nodes, torch.tensor([[9.0, 9.0]])]), pairs=pairs, hops=3, radius=0.3)
    far = torch.tensor([9.0, 9.0])
    stray.set_goal(far)
    assert stray.subgoal(torch.tensor([0.0, 1.0])) is far
    # Weights pick the features that count: a third, noisy feature with weight 0 changes nothing.
    noisy = torch.cat([nodes, torch.randn(len(nodes), 1, generator=torch.Generator().manual_seed(0)) * 5], dim=1)
    weighted = Waypoints(nodes=noisy, pairs=pairs, hops=3, weights=torch.tensor([1.0, 1.0, 0.0]))
    weighted.set_goal(torch.tensor([0.0, -1.0, 0.0]))
    assert weighted.subgoal(torch.tensor([0.05, 1.0, 7.0]))[:2].tolist() == pytest.approx([0.75, 1.0])
