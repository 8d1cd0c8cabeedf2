"""Offline episodes for action-conditioned world models: collection to HDF5 and streaming (frames, actions) windows.

The offline-data recipe of DINO-WM (Zhou et al. 2024) and PLDM / facebookresearch/eb_jepa: roll an exploratory
policy in a `jepaworld.envs` environment, store every frame, action, proprio and state, then train on short
windows of ``W + 1`` frames and the ``W`` actions between them.

File layout (h5py), E episodes of T steps::

    frames   uint8   (E, T + 1, 64, 64, 3)   chunked (1, chunk, 64, 64, 3), lzf-compressed
    actions  float32 (E, T, A)               in [-1, 1]
    proprio  float32 (E, T + 1, P)
    state    float32 (E, T + 1, S)
    attrs: format, version, env, env_version (`envs.ENV_VERSIONS`), env_kwargs (JSON), policy, seed, episodes,
           steps_per_episode, action_dim, complete (episodes fully written)

Collection writes ``OUT.partial`` and bumps ``complete`` after each episode; only when every episode is written
is it renamed to ``OUT`` (`os.replace`, atomic). An interrupted run therefore leaves no file at ``OUT``, and
re-running with the same arguments resumes from ``complete``. Episode ``e`` is seeded from ``(seed, e)`` alone,
so a resumed file is identical to an uninterrupted one. Ctrl-C (SIGINT) stops collection after the episode in
progress with `CollectionInterrupted`; a second Ctrl-C stops at once (the ``.partial`` file stays resumable).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from jepaworld.data.images import DataError
from jepaworld.envs import canonical_env_name, display_env_name, env_version, make_env

FORMAT = "jepaworld-episodes"
VERSION = 1


class EpisodesError(DataError):
    """An episodes file that is missing, foreign, incomplete or mismatched; the message names the file and the fix."""


class CollectionInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `collect` between episodes; `complete` of `episodes` are in `partial`, which the same call
    resumes. A KeyboardInterrupt, so that a script calling `collect` stops as it would on any Ctrl-C."""

    def __init__(self, partial: Path, complete: int, episodes: int) -> None:
        super().__init__(f"interrupted after {complete} episodes; re-run the same command to resume")
        self.partial, self.complete, self.episodes = partial, complete, episodes


# --------------------------------------------------------------------------------------------------------------------
# Exploration policies: (rng, steps, action_dim) -> actions (steps, A) in [-1, 1], open loop
# --------------------------------------------------------------------------------------------------------------------


def random_policy(rng: np.random.Generator, steps: int, action_dim: int, *, max_repeat: int = 6) -> np.ndarray:
    """Uniform actions, each held for 1..max_repeat steps: i.i.d. per-step noise only jitters in place, while held
    actions make straight runs that carry the agent across the arena (and through doors)."""
    actions = np.empty((steps, action_dim), dtype=np.float32)
    t = 0
    while t < steps:
        hold = int(rng.integers(1, max_repeat + 1))
        actions[t : t + hold] = rng.uniform(-1.0, 1.0, size=action_dim)
        t += hold
    return actions


def noisy_policy(rng: np.random.Generator, steps: int, action_dim: int, *, decay: float = 0.8) -> np.ndarray:
    """Ornstein–Uhlenbeck-like correlated noise, ``a_t = clip(decay · a_{t-1} + σ ε_t)``: smooth, curving paths.
    σ = sqrt(1 - decay²) keeps the stationary std at 1 before clipping."""
    sigma = float(np.sqrt(1.0 - decay**2))
    actions = np.empty((steps, action_dim), dtype=np.float32)
    a = rng.uniform(-1.0, 1.0, size=action_dim)
    for t in range(steps):
        actions[t] = a
        a = np.clip(decay * a + sigma * rng.standard_normal(action_dim), -1.0, 1.0)
    return actions


POLICIES: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "random": random_policy,
    "noisy": noisy_policy,
}
# Closed loop, from the env itself: ``env.scripted_policy(rng) -> act(obs)`` (PushT's noisy pusher).
SCRIPTED = "scripted"


# --------------------------------------------------------------------------------------------------------------------
# Collection
# --------------------------------------------------------------------------------------------------------------------


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _episode_seeds(seed: int, episode: int) -> tuple[int, np.random.Generator]:
    """(env reset seed, policy generator) of one episode, derived from (seed, episode) only."""
    env_seq, policy_seq = np.random.SeedSequence([seed, episode]).spawn(2)
    return int(env_seq.generate_state(1)[0]), np.random.default_rng(policy_seq)


def _rollout(env: Any, *, env_seed: int, policy: str, rng: np.random.Generator, steps: int) -> dict[str, np.ndarray]:
    """One episode: open-loop actions from `POLICIES`, or the env's own closed-loop `scripted_policy`."""
    obs = env.reset(seed=env_seed)
    act = env.scripted_policy(rng) if policy == SCRIPTED else None
    planned = None if act else POLICIES[policy](rng, steps, env.action_dim)  # (T, A)
    seen, actions = [obs], []
    for t in range(steps):
        actions.append(np.asarray(act(obs) if act else planned[t], dtype=np.float32))
        obs, _ = env.step(actions[-1])
        seen.append(obs)
    data = {key: np.stack([o[key] for o in seen]) for key in ("pixels", "proprio", "state")}  # (T + 1, ...)
    return {**data, "actions": np.stack(actions)}  # (T, A)


def _check_settings(path: Path, attrs: Mapping[str, Any], settings: Mapping[str, Any], fix: str) -> None:
    if attrs.get("format") != FORMAT:
        raise EpisodesError(f"{path}: not a jepaworld episodes file (no format={FORMAT!r} attribute); {fix}")
    # h5py hands back numpy scalars; compare and print them as the Python values they were written from.
    stored = {key: value.item() if isinstance(value, np.generic) else value for key, value in attrs.items()}
    stored.setdefault("env_version", 1)  # files from before versions were recorded
    different = [key for key, value in settings.items() if stored.get(key) != value]
    if different:

        def shown(key: str, value: Any) -> Any:
            return display_env_name(value) if key == "env" and isinstance(value, str) else value

        found = ", ".join(f"{key}={shown(key, stored.get(key))!r} (asked {shown(key, settings[key])!r})"
                          for key in different)  # fmt: skip
        raise EpisodesError(f"{path}: written with other settings: {found}; {fix}")


@contextlib.contextmanager
def _stop_on_sigint() -> Iterator[Callable[[], bool]]:
    """Within the block, the first SIGINT only sets a flag that the caller polls between episodes.

    A KeyboardInterrupt raised at an arbitrary bytecode can land in a finaliser (h5py's and Gymnasium's objects
    have them), where Python prints "Exception ignored" and carries on, so collection ran to the end. The second
    SIGINT raises at once, for an episode that will not finish. Outside the main thread, or under a non-default
    handler that someone installed on purpose, nothing changes.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield stop.is_set
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        # Straight to the file descriptor: print() could re-enter a stderr write the signal interrupted.
        os.write(2, b"stopping after the episode in progress (Ctrl-C again to stop now)\n")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def collect(
    env_name: str,
    *,
    episodes: int,
    steps_per_episode: int,
    out: str | Path,
    policy: str = "random",
    seed: int = 0,
    chunk: int = 8,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Path:
    """Roll `policy` for `episodes` × `steps_per_episode` steps in `make_env(env_name, **env_kwargs)` into `out`.

    `chunk` is the number of frames per HDF5 chunk: a training window reads about ``window / chunk + 1`` chunks.
    Resumable: re-running with the same arguments after an interruption continues from the last completed
    episode; different arguments are refused. Returns `out` once it holds every episode. Ctrl-C finishes the
    episode in progress and raises `CollectionInterrupted`.
    """
    if policy not in (*POLICIES, SCRIPTED):
        known = ", ".join(sorted([*POLICIES, SCRIPTED]))
        raise ValueError(f"unknown policy {policy!r}: known policies are {known}")
    if episodes < 1 or steps_per_episode < 1 or chunk < 1:
        raise ValueError(
            f"episodes, steps_per_episode and chunk must be >= 1, got {episodes}, {steps_per_episode}, {chunk}"
        )
    out, partial = Path(out), partial_path(out)
    env_name = canonical_env_name(env_name)  # files record the registry key, whichever alias was given
    env_kwargs = dict(env_kwargs or {})
    settings = {
        "format": FORMAT,
        "version": VERSION,
        "env": env_name,
        "env_kwargs": json.dumps(env_kwargs, sort_keys=True),
        "env_version": env_version(env_name)[0],
        "policy": policy,
        "seed": seed,
        "episodes": episodes,
        "steps_per_episode": steps_per_episode,
    }
    if out.exists():
        with open_episodes(out) as f:
            _check_settings(out, f.attrs, settings, "delete it or choose another output path")
        return out  # already collected with these settings

    out.parent.mkdir(parents=True, exist_ok=True)
    env = make_env(env_name, **env_kwargs)
    if policy == SCRIPTED and not hasattr(env, "scripted_policy"):
        env.close()
        raise ValueError(f"env {display_env_name(env_name)!r} has no scripted policy; use --policy random or noisy")
    try:
        with _stop_on_sigint() as stopped, _open_partial(partial, settings, env, chunk=chunk) as f:
            for episode in range(int(f.attrs["complete"]), episodes):
                if stopped():
                    raise CollectionInterrupted(partial, episode, episodes)
                env_seed, rng = _episode_seeds(seed, episode)
                data = _rollout(env, env_seed=env_seed, policy=policy, rng=rng, steps=steps_per_episode)
                f["frames"][episode] = data["pixels"]
                f["actions"][episode] = data["actions"]
                f["proprio"][episode] = data["proprio"]
                f["state"][episode] = data["state"]
                # The count moves only after the episode's data is in, so a crash costs at most that episode.
                f.attrs["complete"] = episode + 1
                f.flush()
    finally:
        env.close()
    os.replace(partial, out)
    return out


def _open_partial(partial: Path, settings: Mapping[str, Any], env: Any, *, chunk: int) -> h5py.File:
    """Reopen a compatible `.partial` file to resume, or create it with preallocated datasets."""
    fix = f"delete {partial} to start over"
    if partial.exists():
        try:
            f = h5py.File(partial, "a")
        except OSError as error:
            raise EpisodesError(f"{partial}: unreadable ({error}); {fix}") from None
        try:
            _check_settings(partial, f.attrs, settings, fix)
        except EpisodesError:
            f.close()
            raise
        return f

    E, T = int(settings["episodes"]), int(settings["steps_per_episode"])
    probe = env.reset(seed=0)  # only to size the datasets
    H, W, C = probe["pixels"].shape
    A, P, S = env.action_dim, probe["proprio"].shape[0], probe["state"].shape[0]
    f = h5py.File(partial, "w")
    f.attrs.update(settings)
    f.attrs.update({"action_dim": A, "complete": 0})
    f.create_dataset(
        "frames", (E, T + 1, H, W, C), dtype=np.uint8, chunks=(1, min(chunk, T + 1), H, W, C), compression="lzf"
    )
    for name, shape in (("actions", (E, T, A)), ("proprio", (E, T + 1, P)), ("state", (E, T + 1, S))):
        # One chunk per episode; HDF5 cannot chunk a zero-width dataset (e.g. no proprio), so that stays plain.
        layout = {"chunks": (1, *shape[1:]), "compression": "lzf"} if shape[-1] else {}
        f.create_dataset(name, shape, dtype=np.float32, **layout)
    return f


# --------------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------------


def open_episodes(path: str | Path) -> h5py.File:
    """Open a complete episodes file read-only, or raise `EpisodesError` saying what is wrong and how to fix it."""
    path = Path(path)
    if not path.exists():
        hint = (
            f"; an interrupted collection left {partial_path(path)}: re-run collect with the same arguments to finish"
            if partial_path(path).exists()
            else "; write one with `jepaworld collect ENV --out FILE` (see the README) and pass --data.path FILE"
        )
        raise EpisodesError(f"{path}: episodes file not found{hint}")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise EpisodesError(f"{path}: not an HDF5 file, so not a jepaworld episodes file") from None
    try:
        if f.attrs.get("format") != FORMAT:
            raise EpisodesError(f"{path}: not a jepaworld episodes file (no format={FORMAT!r} attribute)")
        version, change = env_version(str(f.attrs.get("env", "")))
        stored = int(f.attrs.get("env_version", 1))
        if stored != version:
            raise EpisodesError(
                f"{path}: collected with version {stored} of env {display_env_name(str(f.attrs['env']))!r}; this "
                f"jepaworld has version {version} ({change}): collect the episodes again"
            )
        complete, episodes = int(f.attrs.get("complete", -1)), int(f.attrs.get("episodes", -1))
        if complete != episodes:
            raise EpisodesError(
                f"{path}: incomplete ({complete}/{episodes} episodes); re-run collect with the same arguments"
            )
    except EpisodesError:
        f.close()
        raise
    return f


class EpisodeWindows:
    """Every window of ``window + 1`` frames (every `frame_step`-th frame) of an episodes file, read on demand.

    ``load(idx)`` (B,) -> {"frames": float32 (B, W + 1, 3, 64, 64) in [0, 1], "actions": (B, W, A · frame_step),
    "proprio": (B, W + 1, P), "state": (B, W + 1, S)}. With ``frame_step = k`` the k raw actions between two kept
    frames are concatenated (DINO-WM's frameskip), so the model still sees everything that moved the agent.
    Reads go to disk per batch (nothing is loaded up front); the h5py handle is reopened in each worker process.
    """

    def __init__(self, path: str | Path, *, window: int, frame_step: int = 1) -> None:
        if window < 1 or frame_step < 1:
            raise ValueError(f"window and frame_step must be >= 1, got {window}, {frame_step}")
        self.path, self.window, self.frame_step = Path(path), window, frame_step
        self._file: h5py.File | None = None
        self._pid = -1
        self._datasets: dict[str, h5py.Dataset] = {}
        f = self._handle()
        self.episodes, steps = f["actions"].shape[:2]
        self.action_dim = int(f.attrs["action_dim"])
        self.span = window * frame_step  # raw steps covered by one window
        if self.span > steps:
            raise EpisodesError(
                f"{self.path}: episodes have {steps} steps, fewer than window × frame_step = {self.span}; lower "
                "--data.window or --data.frame_step, or collect longer episodes (collect --steps)"
            )
        self.starts_per_episode = steps - self.span + 1

    def _handle(self) -> h5py.File:
        # h5py handles must not cross fork(): a DataLoader worker opens its own.
        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = open_episodes(self.path), os.getpid()
            # Dataset lookup by name costs about as much as a small read; do it once per process.
            self._datasets = {name: self._file[name] for name in ("frames", "actions", "proprio", "state")}
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None, "_pid": -1, "_datasets": {}}

    def __len__(self) -> int:
        return self.episodes * self.starts_per_episode

    def load(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        self._handle()
        d = self._datasets
        idx = idx.reshape(-1).cpu().numpy()
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window index out of range [0, {len(self)}): {idx.min()}..{idx.max()}")
        k, W = self.frame_step, self.window
        frames, actions, proprio, state = [], [], [], []
        for i in idx.tolist():
            episode, start = divmod(i, self.starts_per_episode)
            # Read the contiguous span and subsample in numpy: h5py's strided selections are ~20x slower.
            span = slice(start, start + self.span + 1)  # W · k + 1 raw frames
            frames.append(d["frames"][episode, span][::k])  # (W + 1, 64, 64, 3)
            actions.append(d["actions"][episode, start : start + self.span].reshape(W, k * self.action_dim))
            proprio.append(d["proprio"][episode, span][::k])
            state.append(d["state"][episode, span][::k])
        pixels = torch.from_numpy(np.stack(frames))  # (B, W + 1, 64, 64, 3) uint8
        return {
            "frames": pixels.permute(0, 1, 4, 2, 3).float().div_(255.0),  # (B, W + 1, 3, 64, 64)
            "actions": torch.from_numpy(np.stack(actions)),  # (B, W, A · k)
            "proprio": torch.from_numpy(np.stack(proprio)),  # (B, W + 1, P)
            "state": torch.from_numpy(np.stack(state)),  # (B, W + 1, S)
        }

    def close(self) -> None:
        if self._file is not None:
            self._datasets = {}
            self._file.close()
            self._file = None
