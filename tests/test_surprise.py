"""Surprise scoring: window and per-frame arithmetic, tiny models end to end, and the bad-input errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from jepaworld.checkpoint import save_checkpoint
from jepaworld.config import apply_overrides, get_preset
from jepaworld.data.video import write_video
from jepaworld.masks import FutureFrames
from jepaworld.methods import DataSpec, build_method
from jepaworld.methods.mae import patchify
from jepaworld.surprise import (
    MAX_PANELS,
    CopyScorer,
    Scorer,
    SurpriseError,
    load_scorer,
    load_video,
    make_scorer,
    peaks,
    plot_results,
    score_frames,
    score_video,
    window_starts,
)

SPEC = DataSpec(channels=3, img_size=16, frames=8)


def _scorer(preset: str = "vjepa-physics-micro"):
    torch.manual_seed(0)
    cfg = get_preset(preset)
    return make_scorer(build_method(cfg, SPEC), cfg, SPEC, name=preset)


def _video(frames: int = 20, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("frames", "span", "stride", "expected"),
    [
        (32, 8, 2, list(range(0, 25, 2))),  # 13 windows, the last flush with the end
        (33, 8, 4, [0, 4, 8, 12, 16, 20, 24, 25]),  # an extra window flush with the end
        (8, 8, 3, [0]),
    ],
)
def test_window_starts(frames: int, span: int, stride: int, expected: list[int]) -> None:
    assert window_starts(frames, span=span, stride=stride) == expected


def test_window_starts_errors() -> None:
    with pytest.raises(SurpriseError, match="fewer than one window"):
        window_starts(7, span=8, stride=1)
    with pytest.raises(SurpriseError, match="stride"):
        window_starts(9, span=8, stride=0)


class _FrameIndexScorer:
    """A fake model with 2 tokens per slot: the first's error is the mean frame index the slot covers (read from
    the pixels), the second's is 0. The real `Scorer.slot_errors` reduces them."""

    name, frames, img_size, frame_step, tubelet, grid = "fake", 8, 4, 1, 2, (4, 2, 1)
    device = torch.device("cpu")
    slot_errors = Scorer.slot_errors

    def token_errors(self, clips: torch.Tensor, k: int) -> torch.Tensor:
        B, _, T = clips.shape[:3]
        idx = clips[:, 0, :, 0, 0] * 255  # (B, T) the frame index written into each frame
        slot = idx.view(B, T // 2, 2).mean(-1)[:, k:]  # (B, t - k)
        return torch.stack([slot, torch.zeros_like(slot)], dim=-1)  # (B, t - k, 2)


def test_per_frame_mapping() -> None:
    T = 14
    video = np.broadcast_to(np.arange(T, dtype=np.uint8)[:, None, None, None], (T, 4, 4, 3)).copy()
    r = score_frames(_FrameIndexScorer(), video, stride=2, context_frames=4, top=0.5)  # type: ignore[arg-type]
    assert r.starts == [0, 2, 4, 6]
    # window s hides frames s+4..s+7 as slots (s+4, s+5) and (s+6, s+7); top=0.5 keeps the larger token
    np.testing.assert_allclose(r.window_scores, [s + 5.5 for s in r.starts])
    assert np.isnan(r.frame_scores[:4]).all()  # never hidden: context of the first window
    np.testing.assert_allclose(r.frame_scores[4:], [f // 2 * 2 + 0.5 for f in range(4, T)])
    assert math.isclose(r.max, 11.5) and math.isclose(r.mean, np.mean([5.5, 7.5, 9.5, 11.5]))
    # top=1.0 (the default) averages both tokens of a slot: half the scores
    every = score_frames(_FrameIndexScorer(), video, stride=2, context_frames=4)  # type: ignore[arg-type]
    np.testing.assert_allclose(every.window_scores, r.window_scores / 2)
    # A fraction is rounded up to whole tokens: 0.75 of 2 tokens keeps both.
    three_quarters = score_frames(_FrameIndexScorer(), video, stride=2, context_frames=4, top=0.75)  # type: ignore[arg-type]
    np.testing.assert_allclose(three_quarters.window_scores, every.window_scores)
    with pytest.raises(SurpriseError, match="top=0"):
        score_frames(_FrameIndexScorer(), video, top=0.0)  # type: ignore[arg-type]


class _EveryOtherFrameScorer(_FrameIndexScorer):
    frame_step = 2  # a window samples every other frame: 8 frames span 15


def test_per_frame_mapping_with_a_frame_step() -> None:
    T = 19
    video = np.broadcast_to(np.arange(T, dtype=np.uint8)[:, None, None, None], (T, 4, 4, 3)).copy()
    r = score_frames(_EveryOtherFrameScorer(), video, stride=2, context_frames=4, top=0.5)  # type: ignore[arg-type]
    assert r.starts == [0, 2, 4]
    # window s hides frames s+8, s+10 (one slot) and s+12, s+14 (the next): slot scores s+9 and s+13
    np.testing.assert_allclose(r.window_scores, [s + 11 for s in r.starts])
    assert np.isnan(r.frame_scores[:8]).all() and np.isnan(r.frame_scores[9::2]).all()  # never sampled as hidden
    np.testing.assert_allclose(r.frame_scores[[8, 10, 16, 18]], [9, (9 + 11) / 2, (15 + 17) / 2, 17])
    assert "frames    0-14   predicts    8-14   surprise" in r.format()


@pytest.mark.parametrize("preset", ["vjepa-physics-micro", "videomae-physics-micro"])
def test_tiny_model_scores_are_finite(preset: str) -> None:
    r = score_frames(_scorer(preset), _video(), stride=3, context_frames=4)
    assert len(r.window_scores) == len(window_starts(20, span=8, stride=3))
    assert np.isfinite(r.window_scores).all() and r.frame_scores.shape == (20,)
    assert np.isfinite(r.frame_scores[4:]).all()
    json.dumps(r.to_dict())  # machine-readable: no numpy scalars, NaN as null
    r.window_scores[0] = np.nan  # a model whose errors overflowed: still valid JSON
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["windows"][0]["score"] is None and d["mean"] is None and d["max"] is None
    assert "video surprise: mean" in r.format()


def _clips(seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(_video(frames=8, seed=seed)).permute(3, 0, 1, 2)[None].float() / 255  # (1, 3, 8, 16, 16)


@torch.no_grad()
def test_token_errors_match_a_hand_written_reference() -> None:
    clips, k = torch.cat([_clips(0), _clips(1)]), 2
    vjepa, videomae = _scorer("vjepa-physics-micro"), _scorer("videomae-physics-micro")
    t, h, w = vjepa.grid
    ctx, tgt = FutureFrames(frames=t, height=h, width=w, context_frames=k)(2)  # hidden: tokens k*h*w .. t*h*w - 1
    m = vjepa.method
    target = F.layer_norm(m.target_encoder(clips), (m.target_encoder.dim,))[:, k * h * w :]  # (2, Nt, D)
    pred = m.predictor(m.encoder(clips, ctx), ctx, tgt)[:, 0]  # (2, Nt, D)
    ref = (pred - target).abs().mean(-1).view(2, t - k, h * w)
    torch.testing.assert_close(vjepa.token_errors(clips, k), ref)
    m = videomae.method
    pix = patchify(clips, m.encoder.patch_size, m.encoder.tubelet)[:, k * h * w :]  # (2, Nt, P), raw pixels
    pred = m.decoder(m.encoder(clips, ctx), ctx, tgt[:, 0])
    torch.testing.assert_close(videomae.token_errors(clips, k), (pred - pix).pow(2).mean(-1).view(2, t - k, h * w))


@torch.no_grad()
def test_pixel_targets_follow_norm_pix_loss() -> None:
    # A VideoMAE trained on per-patch normalised pixels is scored in that space, with MAE's own normalisation.
    torch.manual_seed(0)
    cfg = apply_overrides(get_preset("videomae-physics-micro"), {"method.norm_pix_loss": "true"})
    scorer = make_scorer(build_method(cfg, SPEC), cfg, SPEC, name="norm-pix")
    clips, m = _clips(), scorer.method
    pix = patchify(clips, m.encoder.patch_size, m.encoder.tubelet)  # (1, N, P)
    ref = (pix - pix.mean(-1, keepdim=True)) / (pix.var(-1, keepdim=True) + 1e-6).sqrt()
    torch.testing.assert_close(scorer.targets(clips), ref)
    torch.testing.assert_close(_scorer("videomae-physics-micro").targets(clips), pix)  # the presets: raw pixels


@torch.no_grad()
def test_nothing_moves_scores_how_much_the_targets_change() -> None:
    vjepa, videomae = _scorer("vjepa-physics-micro"), _scorer("videomae-physics-micro")
    clips, k = _clips(), 2
    t, h, w = vjepa.grid
    for scorer in (vjepa, videomae):
        target = scorer.targets(clips).view(1, t, h * w, -1)  # (1, t, hw, D)
        ref = scorer.distance(target[:, k - 1 : k].expand(-1, t - k, -1, -1), target[:, k:])  # (1, t - k, hw)
        torch.testing.assert_close(CopyScorer(scorer).token_errors(clips, k), ref)
    # Pixels: a still video costs nothing; a change in the last slot only is scored there and only there.
    still = clips[:, :, :1].expand(-1, -1, 8, -1, -1)
    assert CopyScorer(videomae).token_errors(still, k).abs().max() == 0
    moved = still.clone()
    moved[:, :, 6:] = 1 - moved[:, :, 6:]
    err = CopyScorer(videomae).slot_errors(moved, k)  # (1, t - k): slots 2 and 3
    assert err[0, 0] == 0 and err[0, 1] > 0.1
    assert CopyScorer(vjepa).name.startswith("nothing moves (")


def test_bad_context_frames() -> None:
    with pytest.raises(SurpriseError, match="context-frames 3"):
        score_frames(_scorer(), _video(), context_frames=3)  # not whole tubelets
    with pytest.raises(SurpriseError, match="context-frames 8"):
        score_frames(_scorer(), _video(), context_frames=8)  # nothing left to predict


def test_too_short_video(tmp_path: Path) -> None:
    path = write_video(tmp_path / "short.mp4", _video(frames=5))
    with pytest.raises(SurpriseError, match=r"short.mp4: video has 5 frames, fewer than one window of 8"):
        score_video(_scorer(), path)


def test_image_checkpoint_is_refused(tmp_path: Path) -> None:
    cfg = get_preset("ijepa-digits-micro")
    spec = DataSpec(channels=1, img_size=16)
    save_checkpoint(tmp_path / "img.pt", cfg=cfg, spec=spec, method=build_method(cfg, spec))
    with pytest.raises(SurpriseError, match="image checkpoint"):
        load_scorer(tmp_path / "img.pt")


def test_resize_note(tmp_path: Path) -> None:
    path = write_video(tmp_path / "big.mp4", _video(frames=9, size=24))
    frames, notes = load_video(path, _scorer())
    assert frames.shape == (9, 16, 16, 3)
    assert len(notes) == 1 and "24x24, resized to the checkpoint's 16x16" in notes[0]
    r = score_video(_scorer(), path)
    assert r.notes == notes and notes[0] in r.format()


def test_vjepa_checkpoint_round_trip_and_plot(tmp_path: Path) -> None:
    cfg = apply_overrides(get_preset("vjepa-physics-micro"), {})
    method = build_method(cfg, SPEC)
    save_checkpoint(tmp_path / "v.pt", cfg=cfg, spec=SPEC, method=method)
    scorer = load_scorer(tmp_path / "v.pt")
    r = score_frames(scorer, _video(), name="v")
    # a slot's top-10% token errors are at least their mean
    assert (score_frames(scorer, _video(), name="v", top=0.1).window_scores >= r.window_scores - 1e-7).all()
    png = plot_results([r, r], tmp_path / "curve.png")
    assert png.stat().st_size > 1000
    # Many videos: a grid of at most MAX_PANELS panels in 3 columns, not a figure one panel per video tall.
    many = plot_results([r] * (MAX_PANELS + 5), tmp_path / "many.png")
    with Image.open(many) as im:
        width, height = im.size
    assert (width, height) == (3 * 800, 260 * math.ceil(MAX_PANELS / 3))


def test_peaks() -> None:
    x = np.array([np.nan, 1.0, 1.0, 5.0, 1.0, 1.0, 4.0, 1.0])
    assert peaks(x) == [3, 6]
    assert peaks(np.full(3, np.nan)) == []
    # A flat curve (a still scene: frame scores within 5% of each other) has no clear peak, though its largest
    # value is above mean + std; a rise of 20% above the median is one.
    flat = 0.1 + 0.004 * np.random.default_rng(0).random(30)
    assert peaks(flat) == []
    bump = flat.copy()
    bump[17] = 0.12
    assert peaks(bump) == [17]
    # A rise held over most of the video is still a clear peak, at its first frame.
    assert peaks(np.array([np.nan] * 4 + [1.0] * 4 + [3.0] * 6)) == [8]
    assert peaks(np.array([1.0, 1, 5, 1, 1, 4, 4, 1])) == [2, 5]  # a lower plateau too, at its first frame


@pytest.mark.gpu
def test_cuda_scores_match_cpu() -> None:
    cpu = _scorer()
    cuda = make_scorer(cpu.method, cpu.cfg, SPEC, name="cuda", device="cuda")  # moves the same weights
    got = score_frames(cuda, _video(), top=0.25).window_scores
    cpu = make_scorer(cuda.method, cuda.cfg, SPEC, name="cpu", device="cpu")
    np.testing.assert_allclose(got, score_frames(cpu, _video(), top=0.25).window_scores, rtol=1e-3, atol=1e-5)
