"""Video I/O and clip datasets for V-JEPA.

Clips follow V-JEPA (Bardes et al. 2024, "Revisiting Feature Prediction for Learning Visual Representations
from Video"): a clip is `frames_per_clip` frames taken every `frame_step` frames, served as (B, 3, T, H, W)
floats in [0, 1]. Decoding goes through PyAV (FFmpeg) for video files and PIL for folders of frames.

Writing is lossless (libx264rgb at qp 0), so decode(encode(frames)) == frames bit for bit: a possible video
and its impossible twin in the intuitive-physics suite (`jepaworld.physics`) must stay identical up to the
divergence frame after a round trip through disk, or the "surprise" measured before it would be codec noise.

Every failure raises `VideoError` with a one-line message naming the file and the fix; nothing is skipped
silently.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".gif")


class VideoError(ValueError):
    """A video or frame folder that cannot be read or written; the message names the file and the fix."""


def _natural_key(path: Path) -> list[int | str]:
    # frame_2.png sorts before frame_10.png; zero-padded names sort the same as with plain sorting.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8; PIL's bilinear widens its support to shrink (antialiased)."""
    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    resized = Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    # A palette image with a transparent entry must pass through RGBA, or PIL warns (an error under pytest).
    if image.mode in ("P", "PA") and "transparency" in image.info:
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def _read_frame_folder(folder: Path, *, size: int | None, max_frames: int | None) -> list[np.ndarray]:
    files = sorted(
        (f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key
    )
    if max_frames is not None:
        files = files[:max_frames]
    frames: list[np.ndarray] = []
    for file in files:
        try:
            with Image.open(file) as image:
                frame = np.asarray(_to_rgb(image), dtype=np.uint8)  # (H, W, 3)
        except PermissionError as err:
            raise VideoError(f"{file}: cannot read it (permission denied); check the file's permissions") from err
        except (OSError, ValueError, SyntaxError) as err:
            # PIL reports bad files as OSError (truncated, unidentified), ValueError or SyntaxError (headers).
            raise VideoError(f"{file}: unreadable image in frame folder ({err}); replace or delete this file") from err
        if size is not None:
            frame = _resize(frame, size)
        elif frames and frame.shape != frames[0].shape:
            raise VideoError(
                f"{file}: frame is {frame.shape[1]}x{frame.shape[0]} but earlier frames are "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}; pass size= to resize every frame"
            )
        frames.append(frame)
    return frames


def _read_container(path: Path, *, size: int | None, max_frames: int | None) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: has no video stream; pass a video file or a folder of png/jpg frames")
            stream = container.streams.video[0]
            expected, exact = stream.frames, True  # 0 when the container does not store a frame count (webm, mkv)
            if expected == 0 and container.duration and stream.average_rate:
                # webm / mkv: the header's duration (written when the file was finished) times the frame rate.
                # Variable frame rates make it approximate, so allow a frame and 2% before calling it truncated.
                estimate = container.duration / av.time_base * float(stream.average_rate)
                expected, exact = int(estimate - max(1.0, 0.02 * estimate)), False
            for frame in container.decode(stream):
                image = frame.to_ndarray(format="rgb24")  # (H, W, 3); grey and palette formats become RGB
                frames.append(_resize(image, size) if size is not None else image)
                if max_frames is not None and len(frames) >= max_frames:
                    return frames
    except PermissionError as err:
        raise VideoError(f"{path}: cannot read it (permission denied); check the file's permissions") from err
    except av.FFmpegError as err:
        raise VideoError(
            f"{path}: cannot decode ({err}); the file is corrupt or truncated, re-encode or re-download it"
        ) from err
    # A file cut after its header can decode "successfully" with frames missing; never return a partial video.
    if expected > 0 and len(frames) < expected:
        of = f"{expected} frames" if exact else f"the {round(estimate)} frames its duration implies"
        raise VideoError(f"{path}: decoded {len(frames)} of {of}, the file is truncated; re-encode or re-download it")
    return frames


def read_video(path: str | Path, *, size: int | None = None, max_frames: int | None = None) -> np.ndarray:
    """Decode a video file (mp4/webm/avi/mkv/gif, anything FFmpeg reads) or a folder of png/jpg frames.

    Returns uint8 (T, H, W, 3) RGB, or (T, size, size, 3) when `size` is given (aspect ratio is not kept).
    Frames in a folder are ordered by name, with digit runs compared as numbers. Raises VideoError for a
    missing, corrupt, truncated or empty input.
    """
    path = Path(path)
    if size is not None and size < 1:
        raise VideoError(f"{path}: size={size} is not a positive frame size; pass size >= 1 or None")
    if max_frames is not None and max_frames < 1:
        raise VideoError(f"{path}: max_frames={max_frames} reads nothing; pass max_frames >= 1 or None")
    if not path.exists():
        raise VideoError(f"{path}: no such file or folder; check the path (a video file or a folder of frames)")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise VideoError(f"{path}: cannot read it (permission denied); check its permissions")
    if path.is_dir():
        frames = _read_frame_folder(path, size=size, max_frames=max_frames)
        if not frames:
            videos = [f for f in path.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES]
            if videos:
                raise VideoError(f"{path}: folder holds video files ({len(videos)}), not frames; pass the videos "
                                 f"themselves, e.g. {path / '*'}{videos[0].suffix}")  # fmt: skip
            raise VideoError(f"{path}: folder holds no png/jpg frames; put frames in it or pass a video file")
    else:
        frames = _read_container(path, size=size, max_frames=max_frames)
        if not frames:
            raise VideoError(f"{path}: video has no frames; re-encode it or pass another file")
    return np.stack(frames)  # (T, H, W, 3)


def write_video(path: str | Path, frames: np.ndarray, *, fps: int = 10) -> Path:
    """Write uint8 (T, H, W, 3) RGB frames to an mp4 losslessly (libx264rgb, qp 0), atomically.

    The file appears under its final name only once complete (temp file in the same folder + os.replace), so
    an interrupted write never leaves half a video. Returns the path written.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if path.suffix.lower() != ".mp4":
        raise VideoError(f"{path}: write_video writes mp4 only; give the file an .mp4 suffix")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise VideoError(
            f"{path}: frames must be non-empty uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}; "
            "convert with (x * 255).round().clip(0, 255).astype(np.uint8)"
        )
    if fps < 1:
        raise VideoError(f"{path}: fps={fps} is not a frame rate; pass fps >= 1")
    _, height, width, _ = frames.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden temp name unique per process and thread, so concurrent writers of the same suite never collide.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264rgb", rate=Fraction(fps))
            stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
            # qp 0 is lossless; ultrafast only trades file size for speed, never exactness.
            stream.options = {"qp": "0", "preset": "ultrafast"}
            for image in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
            container.mux(stream.encode(None))  # flush the encoder's delayed frames
        os.replace(tmp, path)
    except av.FFmpegError as err:
        raise VideoError(f"{path}: cannot encode ({err}); check the folder is writable and has free space") from err
    finally:
        tmp.unlink(missing_ok=True)
    return path


def sample_clips(
    video: np.ndarray, *, frames_per_clip: int, frame_step: int = 1, stride: int | None = None
) -> np.ndarray:
    """Sliding clips: (T, H, W, C) -> (num_clips, frames_per_clip, H, W, C).

    Clip i holds frames start_i + j * frame_step for j < frames_per_clip, with start_i = i * stride. The
    default stride, frames_per_clip * frame_step, tiles the video with back-to-back windows. Raises ValueError
    when the video is shorter than one clip.
    """
    if frames_per_clip < 1 or frame_step < 1 or (stride is not None and stride < 1):
        raise ValueError(
            f"frames_per_clip={frames_per_clip}, frame_step={frame_step}, stride={stride} must all be >= 1"
        )
    num_frames = video.shape[0]
    span = (frames_per_clip - 1) * frame_step + 1  # frames covered by one clip, first to last
    if num_frames < span:
        raise ValueError(
            f"video has {num_frames} frames but one clip of {frames_per_clip} frames every {frame_step} "
            f"needs {span}; use a longer video or fewer/closer frames"
        )
    stride = frames_per_clip * frame_step if stride is None else stride
    starts = np.arange(0, num_frames - span + 1, stride)  # (num_clips,)
    index = starts[:, None] + np.arange(frames_per_clip)[None, :] * frame_step  # (num_clips, frames_per_clip)
    return video[index]  # (num_clips, frames_per_clip, H, W, C)


class VideoClipDataset:
    """All clips of a list of videos, decoded once up front into one uint8 tensor (meant for small suites).

    `clips` is (N, T, H, W, 3) uint8 and `video_index` (N,) says which input video each clip came from.
    `load(idx)` returns {"x": (B, 3, T, H, W) float32 in [0, 1]}, the protocol the generic trainer reads.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        size: int | None = None,
        frames_per_clip: int = 16,
        frame_step: int = 1,
        stride: int | None = None,
    ) -> None:
        if not paths:
            raise VideoError("VideoClipDataset: the list of video paths is empty; pass at least one video")
        self.paths = [Path(p) for p in paths]
        chunks: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        for i, path in enumerate(self.paths):
            video = read_video(path, size=size)  # (T, H, W, 3)
            if chunks and video.shape[1:] != chunks[0].shape[2:]:
                raise VideoError(
                    f"{path}: frames are {video.shape[2]}x{video.shape[1]} but earlier videos are "
                    f"{chunks[0].shape[3]}x{chunks[0].shape[2]}; pass size= to resize every video"
                )
            try:
                clips = sample_clips(
                    video, frames_per_clip=frames_per_clip, frame_step=frame_step, stride=stride
                )  # (n, T, H, W, 3)
            except ValueError as err:
                raise VideoError(f"{path}: {err}") from err
            chunks.append(clips)
            owners.append(np.full(len(clips), i, dtype=np.int64))
        self.clips = torch.from_numpy(np.concatenate(chunks))  # (N, T, H, W, 3) uint8
        self.video_index = torch.from_numpy(np.concatenate(owners))  # (N,)

    def __len__(self) -> int:
        return self.clips.shape[0]

    def load(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """idx (B,) int64 -> {"x": (B, 3, T, H, W) float32 in [0, 1]}, on the CPU."""
        clips = self.clips[idx.cpu()]  # (B, T, H, W, 3) uint8
        return {"x": clips.permute(0, 4, 1, 2, 3).float().div_(255.0)}  # (B, 3, T, H, W)
