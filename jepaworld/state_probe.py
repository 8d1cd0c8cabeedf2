"""A small latent -> state readout for world models, trained on collected episodes; used by guardrails and plots.

A JEPA has no decoder, so to check a plan against a region of the *state* space (`planning.KeepOut`) or to draw
what the model imagines, a probe maps each predicted embedding (D,) to the environment's true state (S,). It is a
two-layer MLP on standardised inputs and targets, fitted after pretraining on frames of the training episodes
(the world model frozen), and saved beside the checkpoint as ``state_probe.pt`` with the checkpoint's step, so
that a retrained checkpoint never reuses a stale probe.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jepaworld.checkpoint import atomic_save
from jepaworld.data.episodes import open_episodes

PROBE_FILE = "state_probe.pt"


class StateProbe(nn.Module):
    """latents (…, D) -> states (…, S): MLP with fixed input/output standardisation."""

    def __init__(self, *, latent_dim: int, state_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, state_dim))  # fmt: skip
        self.register_buffer("z_mean", torch.zeros(latent_dim))
        self.register_buffer("z_std", torch.ones(latent_dim))
        self.register_buffer("s_mean", torch.zeros(state_dim))
        self.register_buffer("s_std", torch.ones(state_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net((z - self.z_mean) / self.z_std) * self.s_std + self.s_mean


def fit_state_probe(
    latents: torch.Tensor, states: torch.Tensor, *, steps: int = 600, lr: float = 3e-3, seed: int = 0
) -> tuple[StateProbe, dict]:
    """Fit on 90% of (latents (N, D), states (N, S)); report the held-out RMSE per state unit, the R² of each
    state dimension (`probe/r2`, a list) and the worst of them."""
    N, D = latents.shape
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(N, generator=g)
    n_val = max(1, N // 10)
    val, tr = perm[:n_val], perm[n_val:]
    torch.manual_seed(seed)
    probe = StateProbe(latent_dim=D, state_dim=states.shape[1])
    probe.z_mean.copy_(latents[tr].mean(0))
    probe.z_std.copy_(latents[tr].std(0).clamp_min(1e-6))
    probe.s_mean.copy_(states[tr].mean(0))
    probe.s_std.copy_(states[tr].std(0).clamp_min(1e-6))
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    target = (states[tr] - probe.s_mean) / probe.s_std
    for step in range(steps):
        for group in opt.param_groups:  # cosine decay: the last steps polish the fit
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = (probe.net((latents[tr] - probe.z_mean) / probe.z_std) - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        err = probe(latents[val]) - states[val]  # (n_val, S)
        rmse = err.pow(2).mean().sqrt().item()
        r2 = 1 - err.pow(2).mean(0) / states[val].var(0).clamp_min(1e-12)
    metrics = {"probe/rmse": rmse, "probe/r2_min": r2.min().item(), "probe/r2": [round(v, 4) for v in r2.tolist()]}
    return probe.eval().requires_grad_(False), metrics


def sample_frames(path: str | Path, n: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`n` random (frame, proprio, state) triples of an episodes file: (n, C, H, W) in [0, 1], (n, P), (n, S)."""
    rng = np.random.default_rng(seed)
    with open_episodes(path) as f:
        E, T1 = f["state"].shape[:2]
        picks = sorted(set(map(tuple, np.stack([rng.integers(E, size=n), rng.integers(T1, size=n)], 1).tolist())))
        by_episode: dict[int, list[int]] = {}
        for e, t in picks:
            by_episode.setdefault(e, []).append(t)
        frames, proprio, states = [], [], []
        for e, ts in by_episode.items():  # one contiguous read per episode: h5py fancy indexing is slow
            lo, hi = min(ts), max(ts) + 1
            rows = np.array(ts) - lo
            frames.append(f["frames"][e, lo:hi][rows])
            proprio.append(f["proprio"][e, lo:hi][rows])
            states.append(f["state"][e, lo:hi][rows])
    pixels = torch.from_numpy(np.concatenate(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    return pixels, torch.from_numpy(np.concatenate(proprio)), torch.from_numpy(np.concatenate(states))


@torch.no_grad()
def encode_all(model, frames: torch.Tensor, proprio: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(N, C, H, W), (N, P) -> (N, D) in the space the predictor predicts (the target encoder's, for an EMA target)."""
    given = proprio if model.proprio_dim else None
    return torch.cat([
        model.encode(frames[i : i + batch], None if given is None else given[i : i + batch], target=True)
        for i in range(0, len(frames), batch)
    ])  # fmt: skip


def probe_for(
    model, *, run_dir: str | Path, data_path: str | Path, step: int, n: int = 4000, log=print
) -> tuple[StateProbe, dict]:
    """The run's probe: loaded from ``run_dir/state_probe.pt`` when it belongs to checkpoint `step`, else fitted on
    `n` frames of `data_path` and saved there."""
    path = Path(run_dir) / PROBE_FILE
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain values only
        if saved.get("step") == step and saved.get("latent_dim") == model.frame_dim:
            probe = StateProbe(latent_dim=saved["latent_dim"], state_dim=saved["state_dim"])
            probe.load_state_dict(saved["probe"])
            return probe.eval().requires_grad_(False), saved["metrics"]
    frames, proprio, states = sample_frames(data_path, n)
    probe, metrics = fit_state_probe(encode_all(model, frames, proprio), states)
    log(f"fitted the latent->state probe on {len(frames)} frames of {data_path}: held-out RMSE "
        f"{metrics['probe/rmse']:.4f}, R² per state dimension {metrics['probe/r2']}; saved {path}")  # fmt: skip
    payload = {"probe": probe.state_dict(), "step": step, "latent_dim": model.frame_dim,
               "state_dim": states.shape[1], "metrics": metrics}  # fmt: skip
    atomic_save(payload, path)  # an interrupted save never leaves a probe file that later fails to load
    return probe, metrics
