"""Video I/O: lossless round trips, one-line errors that name the file, clip sampling and the clip dataset."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from jepaworld.data import video as video_mod
from jepaworld.data.video import VideoClipDataset, VideoError, read_video, sample_clips, write_video


def _noise(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    # Random pixels are the hardest case for a codec: any loss would show.
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _assert_names(err: pytest.ExceptionInfo[VideoError], path: Path) -> None:
    message = str(err.value)
    assert str(path) in message
    assert "\n" not in message


def test_lossless_round_trip_odd_size(tmp_path: Path) -> None:
    frames = _noise(7, 25, 31)
    path = write_video(tmp_path / "clip.mp4", frames, fps=5)
    np.testing.assert_array_equal(read_video(path), frames)
    # Only the final file is left behind: the temp file was renamed, not copied.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_interrupted_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_video(tmp_path / "clip.mp4", _noise(4, 16, 16))
    before = path.read_bytes()
    calls = {"n": 0}
    real = np.ascontiguousarray

    def fail_on_third_frame(a: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("interrupted")
        return real(a)

    monkeypatch.setattr(video_mod.np, "ascontiguousarray", fail_on_third_frame)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_video(path, _noise(6, 16, 16, seed=1))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_write_rejects_bad_frames(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="uint8"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(VideoError, match="mp4"):
        write_video(tmp_path / "a.avi", _noise(2, 8, 8))
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(VideoError) as err:
        read_video(path)
    _assert_names(err, path)


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated_mp4(tmp_path: Path, faststart: bool) -> None:
    # Without faststart the index (moov) is at the end and is lost; with it, the frame data is cut instead.
    full = tmp_path / "full.mp4"
    with av.open(str(full), "w", format="mp4", options={"movflags": "+faststart"} if faststart else {}) as c:
        stream = c.add_stream("libx264rgb", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "rgb24"
        stream.options = {"qp": "0"}
        for frame in _noise(20, 32, 32):
            c.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        c.mux(stream.encode(None))
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError) as err:
        read_video(cut)
    _assert_names(err, cut)


@pytest.mark.parametrize(("fmt", "codec"), [("webm", "libvpx-vp9"), ("matroska", "libx264")])
def test_truncated_video_without_a_frame_count(tmp_path: Path, fmt: str, codec: str) -> None:
    # webm and mkv store no frame count, and a cut file decodes its first frames without an error: the header's
    # duration is what tells that frames are missing.
    full = tmp_path / "full.mkv"
    with av.open(str(full), "w", format=fmt) as c:
        stream = c.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for frame in _noise(32, 32, 32):
            c.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        c.mux(stream.encode(None))
    assert read_video(full).shape == (32, 32, 32, 3)
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(VideoError, match=r"decoded \d+ of the 32 frames its duration implies") as err:
        read_video(cut)
    _assert_names(err, cut)


def test_unreadable_file_says_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, which chmod cannot lock out; stand in for a file the user may not read.
    path = write_video(tmp_path / "locked.mp4", _noise(4, 16, 16))
    monkeypatch.setattr(video_mod.os, "access", lambda *_: False)
    with pytest.raises(VideoError, match=r"cannot read it \(permission denied\); check its permissions") as err:
        read_video(path)
    _assert_names(err, path)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(b"this is not a video" * 50)
    with pytest.raises(VideoError) as err:
        read_video(path)
    _assert_names(err, path)


def _write_frames(folder: Path, frames: np.ndarray, mode: str = "RGB") -> None:
    folder.mkdir()
    for i, frame in enumerate(frames):
        image = Image.fromarray(frame[..., 0] if mode == "L" else frame)
        image.convert(mode).save(folder / f"frame_{i}.png")


def test_frame_folder_natural_order(tmp_path: Path) -> None:
    frames = _noise(12, 8, 8)
    _write_frames(tmp_path / "f", frames)
    # frame_10.png must come after frame_9.png, not after frame_1.png.
    np.testing.assert_array_equal(read_video(tmp_path / "f"), frames)
    np.testing.assert_array_equal(read_video(tmp_path / "f", max_frames=3), frames[:3])


def test_bad_frame_in_folder(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    _write_frames(folder, _noise(3, 8, 8))
    bad = folder / "frame_1.png"
    bad.write_bytes(b"\x89PNG broken")
    with pytest.raises(VideoError) as err:
        read_video(folder)
    _assert_names(err, bad)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="holds no png/jpg frames") as err:
        read_video(tmp_path)
    _assert_names(err, tmp_path)
    write_video(tmp_path / "a.mp4", _noise(2, 8, 8))  # a folder of videos is not a video
    with pytest.raises(VideoError, match=r"holds video files \(1\), not frames; pass the videos themselves, e\.g\. "):
        read_video(tmp_path)


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_folder_to_rgb(tmp_path: Path, mode: str) -> None:
    frames = _noise(3, 8, 8)
    _write_frames(tmp_path / "f", frames, mode=mode)
    out = read_video(tmp_path / "f")
    assert out.shape == (3, 8, 8, 3) and out.dtype == np.uint8
    expected = np.repeat(frames[..., :1], 3, axis=-1) if mode == "L" else frames
    np.testing.assert_array_equal(out, expected)


def test_grayscale_video_to_rgb(tmp_path: Path) -> None:
    gray = _noise(5, 16, 16)[..., 0]  # (T, H, W)
    path = tmp_path / "gray.mkv"
    with av.open(str(path), "w") as c:
        stream = c.add_stream("ffv1", rate=10)  # lossless, keeps the gray pixel format
        stream.width, stream.height, stream.pix_fmt = 16, 16, "gray"
        for frame in gray:
            c.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")))
        c.mux(stream.encode(None))
    out = read_video(path)
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=-1))


def test_resize_is_antialiased(tmp_path: Path) -> None:
    # A one-pixel checkerboard shrunk 4x must average to grey, not alias to black or white.
    board = ((np.indices((32, 32)).sum(0) % 2) * 255).astype(np.uint8)
    frames = np.repeat(np.repeat(board[None, ..., None], 3, axis=-1), 4, axis=0)  # (4, 32, 32, 3)
    path = write_video(tmp_path / "board.mp4", frames)
    out = read_video(path, size=8)
    assert out.shape == (4, 8, 8, 3)
    assert np.abs(out[:, 1:-1, 1:-1].astype(int) - 127).max() <= 20


def test_sample_clips_shapes() -> None:
    video = _noise(10, 4, 5)
    assert sample_clips(video, frames_per_clip=4).shape == (2, 4, 4, 5, 3)
    assert sample_clips(video, frames_per_clip=4, stride=1).shape == (7, 4, 4, 5, 3)
    clips = sample_clips(video, frames_per_clip=4, frame_step=2, stride=3)  # span 7: starts 0, 3
    assert clips.shape == (2, 4, 4, 5, 3)
    np.testing.assert_array_equal(clips[1], video[[3, 5, 7, 9]])


def test_sample_clips_too_short() -> None:
    with pytest.raises(ValueError, match=r"has 5 frames.*needs 7"):
        sample_clips(_noise(5, 4, 4), frames_per_clip=4, frame_step=2)


def test_clip_dataset(tmp_path: Path) -> None:
    videos = [_noise(8, 12, 12, seed=s) for s in range(2)]
    paths = [write_video(tmp_path / f"v{s}.mp4", v) for s, v in enumerate(videos)]
    ds = VideoClipDataset(paths, frames_per_clip=4)
    assert len(ds) == 4 and ds.clips.dtype == torch.uint8
    assert ds.video_index.tolist() == [0, 0, 1, 1]
    x = ds.load(torch.tensor([3, 0]))["x"]
    assert x.shape == (2, 3, 4, 12, 12) and x.dtype == torch.float32
    expected = torch.from_numpy(videos[1][4:8]).permute(3, 0, 1, 2).float() / 255  # (3, T, H, W)
    torch.testing.assert_close(x[0], expected)
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert VideoClipDataset(paths, size=6, frames_per_clip=4).load(torch.tensor([0]))["x"].shape == (1, 3, 4, 6, 6)


def test_clip_dataset_short_video_names_file(tmp_path: Path) -> None:
    path = write_video(tmp_path / "short.mp4", _noise(3, 8, 8))
    with pytest.raises(VideoError) as err:
        VideoClipDataset([path], frames_per_clip=4)
    _assert_names(err, path)


# ----------------------------------------------------------------------------------------------------------
# the "video" dataset (data/clips.py): which missing paths get a suite generated


def test_mistyped_video_path_is_an_error_not_a_new_suite(tmp_path: Path) -> None:
    from jepaworld.config import apply_overrides, get_preset
    from jepaworld.data import DataError
    from jepaworld.data.clips import video_dataset

    typo = tmp_path / "data" / "phyiscs"
    cfg = apply_overrides(get_preset("vjepa-physics-micro"), {"data.path": str(typo)})
    with pytest.raises(DataError) as err:
        video_dataset(cfg.data, "train")
    assert str(err.value) == (f"{typo}: no such suite or video folder; check --data.path, or write a suite there "
                              f"with `jepaworld physics generate --out {typo}`")  # fmt: skip
    assert not typo.exists() and not typo.parent.exists()


def test_suite_without_index_is_refused(tmp_path: Path) -> None:
    """A train/ folder without index.json (an interrupted or partly copied suite) is not trained on quietly."""
    from jepaworld.config import apply_overrides, get_preset
    from jepaworld.data import DataError
    from jepaworld.data.clips import video_dataset

    write_video(tmp_path / "suite" / "train" / "00000.mp4", _noise(16, 16, 16))
    cfg = apply_overrides(get_preset("vjepa-physics-micro"), {"data.path": str(tmp_path / "suite")})
    with pytest.raises(DataError, match=r"has train/ but no index.json.*--data.path .*suite/train"):
        video_dataset(cfg.data, "train")
    cfg = apply_overrides(cfg, {"data.path": str(tmp_path / "suite" / "train")})
    assert len(video_dataset(cfg.data, "train")) > 0  # the fix the message names


def test_preset_suite_path_is_generated_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jepaworld import physics
    from jepaworld.config import get_preset
    from jepaworld.data.clips import video_dataset

    real = physics.generate_suite
    made = []

    def tiny_suite(root: Path) -> dict:  # the default settings write 400 videos: minutes
        made.append(root)
        return real(root, n_train=2, n_scenes_per_property=0, size=16, frames=16, seed=0)

    monkeypatch.setattr(physics, "generate_suite", tiny_suite)
    monkeypatch.chdir(tmp_path)
    cfg = get_preset("vjepa-physics-micro")  # data.path "data/physics-micro", relative to the working folder
    ds = video_dataset(cfg.data, "train")
    assert made == [Path("data/physics-micro")] and len(ds) > 0
