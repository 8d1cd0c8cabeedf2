"""Each loss against a hand-written reference computed another way, and the collapse diagnostics on known data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import torchrun_2

from jepaworld.losses import (
    Regularizer,
    collapse_report,
    covariance_loss,
    effective_rank,
    feature_std,
    is_collapsed,
    random_directions,
    regression_loss,
    sigreg,
    variance_loss,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------------------
# references, written with loops / numpy / complex numbers on purpose


def ref_variance(z: np.ndarray, gamma: float = 1.0, eps: float = 1e-4) -> float:
    n, d = z.shape
    total = 0.0
    for j in range(d):
        col = z[:, j]
        mean = sum(col) / n
        var = sum((v - mean) ** 2 for v in col) / (n - 1)
        total += max(0.0, gamma - math.sqrt(var + eps))
    return total / d


def ref_covariance(z: np.ndarray) -> float:
    n, d = z.shape
    means = [z[:, j].mean() for j in range(d)]
    total = 0.0
    for i in range(d):
        for j in range(d):
            if i == j:
                continue
            c = sum((z[k, i] - means[i]) * (z[k, j] - means[j]) for k in range(n)) / (n - 1)
            total += c * c
    return total / d


def ref_sigreg(z: np.ndarray, dirs: np.ndarray, num_knots: int = 17, t_max: float = 3.0) -> float:
    """Epps-Pulley on the full symmetric grid [-T, T] with complex exponentials and an explicit trapezoid sum."""
    n = z.shape[0]
    x = z.astype(np.float64) @ dirs.astype(np.float64)  # (N, K)
    ts = np.linspace(-t_max, t_max, 2 * num_knots - 1)  # same spacing as num_knots on [0, T]
    stats = []
    for k in range(x.shape[1]):
        vals = []
        for t in ts:
            ecf = np.mean(np.exp(1j * t * x[:, k]))
            vals.append(abs(ecf - np.exp(-(t**2) / 2)) ** 2 * np.exp(-(t**2) / 2))
        integral = sum((ts[i + 1] - ts[i]) * (vals[i] + vals[i + 1]) / 2 for i in range(len(ts) - 1))
        stats.append(n * integral)
    return float(np.mean(stats))


# ----------------------------------------------------------------------------------------------------------
# losses against references


@pytest.mark.parametrize("seed", [0, 1])
def test_variance_loss_matches_reference(seed: int) -> None:
    z = torch.randn(12, 5, generator=gen(seed), dtype=torch.float64) * torch.tensor([0.1, 0.5, 1.0, 2.0, 0.0])
    z[:, 4] = 3.0  # a constant dimension
    got = variance_loss(z).item()
    assert got == pytest.approx(ref_variance(z.numpy()), rel=1e-9)
    assert got > 0
    assert variance_loss(z, gamma=2.5).item() == pytest.approx(ref_variance(z.numpy(), gamma=2.5), rel=1e-9)
    assert variance_loss(10 * torch.randn(64, 4, generator=gen(seed))).item() == 0.0  # every std > gamma


@pytest.mark.parametrize("seed", [0, 1])
def test_covariance_loss_matches_double_loop(seed: int) -> None:
    base = torch.randn(10, 4, generator=gen(seed), dtype=torch.float64)
    z = base @ torch.randn(4, 4, generator=gen(seed + 10), dtype=torch.float64)  # correlated dims
    assert covariance_loss(z).item() == pytest.approx(ref_covariance(z.numpy()), rel=1e-9)
    assert covariance_loss(z).item() > 0.01
    # Whitened (orthonormal, centred) columns have no off-diagonal covariance at all.
    centred = base - base.mean(0)
    u = torch.linalg.svd(centred, full_matrices=False)[0]  # columns are centred and orthonormal
    assert covariance_loss(u).item() < 1e-20


@pytest.mark.parametrize(("n", "d", "k", "knots", "t_max"), [(40, 3, 5, 17, 3.0), (25, 6, 3, 9, 2.0)])
def test_sigreg_matches_complex_reference(n: int, d: int, k: int, knots: int, t_max: float) -> None:
    z = torch.randn(n, d, generator=gen(3)) * 1.3 + 0.2
    dirs = random_directions(d, k, gen(4))
    got = sigreg(z, dirs, num_knots=knots, t_max=t_max).item()
    assert got == pytest.approx(ref_sigreg(z.numpy(), dirs.numpy(), knots, t_max), rel=1e-4)


def test_random_directions_unit_norm_and_seeded() -> None:
    d = random_directions(7, 11, gen(0))
    assert d.shape == (7, 11)
    torch.testing.assert_close(d.norm(dim=0), torch.ones(11))
    assert torch.equal(d, random_directions(7, 11, gen(0)))
    assert not torch.equal(d, random_directions(7, 11, gen(1)))


def test_sigreg_small_for_gaussian_large_otherwise() -> None:
    n, d = 1024, 8
    g = gen(0)
    dirs = random_directions(d, 64, g)
    gauss = sigreg(torch.randn(n, d, generator=g), dirs).item()
    assert gauss < 3
    assert sigreg(torch.ones(n, d), dirs).item() > 50 * gauss  # constant (collapsed)
    assert sigreg(torch.zeros(n, d), dirs).item() > 50 * gauss
    assert sigreg(3 * torch.randn(n, d, generator=g), dirs).item() > 50 * gauss  # wrong scale
    # Unit-variance uniform marginals: checked on the coordinate axes (random slices of a cube look Gaussian).
    axes = torch.eye(d)
    uniform = (torch.rand(n, d, generator=g) * 2 - 1) * math.sqrt(3)
    assert sigreg(uniform, axes).item() > 5 * sigreg(torch.randn(n, d, generator=g), axes).item()


@pytest.mark.parametrize("kind", ["l1", "smooth_l1", "l2"])
def test_regression_losses(kind: str) -> None:
    pred = torch.tensor([[0.0, 0.5, 3.0], [-2.0, 1.0, 0.2]])
    target = torch.tensor([[0.1, -0.5, 0.0], [-2.0, 1.0, 1.2]])
    diffs = [abs(p - t) for p, t in zip(pred.flatten().tolist(), target.flatten().tolist(), strict=True)]
    per = {
        "l1": diffs,
        "l2": [e * e for e in diffs],
        "smooth_l1": [0.5 * e * e if e < 1 else e - 0.5 for e in diffs],
    }[kind]
    assert regression_loss(pred, target, kind).item() == pytest.approx(sum(per) / len(per), rel=1e-6)
    assert regression_loss(target, target, kind).item() == 0.0


def test_regression_loss_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown regression loss 'l3'"):
        regression_loss(torch.zeros(2), torch.zeros(2), "l3")


# ----------------------------------------------------------------------------------------------------------
# diagnostics


def test_effective_rank() -> None:
    g = gen(0)
    rank_one = torch.randn(200, 1, generator=g) @ torch.randn(1, 16, generator=g)
    assert effective_rank(rank_one) == pytest.approx(1.0, abs=0.01)
    iso = torch.randn(5000, 16, generator=g)
    assert effective_rank(iso) == pytest.approx(16, rel=0.05)
    rank_four = torch.randn(500, 4, generator=g) @ torch.linalg.qr(torch.randn(16, 16, generator=g))[0][:4]
    assert effective_rank(rank_four) == pytest.approx(4, rel=0.1)


def test_feature_std() -> None:
    g = gen(0)
    assert feature_std(torch.randn(5000, 16, generator=g)) == pytest.approx(1.0, abs=0.05)
    collapsed = torch.ones(100, 16) + 1e-4 * torch.randn(100, 16, generator=g)
    assert feature_std(collapsed) < 0.01
    # Scale-invariant: it measures directions, not norms.
    z = torch.randn(300, 8, generator=g)
    assert feature_std(z) == pytest.approx(feature_std(50 * z), rel=1e-5)


def test_is_collapsed_without_reference() -> None:
    g = gen(0)
    assert not is_collapsed(collapse_report(torch.randn(500, 16, generator=g)))
    assert is_collapsed(collapse_report(torch.ones(50, 16)))
    assert is_collapsed({"diag/rank": 1.5, "diag/std": 0.9})
    assert is_collapsed({"diag/rank": 8.0, "diag/std": 0.01})
    assert not is_collapsed({"diag/rank": 2.5, "diag/std": 0.2})


def test_is_collapsed_with_reference() -> None:
    start = {"diag/rank": 1.8, "diag/std": 0.06}  # random-init features already sit near the bounds
    assert not is_collapsed({"diag/rank": 1.7, "diag/std": 0.05}, reference=start)  # low, but no fall
    assert is_collapsed({"diag/rank": 1.1, "diag/std": 0.05}, reference=start)  # rank fell
    assert is_collapsed({"diag/rank": 1.7, "diag/std": 0.01}, reference=start)  # std fell
    assert not is_collapsed({"diag/rank": 6.0, "diag/std": 0.5}, reference=start)  # healthy


# ----------------------------------------------------------------------------------------------------------
# Regularizer modules


@pytest.mark.parametrize("kind", ["vicreg", "sigreg"])
def test_regularizer_gives_gradients(kind: str) -> None:
    torch.manual_seed(0)
    reg = Regularizer(kind=kind, dim=8, weight=0.5, expander_dim=16, slices=16)
    z = torch.randn(32, 8, requires_grad=True)
    loss, logs = reg(z, step=3)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
    assert logs and all(math.isfinite(v) for v in logs.values())
    loss.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    for name, p in reg.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_regularizer_values() -> None:
    z = torch.randn(64, 8, generator=gen(0))
    loss, logs = Regularizer(kind="sigreg", dim=8, weight=0.5, slices=16)(z, step=7)
    dirs = random_directions(8, 16, torch.Generator().manual_seed(1_000_003 * 7 + 17))
    assert loss.item() == pytest.approx(0.5 * sigreg(z, dirs).item(), rel=1e-6)
    assert logs["reg/sigreg"] == pytest.approx(sigreg(z, dirs).item(), rel=1e-6)
    # Same step -> same slices (DDP ranks and resumed runs agree); another step -> other slices.
    reg = Regularizer(kind="sigreg", dim=8, slices=16)
    assert reg(z, 7)[0].item() == reg(z, 7)[0].item() != reg(z, 8)[0].item()
    none, logs = Regularizer(kind="none", dim=8)(z, step=0)
    assert none.item() == 0.0 and logs == {}
    with pytest.raises(ValueError, match="unknown regulariser"):
        Regularizer(kind="barlow", dim=8)
    with pytest.raises(ValueError, match="vicreg_cov_weight > 0"):
        Regularizer(kind="vicreg", dim=8, cov_weight=0.0)


def test_regularizer_per_position_matches_reference() -> None:
    # (B, P, D) input: the expander runs on every token, each position is centred on its batch mean, and the
    # VICReg terms are taken over the pooled deviations. Reference in numpy, per position, with explicit loops.
    torch.manual_seed(0)
    reg = Regularizer(kind="vicreg", dim=8, weight=0.5, std_weight=2.0, cov_weight=0.3, expander_dim=16)
    z = torch.randn(6, 5, 8, generator=gen(3))
    loss, logs = reg(z, step=0)
    e = reg.expander(z.reshape(30, 8)).detach().double().numpy().reshape(6, 5, 16)
    dev = np.concatenate([e[:, p] - e[:, p].mean(0) for p in range(5)])  # (30, 16)
    n = len(dev)
    std = np.sqrt(np.array([np.sum((dev[:, j] - dev[:, j].mean()) ** 2) / (n - 1) for j in range(16)]) + 1e-4)
    var = np.maximum(0.0, 1.0 - std).mean()
    cov = np.cov(dev, rowvar=False)  # (16, 16), ddof 1
    off = sum(cov[i, j] ** 2 for i in range(16) for j in range(16) if i != j) / 16
    assert logs["reg/var"] == pytest.approx(var, rel=1e-4)
    assert logs["reg/cov"] == pytest.approx(off, rel=1e-4)
    assert loss.item() == pytest.approx(0.5 * (2.0 * var + 0.3 * off), rel=1e-4)


@pytest.mark.parametrize("kind", ["vicreg", "sigreg"])
def test_per_position_regularizer_sees_position_only_features_as_collapse(kind: str) -> None:
    # Tokens that encode only their position are spread over tokens, but identical across samples: over the
    # flattened tokens the regulariser is satisfied, per position it flags the collapse.
    torch.manual_seed(0)
    reg = Regularizer(kind=kind, dim=8, expander_dim=16, slices=32)
    position = torch.randn(1, 16, 8, generator=gen(1)) * 1.5  # (1, P, D)
    tokens = position + 1e-3 * torch.randn(32, 16, 8, generator=gen(2))  # (B, P, D)
    samples = torch.randn(32, 16, 8, generator=gen(4))  # content that differs per sample

    def spread_penalty(z: torch.Tensor) -> float:  # VICReg: its variance term; SIGReg: the statistic
        loss, logs = reg(z, step=0)
        return logs["reg/var"] if kind == "vicreg" else loss.item()

    per_position, over_tokens, healthy = (
        spread_penalty(tokens),
        spread_penalty(tokens.flatten(0, 1)),
        spread_penalty(samples),
    )
    if kind == "vicreg":  # 1 = every expander dimension has zero spread; a fresh expander's outputs spread ~0.3
        assert per_position > 0.95 and max(over_tokens, healthy) < 0.8, (per_position, over_tokens, healthy)
    else:
        assert per_position > 3 * max(over_tokens, healthy), (per_position, over_tokens, healthy)


# ----------------------------------------------------------------------------------------------------------
# the regulariser under DDP


# Run by `torchrun --nproc_per_node 2` (`conftest.torchrun_2`). Each rank first computes one process's gradients on
# the whole batch, before the process group exists, then the DDP gradients on its half; rank 0 saves both.
DDP_SCRIPT = """
import gc
import sys
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from jepaworld.losses import Regularizer

kind, reg_on, out = sys.argv[1:4]
torch.set_num_threads(1)


class RegularisedEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(6, 8)
        self.reg = Regularizer(kind=kind, dim=8, weight=0.7, expander_dim=16, slices=16)

    def forward(self, x):
        # A per-sample mean term beside the regulariser, as in the methods: DDP's gradient average handles it.
        z = self.encoder(x)
        return self.reg(z, step=5)[0] + z.pow(2).mean()


def model():
    torch.manual_seed(0)
    return RegularisedEncoder()


shape = (16, 6) if reg_on == "pooled" else (16, 3, 6)  # (B, D) or (B, P, D)
x = torch.randn(*shape, generator=torch.Generator().manual_seed(11)) * torch.linspace(0.2, 2.0, 6)
single = model()
single(x).backward()
dist.init_process_group("gloo")
rank = dist.get_rank()
ddp = DistributedDataParallel(model())
ddp(x[rank * 8 : (rank + 1) * 8]).backward()
if rank == 0:
    grads = lambda m: {n: p.grad for n, p in m.named_parameters()}  # noqa: E731
    torch.save({"single": grads(single), "ddp": grads(ddp.module)}, out)
del ddp  # it holds the process group: released here, not by a gloo thread at interpreter exit (SIGABRT)
gc.collect()
dist.destroy_process_group()
"""


@pytest.mark.parametrize(("kind", "reg_on"), [("vicreg", "pooled"), ("vicreg", "tokens"), ("sigreg", "pooled")])
def test_regulariser_under_ddp_gives_the_global_batch_gradient(kind: str, reg_on: str, tmp_path) -> None:
    """Two gloo ranks with half the batch each get one process's gradients on the whole batch: the batch
    statistics are gathered across ranks, and the gather's backward scales back through DDP's average."""
    script, out = tmp_path / "ddp_grads.py", tmp_path / "grads.pt"
    script.write_text(DDP_SCRIPT)
    torchrun_2(str(script), kind, reg_on, str(out), timeout=180)
    grads = torch.load(out)
    for name, g in grads["single"].items():
        torch.testing.assert_close(grads["ddp"][name], g, rtol=1e-4, atol=1e-6, msg=f"{name}: gradient differs")
