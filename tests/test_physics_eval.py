"""Violation-of-expectation metrics against hand-computed values (pairwise with ties half, after divergence,
AUROC), and each test video decoded once for all models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from jepaworld import physics_eval
from jepaworld.config import get_preset
from jepaworld.data.video import write_video
from jepaworld.methods import DataSpec, build_method
from jepaworld.physics_eval import OVERALL, VideoScore, event_max, format_variants, metrics
from jepaworld.surprise import SurpriseError, SurpriseResult, load_video, make_scorer, score_frames


def _index(pairs: dict[str, str], details: dict[str, str] | None = None) -> dict:
    videos = [
        {"file": f"{pair}_{kind}", "split": "test", "property": prop, "pair": pair, "kind": kind, "t_div": 10,
         "detail": (details or {}).get(pair)}
        for pair, prop in pairs.items()
        for kind in ("possible", "impossible")
    ]  # fmt: skip
    return {"properties": ["gravity", "color"], "control_properties": ["color"], "videos": videos}


def test_metrics_by_hand() -> None:
    index = _index({"g0": "gravity", "g1": "gravity", "c0": "color"}, {"g0": "float", "g1": "fall_upward"})
    scores = {
        # g0: the max is a tie (both peaks in the shared prefix), the mean and the event windows favour impossible
        "g0_possible": VideoScore(mean=0.1, max=0.5, event=0.2),
        "g0_impossible": VideoScore(mean=0.2, max=0.5, event=0.3),
        # g1: the possible twin is the more surprising one on every score
        "g1_possible": VideoScore(mean=0.3, max=0.6, event=0.6),
        "g1_impossible": VideoScore(mean=0.1, max=0.4, event=0.4),
        "c0_possible": VideoScore(mean=0.1, max=0.1, event=0.1),
        "c0_impossible": VideoScore(mean=0.2, max=0.2, event=0.2),
    }
    m = metrics(index, scores)
    assert list(m) == ["gravity", "color", OVERALL]
    g = m["gravity"]
    assert (g.scenes, g.pairs, g.pairwise_max, g.pairwise_mean, g.pairwise_event) == (2, 2, 0.25, 0.5, 0.5)
    assert (g.relative_max, g.relative_mean) == (g.pairwise_max, g.pairwise_mean)  # one pair per scene
    # AUROC of the max over the 4 gravity videos: impossible (0.5, 0.4) vs possible (0.5, 0.6) -> 0.5 / 4
    assert g.auroc == pytest.approx(0.125)
    assert g.variants == {"float": {"pairs": 1, "pairwise_max": 0.5, "pairwise_mean": 1.0},
                          "fall_upward": {"pairs": 1, "pairwise_max": 0.0, "pairwise_mean": 0.0}}  # fmt: skip
    assert m[OVERALL].variants == {} and m["color"].variants == {}  # overall pools variants; c0 has no detail
    assert vars(m[OVERALL]) == vars(g) | {"variants": {}}  # the colour control is left out of overall
    assert (m["color"].pairwise_max, m["color"].auroc) == (1.0, 1.0)
    table = format_variants({"a": m, "b": m}).splitlines()
    assert table[2:] == ["| gravity | float | 1 | 100% / 50% | 100% / 50% |",
                         "| gravity | fall_upward | 1 | 0% / 0% | 0% / 0% |"]  # fmt: skip
    assert format_variants({"a": metrics(_index({"g0": "gravity"}), scores)}) == ""  # no details, no table
    header, _, counts, pairwise = physics_eval.format_table({"a": m}).splitlines()[:4]
    assert header == "| model | metric | gravity | overall | color (control) |"
    assert counts == "| | scenes / pairs | 2 / 2 | 2 / 2 | 1 / 1 |"
    assert pairwise == "| a | pairwise (max) | 25% | 25% | 100% |"  # each cell under its own column
    # The controls are the suite's own: an index that names gravity as its control gets that column apart.
    other = metrics({**index, "control_properties": ["gravity"]}, scores)
    assert (other["gravity"].control, other["color"].control) == (True, False)
    assert physics_eval.format_table({"a": other}).splitlines()[0] == (
        "| model | metric | color | overall | gravity (control) |"
    )


def test_relative_accuracy_sums_over_a_quadruplet() -> None:
    # One permanence scene as a quadruplet: pair a (vanish) and pair b (appear). A content-driven score finds the
    # vanishing less surprising than the possible video and the appearing more: pairwise 1 of 2, and the scene
    # counts once, decided by the sums.
    videos = [
        {"file": f"q0{p}_{kind}", "split": "test", "property": "permanence", "scene": "q0", "pair": f"q0{p}",
         "kind": kind, "t_div": 10}
        for p in "ab" for kind in ("possible", "impossible")
    ]  # fmt: skip
    index = {"properties": ["permanence"], "control_properties": [], "videos": videos}

    def s(mean: float, mx: float) -> VideoScore:
        return VideoScore(mean=mean, max=mx, event=mx)

    scores = {"q0a_possible": s(0.5, 0.9), "q0a_impossible": s(0.3, 0.8),  # vanish: less content, lower
              "q0b_possible": s(0.3, 0.8), "q0b_impossible": s(0.6, 0.85)}  # fmt: skip
    p = metrics(index, scores)["permanence"]
    assert (p.scenes, p.pairs, p.pairwise_mean, p.pairwise_max) == (1, 2, 0.5, 0.5)
    assert p.relative_mean == 1.0  # 0.3 + 0.6 > 0.5 + 0.3
    assert p.relative_max == 0.0  # 0.8 + 0.85 < 0.9 + 0.8


def test_event_max_uses_windows_that_reach_the_divergence() -> None:
    # 8-frame windows at 0, 2, 4, 6: they end at frames 7, 9, 11, 13
    r = SurpriseResult(video="v", model="m", window=8, frame_step=1, context_frames=4, starts=[0, 2, 4, 6],
                       window_scores=np.array([9.0, 1.0, 2.0, 3.0]), frame_scores=np.zeros(14))  # fmt: skip
    assert event_max(r, 10) == 3.0  # windows 4 and 6 reach frame 10; the larger prefix peak is ignored
    assert event_max(r, 8) == 3.0
    assert event_max(r, None) == 9.0 == r.max
    assert event_max(r, 50) == 9.0  # no window reaches it: the plain max
    r.window_scores = np.array([9.0, 5.0, 2.0, 3.0])
    assert event_max(r, 9) == 5.0  # the window ending exactly at the divergence frame reaches it
    # Every other frame: 8 frames span 15, so windows at 0, 2, 4 end at frames 14, 16, 18.
    r = SurpriseResult(video="v", model="m", window=8, frame_step=2, context_frames=4, starts=[0, 2, 4],
                       window_scores=np.array([8.0, 7.0, 2.0]), frame_scores=np.zeros(19))  # fmt: skip
    assert event_max(r, 16) == 7.0


def test_read_index_refuses_a_pair_without_both_twins(tmp_path: Path) -> None:
    index = _index({"g0": "gravity", "g1": "gravity"})
    (tmp_path / "index.json").write_text(json.dumps(index))
    assert physics_eval.read_index(tmp_path) == index
    for broken, why in [
        ([v for v in index["videos"] if v["file"] != "g1_impossible"], "test pair 'g1' has videos ['possible']"),
        ([{k: x for k, x in v.items() if k != "kind"} for v in index["videos"]], "not a suite index (no kind)"),
    ]:
        (tmp_path / "index.json").write_text(json.dumps({**index, "videos": broken}))
        with pytest.raises(SurpriseError, match=re.escape(why)):
            physics_eval.read_index(tmp_path)


def test_score_suite_decodes_each_video_once_per_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    cfg = get_preset("vjepa-physics-micro")
    scorers = {
        name: make_scorer(build_method(cfg, DataSpec(channels=3, img_size=size, frames=8)), cfg,
                          DataSpec(channels=3, img_size=size, frames=8), name=name)
        for name, size in (("a", 16), ("b", 16), ("small", 8))
    }  # fmt: skip
    rng = np.random.default_rng(0)
    videos = []
    for i in range(2):
        write_video(tmp_path / f"v{i}.mp4", rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8))
        videos.append({"file": f"v{i}.mp4", "split": "test", "t_div": 6})
    videos.append({"file": "train.mp4", "split": "train"})  # never read
    index = {"videos": videos}

    calls = []

    def counting_load_video(path, scorer):
        calls.append((Path(path).name, scorer.img_size))
        return load_video(path, scorer)

    monkeypatch.setattr(physics_eval, "load_video", counting_load_video)
    scores = physics_eval.score_suite(scorers, tmp_path, index)
    assert sorted(calls) == [("v0.mp4", 8), ("v0.mp4", 16), ("v1.mp4", 8), ("v1.mp4", 16)]
    # Sharing the decoded frames changes no score: each model alone on its own decode gives the same.
    for name, scorer in scorers.items():
        for v in videos[:2]:
            r = score_frames(scorer, load_video(tmp_path / v["file"], scorer)[0])
            assert scores[name][v["file"]] == VideoScore(mean=r.mean, max=r.max, event=event_max(r, 6))
