"""Shared fixtures: one CPU thread, tiny configs in a temporary run folder, and the `gpu` marker's autoskip."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jepaworld.config import ExperimentConfig, apply_overrides, get_preset

# The suite shares small machines; one intra-op thread keeps the tiny models fast and the numerics reproducible.
torch.set_num_threads(1)

# A job that a non-interactive shell starts in the background (`cmd &`, as a CI runner may) inherits SIGINT
# ignored, and Python then installs no Ctrl-C handler. The Ctrl-C tests need the terminal's default, here and in
# the commands they start (an ignored signal is inherited across exec; a handler is reset to the default).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA; no GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def micro_config(out: Path | str, preset: str = "ijepa-digits-micro", **overrides: object) -> ExperimentConfig:
    """The `ijepa-digits-micro` preset (or another) writing to `out`, single-threaded, quiet, plus overrides."""
    base = {"train.out": str(out), "train.threads": "1", "train.progress": "false", "train.device": "cpu"}
    base.update({k: str(v) for k, v in overrides.items()})
    return apply_overrides(get_preset(preset), base)


def torchrun_2(*args: str, timeout: float) -> None:
    """Run `torchrun --standalone --nproc_per_node 2 ARGS` (two gloo ranks, one thread each) and assert it succeeded.

    A subprocess with a timeout, not `mp.spawn`: a spawned pool inside pytest hung once in a full run. No retry:
    the aborts this once retried ("terminate called without an active exception", about 1 run in 8) came from a
    process group that outlived its script into interpreter exit, and the scripts now release it first.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ,
                          "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def read_metrics(run_dir: Path | str) -> list[dict]:
    """The rows of a run's metrics.jsonl."""
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def rows_with(run_dir: Path | str, key: str = "loss") -> list[dict]:
    """The rows of metrics.jsonl that hold `key`: "loss" for training rows, "diag/rank" for diagnostics."""
    return [r for r in read_metrics(run_dir) if key in r]


@pytest.fixture(scope="session")
def make_cfg():
    """Factory: `make_cfg(out, preset=..., **{"train.steps": 10})` -> a quiet single-threaded CPU config."""
    return micro_config


@pytest.fixture(scope="session")
def metrics():
    """Reader: `metrics(run_dir, key="loss")` -> the rows of the run's metrics.jsonl that have `key`."""
    return rows_with


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A not-yet-existing run folder under tmp_path."""
    return tmp_path / "run"


@pytest.fixture
def micro_cfg(run_dir: Path) -> ExperimentConfig:
    """`ijepa-digits-micro` writing to the temporary run folder (30 steps, batch 32)."""
    return micro_config(run_dir)
