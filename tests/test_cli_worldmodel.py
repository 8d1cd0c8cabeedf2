"""End to end through the command line: collect -> pretrain (wm-tworooms-micro) -> plan eval on TwoRooms, in seconds.

The planner must beat random actions on the same seeded episodes and goals; bad inputs get one-line errors.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from jepaworld.checkpoint import save_checkpoint
from jepaworld.cli import main
from jepaworld.config import get_preset
from jepaworld.methods import DataSpec, build_method

EPISODES = 6


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("wm")
    data, run = root / "rooms.h5", root / "run"
    assert main(["collect", "tworooms", "--episodes", "150", "--steps", "40", "--out", str(data), "--seed", "0"]) == 0
    assert main(["pretrain", "--preset", "wm-tworooms-micro", "--data.path", str(data), "--train.out", str(run)]) == 0
    return root, data, run


def test_collect_train_plan_beats_random_actions(trained, capsys):
    root, _, run = trained
    out = root / "eval"
    argv = ["plan", "eval", str(run), "--env", "tworooms", "--planner", "cem", "--episodes", str(EPISODES),
            "--iters", "6", "--samples", "200", "--max-steps", "40", "--baseline", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| cem |" in printed and "| random |" in printed
    results = json.loads((out / "results.json").read_text())
    planned, random = results["summary"]["cem"], results["summary"]["random"]
    assert planned["episodes"] == random["episodes"] == EPISODES
    assert planned["failed_plans"] == 0
    # Training, data and episodes are seeded and single-threaded, so this comparison is deterministic.
    assert planned["mean_final_distance"] < random["mean_final_distance"], (planned, random)
    assert planned["plan_seconds_per_decision"] > 0
    assert len(list(out.glob("episode_*.png"))) == EPISODES
    assert (run / "state_probe.pt").exists()


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_inputs_get_one_line_errors(trained, tmp_path, capsys):
    _, data, run = trained
    assert "unknown env 'tworoom'" in _error(capsys, ["collect", "tworoom", "--out", str(tmp_path / "x.h5")])

    class NoPixels(gym.Env):
        metadata = {"render_modes": ["human"]}  # noqa: RUF012

    gym.register(id="NoPixels-v0", entry_point=NoPixels)
    try:
        err = _error(capsys, ["collect", "gym:NoPixels-v0", "--out", str(tmp_path / "y.h5")])
    finally:
        gym.registry.pop("NoPixels-v0")
    assert "does not support render_mode='rgb_array'" in err

    err = _error(capsys, ["pretrain", "--preset", "wm-tworooms-micro", "--data.path", str(data),
                          "--model.action_dim", "4", "--train.out", str(tmp_path / "r")])  # fmt: skip
    assert "--model.action_dim 10" in err

    goal = tmp_path / "goal.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(goal)
    err = _error(capsys, ["plan", "eval", str(run), "--episodes", "1", "--goal-image", str(goal)])
    assert "(32, 32, 3)" in err and "64×64×3" in err

    cfg = get_preset("ijepa-digits-micro")
    spec = DataSpec(channels=1, img_size=16)
    save_checkpoint(tmp_path / "checkpoint.pt", cfg=cfg, spec=spec, method=build_method(cfg, spec))
    err = _error(capsys, ["plan", "eval", str(tmp_path), "--env", "tworooms", "--episodes", "1"])
    assert "no action-conditioned predictor" in err

    assert "unknown env" in _error(capsys, ["plan", "eval", str(run), "--env", "nowhere", "--episodes", "1"])
    assert "--waypoints -3" in _error(capsys, ["plan", "eval", str(run), "--episodes", "1", "--waypoints", "-3"])


def test_proprioceptive_world_model_trains_and_plans(trained, tmp_path, capsys):
    """TwoRooms' proprioception is the agent's (x, y): a model that takes it trains and plans on either part.

    Its run saves planning settings ([plan]); `plan eval` uses them unless a flag says otherwise.
    """
    _, data, run = trained
    proprio_run = tmp_path / "proprio"
    assert main(["pretrain", "--preset", "wm-tworooms-micro", "--data.path", str(data), "--model.proprio_dim", "4",
                 "--train.steps", "100", "--plan.pixel_weight", "0", "--plan.waypoints", "300",
                 "--train.out", str(proprio_run)]) == 0  # fmt: skip
    common = ["plan", "eval", str(proprio_run), "--episodes", "2", "--iters", "2", "--samples", "50",
              "--max-steps", "20"]  # fmt: skip
    for flags, pixels, waypoints in (([], 0.0, 300), (["--pixel-weight", "1", "--waypoints", "0"], 1.0, 0)):
        out = tmp_path / f"eval{len(flags)}"
        assert main([*common, *flags, "--out", str(out)]) == 0
        assert f"goal-cost weights pixels {pixels:g} / proprioception 1" in capsys.readouterr().out
        results = json.loads((out / "results.json").read_text())
        assert results["summary"]["cem"]["failed_plans"] == 0
        assert results["meta"]["goal_weights"] == {"pixels": pixels, "proprio": 1.0}
        assert results["meta"]["waypoints"] == waypoints
    capsys.readouterr()
    err = _error(capsys, ["plan", "eval", str(run), "--episodes", "1", "--pixel-weight", "0"])
    assert "takes no proprioception" in err
