"""Image datasets (Fashion-MNIST IDX files, digits, image folders, .npz) and the batched crop/flip augmentation."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jepaworld.config import DataConfig
from jepaworld.data import build_dataset
from jepaworld.data.images import (
    DataError,
    ImageDataset,
    RandomResizedCropFlip,
    digits,
    fashion_mnist,
    fit_size,
    image_folder,
    npz,
    npz_labels_missing,
)

# ----------------------------------------------------------------------------------------------------------
# Fashion-MNIST from IDX files


def write_idx(path: Path, arr: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def fake_fmnist(root: Path, n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
        arrays[prefix] = images
        arrays[prefix + "-labels"] = labels
    return arrays


def test_fashion_mnist_from_idx_pads_28_to_32(tmp_path: Path) -> None:
    arrays = fake_fmnist(tmp_path)
    tr = fashion_mnist("train", root=tmp_path, img_size=32)
    te = fashion_mnist("test", root=tmp_path, img_size=32)
    assert len(tr) == 6 and len(te) == 4
    assert tr.images.shape == (6, 1, 32, 32) and tr.images.dtype == torch.uint8
    assert (tr.channels, tr.img_size) == (1, 32)
    # Zero border of 2 pixels, the original pixels exactly in the middle.
    assert torch.equal(tr.images[:, 0, 2:30, 2:30], torch.from_numpy(arrays["train"]))
    assert tr.images[:, :, :2].sum() == 0 and tr.images[:, :, :, 30:].sum() == 0
    assert torch.equal(te.labels, torch.from_numpy(arrays["t10k-labels"].astype(np.int64)))
    batch = tr.load(torch.tensor([0, 2]))
    assert batch["x"].shape == (2, 1, 32, 32) and batch["x"].dtype == torch.float32
    assert batch["x"].min() >= 0 and batch["x"].max() <= 1
    assert torch.equal(fashion_mnist("train", root=tmp_path, img_size=28).images[:, 0], tr.images[:, 0, 2:30, 2:30])


def test_fashion_mnist_through_build_dataset_and_subset(tmp_path: Path) -> None:
    fake_fmnist(tmp_path)
    ds = build_dataset(DataConfig(name="fashion_mnist", path=str(tmp_path), train_subset=3), "train")
    assert len(ds) == 3
    assert len(build_dataset(DataConfig(name="fashion_mnist", path=str(tmp_path), train_subset=3), "test")) == 4


def test_fashion_mnist_missing_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as e:
        fashion_mnist("train", root=tmp_path / "nowhere")
    assert "train-images-idx3-ubyte.gz" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "corruption", ["not-gzip", "truncated-gzip", "bad-magic", "short-data"], ids=lambda c: c.replace("-", "_")
)
def test_fashion_mnist_corrupt_file_names_it(tmp_path: Path, corruption: str) -> None:
    fake_fmnist(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(bad.read_bytes())
    if corruption == "not-gzip":
        bad.write_bytes(b"this is not gzip at all")
    elif corruption == "truncated-gzip":
        bad.write_bytes(bad.read_bytes()[:40])
    elif corruption == "bad-magic":
        bad.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + raw[4:]))
    else:
        bad.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match="unreadable IDX file") as e:
        fashion_mnist("train", root=tmp_path)
    assert str(bad) in str(e.value)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="dataset-fashion-mnist missing")
def test_real_fashion_mnist_test_split() -> None:
    te = fashion_mnist("test")
    assert te.images.shape == (10000, 1, 32, 32)
    assert sorted(te.labels.unique().tolist()) == list(range(10))


# ----------------------------------------------------------------------------------------------------------
# digits


def test_digits_split_and_size() -> None:
    tr, te = digits("train", img_size=16), digits("test", img_size=16)
    assert len(tr) + len(te) == 1797 and len(tr) == int(0.8 * 1797)
    assert tr.images.shape[1:] == (1, 16, 16) and tr.images.dtype == torch.uint8
    assert tr.images.max() > 200  # scaled from 0..16 to 0..255
    assert sorted(te.labels.unique().tolist()) == list(range(10))
    # The split is fixed (the same every call) and train and test are different images.
    tr8, te8 = digits("train", img_size=8), digits("test", img_size=8)
    assert torch.equal(tr8.labels, tr.labels)
    flat_tr = {bytes(x.flatten().tolist()) for x in tr8.images}
    overlap = sum(bytes(x.flatten().tolist()) in flat_tr for x in te8.images)
    assert overlap < 0.05 * len(te)  # digits has a few duplicate images, not a shared split


# ----------------------------------------------------------------------------------------------------------
# image folders


def write_png(path: Path, size: int = 8, mode: str = "L", value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    shape = {"L": (size, size), "RGB": (size, size, 3), "RGBA": (size, size, 4)}[mode]
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:  # closed here: a leaked file handle is a warning, and warnings are errors
        return np.array(im)


def make_folder(root: Path, mode: str = "L", counts: tuple[int, int] = (3, 2)) -> None:
    """`root/cat/*.png` and `root/ant/*.png`, `counts` images each, every image different."""
    for cls, n in zip(("cat", "ant"), counts, strict=True):
        for i in range(n):
            write_png(root / cls / f"{i}.png", mode=mode, value=100 * len(cls) + 10 * n + i)


def test_image_folder_labels_and_shapes(tmp_path: Path) -> None:
    make_folder(tmp_path / "train")
    make_folder(tmp_path / "test", counts=(1, 1))
    ds = image_folder(tmp_path, "train", img_size=8, channels=1, resize=False)
    assert ds.images.shape == (5, 1, 8, 8)
    assert ds.labels.tolist() == [0, 0, 1, 1, 1]  # classes sorted by name: ant = 0, cat = 1
    expect = read_png(tmp_path / "train" / "cat" / "0.png")
    assert torch.equal(ds.images[2, 0], torch.from_numpy(expect))
    assert len(image_folder(tmp_path, "test", img_size=8, channels=1, resize=False)) == 2


def test_image_folder_without_split_folders_holds_out_a_seeded_stratified_split(tmp_path: Path) -> None:
    """Without train/ and test/, the test split must be other images than the training split (the probe
    would otherwise report training accuracy), every class in both, the same split every time."""
    make_folder(tmp_path, counts=(10, 5))
    tr = image_folder(tmp_path, "train", img_size=8, channels=1, resize=False)
    te = image_folder(tmp_path, "test", img_size=8, channels=1, resize=False)
    assert (tr.labels.bincount().tolist(), te.labels.bincount().tolist()) == ([4, 8], [1, 2])  # ant, cat: 80/20
    train_imgs = {bytes(x.flatten().tolist()) for x in tr.images}
    assert not any(bytes(x.flatten().tolist()) in train_imgs for x in te.images)
    every = {(bytes(read_png(f).flatten().tolist()), f.parent.name) for f in tmp_path.glob("*/*.png")}
    names = ["ant", "cat"]
    got = {
        (bytes(x[0].flatten().tolist()), names[y])
        for ds in (tr, te)
        for x, y in zip(ds.images, ds.labels.tolist(), strict=True)
    }
    assert got == every  # nothing lost, every image with its own class
    again = image_folder(tmp_path, "test", img_size=8, channels=1, resize=False)
    assert torch.equal(again.images, te.images) and torch.equal(again.labels, te.labels)


def test_image_folder_split_folders_share_the_training_classes(tmp_path: Path) -> None:
    make_folder(tmp_path / "train")
    write_png(tmp_path / "test" / "cat" / "0.png")  # no ant/ in test: cat keeps label 1
    assert image_folder(tmp_path, "test", img_size=8, channels=1, resize=False).labels.tolist() == [1]
    write_png(tmp_path / "test" / "bee" / "0.png")
    with pytest.raises(DataError, match=r"test/bee: class not in the training split"):
        image_folder(tmp_path, "test", img_size=8, channels=1, resize=False)
    only_train = tmp_path / "only-train"
    make_folder(only_train / "train")
    with pytest.raises(DataError, match=r"only-train/test: missing; .* needs both train/ and test/"):
        image_folder(only_train, "test", img_size=8, channels=1, resize=False)


def test_image_folder_rgb_and_split_subfolder(tmp_path: Path) -> None:
    make_folder(tmp_path / "test", mode="RGB")
    ds = build_dataset(DataConfig(name="folder", path=str(tmp_path), img_size=8, channels=3), "test")
    assert ds.images.shape == (5, 3, 8, 8)
    expect = read_png(tmp_path / "test" / "ant" / "1.png")
    assert torch.equal(ds.images[1].permute(1, 2, 0), torch.from_numpy(expect))


@pytest.mark.parametrize("name", ["notes.txt", "anim.gif", "nested/0.png"])
def test_image_folder_names_files_it_cannot_use(tmp_path: Path, name: str) -> None:
    make_folder(tmp_path / "train")
    (tmp_path / "train" / ".DS_Store").write_text("hidden files are not data")
    (tmp_path / "train" / "cat" / ".thumbs").write_text("hidden files are not data")
    odd = tmp_path / "train" / "cat" / name
    odd.parent.mkdir(exist_ok=True)
    odd.write_bytes(b"GIF89a")
    with pytest.raises(DataError, match=r"1 entries in class folders are not \.png/") as e:
        image_folder(tmp_path, "train", img_size=8, channels=1, resize=False)
    assert str(tmp_path / "train" / "cat" / name.split("/")[0]) in str(e.value) and "\n" not in str(e.value)


def test_image_folder_image_outside_a_class_folder(tmp_path: Path) -> None:
    make_folder(tmp_path)
    write_png(tmp_path / "stray.png")
    with pytest.raises(DataError, match=r"stray\.png: image outside a class folder"):
        image_folder(tmp_path, "train", img_size=8, channels=1, resize=False)


def test_image_folder_grayscale_to_rgb_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_folder(tmp_path / "train")
    write_png(tmp_path / "train" / "ant" / "rgba.png", mode="RGBA")
    ds = image_folder(tmp_path, "train", img_size=8, channels=3, resize=False)
    grey = read_png(tmp_path / "train" / "ant" / "0.png")
    assert ds.images.shape == (6, 3, 8, 8) and all(torch.equal(c, torch.from_numpy(grey)) for c in ds.images[0])
    rgba = read_png(tmp_path / "train" / "ant" / "rgba.png")
    assert torch.equal(ds.images[2].permute(1, 2, 0), torch.from_numpy(rgba[..., :3]))
    out = capsys.readouterr().out
    assert "converted 6 of 6 images to RGB (from 5 L, 1 RGBA); transparency dropped" in out
    assert len(out.splitlines()) == 1  # one line for the folder, not one per image


def test_image_folder_colour_to_grayscale_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_folder(tmp_path / "train")
    # An RGB file whose channels are equal is grayscale: taken as it is, with the conversion reported.
    grey = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(tmp_path / "train" / "ant" / "grey-rgb.png")
    ds = image_folder(tmp_path, "train", img_size=8, channels=1, resize=False)
    assert torch.equal(ds.images[2, 0], torch.from_numpy(grey))
    assert "converted 1 of 6 images to grayscale (from 1 RGB)" in capsys.readouterr().out
    write_png(tmp_path / "train" / "cat" / "colour.png", mode="RGB")
    # The whole message is ours, not wrapped in a "cannot read image" around it.
    with pytest.raises(DataError, match=r"^\S*colour\.png: colour image \(RGB\) .* pass --data\.channels 3"):
        image_folder(tmp_path, "train", img_size=8, channels=1, resize=False)


def test_image_folder_16_bit_is_refused(tmp_path: Path) -> None:
    make_folder(tmp_path / "train")
    Image.fromarray(np.full((8, 8), 4000, dtype=np.uint16)).save(tmp_path / "train" / "cat" / "deep.png")
    with pytest.raises(DataError, match=r"deep\.png: I;16 image .* save it as 8-bit"):
        image_folder(tmp_path, "train", img_size=8, channels=1, resize=False)


def test_image_folder_corrupt_png_names_file(tmp_path: Path) -> None:
    make_folder(tmp_path / "train")
    bad = tmp_path / "train" / "cat" / "9.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="cannot read image") as e:
        image_folder(tmp_path, "train", img_size=8, channels=1, resize=False)
    assert str(bad) in str(e.value)


def test_image_folder_truncated_png_names_file(tmp_path: Path) -> None:
    make_folder(tmp_path / "train")
    bad = tmp_path / "train" / "ant" / "0.png"
    write_png(bad, size=32)
    bad.write_bytes(bad.read_bytes()[:-200])
    with pytest.raises(DataError, match=str(bad)):
        image_folder(tmp_path, "train", img_size=32, channels=1, resize=True)


def test_image_folder_wrong_size(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_png(tmp_path / "train" / "cat" / f"{name}.png", size=12)
    with pytest.raises(DataError, match=r"12x12 .* expects 8x8; pass --data.img_size 12 or --data.resize true") as e:
        image_folder(tmp_path, "train", img_size=8, channels=1, resize=False)
    assert "a.png" in str(e.value)
    # The suggested --data.img_size works, since every image has that size.
    assert image_folder(tmp_path, "train", img_size=12, channels=1, resize=False).images.shape == (2, 1, 12, 12)


def test_image_folder_mixed_sizes_suggest_resize_only(tmp_path: Path) -> None:
    make_folder(tmp_path / "train")
    write_png(tmp_path / "train" / "cat" / "big.png", size=12)
    # --data.img_size 12 would fail on the 8x8 images, so the error offers only the resize.
    with pytest.raises(
        DataError,
        match=r"big.png: the images come in 2 sizes \(8x8 \(0.png\), 12x12 \(big.png\)\) "
        r"but the model expects 8x8; pass --data.resize true$",
    ) as e:
        image_folder(tmp_path, "train", img_size=8, channels=1, resize=False)
    assert "--data.img_size" not in str(e.value)
    ds = image_folder(tmp_path, "train", img_size=8, channels=1, resize=True)
    assert ds.images.shape == (6, 1, 8, 8)


def test_image_folder_size_advice_covers_padding_and_both_splits(tmp_path: Path) -> None:
    # train/ holds 32x32, test/ 28x28: 28 pads to 32 exactly, so --data.img_size 32 loads both splits.
    for split, size in (("train", 32), ("test", 28)):
        for cls in ("cat", "ant"):
            write_png(tmp_path / split / cls / "0.png", size=size, value=size)
    with pytest.raises(DataError, match=r"2 sizes \(28x28 \(0.png\), 32x32 \(0.png\)\) .* pass --data.img_size 32 or"):
        image_folder(tmp_path, "train", img_size=16, channels=1, resize=False)
    for split in ("train", "test"):
        assert image_folder(tmp_path, split, img_size=32, channels=1, resize=False).images.shape == (2, 1, 32, 32)


def test_non_square_images_suggest_resize_only(tmp_path: Path) -> None:
    path = tmp_path / "train" / "cat" / "wide.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((10, 20), dtype=np.uint8)).save(path)
    with pytest.raises(DataError, match=r"wide.png: images are 10x20 \(wide.png\) .*; pass --data.resize true$"):
        image_folder(tmp_path, "train", img_size=8, channels=1, resize=False)
    with pytest.raises(DataError, match=r"images are 10x20 but the model expects 8x8; pass --data.resize true$"):
        fit_size(torch.zeros(1, 1, 10, 20, dtype=torch.uint8), 8, name="x.npz", resize=False)


def test_image_folder_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="image folder not found"):
        image_folder(tmp_path / "nope", "train", img_size=8, channels=1, resize=False)
    (tmp_path / "data.npz").write_bytes(b"")
    with pytest.raises(DataError, match=r"data.npz: is a file, not a folder; .* \(or --data.name npz"):
        image_folder(tmp_path / "data.npz", "train", img_size=8, channels=1, resize=False)
    (tmp_path / "data.npz").unlink()
    with pytest.raises(DataError, match="no class sub-folders"):
        image_folder(tmp_path, "train", img_size=8, channels=1, resize=False)
    with pytest.raises(DataError, match="needs a location"):
        build_dataset(DataConfig(name="folder"), "train")


# ----------------------------------------------------------------------------------------------------------
# npz


def test_npz_x_y_split(tmp_path: Path) -> None:
    x = np.arange(10 * 8 * 8, dtype=np.uint8).reshape(10, 8, 8)
    y = np.arange(10)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    tr = npz(tmp_path / "d.npz", "train", img_size=8, channels=1, resize=False)
    te = npz(tmp_path / "d.npz", "test", img_size=8, channels=1, resize=False)
    assert len(tr) == 8 and len(te) == 2
    assert sorted(tr.labels.tolist() + te.labels.tolist()) == list(range(10))
    for ds in (tr, te):
        for img, label in zip(ds.images, ds.labels, strict=True):
            assert torch.equal(img[0], torch.from_numpy(x[label]))


def test_npz_named_splits_nhwc_float(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x_train = rng.random((5, 8, 8, 3)).astype(np.float32)  # NHWC floats in [0, 1]
    np.savez(tmp_path / "d.npz", x_train=x_train, y_train=np.arange(5), x_test=x_train[:2], y_test=np.arange(2))
    ds = build_dataset(DataConfig(name="npz", path=str(tmp_path / "d.npz"), img_size=8, channels=3), "train")
    assert ds.images.shape == (5, 3, 8, 8) and ds.labels.tolist() == [0, 1, 2, 3, 4]
    expect = np.round(x_train[1, 2, 3] * 255).astype(np.uint8)
    assert ds.images[1, :, 2, 3].tolist() == expect.tolist()


def test_npz_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "rgb.npz", x=np.zeros((5, 3, 8, 8), dtype=np.uint8))
    with pytest.raises(DataError, match=r"3 channels but the model expects 1; pass --data\.channels 3"):
        npz(tmp_path / "rgb.npz", "train", img_size=8, channels=1, resize=False)
    np.savez(tmp_path / "other.npz", images=np.zeros((5, 8, 8)))
    with pytest.raises(DataError, match=r"no 'x' or 'x_train' array; found \['images'\]"):
        npz(tmp_path / "other.npz", "train", img_size=8, channels=1, resize=False)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"bad\.npz: unreadable"):
        npz(tmp_path / "bad.npz", "train", img_size=8, channels=1, resize=False)
    np.save(tmp_path / "one.npy", np.zeros((5, 8, 8), dtype=np.uint8))
    with pytest.raises(DataError, match=r"^\S*one\.npy: holds one array, not an \.npz archive; save it"):
        npz(tmp_path / "one.npy", "train", img_size=8, channels=1, resize=False)
    np.savez(tmp_path / "nan.npz", x=np.full((5, 8, 8), np.nan))
    with pytest.raises(DataError, match="NaN"):
        npz(tmp_path / "nan.npz", "train", img_size=8, channels=1, resize=False)
    np.savez(tmp_path / "big.npz", x=np.zeros((5, 12, 12), dtype=np.uint8))
    with pytest.raises(DataError, match=r"--data\.resize true"):
        npz(tmp_path / "big.npz", "train", img_size=8, channels=1, resize=False)


@pytest.mark.parametrize("damage", ["truncated", "corrupt-compressed"])
def test_npz_truncated_or_corrupt_names_the_file(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "d.npz"
    x = np.random.default_rng(0).integers(0, 256, (50, 8, 8), dtype=np.uint8)
    if damage == "truncated":
        np.savez(path, x=x, y=np.arange(50))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # zipfile.BadZipFile inside np.load
    else:
        np.savez_compressed(path, x=x)
        raw = bytearray(path.read_bytes())
        raw[100:160] = b"\x01" * 60  # zlib.error while reading the array
        path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"d\.npz: unreadable \.npz \(.*\); it is truncated or corrupt") as e:
        npz(path, "train", img_size=8, channels=1, resize=False)
    assert "\n" not in str(e.value)


def test_npz_labels_missing(tmp_path: Path) -> None:
    x = np.zeros((5, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "xy.npz", x=x, y=np.arange(5))
    np.savez(tmp_path / "x.npz", x=x)
    np.savez(tmp_path / "splits.npz", x_train=x, y_train=np.arange(5), x_test=x)
    assert npz_labels_missing(tmp_path / "xy.npz") == []
    assert npz_labels_missing(tmp_path / "x.npz") == ["y"]
    assert npz_labels_missing(tmp_path / "splits.npz") == ["y_test"]
    assert npz(tmp_path / "x.npz", "train", img_size=8, channels=1, resize=False).labels is None  # pretraining: fine


def test_image_dataset_validation_and_fit_size() -> None:
    with pytest.raises(DataError, match="must be uint8"):
        ImageDataset(torch.zeros(2, 1, 4, 4))
    with pytest.raises(DataError, match="3 labels for 2 images"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long))
    img = torch.full((1, 1, 8, 8), 100, dtype=torch.uint8)
    assert fit_size(img, 8, name="x", resize=False) is img
    resized = fit_size(img, 16, name="x", resize=True)
    assert resized.shape == (1, 1, 16, 16) and (resized == 100).all()  # a flat image stays flat
    with pytest.raises(DataError, match="x: images are 8x8"):
        fit_size(img, 16, name="x", resize=False)


# ----------------------------------------------------------------------------------------------------------
# augmentation


def test_random_resized_crop_flip_shapes_and_determinism() -> None:
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    aug = RandomResizedCropFlip(scale=(0.3, 1.0))
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    c = aug(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1  # bilinear + reflection stays in range
    # The per-sample parameters come from one generator for the whole batch: a split batch gets the same draws.
    assert not torch.allclose(a, x)


def test_random_resized_crop_identity_at_full_scale() -> None:
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    aug = RandomResizedCropFlip(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    torch.testing.assert_close(aug(x, torch.Generator().manual_seed(0)), x, atol=1e-5, rtol=0)
    # With flips only, every sample is either itself or its mirror image.
    flip = RandomResizedCropFlip(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=True)
    y = flip(x, torch.Generator().manual_seed(3))
    mirrored = [torch.allclose(y[i], x[i].flip(-1), atol=1e-5) for i in range(4)]
    same = [torch.allclose(y[i], x[i], atol=1e-5) for i in range(4)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True))
    flips = [flip(x[:1], torch.Generator().manual_seed(s)) for s in range(20)]
    assert any(torch.allclose(f[0], x[0].flip(-1), atol=1e-5) for f in flips)
    assert any(torch.allclose(f[0], x[0], atol=1e-5) for f in flips)


def test_random_resized_crop_zooms_in() -> None:
    # A small crop of a left-to-right ramp spans a smaller range of values than the whole image.
    ramp = torch.linspace(0, 1, 16).expand(2, 1, 16, 16).contiguous()
    aug = RandomResizedCropFlip(scale=(0.25, 0.25), ratio=(1.0, 1.0), flip=False)
    out = aug(ramp, torch.Generator().manual_seed(0))
    span = out[:, 0, 8].max(dim=-1).values - out[:, 0, 8].min(dim=-1).values
    assert (span < 0.6).all() and (span > 0.3).all()
