"""The video commands of the `jepaworld` command line, registered in `cli.COMMANDS`.

    jepaworld physics generate --out DIR [--n-train N] [--scenes N] [--size S] [--frames T] [--seed SEED]
                               [--noise SIGMA [--noise-grain PX] [--noise-per-twin]]
    jepaworld physics eval CHECKPOINT DIR [--baseline PIXEL_CHECKPOINT] [--nothing-moves] [scoring options]
    jepaworld surprise [CHECKPOINT] VIDEO... [--default] [--plot P] [--json J] [scoring options]

Scoring options: --stride S, --context-frames K, --top FRACTION, --device auto|cpu|cuda.

Each is an `(add_arguments, run)` pair like the commands in `cli.py`; heavy imports happen inside `run` so that
`jepaworld --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jepaworld.config import ConfigError


def _no_extra(rest: list[str]) -> None:
    if rest:
        raise ConfigError(f"unexpected arguments {' '.join(rest)}; see --help")


def _write_json(path: str, payload: object) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    return out


def check_output(flag: str, path: str, *, folder: bool = False) -> None:
    """Refuse, before any work, an output path that cannot be written: a file where a folder must be (on the way
    to it, or the path itself when it is to be a `folder`), or a folder where a file must be."""
    if not path:
        return
    target = Path(path)
    if target.is_dir() and not folder:
        raise ConfigError(f"{flag} {path}: is a folder; pass a file name")
    if target.is_file() and folder:
        raise ConfigError(f"{flag} {path}: is a file; pass a folder")
    if blocker := next((p for p in target.parents if p.exists() and not p.is_dir()), None):
        raise ConfigError(f"{flag} {path}: {blocker} is a file, not a folder; pass another path")


def check_plot(flag: str, path: str) -> None:
    """`check_output` for a figure, whose suffix (none: .png) must also be a format matplotlib writes."""
    if path and (suffix := Path(path).suffix.lower()):
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        formats = Figure().canvas.get_supported_filetypes()  # {"png": "Portable Network Graphics", ...}
        if suffix[1:] not in formats:
            raise ConfigError(f"{flag} {path}: matplotlib cannot write '{suffix}' figures; end the name with one of "
                              f"{', '.join('.' + f for f in sorted(formats))}, e.g. {Path(path).name}.png")  # fmt: skip
    check_output(flag, path if not path or Path(path).suffix else f"{path}.png")


def _check_scoring(args: argparse.Namespace) -> None:
    """Scoring options that are wrong whatever the video, named by their flags before any scoring."""
    check_output("--json", args.json)
    if args.stride < 1:
        raise ConfigError(f"--stride {args.stride}: pass a number of frames >= 1")
    if not 0.0 < args.top <= 1.0:
        raise ConfigError(f"--top {args.top:g}: pass a fraction of tokens in (0, 1], e.g. --top 0.1")


def _scoring_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stride", type=int, default=2, help="frames between window starts (default 2)")
    p.add_argument(
        "--context-frames", type=int, default=None, help="context frames per window (default: half the window)"
    )
    p.add_argument("--top", type=float, default=1.0, help="score a hidden frame by the mean of its largest FRACTION "
                   "of token errors (default 1.0: all tokens; a small violation shows better in e.g. 0.1)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda (default auto)")


# ----------------------------------------------------------------------------------------------------------
# physics generate / eval


def _physics_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="physics_command", required=True)
    g = sub.add_parser("generate", help="write an intuitive-physics suite (mp4 files + index.json)")
    g.add_argument("--out", required=True, help="folder to write (must not hold a suite already)")
    g.add_argument("--n-train", type=int, default=400, help="possible training videos (default 400)")
    g.add_argument(
        "--scenes",
        type=int,
        default=12,
        help="test scenes per property (default 12): a content-balanced "
        "quadruplet (2 matched pairs) for permanence, continuity, shape and colour, 1 pair for the rest",
    )
    g.add_argument("--size", type=int, default=64, help="frame side in pixels (default 64)")
    g.add_argument("--frames", type=int, default=32, help="frames per video (default 32)")
    g.add_argument("--seed", type=int, default=0, help="suite seed (default 0)")
    g.add_argument(
        "--noise",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="camera noise: std of Gaussian pixel noise (0-255 scale, before clipping), "
        "the same for all videos of a scene at a frame unless --noise-per-twin (default 0: clean)",
    )
    g.add_argument(
        "--noise-grain",
        type=int,
        default=1,
        metavar="PX",
        help="draw the noise once per PX x PX block of pixels: blocky flicker (default 1: per pixel)",
    )
    g.add_argument(
        "--noise-per-twin",
        action="store_true",
        help="give each twin its own noise from the divergence frame on, as separate recordings would",
    )
    e = sub.add_parser("eval", help="pairwise accuracy and AUROC per property, with baselines")
    e.add_argument("checkpoint", help="V-JEPA run folder or checkpoint.pt ('default' for the shipped one)")
    e.add_argument("suite", help="suite folder written by `jepaworld physics generate`")
    e.add_argument("--baseline", default="", help="pixel-baseline (videomae) checkpoint to add to the table")
    e.add_argument("--nothing-moves", action="store_true", help="add a control without predictor per model: its "
                   "last context slot's targets copied forward, to show what each predictor adds")  # fmt: skip
    e.add_argument("--json", default="", help="also write the results as JSON here")
    _scoring_args(e)


def _physics(args: argparse.Namespace, rest: list[str]) -> int:
    _no_extra(rest)
    if args.physics_command == "generate":
        return _generate(args)
    return _eval(args)


def _generate(args: argparse.Namespace) -> int:
    from jepaworld.physics import generate_suite, noise_label

    out = Path(args.out)
    if (out / "index.json").exists():
        raise ConfigError(f"{out} already holds a suite; remove it or pass another --out")
    for flag, value in (("--n-train", args.n_train), ("--scenes", args.scenes), ("--seed", args.seed)):
        if value < 0:
            raise ConfigError(f"{flag} {value}: pass a number >= 0")
    if not 0.0 <= args.noise <= 255.0:
        raise ConfigError(f"--noise {args.noise:g}: pass a pixel std between 0 and 255, e.g. 16")
    if args.noise_grain < 1:
        raise ConfigError(f"--noise-grain {args.noise_grain}: pass a block side of 1 pixel or more")
    if not args.noise and (args.noise_grain != 1 or args.noise_per_twin):
        raise ConfigError("--noise-grain and --noise-per-twin shape the camera noise; pass --noise SIGMA > 0 too")
    try:
        index = generate_suite(
            out, n_train=args.n_train, n_scenes_per_property=args.scenes, size=args.size, frames=args.frames,
            seed=args.seed, noise=args.noise, noise_grain=args.noise_grain, noise_per_twin=args.noise_per_twin,
        )  # fmt: skip
    except (ValueError, RuntimeError) as e:
        raise ConfigError(str(e)) from e
    except KeyboardInterrupt:  # generate_suite writes a hidden copy and renames it when done
        print(f"jepaworld physics: interrupted; nothing was written to {out}", file=sys.stderr)
        return 130
    n_test = sum(v["split"] == "test" for v in index["videos"])
    scenes = f"{args.scenes} scene{'s' * (args.scenes != 1)}"
    noise = noise_label(args.noise, args.noise_grain, args.noise_per_twin)
    print(f"wrote {out}: {args.n_train} training videos, {n_test} test videos ({scenes} per property), "
          f"{args.size}x{args.size}, {args.frames} frames, seed {args.seed}"
          f"{f', {noise}' if noise else ''}; index {out / 'index.json'}")  # fmt: skip
    return 0


def _eval(args: argparse.Namespace) -> int:
    from jepaworld.physics_eval import evaluate, format_table, format_variants, read_index, to_json
    from jepaworld.surprise import CopyScorer, PixelScorer, load_scorer, random_scorer
    from jepaworld.train import resolve_device

    _check_scoring(args)
    read_index(args.suite)  # a bad suite fails before the checkpoints load
    device = resolve_device(args.device)
    vjepa = load_scorer(None if args.checkpoint == "default" else args.checkpoint, device=device)
    scorers = {f"{vjepa.cfg.method.name} (checkpoint)": vjepa, "random init": random_scorer(vjepa)}
    if args.baseline:
        base = load_scorer(args.baseline, device=device)
        kind = "pixel baseline" if base.cfg.method.name in ("mae", "videomae") else "baseline"
        scorers[f"{base.cfg.method.name} ({kind})"] = base
    if args.nothing_moves:
        scorers[f"nothing moves ({vjepa.cfg.method.name} features)"] = CopyScorer(vjepa)
        if args.baseline:
            space = "pixels" if isinstance(base, PixelScorer) else f"{base.cfg.method.name} features"
            scorers[f"nothing moves ({space})"] = CopyScorer(base)
    print(f"scoring the test pairs of {args.suite} with {', '.join(scorers)} ...", flush=True)
    results = evaluate(scorers, args.suite, stride=args.stride, context_frames=args.context_frames, top=args.top,
                       progress=True)  # fmt: skip
    print(format_table(results))
    print(
        "pairwise: share of pairs whose impossible video has the higher video score (max or mean over windows); "
        "relative: share of scenes whose impossible videos sum higher than their possible ones (a quadruplet shows "
        "the same frames in both, so only the violation can decide); AUROC over all test videos of a property "
        "(impossible = 1); overall excludes the colour control."
    )
    if variants := format_variants(results):
        print(f"\npairwise accuracy by variant of the violation:\n{variants}")
    if args.json:
        print(f"wrote {_write_json(args.json, to_json(results))}")
    return 0


# ----------------------------------------------------------------------------------------------------------
# surprise


def _surprise_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="[CHECKPOINT] VIDEO...: a checkpoint (run folder or .pt; "
                   "omit it for the shipped default), then videos (mp4/webm/avi/... or folders of frames)")  # fmt: skip
    p.add_argument("--default", action="store_true", help="use the shipped default checkpoint; all paths are videos")
    p.add_argument("--plot", default="", help="write a PNG surprise curve (peaks marked) here; another suffix "
                   "(.pdf, .svg, .jpg) picks that format")  # fmt: skip
    p.add_argument("--json", default="", help="write per-window and per-frame scores as JSON here")
    _scoring_args(p)


def _is_checkpoint(path: Path, *, more: bool) -> bool:
    """Whether the first PATH names a checkpoint; `more`: other paths follow it. A path that does not exist and
    is not named like a video, or a run folder without its checkpoint, counts as one when videos follow, so
    that a mistyped or untrained checkpoint is an error rather than a video the shipped default then scores."""
    from jepaworld.data.video import VIDEO_SUFFIXES

    try:
        if path.suffix == ".pt" or (path.is_dir() and (path / "checkpoint.pt").exists()):
            return True
        if not more:
            return False
        if not path.exists():
            return path.suffix.lower() not in VIDEO_SUFFIXES
        return path.is_dir() and any((path / f).exists() for f in ("config.json", "metrics.jsonl"))
    except OSError:  # an unreadable folder: the video reader names it
        return False


def _surprise(args: argparse.Namespace, rest: list[str]) -> int:
    """Score every video on its own: one that fails is a one-line error on stderr, and the others' scores are
    still printed and written; the exit status is 2 when any failed."""
    _no_extra(rest)
    from jepaworld.data.video import VideoError
    from jepaworld.surprise import MAX_PANELS, SurpriseError, cpu_threads, load_scorer, plot_results, score_video
    from jepaworld.train import resolve_device

    _check_scoring(args)
    check_plot("--plot", args.plot)
    paths = [Path(p) for p in args.paths]
    checkpoint = None
    if not args.default and _is_checkpoint(paths[0], more=len(paths) > 1):
        checkpoint, paths = paths[0], paths[1:]
        if not checkpoint.exists():
            raise ConfigError(f"{checkpoint}: no such checkpoint or video; train one (`jepaworld pretrain --preset "
                              "vjepa-physics`), or leave it out to use the shipped default")  # fmt: skip
    if not paths:
        raise ConfigError("no video given; usage: jepaworld surprise [CHECKPOINT] VIDEO...")
    if run := next((p for p in paths if p.suffix == ".pt" or (p / "checkpoint.pt").is_file()), None):
        raise ConfigError(f"{run}: a checkpoint among the videos; put it first: jepaworld surprise {run} VIDEO...")
    scorer = load_scorer(checkpoint, device=resolve_device(args.device))
    if checkpoint is None:
        print(f"using the shipped default checkpoint {Path(scorer.name).name}", flush=True)
    results, failed = [], []
    with cpu_threads(1):
        for p in paths:
            try:
                results.append(
                    score_video(scorer, p, stride=args.stride, context_frames=args.context_frames, top=args.top)
                )
            except (SurpriseError, VideoError) as e:
                print(f"jepaworld surprise: error: {e}", file=sys.stderr, flush=True)
                failed.append(p)
                continue
            print(results[-1].format(), flush=True)
    if failed and not results:
        return 2
    if args.json:
        print(f"wrote {_write_json(args.json, [r.to_dict() for r in results])}")
    if args.plot:
        shown = "" if len(results) <= MAX_PANELS else f" (the {MAX_PANELS} of {len(results)} videos with the " \
            "highest max score; --json holds them all)"  # fmt: skip
        print(f"wrote {plot_results(results, args.plot)}{shown}")
    if failed:
        print(f"scored {len(results)} of {len(paths)} videos; the errors above name the others", flush=True)
        return 2
    return 0


PHYSICS = (_physics_args, _physics)
SURPRISE = (_surprise_args, _surprise)
