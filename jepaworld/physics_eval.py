"""Violation-of-expectation evaluation on an intuitive-physics suite (`jepaworld.physics.generate_suite`).

Every scorer (`jepaworld.surprise`) scores each test video; per property we report

- pairwise accuracy: the share of matched pairs whose impossible video is more surprising than its possible twin
  (ties count half). The video score is the **max** over windows by default, as the twins are identical before the
  divergence frame: the violation is a local peak, and the mean dilutes it over windows both videos share. The
  mean-score accuracy is reported too.
- pairwise accuracy after divergence, a diagnostic: the twins' max over only the windows that reach the divergence
  frame (the same windows for both). It differs from the max over all windows when both maxima lie in the shared
  prefix, where the full-video max is a tie: it asks whether the model reacts to the event at all, even when
  something earlier in the scene (a drop, a bounce) surprised it more.
- relative accuracy, as IntPhys scores its quadruplets: the share of test scenes whose impossible videos sum to
  a higher score than their possible ones. A quadruplet's impossible videos show, frame for frame, the same
  images as its possible ones (`jepaworld.physics.PhysicsQuad`); with the mean score every window that does not
  span the splice cancels exactly, so how much moves or is in view cannot decide it, only the transition can.
  For a property tested with single pairs (gravity, solidity), relative equals pairwise accuracy.
- AUROC of the max score over all test videos of the property (impossible = 1), which unlike pairwise accuracy
  also asks that scores be comparable *across* scenes.
- pairwise accuracy per variant of each violation (the index's `detail`: "float" or "fall_upward", "vanish" or
  "appear", ...), a diagnostic: variants whose impossible twin shows less than its partner against those that
  show more tell how far a score follows the content rather than the violation.

"overall" pools every property except the controls (colour change), which are reported separately.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from jepaworld.physics import CONTROL_PROPERTIES, generate_suite
from jepaworld.surprise import (
    Scorer,
    SurpriseError,
    SurpriseResult,
    cpu_threads,
    load_scorer,
    load_video,
    random_scorer,
    score_frames,
)

OVERALL = "overall"
# (row label, PropertyScore field) of the tables
ROWS = (("pairwise (max)", "pairwise_max"), ("pairwise (mean)", "pairwise_mean"),
        ("pairwise (max after divergence)", "pairwise_event"), ("relative (max)", "relative_max"),
        ("relative (mean)", "relative_mean"), ("AUROC (max)", "auroc"))  # fmt: skip


@dataclass
class PropertyScore:
    scenes: int
    pairs: int
    pairwise_max: float
    pairwise_mean: float
    pairwise_event: float
    relative_max: float
    relative_mean: float
    auroc: float
    # {detail: {"pairs": n, "pairwise_max": a, "pairwise_mean": b}} per variant of the violation; empty for
    # `overall` and for suites whose index has no details
    variants: dict[str, dict[str, float]] = field(default_factory=dict)
    control: bool = False  # a control property of the suite's index (colour change), left out of overall


@dataclass(frozen=True)
class VideoScore:
    mean: float  # over all windows
    max: float  # over all windows
    event: float  # max over the windows that reach the divergence frame (all windows when there is none)


def read_index(suite: str | Path) -> dict:
    suite = Path(suite)
    if not suite.is_dir():
        what = "is a file" if suite.exists() else "does not exist"
        raise SurpriseError(f"{suite}: {what}; pass the suite folder written by `jepaworld physics generate`")
    path = suite / "index.json"
    if not path.exists():
        raise SurpriseError(f"{suite}: no index.json; pass a suite written by `jepaworld physics generate`")
    try:
        index = json.loads(path.read_text())
        test = [v for v in index["videos"] if v["split"] == "test"]
        fields = {k for v in test for k in ("file", "pair", "kind", "property") if k not in v}  # what `metrics` reads
        if missing := sorted(fields | ({"properties"} - set(index))):
            raise KeyError(", ".join(missing))
    except (OSError, ValueError, KeyError, TypeError) as e:
        why = f"no {e.args[0]}" if isinstance(e, KeyError) else type(e).__name__
        raise SurpriseError(f"{path}: not a suite index ({why}); regenerate the suite with `jepaworld physics "
                            "generate`") from e  # fmt: skip
    if not test:
        raise SurpriseError(f"{suite}: the suite has no test pairs; generate it with --scenes > 0")
    kinds: dict[str, list[str]] = {}
    for v in test:
        kinds.setdefault(v["pair"], []).append(v["kind"])
    # Checked here, not after minutes of scoring: `metrics` needs each pair's two videos.
    if bad := next((p for p, k in kinds.items() if sorted(k) != ["impossible", "possible"]), None):
        raise SurpriseError(f"{path}: test pair '{bad}' has videos {sorted(kinds[bad])}, not one possible and one "
                            "impossible; regenerate the suite with `jepaworld physics generate`")  # fmt: skip
    return index


def surprise_results(
    scorers: dict[str, Scorer],
    suite: str | Path,
    index: dict,
    *,
    stride: int = 2,
    context_frames: int | None = None,
    top: float = 1.0,
) -> Iterator[tuple[dict, str, SurpriseResult]]:
    """(index entry, model name, SurpriseResult) for every test video of the suite and every model.

    Each video is decoded once per frame size, not once per model: with a baseline and random init that cut
    an evaluation of `data/physics-val` on the CPU from 49 s to 43 s, with the same scores. A note on how the
    videos were changed (resized to a checkpoint's resolution) is printed once, not once per video.
    """
    noted: set[str] = set()
    for v in index["videos"]:
        if v["split"] != "test":
            continue
        decoded: dict[int, np.ndarray] = {}  # img_size -> (T, S, S, 3) uint8
        for name, scorer in scorers.items():
            if scorer.img_size not in decoded:
                decoded[scorer.img_size], notes = load_video(Path(suite) / v["file"], scorer)
                for note in notes:
                    if note not in noted:
                        noted.add(note)
                        print(f"note: {suite}: {note.removeprefix('note: ')}", flush=True)
            yield v, name, score_frames(scorer, decoded[scorer.img_size], stride=stride,
                                        context_frames=context_frames, top=top, name=v["file"])  # fmt: skip


def score_suite(
    scorers: dict[str, Scorer],
    suite: str | Path,
    index: dict,
    *,
    stride: int = 2,
    context_frames: int | None = None,
    top: float = 1.0,
    progress: bool = False,
) -> dict[str, dict[str, VideoScore]]:
    """{model name: {file: VideoScore}} for every test video of the suite (`surprise_results`).

    `progress`: a line on stderr at every tenth of the videos, as scoring a large suite takes minutes on a CPU.
    """
    out: dict[str, dict[str, VideoScore]] = {name: {} for name in scorers}
    total, last = sum(v["split"] == "test" for v in index["videos"]), next(reversed(scorers), None)
    done, tenths, t0 = 0, 0, time.perf_counter()
    for v, name, r in surprise_results(scorers, suite, index, stride=stride, context_frames=context_frames, top=top):
        out[name][v["file"]] = VideoScore(mean=r.mean, max=r.max, event=event_max(r, v.get("t_div")))
        done += name == last  # every model has scored this video
        if progress and 10 * done // total > tenths:
            tenths = 10 * done // total
            print(f"  scored {done} / {total} test videos in {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)  # fmt: skip
    return out


def event_max(r: SurpriseResult, t_div: int | None) -> float:
    """Max over the windows whose span reaches frame `t_div` (all windows when it is None or none reaches it)."""
    span = (r.window - 1) * r.frame_step + 1
    reach = [w for s, w in zip(r.starts, r.window_scores, strict=True) if t_div is None or s + span - 1 >= t_div]
    return float(max(reach)) if reach else r.max


def pairwise_accuracy(pairs: list[tuple[float, float]]) -> float:
    """pairs of (possible, impossible) scores -> share with impossible > possible, ties counting half."""
    wins = [1.0 if imp > pos else 0.5 if imp == pos else 0.0 for pos, imp in pairs]
    return float(np.mean(wins))


def _relative(pos: list[VideoScore], imp: list[VideoScore], scenes: list[list[int]], field: str) -> float:
    """Share of scenes (each a list of pair indices) whose impossible scores sum higher than their possible ones."""
    return pairwise_accuracy([(sum(getattr(pos[i], field) for i in ix), sum(getattr(imp[i], field) for i in ix))
                              for ix in scenes])  # fmt: skip


def metrics(index: dict, scores: dict[str, VideoScore]) -> dict[str, PropertyScore]:
    """Per property, plus `overall` over the non-control properties."""
    by_pair: dict[str, dict[str, VideoScore]] = {}
    scene_of: dict[str, str] = {}
    prop_of: dict[str, str] = {}
    detail_of: dict[str, str | None] = {}
    for v in index["videos"]:
        if v["split"] == "test":
            by_pair.setdefault(v["pair"], {})[v["kind"]] = scores[v["file"]]
            scene_of[v["pair"]] = v.get("scene") or v["pair"]  # suites before quadruplets: one pair per scene
            prop_of[v["pair"]] = v["property"]
            detail_of[v["pair"]] = v.get("detail")
    controls = set(index.get("control_properties", CONTROL_PROPERTIES))
    groups: dict[str, list[str]] = {}
    for pair, prop in prop_of.items():
        groups.setdefault(prop, []).append(pair)
        if prop not in controls:
            groups.setdefault(OVERALL, []).append(pair)
    out = {}
    for prop in [p for p in index["properties"] if p in groups] + [OVERALL]:
        names = groups.get(prop, [])
        if not names:
            continue
        pos = [by_pair[p]["possible"] for p in names]
        imp = [by_pair[p]["impossible"] for p in names]
        scenes: dict[str, list[int]] = {}  # scene -> indices of its pairs in `names`
        for i, p in enumerate(names):
            scenes.setdefault(scene_of[p], []).append(i)
        scene_ix = list(scenes.values())
        out[prop] = PropertyScore(
            scenes=len(scenes),
            pairs=len(names),
            pairwise_max=pairwise_accuracy([(a.max, b.max) for a, b in zip(pos, imp, strict=True)]),
            pairwise_mean=pairwise_accuracy([(a.mean, b.mean) for a, b in zip(pos, imp, strict=True)]),
            pairwise_event=pairwise_accuracy([(a.event, b.event) for a, b in zip(pos, imp, strict=True)]),
            relative_max=_relative(pos, imp, scene_ix, "max"),
            relative_mean=_relative(pos, imp, scene_ix, "mean"),
            auroc=float(roc_auc_score([0] * len(pos) + [1] * len(imp), [s.max for s in pos + imp])),
            control=prop in controls,
        )
        if prop == OVERALL:
            continue
        by_detail: dict[str, list[int]] = {}
        for i, p in enumerate(names):
            if detail_of[p] is not None:
                by_detail.setdefault(detail_of[p], []).append(i)
        out[prop].variants = {
            d: {"pairs": len(ix), "pairwise_max": pairwise_accuracy([(pos[i].max, imp[i].max) for i in ix]),
                "pairwise_mean": pairwise_accuracy([(pos[i].mean, imp[i].mean) for i in ix])}
            for d, ix in by_detail.items()
        }  # fmt: skip
    return out


def evaluate(
    scorers: dict[str, Scorer],
    suite: str | Path,
    *,
    stride: int = 2,
    context_frames: int | None = None,
    top: float = 1.0,
    progress: bool = False,
) -> dict[str, dict[str, PropertyScore]]:
    """{model name: {property: PropertyScore}} on the test pairs of `suite`; `progress` as for `score_suite`."""
    index = read_index(suite)
    with cpu_threads(1):
        scores = score_suite(scorers, suite, index, stride=stride, context_frames=context_frames, top=top,
                             progress=progress)  # fmt: skip
    return {name: metrics(index, s) for name, s in scores.items()}


def format_table(results: dict[str, dict[str, PropertyScore]]) -> str:
    """A Markdown table: one row per model and metric, one column per property; controls after `overall`."""
    first = next(iter(results.values()))
    props = [p for p in first if p != OVERALL and not first[p].control]
    controls = [p for p in first if first[p].control]  # as the suite's index names them
    cols = [*props, OVERALL, *(f"{c} (control)" for c in controls)]
    keys = [*props, OVERALL, *controls]
    lines = [
        "| model | metric | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
        "| | scenes / pairs | " + " | ".join(f"{first[k].scenes} / {first[k].pairs}" for k in keys) + " |",
    ]
    for name, res in results.items():
        for label, attr in ROWS:
            cells = [f"{100 * getattr(res[k], attr):.0f}%" if attr != "auroc" else f"{res[k].auroc:.2f}" for k in keys]
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_variants(results: dict[str, dict[str, PropertyScore]]) -> str:
    """A Markdown table of pairwise accuracy per variant of each violation, mean / max score per model; empty
    when the suite's index records no variants."""
    names = list(results)
    first = results[names[0]]
    lines = [
        "| property | variant | pairs | " + " | ".join(f"{n}: mean / max" for n in names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for prop, score in first.items():
        for detail, v in score.variants.items():
            cells = [results[n][prop].variants[detail] for n in names]
            accs = [f"{100 * c['pairwise_mean']:.0f}% / {100 * c['pairwise_max']:.0f}%" for c in cells]
            lines.append(f"| {prop} | {detail} | {v['pairs']} | " + " | ".join(accs) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def to_json(results: dict[str, dict[str, PropertyScore]]) -> dict:
    return {name: {p: vars(s) for p, s in res.items()} for name, res in results.items()}


def demo_physics(out: Path, *, scenes: int = 3, seed: int = 1, size: int = 64) -> str:
    """The demo's physics section: a small test suite scored by the shipped V-JEPA and by random init.

    Writes the suite to `out / "physics-suite"` and returns the Markdown table. Suite seed 1 keeps its scenes
    apart from the default training suite (seed 0).
    """
    suite = Path(out) / "physics-suite"
    if not (suite / "index.json").exists():
        generate_suite(suite, n_train=0, n_scenes_per_property=scenes, seed=seed, size=size)
    vjepa = load_scorer(None)
    results = evaluate({"V-JEPA (shipped)": vjepa, "random init": random_scorer(vjepa)}, suite)
    return format_table(results)
