"""The "episodes" dataset: `EpisodeWindows` of an HDF5 episodes file, described for the trainer and world models.

The trainer reads ``channels``, ``img_size``, ``frames`` (1: the world model encodes single frames) and
``action_dim`` into its `DataSpec`. With ``data.frame_step = k`` a window's action between two kept frames is the
concatenation of the k raw actions (DINO-WM's frameskip), so ``action_dim = k × env action dim``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from jepaworld.data.episodes import EpisodeWindows, open_episodes


class EpisodeDataset:
    """(frames, actions, proprio, state) windows: ``load(idx)`` -> {"frames": (B, W + 1, C, H, W) float in [0, 1],
    "actions": (B, W, k·A), "proprio": (B, W + 1, P), "state": (B, W + 1, S)}."""

    frames = 1

    def __init__(self, path: str | Path, *, window: int, frame_step: int = 1, max_memory_gb: float = 2.0) -> None:
        self.windows = EpisodeWindows(path, window=window, frame_step=frame_step)
        with open_episodes(path) as f:
            _, _, H, W, C = f["frames"].shape
            self.env = str(f.attrs["env"])
            self.state_dim = int(f["state"].shape[-1])
            # Proprioception is small (E × T × P floats): its statistics come from all of it, for any file size.
            proprio = f["proprio"][:].reshape(-1, f["proprio"].shape[-1]).astype(np.float64)  # (E·(T + 1), P)
            self._proprio_stats = (tuple(proprio.mean(0).tolist()), tuple(proprio.std(0).tolist()))
            # Small files are decompressed into memory once: per-window HDF5 reads cost as much as a CPU training
            # step of the small world models; larger files stream from disk through `EpisodeWindows`.
            self._memory = None
            if f["frames"].size <= max_memory_gb * 1e9:
                self._memory = {name: f[name][:] for name in ("frames", "actions", "proprio", "state")}
        if H != W:
            raise ValueError(f"{path}: frames are {H}×{W}; the world model needs square frames")
        self.path, self.window, self.frame_step = Path(path), window, frame_step
        self.channels, self.img_size = C, H
        self.env_action_dim = self.windows.action_dim
        self.action_dim = self.env_action_dim * frame_step

    def __len__(self) -> int:
        return len(self.windows)

    def load(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        if self._memory is None:
            return self.windows.load(idx)
        idx = idx.reshape(-1).cpu().numpy()
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window index out of range [0, {len(self)}): {idx.min()}..{idx.max()}")
        k, W, span = self.frame_step, self.window, self.windows.span
        episode, start = np.divmod(idx, self.windows.starts_per_episode)  # (B,), (B,)
        kept = start[:, None] + np.arange(0, span + 1, k)  # (B, W + 1) indices of the kept frames
        raw = start[:, None] + np.arange(span)  # (B, W·k) indices of every action in the window
        m = self._memory
        pixels = torch.from_numpy(m["frames"][episode[:, None], kept])  # (B, W + 1, H, W, C) uint8
        actions = m["actions"][episode[:, None], raw].reshape(len(idx), W, k * self.env_action_dim)
        return {
            "frames": pixels.permute(0, 1, 4, 2, 3).float().div_(255.0),  # (B, W + 1, C, H, W)
            "actions": torch.from_numpy(actions),  # (B, W, k·A)
            "proprio": torch.from_numpy(m["proprio"][episode[:, None], kept]),  # (B, W + 1, P)
            "state": torch.from_numpy(m["state"][episode[:, None], kept]),  # (B, W + 1, S)
        }

    def proprio_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-dimension mean and std of the proprioception over every stored step (empty when the env has none)."""
        return self._proprio_stats

    def close(self) -> None:
        self.windows.close()


def episode_dataset(cfg, split: str) -> EpisodeDataset:  # cfg: DataConfig (untyped: config imports data lazily)
    """The "episodes" registry entry: every window of `cfg.path` (episodes have no held-out split)."""
    from jepaworld.data.images import DataError

    if not cfg.path:
        raise DataError("dataset 'episodes' needs a location: pass --data.path FILE.h5 (see `jepaworld collect`)")
    ds = EpisodeDataset(cfg.path, window=cfg.window, frame_step=cfg.frame_step)
    if (ds.channels, ds.img_size) != (cfg.channels, cfg.img_size):
        raise DataError(
            f"{cfg.path}: frames are {ds.channels}×{ds.img_size}×{ds.img_size} but the config asks for "
            f"{cfg.channels}×{cfg.img_size}×{cfg.img_size}; set --data.channels and --data.img_size to match"
        )
    return ds
