"""The one generic trainer: it runs any `Method` (I-JEPA, MAE, V-JEPA, world models) on any dataset.

AdamW with linear warm-up then cosine learning rate, a cosine weight-decay schedule (as in I-JEPA), gradient
clipping, optional bf16 autocast, DDP under `torchrun` (gloo on CPU, NCCL on CUDA), atomic checkpoints with exact
resume, JSONL + TensorBoard metrics, a progress bar, and collapse diagnostics (RankMe and feature std).

Determinism: the data order depends on (seed, epoch) and all per-step randomness (augmentation, masks) on
(seed, step), drawn for the *global* batch before it is split across ranks. So a resumed run continues exactly,
and N ranks compute the same step as one process on the same global batch.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from jepaworld.checkpoint import (
    CHECKPOINT,
    KEPT,
    METRICS,
    CheckpointError,
    atomic_write_text,
    load_strict,
    mark_stopped,
    prepare_run_dir,
    read_checkpoint,
    save_checkpoint,
)  # fmt: skip
from jepaworld.config import ConfigError, DataConfig, ExperimentConfig, describe
from jepaworld.data import build_dataset
from jepaworld.data.images import RandomResizedCropFlip
from jepaworld.losses import collapse_report, is_collapsed
from jepaworld.methods import DataSpec, Method, build_method


class TrainingError(RuntimeError):
    """Training had to stop (for example a non-finite loss); the last good checkpoint is kept."""


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    seconds: float
    loss: float
    diagnostics: dict[str, float]


def cosine(step: int, total: int, start: float, end: float, warmup: int = 0) -> float:
    """Linear warm-up from 0 to `start` over `warmup` steps, then cosine from `start` to `end`."""
    if step < warmup:
        return start * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * min(t, 1.0)))


def param_groups(model: torch.nn.Module) -> list[dict]:
    """Biases, norms, tokens and other 1-D parameters get no weight decay."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or p.shape[:2] == (1, 1) else decay).append(p)
    return [{"params": decay, "wd_scale": 1.0}, {"params": no_decay, "wd_scale": 0.0}]


class EpochSampler:
    """Global batches of indices: a fresh permutation per epoch from (seed, epoch), last partial batch dropped."""

    def __init__(self, *, n: int, batch_size: int, seed: int) -> None:
        if n < batch_size:
            raise ConfigError(f"dataset has {n} items, fewer than one batch of {batch_size}; lower --train.batch_size")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]


def resolve_device(name: str) -> torch.device:
    """ "auto" -> CUDA when available, else CPU; "cuda" without a GPU is an error rather than a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}': no CUDA GPU is visible here; use cpu (or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}': use auto, cpu or cuda") from None


def setup_device(name: str) -> tuple[torch.device, int, int]:
    """(device, rank, world size); joins the process group when launched by torchrun."""
    resolved = resolve_device(name)  # a bad name or a missing GPU is a one-line error before anything starts
    use_cuda = resolved.type == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if use_cuda:
        # torchrun gives each process its GPU; a single process takes the one named ("cuda:1"), else the first.
        local = int(os.environ.get("LOCAL_RANK", resolved.index or 0))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return device, rank, world


def spec_of(ds) -> DataSpec:
    """The model-relevant facts of a dataset; pixel statistics where the dataset can give them."""
    mean, std = ds.pixel_stats() if hasattr(ds, "pixel_stats") else (0.0, 1.0)
    p_mean, p_std = ds.proprio_stats() if hasattr(ds, "proprio_stats") else ((), ())
    return DataSpec(
        channels=ds.channels, img_size=ds.img_size, frames=getattr(ds, "frames", 1),
        action_dim=getattr(ds, "action_dim", 0), pixel_mean=mean, pixel_std=std, proprio_mean=p_mean,
        proprio_std=p_std,
    )  # fmt: skip


def describe_data(cfg: DataConfig, ds, method: nn.Module, device: torch.device) -> str:
    """One line on what a run trains on and with, so that a wrong --data.path shows before the first step."""
    unit = {"video": "clips", "episodes": "windows"}.get(cfg.name, "images")
    frames = f" of {cfg.frames} frames" if cfg.name == "video" else ""
    where = f" from {cfg.path}" if cfg.path else ""
    params = sum(p.numel() for p in method.parameters() if p.requires_grad)
    return (f"data: {len(ds)} training {unit}{frames} ('{cfg.name}'{where}), {ds.img_size}x{ds.img_size} px; "
            f"{params / 1e6:.2f}M trainable parameters on {device}")  # fmt: skip


def train(cfg: ExperimentConfig, *, resume: bool = False) -> TrainResult:
    tc = cfg.train
    device, rank, world = setup_device(tc.device)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    if tc.batch_size % world:
        raise ConfigError(
            f"--train.batch_size {tc.batch_size} does not split over {world} ranks; use a multiple of {world}"
        )
    lead = rank == 0
    if lead:
        print(describe(cfg), flush=True)

    torch.manual_seed(tc.seed)  # identical initial weights on every rank
    ds = build_dataset(cfg.data, "train")
    sampler = EpochSampler(n=len(ds), batch_size=tc.batch_size, seed=tc.seed)
    spec = spec_of(ds)
    # A resumed run loads every weight from its own checkpoint, so it must not need model.encoder_init's, which
    # may have moved since.
    method: Method = build_method(cfg, spec, init_encoder=not resume).to(device)
    if lead:
        print(describe_data(cfg.data, ds, method, device), flush=True)
    # The fused kernel (CPU and CUDA) updates every parameter in one pass instead of a Python loop of ops.
    opt = torch.optim.AdamW(param_groups(method), lr=tc.lr, betas=(0.9, 0.95), fused=True)
    # Random-init features are already low-rank; collapse warnings compare against this starting point. Encoding
    # a first batch also proves that the model takes this data.
    initial = collapse_report(method.features(inputs(ds.load(sampler.indices(0))).to(device)))
    # Only once the data and the model are known to fit: a bad dataset must not leave a config-only run folder
    # that then refuses the corrected command as "already holds a run".
    out = prepare_run_dir(cfg, resume=resume) if lead else Path(tc.out)
    start, elapsed = 0, 0.0
    if resume:
        state = read_checkpoint(out / CHECKPOINT, fix=f"so the run cannot resume: delete {out} to start afresh or "
                                "choose another --train.out")  # fmt: skip
        load_strict(method, state["method"], path=state["path"])
        try:
            opt.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{state['path']}: optimiser state does not fit this model ({e})") from e
        start, elapsed = state["step"], state["elapsed"]
        initial = state.get("initial", initial)  # the start of the run, not this rebuild (older files lack it)
        torch.set_rng_state(state["rng"])
    model = DistributedDataParallel(method) if world > 1 else method
    augment = RandomResizedCropFlip(scale=(cfg.data.crop_scale_min, 1.0)) if cfg.data.augment else None

    def local(v: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global-batch tensor; proportional, since a method may draw several masks per
        sample (rows of one sample stay together, see `JEPA.prepare`)."""
        return v[rank * len(v) // world : (rank + 1) * len(v) // world]

    def snapshot(step: int) -> dict:
        # Cloned, because a periodic checkpoint is written only once the next step's loss proves these weights
        # finite: a blow-up then never leaves a checkpoint that itself gives a NaN loss.
        return {"method": copy.deepcopy(method.state_dict()), "optimizer": copy.deepcopy(opt.state_dict()),
                "step": step, "elapsed": elapsed, "rng": torch.get_rng_state(), "initial": initial}  # fmt: skip

    def write(snap: dict | None) -> None:
        if lead and snap is not None:
            # Kept copies let a learning curve be scored after the run, on the schedule of the run itself. The copy
            # goes first: a kill between the two writes then resumes before this step and writes it again.
            if tc.keep_every and snap["step"] % tc.keep_every == 0:
                save_checkpoint(out / KEPT.format(step=snap["step"]), cfg=cfg, spec=spec, **snap)
            save_checkpoint(out / CHECKPOINT, cfg=cfg, spec=spec, **snap)

    log = Logger(out, enabled=lead, total=tc.steps, start=start, progress=tc.progress)
    log.initial = initial
    loss_value, lr, diag, step, pending = float("nan"), tc.lr, {}, start, None
    t_last, n_last = time.perf_counter(), 0
    try:
        for step in range(start, tc.steps):
            t0 = time.perf_counter()
            lr = cosine(step, tc.steps, tc.lr, tc.min_lr, tc.warmup_steps)
            wd = cosine(step, tc.steps, tc.weight_decay, tc.weight_decay_end)
            for group in opt.param_groups:
                group["lr"], group["weight_decay"] = lr, wd * group["wd_scale"]
            g = torch.Generator().manual_seed(tc.seed * 1_000_003 + step)
            batch = {k: v.to(device, non_blocking=True) for k, v in ds.load(sampler.indices(step)).items()}
            if augment is not None and "x" in batch:
                batch["x"] = augment(batch["x"], g)
            batch = {k: local(v).to(device) for k, v in method.prepare(batch, g).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.bf16):
                loss, logs = model(batch)
            loss_value = all_mean(loss.detach().float(), world)
            if not math.isfinite(loss_value):
                ckpt = out / CHECKPOINT
                kept = f"the last good checkpoint {ckpt} is kept" if ckpt.exists() else "no checkpoint was written yet"
                raise TrainingError(
                    f"non-finite loss ({loss_value}) at step {step}; stopped, {kept}; lower --train.lr"
                    + (f" (gradients are already clipped to norm {tc.grad_clip})" if tc.grad_clip > 0
                       else " or set --train.grad_clip 1.0")
                )  # fmt: skip
            write(pending)
            pending = None
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip > 0:
                logs["grad_norm"] = torch.nn.utils.clip_grad_norm_(method.parameters(), tc.grad_clip).item()
            opt.step()
            method.after_step((step + 1) / tc.steps)
            elapsed += time.perf_counter() - t0
            n_last += tc.batch_size
            done = step + 1
            if done % tc.diag_every == 0 or done == tc.steps:
                diag = collapse_report(method.features(inputs(batch)))
                log.diagnostics(done, diag)
            if done % tc.log_every == 0 or done == tc.steps:
                rate = n_last / (time.perf_counter() - t_last)
                t_last, n_last = time.perf_counter(), 0
                log.metrics(done, {"loss": loss_value, "lr": lr, "wd": wd, "samples_per_s": rate, **logs})
            log.tick()
            if done % tc.ckpt_every == 0 or (tc.keep_every and done % tc.keep_every == 0):
                pending = snapshot(done)
            if tc.time_budget_s and broadcast_flag(elapsed >= tc.time_budget_s, world):
                break
    except BaseException as error:
        if lead and not (out / CHECKPOINT).exists():  # nothing to resume: let the next command start afresh
            mark_stopped(out, f"stopped at step {step} before the first checkpoint: {type(error).__name__} {error}")
        raise
    finally:
        log.close()
    step = step + 1 if tc.steps > start else start
    write(snapshot(step))
    if lead:
        loss_text = f"; final loss {loss_value:.4f}" if math.isfinite(loss_value) else ""
        print(f"trained {step} steps in {elapsed:.0f}s{loss_text}; checkpoint {out / CHECKPOINT}")
        if step < tc.steps:  # the budget, not the step count, ended it: the schedules were laid over tc.steps
            print(f"note: the time budget of {tc.time_budget_s:g}s ended the run at step {step} of {tc.steps}, "
                  f"{step / tc.steps:.0%} of the way through the learning-rate and EMA schedules (lr {lr:.2e}); "
                  f"--train.steps {step} lays them over the steps that fit")  # fmt: skip
    return TrainResult(run_dir=out, steps=step, seconds=elapsed, loss=loss_value, diagnostics=diag)


def inputs(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The observations of a batch: images/clips ("x") or world-model frames ("frames")."""
    return batch["x"] if "x" in batch else batch["frames"]


def all_mean(x: torch.Tensor, world: int) -> float:
    if world > 1:
        dist.all_reduce(x)
        x = x / world
    return x.item()


def broadcast_flag(flag: bool, world: int) -> bool:
    """Rank 0 decides (time budgets differ slightly across ranks) so every rank stops at the same step."""
    if world == 1:
        return flag
    t = torch.tensor([float(flag)])
    dist.broadcast(t, 0)
    return bool(t.item())


def metric_rows(path: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl. A run killed while writing a row leaves it cut short: that last line
    (a step after the run's last checkpoint) is dropped with a note; a bad line before it is an error."""
    lines = path.read_text().splitlines()
    rows = []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
            row["step"]
        except (ValueError, KeyError, TypeError, IndexError) as e:
            if i < len(lines) - 1:
                raise CheckpointError(f"{path}: line {i + 1} is not a metrics row ({type(e).__name__}); fix or "
                                      "delete that line, then resume") from e  # fmt: skip
            print(f"note: {path}: dropped its last line, cut short when the run stopped", flush=True)
            break
        rows.append(row)
    return rows


class Logger:
    """Metrics to JSONL and TensorBoard, a tqdm progress bar, and loud collapse warnings (rank 0 only)."""

    def __init__(self, out: Path, *, enabled: bool, total: int, start: int, progress: bool) -> None:
        self.enabled, self.bar, self.tb, self.initial = enabled, None, None, None
        if not enabled:
            return
        path = out / METRICS
        if path.exists():
            # A resumed run repeats the steps after its checkpoint: drop the rows they logged the first time.
            rows = [r for r in metric_rows(path) if r["step"] <= start]
            atomic_write_text("".join(json.dumps(r) + "\n" for r in rows), path)
        self.file = open(path, "a")  # noqa: SIM115 (kept open for the whole run)
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(out / "tb"))
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.metrics_raw(step, values)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{values['loss']:.4f}", samples_per_s=f"{values['samples_per_s']:.0f}")
        else:
            print(
                f"step {step:>6}  loss {values['loss']:.4f}  {values['samples_per_s']:.0f} samples/s",
                flush=True,
            )

    def diagnostics(self, step: int, diag: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.metrics_raw(step, diag)
        if is_collapsed(diag, reference=self.initial):
            msg = (
                f"WARNING: representation collapse at step {step}: effective rank {diag['diag/rank']:.2f}, "
                f"normalised std {diag['diag/std']:.3f}; use EMA, a regulariser or a lower learning rate"
            )
            (self.bar.write if self.bar is not None else print)(msg)

    def metrics_raw(self, step: int, values: dict[str, float]) -> None:
        """One JSONL row (flushed, so a crash keeps it) and the same scalars in TensorBoard."""
        self.file.write(json.dumps({"step": step, **values}) + "\n")
        self.file.flush()
        for k, v in values.items():
            self.tb.add_scalar(k, v, step)

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.enabled:
            if self.bar is not None:
                self.bar.close()
            self.file.close()
            self.tb.close()
