"""Where a V-JEPA checkpoint's surprise signal goes: do its targets see a splice, and does its error show it?

    python benchmarks/physics_splice.py runs/bench-physics/vjepa             # default suite data/physics
    python benchmarks/physics_splice.py default --scenes 12 --props permanence

For each of the first `--scenes` quadruplet scenes of a property (pair a: A against A[:t] + B[t:]), take the one
window whose hidden part starts at the splice frame t_div, and compare the possible and the impossible clip:

- target change: the mean |difference| over feature dimensions between the layer-normed target features of the
  two clips, per token; the max over tokens says how much of the violation the targets carry at all;
- prediction error: the checkpoint's surprise on the hidden part of each clip (L1 per token, as
  `jepaworld surprise` computes it), its mean over tokens.

A violation can only be detected when the target change is large against the prediction error. Prints the
median over scenes of each, per property.

Then whether the predictor uses its context at all. On every possible test video, in windows starting at frames
0, w, 2w, ... (w the window length), the hidden part's error (L1 per token, as above) of four predictions:

- the predictor from the clip's own context (the surprise the checkpoint computes);
- the predictor from another video's context (the batch rolled by one), same positions;
- the mean target over the batch at each position, which needs no context;
- the targets of the last context slot, copied forward ("nothing moves"), which needs no model.

A predictor that models the dynamics beats all three; one that ignores its context scores like the batch mean.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from jepaworld.surprise import JEPAScorer, context_slots, load_scorer, load_video


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="V-JEPA run folder or checkpoint.pt ('default' for the shipped one)")
    p.add_argument("--suite", default="data/physics", help="suite folder written by `jepaworld physics generate`")
    p.add_argument("--scenes", type=int, default=6, help="scenes per property")
    p.add_argument("--props", default="permanence,continuity,shape", help="quadruplet properties to check")
    args = p.parse_args()
    torch.set_num_threads(2)
    scorer = load_scorer(None if args.checkpoint == "default" else args.checkpoint, device="cpu")
    if not isinstance(scorer, JEPAScorer):
        raise SystemExit(f"{args.checkpoint}: not a V-JEPA checkpoint; this compares target features")
    k = context_slots(scorer, None)
    before = k * scorer.tubelet * scorer.frame_step  # frames of context ahead of the first hidden frame
    span = (scorer.frames - 1) * scorer.frame_step + 1
    index = json.loads((Path(args.suite) / "index.json").read_text())["videos"]
    print(f"{args.checkpoint}: median over scenes of the splice window (pair a of each quadruplet)")
    print("| property | scenes | target change, max token | target change, mean | error possible | error impossible |")
    print("|---|---|---|---|---|---|")
    for prop in args.props.split(","):
        rows = []
        for s in range(args.scenes):
            pair = {e["kind"]: e for e in index if e.get("pair") == f"{prop}_{s}a"}
            if len(pair) != 2:
                break
            clips = []
            for kind in ("possible", "impossible"):
                video, _ = load_video(Path(args.suite) / pair[kind]["file"], scorer)
                start = int(np.clip(pair[kind]["t_div"] - before, 0, len(video) - span))
                frames = video[start : start + span : scorer.frame_step]  # (frames, S, S, 3)
                clips.append(torch.from_numpy(frames).permute(3, 0, 1, 2).float().div(255.0)[None])
            with torch.inference_mode():
                h = [scorer.method.targets(c)[0] for c in clips]  # (N, D) each, layer-normed
                change = (h[0] - h[1]).abs().mean(-1)  # (N,)
                err = [scorer.token_errors(c, k).mean().item() for c in clips]
            rows.append((change.max().item(), change.mean().item(), *err))
        if not rows:
            raise SystemExit(f"{args.suite}: no quadruplet scenes of {prop!r}; use a suite with quadruplet properties")
        m = np.median(np.asarray(rows), axis=0)
        print(f"| {prop} | {len(rows)} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} | {m[3]:.3f} |")
    context_use(scorer, index, args.suite, k)


def context_use(scorer: JEPAScorer, index: list[dict], suite: str, k: int) -> None:
    span = (scorer.frames - 1) * scorer.frame_step + 1
    windows = []
    for e in index:
        if e["split"] == "test" and e["kind"] == "possible":
            video, _ = load_video(Path(suite) / e["file"], scorer)
            windows += [video[s : s + span : scorer.frame_step] for s in range(0, len(video) - span + 1, span)]
    clips = torch.from_numpy(np.stack(windows)).permute(0, 4, 1, 2, 3).float().div(255.0)  # (B, 3, T, S, S)
    m, (t, h, w), B = scorer.method, scorer.grid, clips.shape[0]
    ctx, tgt = scorer.future(B, k)
    with torch.inference_mode():
        full = m.targets(clips).view(B, t, h * w, -1)  # (B, t, hw, D) layer-normed
        target = full[:, k:]  # the hidden slots
        preds = {
            "own context": m.predict(clips, ctx, tgt.unsqueeze(1))[1][:, 0].view(target.shape),
            "another video's context": m.predict(clips.roll(1, 0), ctx, tgt.unsqueeze(1))[1][:, 0].view(target.shape),
            "batch-mean target": target.mean(0, keepdim=True),
            "last context slot copied": full[:, k - 1 : k],
        }
        errs = {name: (p - target).abs().mean().item() for name, p in preds.items()}
    print(f"\nHidden-part error on {B} windows of the possible test videos ({k} of {t} slots as context):")
    print("| " + " | ".join(errs) + " |")
    print("|" + "---|" * len(errs))
    print("| " + " | ".join(f"{e:.4f}" for e in errs.values()) + " |")


if __name__ == "__main__":
    main()
