"""How long is a body out of sight before its vanish-behind-the-screen splice shows?

    python benchmarks/physics_occlusion.py data/physics-s3

In a `vanish_behind_occluder` quadruplet (IntPhys's permanence test) the splice falls while the body is fully
behind the screen, so the impossible video first differs from its possible twin when the body should come back
out and does not (the divergence frame t_div). A surprise window can flag that only if its context still shows
the body. This prints, per such scene, the last frame before t_div in which the body is in view, and the gap:
the frames between it and t_div. It reads the two possible videos of the quadruplet from the suite: they are the
same scene with and without the body, so they differ exactly in the frames where the body is in view.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jepaworld.data.video import read_video
from jepaworld.physics_eval import read_index

# summed |RGB| difference above which a pixel counts as showing the body (the suites' mp4 files are lossless; the
# margin only keeps the measure independent of that)
_PIXEL = 30


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("suite", type=Path, help="suite folder written by `jepaworld physics generate`")
    args = p.parse_args()
    videos = [v for v in read_index(args.suite)["videos"] if v["split"] == "test"]
    possible = {v["pair"]: v for v in videos if v["kind"] == "possible"}
    gaps = []
    print("| scene | t_div | last frame with the body in view | gap (frames) |\n|---|---|---|---|")
    for pair, v in sorted(possible.items()):
        if v["detail"] != "vanish_behind_occluder":
            continue
        with_body = read_video(args.suite / v["file"]).astype(np.int32)  # (T, H, W, 3)
        without = read_video(args.suite / possible[pair[:-1] + "b"]["file"]).astype(np.int32)
        in_view = (np.abs(with_body - without).sum(-1) > _PIXEL).any(axis=(1, 2))  # (T,)
        t_div = v["t_div"]
        last = int(np.flatnonzero(in_view[:t_div]).max())
        gaps.append(t_div - 1 - last)
        print(f"| {v['scene']} | {t_div} | {last} | {gaps[-1]} |")
    if not gaps:
        raise SystemExit(f"{args.suite}: no vanish_behind_occluder scenes; pass a suite with permanence test pairs")
    print(f"{len(gaps)} scenes; gap min / median / max: {min(gaps)} / {np.median(gaps):g} / {max(gaps)} frames")


if __name__ == "__main__":
    main()
