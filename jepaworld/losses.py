"""Losses, collapse regularisers and collapse diagnostics, as plain functions with thin modules.

- Regression in representation space: I-JEPA (Assran et al. 2023), V-JEPA (Bardes et al. 2024).
- VICReg variance and covariance terms: Bardes, Ponce & LeCun 2022, "VICReg".
- SIGReg, sketched isotropic Gaussian regularisation through the Epps-Pulley test on random 1-D projections:
  Balestriero & LeCun 2025, "LeJEPA".
- RankMe effective rank: Garrido et al. 2023, "RankMe".

Embeddings are (N, D): N samples (or tokens) of width D.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed import _functional_collectives as funcol


def regression_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean elementwise distance between predictions and (already stop-gradient) targets."""
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target)
    if kind == "l2":
        return F.mse_loss(pred, target)
    raise ValueError(f"unknown regression loss '{kind}'; choose l1, smooth_l1 or l2")


def variance_loss(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg variance term: mean over dimensions of relu(gamma - std), std over the N samples."""
    std = torch.sqrt(z.var(dim=0) + eps)  # (D,)
    return F.relu(gamma - std).mean()


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """VICReg covariance term: sum of squared off-diagonal covariances, divided by D."""
    N, D = z.shape
    z = z - z.mean(dim=0)
    cov = (z.T @ z) / (N - 1)  # (D, D)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / D


def sigreg(z: torch.Tensor, directions: torch.Tensor, *, num_knots: int = 17, t_max: float = 3.0) -> torch.Tensor:
    """SIGReg: mean Epps-Pulley statistic of the projections of z onto unit `directions` (D, K).

    For each projection x (N,), the statistic is N * integral over t of |phi_N(t) - exp(-t^2/2)|^2 w(t) with
    the empirical characteristic function phi_N and Gaussian weight w(t) = exp(-t^2/2), integrated by the
    trapezoid rule on [-t_max, t_max]. The integrand is even in t, so only [0, t_max] is evaluated and doubled.
    It is zero in expectation only when every projection is standard normal.
    """
    N = z.shape[0]
    x = z.float() @ directions  # (N, K)
    t = torch.linspace(0.0, t_max, num_knots, device=z.device)  # (T,)
    xt = x.unsqueeze(-1) * t  # (N, K, T)
    gauss = torch.exp(-0.5 * t**2)  # characteristic function of N(0, 1), and the weight
    err = (xt.cos().mean(0) - gauss).pow(2) + xt.sin().mean(0).pow(2)  # (K, T)
    stat = 2.0 * torch.trapezoid(err * gauss, t, dim=-1) * N  # (K,)
    return stat.mean()


def random_directions(dim: int, num: int, generator: torch.Generator) -> torch.Tensor:
    """(dim, num) unit-norm random directions for SIGReg's slices."""
    a = torch.randn(dim, num, generator=generator)
    return a / a.norm(dim=0, keepdim=True)


def gather_batch(z: torch.Tensor) -> torch.Tensor:
    """z (n, ...) on each DDP rank -> (world * n, ...), every rank's rows in rank order; z itself outside DDP.

    VICReg's variance and covariance and SIGReg's test are statistics of the whole batch, not means over samples,
    so ranks that each regularise their own share optimise another objective than one process on the global
    batch. Gathered, every rank computes the same global statistic. The gather is differentiable: its backward
    sums the ranks' gradients for each rank's rows, which DDP's average over ranks then turns into the gradient of
    the global statistic. The trainer gives every rank an equal share of the batch, as the collective needs.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    return funcol.wait_tensor(funcol.all_gather_single(z.contiguous(), 0, dist.group.WORLD))


class Regularizer(nn.Module):
    """Pluggable collapse regulariser on embeddings (N, D): 'none', 'vicreg' (with an expander) or 'sigreg'.

    Any method calls `reg(z, step)` on its online embeddings and adds the returned loss. Under DDP the statistics
    are over the global batch (`gather_batch`). SIGReg draws fresh projection directions each step from a
    generator seeded by the step, so every DDP rank and every resumed run uses the same slices.
    """

    def __init__(
        self,
        *,
        kind: str,
        dim: int,
        weight: float = 1.0,
        std_weight: float = 25.0,
        cov_weight: float = 1.0,
        expander_dim: int = 512,
        slices: int = 256,
    ) -> None:
        super().__init__()
        if kind not in ("none", "vicreg", "sigreg"):
            raise ValueError(f"unknown regulariser '{kind}'; choose none, vicreg or sigreg")
        if kind == "vicreg" and cov_weight <= 0:
            # The expander feeds only this loss, so without the covariance term its last layer can meet the
            # variance hinge by scaling up, and the encoder is not regularised at all (measured: reg/var 0.0).
            raise ValueError(f"vicreg with cov_weight={cov_weight} regularises nothing (the expander can scale its "
                             "output up to meet the variance term); set --method.vicreg_cov_weight > 0")  # fmt: skip
        self.kind, self.weight = kind, weight
        self.std_weight, self.cov_weight, self.slices = std_weight, cov_weight, slices
        if kind == "vicreg":
            # The expander lets VICReg decorrelate a wide projection instead of the representation itself.
            self.expander = nn.Sequential(
                nn.Linear(dim, expander_dim), nn.BatchNorm1d(expander_dim), nn.ReLU(),
                nn.Linear(expander_dim, expander_dim),
            )  # fmt: skip

    def forward(self, z: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """z (N, D): statistics over the N samples. z (B, P, D): per position, over the batch: each of the P
        positions is centred on its batch mean first, so a feature counts as spread only where it differs
        between samples at the same position (the position embedding alone spreads tokens, but carries nothing
        about the sample)."""
        if self.kind == "none":
            return z.new_zeros(()), {}
        z = gather_batch(z.float())  # (N, D) or (B, P, D) over every rank's samples
        if self.kind == "vicreg":
            e = self.expander(z.flatten(0, -2)).view(*z.shape[:-1], -1)  # (N, E) or (B, P, E)
            if e.dim() == 3:
                e = (e - e.mean(0)).flatten(0, 1)  # (B * P, E) within-position deviations
            var, cov = variance_loss(e), covariance_loss(e)
            loss = self.std_weight * var + self.cov_weight * cov
            return self.weight * loss, {"reg/var": var.item(), "reg/cov": cov.item()}
        if z.dim() == 3:
            z = (z - z.mean(0)).flatten(0, 1)  # (B * P, D) within-position deviations
        g = torch.Generator().manual_seed(1_000_003 * step + 17)
        stat = sigreg(z, random_directions(z.shape[1], self.slices, g).to(z.device))
        return self.weight * stat, {"reg/sigreg": stat.item()}


# ----------------------------------------------------------------------------------------------------------
# collapse diagnostics


@torch.no_grad()
def effective_rank(z: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe: exp of the entropy of the normalised singular values of z (N, D). 1 = collapsed to a line."""
    s = torch.linalg.svdvals(z.float())
    p = s / (s.sum() + eps) + eps
    return math.exp(-(p * p.log()).sum().item())


@torch.no_grad()
def feature_std(z: torch.Tensor) -> float:
    """Mean per-dimension std of L2-normalised features, times sqrt(D): about 1 when spread, 0 when collapsed."""
    zn = F.normalize(z.float(), dim=1)
    return zn.std(dim=0).mean().item() * math.sqrt(z.shape[1])


def collapse_report(z: torch.Tensor) -> dict[str, float]:
    return {"diag/rank": effective_rank(z), "diag/std": feature_std(z)}


def is_collapsed(report: dict[str, float], reference: dict[str, float] | None = None) -> bool:
    """Rank below 2, or normalised std below 5% of the isotropic value: the features carry ~no information.

    With a `reference` (the report at the start of training) it must also have fallen well below it, because
    the mean-pooled features of a randomly initialised ViT are already close to these bounds.
    """
    low = report["diag/rank"] < 2.0 or report["diag/std"] < 0.05
    if reference is None or not low:
        return low
    return report["diag/rank"] < 0.75 * reference["diag/rank"] or report["diag/std"] < 0.5 * reference["diag/std"]
