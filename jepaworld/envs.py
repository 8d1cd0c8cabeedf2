"""Pixel environments for action-conditioned JEPA world models and planning.

Every environment speaks one small protocol (`Env`): ``reset(seed) -> obs``, ``step(action) -> (obs, info)``,
``success(state, goal_state)``, ``sample_goal(rng) -> (goal_obs, goal_state)``, ``action_dim`` and
``max_episode_steps``. Observations are dicts::

    {"pixels": uint8 (64, 64, 3), "proprio": float32 (P,), "state": float32 (S,)}

and actions are always normalised to [-1, 1] (each env maps them to its own units). Goals follow DINO-WM
(Zhou et al. 2024, "DINO-WM: World Models on Pre-trained Visual Features enable Zero-shot Planning"): either a state
reached by K steps of a random policy from the current start, or a sampled valid state, rendered to a goal frame.

Environments:

- ``tworooms`` (registry key ``two_rooms``, which episodes files record): pure numpy point agent in a square arena
  split by a wall with a door (the "two rooms" task of facebookresearch/eb_jepa and PLDM, Sobal et al. 2025). Always
  available, > 5k steps/s with rendering.
- ``gym:<EnvId>``, ``gym:<namespace>/<EnvId>``, ``gym:<module>:<EnvId>``: `GymPixels`, any Gymnasium env with
  ``render_mode="rgb_array"`` and a Box action space.
- ``pointmaze``: gymnasium-robotics PointMaze (MuJoCo, rendered with ``MUJOCO_GL=egl``).
- ``pusht``: gym-pusht PushT (pymunk + pygame, ``SDL_VIDEODRIVER=dummy``).
- ``reacher``: dm_control reacher-easy (MuJoCo, ``MUJOCO_GL=egl``, shadows off).

The optional ones raise a one-line ImportError naming the pip command when their package is missing.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import math
import os
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

Obs = dict[str, np.ndarray]

IMAGE_SIZE = 64


@runtime_checkable
class Env(Protocol):
    """What planners, evaluators and the episode collector rely on."""

    action_dim: int
    max_episode_steps: int

    def reset(self, seed: int | None = None) -> Obs: ...

    def step(self, action: np.ndarray) -> tuple[Obs, dict[str, Any]]: ...

    def success(self, state: np.ndarray, goal_state: np.ndarray) -> bool: ...

    def sample_goal(self, rng: np.random.Generator) -> tuple[Obs, np.ndarray]: ...

    def close(self) -> None: ...


def _obs(pixels: np.ndarray, proprio: np.ndarray, state: np.ndarray) -> Obs:
    return {
        "pixels": np.ascontiguousarray(pixels, dtype=np.uint8),
        "proprio": np.asarray(proprio, dtype=np.float32).reshape(-1),
        "state": np.asarray(state, dtype=np.float32).reshape(-1),
    }


def _resize(frame: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """(H, W, 3|4) uint8 -> (size, size, 3) uint8; PIL's bilinear filter widens its support when shrinking,
    so large frames are area-averaged rather than aliased."""
    frame = np.asarray(frame)[..., :3]
    if frame.shape[:2] == (size, size):
        return np.ascontiguousarray(frame, dtype=np.uint8)
    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def _clip_action(action: np.ndarray, action_dim: int) -> np.ndarray:
    action = np.asarray(action, dtype=np.float64).reshape(-1)
    if action.shape != (action_dim,):
        raise ValueError(f"expected an action of shape ({action_dim},), got {action.shape}")
    return np.clip(action, -1.0, 1.0)


def _random_actions(rng: np.random.Generator, steps: int, action_dim: int, *, repeat: int = 3) -> np.ndarray:
    """(steps, A) uniform actions, each held for `repeat` steps so that a random walk travels instead of jittering."""
    n = -(-steps // repeat)
    return np.repeat(rng.uniform(-1.0, 1.0, size=(n, action_dim)), repeat, axis=0)[:steps]


# --------------------------------------------------------------------------------------------------------------------
# TwoRooms: pure numpy
# --------------------------------------------------------------------------------------------------------------------


class TwoRooms:
    """Point agent in the unit square, split by a vertical wall at x = 0.5 with a door around y = 0.5.

    The action is a 2-D velocity in [-1, 1]^2 scaled by `max_step`. Motion is resolved along x, then along y,
    against the wall inflated by the agent radius, so the agent slides along the wall and can only cross through
    the door. proprio = state = (x, y). Success: within `success_radius` of the goal position. `sample_goal`
    puts the goal in the room the agent is *not* in, so every task needs the door.
    """

    WALL_HALF_WIDTH = 0.02
    BACKGROUND = (235, 235, 235)
    WALL_COLOUR = (60, 60, 60)
    AGENT_COLOUR = (220, 40, 40)

    def __init__(
        self,
        *,
        max_step: float = 0.05,
        door_width: float = 0.2,
        agent_radius: float = 0.04,
        success_radius: float = 0.08,
        max_episode_steps: int = 100,
    ) -> None:
        if door_width <= 2 * agent_radius:
            raise ValueError(f"door_width={door_width} must exceed the agent diameter {2 * agent_radius}")
        self.action_dim = 2
        self.max_episode_steps = max_episode_steps
        self.max_step = max_step
        self.door_width = door_width
        self.agent_radius = agent_radius
        self.success_radius = success_radius
        r = agent_radius
        # Collision geometry for the agent's centre: the wall slab and door gap, inflated/shrunk by the radius.
        self._x_lo, self._x_hi = 0.5 - self.WALL_HALF_WIDTH - r, 0.5 + self.WALL_HALF_WIDTH + r
        self._door_lo, self._door_hi = 0.5 - door_width / 2 + r, 0.5 + door_width / 2 - r
        self._lo, self._hi = r, 1.0 - r
        self._background = self._draw_background()
        self._pos: tuple[float, float] | None = None

    # Geometry -------------------------------------------------------------------------------------------------------

    def _draw_background(self) -> np.ndarray:
        n = IMAGE_SIZE
        centres = (np.arange(n) + 0.5) / n
        xs = centres[None, :]  # (1, n) x of each column
        ys = 1.0 - centres[:, None]  # (n, 1) y of each row; row 0 is the top of the arena
        in_slab = np.abs(xs - 0.5) <= self.WALL_HALF_WIDTH + 0.5 / n  # at least one pixel wide
        in_door = np.abs(ys - 0.5) <= self.door_width / 2
        image = np.empty((n, n, 3), dtype=np.uint8)
        image[:] = self.BACKGROUND
        image[in_slab & ~in_door] = self.WALL_COLOUR
        return image

    def blocked_regions(self) -> list[tuple[tuple[float, float], tuple[float, float]]]:
        """The wall as (low, high) rectangles that the agent's centre cannot enter (inflated by its radius), e.g.
        for `planning.KeepOut` guardrails. Their y extents reach past the arena."""
        return [
            ((self._x_lo, -1.0), (self._x_hi, self._door_lo)),
            ((self._x_lo, self._door_hi), (self._x_hi, 2.0)),
        ]

    def room(self, state: np.ndarray) -> int:
        """0 for the left room, 1 for the right room."""
        return int(state[0] >= 0.5)

    def _sample_in_room(self, rng: np.random.Generator, room: int) -> np.ndarray:
        x_range = (self._lo, self._x_lo) if room == 0 else (self._x_hi, self._hi)
        return np.array([rng.uniform(*x_range), rng.uniform(self._lo, self._hi)])

    def render(self, state: np.ndarray | None = None) -> np.ndarray:
        """(64, 64, 3) uint8 frame of the agent at `state` (default: the current state)."""
        x, y = (self._pos if state is None else (float(state[0]), float(state[1]))) or (0.5, 0.5)
        n = IMAGE_SIZE
        image = self._background.copy()
        radius = self.agent_radius * n
        cx, cy = x * n - 0.5, (1.0 - y) * n - 0.5  # pixel coordinates of the centre
        r0, r1 = max(math.floor(cy - radius), 0), min(math.ceil(cy + radius) + 1, n)
        c0, c1 = max(math.floor(cx - radius), 0), min(math.ceil(cx + radius) + 1, n)
        rows = np.arange(r0, r1)[:, None] - cy
        cols = np.arange(c0, c1)[None, :] - cx
        image[r0:r1, c0:c1][rows * rows + cols * cols <= radius * radius] = self.AGENT_COLOUR
        return image

    def _observe(self) -> Obs:
        assert self._pos is not None
        state = np.array(self._pos, dtype=np.float32)
        return _obs(self.render(), state, state)

    # Protocol --------------------------------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> Obs:
        rng = np.random.default_rng(seed)
        start = self._sample_in_room(rng, int(rng.integers(2)))
        self._pos = (float(start[0]), float(start[1]))
        return self._observe()

    def set_state(self, state: np.ndarray) -> Obs:
        """Teleport the agent to a free position (x, y), e.g. to replay a stored state or to set up a test."""
        x, y = float(state[0]), float(state[1])
        in_wall = self._x_lo < x < self._x_hi and not self._door_lo <= y <= self._door_hi
        if in_wall or not (self._lo <= x <= self._hi and self._lo <= y <= self._hi):
            raise ValueError(f"TwoRooms: ({x:.3f}, {y:.3f}) is not a free position for the agent's centre")
        self._pos = (x, y)
        return self._observe()

    def _move(self, x: np.ndarray, y: np.ndarray, dx: np.ndarray, dy: np.ndarray):
        """One step of the dynamics for arrays of positions (x, y) and displacements: -> (x, y, collided)."""
        # Along x: outside the door band the slab is solid. The test is on the interval crossed, not on the
        # landing point, so no step size can tunnel through the wall.
        nx = x + dx
        solid = (y < self._door_lo) | (y > self._door_hi)
        hit_left = solid & (x <= self._x_lo) & (self._x_lo < nx)
        hit_right = solid & (nx < self._x_hi) & (self._x_hi <= x)
        nx = np.where(hit_left, self._x_lo, np.where(hit_right, self._x_hi, nx))
        # Along y: inside the slab (i.e. in the doorway) the door jambs bound the motion.
        ny = y + dy
        jammed = (self._x_lo < nx) & (nx < self._x_hi) & ((ny < self._door_lo) | (ny > self._door_hi))
        ny = np.where(jammed, np.clip(ny, self._door_lo, self._door_hi), ny)
        collided = hit_left | hit_right | jammed
        return np.clip(nx, self._lo, self._hi), np.clip(ny, self._lo, self._hi), collided

    def step(self, action: np.ndarray) -> tuple[Obs, dict[str, Any]]:
        if self._pos is None:
            raise RuntimeError("TwoRooms.step called before reset()")
        dx, dy = _clip_action(action, 2) * self.max_step
        nx, ny, collided = self._move(*(np.array(v) for v in (*self._pos, dx, dy)))
        self._pos = (float(nx), float(ny))
        return self._observe(), {"collided": bool(collided)}

    def simulate(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The true dynamics for a batch of action sequences: state (2,), actions (N, T, 2) -> positions (N, T, 2).

        E.g. as the "model" of a planner, to tell planner failures from world-model failures.
        """
        actions = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0) * self.max_step
        N, T, _ = actions.shape
        x, y = np.full(N, float(state[0])), np.full(N, float(state[1]))
        out = np.empty((N, T, 2))
        for t in range(T):
            x, y, _ = self._move(x, y, actions[:, t, 0], actions[:, t, 1])
            out[:, t, 0], out[:, t, 1] = x, y
        return out

    def success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        return bool(np.hypot(state[0] - goal_state[0], state[1] - goal_state[1]) <= self.success_radius)

    def sample_goal(self, rng: np.random.Generator) -> tuple[Obs, np.ndarray]:
        if self._pos is None:
            raise RuntimeError("TwoRooms.sample_goal called before reset()")
        goal = self._sample_in_room(rng, 1 - self.room(np.array(self._pos))).astype(np.float32)
        return _obs(self.render(goal), goal, goal), goal

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------------------------------------------------
# GymPixels: any Gymnasium env
# --------------------------------------------------------------------------------------------------------------------


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def gym_spec(env_id: str) -> Any:
    """The Gymnasium `EnvSpec` of ``EnvId``, ``namespace/EnvId`` or ``module:EnvId``, importing what registers it.

    ``module:EnvId`` imports `module` first, as ``gymnasium.make`` does; a namespaced id whose namespace is not
    registered yet imports the package of that name (``gym_pusht/PushT-v0`` -> ``gym_pusht``), which is how
    Gymnasium plugins register their envs. An unknown id is a one-line ValueError, a module that cannot be imported
    a one-line ImportError.
    """
    import importlib

    import gymnasium as gym
    from gymnasium.envs.registration import parse_env_id

    module, _, name = env_id.rpartition(":")
    try:
        namespace = parse_env_id(name)[0]
    except gym.error.Error as error:
        raise ValueError(f"gym:{env_id}: {_one_line(error)}") from None
    unknown_namespace = namespace is not None and all(spec.namespace != namespace for spec in gym.registry.values())
    package = module or (namespace if unknown_namespace else None)
    if package:
        try:
            # Plugins may print on import (gymnasium-robotics does); keep it off our stdout.
            with contextlib.redirect_stdout(io.StringIO()):
                importlib.import_module(package)
        except ImportError as error:
            # A namespace need not be a package (then Gymnasium's own error below says what is missing); but a
            # package that exists and fails to import (a dependency of the plugin missing) must say so.
            if module or not (isinstance(error, ModuleNotFoundError) and error.name == package):
                raise ImportError(f"gym:{env_id}: importing {package!r}, which should register {name}, failed "
                                  f"({_one_line(error)})") from None  # fmt: skip
    try:
        return gym.spec(name)
    except gym.error.Error as error:
        versioned = isinstance(error, (gym.error.DeprecatedEnv, gym.error.VersionNotFound))
        hint = "" if module or versioned else "; if a module of yours registers it, write gym:<module>:<EnvId>"
        raise ValueError(f"unknown Gymnasium env gym:{env_id} ({_one_line(error)}){hint}") from None


def _box_action_bounds(space: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    from gymnasium import spaces

    if not isinstance(space, spaces.Box):
        raise ValueError(f"{name}: GymPixels needs a Box action space, got {type(space).__name__}")
    low, high = space.low.astype(np.float64).reshape(-1), space.high.astype(np.float64).reshape(-1)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ValueError(f"{name}: GymPixels needs finite action bounds to map [-1, 1] onto, got {space}")
    return low, high


class GymPixels:
    """Wrap any Gymnasium env id created with ``render_mode="rgb_array"`` into the jepaworld `Env` protocol.

    `env_id` is ``EnvId``, ``namespace/EnvId`` or ``module:EnvId`` (see `gym_spec`); `make_kwargs` go to
    ``gymnasium.make``.

    - pixels: ``env.render()`` resized to 64×64 with PIL;
    - actions in [-1, 1] are mapped affinely onto the env's Box bounds (other action spaces are refused);
    - proprio = state = the flattened observation if the observation space is a Box, else empty;
    - success: ``||state - goal_state|| <= success_radius`` (in the observation's own units);
    - `sample_goal`: a state reached by `goal_steps` steps of a held-random policy from the last reset start. A
      generic env cannot be rewound, so a second "shadow" instance is reset with the same seed and rolled out,
      which leaves the main env untouched (needs deterministic resets, as Gymnasium's seeding provides).
    """

    def __init__(
        self,
        *,
        env_id: str,
        max_episode_steps: int | None = None,
        goal_steps: int = 25,
        success_radius: float = 0.1,
        **make_kwargs: Any,
    ) -> None:
        self.env_id = env_id
        self.goal_steps = goal_steps
        self.success_radius = success_radius
        self._make_kwargs = make_kwargs
        self.env = self._make()
        self._low, self._high = _box_action_bounds(self.env.action_space, env_id)
        self.action_dim = int(self._low.size)
        spec_steps = self.env.spec.max_episode_steps if self.env.spec is not None else None
        self.max_episode_steps = int(max_episode_steps or spec_steps or 200)
        self._shadow: Any = None
        self._seed: int | None = None

    def _make(self) -> Any:
        import gymnasium as gym
        from gymnasium.envs.registration import load_env_creator

        # Classic-control envs draw with pygame: keep SDL off any display and sound device.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

        spec = gym_spec(self.env_id)
        # Check the declared render modes first: gym.make would only warn and build an env without frames.
        creator = spec.entry_point if callable(spec.entry_point) else load_env_creator(spec.entry_point)
        metadata = getattr(creator, "metadata", None)
        modes = metadata.get("render_modes") if isinstance(metadata, dict) else None
        if modes is not None and "rgb_array" not in modes:
            raise ValueError(f"{self.env_id} does not support render_mode='rgb_array' (render modes: {modes})")
        try:
            env = gym.make(spec, render_mode="rgb_array", disable_env_checker=True, **self._make_kwargs)
        except gym.error.Error as error:  # e.g. DependencyNotInstalled: one line, not Gymnasium's traceback
            raise ValueError(f"{self.env_id}: {_one_line(error)}") from None
        if env.render_mode != "rgb_array":
            env.close()
            raise ValueError(f"{self.env_id} does not support render_mode='rgb_array'")
        return env

    def _flat(self, observation: Any) -> np.ndarray:
        from gymnasium import spaces

        if isinstance(self.env.observation_space, spaces.Box):
            return np.asarray(observation, dtype=np.float32).reshape(-1)
        return np.zeros(0, dtype=np.float32)

    def _observe(self, env: Any, observation: Any) -> Obs:
        flat = self._flat(observation)
        return _obs(_resize(env.render()), flat, flat)

    def env_action(self, action: np.ndarray) -> np.ndarray:
        """[-1, 1]^A (clipped) -> the wrapped env's Box, affinely: -1 -> low, +1 -> high."""
        a = _clip_action(action, self.action_dim)
        env_action = self._low + (a + 1.0) * 0.5 * (self._high - self._low)
        space = self.env.action_space
        return env_action.reshape(space.shape).astype(space.dtype)

    def reset(self, seed: int | None = None) -> Obs:
        # A concrete seed is always used so that the shadow env can replay the same start in sample_goal.
        self._seed = int(np.random.default_rng().integers(2**31)) if seed is None else int(seed)
        observation, _ = self.env.reset(seed=self._seed)
        return self._observe(self.env, observation)

    def step(self, action: np.ndarray) -> tuple[Obs, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(self.env_action(action))
        info = dict(info, reward=float(reward), terminated=bool(terminated), truncated=bool(truncated))
        return self._observe(self.env, observation), info

    def success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        if len(state) == 0:
            return False
        return bool(np.linalg.norm(np.asarray(state) - np.asarray(goal_state)) <= self.success_radius)

    def sample_goal(self, rng: np.random.Generator) -> tuple[Obs, np.ndarray]:
        if self._seed is None:
            raise RuntimeError(f"{self.env_id}: sample_goal called before reset()")
        if self._shadow is None:
            self._shadow = self._make()
        observation, _ = self._shadow.reset(seed=self._seed)
        for action in _random_actions(rng, self.goal_steps, self.action_dim):
            observation, *_ = self._shadow.step(self.env_action(action))
        obs = self._observe(self._shadow, observation)
        return obs, obs["state"]

    def close(self) -> None:
        self.env.close()
        if self._shadow is not None:
            self._shadow.close()


# --------------------------------------------------------------------------------------------------------------------
# Optional simulators
# --------------------------------------------------------------------------------------------------------------------


_MUJOCO = "mujoco==3.17.0"
_EGL_APT = "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri"


def _gl_error(error: Exception) -> RuntimeError:
    return RuntimeError(
        f"MuJoCo cannot render headless with MUJOCO_GL={os.environ.get('MUJOCO_GL')} ({type(error).__name__}: "
        f"{error}); for EGL: {_EGL_APT}; or set MUJOCO_GL=osmesa and apt-get install libosmesa6"
    )


def _require(module: str, install: str, *, mujoco: bool = False) -> Any:
    """Import an optional dependency or raise a one-line ImportError with the command that installs it.

    With `mujoco`, any other import failure is reported as a GL backend problem: dm_control sets up its renderer
    on import and fails there (with e.g. an AttributeError) when the MUJOCO_GL backend's library is missing.
    """
    import importlib

    try:
        # gymnasium-robotics prints a notice about Adroit reward versions on import; keep it off our stdout.
        with contextlib.redirect_stdout(io.StringIO()):
            return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"this environment needs `{module}` ({error}); install it with: {install}") from None
    except Exception as error:
        if mujoco:
            raise _gl_error(error) from error
        raise


def _check_mujoco_render(render: Callable[[], Any]) -> None:
    """Render one frame now, so that a missing GL backend fails at construction with the fix, not mid-episode."""
    try:
        render()
    except Exception as error:  # EGL/OSMesa failures surface as many different exception types
        raise _gl_error(error) from error


class PointMaze:
    """gymnasium-robotics PointMaze: a force-actuated ball in a maze, rendered top-down by MuJoCo (DINO-WM task).

    proprio = state = (x, y, vx, vy). The env's own goal ball is made invisible, since the goal is given as an
    image. Success: ``||xy - goal_xy|| <= 0.45`` (the gymnasium-robotics threshold). `sample_goal` draws a valid
    state: a uniformly chosen free cell plus uniform noise of a quarter cell, at rest.
    Needs ``pip install gymnasium-robotics==1.4.2 mujoco==3.17.0`` and headless GL: EGL by default
    (``apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri``) or ``MUJOCO_GL=osmesa``.
    """

    SUCCESS_RADIUS = 0.45

    def __init__(self, *, maze: str = "UMaze", max_episode_steps: int = 200) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl")
        gym = _require("gymnasium", "pip install gymnasium")
        robotics = _require("gymnasium_robotics", f"pip install gymnasium-robotics==1.4.2 {_MUJOCO}", mujoco=True)
        gym.register_envs(robotics)
        self.env = gym.make(
            f"PointMaze_{maze}-v3",
            render_mode="rgb_array",
            width=IMAGE_SIZE,
            height=IMAGE_SIZE,
            continuing_task=True,
            disable_env_checker=True,
        )
        self.action_dim = 2
        self.max_episode_steps = max_episode_steps
        maze_env = self.env.unwrapped
        self._point = maze_env.point_env
        self._maze = maze_env.maze
        self._point.model.site_rgba[maze_env.target_site_id, 3] = 0.0
        # Top-down camera framing the whole maze (the stock view is oblique and leaves the ball a few pixels).
        # MuJoCo's default vertical field of view is 45°, so the distance that fits an extent e is e / (2 tan 22.5°).
        extent = max(self._maze.map_length, self._maze.map_width) * self._maze.maze_size_scaling
        self._point.mujoco_renderer.default_cam_config = {
            "distance": extent / (2 * math.tan(math.radians(22.5))),
            "elevation": -90.0,
            "azimuth": 90.0,
            "lookat": np.zeros(3),
        }
        # The unwrapped env, because Gymnasium's order enforcing refuses render() before the first reset().
        _check_mujoco_render(maze_env.render)
        self._reset_done = False

    def _state(self) -> np.ndarray:
        return np.concatenate([self._point.data.qpos[:2], self._point.data.qvel[:2]]).astype(np.float32)

    def _observe(self) -> Obs:
        state = self._state()
        return _obs(_resize(self.env.render()), state, state)

    def reset(self, seed: int | None = None) -> Obs:
        self.env.reset(seed=seed)
        self._reset_done = True
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[Obs, dict[str, Any]]:
        _, reward, *_ = self.env.step(_clip_action(action, 2).astype(np.float32))
        return self._observe(), {"reward": float(reward)}

    def success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        return bool(np.linalg.norm(np.asarray(state[:2]) - np.asarray(goal_state[:2])) <= self.SUCCESS_RADIUS)

    def blocked_regions(self) -> list[tuple[tuple[float, float], tuple[float, float]]]:
        """The maze's wall cells as (low, high) rectangles in (x, y), e.g. to draw them under a planned path."""
        maze_map = np.asarray(self._maze.maze_map)
        half = self._maze.maze_size_scaling / 2
        centres = [self._maze.cell_rowcol_to_xy(cell) for cell in np.argwhere(maze_map == 1)]
        return [((float(x - half), float(y - half)), (float(x + half), float(y + half))) for x, y in centres]

    def sample_goal(self, rng: np.random.Generator) -> tuple[Obs, np.ndarray]:
        if not self._reset_done:
            raise RuntimeError("PointMaze.sample_goal called before reset()")
        maze_map = np.asarray(self._maze.maze_map)
        free = np.argwhere(maze_map == 0)  # (F, 2) row, col of open cells
        cell = free[rng.integers(len(free))]
        scale = self._maze.maze_size_scaling
        xy = self._maze.cell_rowcol_to_xy(cell) + rng.uniform(-0.25, 0.25, size=2) * scale
        # Render the goal by teleporting the ball there, then put the episode back exactly as it was.
        qpos, qvel = self._point.data.qpos.copy(), self._point.data.qvel.copy()
        self._point.set_state(np.concatenate([xy, qpos[2:]]), np.zeros_like(qvel))
        goal = self._observe()
        self._point.set_state(qpos, qvel)
        return goal, goal["state"]

    def close(self) -> None:
        self.env.close()


class PushT:
    """gym-pusht PushT (Chi et al. 2023, Diffusion Policy; the DINO-WM task): push a T-block onto a fixed target.

    The action moves the agent's target relative to where the agent is: [-1, 1]^2 maps to ±`max_step` px
    (gym-pusht's PD control then moves the agent about 0.4 of that per step), as DINO-WM's relative PushT actions
    do. gym-pusht's own action is an absolute target on the 512×512 workspace, so a random or sampled plan there
    flings the agent across the board every step, and planners' candidates are mostly jumps.
    state = (agent_x, agent_y, block_x, block_y, block_angle, agent_vx, agent_vy), proprio = agent (x, y, vx, vy).
    Success follows DINO-WM: ``||state[:4] - goal[:4]|| < 20`` and block angle within π/9. `sample_goal` rolls
    `goal_steps` steps from the current state in a shadow env (velocities start at rest) with the scripted pusher
    (`scripted_policy`; DINO-WM takes goals 25 steps ahead in expert pushes) or, with ``goal_policy="random"``,
    held random actions, after which the block had moved in 0 of 20 goals (18 of 20 with the script).
    Needs ``pip install gym-pusht==0.1.8`` (it pulls pygame, pymunk, shapely, opencv); rendering is headless.
    """

    WORKSPACE = 512.0
    BLOCK_CENTRE = (0.0, 45.0)  # gym-pusht's T: its centre of mass in block coordinates

    def __init__(
        self,
        *,
        max_episode_steps: int = 300,
        goal_steps: int = 25,
        max_step: float = 25.0,
        goal_policy: str = "scripted",
    ) -> None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        _require("gym_pusht", "pip install gym-pusht==0.1.8")
        if goal_policy not in ("scripted", "random"):
            raise ValueError(f"unknown goal_policy {goal_policy!r}: choose scripted or random")
        self.action_dim = 2
        self.max_episode_steps = max_episode_steps
        self.goal_steps, self.goal_policy = goal_steps, goal_policy
        self.max_step = max_step
        self.env = self._make()
        self._shadow: Any = None
        self._state: np.ndarray | None = None

    @staticmethod
    def _make() -> Any:
        import gymnasium as gym

        return gym.make(
            "gym_pusht/PushT-v0",
            obs_type="pixels_agent_pos",
            render_mode="rgb_array",
            observation_width=IMAGE_SIZE,
            observation_height=IMAGE_SIZE,
            disable_env_checker=True,
        )

    @staticmethod
    def _observe(observation: dict[str, np.ndarray], info: dict[str, Any]) -> Obs:
        agent, velocity, block = info["pos_agent"], info["vel_agent"], info["block_pose"]
        state = np.concatenate([agent, block, velocity])
        return _obs(observation["pixels"], np.concatenate([agent, velocity]), state)

    def reset(self, seed: int | None = None) -> Obs:
        obs = self._observe(*self.env.reset(seed=seed))
        self._state = obs["state"]
        return obs

    def _target(self, agent: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The absolute target gym-pusht takes: the agent's position moved by the scaled action, kept on the board."""
        return np.clip(np.asarray(agent, np.float64) + _clip_action(action, 2) * self.max_step, 0.0, self.WORKSPACE)

    def step(self, action: np.ndarray) -> tuple[Obs, dict[str, Any]]:
        if self._state is None:
            raise RuntimeError("PushT.step called before reset()")
        observation, reward, _, _, info = self.env.step(self._target(self._state[:2], action))
        obs = self._observe(observation, info)
        self._state = obs["state"]
        return obs, {"reward": float(reward), "coverage": float(info["coverage"])}

    def scripted_policy(self, rng: np.random.Generator, *, noise: float = 0.3) -> Callable[[Obs], np.ndarray]:
        """A noisy scripted pusher, closed loop: ``act(obs) -> action``.

        Each push picks a random direction and a contact point near the block's centre, walks the agent to a spot
        60 px behind it, then pushes along the direction for 8-24 steps; Gaussian noise on every action. It moves
        the block in 52% of steps; random actions do in 3% (the agent wanders ~10 px a step on a 512 px board),
        too few pushes to learn how the block moves, which is what planning in PushT needs
        (`benchmarks/pusht_data.py`).
        """
        push: dict[str, Any] = {"left": 0}

        def act(obs: Obs) -> np.ndarray:
            agent, block, angle = obs["state"][:2], obs["state"][2:4], float(obs["state"][4])
            if push["left"] <= 0:
                turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
                centre = block + turn @ np.asarray(self.BLOCK_CENTRE)
                heading = rng.uniform(-np.pi, np.pi)
                direction = np.array([np.cos(heading), np.sin(heading)])
                contact = centre + rng.uniform(-30.0, 30.0, size=2)
                push.update(start=contact - 60.0 * direction, direction=direction, approach=True,
                            left=int(rng.integers(8, 25)), patience=40)  # fmt: skip
            if push["approach"]:
                offset = push["start"] - agent
                push["patience"] -= 1
                if np.linalg.norm(offset) < 15.0 or push["patience"] <= 0:
                    push["approach"] = False
                action = offset / self.max_step
            else:
                push["left"] -= 1
                action = push["direction"] * rng.uniform(0.5, 1.0)
            return np.clip(action + noise * rng.standard_normal(2), -1.0, 1.0)

        return act

    def success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        position_error = np.linalg.norm(np.asarray(state[:4]) - np.asarray(goal_state[:4]))
        angle_error = abs((float(state[4]) - float(goal_state[4]) + np.pi) % (2 * np.pi) - np.pi)
        return bool(position_error < 20.0 and angle_error < np.pi / 9)

    def sample_goal(self, rng: np.random.Generator) -> tuple[Obs, np.ndarray]:
        if self._state is None:
            raise RuntimeError("PushT.sample_goal called before reset()")
        if self._shadow is None:
            self._shadow = self._make()
        # gym-pusht's reset_to_state sets the block's position before its angle, and the angle turns the block about
        # its centre of mass: the block lands up to ~90 px off, by an offset that does not depend on the position.
        # A first reset measures that offset and a second one asks for the position that lands on the state; the
        # pose is then set exactly (float rounding). The reset's own physics step thus sees the true pose, as do the
        # contacts and shapes the renderer draws.
        state = self._state[:5].astype(np.float64)
        self._shadow.reset(options={"reset_to_state": state})
        offset = np.asarray(self._shadow.unwrapped.block.position) - state[2:4]
        self._shadow.reset(options={"reset_to_state": np.concatenate([state[:2], state[2:4] - offset, state[4:]])})
        shadow = self._shadow.unwrapped
        shadow.block.angle, shadow.block.position = float(state[4]), (float(state[2]), float(state[3]))
        shadow.space.reindex_shapes_for_body(shadow.block)
        obs = self._observe(shadow.get_obs(), shadow._get_info())
        if self.goal_policy == "scripted":
            act = self.scripted_policy(rng)
        else:
            held = iter(_random_actions(rng, self.goal_steps, 2))
            act = lambda _: next(held)  # noqa: E731
        for _ in range(self.goal_steps):
            observation, _, _, _, info = self._shadow.step(self._target(obs["state"][:2], act(obs)))
            obs = self._observe(observation, info)
        return obs, obs["state"]

    def close(self) -> None:
        self.env.close()
        if self._shadow is not None:
            self._shadow.close()


class Reacher:
    """dm_control reacher-easy (Tassa et al. 2018): a planar two-link arm; the DINO-WM reacher task.

    proprio = (shoulder, wrist, their velocities); state = proprio + fingertip (x, y). The shoulder turns without
    limit and enters as its raw angle: given as cosine and sine instead, proprioception-only CEM planning fell from
    10/10 to 4/10 goals (BENCHMARKS.md). The suite's own target sphere is hidden, since the goal is given as an
    image. Success: fingertip within 0.06 of the goal fingertip (target + finger radii, as in dm_control).
    `sample_goal` draws a valid state: uniform joint angles within the joint limits, at rest. Shadows are off
    (``vis.quality.shadowsize = 0``) for speed and cleaner frames. Needs ``pip install dm-control==1.0.50
    mujoco==3.17.0`` and headless GL: EGL by default (``apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri``)
    or ``MUJOCO_GL=osmesa``.
    """

    SUCCESS_RADIUS = 0.06

    def __init__(self, *, max_episode_steps: int = 200, camera_id: int = 0) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl")
        suite = _require("dm_control.suite", f"pip install dm-control==1.0.50 {_MUJOCO}", mujoco=True)
        # No time limit: dm_control would otherwise silently reset the episode after 1000 steps.
        self.env = suite.load("reacher", "easy", task_kwargs={"random": 0, "time_limit": float("inf")})
        self.physics = self.env.physics
        self.physics.model.vis.quality.shadowsize = 0
        self.physics.named.model.geom_rgba["target", 3] = 0.0
        self.action_dim = 2
        self.max_episode_steps = max_episode_steps
        self.camera_id = camera_id
        _check_mujoco_render(lambda: self.physics.render(IMAGE_SIZE, IMAGE_SIZE, camera_id=camera_id))
        self._reset_done = False

    def _state(self) -> np.ndarray:
        data = self.physics.named.data
        return np.concatenate([data.qpos[:2], data.qvel[:2], data.geom_xpos["finger", :2]]).astype(np.float32)

    def _observe(self) -> Obs:
        state = self._state()
        frame = self.physics.render(IMAGE_SIZE, IMAGE_SIZE, camera_id=self.camera_id)
        return _obs(frame, state[:4], state)

    def reset(self, seed: int | None = None) -> Obs:
        # The suite task owns a RandomState; reseeding it in place makes `seed` fix the initial arm pose.
        self.env.task.random.seed(seed)
        self.env.reset()
        self._reset_done = True
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[Obs, dict[str, Any]]:
        timestep = self.env.step(_clip_action(action, 2))
        return self._observe(), {"reward": float(timestep.reward or 0.0)}

    def success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        return bool(np.linalg.norm(np.asarray(state[4:6]) - np.asarray(goal_state[4:6])) <= self.SUCCESS_RADIUS)

    def sample_goal(self, rng: np.random.Generator) -> tuple[Obs, np.ndarray]:
        if not self._reset_done:
            raise RuntimeError("Reacher.sample_goal called before reset()")
        wrist_limit = float(self.physics.named.model.jnt_range["wrist", 1])
        saved = self.physics.get_state()
        with self.physics.reset_context():
            self.physics.named.data.qpos[:2] = [
                rng.uniform(-np.pi, np.pi),
                rng.uniform(-wrist_limit, wrist_limit),
            ]
            self.physics.named.data.qvel[:2] = 0.0
        goal = self._observe()
        with self.physics.reset_context():
            self.physics.set_state(saved)
        return goal, goal["state"]

    def close(self) -> None:
        self.env.close()


# --------------------------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------------------------

ENVS: dict[str, Callable[..., Env]] = {
    "two_rooms": TwoRooms,
    "pointmaze": PointMaze,
    "pusht": PushT,
    "reacher": Reacher,
}

GYM_PREFIX = "gym:"

# The command line and README call TwoRooms "tworooms"; its registry key "two_rooms" stays, because episodes files
# record it. Both are accepted everywhere; messages use the command line's name.
ENV_ALIASES = {"tworooms": "two_rooms"}
_DISPLAY_NAMES = {key: alias for alias, key in ENV_ALIASES.items()}


def canonical_env_name(name: str) -> str:
    """The registry key of an env name or alias (``tworooms`` -> ``two_rooms``); other names unchanged."""
    return ENV_ALIASES.get(name, name)


def display_env_name(name: str) -> str:
    """The name the command line uses for an env (``two_rooms`` -> ``tworooms``); other names unchanged."""
    return _DISPLAY_NAMES.get(name, name)


def check_env_name(name: str) -> str:
    """The registry key of `name`, or a one-line ValueError/ImportError for an unknown env, without building it.

    A ``gym:`` id is looked up in Gymnasium's registry (importing the module that registers it).
    """
    if name.startswith(GYM_PREFIX):
        gym_spec(name[len(GYM_PREFIX) :])
        return name
    key = canonical_env_name(name)
    if key not in ENVS:
        known = sorted(display_env_name(k) for k in ENVS)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown env {name!r}: known envs are {', '.join(known)} or 'gym:<EnvId>'{hint}")
    return key


# An env's version goes up when the meaning of its recorded data changes; episodes files carry the version they
# were collected with, and `open_episodes` refuses a stale one (a model trained on it would plan with other
# actions or proprioception). Unlisted envs are at version 1.
ENV_VERSIONS: dict[str, tuple[int, str]] = {
    "pusht": (2, "actions became relative moves of the agent"),
}


def env_version(name: str) -> tuple[int, str]:
    """(version, what changed in it) of a registered env name or alias."""
    return ENV_VERSIONS.get(canonical_env_name(name), (1, ""))


def make_env(name: str, **kwargs: Any) -> Env:
    """Build a registered env by name or alias; ``"gym:<EnvId>"`` (also ``gym:<namespace>/<EnvId>`` and
    ``gym:<module>:<EnvId>``) wraps a Gymnasium env with `GymPixels`."""
    if name.startswith(GYM_PREFIX):
        return GymPixels(env_id=name[len(GYM_PREFIX) :], **kwargs)
    return ENVS[check_env_name(name)](**kwargs)
