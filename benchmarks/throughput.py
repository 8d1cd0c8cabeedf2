"""Training throughput of one I-JEPA (and MAE) step, fp32 vs bf16 autocast, in images per second.

The configuration is the one in ../shared/MEASUREMENTS.md: ViT-Ti (192 wide, depth 6, 3 heads), 32 px input,
patch 4 (64 tokens), predictor 96 wide and 4 deep, batch 64. A step is everything the trainer does: data loading,
augmentation, mask sampling, the target forward, the context forward and backward, AdamW and the EMA update.
It times the real trainer (`jepaworld.train.train`) on Fashion-MNIST, excluding the first steps as warm-up.

    python benchmarks/throughput.py [--steps 60] [--threads 2]
    python benchmarks/throughput.py --device cuda [--batch 256]     # GPU rows, in their own section
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _sections import update_section  # benchmarks/ is on sys.path when a script runs
from torch.utils.flop_counter import FlopCounterMode

from jepaworld.config import apply_overrides, get_preset
from jepaworld.data import build_dataset
from jepaworld.methods import build_method
from jepaworld.train import EpochSampler, spec_of, train


def measure(preset: str, *, bf16: bool, steps: int, warmup: int, threads: int, device: str, batch: int) -> float:
    """Images per second over the steps after `warmup`, from the trainer's own per-step timing."""
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        # An untimed first run takes the process's one-time costs (lazy CUDA/cuBLAS set-up, first kernels of a
        # dtype): counted in the short run only, they would shrink the difference and inflate the rate.
        for i, n in enumerate((warmup, warmup, steps)):
            cfg = apply_overrides(get_preset(preset), {
                "train.steps": str(n), "train.out": f"{tmp}/{i}", "train.bf16": str(bf16),
                "train.threads": str(threads), "train.device": device, "train.batch_size": str(batch),
                "train.progress": "false", "train.log_every": "1000000", "train.diag_every": "1000000",
                "train.ckpt_every": "1000000",
            })  # fmt: skip
            with contextlib.redirect_stdout(io.StringIO()):
                rates.append(train(cfg).seconds)
    # Difference of two runs cancels start-up and warm-up steps: (steps - warmup) steps in (t_steps - t_warmup).
    return (steps - warmup) * batch / (rates[2] - rates[1])


def step_gflops(preset: str, *, steps: int) -> float:
    """Mean matmul GFLOP of one training step (forward + backward), counted by torch's FlopCounterMode.

    Averaged over `steps` batches because the context length varies with the masks. Attention's score and value
    products inside SDPA are not counted (a few percent here), so the ceiling derived from this is an upper bound.
    """
    cfg = get_preset(preset)
    ds = build_dataset(cfg.data, "train")
    method = build_method(cfg, spec_of(ds))
    sampler = EpochSampler(n=len(ds), batch_size=cfg.train.batch_size, seed=0)
    total = 0.0
    for step in range(steps):
        batch = method.prepare(ds.load(sampler.indices(step)), torch.Generator().manual_seed(step))
        with FlopCounterMode(display=False) as counter:
            loss, _ = method(batch)
            loss.backward()
        total += counter.get_total_flops() / 1e9
    return total / steps


def matmul_gflops(*, repeats: int = 20) -> float:
    """Sustained fp32 GFLOP/s of this machine on the encoder's own linear shapes (4096 tokens x 192 <-> 768)."""
    rates = []
    for k, n in ((192, 576), (192, 768), (768, 192)):
        a, w = torch.randn(4096, k), torch.randn(n, k)
        for _ in range(3):
            F.linear(a, w)
        t = time.perf_counter()
        for _ in range(repeats):
            F.linear(a, w)
        rates.append(2 * 4096 * k * n * repeats / (time.perf_counter() - t) / 1e9)
    return max(rates)


def measure_cuda(args: argparse.Namespace) -> None:
    """GPU rows: the same trainer step on CUDA, fp32 vs bf16 autocast, into the `throughput-cuda-<batch>` section."""
    rows = []
    for preset in args.presets.split(","):
        for precision in args.precisions.split(","):
            rate = measure(preset, bf16=precision == "bf16", steps=args.steps, warmup=args.warmup,
                           threads=args.threads, device="cuda", batch=args.batch)  # fmt: skip
            rows.append({"preset": preset, "precision": precision, "batch": args.batch, "img_per_s": round(rate)})
            print(json.dumps(rows[-1]), flush=True)
    gpu = torch.cuda.get_device_name()
    cmd = (f"python benchmarks/throughput.py --device cuda --batch {args.batch} --steps {args.steps} "
           f"--warmup {args.warmup} --threads {args.threads}")  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": {"command": cmd, "gpu": gpu}, "rows": rows}, indent=2))
    table = "\n".join(f"| {r['preset']} | {r['precision']} | {r['batch']} | {r['img_per_s']} |" for r in rows)
    update_section(
        f"throughput-cuda-{args.batch}",
        f"""## Training throughput on a GPU (one full trainer step, batch {args.batch})

- command: `{cmd}`; {time.strftime("%Y-%m-%d")}; {gpu}, torch {torch.__version__}, {os.cpu_count()} CPU cores
- the CPU section's configuration and step (data loading and masks stay on the CPU, {args.threads} thread(s));
  mean over steps {args.warmup}..{args.steps}

| preset | precision | batch | img/s |
|---|---|---|---|
{table}
""",
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="", help="results JSON (default benchmarks/results/throughput[-cuda-BATCH].json)")
    p.add_argument("--presets", default="ijepa-fmnist,mae-fmnist")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--device", default="cpu", help="cpu | cuda (cuda rows go to their own section)")
    p.add_argument("--batch", type=int, default=64, help="images per step (the reference configuration uses 64)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    suffix = f"-cuda-{args.batch}" if args.device == "cuda" else ""
    args.out = args.out or f"benchmarks/results/throughput{suffix}.json"
    if args.device == "cuda":
        return measure_cuda(args)
    peak = matmul_gflops()
    print(f"matmul peak {peak:.0f} GFLOP/s on {args.threads} threads", flush=True)
    rows = []
    for preset in args.presets.split(","):
        gflop = step_gflops(preset, steps=20)  # the arithmetic is the same in either precision
        for bf16 in [p == "bf16" for p in args.precisions.split(",")]:
            rate = measure(preset, bf16=bf16, steps=args.steps, warmup=args.warmup, threads=args.threads,
                           device="cpu", batch=args.batch)  # fmt: skip
            batch = args.batch
            rows.append({
                "preset": preset, "precision": "bf16" if bf16 else "fp32", "img_per_s": round(rate, 1),
                "gflop_per_step": round(gflop, 1), "achieved_gflops": round(gflop * rate / batch),
                "ceiling_img_per_s": round(peak * batch / gflop),
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    meta = {
        "matmul_gflops": round(peak),
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads", "torch": torch.__version__, "steps": args.steps, "warmup": args.warmup,
        "command": f"python benchmarks/throughput.py --steps {args.steps} --warmup {args.warmup} --threads "
        f"{args.threads} --presets {args.presets} --precisions {args.precisions}",
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    table = ["| preset | precision | img/s | GFLOP / step | achieved GFLOP/s | fp32 matmul ceiling, img/s |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    table += [
        f"| {r['preset']} | {r['precision']} | {r['img_per_s']:.0f} | {r['gflop_per_step']} | {r['achieved_gflops']} | "
        f"{r['ceiling_img_per_s']} |"
        for r in rows
    ]
    update_section(
        "throughput",
        f"""## Training throughput (one full trainer step, batch 64)

- command: `{meta["command"]}`; {meta["date"]}; {meta["machine"]}; torch {meta["torch"]}; mean over steps
  {args.warmup}..{args.steps} (difference of a {args.steps}- and a {args.warmup}-step run)
- ViT-Ti (192 wide, depth 6, 3 heads), 32 px, patch 4 (64 tokens), predictor 96 x 4; a step is data, augmentation,
  masks, target forward, context forward + backward, AdamW and EMA
- reference (../shared/MEASUREMENTS.md, same machine kind): official I-JEPA model code 181 img/s fp32, 400 img/s
  bf16; goal >= 270 fp32, >= 600 bf16
- ceiling: the step's matmul FLOPs (torch's FlopCounterMode, forward + backward, mean over 20 mask draws;
  attention products not counted) run at this machine's measured fp32 matmul rate of {peak:.0f} GFLOP/s on the
  encoder's own shapes: an upper bound for any fp32 implementation that does this step's arithmetic here

{chr(10).join(table)}
""",
    )


if __name__ == "__main__":
    main()
