"""Checkpoints and run folders: atomic writes, strict loads, one-line errors.

A run folder holds `config.json` (the resolved config), `checkpoint.pt`, `metrics.jsonl` and `tb/`. A checkpoint
is written to a temporary file and renamed over the old one, so an interrupted write never leaves a half file,
and it is always loaded strictly: a checkpoint of another model or shape is an error, never a partial load.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from jepaworld.config import ConfigError, ExperimentConfig, from_dict, to_dict, to_json
from jepaworld.methods import DataSpec, Method, build_method

FORMAT = "jepaworld-checkpoint/1"
CHECKPOINT, CONFIG, METRICS = "checkpoint.pt", "config.json", "metrics.jsonl"
# States kept on the way by --train.keep_every, one file per step (`kept_checkpoints` lists them).
KEPT = "checkpoint-{step}.pt"
# What the trainer writes into a run folder that stopped (error, NaN, Ctrl-C) before its first checkpoint.
STOPPED = "stopped.txt"
# Keys that may differ when a run is resumed: they change how it runs, not what it computes (train.out: a run
# folder that was moved or copied resumes from its new place). The probe and plan sections only set the defaults of
# later commands.
RESUMABLE_KEYS = {"train.progress", "train.time_budget_s", "train.threads", "train.device", "train.out"}
RESUMABLE_SECTIONS = ("probe.", "plan.")
# What a run writes before its first checkpoint (TensorBoard events go under tb/).
RUN_FILES = {CONFIG, METRICS, STOPPED, "tb"}


class CheckpointError(ValueError):
    """A missing, corrupt or mismatched checkpoint or run folder; one line naming the file and the fix."""


def atomic_save(obj: Any, path: str | Path) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(text: str, path: str | Path) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(
    path: str | Path, *, cfg: ExperimentConfig, spec: DataSpec, method: Method | dict[str, Any], **extra: Any
) -> None:
    """Write `method` (a module or its state dict) with the config and data spec that rebuild it, plus `extra`."""
    state = method.state_dict() if isinstance(method, torch.nn.Module) else method
    payload = {"format": FORMAT, "config": to_dict(cfg), "spec": asdict(spec), "method": state}
    atomic_save({**payload, **extra}, path)


def read_checkpoint(path: str | Path, *, fix: str = "retrain or pass another file") -> dict[str, Any]:
    """A checkpoint's payload, with its `path`; `fix`: what the error for a corrupt file tells the user to do."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint; pass a run folder or its {CHECKPOINT}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as e:
        raise CheckpointError(f"{path}: cannot read it (permission denied); check the file's permissions") from e
    except Exception as e:  # torch raises many types for a corrupt file
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}); it is corrupt or not a "
                              f"torch file, {fix}") from e  # fmt: skip
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a jepaworld checkpoint (expected format {FORMAT})")
    state["path"] = str(path)
    return state


def kept_checkpoints(run: str | Path) -> dict[int, Path]:
    """{step: path} of a run folder's kept states (`KEPT`), in step order."""
    pattern = re.compile(re.escape(KEPT).replace(re.escape("{step}"), r"(\d+)"))
    found = {int(m.group(1)): p for p in Path(run).iterdir() if (m := pattern.fullmatch(p.name))}
    return dict(sorted(found.items()))


def load_strict(module: torch.nn.Module, state_dict: dict[str, Any], *, path: str | Path) -> None:
    """`load_state_dict` with every mismatch turned into one readable line."""
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()][1:4]
        raise CheckpointError(
            f"{path}: weights do not fit this model ({'; '.join(lines)[:300]}); "
            "use the config the checkpoint was trained with"
        ) from e


def load_method(path: str | Path) -> tuple[Method, ExperimentConfig, DataSpec, dict[str, Any]]:
    """Rebuild the method saved in a checkpoint from its own config and load its weights strictly."""
    state = read_checkpoint(path)
    try:
        cfg = from_dict(state["config"])
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{state['path']}: saved config is invalid ({e})") from e
    spec = DataSpec(**state["spec"])
    # Every weight comes from this checkpoint: the returned config still names the encoder's initial one.
    method = build_method(cfg, spec, init_encoder=False)
    load_strict(method, state["method"], path=state["path"])
    return method, cfg, spec, state


def config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [
        f"{sec}.{k}"
        for sec in sorted(set(a) | set(b))
        for k in sorted(set(a.get(sec, {})) | set(b.get(sec, {})))
        if a.get(sec, {}).get(k) != b.get(sec, {}).get(k)
    ]


def training_diff(saved: dict[str, Any], cfg: ExperimentConfig) -> list[str]:
    """Keys in which a run's saved config trains differently from `cfg` (where it runs, probe and plan aside)."""
    # Compare in JSON form: tuples in the live config are lists once saved.
    diff = config_diff(json.loads(json.dumps(saved)), json.loads(to_json(cfg)))
    return [k for k in diff if k not in RESUMABLE_KEYS and not k.startswith(RESUMABLE_SECTIONS)]


def mark_stopped(out: Path, why: str) -> None:
    """Record in `out` that its run stopped before writing a checkpoint, so that the next command may replace it."""
    atomic_write_text(f"{why}\n", out / STOPPED)


def unsaved_run_files(out: Path) -> list[Path] | None:
    """The files of a run that stopped before its first checkpoint (a non-finite loss, an error or Ctrl-C in its
    first steps; the trainer then writes `STOPPED`), or None when `out` holds a checkpoint, anything the trainer
    did not write, or a run that may still be going (no `STOPPED`: a live run's folder is never replaced)."""
    if not (out / CONFIG).is_file() or not (out / STOPPED).is_file():
        return None
    files = []
    for p in out.iterdir():
        # A checkpoint write cut short leaves only its temporary file (`atomic_save`): still no checkpoint.
        temp = p.name.startswith(f".{CHECKPOINT}.tmp-") or p.name.startswith(f".{CONFIG}.tmp-")
        if p.name == "tb":
            if not p.is_dir() or any(not e.name.startswith("events.out.tfevents.") for e in p.iterdir()):
                return None
        elif p.name not in RUN_FILES and not temp:
            return None
        files.append(p)
    return sorted(files)


def prepare_run_dir(cfg: ExperimentConfig, *, resume: bool) -> Path:
    """Create or validate the run folder; refuses to overwrite a run or to resume into something else.

    A folder that holds only what a run writes before its first checkpoint is started afresh (with a note),
    so that a run that failed early never blocks the corrected command.
    """
    out = Path(cfg.train.out)
    ckpt, conf = out / CHECKPOINT, out / CONFIG
    if resume:
        if ckpt.exists() and not conf.exists():
            raise CheckpointError(f"{out}: holds {CHECKPOINT} without its {CONFIG}, so its config cannot be checked; "
                                  f"restore {CONFIG} or choose another --train.out")  # fmt: skip
        if not ckpt.exists():
            why = "the run there stopped before its first checkpoint" if unsaved_run_files(out) else f"no {CHECKPOINT}"
            raise CheckpointError(f"{out}: nothing to resume ({why}); drop --resume to start afresh")
        try:
            saved = json.loads(conf.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{conf}: unreadable ({type(e).__name__}), so the run cannot be checked before "
                                  f"resuming; restore {CONFIG} or choose another --train.out") from e  # fmt: skip
        diff = training_diff(saved, cfg)
        if diff:
            raise CheckpointError(f"{out}: holds a run with another config (differs in {', '.join(diff)}); "
                                  "resume with the same preset and overrides, or use another --train.out")  # fmt: skip
        return out
    if out.exists() and any(out.iterdir()):
        stale = unsaved_run_files(out)
        if stale is None and ckpt.exists():
            raise CheckpointError(f"{out}: already holds a run; pass --resume to continue it or choose another "
                                  "--train.out")  # fmt: skip
        if stale is None:
            names = sorted(p.name for p in out.iterdir())
            listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise CheckpointError(f"{out}: already holds other files ({listed}); move them away or choose another "
                                  "--train.out")  # fmt: skip
        print(f"note: {out} holds a run that stopped before its first checkpoint ({', '.join(p.name for p in stale)}); "
              "starting afresh and replacing it", flush=True)  # fmt: skip
        for p in stale:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(to_json(cfg), conf)
    return out


def run_dir_of(path: str | Path) -> Path:
    """The run folder of a run folder or of its checkpoint file."""
    path = Path(path)
    return path if path.is_dir() else path.parent
