"""Image datasets held in memory as uint8 tensors, and batched augmentation written in torch.

Sources: Fashion-MNIST from the Debian package `dataset-fashion-mnist` (Xiao et al. 2017), scikit-learn's
digits, any folder of PNG/JPEG images with labels from sub-folders, and `.npz` arrays. Every dataset follows the
trainer's protocol: `len(ds)` and `ds.load(idx) -> {"x": float (B, C, H, W) in [0, 1], "y": long (B,)}`.

A file that cannot be read is an error naming the file; nothing is skipped silently.
"""

from __future__ import annotations

import gzip
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class DataError(ValueError):
    """Unreadable or mismatched data; the message is one line naming the file and the fix."""


@dataclass
class ImageDataset:
    """uint8 images (N, C, H, W) and optional long labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    name: str = "images"

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"{self.name}: images must be uint8 (N, C, H, W), got {self.images.dtype} "
                            f"{tuple(self.images.shape)}")  # fmt: skip
        if self.labels is not None and len(self.labels) != len(self.images):
            raise DataError(f"{self.name}: {len(self.labels)} labels for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def img_size(self) -> int:
        return self.images.shape[-1]

    def pixel_stats(self) -> tuple[float, float]:
        """Mean and std of all pixels in [0, 1] (from up to 10k images; enough for two decimals)."""
        x = self.images[:10_000].float().div_(255.0)
        return round(x.mean().item(), 4), round(x.std().item(), 4)

    def load(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"x": self.images[idx].float().div_(255.0)}
        if self.labels is not None:
            out["y"] = self.labels[idx]
        return out

    def subset(self, n: int) -> ImageDataset:
        labels = None if self.labels is None else self.labels[:n]
        return ImageDataset(self.images[:n], labels, self.name)


def fit_size(images: torch.Tensor, size: int, *, name: str, resize: bool) -> torch.Tensor:
    """Bring uint8 (N, C, h, w) to size x size: zero-pad 28 -> 32 style cases, else resize if allowed."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if h == w and h < size and (size - h) % 2 == 0 and size - h <= h // 4:
        # Padding a small border (Fashion-MNIST 28 -> 32) keeps every pixel exact and costs nothing.
        p = (size - h) // 2
        return F.pad(images, (p, p, p, p))
    if not resize:
        raise DataError(
            f"{name}: images are {h}x{w} but the model expects {size}x{size}; "
            f"pass --data.img_size {h} or --data.resize true"
        )
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def _read_idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        return arr.reshape(shape)
    except (OSError, ValueError, struct.error, EOFError) as e:
        raise DataError(f"{path}: unreadable IDX file ({e}); reinstall with "
                        "'sudo apt-get install --reinstall dataset-fashion-mnist'") from e  # fmt: skip


def fashion_mnist(split: str, *, root: str | Path = "", img_size: int = 32) -> ImageDataset:
    """Fashion-MNIST (60k train / 10k test, 28x28 grayscale) from the Debian package's IDX files."""
    root = Path(root) if root else FMNIST_DIR
    prefix = {"train": "train", "test": "t10k"}[split]
    img_path, lbl_path = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
    for p in (img_path, lbl_path):
        if not p.exists():
            raise DataError(
                f"Fashion-MNIST file {p} is missing: run 'sudo apt-get install dataset-fashion-mnist' "
                "(or pass --data.path to a folder with the IDX files)"
            )
    images = torch.from_numpy(_read_idx(img_path).copy()).unsqueeze(1)  # (N, 1, 28, 28)
    labels = torch.from_numpy(_read_idx(lbl_path).astype(np.int64))
    name = f"fashion_mnist/{split}"
    return ImageDataset(fit_size(images, img_size, name=name, resize=True), labels, name)


def digits(split: str, *, img_size: int = 16) -> ImageDataset:
    """scikit-learn's 8x8 digits (1,797 images, bundled with the package), split 80/20 with a fixed seed."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy((d.images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    n_train = int(0.8 * len(images))
    idx = perm[:n_train] if split == "train" else perm[n_train:]
    return ImageDataset(fit_size(images[idx], img_size, name="digits", resize=True), labels[idx], f"digits/{split}")


def _to_nchw(arr: np.ndarray, channels: int, name: str) -> torch.Tensor:
    """(N, H, W), (N, H, W, C) or (N, C, H, W) uint8/float in [0,1] -> uint8 (N, channels, H, W)."""
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3, 4) and arr.shape[1] not in (1, 3, 4):
        arr = arr.transpose(0, 3, 1, 2)
    if arr.ndim != 4:
        raise DataError(f"{name}: expected images shaped (N, H, W[, C]), got {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.isfinite(arr).all():
            raise DataError(f"{name}: images contain NaN or inf")
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        arr = np.clip(arr * scale, 0, 255).round().astype(np.uint8)
    if arr.shape[1] != channels:
        raise DataError(
            f"{name}: images have {arr.shape[1]} channels but the model expects {channels}; "
            f"pass --data.channels {arr.shape[1]}"
        )
    return torch.from_numpy(np.ascontiguousarray(arr))


def npz(path: str | Path, split: str, *, img_size: int, channels: int, resize: bool) -> ImageDataset:
    """Arrays from an .npz with `x_train`/`y_train`/`x_test`/`y_test`, or `x`/`y` (split 80/20, seed 0)."""
    path = Path(path)
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable .npz ({e})") from e
    if f"x_{split}" in arrays:
        x, y = arrays[f"x_{split}"], arrays.get(f"y_{split}")
    elif "x" in arrays:
        n = len(arrays["x"])
        perm = np.random.default_rng(0).permutation(n)
        sel = perm[: int(0.8 * n)] if split == "train" else perm[int(0.8 * n) :]
        x, y = arrays["x"][sel], (arrays["y"][sel] if "y" in arrays else None)
    else:
        raise DataError(f"{path}: no 'x' or 'x_{split}' array; found {sorted(arrays)}")
    images = fit_size(_to_nchw(x, channels, str(path)), img_size, name=str(path), resize=resize)
    labels = None if y is None else torch.from_numpy(np.asarray(y).astype(np.int64))
    return ImageDataset(images, labels, f"{path.name}/{split}")


def image_folder(root: str | Path, split: str, *, img_size: int, channels: int, resize: bool) -> ImageDataset:
    """Images under `root/<class>/*.png` (or `root/<split>/<class>/...`); labels are sorted class names."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if (root / split).is_dir():
        root = root / split
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found; pass --data.path to a folder of class sub-folders")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root}: no class sub-folders; put images in {root}/<class>/*.png")
    images, labels = [], []
    for label, cls in enumerate(classes):
        for f in sorted((root / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
            except (OSError, UnidentifiedImageError) as e:
                raise DataError(f"{f}: cannot read image ({e}); fix or remove the file") from e
            t = torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1)
            images.append(fit_size(t[None], img_size, name=str(f), resize=resize)[0])
            labels.append(label)
    if not images:
        raise DataError(f"{root}: no images with suffix {IMAGE_SUFFIXES}")
    return ImageDataset(torch.stack(images), torch.tensor(labels), f"{root.name}/{split}")


# ----------------------------------------------------------------------------------------------------------
# augmentation


@dataclass(frozen=True)
class RandomResizedCropFlip:
    """Batched random resized crop (area `scale`, aspect 3/4-4/3) and horizontal flip, as one affine warp.

    Parameters for the whole batch come from one generator, so a global batch split across ranks gets exactly
    the draws it would get on one process.
    """

    scale: tuple[float, float] = (0.3, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        B = x.shape[0]
        area = torch.empty(B).uniform_(*self.scale, generator=generator)
        logr = torch.empty(B).uniform_(math.log(self.ratio[0]), math.log(self.ratio[1]), generator=generator)
        r = logr.exp()
        sw, sh = (area * r).sqrt().clamp(max=1.0), (area / r).sqrt().clamp(max=1.0)  # crop size / image size
        cx = (torch.rand(B, generator=generator) * 2 - 1) * (1 - sw)  # centre in normalised coords
        cy = (torch.rand(B, generator=generator) * 2 - 1) * (1 - sh)
        sign = torch.where(torch.rand(B, generator=generator) < 0.5, -1.0, 1.0) if self.flip else torch.ones(B)
        theta = torch.zeros(B, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = sw * sign, cx
        theta[:, 1, 1], theta[:, 1, 2] = sh, cy
        grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
