"""The command line end to end: real subprocesses for `pretrain` and a usage error, `main()` in-process for the rest.

Each subprocess pays a fresh torch import (seconds on a shared machine), so only the paths that need a real
process (exit status, stderr without a traceback, the installed entry module) use one.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jepaworld.checkpoint import CHECKPOINT, CONFIG, read_checkpoint
from jepaworld.cli import main
from jepaworld.config import PRESETS, all_keys, apply_overrides, from_dict, get_preset


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    # One OpenMP thread: on a busy machine the probes' many tiny L-BFGS steps spend most time waiting for threads.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "jepaworld.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


PRETRAIN = ["--preset", "ijepa-digits-micro", "--train.steps", "10", "--train.threads", "1"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("cli") / "run"
    return out, cli("pretrain", *PRETRAIN, "--train.out", str(out))


def test_pretrain_subprocess(pretrained) -> None:
    out, proc = pretrained
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[train]" in proc.stdout and "trained 10 steps" in proc.stdout
    # What the run trains on is named before training: scikit-learn's digits, 80% of 1797 for training.
    assert re.search(r"^data: 1437 training images \('digits'\), 16x16 px; [0-9.]+M trainable", proc.stdout, re.M)
    assert (out / CHECKPOINT).is_file() and (out / "metrics.jsonl").is_file()
    # config.json beside the checkpoint is the resolved config: preset + overrides.
    resolved = apply_overrides(
        get_preset("ijepa-digits-micro"), {"train.steps": "10", "train.threads": "1", "train.out": str(out)}
    )
    assert from_dict(json.loads((out / CONFIG).read_text())) == resolved
    assert from_dict(read_checkpoint(out)["config"]) == resolved


PROBE_ARGS = ["--probe.max_iter", "50", "--probe.shot_seeds", "1"]


def test_probe_prints_table_with_baselines(pretrained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = pretrained
    assert main(["probe", str(out), *PROBE_ARGS, "--out", str(tmp_path / "p")]) == 0
    stdout = capsys.readouterr().out
    lines = [ln for ln in stdout.splitlines() if ln.startswith("|")]
    assert lines[0].startswith("| features | dim | linear | kNN (k=20) | 10-shot |")
    names = [ln.split("|")[1].strip() for ln in lines[2:]]
    assert names == ["raw pixels", "random init", "checkpoint"]
    dims = [int(ln.split("|")[2]) for ln in lines[2:]]
    assert dims == [256, 32, 32]
    for ln in lines[2:]:
        for cell in ln.split("|")[3:5]:
            assert 0.0 <= float(cell.strip().rstrip("%")) <= 100.0
    rows = json.loads((tmp_path / "p" / "probe.json").read_text())
    assert [r["features"] for r in rows] == names
    assert 10 in rows[2].values()  # the checkpoint's training steps are reported beside its accuracies
    assert (tmp_path / "p" / "probe.md").read_text().strip() == "\n".join(lines)


def test_probe_of_a_run_does_not_crash(pretrained, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = pretrained
    assert main(["probe", str(out), *PROBE_ARGS, "--no-baselines"]) == 0
    assert "| checkpoint | 32 |" in capsys.readouterr().out


def test_unknown_key_subprocess_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = cli("pretrain", "--preset", "ijepa-digits-micro", "--train.stpes", "3", "--train.out", str(tmp_path / "r"))
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("jepaworld pretrain: error: unknown config key '--train.stpes'")
    assert "Did you mean --train.steps" in err
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------------------------------------
# in-process: main() returns the exit status


def test_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    listed = [ln.split()[0] for ln in out.splitlines() if ln.strip() and not ln.startswith(" ")]
    assert listed == list(PRESETS)
    assert max(map(len, out.splitlines())) <= 120  # long summaries wrap under their column
    assert "--train.lr" not in out
    # One whole sentence per preset, even where the docstring wraps it over two lines.
    summary = next(ln for ln in out.splitlines() if ln.startswith("wm-tworooms "))
    assert summary.endswith("micro ViT, patch 16, frameskip 5."), summary
    assert main(["presets", "--bogus"]) == 2 and "unexpected arguments --bogus" in capsys.readouterr().err


def test_probe_with_overrides_before_the_checkpoint_says_to_swap_them(
    pretrained, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = pretrained
    assert main(["probe", "--probe.max_iter", "5", str(out)]) == 2
    assert f"put the checkpoint first: jepaworld probe {out}" in capsys.readouterr().err


def test_demo_refuses_impossible_budgets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for flag, value in (("--minutes", "-1"), ("--max-train", "-3")):
        assert main(["demo", flag, value, "--out", str(tmp_path / "demo")]) == 2
        assert f"{flag} {value}: pass a positive" in capsys.readouterr().err
    # Fewer labels than kNN neighbours: refused before the minutes of pretraining, not after them.
    assert main(["demo", "--max-train", "15", "--out", str(tmp_path / "demo")]) == 2
    assert "--probe.knn_k 20 is more neighbours than the 15 labelled" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_presets_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "--keys"]) == 0
    out = capsys.readouterr().out
    for key, _f in all_keys(get_preset("ijepa-fmnist")).items():
        assert f"--{key} " in out
    lr_line = next(ln for ln in out.splitlines() if ln.startswith("--train.lr "))
    assert "0.0003" in lr_line and "peak learning rate" in lr_line
    # Values as they are typed: false, not False; 0.15,0.2, not a Python tuple.
    assert max(map(len, out.splitlines())) <= 120  # long help texts wrap under their column
    assert re.search(r"^--data\.resize +false ", out, re.M)
    assert re.search(r"^--mask\.target_scale +0\.15,0\.2 ", out, re.M)


def test_unknown_preset_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pretrain", "--preset", "ijepa-digits-mikro"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'ijepa-digits-mikro'" in err and "ijepa-digits-micro" in err


def test_bad_value_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pretrain", "--preset", "ijepa-digits-micro", "--train.steps", "many"]) == 2
    assert "bad value 'many' for train.steps" in capsys.readouterr().err


def test_probe_missing_checkpoint_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jepaworld probe: error: ") and "no such checkpoint" in err and "\n" not in err


def test_probe_rejects_training_overrides(pretrained, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = pretrained
    assert main(["probe", str(out), "--train.lr", "1"]) == 2
    assert "probe takes only --probe.* and --data.* overrides" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where no GPU is visible")
def test_cuda_without_a_gpu_is_a_one_line_error(pretrained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = pretrained
    assert main(["probe", str(out), "--probe.device", "cuda", "--no-baselines"]) == 2
    assert "device 'cuda': no CUDA GPU is visible here" in capsys.readouterr().err
    assert main(["pretrain", *PRETRAIN, "--train.out", str(tmp_path / "r"), "--train.device", "cuda"]) == 2
    assert "device 'cuda': no CUDA GPU is visible here" in capsys.readouterr().err
    assert main(["pretrain", *PRETRAIN, "--train.out", str(tmp_path / "s"), "--train.device", "tpu"]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err


def test_run_that_failed_before_a_checkpoint_is_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A NaN in the first steps leaves config.json; the corrected command must run, not loop between
    "nothing to resume" and "pass --resume"."""
    args = ["pretrain", *PRETRAIN, "--train.out", str(tmp_path / "r")]
    assert main([*args, "--train.lr", "1e30", "--train.warmup_steps", "0"]) == 1
    assert (tmp_path / "r" / CONFIG).exists() and not (tmp_path / "r" / CHECKPOINT).exists()
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    assert "nothing to resume (the run there stopped before its first checkpoint)" in capsys.readouterr().err
    assert main(args) == 0
    assert "starting afresh and replacing it" in capsys.readouterr().out
    assert read_checkpoint(tmp_path / "r")["step"] == 10


def test_resume_empty_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    args = ["pretrain", *PRETRAIN, "--train.out", str(tmp_path / "empty"), "--resume"]
    assert main(args) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_output_path_under_a_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "run"
    assert main(["pretrain", *PRETRAIN, "--train.out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"jepaworld pretrain: error: --train.out {out}: {out.parent} is a file, not a folder; pass another path"
    )  # checked before the data loads


def test_an_os_error_on_a_path_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path no command checks up front still ends in one line naming it, not a traceback."""
    (tmp_path / "a-file").write_text("")
    assert main(["physics", "generate", "--out", str(tmp_path / "a-file" / "suite"), "--scenes", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(f"{tmp_path / 'a-file'}; check that path"), err


def test_any_other_os_error_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from jepaworld import physics

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "suite"))

    monkeypatch.setattr(physics, "generate_suite", full_disk)
    assert main(["physics", "generate", "--out", str(tmp_path / "suite"), "--scenes", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"jepaworld physics: error: No space left on device: {tmp_path / 'suite'}", err


def test_pretrain_into_existing_run_exits_2(pretrained, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = pretrained
    assert main(["pretrain", *PRETRAIN, "--train.out", str(out)]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err


def test_non_finite_loss_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["pretrain", *PRETRAIN, "--train.out", str(tmp_path / "r"), "--train.lr", "1e30"]
    assert main([*args, "--train.warmup_steps", "0"]) == 1
    assert "non-finite loss" in capsys.readouterr().err


def test_finished_run_resumes_as_a_no_op(pretrained, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = pretrained
    before = read_checkpoint(out)["method"]
    rows = (out / "metrics.jsonl").read_text()
    assert main(["pretrain", *PRETRAIN, "--train.out", str(out), "--resume"]) == 0, capsys.readouterr().err
    after = read_checkpoint(out)["method"]
    assert all((before[k] == after[k]).all() for k in before)
    assert (out / "metrics.jsonl").read_text() == rows


# ----------------------------------------------------------------------------------------------------------
# probe: checkpoint first, labels, protocol


def _saved(path: Path, cfg, *, weights_of=None) -> Path:
    """A checkpoint of `cfg` (untrained) at `path`/checkpoint.pt, holding the weights of `weights_of` if given."""
    from jepaworld.checkpoint import save_checkpoint
    from jepaworld.methods import DataSpec, build_method

    spec = DataSpec(channels=cfg.data.channels, img_size=cfg.data.img_size)
    path.mkdir(parents=True)
    save_checkpoint(path / CHECKPOINT, cfg=cfg, spec=spec, method=build_method(weights_of or cfg, spec))
    return path


def test_probe_rejects_a_mismatched_checkpoint_before_the_baselines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = get_preset("ijepa-digits-micro")
    run = _saved(tmp_path / "run", cfg, weights_of=apply_overrides(cfg, {"model.depth": "3"}))
    assert main(["probe", str(run)]) == 2
    captured = capsys.readouterr()
    assert "weights do not fit this model" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "probing" not in captured.out and "raw pixels" not in captured.out  # failed before any probe ran


def test_probe_of_npz_without_labels_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    data = tmp_path / "unlabelled.npz"
    np.savez(data, x=np.zeros((20, 16, 16), dtype=np.uint8))
    cfg = apply_overrides(get_preset("ijepa-digits-micro"), {"data.name": "npz", "data.path": str(data)})
    assert main(["probe", str(_saved(tmp_path / "run", cfg))]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"jepaworld probe: error: {data}: has no labels (y missing); the probes need one label per "
                   "image: save the .npz with y (or y_train and y_test)")  # fmt: skip


def test_probe_rejects_an_image_size_the_encoder_does_not_take(pretrained, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = pretrained
    assert main(["probe", str(out), "--data.img_size", "8"]) == 2
    assert "--data.img_size 8: the checkpoint's encoder takes 16 px images" in capsys.readouterr().err


def test_probe_defaults_and_help_name_the_full_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    from jepaworld.config import ProbeConfig

    assert (ProbeConfig().max_train, ProbeConfig().max_iter) == (20000, 300)
    with pytest.raises(SystemExit):
        main(["probe", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--probe.max_train 0 --probe.max_iter 1000 runs the full protocol" in text


# ----------------------------------------------------------------------------------------------------------
# one-line errors before a run folder exists; the demo's banner


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("method.loss", "foo", "bad value 'foo' for method.loss: choose one of l1, smooth_l1, l2"),
        ("model.size", "huge", "bad value 'huge' for model.size: choose one of micro, tiny, small, base"),
        ("model.patch_size", "5", "--model.patch_size 5 does not divide --data.img_size 16"),
        ("probe.pool", "foo", "bad value 'foo' for probe.pool: choose one of mean, mean_last4, grid2, grid2_last4"),
    ],
)
def test_bad_enumerated_value_exits_2_before_the_run_folder(
    key: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pretrain", *PRETRAIN, "--train.out", str(tmp_path / "r"), f"--{key}", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"jepaworld pretrain: error: {message}") and "\n" not in err
    assert not (tmp_path / "r").exists()


def test_demo_banner_names_the_dataset(tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    import jepaworld.compare
    from jepaworld.config import ConfigError

    def stop(*args, **kwargs):  # the banner is all this test needs: no training
        raise ConfigError("stopped after the banner")

    monkeypatch.setattr(jepaworld.compare, "compare", stop)
    assert main(["demo", "--out", str(tmp_path / "d"), "--data.name", "digits", "--data.img_size", "16"]) == 2
    out = capsys.readouterr().out
    assert "pretrain on scikit-learn's digits for 2 min" in out and "Fashion-MNIST" not in out
    assert main(["demo", "--out", str(tmp_path / "e")]) == 2
    assert "pretrain on Fashion-MNIST for 2 min" in capsys.readouterr().out
