"""Mask invariants: disjointness, sizes, ranges, seeding, and no positional bias from collating a batch."""

from __future__ import annotations

import math

import pytest
import torch

from jepaworld.masks import FutureFrames, MultiBlock2D, MultiBlock3D, Random


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_sorted_unique_in_range(idx: torch.Tensor, n: int) -> None:
    assert idx.dtype == torch.long
    assert idx.min() >= 0 and idx.max() < n
    assert (idx[..., 1:] > idx[..., :-1]).all(), "indices must be strictly increasing (sorted, unique)"


# ----------------------------------------------------------------------------------------------------------
# MultiBlock2D


def is_rectangle(idx: torch.Tensor, w: int) -> tuple[int, int] | None:
    """(bh, bw) when the flat indices form a full axis-aligned rectangle on a width-w grid, else None."""
    r, c = idx // w, idx % w
    bh, bw = int(r.max() - r.min() + 1), int(c.max() - c.min() + 1)
    return (bh, bw) if bh * bw == len(idx) == len(set(idx.tolist())) else None


@pytest.mark.parametrize("seed", range(4))
def test_multiblock2d_invariants(seed: int) -> None:
    h, w, B = 14, 14, 8
    mask = MultiBlock2D(height=h, width=w, num_targets=4, min_keep=10)
    ctx, tgt = mask(B, gen(seed))
    assert ctx.shape[0] == B and ctx.shape[1] >= mask.min_keep
    assert tgt.shape[:2] == (B, 4)
    assert_sorted_unique_in_range(ctx, h * w)
    assert_sorted_unique_in_range(tgt, h * w)
    lo, hi = mask.target_scale
    shapes = set()
    for b in range(B):
        ctx_set = set(ctx[b].tolist())
        for m in range(4):
            block = tgt[b, m]
            assert not ctx_set & set(block.tolist()), "context and target overlap"
            shape = is_rectangle(block, w)
            assert shape is not None, "a target is not a full rectangular block"
            shapes.add(shape)
    # One block shape per batch; its area within the scale bounds up to rounding each side by half a patch.
    assert len(shapes) == 1
    bh, bw = shapes.pop()
    area_lo, area_hi = lo * h * w, hi * h * w
    slack_hi = 0.5 * (math.sqrt(area_hi * 1.5) + math.sqrt(area_hi / 0.75)) + 0.25
    slack_lo = 0.5 * (math.sqrt(area_lo * 1.5) + math.sqrt(area_lo / 0.75))
    assert area_lo - slack_lo <= bh * bw <= area_hi + slack_hi
    assert 0.75 * 0.7 <= bh / bw <= 1.5 / 0.7  # aspect within bounds up to rounding


def test_multiblock2d_context_is_inside_one_square_block() -> None:
    # The context is one square block of area context_scale (here exactly 25 of 100 patches) minus the targets.
    mask = MultiBlock2D(height=10, width=10, num_targets=2, target_scale=(0.04, 0.04), context_scale=(0.25, 0.25))
    ctx, _tgt = mask(16, gen(0))
    assert ctx.shape[1] <= 25
    for b in range(16):
        rows, cols = ctx[b] // 10, ctx[b] % 10
        assert rows.max() - rows.min() + 1 <= 5 and cols.max() - cols.min() + 1 <= 5


def test_multiblock2d_seeding() -> None:
    mask = MultiBlock2D(height=8, width=8, num_targets=3, min_keep=4)
    a, b, c = mask(6, gen(1)), mask(6, gen(1)), mask(6, gen(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not (a[0].shape == c[0].shape and torch.equal(a[0], c[0]) and torch.equal(a[1], c[1]))


def test_multiblock2d_min_keep_unreachable_raises() -> None:
    mask = MultiBlock2D(height=4, width=4, num_targets=4, target_scale=(0.5, 0.5), min_keep=16, max_tries=3)
    with pytest.raises(RuntimeError, match="min_keep"):
        mask(2, gen(0))


def test_multiblock2d_no_positional_bias_from_collation() -> None:
    """Over many draws the context coverage is symmetric under a 180° rotation; truncating the tail would not be.

    Samples keep different numbers of context tokens; collating them to a common length must drop a uniformly
    random subset. Dropping the highest indices would starve the bottom-right of the grid.
    """
    h = w = 8
    mask = MultiBlock2D(height=h, width=w, num_targets=4, target_scale=(0.1, 0.2), min_keep=4)
    g = gen(0)
    ctx_count, tgt_count = torch.zeros(h * w), torch.zeros(h * w)
    draws = 150
    for _ in range(draws):
        ctx, tgt = mask(8, g)
        ctx_count += torch.bincount(ctx.flatten(), minlength=h * w)
        tgt_count += torch.bincount(tgt.flatten(), minlength=h * w)
    cov = (ctx_count / ctx_count.mean()).view(h, w)
    rot = torch.rot90(cov, 2)
    # Quadrant totals: top-left vs bottom-right, top-right vs bottom-left.
    tl, br = cov[: h // 2, : w // 2].sum(), cov[h // 2 :, w // 2 :].sum()
    tr, bl = cov[: h // 2, w // 2 :].sum(), cov[h // 2 :, : w // 2].sum()
    assert abs(tl - br) / (tl + br) < 0.05, (tl, br)
    assert abs(tr - bl) / (tr + bl) < 0.05, (tr, bl)
    assert (cov - rot).abs().max() < 0.25
    assert (tgt_count > 0).all(), "some positions are never a target"


def _tail_truncate_bias(h: int, w: int, draws: int) -> float:
    """The same statistic for a tail-truncating collation, to show the test above can detect it."""
    mask = MultiBlock2D(height=h, width=w, num_targets=4, target_scale=(0.1, 0.2), min_keep=4)
    g = gen(0)
    count = torch.zeros(h * w)
    for _ in range(draws):
        n_min = None
        sets = []
        for _ in range(8):
            c, _ = mask(1, g)
            sets.append(c[0])
            n_min = len(c[0]) if n_min is None else min(n_min, len(c[0]))
        for s in sets:
            count += torch.bincount(s[:n_min], minlength=h * w)
    cov = (count / count.mean()).view(h, w)
    tl, br = cov[: h // 2, : w // 2].sum(), cov[h // 2 :, w // 2 :].sum()
    return float(abs(tl - br) / (tl + br))


def test_symmetry_statistic_detects_tail_truncation() -> None:
    assert _tail_truncate_bias(8, 8, 60) > 0.2


# ----------------------------------------------------------------------------------------------------------
# MultiBlock3D


@pytest.mark.parametrize("kind", ["short_range", "long_range"])
def test_multiblock3d_tubes_disjoint_equal_lengths(kind: str) -> None:
    t, h, w = 4, 8, 8
    mask = getattr(MultiBlock3D, kind)(t, h, w)
    ctx, tgt = mask(1, gen(0))
    assert tgt.shape[:2] == (1, 1)
    tgt = tgt[:, 0]
    assert_sorted_unique_in_range(ctx, t * h * w)
    assert_sorted_unique_in_range(tgt, t * h * w)
    # One sample: context and target partition the grid, and the target is a tube (same spatial set each slot).
    assert sorted(ctx[0].tolist() + tgt[0].tolist()) == list(range(t * h * w))
    slots = [set((tgt[0][tgt[0] // (h * w) == k] % (h * w)).tolist()) for k in range(t)]
    assert all(s == slots[0] for s in slots) and slots[0]


@pytest.mark.parametrize("kind", ["short_range", "long_range"])
def test_multiblock3d_batch_no_leak_through_time(kind: str) -> None:
    t, h, w, B = 4, 8, 8, 6
    mask = getattr(MultiBlock3D, kind)(t, h, w)
    ctx, tgt = mask(B, gen(1))
    assert ctx.shape[0] == tgt.shape[0] == B and tgt.shape[1] == 1
    assert_sorted_unique_in_range(ctx, t * h * w)
    assert_sorted_unique_in_range(tgt[:, 0], t * h * w)
    for b in range(B):
        c, m = set(ctx[b].tolist()), set(tgt[b, 0].tolist())
        assert not c & m
        # No context token shares a spatial position with any target token, at any time: tubes span all frames.
        assert not {i % (h * w) for i in c} & {i % (h * w) for i in m}
    # Long range masks far more than short range.
    if kind == "long_range":
        assert tgt.shape[2] > ctx.shape[1]


def test_multiblock3d_blocks_cover_the_grid_without_positional_bias() -> None:
    """Over many draws every position is a target, and target coverage is symmetric under a 180° rotation."""
    t, h, w = 2, 8, 8
    mask, g, count = MultiBlock3D.short_range(t, h, w), gen(0), torch.zeros(h * w)
    for _ in range(100):
        _, tgt = mask(8, g)
        count += torch.bincount(tgt[:, 0].flatten() % (h * w), minlength=h * w).float()
    cov = (count / count.mean()).view(h, w)
    assert (cov > 0).all()
    tl, br = cov[: h // 2, : w // 2].sum(), cov[h // 2 :, w // 2 :].sum()
    assert abs(tl - br) / (tl + br) < 0.05, (tl, br)
    # Each short-range block covers 15% of the grid; 8 of them, overlapping, cover 1 - 0.85^8 = 73% on average
    # (less after the batch is cut to its smallest target).
    assert 0.4 < count.sum() / (100 * 8 * t * h * w) < 0.8


def test_multiblock3d_seeding() -> None:
    mask = MultiBlock3D.short_range(2, 8, 8)
    a, b, c = mask(4, gen(5)), mask(4, gen(5)), mask(4, gen(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not (a[0].shape == c[0].shape and torch.equal(a[0], c[0]))


# ----------------------------------------------------------------------------------------------------------
# FutureFrames and Random


def test_future_frames() -> None:
    ctx, tgt = FutureFrames(frames=4, height=2, width=3, context_frames=1)(3)
    assert ctx.shape == (3, 6) and tgt.shape == (3, 1, 18)
    assert torch.equal(ctx[1], torch.arange(6)) and torch.equal(tgt[2, 0], torch.arange(6, 24))
    for bad in (0, 4):
        with pytest.raises(ValueError, match="context_frames"):
            FutureFrames(frames=4, height=2, width=3, context_frames=bad)(1)


@pytest.mark.parametrize(("n", "ratio", "n_mask"), [(16, 0.75, 12), (10, 0.5, 5), (49, 0.9, 44)])
def test_random_partition(n: int, ratio: float, n_mask: int) -> None:
    keep, masked = Random(num_tokens=n, ratio=ratio)(5, gen(0))
    assert keep.shape == (5, n - n_mask) and masked.shape == (5, 1, n_mask)
    assert_sorted_unique_in_range(keep, n)
    assert_sorted_unique_in_range(masked, n)
    for b in range(5):
        assert sorted(keep[b].tolist() + masked[b, 0].tolist()) == list(range(n))
    assert len({tuple(k.tolist()) for k in keep}) > 1, "samples should get different masks"


def test_random_seeding_and_bad_ratio() -> None:
    m = Random(num_tokens=16, ratio=0.5)
    assert torch.equal(m(3, gen(0))[0], m(3, gen(0))[0])
    assert not torch.equal(m(3, gen(0))[0], m(3, gen(1))[0])
    for ratio in (0.0, 1.0, 0.01):
        with pytest.raises(ValueError, match="no visible or no masked"):
            Random(num_tokens=16, ratio=ratio)(1, gen(0))


def test_random_is_uniform_over_positions() -> None:
    m, g = Random(num_tokens=16, ratio=0.75), gen(0)
    counts = torch.zeros(16)
    for _ in range(200):
        counts += torch.bincount(m(8, g)[0].flatten(), minlength=16)
    expect = 200 * 8 * 4 / 16
    assert ((counts - expect).abs() / expect).max() < 0.2
