"""V-JEPA and VideoMAE on video: masks through `prepare`, loss and gradients, and a few trainer steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jepaworld.config import apply_overrides, get_preset
from jepaworld.masks import FutureFrames, Mixture, MultiBlock3D, Tube
from jepaworld.methods import JEPA, MAE, DataSpec, build_method
from jepaworld.physics import generate_suite
from jepaworld.train import train

SPEC = DataSpec(channels=3, img_size=16, frames=8)  # micro presets: a 4 x 4 x 4 token grid


def _method(preset: str, **overrides: str):
    torch.manual_seed(0)
    return build_method(apply_overrides(get_preset(preset), overrides), SPEC)


def _batch(method, seed: int = 0) -> dict[str, torch.Tensor]:
    x = torch.rand(4, 3, 8, 16, 16, generator=torch.Generator().manual_seed(seed))
    return method.prepare({"x": x}, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("preset", ["vjepa-physics-micro", "videomae-physics-micro"])
def test_loss_and_gradients(preset: str) -> None:
    method = _method(preset)
    loss, logs = method(_batch(method))
    assert torch.isfinite(loss) and all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    loss.backward()
    trainable = [(n, p) for n, p in method.named_parameters() if p.requires_grad]
    assert trainable
    for name, p in trainable:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    if isinstance(method, JEPA):  # the EMA target encoder is behind a stop-gradient
        assert all(p.grad is None for p in method.target_encoder.parameters())


def test_vjepa_uses_both_multiblock3d_masks() -> None:
    method = _method("vjepa-physics-micro", **{"mask.future_weight": "0"})
    assert isinstance(method, JEPA) and isinstance(method.mask, Mixture)
    assert all(isinstance(m, MultiBlock3D) for m in method.mask.masks)
    t, h, w = method.encoder.grid
    sizes = set()
    for seed in range(12):
        b = _batch(method, seed)
        ctx, tgt = b["ctx"], b["tgt"]  # (B, Nc), (B, 1, Nt)
        assert tgt.shape[:2] == (4, 1)
        for c, g in zip(ctx, tgt[:, 0], strict=True):
            assert not set(c.tolist()) & set(g.tolist())
        sizes.add(tgt.shape[-1])
        # One sample keeps its whole target (batches trim to a common length): a tube through every time slot.
        g = method.prepare({"x": torch.zeros(1, 3, 8, 16, 16)}, torch.Generator().manual_seed(seed))["tgt"][0, 0]
        slots = [set((g[(g // (h * w)) == s] % (h * w)).tolist()) for s in range(t)]
        assert all(sl == slots[0] for sl in slots)
    assert len(sizes) > 1  # short- and long-range masks hide different amounts


def test_masks_reproducible_with_seed() -> None:
    method = _method("vjepa-physics-micro")
    a, b = _batch(method, 3), _batch(method, 3)
    assert torch.equal(a["ctx"], b["ctx"]) and torch.equal(a["tgt"], b["tgt"])


def test_future_weight_one_gives_causal_masks() -> None:
    method = _method("vjepa-physics-micro", **{"mask.future_weight": "1"})
    assert all(isinstance(m, FutureFrames) for m, w in zip(method.mask.masks, method.mask.weights, strict=True) if w)
    b = _batch(method)
    assert b["ctx"].max() < b["tgt"].min()  # context strictly before the targets


def test_tube_mask_invariants() -> None:
    mask = Tube(frames=4, height=4, width=4, ratio=0.75)
    keep, masked = mask(3, torch.Generator().manual_seed(0))
    assert keep.shape == (3, 16) and masked.shape == (3, 1, 48)
    for k, m in zip(keep, masked[:, 0], strict=True):
        assert sorted(k.tolist() + m.tolist()) == list(range(64))
        assert set((m % 16).tolist()) == set((m[m < 16]).tolist())  # same positions in every frame


def test_videomae_is_mae_with_tubes() -> None:
    method = _method("videomae-physics-micro", **{"mask.future_weight": "0"})
    assert isinstance(method, MAE) and isinstance(method.mask.masks[0], Tube)


def test_train_a_few_steps_on_a_tiny_suite(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    generate_suite(suite, n_train=3, n_scenes_per_property=0, size=16, frames=16, seed=5)
    cfg = apply_overrides(
        get_preset("vjepa-physics-micro"),
        {"data.path": str(suite), "train.out": str(tmp_path / "run"), "train.steps": "2"},
    )
    result = train(cfg)
    assert result.steps == 2 and torch.isfinite(torch.tensor(result.loss))
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def test_predictor_trains_on_a_frozen_pretrained_encoder(tmp_path: Path) -> None:
    from jepaworld.checkpoint import load_method
    from jepaworld.surprise import load_scorer, random_scorer

    suite = tmp_path / "suite"
    generate_suite(suite, n_train=3, n_scenes_per_property=0, size=16, frames=16, seed=5)
    base = {"data.path": str(suite), "train.steps": "2"}
    train(apply_overrides(get_preset("vjepa-physics-micro"), {**base, "train.out": str(tmp_path / "source")}))
    source = load_method(tmp_path / "source")[0].eval_encoder.state_dict()
    frozen = {**base, "model.encoder_init": str(tmp_path / "source"), "model.freeze_encoder": "true"}
    method = _method("vjepa-physics-micro", **frozen)
    for encoder in (method.encoder, method.target_encoder):
        assert all(torch.equal(v, source[k]) for k, v in encoder.state_dict().items())
        assert not any(p.requires_grad for p in encoder.parameters())
    before = {k: v.clone() for k, v in method.predictor.state_dict().items()}
    loss, _ = method(_batch(method))
    loss.backward()
    torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1).step()
    method.after_step(0.5)
    assert all(p.grad is None for p in method.encoder.parameters())
    assert all(torch.equal(v, source[k]) for k, v in method.target_encoder.state_dict().items())  # EMA of a constant
    assert any(not torch.equal(v, before[k]) for k, v in method.predictor.state_dict().items())
    # Through the trainer: the run's encoder is still the source's.
    result = train(apply_overrides(get_preset("vjepa-physics-micro"), {**frozen, "train.out": str(tmp_path / "pred")}))
    assert torch.isfinite(torch.tensor(result.loss))
    (tmp_path / "source" / "checkpoint.pt").unlink()  # the run holds every weight it needs
    trained = load_method(tmp_path / "pred")[0].eval_encoder.state_dict()
    assert all(torch.equal(v, source[k]) for k, v in trained.items())
    # It resumes without the source: its own checkpoint holds every weight.
    pred_cfg = apply_overrides(get_preset("vjepa-physics-micro"), {**frozen, "train.out": str(tmp_path / "pred")})
    assert train(pred_cfg, resume=True).steps == 2
    # Its random-init baseline is random: it neither reads the (deleted) source nor copies its encoder.
    rand = random_scorer(load_scorer(tmp_path / "pred")).method.eval_encoder.state_dict()
    assert not any(torch.equal(v, source[k]) for k, v in rand.items() if v.dim() > 1)


@pytest.mark.parametrize("target", ["ema", "online"])
def test_per_position_regulariser_trains_the_encoder_on_every_token(target: str) -> None:
    overrides = {"method.regularizer": "vicreg", "method.reg_on": "tokens", "method.target": target}
    method = _method("vjepa-physics-micro", **overrides)
    assert isinstance(method, JEPA) and (method.target_encoder is None) == (target == "online")
    loss, logs = method(_batch(method))
    assert logs["reg/var"] > 0
    loss.backward()
    for name, p in method.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    # Pooled context embeddings reach the regulariser through a different path, with a different value.
    pooled = _method("vjepa-physics-micro", **{**overrides, "method.reg_on": "pooled"})
    assert pooled(_batch(pooled))[1]["reg/var"] != pytest.approx(logs["reg/var"])
    with pytest.raises(ValueError, match="reg_on"):
        _method("vjepa-physics-micro", **{"method.reg_on": "frames"})
    with pytest.raises(ValueError, match="needs a regulariser"):
        _method("vjepa-physics-micro", **{"method.reg_on": "tokens"})
