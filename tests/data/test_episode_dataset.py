"""Tests for jepaworld.data.episode_dataset: in-memory and streamed windows agree, proprioception statistics."""

from __future__ import annotations

import h5py
import numpy as np
import torch

from jepaworld.data.episode_dataset import EpisodeDataset
from jepaworld.data.episodes import collect
from jepaworld.train import spec_of


def test_in_memory_and_streamed_windows_agree_and_carry_proprio(tmp_path):
    path = collect("two_rooms", out=tmp_path / "rooms.h5", episodes=3, steps_per_episode=12, seed=1, chunk=4)
    memory = EpisodeDataset(path, window=3, frame_step=2)
    streamed = EpisodeDataset(path, window=3, frame_step=2, max_memory_gb=0.0)
    assert memory._memory is not None and streamed._memory is None
    idx = torch.tensor([0, 5, len(memory) - 1])
    a, b = memory.load(idx), streamed.load(idx)
    assert set(a) == set(b) == {"frames", "actions", "proprio", "state"}
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert a["proprio"].shape == (3, 4, 2) and a["actions"].shape == (3, 3, 4)

    with h5py.File(path, "r") as f:
        proprio = f["proprio"][:].reshape(-1, 2)
    mean, std = memory.proprio_stats()
    assert np.allclose(mean, proprio.mean(0), atol=1e-6) and np.allclose(std, proprio.std(0), atol=1e-6)
    spec = spec_of(memory)  # what a world model is built from, and saved with its checkpoint
    assert spec.proprio_mean == mean and spec.proprio_std == std and spec.action_dim == 4
    memory.close()
    streamed.close()
