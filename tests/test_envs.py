"""Tests for jepaworld.envs: TwoRooms dynamics and rendering, the registry, GymPixels, and the optional simulators."""

from __future__ import annotations

import sys
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest

from jepaworld.envs import ENVS, Env, GymPixels, TwoRooms, canonical_env_name, display_env_name, make_env


def check_obs(obs: dict[str, np.ndarray], env: Env) -> None:
    assert set(obs) == {"pixels", "proprio", "state"}
    assert obs["pixels"].shape == (64, 64, 3) and obs["pixels"].dtype == np.uint8
    assert obs["proprio"].dtype == np.float32 and obs["proprio"].ndim == 1
    assert obs["state"].dtype == np.float32 and obs["state"].ndim == 1
    assert isinstance(env, Env)


# TwoRooms ------------------------------------------------------------------------------------------------------------


def test_two_rooms_is_deterministic_given_a_seed():
    actions = np.random.default_rng(0).uniform(-1, 1, size=(30, 2))

    def run(seed: int) -> list[np.ndarray]:
        env = TwoRooms()
        states = [env.reset(seed=seed)["state"]]
        states += [env.step(a)[0]["state"] for a in actions]
        goal_obs, goal_state = env.sample_goal(np.random.default_rng(seed))
        return [*states, goal_state, goal_obs["pixels"]]

    assert all(np.array_equal(a, b) for a, b in zip(run(1), run(1), strict=True))
    assert not np.array_equal(run(1)[0], run(2)[0])


def test_two_rooms_obs_render_and_success():
    env = TwoRooms()
    obs = env.reset(seed=0)
    check_obs(obs, env)
    assert obs["state"].shape == (2,) and np.array_equal(obs["proprio"], obs["state"])
    # The agent is drawn in its own colour near its position (row 0 is the top of the arena).
    obs = env.set_state(np.array([0.25, 0.75]))
    rows, cols = np.nonzero((obs["pixels"] == TwoRooms.AGENT_COLOUR).all(-1))
    assert abs(rows.mean() - 16) < 1.5 and abs(cols.mean() - 16) < 1.5
    assert (obs["pixels"] == TwoRooms.WALL_COLOUR).all(-1)[:, 31:33].sum() > 64  # the wall column
    assert env.success(np.array([0.25, 0.75]), np.array([0.25 + 0.9 * env.success_radius, 0.75]))
    assert not env.success(np.array([0.25, 0.75]), np.array([0.25 + 1.1 * env.success_radius, 0.75]))


def test_two_rooms_goal_is_in_the_other_room():
    env = TwoRooms()
    for seed in range(10):
        start = env.reset(seed=seed)["state"]
        goal_obs, goal_state = env.sample_goal(np.random.default_rng(seed))
        assert env.room(start) != env.room(goal_state)
        assert np.array_equal(goal_obs["state"], goal_state) and not env.success(start, goal_state)
        assert env.success(goal_state, goal_state)


def test_wall_blocks_motion_outside_the_door():
    env = TwoRooms()
    env.set_state(np.array([0.3, 0.2]))  # left room, below the door
    for _ in range(20):
        obs, info = env.step(np.array([1.0, 0.0]))
    assert env.room(obs["state"]) == 0 and info["collided"]
    assert obs["state"][0] == pytest.approx(env.blocked_regions()[0][0][0])  # stopped at the wall's face
    # Sliding up along the wall into the door lets the agent through.
    for _ in range(6):
        env.step(np.array([1.0, 1.0]))
    for _ in range(10):
        obs, _ = env.step(np.array([1.0, 0.0]))
    assert env.room(obs["state"]) == 1
    # Inside the doorway the jambs stop vertical motion.
    env.set_state(np.array([0.5, 0.5]))
    for _ in range(10):
        obs, info = env.step(np.array([0.0, 1.0]))
    assert obs["state"][1] == pytest.approx(env.blocked_regions()[1][0][1]) and info["collided"]
    with pytest.raises(ValueError, match="not a free position"):
        env.set_state(np.array([0.5, 0.1]))


def test_simulate_matches_step_for_a_batch():
    """The batched true dynamics (a planner's oracle model) follow the same wall and door rules as `step`."""
    env = TwoRooms()
    actions = np.random.default_rng(0).uniform(-1.5, 1.5, size=(4, 60, 2))  # out-of-box actions are clipped too
    for n, seed in enumerate(range(4)):
        start = env.reset(seed=seed)["state"]
        simulated = env.simulate(start, actions)  # (4, 60, 2)
        stepped = np.stack([env.step(a)[0]["state"] for a in actions[n]])
        assert simulated.shape == (4, 60, 2)
        assert np.allclose(simulated[n], stepped, atol=1e-6)
    # Straight right from below the door: stopped at the wall's face, as in `step`.
    blocked = env.simulate(np.array([0.3, 0.2]), np.tile([1.0, 0.0], (1, 20, 1)))
    assert blocked[0, -1, 0] == pytest.approx(env.blocked_regions()[0][0][0])


def test_actions_are_clipped_to_the_unit_box():
    env = TwoRooms()
    env.set_state(np.array([0.2, 0.5]))
    big = env.step(np.array([7.0, -3.0]))[0]["state"]
    env.set_state(np.array([0.2, 0.5]))
    unit = env.step(np.array([1.0, -1.0]))[0]["state"]
    assert np.array_equal(big, unit)
    assert np.allclose(unit, [0.2 + env.max_step, 0.5 - env.max_step])
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))


# Registry ------------------------------------------------------------------------------------------------------------


def test_registry_and_unknown_names():
    assert {"two_rooms", "pointmaze", "pusht", "reacher"} <= set(ENVS)
    # The command line's name and the registry key (which episodes files record) build the same env.
    assert isinstance(make_env("two_rooms", max_step=0.1), TwoRooms) and isinstance(make_env("tworooms"), TwoRooms)
    assert canonical_env_name("tworooms") == "two_rooms" and display_env_name("two_rooms") == "tworooms"
    # Messages use the command line's names only.
    with pytest.raises(ValueError, match=r"unknown env 'two_room'.*did you mean tworooms\?$") as error:
        make_env("two_room")
    assert "two_rooms" not in str(error.value)
    with pytest.raises(ValueError, match=r"known envs are pointmaze, pusht, reacher, tworooms or 'gym:<EnvId>'$"):
        make_env("zzz")


# GymPixels -----------------------------------------------------------------------------------------------------------


def test_gym_pixels_wraps_a_classic_control_env():
    pytest.importorskip("pygame")  # classic-control envs draw with pygame
    env = make_env("gym:Pendulum-v1", goal_steps=5)
    assert isinstance(env, GymPixels) and env.action_dim == 1 and env.max_episode_steps == 200
    obs = env.reset(seed=0)
    check_obs(obs, env)
    assert obs["state"].shape == (3,) and obs["pixels"].std() > 0
    assert env.env_action(np.array([-1.0])) == pytest.approx(-2.0)
    assert env.env_action(np.array([5.0])) == pytest.approx(2.0)  # clipped to +1 first
    obs, info = env.step(np.array([0.5]))
    check_obs(obs, env)
    assert {"reward", "terminated", "truncated"} <= set(info)
    goal_a, state_a = env.sample_goal(np.random.default_rng(0))
    goal_b, state_b = env.sample_goal(np.random.default_rng(0))
    assert np.array_equal(state_a, state_b) and np.array_equal(goal_a["pixels"], goal_b["pixels"])
    assert env.success(state_a, state_a) and not env.success(state_a, state_a + 1)
    env.close()


class _HumanOnly(gym.Env):
    metadata: ClassVar[dict[str, list[str]]] = {"render_modes": ["human"]}
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))
    observation_space = gym.spaces.Box(-1.0, 1.0, (1,))

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode


# A plugin package: importing it registers a namespaced id and a plain one, as gym-pusht and user packages do.
_PLUGIN = """
import gymnasium as gym

PENDULUM = "gymnasium.envs.classic_control.pendulum:PendulumEnv"
gym.register("{name}/Swing-v0", entry_point=PENDULUM, max_episode_steps=40)
gym.register("JepaworldPluginSwing-v0", entry_point=PENDULUM, max_episode_steps=30)
"""


@pytest.fixture
def gym_plugin(tmp_path, monkeypatch):
    """An importable, not yet imported package that registers Gymnasium envs on import; registry cleaned after."""
    pytest.importorskip("pygame")
    name = f"jepaworld_test_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(_PLUGIN.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for env_id in (f"{name}/Swing-v0", "JepaworldPluginSwing-v0"):
        gym.registry.pop(env_id, None)
    sys.modules.pop(name, None)


def test_gym_ids_with_a_namespace_or_module_import_the_package_that_registers_them(gym_plugin):
    assert gym_plugin not in sys.modules
    env = make_env(f"gym:{gym_plugin}/Swing-v0")  # the namespace is the package to import
    assert gym_plugin in sys.modules and env.max_episode_steps == 40 and env.action_dim == 1
    env.close()
    env = make_env(f"gym:{gym_plugin}:JepaworldPluginSwing-v0")  # gymnasium.make's module:EnvId form
    assert env.max_episode_steps == 30
    check_obs(env.reset(seed=0), env)
    env.close()


def test_gym_pixels_wraps_a_namespaced_plugin_env():
    """The id from gym-pusht's own README; before, gym.spec failed on the namespace nobody had imported."""
    pytest.importorskip("gym_pusht")
    env = make_env("gym:gym_pusht/PushT-v0")
    try:
        check_obs(env.reset(seed=0), env)
        assert env.action_dim == 2 and env.max_episode_steps == 300
    finally:
        env.close()


def test_a_plugin_that_fails_to_import_says_why(tmp_path, monkeypatch):
    """A namespace whose package exists but cannot import (a dependency of the plugin missing) names that cause,
    instead of Gymnasium's "namespace not found"."""
    (tmp_path / "broken_plugin_xyz").mkdir()
    (tmp_path / "broken_plugin_xyz" / "__init__.py").write_text("import missing_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match=r"importing 'broken_plugin_xyz', which should register .*No module named "
                       r"'missing_dependency_xyz'"):  # fmt: skip
        make_env("gym:broken_plugin_xyz/Thing-v0")


def test_unknown_gym_ids_are_one_line_errors():
    with pytest.raises(ValueError, match=r"^unknown Gymnasium env gym:Nope-v0 \(Environment `Nope` doesn't exist") as e:
        make_env("gym:Nope-v0")
    assert "gym:<module>:<EnvId>" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"unknown Gymnasium env gym:no_such_namespace_xyz/Thing-v0 \(Namespace"):
        make_env("gym:no_such_namespace_xyz/Thing-v0")
    with pytest.raises(ImportError, match=r"gym:no_such_module_xyz:Thing-v0: importing 'no_such_module_xyz', which "
                       r"should register Thing-v0, failed"):  # fmt: skip
        make_env("gym:no_such_module_xyz:Thing-v0")
    with pytest.raises(ValueError, match=r"Pendulum-v0 .*Please use `Pendulum-v1`"):
        make_env("gym:Pendulum-v0")


def test_gym_pixels_rejects_unsupported_envs():
    with pytest.raises(ValueError, match="needs a Box action space"):
        make_env("gym:CartPole-v1")
    if "JepaworldHumanOnly-v0" not in gym.registry:
        gym.register("JepaworldHumanOnly-v0", entry_point=_HumanOnly)
    with pytest.raises(ValueError, match="does not support render_mode='rgb_array'"):
        make_env("gym:JepaworldHumanOnly-v0")


# Optional simulators -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "module", "state_dim", "proprio_dim"),
    [("pointmaze", "gymnasium_robotics", 4, 4), ("pusht", "gym_pusht", 7, 4), ("reacher", "dm_control", 6, 4)],
)
def test_optional_env(name, module, state_dim, proprio_dim):
    pytest.importorskip(module)
    env = make_env(name)
    try:
        obs = env.reset(seed=0)
        check_obs(obs, env)
        assert obs["state"].shape == (state_dim,) and obs["proprio"].shape == (proprio_dim,) and env.action_dim == 2
        assert np.array_equal(env.reset(seed=0)["pixels"], obs["pixels"])  # seeded start
        goal_obs, goal_state = env.sample_goal(np.random.default_rng(0))
        check_obs(goal_obs, env)
        assert env.success(goal_state, goal_state)
        after = env.reset(seed=0)
        for action in np.random.default_rng(0).uniform(-1, 1, size=(5, 2)):
            after, _ = env.step(action)
        check_obs(after, env)
        assert not np.array_equal(after["state"], obs["state"])
    finally:
        env.close()


def test_pointmaze_walls_surround_every_state_it_visits():
    """UMaze: 16 outer wall cells plus the U's inner wall; no visited or goal state lies inside one."""
    pytest.importorskip("gymnasium_robotics")
    env = make_env("pointmaze")
    try:
        walls = np.array(env.blocked_regions())  # (W, 2 corners, 2)
        assert walls.shape == (18, 2, 2)
        rng = np.random.default_rng(0)
        states = [env.reset(seed=0)["state"]]
        states += [env.step(a)[0]["state"] for a in rng.uniform(-1, 1, size=(60, 2))]
        states += [env.sample_goal(rng)[1] for _ in range(20)]
        xy = np.array(states)[:, None, :2]  # (S, 1, 2)
        assert not ((xy > walls[None, :, 0]) & (xy < walls[None, :, 1])).all(-1).any()
        # The inner wall: cells in the middle row that a straight line between the U's arms would cross.
        centres = walls.mean(axis=1)
        assert ((np.abs(centres[:, 1]) < 0.1) & (np.abs(centres[:, 0]) < 2)).sum() == 2
    finally:
        env.close()


def test_pusht_goal_sampler_starts_from_the_exact_current_state_and_actions_are_relative():
    pytest.importorskip("gym_pusht")
    env = make_env("pusht", goal_steps=0)
    try:
        # A goal after zero steps is the current state: gym-pusht's own reset_to_state would shift the block.
        obs = env.reset(seed=7)
        goal_obs, goal_state = env.sample_goal(np.random.default_rng(0))
        np.testing.assert_array_equal(goal_state[:5], obs["state"][:5])
        np.testing.assert_array_equal(goal_obs["pixels"], obs["pixels"])
        for action in ([1.0, 0.0], [1.0, 0.0], [0.0, -1.0]):
            obs, _ = env.step(np.array(action))
        np.testing.assert_array_equal(env.sample_goal(np.random.default_rng(0))[1][:5], obs["state"][:5])
        # Relative actions: holding +x moves the agent right, about 0.4 max_step per step (gym-pusht's PD control).
        start = obs["state"][:2]
        for _ in range(4):
            obs, _ = env.step(np.array([1.0, 0.0]))
        dx, dy = obs["state"][:2] - start
        assert env.max_step < dx < 3 * env.max_step and abs(dy) < 0.5 * env.max_step
    finally:
        env.close()


def test_pusht_scripted_policy_pushes_the_block_and_its_episodes_replay(tmp_path):
    """Collected with `--policy scripted`, the block moves; replaying the stored actions gives the stored states."""
    pytest.importorskip("gym_pusht")
    from jepaworld.data.episodes import collect, open_episodes

    out = collect("pusht", episodes=2, steps_per_episode=40, out=tmp_path / "push.h5", policy="scripted", seed=3)
    with open_episodes(out) as f:
        actions, states, seeds = f["actions"][:], f["state"][:], f.attrs["seed"]
    assert np.abs(actions).max() <= 1.0 and seeds == 3
    assert max(np.abs(s[-1, 2:5] - s[0, 2:5]).max() for s in states) > 5.0  # the block moved
    env = make_env("pusht")
    try:
        from jepaworld.data.episodes import _episode_seeds

        env_seed, _ = _episode_seeds(3, 1)
        obs = env.reset(seed=env_seed)
        replayed = [obs["state"]] + [env.step(a)[0]["state"] for a in actions[1]]
        np.testing.assert_allclose(np.stack(replayed), states[1], atol=1e-4)
        # Goals come from 25 scripted steps too: the block has moved in most of them.
        moved = 0
        for seed in range(5):
            start = env.reset(seed=seed)["state"]
            moved += np.linalg.norm(env.sample_goal(np.random.default_rng(seed))[1][2:4] - start[2:4]) > 5.0
        assert moved >= 3
    finally:
        env.close()


@pytest.mark.parametrize(("name", "module"), [("pusht", "gym_pusht"), ("reacher", "dm_control.suite")])
def test_missing_optional_package_names_the_install_command(name, module, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail as if it were not installed
    with pytest.raises(ImportError, match=r"install it with: pip install"):
        make_env(name)
