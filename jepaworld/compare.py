"""Side-by-side comparison of methods at an equal wall-clock budget, probed on frozen features.

This is how jepaworld backs the claim that JEPA learns better features than pixel reconstruction at equal cost
(I-JEPA, Assran et al. 2023, section 5): each method trains for the same number of seconds on the same data, then
every encoder, raw pixels and a random-init encoder go through the same probes into one table.
`jepaworld demo` and `benchmarks/ijepa_vs_mae.py` both run it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import tempfile
from pathlib import Path

import torch

from jepaworld.checkpoint import load_method
from jepaworld.config import ExperimentConfig, ProbeConfig
from jepaworld.data import build_dataset
from jepaworld.methods import build_method
from jepaworld.probe import ProbeResult, evaluate, extract, format_table
from jepaworld.train import spec_of, train


def calibrate_steps(cfg: ExperimentConfig, seconds: float, *, trial_steps: int = 10) -> int:
    """Steps that fit in `seconds`, timed on a few real training steps of the trainer itself.

    Schedules (warm-up, cosine, EMA momentum) are laid out over a known number of steps, so a wall-clock budget
    is turned into steps first; the run still stops at the budget if the machine slows down.
    """
    with tempfile.TemporaryDirectory() as tmp:
        trial = dataclasses.replace(
            cfg.train, steps=trial_steps, out=tmp, progress=False, log_every=10**9, diag_every=10**9,
            ckpt_every=10**9, time_budget_s=0.0,
        )  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):
            result = train(dataclasses.replace(cfg, train=trial))
    return max(10, int(seconds * trial_steps / result.seconds))


def budgeted(cfg: ExperimentConfig, seconds: float, out: Path) -> ExperimentConfig:
    steps = calibrate_steps(cfg, seconds)
    train_cfg = dataclasses.replace(
        cfg.train, steps=steps, time_budget_s=seconds, out=str(out), ckpt_every=steps,
        warmup_steps=min(cfg.train.warmup_steps, steps // 10), diag_every=max(10, steps // 10),
        log_every=max(10, steps // 20),
    )  # fmt: skip
    return dataclasses.replace(cfg, train=train_cfg)


def probe_all(
    runs: dict[str, Path], cfg: ExperimentConfig, probe_cfg: ProbeConfig, *, baselines: bool = True
) -> list[ProbeResult]:
    """Probe each run's eval encoder, plus raw pixels and a random-init encoder of `cfg`'s architecture."""
    tr, te = (
        build_dataset(dataclasses.replace(cfg.data, train_subset=0), "train"),
        build_dataset(cfg.data, "test"),
    )
    results = []
    if baselines:
        results.append(evaluate("raw pixels", tr.images.flatten(1).float(), tr.labels,
                                te.images.flatten(1).float(), te.labels, probe_cfg))  # fmt: skip
        torch.manual_seed(cfg.train.seed)
        enc = build_method(cfg, spec_of(tr)).eval_encoder
        results.append(_probe_encoder("random init", enc, tr, te, probe_cfg))
    for name, run in runs.items():
        method, _, _, state = load_method(run)
        r = _probe_encoder(name, method.eval_encoder, tr, te, probe_cfg)
        r.extra = {"train_steps": state["step"], "train_seconds": round(state["elapsed"], 1)}
        results.append(r)
    return results


def _probe_encoder(name, encoder, tr, te, probe_cfg: ProbeConfig) -> ProbeResult:
    ftr = extract(encoder, tr.images, pool=probe_cfg.pool)
    fte = extract(encoder, te.images, pool=probe_cfg.pool)
    return evaluate(name, ftr, tr.labels, fte, te.labels, probe_cfg)


def compare(
    cfgs: dict[str, ExperimentConfig], *, seconds: float, out: Path, probe_cfg: ProbeConfig | None = None
) -> list[ProbeResult]:
    """Train each config for `seconds`, then probe all of them with the baselines; writes results + plots."""
    out.mkdir(parents=True, exist_ok=True)
    runs, histories = {}, {}
    for name, cfg in cfgs.items():
        run = out / name.replace(" ", "-").replace("/", "-")
        result = train(budgeted(cfg, seconds, run))
        runs[name], histories[name] = result.run_dir, result.run_dir / "metrics.jsonl"
    first = next(iter(cfgs.values()))
    probe_cfg = probe_cfg or first.probe
    results = probe_all(runs, first, probe_cfg)
    table = format_table(results, probe_cfg.shots)
    (out / "results.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps([r.row(probe_cfg.shots) for r in results], indent=2))
    plot(results, histories, out / "results.png", shots=probe_cfg.shots)
    return results


def plot(results: list[ProbeResult], histories: dict[str, Path], path: Path, *, shots: int) -> None:
    """Bar chart of probe accuracies and the training-loss curves (each normalised to its first value)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [r.name for r in results]
    width = 0.27
    for i, (label, vals) in enumerate(
        [("linear", [r.linear for r in results]), ("kNN", [r.knn for r in results]),
         (f"{shots}-shot", [r.low_shot[0] for r in results])]
    ):  # fmt: skip
        ax1.bar([j + (i - 1) * width for j in range(len(names))], [100 * v for v in vals], width, label=label)
    ax1.set_xticks(range(len(names)), names, rotation=15)
    ax1.set_ylabel("test accuracy (%)")
    ax1.set_ylim(0, 100)
    ax1.legend()
    ax1.set_title("frozen-feature probes")
    for name, f in histories.items():
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        rows = [r for r in rows if "loss" in r]
        if rows:
            ax2.plot([r["step"] for r in rows], [r["loss"] / rows[0]["loss"] for r in rows], label=name)
    ax2.set_xlabel("step")
    ax2.set_ylabel("training loss / first logged loss")
    ax2.set_title("pretraining at equal wall time")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
