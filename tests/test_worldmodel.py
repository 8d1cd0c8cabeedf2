"""Unit and contract tests for the action-conditioned world model, its state probe and plan evaluation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jepaworld.checkpoint import CheckpointError, save_checkpoint
from jepaworld.config import ConfigError, ExperimentConfig, get_preset
from jepaworld.data.images import DataError
from jepaworld.envs import TwoRooms
from jepaworld.methods import METHODS, DataSpec, WorldModel, build_method
from jepaworld.methods.worldmodel import FramePredictor, LatentBottleneck
from jepaworld.plan_eval import (
    EpisodeReport,
    HeldActions,
    LatentPlanningCost,
    action_stats,
    encode_obs,
    evaluate,
    goal_part_weights,
    load_world_model,
    parse_keep_out,
    summarise,
    to_tensor,
)
from jepaworld.planning import CEM, GoalCost, KeepOut, PlanningError, TotalCost
from jepaworld.state_probe import StateProbe, fit_state_probe

# 16 px, patch 8: 4 tokens, fast. Proprioception statistics are used only by a model built with proprio_dim > 0.
SPEC = DataSpec(channels=3, img_size=16, frames=1, action_dim=4, proprio_mean=(0.5, -1.0, 0.0),
                proprio_std=(0.25, 2.0, 1.0))  # fmt: skip
B, W = 4, 3


def config(**method: object) -> ExperimentConfig:
    cfg = get_preset("wm-tworooms-micro")
    latent_dim = int(method.pop("latent_dim", 0))  # type: ignore[call-overload]
    history = int(method.pop("history", 1))  # type: ignore[call-overload]
    frame_pool = str(method.pop("frame_pool", "keypoints"))
    proprio_dim = int(method.pop("proprio_dim", 0))  # type: ignore[call-overload]
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, img_size=16, frame_step=2),  # actions: 2 raw steps × 2 dims
        model=dataclasses.replace(
            cfg.model,
            action_dim=4,
            patch_size=8,
            latent_dim=latent_dim,
            history=history,
            frame_dim=16,
            pred_dim=16,
            frame_pool=frame_pool,
            proprio_dim=proprio_dim,
        ),
        method=dataclasses.replace(cfg.method, **method),
    )


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"frames": torch.rand(B, W + 1, 3, 16, 16, generator=g), "actions": torch.rand(B, W, 4, generator=g) * 2 - 1,
            "proprio": torch.randn(B, W + 1, 3, generator=g)}  # fmt: skip


VARIANTS = {
    "online-sigreg": dict(target="online", regularizer="sigreg"),
    "online-vicreg-idm": dict(target="online", regularizer="vicreg", inverse_dynamics=1.0, expander_dim=32),
    "ema": dict(target="ema", regularizer="none"),
    "latent": dict(target="online", regularizer="sigreg", latent_dim=3),
    "history": dict(target="online", regularizer="sigreg", history=3, rollout_steps=3),
    "flat": dict(target="online", regularizer="vicreg", frame_pool="flat"),
    "proprio-ema": dict(target="ema", regularizer="none", proprio_dim=5),
    "proprio-vicreg": dict(target="online", regularizer="vicreg", proprio_dim=5, inverse_dynamics=1.0),
    "proprio-sigreg": dict(target="online", regularizer="sigreg", proprio_dim=5),
}


def test_registered():
    assert "worldmodel" in METHODS


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_forward_shapes_and_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = build_method(config(**VARIANTS[name]), SPEC)
    assert isinstance(model, WorldModel)
    data = model.prepare(batch(), torch.Generator().manual_seed(0))
    loss, logs = model(data)
    assert loss.shape == () and torch.isfinite(loss)
    assert {"loss/teacher_forcing", "loss/rollout"} <= set(logs)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing, missing
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert all(n.startswith(("target_encoder", "target_head", "target_proprio")) for n in frozen), frozen
    model.after_step(0.5)

    D = 16 + model.proprio_dim  # the pixel embedding, then the proprioception's features
    proprio = data["proprio"] if model.proprio_dim else None
    z = model.encode(data["frames"], proprio)  # (B, T, D)
    assert z.shape == (B, W + 1, D)
    assert model.encode(data["frames"][:, 0], None if proprio is None else proprio[:, 0]).shape == (B, D)
    assert model.features(data["frames"]).shape == (B, 16)  # what the trainer's collapse diagnostics call
    rolled = model.rollout(z[:, 0], torch.zeros(7, 5, 4)[:B])
    assert rolled.shape == (B, 5, D)


def test_proprioception_is_standardised_and_appended_to_the_pixel_embedding():
    torch.manual_seed(0)
    model = build_method(config(**VARIANTS["proprio-ema"]), SPEC)
    frames = batch()["frames"][:, 0]  # (B, 3, 16, 16)
    mean = torch.tensor(SPEC.proprio_mean)
    a, b = torch.randn(B, 3), torch.randn(B, 3)
    za, zb = model.encode(frames, a), model.encode(frames, b)  # (B, 21)
    assert torch.equal(za[:, :16], zb[:, :16]) and not torch.allclose(za[:, 16:], zb[:, 16:])
    assert torch.equal(za[:, :16], model.encode(frames, a, target=True)[:, :16])  # EMA copy, no step taken yet
    # Standardised first: the training-set mean maps to the linear layer's bias, whatever the units.
    at_mean = model.encode(frames, mean.expand(B, 3))[:, 16:]
    assert torch.allclose(at_mean, model.proprio.proj.bias.expand(B, 5))
    scaled = (a - mean) / torch.tensor(SPEC.proprio_std)
    assert torch.allclose(za[:, 16:], model.proprio.proj(scaled), atol=1e-6)
    with pytest.raises(ValueError, match="takes proprioception"):
        model.encode(frames)
    with pytest.raises(ValueError, match="has 2 dimensions, the world model was trained on 3"):
        model.encode(frames, torch.zeros(B, 2))


def test_proprioception_needs_a_dataset_that_has_it():
    with pytest.raises(DataError, match=r"set --model\.proprio_dim 0"):
        build_method(config(proprio_dim=4), dataclasses.replace(SPEC, proprio_mean=(), proprio_std=()))


def test_same_generator_same_loss():
    model = build_method(config(**VARIANTS["latent"]), SPEC)
    losses = [model(model.prepare(batch(), torch.Generator().manual_seed(3)))[0].item() for _ in range(2)]
    assert losses[0] == losses[1]


def test_predictor_is_translation_invariant_in_time():
    """Teacher forcing over a long window and a rollout from a short context must compute the same function."""
    torch.manual_seed(0)
    predictor = FramePredictor(frame_dim=8, action_dim=2, dim=16, depth=2, num_heads=2, history=2)
    z, a = torch.randn(3, 6, 8), torch.randn(3, 6, 2)
    full = predictor(z, a)  # (3, 6, 8)
    for t in range(1, 6):
        window = predictor(z[:, t - 1 : t + 1], a[:, t - 1 : t + 1])[:, -1]  # the last `history` frames only
        assert torch.allclose(full[:, t], window, atol=1e-5)


def test_latent_variable_captures_a_random_outcome():
    """A gust the action does not determine pushes two features by +1 or -1 at random. Without z the predictor can
    only learn the mean outcome (no push); with z, inferred through the bottleneck in training and drawn from the
    prior at planning time, one of a few draws lands near whichever outcome happened, which is what planning by
    sampling or by worst case relies on. Trained on embeddings directly: the encoder plays no part here."""

    def gusts(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z, a = torch.randn(n, 1, 16, generator=g), torch.rand(n, 1, 4, generator=g) * 2 - 1  # (n, 1, D), (n, 1, A)
        sign = torch.randint(0, 2, (n, 1, 1), generator=g) * 2.0 - 1.0
        return z, a, z + F.pad(sign.expand(n, 1, 2), (4, 10))  # features 4 and 5 move by ±1

    errors = {}
    for latent_dim in (0, 2):
        torch.manual_seed(0)
        model = build_method(config(target="online", regularizer="none", latent_dim=latent_dim), SPEC)
        parts = [model.predictor] + ([model.bottleneck] if latent_dim else [])
        opt = torch.optim.Adam([p for m in parts for p in m.parameters()], lr=3e-3)
        g = torch.Generator().manual_seed(1)
        for _ in range(200):
            z, a, nxt = gusts(256, g)
            latent = model.bottleneck(z, nxt, torch.randn(256, 1, latent_dim, generator=g)) if latent_dim else None
            loss = F.mse_loss(model.predictor(z, a, latent), nxt)
            opt.zero_grad()
            loss.backward()
            opt.step()
        z, a, nxt = gusts(512, torch.Generator().manual_seed(2))
        with torch.no_grad():
            draws = [model.prior_latent((512, 1), torch.Generator().manual_seed(3 + k)) for k in range(8)]
            preds = torch.stack([model.predictor(z, a, d) for d in draws])  # (8, 512, 1, D)
        errors[latent_dim] = (preds - nxt).pow(2).mean((2, 3)).min(0).values.mean().item()  # best of 8 draws
    assert errors[0] == pytest.approx(2 / 16, rel=0.2)  # without z: the mean, a squared error of 1 on 2 of 16
    assert errors[2] < 0.1 * errors[0], errors  # with z: one draw of 8 finds the outcome that happened


def test_latent_variable_changes_predictions_and_respects_its_budget():
    torch.manual_seed(0)
    model = build_method(config(**VARIANTS["latent"]), SPEC)
    z0, actions = torch.randn(5, 16), torch.zeros(5, 4, 4)
    latent = model.prior_latent((5, 4), torch.Generator().manual_seed(0))
    assert latent is not None and latent.shape == (5, 4, 3)
    assert not torch.allclose(model.rollout(z0, actions, latent), model.rollout(z0, actions))

    bottleneck = LatentBottleneck(frame_dim=16, latent_dim=3, budget=1.5)
    capacity = 0.5 * 3 * math.log(1 + bottleneck.power / 3)  # Shannon capacity of the power-limited channel
    assert capacity == pytest.approx(1.5)
    mu = bottleneck.mean(100 * torch.randn(64, 16), 100 * torch.randn(64, 16))
    assert (mu.pow(2).sum(-1) <= bottleneck.power * (1 + 1e-5)).all()
    assert build_method(config(), SPEC).prior_latent((2, 3)) is None


def test_dataset_action_dim_must_match_the_model():
    with pytest.raises(DataError, match=r"set --model\.action_dim 6"):
        build_method(config(), dataclasses.replace(SPEC, action_dim=6))


def test_state_probe_fits_a_known_map():
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(800, 8, generator=g)
    states = torch.stack([latents[:, 0] + 0.5 * latents[:, 1], torch.tanh(latents[:, 2])], dim=1)
    probe, metrics = fit_state_probe(latents, states, steps=300)
    assert metrics["probe/r2_min"] > 0.95 and metrics["probe/rmse"] < 0.15
    r2 = metrics["probe/r2"]
    assert len(r2) == 2 and min(r2) == pytest.approx(metrics["probe/r2_min"], abs=1e-4)
    assert probe(latents[:3]).shape == (3, 2)
    # A state dimension the latents do not carry reads as R² near 0 on its own, not hidden in an average.
    noise = torch.randn(800, generator=g)
    _, metrics = fit_state_probe(latents, torch.stack([states[:, 0], noise], dim=1), steps=300)
    assert metrics["probe/r2"][0] > 0.95 and metrics["probe/r2"][1] < 0.2


def _tiny_world_model(tmp_path, **method: object):
    cfg = dataclasses.replace(config(**method), data=dataclasses.replace(config().data, img_size=64, frame_step=5))
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, action_dim=10))
    # TwoRooms' proprioception is the agent's (x, y) in [0, 1].
    spec = DataSpec(channels=3, img_size=64, frames=1, action_dim=10, proprio_mean=(0.5, 0.5), proprio_std=(0.3, 0.3))
    torch.manual_seed(0)
    model = build_method(cfg, spec)
    save_checkpoint(tmp_path / "checkpoint.pt", cfg=cfg, spec=spec, method=model, step=1)
    return load_world_model(tmp_path)[0]


def test_load_refuses_a_checkpoint_without_an_action_conditioned_predictor(tmp_path):
    cfg = get_preset("ijepa-digits-micro")
    spec = DataSpec(channels=1, img_size=16)
    save_checkpoint(tmp_path / "checkpoint.pt", cfg=cfg, spec=spec, method=build_method(cfg, spec))
    with pytest.raises(CheckpointError, match="no action-conditioned predictor"):
        load_world_model(tmp_path)


def test_goal_frame_of_the_wrong_size_is_refused(tmp_path):
    model = _tiny_world_model(tmp_path)
    assert to_tensor(np.zeros((64, 64, 3), np.uint8), model).shape == (1, 3, 64, 64)
    refused = "goal image has shape \\(32, 32, 3\\); the world model takes 64×64×3 frames; resize it to 64×64"
    with pytest.raises(ConfigError, match=refused):
        to_tensor(np.zeros((32, 32, 3), np.uint8), model, what="goal image")


def test_read_only_frames_are_copied_without_a_warning(tmp_path):
    """GymPixels' PIL-resized frames (e.g. gym:Pendulum-v1) are read-only; torch warns on those (an error here)."""
    frame = np.full((64, 64, 3), 255, np.uint8)
    frame.flags.writeable = False
    assert to_tensor(frame, _tiny_world_model(tmp_path)).min().item() == 1.0


def test_planning_cost_worst_case_is_at_least_the_sampled_cost(tmp_path):
    model = _tiny_world_model(tmp_path, latent_dim=2)
    cost = TotalCost(terms={"goal": GoalCost(goal=torch.zeros(16))})
    z0, actions = torch.randn(1, 16), torch.rand(6, 3, 2) * 2 - 1

    def make(mode: str) -> LatentPlanningCost:
        return LatentPlanningCost(model=model, cost=cost, repeat=5, generator=torch.Generator().manual_seed(0),
                                  z_mode=mode, z_samples=4)  # fmt: skip

    worst, sampled = make("worst").evaluate(z0, actions), make("sample").evaluate(z0, actions)
    assert worst.shape == sampled.shape == (6,)
    assert (worst >= sampled - 1e-6).all()  # the first of the worst case's samples is the sampled one


def test_planning_cost_anchors_segment_keep_outs_at_the_current_position(tmp_path):
    """Each new observation starts the keep-out segments at the readout of its own embedding."""
    model = _tiny_world_model(tmp_path)
    zone = KeepOut(position_fn=lambda z: z[..., :2], center=(0.0, 0.0), radius=0.1, substeps=5)
    cost = TotalCost(terms={"goal": GoalCost(goal=torch.zeros(16)), "zone": zone, "plain": dataclasses.replace(zone,
                     substeps=1)})  # fmt: skip
    costs = LatentPlanningCost(model=model, cost=cost, repeat=5, generator=torch.Generator().manual_seed(0))
    z0 = torch.randn(1, 16)
    anchored = costs.anchored(z0)
    assert anchored.terms["zone"].origin == pytest.approx(z0[0, :2].tolist())
    assert anchored.terms["plain"].origin is None and anchored.terms["goal"] is cost.terms["goal"]


def test_planning_cost_anchors_in_the_target_encoders_space(tmp_path):
    """Waypoints, goal and state probe are fitted on target embeddings: with an EMA target that lags the online
    encoder, the anchors read the target encoding of the observation, while the rollout starts from the online one."""
    model = _tiny_world_model(tmp_path, target="ema", regularizer="none")
    with torch.no_grad():
        for p in model.target_encoder.parameters():
            p.add_(0.1 * torch.randn_like(p))
    zone = KeepOut(position_fn=lambda z: z[..., :2], center=(0.0, 0.0), radius=0.1, substeps=5)
    costs = LatentPlanningCost(model=model, cost=TotalCost(terms={"goal": GoalCost(goal=torch.zeros(16)),
                               "zone": zone}), repeat=5, generator=torch.Generator().manual_seed(0))  # fmt: skip
    anchors: list[torch.Tensor] = []
    anchored = costs.anchored
    costs.anchored = lambda here: anchors.append(here) or anchored(here)  # type: ignore[method-assign]
    obs = TwoRooms().reset(seed=0)
    costs(obs)
    online, target = encode_obs(model, obs), encode_obs(model, obs, target=True)
    assert not torch.allclose(online, target)
    assert torch.equal(anchors[0], target) and torch.equal(costs.starts[0], online)


def test_nan_cost_fails_the_episode_and_the_evaluation_continues(tmp_path):
    model = _tiny_world_model(tmp_path)
    with torch.no_grad():
        model.predictor.head.bias.fill_(float("nan"))
    messages: list[str] = []
    reports, summary = evaluate(model, StateProbe(latent_dim=16, state_dim=2), env="tworooms",
                                planner=CEM(samples=8, elites=2, iters=1), episodes=2, horizon=2, repeat=5,
                                max_steps=10, log=messages.append)  # fmt: skip
    assert len(reports) == 2 and summary["failed_plans"] == 2 and summary["success_rate"] == 0
    assert all("NaN" in (r.error or "") for r in reports) and len(messages) == 2


def test_an_episode_that_fails_midway_reports_the_plans_it_made(tmp_path):
    class FailsOnThirdPlan(CEM):
        calls = 0

        def optimise(self, cost_fn, *, init, generator):
            self.calls += 1
            if self.calls == 3:
                raise PlanningError("cost_fn returned NaN")
            return super().optimise(cost_fn, init=init, generator=generator)

    model = _tiny_world_model(tmp_path)
    (report,), summary = evaluate(model, StateProbe(latent_dim=16, state_dim=2), env="tworooms",
                                  planner=FailsOnThirdPlan(samples=8, elites=2, iters=1), episodes=1, horizon=2,
                                  repeat=5, max_steps=40, log=lambda _: None)  # fmt: skip
    # two plans were made and executed (one held action of 5 raw steps each) before the third failed
    assert report.error is not None and report.decisions == 2 and report.steps == 10
    assert report.plan_seconds > 0 and summary["failed_plans"] == 1


def test_held_actions_stop_at_the_goal_and_at_the_raw_step_budget():
    env = TwoRooms()  # max_step 0.05, success within 0.08 of the goal
    env.reset(seed=0)
    right, up = np.array([1.0, 0.0], dtype=np.float32), np.array([0.0, 1.0], dtype=np.float32)
    held = HeldActions(env, repeat=5, goal_state=np.array([0.3, 0.3]), max_raw_steps=100)
    held.start(env.set_state(np.array([0.1, 0.3])))
    held.step(right)  # 0.15, 0.10, then 0.05 from the goal: success on the third of five raw steps
    assert len(held.states) == 4 and len(held.actions) == 3 and held.states[-1] == pytest.approx([0.25, 0.3])
    budget = HeldActions(env, repeat=5, goal_state=np.array([0.9, 0.9]), max_raw_steps=7)
    budget.start(env.set_state(np.array([0.1, 0.3])))
    budget.step(up)
    budget.step(up)  # 5 + 2 raw steps: the budget cuts the second held action short
    assert len(budget.states) == 8 and budget.max_episode_steps == 2


def test_summarise_against_hand_computed_figures():
    reports = [
        EpisodeReport(seed=0, success=True, steps=10, plan_seconds=2.0, decisions=4, final_distance=0.1,
                      violations=0, max_action_norm=0.5, over_action_limit=0),
        EpisodeReport(seed=1, success=True, steps=30, plan_seconds=3.0, decisions=6, final_distance=0.3,
                      violations=2, max_action_norm=1.2, over_action_limit=5),
        EpisodeReport(seed=2, success=False, steps=20, plan_seconds=1.0, decisions=2, final_distance=0.8,
                      violations=1, error="cost_fn returned NaN", max_action_norm=0.9, over_action_limit=1),
    ]  # fmt: skip
    row = summarise(reports, action_limit=1.0)
    assert row["episodes"] == 3 and row["success_rate"] == pytest.approx(2 / 3)
    assert row["mean_steps_to_success"] == pytest.approx(20.0)  # successes only: (10 + 30) / 2
    assert row["plan_seconds_per_decision"] == pytest.approx(6.0 / 12)  # all plans, failed episodes' too
    assert row["plan_seconds_per_step"] == pytest.approx(6.0 / 60)
    assert row["mean_final_distance"] == pytest.approx(0.4)
    assert row["violations"] == 3 and row["episodes_with_violations"] == 2 and row["failed_plans"] == 1
    assert row["max_action_norm"] == 1.2 and row["share_over_action_limit"] == pytest.approx(6 / 60)
    assert math.isnan(summarise(reports)["share_over_action_limit"])  # no limit, no share
    assert math.isnan(summarise(reports[2:])["mean_steps_to_success"])


def test_action_guardrail_bounds_the_executed_actions_and_the_reports_show_it(tmp_path):
    model = _tiny_world_model(tmp_path)
    probe = StateProbe(latent_dim=16, state_dim=2)

    def run(**guardrail):
        return evaluate(model, probe, env="tworooms", planner=CEM(samples=16, iters=2), episodes=2, horizon=2,
                        repeat=5, max_steps=15, **guardrail)  # fmt: skip

    _, free = run()
    reports, guarded = run(max_action=0.3, max_action_weight=1e4)
    # The same seeded episodes: without the guardrail the planner's actions go well past 0.3, with it none do.
    assert free["max_action_norm"] > 0.6 and math.isnan(free["share_over_action_limit"])  # no limit, no share
    assert guarded["max_action_norm"] <= 0.3 + 1e-6 and guarded["share_over_action_limit"] == 0.0
    assert all(r.over_action_limit == 0 and r.steps > 0 for r in reports)
    assert guarded["max_action_norm"] == max(r.max_action_norm for r in reports)
    assert action_stats(np.full((4, 2), 0.5), 0.3) == {
        "max_action_norm": pytest.approx(0.5**0.5),
        "over_action_limit": 4,
    }
    assert action_stats([], 0.3) == {"max_action_norm": 0.0, "over_action_limit": 0}


def test_planning_with_proprioception_uses_the_observations_and_goals_readings(tmp_path):
    model = _tiny_world_model(tmp_path, proprio_dim=4)
    reports, summary = evaluate(model, StateProbe(latent_dim=20, state_dim=2), env="tworooms",
                                planner=CEM(samples=8, elites=2, iters=1), episodes=1, horizon=2, repeat=5,
                                max_steps=10)  # fmt: skip
    assert summary["failed_plans"] == 0 and reports[0].steps > 0
    with pytest.raises(ConfigError, match="takes proprioception, which a goal image cannot supply"):
        evaluate(model, StateProbe(latent_dim=20, state_dim=2), env="tworooms", planner=CEM(samples=8, elites=2),
                 episodes=1, repeat=5, goal_image=np.zeros((64, 64, 3), np.uint8))  # fmt: skip
    weights = goal_part_weights(model, (0.0, 2.0))  # proprioception only
    assert weights is not None and weights.tolist() == [0.0] * 16 + [0.5] * 4
    # Each part a mean: (MSE_pixels + 3 · MSE_proprio) / 4, checked on errors of 1 (pixels) and 2 (proprio).
    latents, goal = torch.cat([torch.ones(16), 2 * torch.ones(4)]).view(1, 1, 20), torch.zeros(20)
    cost = GoalCost(goal=goal, weights=goal_part_weights(model, (1.0, 3.0)))(latents, torch.zeros(1, 1, 2))
    assert cost.item() == pytest.approx((1.0 + 3 * 4.0) / 4)
    with pytest.raises(ConfigError, match="must be >= 0, not both 0"):
        goal_part_weights(model, (0.0, 0.0))
    with pytest.raises(ConfigError, match="this one takes no proprioception"):
        goal_part_weights(_tiny_world_model(tmp_path), (0.0, 1.0))
    obs = {"pixels": np.zeros((64, 64, 3), np.uint8), "proprio": np.zeros(3, np.float32)}
    with pytest.raises(ConfigError, match=r"proprioception has shape \(3,\); the world model was trained on \(2,\)"):
        encode_obs(model, obs)


def test_keep_out_specs():
    disc = parse_keep_out("0.3,0.5,0.1", position_fn=lambda z: z, weight=1.0, margin=0.0)
    box = parse_keep_out("0,0,1,0.5", position_fn=lambda z: z, weight=1.0, margin=0.0)
    assert disc.center == (0.3, 0.5) and disc.radius == 0.1 and box.low == (0.0, 0.0) and box.high == (1.0, 0.5)
    with pytest.raises(ConfigError, match="disc 'x,y,r' or a box"):
        parse_keep_out("1,2", position_fn=lambda z: z, weight=1.0, margin=0.0)
