"""The video commands end to end on tiny presets: generate a suite, pretrain, surprise, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jepaworld.checkpoint import save_checkpoint
from jepaworld.cli import main
from jepaworld.config import get_preset
from jepaworld.data.video import write_video
from jepaworld.methods import DataSpec, build_method


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny suite and a V-JEPA and a VideoMAE trained on it for a few steps."""
    root = tmp_path_factory.mktemp("physics-cli")
    suite = root / "suite"
    args = ["physics", "generate", "--out", str(suite), "--n-train", "3", "--scenes", "1", "--size", "16"]
    assert main([*args, "--frames", "16", "--seed", "3"]) == 0
    overrides = ["--data.path", str(suite), "--train.out", str(root / "vjepa"), "--train.steps", "2"]
    assert main(["pretrain", "--preset", "vjepa-physics-micro", *overrides]) == 0
    # The pixel baseline's training goes through the same trainer (tests/test_vjepa.py); an untrained
    # checkpoint is enough to put it in the eval table here.
    cfg, spec = get_preset("videomae-physics-micro"), DataSpec(channels=3, img_size=16, frames=8)
    (root / "videomae").mkdir()
    save_checkpoint(root / "videomae" / "checkpoint.pt", cfg=cfg, spec=spec, method=build_method(cfg, spec))
    return root


def test_generate_writes_suite(workspace: Path) -> None:
    index = json.loads((workspace / "suite" / "index.json").read_text())
    assert sum(v["split"] == "train" for v in index["videos"]) == 3
    # 1 scene per property: a quadruplet for 4 of the 6 properties, a pair for the other 2
    assert sum(v["split"] == "test" for v in index["videos"]) == 4 * 4 + 2 * 2
    assert main(["physics", "generate", "--out", str(workspace / "suite")]) == 2  # refuses to overwrite


def test_surprise_json_and_plot(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = workspace / "suite" / "test" / "continuity_0a_impossible.mp4"
    out_json, out_png = workspace / "s.json", workspace / "s.png"
    code = main(["surprise", str(workspace / "vjepa"), str(video), "--json", str(out_json), "--plot", str(out_png)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "video surprise: mean" in printed and "<- max" in printed
    (result,) = json.loads(out_json.read_text())
    assert len(result["windows"]) == 5 and len(result["frames"]) == 16  # 16 frames, windows of 8, stride 2
    assert out_png.stat().st_size > 1000


def test_surprise_errors_are_one_line(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = write_video(workspace / "short.mp4", np.zeros((4, 16, 16, 3), dtype=np.uint8))
    assert main(["surprise", str(workspace / "vjepa"), str(short)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fewer than one window" in err
    assert main(["surprise", str(workspace / "vjepa"), str(workspace / "missing.mp4")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_surprise_with_a_missing_checkpoint_scores_nothing(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped or untrained checkpoint must not be read as a video while the shipped default scores the rest."""
    video = workspace / "suite" / "test" / "continuity_0a_impossible.mp4"
    assert main(["surprise", str(workspace / "runs-typo"), str(video)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"jepaworld surprise: error: {workspace / 'runs-typo'}: no such checkpoint or video; train one "
        "(`jepaworld pretrain --preset vjepa-physics`), or leave it out to use the shipped default"
    )
    assert "surprise" not in captured.out
    untrained = workspace / "untrained"  # a run folder that stopped before its first checkpoint
    untrained.mkdir()
    (untrained / "config.json").write_text("{}")
    assert main(["surprise", str(untrained), str(video)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checkpoint.pt: no such checkpoint" in err


def test_surprise_output_paths_and_flag_errors(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = workspace / "suite" / "test" / "continuity_0a_impossible.mp4"
    out_json, plot = workspace / "new" / "dir" / "s.json", workspace / "curve"
    assert main(["surprise", str(workspace / "vjepa"), str(video), "--json", str(out_json), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out_json}" in printed and len(json.loads(out_json.read_text())) == 1  # the folder is made
    assert f"wrote {plot}.png" in printed and plot.with_suffix(".png").exists()  # the file matplotlib wrote
    assert main(["surprise", str(workspace / "vjepa"), str(video), "--stride", "0"]) == 2
    assert capsys.readouterr().err.strip() == "jepaworld surprise: error: --stride 0: pass a number of frames >= 1"


def test_surprise_scores_the_good_videos_when_one_fails(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One bad video must not lose the others' scores: they are printed and written, and the exit status says
    that something failed."""
    good = workspace / "suite" / "test" / "continuity_0a_impossible.mp4"
    short = write_video(workspace / "short2.mp4", np.zeros((4, 16, 16, 3), dtype=np.uint8))
    out_json = workspace / "partial.json"
    args = ["surprise", str(workspace / "vjepa"), str(short), str(good), str(workspace / "missing.mp4")]
    assert main([*args, "--json", str(out_json)]) == 2
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and "short2.mp4" in errors[0] and "missing.mp4" in errors[1]
    assert all(e.startswith("jepaworld surprise: error: ") for e in errors)
    assert f"{good}  (" in captured.out and "video surprise: mean" in captured.out
    assert "scored 1 of 3 videos" in captured.out
    assert [r["video"] for r in json.loads(out_json.read_text())] == [str(good)]


def test_physics_eval_notes_a_resize_once(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = workspace / "suite-24px"  # the checkpoint takes 16 px frames
    assert main(["physics", "generate", "--out", str(suite), "--n-train", "0", "--scenes", "1", "--size", "24",
                 "--frames", "16"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["physics", "eval", str(workspace / "vjepa"), str(suite)]) == 0
    notes = [ln for ln in capsys.readouterr().out.splitlines() if "resized" in ln]
    # 20 test videos, two scorers (the checkpoint and random init), one note.
    assert notes == [f"note: {suite}: frames are 24x24, resized to the checkpoint's 16x16 (bilinear)"]


def test_physics_eval_with_baselines(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite, out_json = workspace / "suite", workspace / "eval.json"
    args = ["physics", "eval", str(workspace / "vjepa"), str(suite), "--baseline", str(workspace / "videomae")]
    assert main([*args, "--nothing-moves", "--json", str(out_json)]) == 0
    captured = capsys.readouterr()
    table = captured.out
    assert captured.err.splitlines()[-1].startswith("  scored 20 / 20 test videos in ")  # progress, off stdout
    rows = ("vjepa (checkpoint)", "random init", "videomae (pixel baseline)", "overall", "color (control)", "relative",
            "nothing moves (vjepa features)", "nothing moves (pixels)")  # fmt: skip
    for row in rows:
        assert row in table
    results = json.loads(out_json.read_text())
    overall = results["vjepa (checkpoint)"]["overall"]
    assert 0.0 <= overall["pairwise_max"] <= 1.0 and 0.0 <= overall["relative_mean"] <= 1.0
    assert (overall["scenes"], overall["pairs"]) == (5, 8)  # colour excluded: 3 quadruplets and 2 pairs
    gravity = results["vjepa (checkpoint)"]["gravity"]["variants"]  # the suite's one gravity pair, by its variant
    assert list(gravity) in (["float"], ["fall_upward"]) and "pairwise accuracy by variant" in table


def test_surprise_with_the_checkpoint_after_the_video_says_to_swap(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = workspace / "suite" / "test" / "continuity_0a_impossible.mp4"
    assert main(["surprise", str(video), str(workspace / "vjepa")]) == 2
    assert "a checkpoint among the videos; put it first: jepaworld surprise" in capsys.readouterr().err


def test_unwritable_outputs_are_refused_before_scoring(workspace: Path, tmp_path: Path, capsys) -> None:
    video = str(workspace / "suite" / "test" / "continuity_0a_impossible.mp4")
    (tmp_path / "a-file").write_text("")
    cases = [(["--json", str(tmp_path)], "is a folder; pass a file name"),
             (["--plot", str(tmp_path / "a-file" / "s.png")], "a-file is a file, not a folder"),
             (["--plot", str(tmp_path / "curve.v2")], "cannot write '.v2' figures; end the name with one of"),
             (["--plot", str(tmp_path / "s.txt")], "e.g. s.txt.png")]  # fmt: skip
    for extra, words in cases:
        assert main(["surprise", str(workspace / "vjepa"), video, *extra]) == 2
        captured = capsys.readouterr()
        assert words in captured.err and "video surprise" not in captured.out  # nothing was scored
    assert main(["probe", str(workspace / "vjepa"), "--out", str(tmp_path / "a-file")]) == 2
    assert f"--out {tmp_path / 'a-file'}: is a file; pass a folder" in capsys.readouterr().err


def test_image_probe_of_a_video_checkpoint_names_the_video_commands(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", str(workspace / "vjepa"), "--no-baselines"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "vjepa checkpoint has no image probe; score videos with" in err


def test_physics_eval_and_generate_errors_are_one_line(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = workspace / "broken-suite"
    broken.mkdir()
    checkpoint = str(workspace / "vjepa")
    cases = [  # (index.json to write into `broken`, arguments, what the one-line error says)
        (None, ["physics", "eval", checkpoint, str(workspace / "nowhere")], "nowhere: does not exist; pass the suite"),
        (None, ["physics", "eval", checkpoint, str(workspace / "suite" / "index.json")], "index.json: is a file"),
        (None, ["physics", "eval", checkpoint, str(broken)], "broken-suite: no index.json"),
        ('{"videos": [', ["physics", "eval", checkpoint, str(broken)], "not a suite index (JSONDecodeError)"),
        ('{"a": 1}', ["physics", "eval", checkpoint, str(broken)], "not a suite index (no videos)"),
        (None, ["physics", "generate", "--out", str(workspace / "neg"), "--n-train", "-1"], "--n-train -1: pass"),
        (None, ["physics", "generate", "--out", str(workspace / "neg"), "--noise", "-3"], "--noise -3: pass a pixel"),
        (
            None,
            ["physics", "generate", "--out", str(workspace / "neg"), "--noise", "8", "--noise-grain", "0"],
            "--noise-grain 0: pass a block side",
        ),
        (None, ["physics", "generate", "--out", str(workspace / "neg"), "--noise-per-twin"], "pass --noise SIGMA > 0"),
        (
            None,
            ["physics", "generate", "--out", str(workspace / "neg"), "--noise-grain", "4"],
            "pass --noise SIGMA > 0",
        ),
    ]
    for index_text, args, expected in cases:
        if index_text is not None:
            (broken / "index.json").write_text(index_text)
        assert main(args) == 2
        captured = capsys.readouterr()
        assert len(captured.err.strip().splitlines()) == 1 and expected in captured.err, (args, captured.err)
        assert "scoring" not in captured.out  # checked before any checkpoint is loaded
    assert not (workspace / "neg").exists()


def test_demo_physics_section(tmp_path: Path) -> None:
    from jepaworld.physics_eval import demo_physics

    table = demo_physics(tmp_path, scenes=1, size=32)  # the checkpoint's size: no resizing
    assert "V-JEPA (shipped)" in table and "random init" in table and "overall" in table
