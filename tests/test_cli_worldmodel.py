"""End to end through the command line: collect -> pretrain (wm-tworooms-micro) -> plan eval on TwoRooms, in seconds.

The planner must beat random actions on the same seeded episodes and goals; bad inputs get one-line errors.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import gymnasium as gym
import h5py
import numpy as np
import pytest
from PIL import Image

from jepaworld.checkpoint import save_checkpoint
from jepaworld.cli import main
from jepaworld.cli_worldmodel import check_env
from jepaworld.config import ConfigError, get_preset
from jepaworld.data.episodes import partial_path
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
    assert "planning: cem" in printed and "goal-cost weights" not in printed  # this model takes no proprioception
    results = json.loads((out / "results.json").read_text())
    planned, random = results["summary"]["cem"], results["summary"]["random"]
    assert planned["episodes"] == random["episodes"] == EPISODES
    assert planned["failed_plans"] == 0
    # Training, data and episodes are seeded and single-threaded, so this comparison is deterministic.
    assert planned["mean_final_distance"] < random["mean_final_distance"], (planned, random)
    assert planned["plan_seconds_per_decision"] > 0
    assert len(list(out.glob("episode_*.png"))) == EPISODES
    gifs = sorted(out.glob("episode_*.gif"))
    assert len(gifs) == EPISODES and all(gif.stat().st_size < 300_000 for gif in gifs)
    with Image.open(gifs[0]) as gif:  # the executed frame beside the goal frame, one per executed step or fewer
        assert gif.size == (64 + 2 + 64, 64) and 1 < gif.n_frames <= results["episodes"][0]["steps"] + 1
    assert (run / "state_probe.pt").exists()


def test_action_guardrail_flag_reports_the_share_of_steps_above_the_limit(trained, capsys):
    root, _, run = trained
    out = root / "guarded"
    argv = ["plan", "eval", str(run), "--planner", "cem", "--episodes", "2", "--iters", "3", "--samples", "60",
            "--max-steps", "20", "--max-action", "0.5", "--baseline", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| max action norm | steps with action > 0.5 |" in printed
    results = json.loads((out / "results.json").read_text())
    planned, random = results["summary"]["cem"], results["summary"]["random"]
    assert results["meta"]["max_action"] == 0.5
    # Uniform random 2-D actions exceed a norm of 0.5 in ~80% of steps; the guarded planner far less often.
    assert random["share_over_action_limit"] > 0.6
    assert planned["share_over_action_limit"] < random["share_over_action_limit"] / 2, (planned, random)
    assert all(episode["over_action_limit"] <= episode["steps"] for episode in results["episodes"])


def test_flags_are_checked_before_any_folder_is_made_and_ignored_flags_are_noted(trained, tmp_path, capsys):
    _, _, run = trained
    quick = ["plan", "eval", str(run), "--episodes", "1", "--iters", "1", "--max-steps", "5"]
    for flag, value, words in (("--samples", "0", "--samples 0: give at least 1"),
                               ("--iters", "0", "--iters 0: give at least 1"),
                               ("--episodes", "0", "--episodes 0: plan at least 1"),
                               ("--max-action", "0", "--max-action 0: give a positive action norm"),
                               ("--keep-out-margin", "-1", "--keep-out-margin -1: give a buffer >= 0")):  # fmt: skip
        out = tmp_path / f"out{flag}"
        assert words in _error(capsys, [*quick, flag, value, "--out", str(out)])
        assert not out.exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "episode_002.png").write_bytes(b"an earlier evaluation's")
    assert "--out" in _error(capsys, [*quick, "--out", str(tmp_path / "used")])  # would mix two evaluations
    # 20 samples used to ask CEM for its fixed 30 elites; now they are a tenth of the samples.
    assert main([*quick, "--planner", "cem", "--samples", "20"]) == 0
    assert capsys.readouterr().err == ""

    goal = tmp_path / "goal.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(goal)
    assert main([*quick, "--planner", "gradient", "--samples", "20", "--z", "worst", "--baseline",
                 "--goal-image", str(goal)]) == 0  # fmt: skip
    captured = capsys.readouterr()
    notes = captured.err.strip().splitlines()
    assert len(notes) == 3 and all(line.startswith("jepaworld plan: note: ") for line in notes), notes
    assert "--samples is ignored" in notes[0] and "--z worst is ignored" in notes[1] and "--baseline" in notes[2]
    assert "| random |" not in captured.out


def test_plan_refuses_an_env_the_model_was_not_trained_in(trained, capsys, tmp_path):
    _, data, run = trained
    err = _error(capsys, ["plan", "eval", str(run), "--env", "pointmaze", "--episodes", "1"])
    assert "--env pointmaze: this world model was trained on tworooms episodes" in err and str(data) in err
    assert "unknown Gymnasium env gym:Nope-v0" in _error(capsys, ["plan", "eval", str(run), "--env", "gym:Nope-v0"])
    # --data only feeds the state probe: episodes of another env must not let that env through.
    other = tmp_path / "other.h5"
    shutil.copy(data, other)
    with h5py.File(other, "r+") as f:
        f.attrs["env"] = "pointmaze"
    err = _error(capsys, ["plan", "eval", str(run), "--data", str(other), "--env", "pointmaze", "--episodes", "1"])
    assert f"--data {other}: holds pointmaze episodes, but this world model was trained on tworooms" in err
    # The same env under another spelling is accepted: the registry key and its alias, a gym id with its module.
    assert check_env("tworooms", "two_rooms", data) == "tworooms"
    assert check_env("two_rooms", "two_rooms", data) == "two_rooms"
    assert check_env("gym:gymnasium.envs:Pendulum-v1", "gym:Pendulum-v1", data) == "gym:gymnasium.envs:Pendulum-v1"
    with pytest.raises(ConfigError, match="trained on gym:Pendulum-v1 episodes"):
        check_env("gym:MountainCarContinuous-v0", "gym:Pendulum-v1", data)


def test_collect_rerun_of_a_complete_file_says_so(trained, capsys):
    _, data, _ = trained
    assert main(["collect", "tworooms", "--episodes", "150", "--steps", "40", "--out", str(data), "--seed", "0"]) == 0
    expected = f"{data} already holds all 150 episodes × 40 steps of tworooms; nothing to do"
    assert capsys.readouterr().out.strip() == expected


def test_collect_flag_errors_name_the_flag(tmp_path, capsys):
    cases = [(["--episodes", "0"], "--episodes 0: pass a number >= 1"), (["--steps", "-2"], "--steps -2: pass a"),
             (["--out", str(tmp_path)], f"--out {tmp_path}: is a folder; pass the .h5 file")]  # fmt: skip
    for extra, expected in cases:
        argv = ["collect", "tworooms", "--episodes", "2", "--steps", "5", "--out", str(tmp_path / "x.h5"), *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_stops_collect_with_a_resumable_file_and_status_130(tmp_path):
    """A real SIGINT to the command: it stops between episodes, says how to resume, and the same command does."""
    out = tmp_path / "rooms.h5"
    argv = [sys.executable, "-m", "jepaworld.cli", "collect", "tworooms", "--episodes", "400", "--steps", "20",
            "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    # The .partial file appears once the handler is in place; TwoRooms then writes ~200 episodes a second.
    while not partial_path(out).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    with h5py.File(partial_path(out), "r") as f:
        done = int(f.attrs["complete"])
    assert done < 400 and not out.exists()
    assert err.splitlines()[-1].startswith(f"jepaworld collect: interrupted after {done} episodes (of 400, kept in ")
    assert err.splitlines()[-1].endswith("); re-run the same command to resume")
    resumed = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().endswith("(resumed an interrupted collection)")
    with h5py.File(out, "r") as f:
        assert int(f.attrs["complete"]) == 400


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
    err = _error(capsys, ["collect", "gym:Nope-v0", "--out", str(tmp_path / "z.h5")])
    assert "unknown Gymnasium env gym:Nope-v0" in err and not (tmp_path / "z.h5.partial").exists()

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

    err = _error(capsys, ["plan", "eval", str(run), "--env", "nowhere", "--episodes", "1"])
    assert "unknown env 'nowhere': known envs are pointmaze, pusht, reacher, tworooms" in err
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
