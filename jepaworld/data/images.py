"""Image datasets held in memory as uint8 tensors, and batched augmentation written in torch.

Sources: Fashion-MNIST from the Debian package `dataset-fashion-mnist` (Xiao et al. 2017), scikit-learn's
digits, any folder of PNG/JPEG images with labels from sub-folders, and `.npz` arrays. Every dataset follows the
trainer's protocol: `len(ds)` and `ds.load(idx) -> {"x": float (B, C, H, W) in [0, 1], "y": long (B,)}`.
A source without its own test split is split 80/20 with seed 0, so a probe's test images are never its
training images.

A file that cannot be read is an error naming the file; nothing is skipped silently.
"""

from __future__ import annotations

import gzip
import math
import struct
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# Held-out split of a source without one (`.npz` with `x`/`y`, image folders without train/ and test/).
SPLIT_SEED, TRAIN_FRACTION = 0, 0.8


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


def _pads_to(h: int, w: int, size: int) -> bool:
    """Whether `fit_size` takes an h x w image to size x size without resizing: as it is, or a small even border
    (Fashion-MNIST 28 -> 32), which keeps every pixel exact and costs nothing."""
    return (h, w) == (size, size) or (h == w and h < size and (size - h) % 2 == 0 and size - h <= h // 4)


def _size_error(name: str, sizes: dict[tuple[int, int], str], size: int) -> DataError:
    """The error for images whose sizes (h, w) -> an example file ('' for none) do not all fit size x size, with a
    fix that works for every one of them: an `--data.img_size` that each size pads to, if any, and the resize."""
    fits = [h for h, w in sorted(sizes) if all(_pads_to(a, b, h) for a, b in sizes)]
    fix = f"pass --data.img_size {fits[0]} or --data.resize true" if fits else "pass --data.resize true"
    shown = ", ".join(f"{h}x{w}" + (f" ({f})" if f else "") for (h, w), f in sorted(sizes.items())[:3])
    if len(sizes) == 1:
        what = f"images are {shown}"
    else:
        what = f"the images come in {len(sizes)} sizes ({shown}{' and more' if len(sizes) > 3 else ''})"
    return DataError(f"{name}: {what} but the model expects {size}x{size}; {fix}")


def fit_size(images: torch.Tensor, size: int, *, name: str, resize: bool) -> torch.Tensor:
    """Bring uint8 (N, C, h, w) to size x size: zero-pad 28 -> 32 style cases, else resize if allowed."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if _pads_to(h, w, size):
        p = (size - h) // 2
        return F.pad(images, (p, p, p, p))
    if not resize:
        raise _size_error(name, {(h, w): ""}, size)
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


def _npz_keys(path: Path, names: list[str], split: str) -> tuple[str, str]:
    """The (images, labels) array names that hold `split`: `x_<split>`/`y_<split>`, else `x`/`y` (held out)."""
    if f"x_{split}" in names:
        return f"x_{split}", f"y_{split}"
    if "x" in names:
        return "x", "y"
    raise DataError(f"{path}: no 'x' or 'x_{split}' array; found {sorted(names)}")


def _read_npz(path: Path, keys: tuple[str, ...] = ()) -> tuple[list[str], dict[str, np.ndarray]]:
    """The array names an .npz holds, and those of its arrays named in `keys` (none: only its directory is read)."""
    try:
        # Our own handle: np.load leaks the one it opens when the archive is unreadable.
        with open(path, "rb") as fh:
            f = np.load(fh)
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise DataError(f"{path}: holds one array, not an .npz archive; save it with "
                                "numpy.savez(path, x=images, y=labels)")  # fmt: skip
            with f:
                return list(f.files), {k: f[k] for k in keys if k in f.files}
    except DataError:  # ours, already one line: not to be wrapped by the ValueError clause below
        raise
    except FileNotFoundError as e:
        raise DataError(f"{path}: unreadable .npz (no such file); pass --data.path to an existing .npz") from e
    # np.load reads lazily: a truncated or corrupt archive fails while reading an array, as BadZipFile or zlib.error.
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: unreadable .npz ({type(e).__name__}: {e}); it is truncated or corrupt, "
                        "write it again (numpy.savez)") from e  # fmt: skip


def npz_labels_missing(path: str | Path) -> list[str]:
    """The label arrays a probe needs that the .npz lacks (`y`, or `y_train`/`y_test`); reads only its directory."""
    path = Path(path)
    names, _ = _read_npz(path)
    return [y for y in dict.fromkeys(_npz_keys(path, names, split)[1] for split in ("train", "test")) if y not in names]


def npz(path: str | Path, split: str, *, img_size: int, channels: int, resize: bool) -> ImageDataset:
    """Arrays from an .npz with `x_train`/`y_train`/`x_test`/`y_test`, or `x`/`y` (split 80/20, seed 0).

    Labels are optional for pretraining; the probes need them (`npz_labels_missing`).
    """
    path = Path(path)
    xk, yk = _npz_keys(path, _read_npz(path)[0], split)
    _, arrays = _read_npz(path, (xk, yk))
    x, y = arrays[xk], arrays.get(yk)
    if xk == "x":
        n = len(x)
        perm = np.random.default_rng(SPLIT_SEED).permutation(n)
        n_train = int(TRAIN_FRACTION * n)
        sel = perm[:n_train] if split == "train" else perm[n_train:]
        x, y = x[sel], (None if y is None else y[sel])
    images = fit_size(_to_nchw(x, channels, str(path)), img_size, name=str(path), resize=resize)
    labels = None if y is None else torch.from_numpy(np.asarray(y).astype(np.int64))
    return ImageDataset(images, labels, f"{path.name}/{split}")


def held_out_split(labels: np.ndarray, split: str) -> np.ndarray:
    """Sorted indices of `split` in a seeded 80/20 split stratified by label: each class keeps 80% of its items
    (at least one) for training and holds out the rest: a class of one item is in the training split only."""
    rng = np.random.default_rng(SPLIT_SEED)
    parts = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_train = max(1, int(TRAIN_FRACTION * len(idx)))
        parts.append(idx[:n_train] if split == "train" else idx[n_train:])
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def _class_names(folder: Path) -> list[str]:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"{folder}: no class sub-folders; put images in {folder}/<class>/*.png")
    return names


def _class_files(folder: Path, names: list[str]) -> tuple[list[Path], np.ndarray]:
    """Every image file in `folder/<class>/` and its label: the index of its class in `names`.

    Hidden entries (".DS_Store", ".ipynb_checkpoints") are not data; anything else that is not an image file
    of a known suffix, in a class folder or loose beside them, is an error listing it, never skipped.
    """
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    classes = [p for p in entries if p.is_dir()]
    if not classes:
        raise DataError(f"{folder}: no class sub-folders; put images in {folder}/<class>/*.png")
    extra = [p for p in classes if p.name not in names]
    if extra:
        # Labels are indices into the training split's classes; a class it lacks has no label to give.
        raise DataError(f"{extra[0]}: class not in the training split {folder.parent / 'train'}; add it there "
                        "or remove it")  # fmt: skip
    loose = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if loose:
        raise DataError(f"{loose[0]}: image outside a class folder ({len(loose)} such); move it into "
                        f"{folder}/<class>/ so that it has a label")  # fmt: skip
    files, labels, unknown = [], [], []
    for cls in classes:
        label = names.index(cls.name)
        for f in sorted(p for p in cls.iterdir() if not p.name.startswith(".")):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                labels.append(label)
            else:
                unknown.append(f)
    if unknown:
        listed = ", ".join(str(f) for f in unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise DataError(f"{folder}: {len(unknown)} entries in class folders are not {'/'.join(IMAGE_SUFFIXES)} "
                        f"images ({listed}); convert them or move them out")  # fmt: skip
    return files, np.asarray(labels, dtype=np.int64)


def _pixels(im, channels: int, path: Path) -> tuple[np.ndarray, str]:
    """(H, W, channels) uint8 of a PIL image, and its mode when it had to be converted ("" when not).

    Grayscale becomes RGB by copying the channel (nothing lost). RGB becomes grayscale only when its three
    channels are equal; a colour image for a 1-channel model is an error, as converting would drop its colour.
    Alpha is dropped (not composited).
    """
    mode = im.mode
    target = "L" if channels == 1 else "RGB"
    if mode == target:
        arr = np.asarray(im)
        return arr.reshape(arr.shape[0], arr.shape[1], -1), ""
    if mode.startswith(("I", "F")):
        # PIL's conversion to 8 bits clips 16-bit and float pixels instead of scaling them.
        raise DataError(f"{path}: {mode} image (16-bit or float pixels); this loader reads 8-bit images: save it "
                        "as 8-bit")  # fmt: skip
    if mode in ("P", "PA") and "transparency" in im.info:
        im = im.convert("RGBA")  # PIL warns on a palette with transparency converted straight to RGB
        mode = f"{mode} with transparency"
    rgb = np.asarray(im.convert("RGB"))  # (H, W, 3)
    if channels == 3:
        return rgb, mode
    if (rgb[..., :1] != rgb).any():
        raise DataError(f"{path}: colour image ({mode}) but the model expects grayscale (--data.channels 1); "
                        "pass --data.channels 3, or convert the folder to grayscale yourself")  # fmt: skip
    return rgb[..., :1], mode


def _folder_sizes(files: list[Path]) -> dict[tuple[int, int], str]:
    """Each (h, w) among the readable images in `files` -> the name of its first file, from the headers alone."""
    from PIL import Image, UnidentifiedImageError

    sizes: dict[tuple[int, int], str] = {}
    for f in files:
        try:
            with Image.open(f) as im:
                sizes.setdefault((im.height, im.width), f.name)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
            continue  # an unreadable file gets its own error once the sizes are fixed
    return sizes


def image_folder(root: str | Path, split: str, *, img_size: int, channels: int, resize: bool) -> ImageDataset:
    """Labelled images from class sub-folders (labels: the sorted class names, 0, 1, ...).

    Layouts: `root/train/<class>/*` and `root/test/<class>/*`, or `root/<class>/*`, which is split 80/20 within
    each class with seed 0 (`held_out_split`, as `npz` splits `x`/`y`), so a probe never tests on the images it
    was trained on. Suffixes: `IMAGE_SUFFIXES`; any other file in a class folder is an error, not skipped.
    Channels: grayscale images are copied to RGB for a 3-channel model, and RGB images with equal channels
    taken as grayscale for a 1-channel one; a colour image for a 1-channel model is an error. Conversions are
    reported in one line.
    """
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise DataError(f"--data.channels {channels}: image folders give 1 (grayscale) or 3 (RGB) channels")
    root = Path(root)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "image folder not found"
        raise DataError(f"{root}: {what}; pass --data.path to a folder of class sub-folders (or --data.name npz "
                        "for an .npz file)")  # fmt: skip
    if (root / "train").is_dir() or (root / "test").is_dir():
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"{folder}: missing; {root} has split sub-folders, so it needs both train/ and test/ "
                            f"(or put the class folders directly in {root} for a seeded 80/20 split)")  # fmt: skip
        # Both splits take their labels from train/'s class names, so a class missing from test/ shifts none.
        names = _class_names(root / "train" if (root / "train").is_dir() else folder)
        files, labels = _class_files(folder, names)
        sources = [root / sp for sp in ("train", "test") if (root / sp).is_dir()]
    else:
        folder, sources, names = root, [root], _class_names(root)
        files, labels = _class_files(root, names)
        keep = held_out_split(labels, split)
        files, labels = [files[i] for i in keep], labels[keep]
    if not files:
        raise DataError(f"{folder}: no {split} images with suffix {'/'.join(IMAGE_SUFFIXES)}")
    images, converted = [], Counter()
    for f in files:
        try:
            with Image.open(f) as im:
                arr, mode = _pixels(im, channels, f)
        except DataError:  # a colour mode or depth we refuse: already one line naming the file and the fix
            raise
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
            # PIL reports bad files as OSError (truncated, unidentified), ValueError or SyntaxError (headers).
            raise DataError(f"{f}: cannot read image ({e}); fix or remove the file") from e
        if mode:
            converted[mode] += 1
        t = torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (C, H, W)
        if not resize and not _pads_to(*t.shape[-2:], img_size):
            # Advise on the images of both splits, so that the suggested --data.img_size loads every one of them.
            every = [g for src in sources for g in _class_files(src, names)[0]]
            raise _size_error(str(f), _folder_sizes(every), img_size)
        images.append(fit_size(t[None], img_size, name=str(f), resize=resize)[0])
    if converted:
        modes = ", ".join(f"{n} {m}" for m, n in sorted(converted.items()))
        alpha = "; transparency dropped" if any("A" in m or "transparency" in m for m in converted) else ""
        print(f"data: {folder} ({split}): converted {sum(converted.values())} of {len(files)} images to "
              f"{'RGB' if channels == 3 else 'grayscale'} (from {modes}){alpha}", flush=True)  # fmt: skip
    return ImageDataset(torch.stack(images), torch.from_numpy(labels), f"{root.name}/{split}")


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
