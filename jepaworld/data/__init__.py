"""Data sources. Every dataset has `len(ds)` and `ds.load(idx) -> dict of batched tensors`.

`build_dataset(cfg, split)` is the one place the trainer and the probes get data from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jepaworld.config import DataConfig
from jepaworld.data.clips import video_dataset
from jepaworld.data.episode_dataset import episode_dataset
from jepaworld.data.images import DataError, ImageDataset, digits, fashion_mnist, image_folder, npz


def _fashion(cfg: DataConfig, split: str) -> ImageDataset:
    return fashion_mnist(split, root=cfg.path, img_size=cfg.img_size)


def _digits(cfg: DataConfig, split: str) -> ImageDataset:
    return digits(split, img_size=cfg.img_size)


def _needs_path(cfg: DataConfig) -> None:
    if not cfg.path:
        raise DataError(f"dataset '{cfg.name}' needs a location: pass --data.path PATH")


def _folder(cfg: DataConfig, split: str) -> ImageDataset:
    _needs_path(cfg)
    return image_folder(cfg.path, split, img_size=cfg.img_size, channels=cfg.channels, resize=cfg.resize)


def _npz(cfg: DataConfig, split: str) -> ImageDataset:
    _needs_path(cfg)
    return npz(cfg.path, split, img_size=cfg.img_size, channels=cfg.channels, resize=cfg.resize)


DATASETS: dict[str, Callable[[DataConfig, str], Any]] = {
    "fashion_mnist": _fashion,
    "digits": _digits,
    "folder": _folder,
    "npz": _npz,
    "video": video_dataset,
    "episodes": episode_dataset,
}


def build_dataset(cfg: DataConfig, split: str = "train") -> Any:
    if cfg.name not in DATASETS:
        raise DataError(f"unknown dataset '{cfg.name}'; choose one of {', '.join(DATASETS)}")
    ds = DATASETS[cfg.name](cfg, split)
    if split == "train" and cfg.train_subset:
        ds = ds.subset(cfg.train_subset)
    return ds


__all__ = ["DATASETS", "DataError", "ImageDataset", "build_dataset"]
