"""Tests for jepaworld.data.episodes: HDF5 round trip, windows, interrupted and resumed collection, clear errors."""

from __future__ import annotations

import signal

import h5py
import numpy as np
import pytest
import torch

import jepaworld.data.episodes as episodes_module
from jepaworld.data.episodes import (
    POLICIES,
    CollectionInterrupted,
    EpisodesError,
    EpisodeWindows,
    collect,
    partial_path,
    random_policy,
)
from jepaworld.envs import ENV_VERSIONS, TwoRooms

E, T = 3, 12
ARGS = {"episodes": E, "steps_per_episode": T, "seed": 7, "chunk": 4}


def test_round_trip_matches_the_environment(tmp_path):
    out = collect("two_rooms", out=tmp_path / "rooms.h5", **ARGS)
    assert out.exists() and not partial_path(out).exists()
    with h5py.File(out, "r") as f:
        assert f["frames"].shape == (E, T + 1, 64, 64, 3) and f["frames"].dtype == np.uint8
        assert f["frames"].compression == "lzf" and f["frames"].chunks == (1, 4, 64, 64, 3)
        assert f["actions"].shape == (E, T, 2) and f["actions"].dtype == np.float32
        assert f["state"].shape == (E, T + 1, 2) and f["proprio"].shape == (E, T + 1, 2)
        assert f.attrs["env"] == "two_rooms" and f.attrs["action_dim"] == 2 and f.attrs["seed"] == 7
        assert f.attrs["complete"] == E
        frames, actions, states = f["frames"][1], f["actions"][1], f["state"][1]
    assert np.abs(actions).max() <= 1.0

    # Replaying the stored actions from the stored start reproduces the stored frames and states.
    env = TwoRooms()
    seed, _ = episodes_module._episode_seeds(7, 1)
    obs = env.reset(seed=seed)
    assert np.array_equal(obs["pixels"], frames[0]) and np.array_equal(obs["state"], states[0])
    for t, action in enumerate(actions):
        obs, _ = env.step(action)
        assert np.array_equal(obs["pixels"], frames[t + 1]) and np.array_equal(obs["state"], states[t + 1])

    windows = EpisodeWindows(out, window=3, frame_step=2)
    assert len(windows) == E * (T - 6 + 1)
    idx = torch.tensor([0, len(windows) - 1, 9])
    batch = windows.load(idx)
    assert batch["frames"].shape == (3, 4, 3, 64, 64) and batch["frames"].dtype == torch.float32
    assert batch["actions"].shape == (3, 3, 4) and batch["state"].shape == (3, 4, 2)
    assert batch["frames"].min() >= 0.0 and batch["frames"].max() <= 1.0
    episode, start = divmod(9, T - 6 + 1)  # window 9 is episode 1, start 2
    with h5py.File(out, "r") as f:
        kept = f["frames"][episode, start : start + 7 : 2]  # (4, 64, 64, 3)
        raw_actions = f["actions"][episode, start : start + 6]  # (6, 2)
        assert np.array_equal(batch["state"][2].numpy(), f["state"][episode, start : start + 7 : 2])
    assert torch.equal(batch["frames"][2], torch.from_numpy(kept).permute(0, 3, 1, 2).float() / 255)
    assert torch.equal(batch["actions"][2], torch.from_numpy(raw_actions).reshape(3, 4))
    with pytest.raises(IndexError):
        windows.load(torch.tensor([len(windows)]))
    windows.close()


def test_same_seed_same_file_and_rerun_is_a_no_op(tmp_path):
    a = collect("two_rooms", out=tmp_path / "a.h5", policy="noisy", **ARGS)
    b = collect("two_rooms", out=tmp_path / "b.h5", policy="noisy", **ARGS)
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert np.array_equal(fa["frames"][:], fb["frames"][:])
        assert np.array_equal(fa["actions"][:], fb["actions"][:])
    assert collect("two_rooms", out=a, policy="noisy", **ARGS) == a
    with pytest.raises(EpisodesError, match="other settings: seed=7"):
        collect("two_rooms", out=a, policy="noisy", **{**ARGS, "seed": 8})


def test_interrupted_collection_is_never_loadable_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "rooms.h5"
    calls = {"n": 0}

    def interrupting_policy(rng, steps, action_dim):
        calls["n"] += 1
        if calls["n"] == 3:  # two episodes written, Ctrl-C during the third
            raise KeyboardInterrupt
        return random_policy(rng, steps, action_dim)

    monkeypatch.setitem(POLICIES, "random", interrupting_policy)
    with pytest.raises(KeyboardInterrupt):
        collect("two_rooms", out=out, **ARGS)
    assert not out.exists()
    with h5py.File(partial_path(out), "r") as f:
        assert f.attrs["complete"] == 2
    with pytest.raises(EpisodesError, match="not found; an interrupted collection left"):
        EpisodeWindows(out, window=2)
    with pytest.raises(EpisodesError, match=r"incomplete \(2/3 episodes\)"):
        EpisodeWindows(partial_path(out), window=2)
    with pytest.raises(EpisodesError, match="other settings"):  # resuming with other arguments is refused
        collect("two_rooms", out=out, **{**ARGS, "steps_per_episode": T + 1})

    monkeypatch.setitem(POLICIES, "random", random_policy)
    calls["n"] = 0
    collect("two_rooms", out=out, **ARGS)
    assert not partial_path(out).exists()
    reference = collect("two_rooms", out=tmp_path / "reference.h5", **ARGS)
    with h5py.File(out, "r") as f, h5py.File(reference, "r") as g:
        assert f.attrs["complete"] == E
        for name in ("frames", "actions", "proprio", "state"):
            assert np.array_equal(f[name][:], g[name][:]), name
    assert len(EpisodeWindows(out, window=2)) == E * (T - 1)


def test_ctrl_c_stops_between_episodes_and_the_same_call_resumes(tmp_path, monkeypatch):
    """A real SIGINT in the middle of an episode: that episode is finished and kept, then collection stops."""
    out = tmp_path / "rooms.h5"
    calls = {"n": 0}

    def policy_that_gets_ctrl_c(rng, steps, action_dim):
        calls["n"] += 1
        if calls["n"] == 2:
            signal.raise_signal(signal.SIGINT)  # delivered now, as a Ctrl-C in the terminal would be
        return random_policy(rng, steps, action_dim)

    monkeypatch.setitem(POLICIES, "random", policy_that_gets_ctrl_c)
    with pytest.raises(CollectionInterrupted, match="interrupted after 2 episodes; re-run the same command") as stop:
        collect("tworooms", out=out, **ARGS)
    assert (stop.value.complete, stop.value.episodes, stop.value.partial) == (2, E, partial_path(out))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C behaves as usual again
    assert not out.exists()
    with h5py.File(partial_path(out), "r") as f:
        assert f.attrs["complete"] == 2 and f.attrs["env"] == "two_rooms"  # files record the registry key

    monkeypatch.setitem(POLICIES, "random", random_policy)
    collect("tworooms", out=out, **ARGS)
    reference = collect("two_rooms", out=tmp_path / "reference.h5", **ARGS)
    with h5py.File(out, "r") as f, h5py.File(reference, "r") as g:
        for name in ("frames", "actions", "state"):
            assert np.array_equal(f[name][:], g[name][:]), name


def test_clear_errors_for_foreign_files(tmp_path):
    with pytest.raises(EpisodesError, match="episodes file not found"):
        EpisodeWindows(tmp_path / "missing.h5", window=2)
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(EpisodesError, match="not an HDF5 file"):
        EpisodeWindows(tmp_path / "text.h5", window=2)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["frames"] = np.zeros((1, 2, 64, 64, 3), dtype=np.uint8)
    with pytest.raises(EpisodesError, match="not a jepaworld episodes file"):
        EpisodeWindows(tmp_path / "other.h5", window=2)
    out = collect("two_rooms", out=tmp_path / "short.h5", episodes=1, steps_per_episode=3, seed=0)
    with pytest.raises(EpisodesError, match="fewer than window"):
        EpisodeWindows(out, window=2, frame_step=2)
    with pytest.raises(ValueError, match="unknown policy"):
        collect("two_rooms", out=tmp_path / "x.h5", episodes=1, steps_per_episode=3, policy="expert")
    with pytest.raises(ValueError, match="'tworooms' has no scripted policy; use --policy random or noisy"):
        collect("two_rooms", out=tmp_path / "x.h5", episodes=1, steps_per_episode=3, policy="scripted")
    assert not (tmp_path / "x.h5").exists() and not partial_path(tmp_path / "x.h5").exists()


def test_episodes_of_an_older_env_version_are_refused(tmp_path, monkeypatch):
    out = collect("two_rooms", out=tmp_path / "rooms.h5", episodes=1, steps_per_episode=3, seed=0)
    with h5py.File(out, "r") as f:
        assert f.attrs["env_version"] == 1
    EpisodeWindows(out, window=2).close()
    # The env changes what its data means (say, its actions): files collected before are refused by name.
    monkeypatch.setitem(ENV_VERSIONS, "two_rooms", (2, "actions became accelerations"))
    with pytest.raises(EpisodesError, match=r"rooms.h5: collected with version 1 .* version 2 \(actions became"):
        EpisodeWindows(out, window=2)
    with pytest.raises(EpisodesError, match="collected with version 1"):
        collect("two_rooms", out=out, episodes=1, steps_per_episode=3, seed=0)


def test_policies_stay_in_range_and_move_the_agent():
    rng = np.random.default_rng(0)
    for name, policy in POLICIES.items():
        actions = policy(rng, 200, 2)
        assert actions.shape == (200, 2) and actions.dtype == np.float32, name
        assert np.abs(actions).max() <= 1.0, name
        # Held / correlated actions: consecutive actions agree far more often than independent ones would.
        assert (np.sign(actions[1:]) == np.sign(actions[:-1])).mean() > 0.65, name
