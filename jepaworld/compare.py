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
import statistics
import tempfile
import time
from pathlib import Path

import torch

from jepaworld.checkpoint import CheckpointError, load_method, run_dir_of
from jepaworld.config import ExperimentConfig, ProbeConfig
from jepaworld.data import build_dataset
from jepaworld.methods import build_method
from jepaworld.probe import ProbeResult, check_labels, evaluate, extract_pools, format_table
from jepaworld.train import resolve_device, spec_of, train


def step_seconds(cfg: ExperimentConfig, *, trial_steps: int = 8) -> float:
    """Seconds per training step of `cfg`, timed on the trainer itself (its clock excludes start-up)."""
    with tempfile.TemporaryDirectory() as tmp:
        trial = dataclasses.replace(
            cfg.train, steps=trial_steps, out=tmp, progress=False, log_every=10**9, diag_every=10**9,
            ckpt_every=10**9, time_budget_s=0.0,
        )  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):
            return train(dataclasses.replace(cfg, train=trial)).seconds / trial_steps


def calibrate_steps(
    cfgs: dict[str, ExperimentConfig], seconds: float, *, rounds: int = 3, max_trial_steps: int = 64
) -> dict[str, int]:
    """Steps per method so that each trains for `seconds` of wall time at its measured step time.

    Methods are timed round-robin, so a load spike from another process on a shared machine lands in one round of
    one method, and each method plans with the median of its rounds, which ignores that round. The median, not the
    fastest round: identical trials on a 2-core machine vary by up to 10%, and planning with the fastest of two
    trained `videomae-physics` 15% over a 40-minute budget. The median removes that bias, not the noise: with it the
    25-minute physics benchmark still trained V-JEPA 9% over and VideoMAE 7% under (BENCHMARKS.md).

    A first 8-step trial only sizes the timed ones: up to `max_trial_steps` steps, about 1% of the budget each.
    Eight steps are too few to time: two identical 8-step trials of `vjepa-physics` gave 0.155 and 0.181 s a step,
    and the faster one planned a 50-minute run that trained at 0.179 s a step, 27% over its budget.
    """
    trial_steps = {
        name: max(8, min(max_trial_steps, int(0.01 * seconds / step_seconds(cfg, trial_steps=8))))
        for name, cfg in cfgs.items()
    }
    times: dict[str, list[float]] = {name: [] for name in cfgs}
    for _ in range(rounds):
        for name, cfg in cfgs.items():
            times[name].append(step_seconds(cfg, trial_steps=trial_steps[name]))
    return {name: max(10, int(seconds / statistics.median(t))) for name, t in times.items()}


def with_steps(cfg: ExperimentConfig, steps: int, out: Path) -> ExperimentConfig:
    """The config trained for exactly `steps` (schedules laid out over them) into `out`."""
    train_cfg = dataclasses.replace(
        cfg.train, steps=steps, time_budget_s=0.0, out=str(out), ckpt_every=steps,
        warmup_steps=min(cfg.train.warmup_steps, steps // 10), diag_every=max(10, steps // 10),
        log_every=max(10, steps // 20),
    )  # fmt: skip
    return dataclasses.replace(cfg, train=train_cfg)


def probe_all(
    runs: dict[str, Path],
    cfg: ExperimentConfig,
    probe_cfg: ProbeConfig,
    *,
    baselines: bool = True,
    pools: list[str] | None = None,
) -> dict[str, list[ProbeResult]]:
    """Probe each run's eval encoder, plus raw pixels and a random-init encoder of `cfg`'s architecture.

    Returns {pool: results} for each pooling in `pools` (default: `probe_cfg.pool`); each encoder runs once.
    """
    pools = pools or [probe_cfg.pool]
    tr = build_dataset(dataclasses.replace(cfg.data, train_subset=0), "train")
    if probe_cfg.max_train:
        tr = tr.subset(probe_cfg.max_train)  # only the labelled images a probe uses need encoding
    check_labels(probe_cfg, len(tr.labels))  # before any encoder runs
    te = build_dataset(cfg.data, "test")
    results: dict[str, list[ProbeResult]] = {p: [] for p in pools}
    # Probing takes minutes on 2 cores (the demo: about 4.5); say what is happening instead of going quiet.
    print(f"probing {len(runs) + 2 * baselines} feature sets on {len(tr.labels)} labelled / {len(te.labels)} test "
          f"images (linear, kNN, {probe_cfg.shots}-shot)", flush=True)  # fmt: skip

    device = resolve_device(probe_cfg.device)

    def add(name: str, encoder, extra: dict | None = None) -> None:
        t0 = time.perf_counter()
        encoder = encoder.to(device)
        ftr, fte = extract_pools(encoder, tr.images, pools), extract_pools(encoder, te.images, pools)
        for p in pools:
            r = evaluate(name, ftr[p], tr.labels, fte[p], te.labels, probe_cfg)
            r.extra = dict(extra or {})
            results[p].append(r)
        print(f"  probed {name} in {time.perf_counter() - t0:.0f} s", flush=True)

    if baselines:
        t0 = time.perf_counter()
        raw = evaluate("raw pixels", tr.images.flatten(1).float(), tr.labels, te.images.flatten(1).float(),
                       te.labels, probe_cfg)  # fmt: skip
        for p in pools:
            results[p].append(raw)
        print(f"  probed raw pixels in {time.perf_counter() - t0:.0f} s", flush=True)
        torch.manual_seed(cfg.train.seed)
        add("random init", build_method(cfg, spec_of(tr), init_encoder=False).eval_encoder)
    for name, run in runs.items():
        method, _, _, state = load_method(run)
        add(name, method.eval_encoder, {"steps": state["step"], "train_s": round(state["elapsed"]),
                                        **final_diagnostics(run)})  # fmt: skip
    return results


def final_diagnostics(run: Path) -> dict[str, float]:
    """The last collapse diagnostics a run logged (effective rank, normalised std), rounded."""
    metrics = run_dir_of(run) / "metrics.jsonl"
    if not metrics.exists():
        return {}
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    diag = [r for r in rows if "diag/rank" in r]
    return {"rank": round(diag[-1]["diag/rank"], 1), "std": round(diag[-1]["diag/std"], 3)} if diag else {}


def train_equal_budget(cfgs: dict[str, ExperimentConfig], *, seconds: float, out: Path) -> dict[str, Path]:
    """Train each config for the steps that fit in `seconds` (see `calibrate_steps`); returns the run folders."""
    dirs = {name: out / name.replace(" ", "-").replace("/", "-") for name in cfgs}
    # The trainer refuses to overwrite a run; say so now, not after minutes of calibration and earlier rows.
    taken = [str(d) for d in dirs.values() if d.exists() and any(d.iterdir())]
    if taken:
        raise CheckpointError(f"{taken[0]}: already holds a run; move it away or write the comparison elsewhere")
    out.mkdir(parents=True, exist_ok=True)
    steps = calibrate_steps(cfgs, seconds)
    print("equal wall-time budget: " + ", ".join(f"{n} {s} steps" for n, s in steps.items()), flush=True)
    return {name: train(with_steps(cfg, steps[name], dirs[name])).run_dir for name, cfg in cfgs.items()}


def report(
    runs: dict[str, Path], cfg: ExperimentConfig, probe_cfg: ProbeConfig, out: Path, *, pools: list[str] | None = None
) -> dict[str, list[ProbeResult]]:
    """Probe every run with the baselines; write results-<pool>.md / .json / .png into `out` for each pooling."""
    pools = pools or [probe_cfg.pool]
    by_pool = probe_all(runs, cfg, probe_cfg, pools=pools)
    histories = {n: run_dir_of(r) / "metrics.jsonl" for n, r in runs.items()}
    for pool, results in by_pool.items():
        table = format_table(results, shots=probe_cfg.shots, knn_k=probe_cfg.knn_k)
        (out / f"results-{pool}.md").write_text(table + "\n")
        (out / f"results-{pool}.json").write_text(json.dumps([r.row(probe_cfg.shots) for r in results], indent=2))
        plot(results, histories, out / f"results-{pool}.png", shots=probe_cfg.shots)
    return by_pool


def compare(
    cfgs: dict[str, ExperimentConfig], *, seconds: float, out: Path, probe_cfg: ProbeConfig | None = None
) -> list[ProbeResult]:
    """Train each config for `seconds`, then probe all of them with the baselines; writes results + plots."""
    runs = train_equal_budget(cfgs, seconds=seconds, out=out)
    first = next(iter(cfgs.values()))
    probe_cfg = probe_cfg or first.probe
    return report(runs, first, probe_cfg, out)[probe_cfg.pool]


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
