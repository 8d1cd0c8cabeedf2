"""How long is a body out of sight before its vanish-behind-the-screen splice shows?

    python benchmarks/physics_occlusion.py data/physics-s3

In a `vanish_behind_occluder` quadruplet (IntPhys's permanence test) the splice falls while the body is fully
behind the screen, so the impossible video first differs from its possible twin when the body should come back
out and does not (the divergence frame t_div). A surprise window can flag that only if its context still shows
the body. This prints, per such scene, the last frame before t_div in which the body is in view, and the gap:
the frames between it and t_div. It reads the two possible videos of the quadruplet from the suite: they are the
same scene with and without the body, so they differ exactly in the frames where the body is in view.

For surprise windows of `--window` frames with `--context` of them as context (`jepaworld physics eval`'s
windows, stride `--stride`), it also counts the windows that predict frame t_div and how many of them show the
body in their context: only those can expect it back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jepaworld.data.video import read_video
from jepaworld.physics_eval import read_index
from jepaworld.surprise import SurpriseError, window_starts

# summed |RGB| difference above which a pixel counts as showing the body (the suites' mp4 files are lossless; the
# margin only keeps the measure independent of that)
_PIXEL = 30


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("suite", type=Path, help="suite folder written by `jepaworld physics generate`")
    p.add_argument("--window", type=int, default=8, help="surprise window length in frames (the checkpoint's clip)")
    p.add_argument("--context", type=int, help="context frames per window (default: half the window)")
    p.add_argument("--stride", type=int, default=2, help="frames between window starts")
    args = p.parse_args()
    context = args.window // 2 if args.context is None else args.context
    if not 0 < context < args.window or args.stride < 1:
        p.error(f"--context {context} must lie in 1..{args.window - 1} (--window - 1), and --stride must be >= 1")
    try:
        index = read_index(args.suite)
    except SurpriseError as e:  # a missing or foreign folder: its one-line message, not a traceback
        raise SystemExit(str(e)) from None
    if index.get("args", {}).get("noise_per_twin"):
        # the two possible videos then carry different noise in every frame, so they differ everywhere
        raise SystemExit(
            f"{args.suite}: its twins have noise of their own; pass the same suite without --noise-per-twin"
        )
    videos = [v for v in index["videos"] if v["split"] == "test"]
    possible = {v["pair"]: v for v in videos if v["kind"] == "possible"}
    gaps, predicting, showing = [], 0, 0
    head = (
        "| scene | t_div | last frame showing the body | gap (frames) | windows predicting t_div / showing the body |"
    )
    print(head + "\n|---|---|---|---|---|")
    vanish = [(pair, v) for pair, v in possible.items() if v["detail"] == "vanish_behind_occluder"]
    for pair, v in sorted(vanish, key=lambda pv: int(pv[1]["scene"].rsplit("_", 1)[1])):  # scene-number order
        with_body = read_video(args.suite / v["file"]).astype(np.int32)  # (T, H, W, 3)
        without = read_video(args.suite / possible[pair[:-1] + "b"]["file"]).astype(np.int32)
        in_view = (np.abs(with_body - without).sum(-1) > _PIXEL).any(axis=(1, 2))  # (T,)
        t_div = v["t_div"]
        last = int(np.flatnonzero(in_view[:t_div]).max())
        gaps.append(t_div - 1 - last)
        # window [s, s + window): context [s, s + context), predicted [s + context, s + window)
        every = window_starts(len(in_view), span=args.window, stride=args.stride)  # as `physics eval` slides them
        starts = [s for s in every if s + context <= t_div < s + args.window]
        shown = sum(bool(in_view[s : s + context].any()) for s in starts)
        predicting, showing = predicting + len(starts), showing + shown
        print(f"| {v['scene']} | {t_div} | {last} | {gaps[-1]} | {len(starts)} / {shown} |")
    if not gaps:
        raise SystemExit(f"{args.suite}: no vanish_behind_occluder scenes; pass a suite with permanence test pairs")
    print(f"{len(gaps)} scenes; gap min / median / max: {min(gaps)} / {np.median(gaps):g} / {max(gaps)} frames; "
          f"{showing} of the {predicting} windows ({args.window} frames, {context} of context) that predict t_div "
          "show the body in their context")  # fmt: skip


if __name__ == "__main__":
    main()
