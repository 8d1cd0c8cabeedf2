"""The equal-budget comparison behind `jepaworld demo` and the Fashion-MNIST benchmark, on digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import micro_config

import jepaworld.compare
from jepaworld.checkpoint import CheckpointError
from jepaworld.compare import calibrate_steps, compare, train_equal_budget


def test_calibrated_steps_scale_with_the_budget(tmp_path: Path) -> None:
    cfgs = {"I-JEPA": micro_config(tmp_path / "a"), "MAE": micro_config(tmp_path / "b", preset="mae-digits-micro")}
    short, long = calibrate_steps(cfgs, 2.0, rounds=1), calibrate_steps(cfgs, 20.0, rounds=1)
    assert set(short) == set(cfgs)
    assert all(long[k] > 3 * short[k] for k in cfgs), (short, long)


def test_calibration_times_longer_trials_for_longer_budgets(tmp_path: Path, monkeypatch) -> None:
    # Eight steps are too few to time a method; the timed trials grow with the budget up to a cap.
    trials: list[int] = []

    def fake_step_seconds(cfg, *, trial_steps: int) -> float:
        trials.append(trial_steps)
        return 0.2

    monkeypatch.setattr(jepaworld.compare, "step_seconds", fake_step_seconds)
    cfgs = {"I-JEPA": micro_config(tmp_path / "a"), "MAE": micro_config(tmp_path / "b", preset="mae-digits-micro")}
    assert calibrate_steps(cfgs, 60.0) == {"I-JEPA": 300, "MAE": 300}
    assert trials == [8, 8] + [8] * 6  # 1% of a minute is fewer than 8 steps: the floor; 3 rounds
    trials.clear()
    assert calibrate_steps(cfgs, 1500.0, rounds=2) == {"I-JEPA": 7500, "MAE": 7500}
    assert trials == [8, 8] + [64] * 4  # 1% of 25 min is 75 steps: the cap
    trials.clear()
    calibrate_steps(cfgs, 600.0, rounds=1)
    assert trials == [8, 8, 30, 30]


def test_calibration_plans_with_the_median_round(tmp_path: Path, monkeypatch) -> None:
    # A lucky fast round must not set the plan (it overshoots the budget), nor one slowed by a load spike.
    rounds = {"I-JEPA": iter([0.5, 0.2, 0.1, 0.3]), "MAE": iter([0.5, 0.1, 0.4, 0.25])}  # 8-step sizing, 3 rounds
    cfgs = {"I-JEPA": micro_config(tmp_path / "a"), "MAE": micro_config(tmp_path / "b", preset="mae-digits-micro")}
    by_cfg = {id(cfg): name for name, cfg in cfgs.items()}
    monkeypatch.setattr(jepaworld.compare, "step_seconds", lambda cfg, *, trial_steps: next(rounds[by_cfg[id(cfg)]]))
    assert calibrate_steps(cfgs, 60.0) == {"I-JEPA": 300, "MAE": 240}


def test_compare_writes_one_table_with_baselines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfgs = {"I-JEPA": micro_config(tmp_path / "a"), "MAE": micro_config(tmp_path / "b", preset="mae-digits-micro")}
    results = compare(cfgs, seconds=1.0, out=tmp_path / "cmp")
    said = capsys.readouterr().out  # the probing stage reports each feature set as it finishes
    assert "probing 4 feature sets" in said
    assert all(f"probed {n} in" in said for n in ("raw pixels", "random init", "I-JEPA", "MAE"))
    assert [r.name for r in results] == ["raw pixels", "random init", "I-JEPA", "MAE"]
    assert all(0.0 < r.linear <= 1.0 and 0.0 < r.knn <= 1.0 for r in results)
    rows = json.loads((tmp_path / "cmp" / "results-mean.json").read_text())
    assert [r["features"] for r in rows] == ["raw pixels", "random init", "I-JEPA", "MAE"]
    assert rows[2]["steps"] >= 10 and "rank" in rows[2]
    assert (tmp_path / "cmp" / "results-mean.png").stat().st_size > 0
    assert "| I-JEPA |" in (tmp_path / "cmp" / "results-mean.md").read_text()


def test_equal_budget_refuses_a_used_run_folder_before_calibrating(tmp_path: Path, monkeypatch) -> None:
    cfgs = {"I-JEPA": micro_config(tmp_path / "a"), "MAE": micro_config(tmp_path / "b", preset="mae-digits-micro")}
    (tmp_path / "cmp" / "MAE").mkdir(parents=True)
    (tmp_path / "cmp" / "MAE" / "config.json").write_text("{}")
    monkeypatch.setattr(jepaworld.compare, "calibrate_steps", lambda *a, **k: pytest.fail("calibrated first"))
    with pytest.raises(CheckpointError, match="MAE: already holds a run"):
        train_equal_budget(cfgs, seconds=1.0, out=tmp_path / "cmp")
    assert not (tmp_path / "cmp" / "I-JEPA").exists()
