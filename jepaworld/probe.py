"""Frozen-feature evaluation: linear probe, kNN and low-shot probes, with the baselines in the same table.

Protocols follow I-JEPA (Assran et al. 2023): a logistic regression on standardised frozen features (linear,
the objective of scikit-learn's `LogisticRegression(C=1)`, solved in torch),
cosine k-nearest neighbours with temperature-weighted votes (Wu et al. 2018; DINO, Caron et al. 2021), and
logistic regression on n labelled images per class averaged over seeds (low-shot). Baselines are raw pixels and
the same architecture with random weights, so every number has its reference beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from jepaworld.config import ConfigError, ProbeConfig
from jepaworld.vit import VisionTransformer

POOLS = {"mean": 1, "mean_last4": 4, "grid2": 1, "grid2_last4": 4}


def pool_tokens(h: torch.Tensor, grid: tuple[int, int, int], pool: str) -> torch.Tensor:
    """Tokens (B, N, D) -> features: the mean over tokens, or for `grid2*` a 2x2 spatial grid of means (B, 4D)."""
    if not pool.startswith("grid"):
        return h.mean(dim=1)
    B, _, D = h.shape  # (B, t*gh*gw, D)
    t, gh, gw = grid
    h = h.view(B, t, gh, gw, D).mean(dim=1).permute(0, 3, 1, 2)  # (B, D, gh, gw), time averaged
    return F.adaptive_avg_pool2d(h, 2).flatten(1)  # (B, D * 4)


@torch.no_grad()
def extract_pools(
    encoder: VisionTransformer, images: torch.Tensor, pools: list[str], *, batch_size: int | None = None
) -> dict[str, torch.Tensor]:
    """Frozen features {pool: (N, F)} of uint8 images (N, C, H, W), one encoder pass for every pooling.

    `mean` is the I-JEPA protocol (mean of the last block's tokens); `*_last4` concatenates the last 4 blocks;
    `grid2` keeps coarse layout with a 2x2 grid of token means. Every encoder in a table uses the same pooling.

    `batch_size` defaults to 512 on a GPU and 64 on the CPU: on a 2-core CPU a ViT-Ti forward ran at 241 img/s in
    batches of 64 and 168 img/s in batches of 512, whose (512, 64, 768) MLP activations no longer fit in cache.
    """
    unknown = [p for p in pools if p not in POOLS]
    if unknown:
        raise ValueError(f"unknown pooling '{unknown[0]}'; choose from {', '.join(POOLS)}")
    encoder.eval()
    device = next(encoder.parameters()).device
    batch_size = batch_size or (64 if device.type == "cpu" else 512)
    layers = max(POOLS[p] for p in pools)
    out: dict[str, list[torch.Tensor]] = {p: [] for p in pools}
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device).float().div_(255.0)
        outs = encoder(x, return_layers=layers)
        for p in pools:
            out[p].append(torch.cat([pool_tokens(h, encoder.grid, p) for h in outs[-POOLS[p] :]], dim=1).float().cpu())
    return {p: torch.cat(f) for p, f in out.items()}


def extract(
    encoder: VisionTransformer, images: torch.Tensor, *, pool: str = "mean", batch_size: int | None = None
) -> torch.Tensor:
    """Frozen features (N, F) with one pooling; see `extract_pools`."""
    return extract_pools(encoder, images, [pool], batch_size=batch_size)[pool]


def fit_logistic(x: torch.Tensor, y: torch.Tensor, *, c: float = 1.0, max_iter: int = 1000) -> torch.Tensor:
    """Multinomial logistic regression, sklearn's objective (C * sum of losses + ||W||^2 / 2, bias unpenalised).

    Solved with full-batch L-BFGS in torch, which is several times faster than sklearn's lbfgs on 60k rows.
    Returns weights (F + 1, K) with the bias in the last row.
    """
    N, Fdim = x.shape
    K = int(y.max()) + 1
    xb = torch.cat([x, torch.ones(N, 1, dtype=x.dtype)], dim=1)  # (N, F + 1)
    w = torch.zeros(Fdim + 1, K, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1, max_iter=max_iter, history_size=20, tolerance_grad=1e-6,
                            tolerance_change=1e-9, line_search_fn="strong_wolfe")  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        # Divided by N * C to keep the scale of a mean loss; the minimiser is sklearn's.
        loss = F.cross_entropy(xb @ w, y) + w[:-1].pow(2).sum() / (2 * c * N)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def linear_probe(xtr: torch.Tensor, ytr: torch.Tensor, xte: torch.Tensor, yte: torch.Tensor, *, max_iter: int) -> float:
    """Logistic regression on standardised features (statistics from the training set); returns test accuracy."""
    mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    w = fit_logistic((xtr - mean) / std, ytr, max_iter=max_iter)
    xte = (xte - mean) / std
    pred = (xte @ w[:-1] + w[-1]).argmax(1)
    return (pred == yte).double().mean().item()


def knn_probe(
    xtr: torch.Tensor,
    ytr: torch.Tensor,
    xte: torch.Tensor,
    yte: torch.Tensor,
    *,
    k: int = 20,
    temp: float = 0.07,
) -> float:
    """Cosine kNN with exp(sim / temp) weighted votes; returns test accuracy."""
    xtr, xte = F.normalize(xtr.float(), dim=1), F.normalize(xte.float(), dim=1)
    num_classes = int(ytr.max()) + 1
    correct = 0
    for i in range(0, len(xte), 1024):
        sim = xte[i : i + 1024] @ xtr.T  # (b, Ntr)
        top, idx = sim.topk(k, dim=1)  # (b, k)
        votes = torch.zeros(len(top), num_classes).scatter_add_(1, ytr[idx], (top / temp).exp())
        correct += (votes.argmax(1) == yte[i : i + 1024]).sum().item()
    return correct / len(xte)


def low_shot_probe(
    xtr: torch.Tensor, ytr: torch.Tensor, xte: torch.Tensor, yte: torch.Tensor, *, shots: int, seeds: int, max_iter: int
) -> tuple[float, float]:
    """Linear probe on `shots` labelled images per class, over `seeds` draws; returns (mean, std) accuracy."""
    accs = []
    for seed in range(seeds):
        g = torch.Generator().manual_seed(seed)
        idx = torch.cat([
            (c_idx := (ytr == c).nonzero().squeeze(1))[torch.randperm(len(c_idx), generator=g)[:shots]]
            for c in ytr.unique()
        ])  # fmt: skip
        accs.append(linear_probe(xtr[idx], ytr[idx], xte, yte, max_iter=max_iter))
    return float(np.mean(accs)), float(np.std(accs))


@dataclass
class ProbeResult:
    name: str
    linear: float
    knn: float
    low_shot: tuple[float, float]
    dim: int
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)

    def row(self, shots: int) -> dict[str, object]:
        return {
            "features": self.name, "dim": self.dim, "linear": self.linear, "knn": self.knn,
            f"{shots}-shot": self.low_shot[0], f"{shots}-shot std": self.low_shot[1], **self.extra,
        }  # fmt: skip


def check_labels(cfg: ProbeConfig, n_train: int) -> None:
    """Refuse a kNN probe with more neighbours than labelled training images (torch.topk would fail)."""
    if cfg.knn_k > n_train:
        raise ConfigError(f"--probe.knn_k {cfg.knn_k} is more neighbours than the {n_train} labelled training "
                          "images; lower it, or raise --probe.max_train")  # fmt: skip


def evaluate(
    name: str,
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    cfg: ProbeConfig,
) -> ProbeResult:
    t0 = time.perf_counter()
    if cfg.max_train and len(train_feats) > cfg.max_train:
        train_feats, train_labels = train_feats[: cfg.max_train], train_labels[: cfg.max_train]
    check_labels(cfg, len(train_labels))  # before minutes of L-BFGS
    # float64: L-BFGS on raw pixels is ill-conditioned in float32 and stalls early.
    xtr, xte = train_feats.double(), test_feats.double()
    lin = linear_probe(xtr, train_labels, xte, test_labels, max_iter=cfg.max_iter)
    knn = knn_probe(train_feats, train_labels, test_feats, test_labels, k=cfg.knn_k)
    few = low_shot_probe(xtr, train_labels, xte, test_labels, shots=cfg.shots, seeds=cfg.shot_seeds,
                         max_iter=cfg.max_iter)  # fmt: skip
    return ProbeResult(name, lin, knn, few, train_feats.shape[1], time.perf_counter() - t0)


def format_table(results: list[ProbeResult], *, shots: int, knn_k: int) -> str:
    """A Markdown table of probe results; training steps, seconds and final effective rank where known."""
    extras = [k for k in ("steps", "train_s", "rank") if any(k in r.extra for r in results)]
    cols = ["features", "dim", "linear", f"kNN (k={knn_k})", f"{shots}-shot", *extras]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        shot = f"{100 * r.low_shot[0]:.1f} ± {100 * r.low_shot[1]:.1f}%"
        cells = [r.name, str(r.dim), f"{100 * r.linear:.1f}%", f"{100 * r.knn:.1f}%", shot]
        cells += [str(r.extra.get(k, "–")) for k in extras]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
