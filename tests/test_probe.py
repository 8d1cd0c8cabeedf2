"""Probes: the torch logistic regression matches scikit-learn's; kNN, low-shot and feature extraction behave."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from jepaworld.config import ConfigError, ProbeConfig
from jepaworld.probe import (
    ProbeResult,
    evaluate,
    extract,
    fit_logistic,
    format_table,
    knn_probe,
    linear_probe,
    low_shot_probe,
)
from jepaworld.vit import vit


def blobs(n_per_class: int, k: int, dim: int, sep: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g, dtype=torch.float64) * sep
    y = torch.arange(k).repeat_interleave(n_per_class)
    x = centres[y] + torch.randn(len(y), dim, generator=g, dtype=torch.float64)
    return x, y


def test_fit_logistic_matches_sklearn_objective() -> None:
    x, y = blobs(40, 3, 5, sep=1.0, seed=0)  # overlapping classes: the regulariser matters
    w = fit_logistic(x, y, c=1.0, max_iter=500)
    ref = LogisticRegression(C=1.0, max_iter=5000, tol=1e-10).fit(x.numpy(), y.numpy())
    logits = (x @ w[:-1] + w[-1]).numpy()
    ref_logits = ref.decision_function(x.numpy())
    # Multinomial logits are defined up to a per-sample constant; compare probabilities and predictions.
    p = torch.softmax(torch.from_numpy(logits), 1).numpy()
    assert np.abs(p - ref.predict_proba(x.numpy())).max() < 1e-3
    assert (logits.argmax(1) == ref_logits.argmax(1)).all()
    # The penalised weights are identifiable (they sum to zero across classes), so they match sklearn's too.
    np.testing.assert_allclose(w[:-1].T.numpy(), ref.coef_, atol=2e-3)


def test_fit_logistic_c_controls_regularisation() -> None:
    x, y = blobs(30, 2, 4, sep=1.0, seed=1)
    strong = fit_logistic(x, y, c=0.01, max_iter=300)[:-1].norm()
    weak = fit_logistic(x, y, c=100.0, max_iter=300)[:-1].norm()
    assert strong < 0.5 * weak


def test_linear_probe_agrees_with_sklearn_on_held_out_data() -> None:
    xtr, ytr = blobs(60, 4, 10, sep=0.8, seed=2)
    xte, yte = blobs(60, 4, 10, sep=0.8, seed=2)
    g = torch.Generator().manual_seed(9)
    xte = xte + 0.5 * torch.randn(xte.shape, generator=g, dtype=torch.float64)
    acc = linear_probe(xtr, ytr, xte, yte, max_iter=500)
    mean, std = xtr.mean(0), xtr.std(0)
    ref = LogisticRegression(C=1.0, max_iter=5000).fit(((xtr - mean) / std).numpy(), ytr.numpy())
    ref_acc = (ref.predict(((xte - mean) / std).numpy()) == yte.numpy()).mean()
    assert 0.4 < acc < 1.0  # a non-trivial problem
    assert abs(acc - ref_acc) <= 0.02


def test_knn_probe_separable_and_random() -> None:
    xtr, ytr = blobs(30, 5, 8, sep=10.0, seed=3)
    xte, yte = blobs(10, 5, 8, sep=10.0, seed=3)
    assert knn_probe(xtr.float(), ytr, xte.float(), yte, k=5) == 1.0
    noise = torch.randn(150, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 5, (150,), generator=torch.Generator().manual_seed(1))
    assert knn_probe(noise[:100], labels[:100], noise[100:], labels[100:], k=5) < 0.5


def test_knn_probe_weighted_votes() -> None:
    # Query closest to one class-0 point but near three slightly further class-1 points: k=1 says 0, k=4 says 1.
    xtr = torch.tensor([[1.0, 0.0], [0.9, 0.3], [0.9, 0.35], [0.9, 0.4]])
    ytr = torch.tensor([0, 1, 1, 1])
    q, yq = torch.tensor([[1.0, 0.05]]), torch.tensor([0])
    assert knn_probe(xtr, ytr, q, yq, k=1) == 1.0
    assert knn_probe(xtr, ytr, q, yq, k=4, temp=1.0) == 0.0


def test_low_shot_probe_picks_shots_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    import jepaworld.probe as probe

    xtr, ytr = blobs(20, 3, 4, sep=5.0, seed=4)
    xte, yte = blobs(10, 3, 4, sep=5.0, seed=4)
    seen: list[torch.Tensor] = []
    real = probe.linear_probe

    def spy(xs, ys, *args, **kwargs):
        seen.append(ys.clone())
        return real(xs, ys, *args, **kwargs)

    monkeypatch.setattr(probe, "linear_probe", spy)
    mean, std = low_shot_probe(xtr, ytr, xte, yte, shots=2, seeds=3, max_iter=100)
    assert len(seen) == 3
    for ys in seen:
        assert torch.bincount(ys, minlength=3).tolist() == [2, 2, 2]
    assert 0.0 <= std <= mean <= 1.0 and mean > 0.8
    again = low_shot_probe(xtr, ytr, xte, yte, shots=2, seeds=3, max_iter=100)
    assert again == (mean, std)


def test_extract_shapes_and_pooling() -> None:
    torch.manual_seed(0)
    enc = vit("micro", depth=4, img_size=16, patch_size=4, in_chans=1)
    images = torch.randint(0, 256, (5, 1, 16, 16), dtype=torch.uint8)
    mean = extract(enc, images, pool="mean", batch_size=2)
    last4 = extract(enc, images, pool="mean_last4", batch_size=3)
    assert mean.shape == (5, 32) and last4.shape == (5, 128)
    torch.testing.assert_close(last4[:, -32:], mean)
    torch.testing.assert_close(mean, enc(images.float() / 255).mean(1))
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        extract(enc, images, pool="max")


def test_evaluate_and_table() -> None:
    xtr, ytr = blobs(20, 3, 6, sep=6.0, seed=5)
    perm = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(0))  # max_train keeps the first rows
    xtr, ytr = xtr[perm], ytr[perm]
    xte, yte = blobs(8, 3, 6, sep=6.0, seed=5)
    cfg = ProbeConfig(knn_k=5, shots=3, shot_seeds=2, max_train=30, max_iter=100)
    r = evaluate("blobs", xtr.float(), ytr, xte.float(), yte, cfg)
    assert isinstance(r, ProbeResult) and r.dim == 6
    assert r.linear > 0.9 and r.knn > 0.9 and r.low_shot[0] > 0.8
    with pytest.raises(ConfigError, match=r"--probe\.knn_k 31 is more neighbours than the 30 labelled"):  # max_train
        evaluate("blobs", xtr.float(), ytr, xte.float(), yte, dataclasses.replace(cfg, knn_k=31))
    table = format_table([r], shots=3, knn_k=5)
    lines = table.splitlines()
    assert lines[0].startswith("| features | dim | linear | kNN (k=5) | 3-shot |")  # the k the probe used
    assert lines[2].startswith("| blobs | 6 | ")
    assert r.row(3)["3-shot"] == r.low_shot[0]
