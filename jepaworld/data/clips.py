"""The "video" dataset: every clip of a folder of videos, for V-JEPA / VideoMAE pretraining.

`data.path` is an intuitive-physics suite (its `train/` folder holds only *possible* videos, so the model never
sees a violation) or any folder of video files. A preset's own suite path (`data/physics`) that does not exist yet
is generated with the default `jepaworld physics generate` settings first, so `jepaworld pretrain --preset
vjepa-physics` works from a fresh clone; any other missing path is an error, so that a mistyped `--data.path`
does not start writing hundreds of videos there.
"""

from __future__ import annotations

from pathlib import Path

import torch

from jepaworld.config import DataConfig
from jepaworld.data.images import DataError
from jepaworld.data.video import VIDEO_SUFFIXES, VideoClipDataset, VideoError


class VideoDataset:
    """Clips (N, T, S, S, 3) uint8 served as {"x": (B, 3, T, S, S) float in [0, 1]}; channels is always 3."""

    channels = 3

    def __init__(self, clips: VideoClipDataset, *, img_size: int, frames: int, limit: int = 0) -> None:
        self.clips, self.img_size, self.frames = clips, img_size, frames
        self.limit = min(limit, len(clips)) if limit else len(clips)

    def __len__(self) -> int:
        return self.limit

    def load(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.clips.load(idx)

    def subset(self, n: int) -> VideoDataset:
        """The first `n` clips (`data.train_subset`)."""
        return VideoDataset(self.clips, img_size=self.img_size, frames=self.frames, limit=n)


def video_files(folder: Path) -> list[Path]:
    """The video files directly in `folder`, sorted by name."""
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)


def preset_suite_paths() -> set[Path]:
    """The suite paths the video presets ship with: the only missing paths that are generated on first use."""
    from jepaworld.config import PRESETS

    return {Path(cfg.data.path) for cfg in (make() for make in PRESETS.values()) if cfg.data.name == "video"}


def video_dataset(cfg: DataConfig, split: str) -> VideoDataset:
    """Half-overlapping clips of `cfg.frames` frames (every `cfg.frame_step`) of each training video."""
    if not cfg.path:
        raise DataError("dataset 'video' needs a location: pass --data.path SUITE_OR_FOLDER")
    if split != "train":
        raise DataError(f"dataset 'video' has only a train split (asked for '{split}'); probes do not apply to it")
    root = Path(cfg.path)
    if not root.exists():
        if root.resolve() not in {p.resolve() for p in preset_suite_paths()}:
            raise DataError(f"{root}: no such suite or video folder; check --data.path, or write a suite there with "
                            f"`jepaworld physics generate --out {root}`")  # fmt: skip
        from jepaworld.physics import generate_suite

        print(f"data: {root} does not exist; generating the default intuitive-physics suite there "
              f"(same as `jepaworld physics generate --out {root}`)", flush=True)  # fmt: skip
        generate_suite(root)
    if (root / "train").is_dir() and not (root / "index.json").exists():
        # A suite is complete once its index is written; a train/ folder without one is a copy or an older
        # interrupted `physics generate`, and training on part of it would go unnoticed.
        raise DataError(f"{root}: has train/ but no index.json, so it is not a complete suite; regenerate it with "
                        f"`jepaworld physics generate --out DIR`, or pass --data.path {root / 'train'} to train on "
                        "those videos as they are")  # fmt: skip
    folder = root / "train" if (root / "train").is_dir() else root
    files = video_files(folder) if folder.is_dir() else [folder]
    if not files:
        raise DataError(f"{folder}: holds no video files ({', '.join(VIDEO_SUFFIXES)}); pass a suite or video folder")
    try:
        # Half-overlapping clips: twice the clips of a tiling, with every frame still seen at two offsets.
        clips = VideoClipDataset(
            files, size=cfg.img_size, frames_per_clip=cfg.frames, frame_step=cfg.frame_step,
            stride=max(1, cfg.frames * cfg.frame_step // 2),
        )  # fmt: skip
    except VideoError as e:
        raise DataError(str(e)) from e
    return VideoDataset(clips, img_size=cfg.img_size, frames=cfg.frames)
