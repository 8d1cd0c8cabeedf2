"""Surprise: how badly a video model predicts the future of a video, per window and per frame.

The violation-of-expectation protocol of Garrido et al. 2025, "Intuitive physics understanding emerges from
self-supervised pretraining on natural videos" (arXiv:2502.11831): slide a window of the checkpoint's clip length
over the video; in each window the first `context_frames` frames are the context and the rest are hidden
(`masks.FutureFrames`). Surprise is the error of the model's prediction of the hidden part:

- V-JEPA (`JEPAScorer`): the L1 distance between the predictor's output and the layer-normed target-encoder
  features of the *full* window at the future positions.
- Pixel baseline (`PixelScorer`, a VideoMAE checkpoint): the mean squared error of the decoder's pixels for the
  future patches, its own training loss.
- "Nothing moves" (`CopyScorer`), a control with no predictor: a model's targets of the last context slot copied
  forward. It measures how much the targets change, which flags a violation that changes the picture (an
  object that appears) without any knowledge of how things move; a model's accuracy above it is its predictor's.

Each window gives one error per hidden token. A future tubelet slot's error is the mean over its tokens, or over its
`top` largest fraction of them: a violation touches a few tokens (one small object), and the mean over a whole
frame dilutes it with the error of everything else. A window's score is the mean over its slots, a frame's score
the mean over the windows that hid it, and the video's scores are the mean and the max over windows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepaworld.checkpoint import load_method
from jepaworld.config import ExperimentConfig
from jepaworld.data.video import read_video
from jepaworld.masks import FutureFrames
from jepaworld.methods import JEPA, MAE, DataSpec, Method, build_method
from jepaworld.methods.mae import patchify

DEFAULT_CHECKPOINT = Path(__file__).parent / "assets" / "vjepa_physics.pt"
MAKE_DEFAULT = "python benchmarks/make_default_physics_checkpoint.py"


class SurpriseError(ValueError):
    """A video or checkpoint that surprise scoring cannot use; one line naming the file and the fix."""


# ----------------------------------------------------------------------------------------------------------
# scorers: a checkpoint's method behind one `slot_errors` call


class Scorer:
    """A video model that predicts the future time slots of clips from the first `k` slots, on `device`.

    Surprise lives in the model's own target space: `targets` gives every token's target (B, N, D), `predict`
    the model's guess of the hidden tokens after the first `k` slots (B, (t - k) * h * w, D), and `distance`
    the per-token error between the two, the model's own training loss.
    """

    def __init__(
        self, method: Method, cfg: ExperimentConfig, spec: DataSpec, *, name: str, device: str | torch.device = "cpu"
    ) -> None:
        if spec.frames <= 1:
            raise SurpriseError(
                f"{name}: is an image checkpoint (frames=1); surprise needs a video checkpoint, "
                "e.g. `jepaworld pretrain --preset vjepa-physics`"
            )
        self.device = torch.device(device)
        self.method, self.cfg, self.spec, self.name = method.eval().to(self.device), cfg, spec, name
        enc = method.eval_encoder
        self.grid, self.tubelet = enc.grid, enc.tubelet
        self.frames, self.img_size, self.frame_step = spec.frames, spec.img_size, cfg.data.frame_step

    def targets(self, clips: torch.Tensor) -> torch.Tensor:
        """clips (B, 3, T, S, S) -> (B, N, D): what the model is scored against at every token."""
        raise NotImplementedError

    def predict(self, clips: torch.Tensor, k: int) -> torch.Tensor:
        """clips (B, 3, T, S, S), k context slots -> (B, (t - k) * h * w, D) prediction of the hidden tokens."""
        raise NotImplementedError

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(..., D), (..., D) -> (...) error per token."""
        raise NotImplementedError

    @torch.inference_mode()
    def token_errors(self, clips: torch.Tensor, k: int) -> torch.Tensor:
        """clips (B, 3, T, S, S) in [0, 1] on the scorer's device, k context slots -> (B, t - k, h * w) errors."""
        B, (t, h, w) = clips.shape[0], self.grid
        target = self.targets(clips)[:, k * h * w :]  # (B, (t - k) * hw, D): the hidden slots, in token order
        return self.distance(self.predict(clips, k).float(), target.float()).view(B, t - k, h * w)

    def slot_errors(self, clips: torch.Tensor, k: int, *, top: float = 1.0) -> torch.Tensor:
        """(B, t - k) error per future slot: the mean of the `top` largest fraction of its token errors."""
        err = self.token_errors(clips.to(self.device), k).float()  # (B, t - k, hw)
        n = max(1, math.ceil(top * err.shape[-1]))
        return (err.topk(n, dim=-1).values if n < err.shape[-1] else err).mean(-1)

    def future(self, batch: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        t, h, w = self.grid
        ctx, tgt = FutureFrames(frames=t, height=h, width=w, context_frames=k)(batch)
        return ctx.to(self.device), tgt[:, 0].to(self.device)  # (B, Nc), (B, Nt)


class JEPAScorer(Scorer):
    def targets(self, clips: torch.Tensor) -> torch.Tensor:
        m: JEPA = self.method  # type: ignore[assignment]
        return m.targets(clips)  # (B, N, D) layer-normed, from the full window

    def predict(self, clips: torch.Tensor, k: int) -> torch.Tensor:
        m: JEPA = self.method  # type: ignore[assignment]
        ctx, tgt = self.future(clips.shape[0], k)
        return m.predict(clips, ctx, tgt.unsqueeze(1))[1][:, 0]  # (B, Nt, D)

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs().mean(-1)  # L1, V-JEPA's surprise, whatever loss the model trained with


class PixelScorer(Scorer):
    def targets(self, clips: torch.Tensor) -> torch.Tensor:
        m: MAE = self.method  # type: ignore[assignment]
        target = patchify(clips, m.encoder.patch_size, m.encoder.tubelet)  # (B, N, P)
        if m.norm_pix_loss:  # compare in the space the decoder was trained to predict
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        return target

    def predict(self, clips: torch.Tensor, k: int) -> torch.Tensor:
        m: MAE = self.method  # type: ignore[assignment]
        keep, masked = self.future(clips.shape[0], k)
        return m.decoder(m.encoder(clips, keep), keep, masked)  # (B, Nt, P)

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).pow(2).mean(-1)  # MSE, the decoder's loss


class CopyScorer(Scorer):
    """A control without predictor, "nothing moves", in another scorer's target space: every hidden slot is
    predicted as a copy of the last context slot. Its surprise is how much the targets change, so what a model
    scores beyond it is what its predictor knows about how things move; a predictor that only copies scores the
    same. (V-JEPA's targets change a little even on a still video: the position embedding is 3-D.)"""

    def __init__(self, base: Scorer) -> None:
        super().__init__(base.method, base.cfg, base.spec, name=f"nothing moves ({base.name})", device=base.device)
        self.base = base

    @torch.inference_mode()
    def token_errors(self, clips: torch.Tensor, k: int) -> torch.Tensor:
        B, (t, h, w) = clips.shape[0], self.grid
        target = self.base.targets(clips).float().view(B, t, h * w, -1)  # (B, t, hw, D)
        return self.base.distance(target[:, k - 1 : k], target[:, k:])  # (B, t - k, hw)


def make_scorer(
    method: Method, cfg: ExperimentConfig, spec: DataSpec, *, name: str, device: str | torch.device = "cpu"
) -> Scorer:
    if isinstance(method, JEPA):
        return JEPAScorer(method, cfg, spec, name=name, device=device)
    if isinstance(method, MAE):
        return PixelScorer(method, cfg, spec, name=name, device=device)
    raise SurpriseError(f"{name}: method '{cfg.method.name}' has no surprise score; use a vjepa or videomae checkpoint")


def load_scorer(path: str | Path | None, *, device: str | torch.device = "cpu") -> Scorer:
    """The scorer of a checkpoint (a run folder or .pt), or of the shipped default when `path` is None."""
    if path is None:
        if not DEFAULT_CHECKPOINT.exists():
            raise SurpriseError(f"the default checkpoint {DEFAULT_CHECKPOINT} is not installed; make it with "
                                f"`{MAKE_DEFAULT}` or pass a CHECKPOINT")  # fmt: skip
        path = DEFAULT_CHECKPOINT
    method, cfg, spec, state = load_method(path)
    return make_scorer(method, cfg, spec, name=state["path"], device=device)


def random_scorer(like: Scorer, *, seed: int = 0) -> Scorer:
    """The same architecture as `like` with freshly initialised weights (a fixed seed): the chance baseline."""
    torch.manual_seed(seed)
    method = build_method(like.cfg, like.spec, init_encoder=False)  # random: not a copy of `like`'s initial encoder
    return make_scorer(method, like.cfg, like.spec, name=f"random init ({like.cfg.method.name})", device=like.device)


@contextmanager
def cpu_threads(n: int = 1) -> Iterator[None]:
    """Run with `n` torch CPU threads, then restore the setting. Scoring small clips is much faster on one thread
    than on several that wait for each other on a contended CPU (10 ms per tiny matmul, measured with 2 threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------------------------------------
# windows


def window_starts(num_frames: int, *, span: int, stride: int) -> list[int]:
    """First frames of the sliding windows: every `stride` frames, plus one flush with the end of the video so
    that the last frames are scored too. A window covers `span` frames."""
    if stride < 1:
        raise SurpriseError(f"stride={stride}; pass --stride >= 1")
    if num_frames < span:
        raise SurpriseError(f"video has {num_frames} frames, fewer than one window of {span}")
    starts = list(range(0, num_frames - span + 1, stride))
    if starts[-1] != num_frames - span:
        starts.append(num_frames - span)
    return starts


def default_context_frames(scorer: Scorer) -> int:
    """Half the window, rounded down to whole tubelets (at least one)."""
    return max(1, scorer.grid[0] // 2) * scorer.tubelet


def context_slots(scorer: Scorer, context_frames: int | None) -> int:
    k_frames = default_context_frames(scorer) if context_frames is None else context_frames
    t, tub = scorer.grid[0], scorer.tubelet
    if k_frames % tub or not 0 < k_frames // tub < t:
        choices = ", ".join(str(i * tub) for i in range(1, t))
        raise SurpriseError(
            f"--context-frames {k_frames}: must be one of {choices} (whole tubelets of {tub} frames, leaving at "
            f"least one to predict in the {scorer.frames}-frame window)"
        )
    return k_frames // tub


@dataclass
class SurpriseResult:
    """Scores of one video. `frame_scores` is NaN for frames no window hid: the very first context frames, and
    with `frame_step` > 1 the frames that no window samples (with stride 2 and frame step 2, every odd one)."""

    video: str
    model: str
    window: int  # frames per window
    frame_step: int
    context_frames: int
    starts: list[int]  # (W,) first frame of each window
    window_scores: np.ndarray  # (W,)
    frame_scores: np.ndarray  # (T,)
    notes: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(self.window_scores.mean())

    @property
    def max(self) -> float:
        return float(self.window_scores.max())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; NaN (a frame no window hid, or a model whose errors overflowed) becomes null, as
        json.dumps would otherwise write NaN, which is not JSON."""

        def num(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return {
            "video": self.video, "model": self.model, "window": self.window, "frame_step": self.frame_step,
            "context_frames": self.context_frames, "mean": num(self.mean), "max": num(self.max),
            "windows": [{"start": s, "score": num(v)} for s, v in zip(self.starts, self.window_scores, strict=True)],
            "frames": [num(v) for v in self.frame_scores], "notes": self.notes,
        }  # fmt: skip

    def format(self) -> str:
        span = (self.window - 1) * self.frame_step + 1
        first_hidden = self.context_frames * self.frame_step
        lines = [f"{self.video}  ({self.model}; {self.window}-frame windows, first {self.context_frames} as context)"]
        lines += [f"  {n}" for n in self.notes]
        peak = int(self.window_scores.argmax())
        for i, (s, v) in enumerate(zip(self.starts, self.window_scores, strict=True)):
            mark = "  <- max" if i == peak else ""
            lines.append(f"  frames {s:>4}-{s + span - 1:<4} predicts {s + first_hidden:>4}-{s + span - 1:<4} "
                         f"surprise {v:.4f}{mark}")  # fmt: skip
        lines.append(f"  video surprise: mean {self.mean:.4f}  max {self.max:.4f}")
        return "\n".join(lines)


def load_video(path: str | Path, scorer: Scorer) -> tuple[np.ndarray, list[str]]:
    """Decode a video at the checkpoint's resolution: (T, S, S, 3) uint8 and notes on what was changed."""
    size = scorer.img_size
    first = read_video(path, max_frames=1)  # (1, H, W, 3)
    _, H, W, _ = first.shape
    if H == W == size:
        return read_video(path), []
    aspect = "" if H == W else ", aspect ratio not kept"
    note = f"note: frames are {W}x{H}, resized to the checkpoint's {size}x{size} (bilinear{aspect})"
    # The same PIL resize as the training clips (VideoClipDataset), so a resized suite video matches training.
    return read_video(path, size=size), [note]


def score_frames(
    scorer: Scorer,
    video: np.ndarray,
    *,
    stride: int = 2,
    context_frames: int | None = None,
    top: float = 1.0,
    batch_size: int = 32,
    name: str = "video",
    notes: list[str] | None = None,
) -> SurpriseResult:
    """Surprise of uint8 frames (T, S, S, 3) at the scorer's resolution, window by window; `top` as in
    `Scorer.slot_errors` (1.0: every token of a hidden slot counts)."""
    if not 0.0 < top <= 1.0:
        raise SurpriseError(f"{name}: top={top}; pass a fraction of tokens in (0, 1], e.g. --top 0.1")
    T = video.shape[0]
    k = context_slots(scorer, context_frames)
    step, tub = scorer.frame_step, scorer.tubelet
    span = (scorer.frames - 1) * step + 1
    try:
        starts = window_starts(T, span=span, stride=stride)
    except SurpriseError as e:
        raise SurpriseError(f"{name}: {e}; use a longer video or a checkpoint with shorter clips") from e
    offsets = np.arange(scorer.frames) * step  # (frames,) positions of a window's frames
    errors = []
    for i in range(0, len(starts), batch_size):
        idx = np.asarray(starts[i : i + batch_size])[:, None] + offsets[None, :]  # (b, frames)
        clips = torch.from_numpy(video[idx]).permute(0, 4, 1, 2, 3).float().div_(255.0)  # (b, 3, frames, S, S)
        errors.append(scorer.slot_errors(clips, k, top=top).cpu().numpy())
    slot_err = np.concatenate(errors)  # (W, t - k)
    # Map each hidden slot's error back onto the frames it covers; a frame's score averages over its windows.
    total, count = np.zeros(T), np.zeros(T)
    for s, row in zip(starts, slot_err, strict=True):
        for j, e in enumerate(row):
            frames = s + offsets[(k + j) * tub : (k + j + 1) * tub]
            total[frames] += e
            count[frames] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        per_frame = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return SurpriseResult(
        video=name, model=scorer.name, window=scorer.frames, frame_step=step, context_frames=k * tub,
        starts=starts, window_scores=slot_err.mean(1), frame_scores=per_frame, notes=list(notes or []),
    )  # fmt: skip


def score_video(
    scorer: Scorer, path: str | Path, *, stride: int = 2, context_frames: int | None = None, top: float = 1.0
) -> SurpriseResult:
    """Surprise of any video file or folder of frames (resized to the checkpoint's resolution with a note)."""
    video, notes = load_video(path, scorer)
    return score_frames(
        scorer, video, stride=stride, context_frames=context_frames, top=top, name=str(path), notes=notes
    )


# ----------------------------------------------------------------------------------------------------------
# plot


def peaks(x: np.ndarray, *, min_rise: float = 0.1) -> list[int]:
    """Indices of the clear peaks of a curve: its global maximum, and local maxima above mean + 1 std that also
    rise `min_rise` of the median above it. A flat curve, whose whole range is under `min_rise` of its median,
    has none: on a still scene the shipped checkpoint's frame scores span under 5% of their median, and marking
    the largest of them would point at noise."""
    valid = ~np.isnan(x)
    if not valid.any():
        return []
    v = x[valid]
    median = np.median(v)
    if v.max() - v.min() < min_rise * abs(median):
        return []
    thresh = max(v.mean() + v.std(), median * (1.0 + min_rise))
    y = np.where(valid, x, -np.inf)
    out = {int(np.argmax(y))}
    for i in range(len(y)):
        left = y[i - 1] if i > 0 else -np.inf
        right = y[i + 1] if i + 1 < len(y) else -np.inf
        if y[i] > thresh and y[i] > left and y[i] >= right:  # the first frame of a plateau (tubelets)
            out.add(i)
    return sorted(out)


MAX_PANELS = 30  # a plot of more videos shows the most surprising ones; a figure 30 panels tall is already a scroll


def plot_results(results: list[SurpriseResult], out: str | Path) -> Path:
    """One panel per video, in up to 3 columns: per-frame surprise with its peaks marked, and the window scores.
    Of more than `MAX_PANELS` videos it plots those with the highest max score, in their given order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out = out if out.suffix else out.with_suffix(".png")  # what matplotlib writes for a name without suffix
    if len(results) > MAX_PANELS:
        keep = set(np.argsort([-r.max for r in results], kind="stable")[:MAX_PANELS].tolist())
        results = [r for i, r in enumerate(results) if i in keep]
    cols = 1 if len(results) <= 6 else 2 if len(results) <= 16 else 3
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(8 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(results) :]:
        ax.axis("off")
    for ax, r in zip(axes.flat[: len(results)], results, strict=True):
        frames = np.arange(len(r.frame_scores))
        ax.plot(frames, r.frame_scores, "-", color="tab:blue", label="per frame")
        hidden_end = [s + (r.window - 1) * r.frame_step for s in r.starts]
        ax.plot(hidden_end, r.window_scores, ".", color="tab:gray", alpha=0.7, label="per window (at its last frame)")
        p = peaks(r.frame_scores)
        ax.plot(p, r.frame_scores[p], "v", color="tab:red", markersize=9, label="peaks")
        for i in p:
            ax.annotate(str(i), (i, r.frame_scores[i]), textcoords="offset points", xytext=(0, 6), ha="center")
        flat = "" if p else "; no clear peak"
        ax.set_title(f"{Path(r.video).name}: video score over windows, mean {r.mean:.3f}, max {r.max:.3f}{flat}",
                     fontsize=10)  # fmt: skip
        ax.set_xlabel("frame")
        ax.set_ylabel("surprise")
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
