"""ViT encoder, predictor and positional embeddings; contract tests over the VIT_SIZES and METHODS registries."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from jepaworld.config import PRESETS, ExperimentConfig, apply_overrides, get_preset
from jepaworld.methods import METHODS, DataSpec, build_method
from jepaworld.vit import VIT_SIZES, Predictor, gather_tokens, predictor_for, sincos_1d, sincos_2d, sincos_3d, vit


def _all_distinct(pos: torch.Tensor) -> bool:
    d = torch.cdist(pos.double(), pos.double())
    off = d + torch.eye(len(pos), dtype=torch.float64) * 1e9
    return bool(off.min() > 1e-3)


def test_sincos_1d_formula() -> None:
    pos = torch.tensor([0.0, 1.0, 5.0])
    emb = sincos_1d(pos, 8)
    for i, p in enumerate(pos.tolist()):
        for k in range(4):
            angle = p / 10000 ** (k / 4)
            assert emb[i, k].item() == pytest.approx(torch.tensor(angle).sin().item(), abs=1e-6)
            assert emb[i, 4 + k].item() == pytest.approx(torch.tensor(angle).cos().item(), abs=1e-6)


def test_sincos_2d_shape_and_distinct_positions() -> None:
    pos = sincos_2d(3, 5, 16)
    assert pos.shape == (15, 16)
    assert _all_distinct(pos)
    # The first half encodes the row, the second the column: tokens in one row share the first half.
    assert torch.equal(pos[0, :8], pos[4, :8])
    assert not torch.equal(pos[0, 8:], pos[4, 8:])
    with pytest.raises(AssertionError):
        sincos_2d(2, 2, 6)


@pytest.mark.parametrize("dim", [32, 36, 192])
def test_sincos_3d_shape_and_distinct_positions(dim: int) -> None:
    pos = sincos_3d(2, 3, 4, dim)
    assert pos.shape == (24, dim)
    assert _all_distinct(pos)
    # Same spatial position at two time slots: different embeddings, but the spatial channels agree.
    assert not torch.equal(pos[0], pos[12])


def micro(**kw) -> torch.nn.Module:
    return vit("micro", img_size=16, patch_size=4, in_chans=1, **kw)


def test_encoder_image_shapes() -> None:
    enc = micro()
    x = torch.rand(3, 1, 16, 16)
    assert enc.grid == (1, 4, 4) and enc.num_patches == 16
    assert enc(x).shape == (3, 16, 32)
    keep = torch.tensor([[0, 3, 5], [1, 2, 15], [4, 8, 9]])
    assert enc(x, keep).shape == (3, 3, 32)


def test_encoder_video_shapes_with_tubelet() -> None:
    enc = vit("micro", img_size=8, patch_size=4, in_chans=3, num_frames=4, tubelet=2)
    assert enc.grid == (2, 2, 2) and enc.num_patches == 8
    assert enc(torch.rand(2, 3, 4, 8, 8)).shape == (2, 8, 32)
    with pytest.raises(ValueError, match="not divisible by tubelet"):
        vit("micro", img_size=8, patch_size=4, in_chans=3, num_frames=5, tubelet=2)


def test_keep_all_equals_no_keep_and_keep_gathers_tokens() -> None:
    torch.manual_seed(0)
    enc = micro().eval()
    x = torch.rand(2, 1, 16, 16)
    full = enc(x)
    keep = torch.arange(16).expand(2, -1)
    torch.testing.assert_close(enc(x, keep), full)
    # A permuted keep permutes the output tokens (attention is permutation-equivariant, positions are added first).
    perm = torch.stack([torch.randperm(16), torch.randperm(16)])
    torch.testing.assert_close(enc(x, perm), gather_tokens(full, perm), atol=1e-5, rtol=1e-5)
    # A strict subset is not the same as taking those tokens from the full encoding: attention mixes tokens.
    sub = torch.tensor([[0, 1, 2], [3, 4, 5]])
    assert not torch.allclose(enc(x, sub), gather_tokens(full, sub), atol=1e-4)


def test_return_layers() -> None:
    enc = vit("micro", depth=3, img_size=16, patch_size=4, in_chans=1)
    x = torch.rand(2, 1, 16, 16)
    outs = enc(x, return_layers=2)
    assert isinstance(outs, list) and len(outs) == 2
    assert all(o.shape == (2, 16, 32) for o in outs)
    torch.testing.assert_close(outs[-1], enc(x))
    assert not torch.allclose(outs[0], outs[1])


@pytest.mark.parametrize(
    "shape",
    [(2, 3, 16, 16), (2, 1, 12, 12), (2, 1, 16, 12), (2, 1, 2, 16, 16), (2, 16, 16)],
    ids=["channels", "size", "non-square", "video-for-image-model", "no-channel-dim"],
)
def test_wrong_input_shape_raises_clear_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"does not fit this encoder .*resize the data or build the model"):
        micro()(torch.rand(*shape))


def test_image_input_to_video_model_raises() -> None:
    enc = vit("micro", img_size=8, patch_size=4, in_chans=1, num_frames=4, tubelet=2)
    with pytest.raises(ValueError, match="does not fit this encoder"):
        enc(torch.rand(2, 1, 8, 8))


def test_unknown_size_and_bad_patch() -> None:
    with pytest.raises(ValueError, match="unknown ViT size 'huge'"):
        vit("huge", img_size=16, patch_size=4, in_chans=1)
    with pytest.raises(ValueError, match="not divisible by patch size"):
        vit("micro", img_size=15, patch_size=4, in_chans=1)


def _predictor_and_context(depth: int) -> tuple[Predictor, torch.Tensor, torch.Tensor]:
    """A micro encoder's predictor (width 16, 7 outputs) and 5 context tokens of 2 random images."""
    torch.manual_seed(0)
    enc = micro()
    pred = predictor_for(enc, dim=16, depth=depth, num_heads=2, out_dim=7)
    ctx_idx = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    return pred, enc(torch.rand(2, 1, 16, 16), ctx_idx), ctx_idx


def test_predictor_output_shape_and_dependence_on_target_positions() -> None:
    pred, ctx, ctx_idx = _predictor_and_context(depth=1)
    tgt = torch.tensor([[10, 11], [12, 13]])
    out = pred(ctx, ctx_idx, tgt)
    assert out.shape == (2, 2, 7)
    # Mask tokens differ only by their position, so the outputs for two targets must differ.
    assert not torch.allclose(out[:, 0], out[:, 1])


def test_predictor_blocks_in_one_pass_are_independent() -> None:
    # Each block's prediction depends only on the context and its own positions: swapping the other blocks,
    # or predicting the block with the context alone, must not change it.
    pred, ctx, ctx_idx = _predictor_and_context(depth=2)
    tgt = torch.tensor([[[10, 11], [12, 13], [14, 15]], [[0, 1], [2, 3], [10, 15]]])  # (B, M, Nt)
    out = pred(ctx, ctx_idx, tgt)
    assert out.shape == (2, 3, 2, 7)
    other = torch.tensor([[[10, 11], [4, 5]], [[0, 1], [6, 9]]])  # block 0 kept, a different second block
    torch.testing.assert_close(pred(ctx, ctx_idx, other)[:, 0], out[:, 0])
    ctx_only = torch.ones(7, 7, dtype=torch.bool)
    ctx_only[:5, 5:] = False  # a one-block pass whose context cannot see the mask tokens
    x = torch.cat([pred.embed(ctx) + pred.pos_embed[0, ctx_idx], pred.mask_token + pred.pos_embed[0, tgt[:, 2]]], 1)
    for blk in pred.blocks:
        x = blk(x, ctx_only)
    torch.testing.assert_close(pred.head(pred.norm(x[:, 5:])), out[:, 2])


def test_predictor_carry_takes_latest_earlier_context_token_at_the_same_position() -> None:
    # A (t=3, 2x2) grid. The context holds all of slot 0 and position 1 of slot 1; the query of each target gets
    # the projected context token at its own position in the latest earlier slot held, and nothing when none is.
    d = 8
    pred = Predictor(
        num_patches=12, pos=sincos_3d(3, 2, 2, d), in_dim=d, dim=d, depth=1, num_heads=2, out_dim=d, carry_grid=(3, 4)
    )
    ctx, ctx_idx = torch.randn(1, 5, d), torch.tensor([[0, 1, 2, 3, 5]])
    tgt = torch.tensor([[4, 6, 8, 9, 11]])  # slot 1: positions 0, 2; slot 2: positions 0, 1, 3
    c = pred.embed(ctx)[0]
    torch.testing.assert_close(pred._carried(pred.embed(ctx), ctx_idx, tgt)[0], c[[0, 2, 0, 4, 3]])
    # A tube (position 0 hidden in every slot) carries nothing.
    assert pred._carried(pred.embed(ctx[:, :1]), torch.tensor([[1]]), torch.tensor([[0, 4, 8]])).abs().sum() == 0
    # Through a predictor without attention (depth 0) each output sees only its own query: changing the carried
    # token changes its target's prediction and no other, and the same weights without carry see no change.
    flat = Predictor(
        num_patches=12, pos=sincos_3d(3, 2, 2, d), in_dim=d, dim=d, depth=0, num_heads=2, out_dim=d, carry_grid=(3, 4)
    )
    plain = Predictor(num_patches=12, pos=sincos_3d(3, 2, 2, d), in_dim=d, dim=d, depth=0, num_heads=2, out_dim=d)
    plain.load_state_dict(flat.state_dict())  # no parameters added: the checkpoint format is unchanged
    moved = ctx.clone()
    moved[0, 2] += 1.0  # position 2 of slot 0: carried into target 6 only
    changed = (flat(moved, ctx_idx, tgt) - flat(ctx, ctx_idx, tgt)).abs().sum(-1)[0]
    assert changed[1] > 0 and changed[[0, 2, 3, 4]].max() == 0
    torch.testing.assert_close(plain(moved, ctx_idx, tgt), plain(ctx, ctx_idx, tgt))


def test_predictor_carry_needs_a_video_encoder() -> None:
    with pytest.raises(ValueError, match="carry needs a video encoder"):
        predictor_for(micro(), dim=8, depth=1, num_heads=2, out_dim=8, carry=True)
    with pytest.raises(ValueError, match="carry_grid"):
        Predictor(num_patches=12, pos=torch.zeros(12, 8), in_dim=8, dim=8, depth=1, num_heads=2, out_dim=8,
                  carry_grid=(2, 4))  # fmt: skip


def test_depth_override() -> None:
    assert len(micro(depth=5).blocks) == 5
    assert len(micro().blocks) == VIT_SIZES["micro"].depth


def expected_params(dim: int, depth: int, patch: int, chans: int) -> int:
    """ViT parameter count by hand: blocks (qkv, proj, fc1, fc2 with mlp ratio 4, two norms), patch conv, norm."""
    per_block = (
        (3 * dim * dim + 3 * dim) + (dim * dim + dim) + (4 * dim * dim + 4 * dim) + (4 * dim * dim + dim) + 4 * dim
    )
    return depth * per_block + (patch * patch * chans * dim + dim) + 2 * dim


@pytest.mark.parametrize("name", list(VIT_SIZES))
def test_vit_sizes_registry(name: str) -> None:
    size = VIT_SIZES[name]
    assert size.dim % size.heads == 0 and size.dim % 4 == 0
    # Full depth for the small sizes; one block for the big ones keeps the test cheap.
    depth = size.depth if size.dim <= 192 else 1
    enc = vit(name, depth=depth, img_size=16, patch_size=4, in_chans=1)
    assert enc.dim == size.dim and len(enc.blocks) == depth
    assert sum(p.numel() for p in enc.parameters()) == expected_params(size.dim, depth, 4, 1)
    if name == "micro":  # the only size run forward here
        assert enc(torch.rand(2, 1, 16, 16)).shape == (2, 16, size.dim)


def test_vit_sizes_grow() -> None:
    counts = [expected_params(s.dim, s.depth, 16, 3) for s in VIT_SIZES.values()]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert list(VIT_SIZES)[:2] == ["micro", "tiny"]
    assert expected_params(192, 12, 16, 3) == pytest.approx(5.5e6, rel=0.05)  # ViT-Ti/16 without head: ~5.5M


# ----------------------------------------------------------------------------------------------------------
# METHODS contract: every registered method builds, gives a finite loss and a gradient on every trainable param


# The micro preset each method is built from, and a batch of the data it trains on; methods not listed here
# (registered later by other modules) are skipped until they are added.
METHOD_PRESETS = {
    "ijepa": "ijepa-digits-micro",
    "mae": "mae-digits-micro",
    "vjepa": "vjepa-physics-micro",
    "videomae": "videomae-physics-micro",
    "worldmodel": "wm-tworooms-micro",
}


def _spec_and_batch(name: str, cfg: ExperimentConfig) -> tuple[DataSpec, dict[str, torch.Tensor]] | None:
    """A DataSpec and a batch for a method, or None for methods whose data this test cannot make."""
    if name in ("ijepa", "mae"):
        return DataSpec(channels=1, img_size=16), {"x": torch.rand(4, 1, 16, 16)}
    if name in ("vjepa", "videomae"):
        return DataSpec(channels=3, img_size=16, frames=8), {"x": torch.rand(4, 3, 8, 16, 16)}
    if name == "worldmodel":  # windows of 2 actions: 3 frames (B, T, C, H, W) and actions (B, T - 1, A)
        a = cfg.model.action_dim
        spec = DataSpec(channels=3, img_size=16, action_dim=a)
        return spec, {"frames": torch.rand(4, 3, 3, 16, 16), "actions": torch.rand(4, 2, a)}
    return None


CONTRACT_CASES = [(name, {}) for name in METHODS] + [
    ("ijepa", {"method.target": "online", "method.regularizer": "vicreg", "method.expander_dim": "16"}),
    ("ijepa", {"method.regularizer": "sigreg", "method.sigreg_slices": "8"}),
    ("ijepa", {"method.loss": "l2"}),
    ("mae", {"method.norm_pix_loss": "false"}),
    # The physics micro presets carry tokens on causal masks only; these are V-JEPA's and VideoMAE's own tube masks.
    ("vjepa", {"model.pred_carry": "false", "mask.future_weight": "0.0"}),
    ("videomae", {"model.pred_carry": "false", "mask.future_weight": "0.0"}),
]


@pytest.mark.parametrize(("name", "overrides"), CONTRACT_CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_method_contract(name: str, overrides: dict[str, str]) -> None:
    if name not in METHOD_PRESETS or METHOD_PRESETS[name] not in PRESETS:
        pytest.skip(f"no micro preset for method '{name}'")
    # World model: 16 px with patch 4, and history 2 so that the predictor's lag bias is used (with history 1
    # it gets no gradient).
    base = {"model.patch_size": "4", "model.history": "2"} if name == "worldmodel" else {}
    cfg = apply_overrides(get_preset(METHOD_PRESETS[name]), {"method.name": name, **base, **overrides})
    made = _spec_and_batch(name, cfg)
    if made is None:
        pytest.skip(f"no test data for method '{name}'")
    spec, batch = made
    torch.manual_seed(0)
    method = build_method(cfg, spec)
    assert method.eval_encoder is not None
    prepared = method.prepare(batch, torch.Generator().manual_seed(0))
    loss, logs = method(prepared)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert all(isinstance(v, float) for v in logs.values())
    loss.backward()
    trainable = {n: p for n, p in method.named_parameters() if p.requires_grad}
    assert trainable
    missing = [n for n, p in trainable.items() if p.grad is None or not torch.isfinite(p.grad).all()]
    zero = [n for n, p in trainable.items() if p.grad is not None and p.grad.abs().sum() == 0]
    assert not missing, f"no finite gradient for {missing}"
    assert not zero, f"all-zero gradient for {zero}"
    frozen = [n for n, p in method.named_parameters() if not p.requires_grad]
    assert all(method.get_parameter(n).grad is None for n in frozen)
    feats = method.features(batch["x"] if "x" in batch else batch["frames"])
    assert feats.shape[0] == 4 and torch.isfinite(feats).all()
    method.after_step(0.5)


def test_method_prepare_is_deterministic_per_generator() -> None:
    cfg = get_preset("ijepa-digits-micro")
    method = build_method(cfg, DataSpec(channels=1, img_size=16))
    batch = {"x": torch.rand(4, 1, 16, 16)}
    a = method.prepare(batch, torch.Generator().manual_seed(3))
    b = method.prepare(batch, torch.Generator().manual_seed(3))
    assert torch.equal(a["ctx"], b["ctx"]) and torch.equal(a["tgt"], b["tgt"])


def test_ema_update_moves_target_towards_online() -> None:
    cfg = get_preset("ijepa-digits-micro")
    cfg = dataclasses.replace(cfg, method=dataclasses.replace(cfg.method, ema_start=0.5, ema_end=0.5))
    method = build_method(cfg, DataSpec(channels=1, img_size=16))
    p_on = next(method.encoder.parameters())
    p_tg = next(method.target_encoder.parameters())
    with torch.no_grad():
        p_on.add_(1.0)
    before = p_tg.detach().clone()
    method.after_step(0.3)
    torch.testing.assert_close(p_tg, before + 0.5 * (p_on - before))
    assert int(method.step) == 1
