"""Can a video score normalised by the video's own surprise level remove the content bias of pairwise accuracy?

    python benchmarks/physics_scores.py runs/bench-physics            # the folder physics_surprise.py wrote
    python benchmarks/physics_scores.py runs/bench-physics --suite data/physics-val

Pairwise accuracy compares an impossible video with its possible twin. The twins show different content after
the splice (an object vanishes or appears, shrinks or grows), and how much moves changes the surprise of every
later window; with the max or mean over windows that decides most permanence and shape pairs
(BENCHMARKS.md). A score that measures the peak against the video's own level could cancel it. Each score
below uses only the video's window scores w (the same windows as `jepaworld physics eval`), never its twin or
the divergence frame, so `jepaworld surprise` could compute it on any video:

- max, mean: the benchmark's scores;
- max - median, max - min, max / median: the peak above the video's typical (or lowest) level;
- rise: the largest increase from one window to the next;
- over history: the largest w_t - mean(w_0 .. w_t-1), the peak above what came before it.

Prints pairwise accuracy per property and per variant for the V-JEPA and VideoMAE runs in the folder and the
V-JEPA architecture at random init. A choice among these scores should be made on a suite other than the one
the results are reported on (`jepaworld physics generate --out data/physics-val --n-train 0 --seed 2`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jepaworld.physics_eval import OVERALL, pairwise_accuracy, read_index, surprise_results
from jepaworld.surprise import cpu_threads, load_scorer, random_scorer


def _over_history(w: np.ndarray) -> float:
    return float(max(w[t] - w[:t].mean() for t in range(1, len(w)))) if len(w) > 1 else 0.0


SCORES: dict[str, Callable[[np.ndarray], float]] = {
    "max": lambda w: float(w.max()),
    "mean": lambda w: float(w.mean()),
    "max - median": lambda w: float(w.max() - np.median(w)),
    "max - min": lambda w: float(w.max() - w.min()),
    "max / median": lambda w: float(w.max() / np.median(w)),
    "rise": lambda w: float(np.diff(w).max()) if len(w) > 1 else 0.0,
    "over history": _over_history,
}
# variants whose impossible twin shows less (vanish, shrink) or more (appear, grow) than its partner, and the
# two gravity variants (a falling body stops, or moves up)
VARIANTS = ("vanish", "appear", "shrink", "grow", "float", "fall_upward")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", help="folder with the vjepa/ and videomae/ runs of benchmarks/physics_surprise.py")
    p.add_argument("--suite", default="data/physics", help="suite folder written by `jepaworld physics generate`")
    p.add_argument("--stride", type=int, default=2, help="frames between window starts")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    args = p.parse_args()
    suite, runs = Path(args.suite), Path(args.runs)
    index = read_index(suite)
    vjepa = load_scorer(runs / "vjepa", device="cpu")
    scorers = {"V-JEPA": vjepa, "VideoMAE (pixels)": load_scorer(runs / "videomae", device="cpu"),
               "random init (V-JEPA arch.)": random_scorer(vjepa, seed=0)}  # fmt: skip
    test = [v for v in index["videos"] if v["split"] == "test"]
    pairs: dict[str, dict[str, dict]] = {}
    for v in test:
        pairs.setdefault(v["pair"], {})[v["kind"]] = v
    controls = set(index.get("control_properties", ()))
    props = [q for q in index["properties"] if q not in controls] + [OVERALL]
    windows: dict[str, dict[str, np.ndarray]] = {name: {} for name in scorers}  # model -> file -> (W,) scores
    with cpu_threads(args.threads):
        for v, name, r in surprise_results(scorers, suite, index, stride=args.stride):
            windows[name][v["file"]] = r.window_scores
    print(f"{runs} on {suite}: pairwise accuracy by video score (windows of stride {args.stride})\n")
    print("| model | score | " + " | ".join(props) + " | " + " | ".join(VARIANTS) + " |")
    print("|---|---|" + "---|" * (len(props) + len(VARIANTS)))
    for name, scores in windows.items():
        for score, fn in SCORES.items():
            by_group: dict[str, list[tuple[float, float]]] = {}  # group -> (possible, impossible) scores
            for d in pairs.values():
                pair = (fn(scores[d["possible"]["file"]]), fn(scores[d["impossible"]["file"]]))
                prop = d["possible"]["property"]
                groups = [prop, d["impossible"].get("detail")] + ([OVERALL] if prop not in controls else [])
                for g in groups:
                    by_group.setdefault(g, []).append(pair)
            cells = [f"{100 * pairwise_accuracy(by_group[g]):.0f}%" if g in by_group else "-"
                     for g in props + list(VARIANTS)]  # fmt: skip
            print(f"| {name} | {score} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
