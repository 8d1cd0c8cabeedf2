"""Config: presets, dotted overrides with typed parsing and suggestions, and (de)serialisation."""

from __future__ import annotations

import dataclasses
import json

import pytest

from jepaworld.config import (
    PRESETS,
    ConfigError,
    ExperimentConfig,
    all_keys,
    apply_overrides,
    describe,
    from_dict,
    get_preset,
    parse_override_args,
    to_dict,
    to_json,
    validate,
)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build(name: str) -> None:
    cfg = get_preset(name)
    assert isinstance(cfg, ExperimentConfig)
    assert PRESETS[name].__doc__, f"preset {name} needs a docstring (shown by `jepaworld presets`)"
    assert from_dict(to_dict(cfg)) == cfg
    assert validate(cfg) is cfg  # every preset passes the checks its overrides will get
    assert cfg.train.batch_size > 0 and cfg.train.steps > 0


def test_unknown_preset_suggests() -> None:
    with pytest.raises(ConfigError, match="Did you mean ijepa-digits-micro"):
        get_preset("ijepa-digit-micro")


def test_every_key_has_help() -> None:
    keys = all_keys(ExperimentConfig())
    assert "train.lr" in keys and "mask.target_scale" in keys
    assert all(f.metadata.get("help") for f in keys.values())


@pytest.mark.parametrize(
    ("key", "raw", "value"),
    [
        ("train.steps", "17", 17),
        ("train.lr", "3e-4", 3e-4),
        ("train.lr", "1", 1.0),
        ("data.augment", "false", False),
        ("data.augment", "No", False),
        ("data.augment", "on", True),
        ("data.augment", "1", True),
        ("mask.target_scale", "0.1,0.3", (0.1, 0.3)),
        ("mask.target_scale", "(0.1, 0.3)", (0.1, 0.3)),
        ("method.name", "mae", "mae"),
        ("train.out", "", ""),
    ],
)
def test_apply_overrides_types(key: str, raw: str, value: object) -> None:
    base = get_preset("ijepa-digits-micro")
    cfg = apply_overrides(base, {key: raw})
    sec, name = key.split(".")
    got = getattr(getattr(cfg, sec), name)
    assert got == value and type(got) is type(value)
    # Nothing else changed, and the original is untouched (frozen dataclasses).
    assert [k for k in to_dict(cfg)[sec] if to_dict(cfg)[sec][k] != to_dict(base)[sec][k]] in ([], [name])
    assert base == get_preset("ijepa-digits-micro")


def test_overrides_apply_in_order_and_keep_other_sections() -> None:
    cfg = apply_overrides(get_preset("ijepa-digits-micro"), {"train.lr": "1", "train.steps": "3", "model.depth": "1"})
    assert (cfg.train.lr, cfg.train.steps, cfg.model.depth) == (1.0, 3, 1)
    assert cfg.data == get_preset("ijepa-digits-micro").data


def test_unknown_key_suggests_close_matches() -> None:
    with pytest.raises(ConfigError) as e:
        apply_overrides(ExperimentConfig(), {"train.lrr": "1"})
    msg = str(e.value)
    assert "'--train.lrr'" in msg and "--train.lr" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match=r"--train\.batch_size"):
        apply_overrides(ExperimentConfig(), {"train.batchsize": "1"})
    with pytest.raises(ConfigError, match="unknown config key '--nonsense'"):
        apply_overrides(ExperimentConfig(), {"nonsense": "1"})


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("train.steps", "3.5"),
        ("train.steps", "ten"),
        ("train.lr", "fast"),
        ("data.augment", "maybe"),
        ("mask.target_scale", "0.1"),
        ("mask.target_scale", "0.1,0.2,0.3"),
        ("mask.target_scale", "a,b"),
    ],
)
def test_bad_value_names_key_and_type(key: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=rf"bad value .* for {key}"):
        apply_overrides(ExperimentConfig(), {key: raw})


def test_bad_value_shows_the_accepted_form() -> None:
    """What to type, not Python's type name: `expected bool` or `expected tuple` left the user guessing."""
    for key, raw, form in [("data.augment", "maybe", "true or false"), ("train.steps", "3.5", "a whole number"),
                           ("mask.target_scale", "0.1", "2 comma-separated numbers, e.g. 0.15,0.2")]:  # fmt: skip
        with pytest.raises(ConfigError) as e:
            apply_overrides(ExperimentConfig(), {key: raw})
        assert str(e.value) == f"bad value '{raw}' for {key}: expected {form}"


def test_parse_override_args() -> None:
    args = ["--train.lr", "3e-4", "--data.augment=false", "--train.out=a=b", "--train.seed", "-1"]
    assert parse_override_args(args) == {
        "train.lr": "3e-4",
        "data.augment": "false",
        "train.out": "a=b",
        "train.seed": "-1",
    }
    assert parse_override_args([]) == {}
    with pytest.raises(ConfigError, match=r"missing value for '--train\.lr'"):
        parse_override_args(["--train.lr"])
    with pytest.raises(ConfigError, match=r"missing value for '--train\.steps'"):  # not "unexpected argument X"
        parse_override_args(["--train.steps", "--train.out", "X"])
    with pytest.raises(ConfigError, match=r"unexpected argument 'train\.lr'"):
        parse_override_args(["train.lr", "1"])


def test_to_dict_from_dict_round_trip_through_json() -> None:
    cfg = apply_overrides(get_preset("ijepa-digits-micro"), {"mask.target_scale": "0.1,0.25", "train.seed": "5"})
    back = from_dict(json.loads(to_json(cfg)))
    assert back == cfg
    assert isinstance(back.mask.target_scale, tuple)


def test_from_dict_unknown_key_raises() -> None:
    d = to_dict(ExperimentConfig())
    d["train"]["learning_rate"] = 1.0
    with pytest.raises(ConfigError, match=r"unknown keys \['learning_rate'\] in \[train\]"):
        from_dict(d)


def test_from_dict_missing_keys_take_defaults() -> None:
    d = to_dict(get_preset("ijepa-digits-micro"))
    del d["train"]["lr"]
    assert from_dict(d).train.lr == ExperimentConfig().train.lr


def test_from_dict_unknown_section_raises() -> None:
    d = to_dict(ExperimentConfig())
    d["optimiser"] = {"lr": 1.0}
    with pytest.raises(ConfigError, match="optimiser"):
        from_dict(d)


def test_describe_lists_every_key() -> None:
    cfg = get_preset("ijepa-digits-micro")
    text = describe(cfg)
    for key in all_keys(cfg):
        sec, name = key.split(".")
        assert f"[{sec}]" in text and f"  {name} = " in text
    assert "  img_size = 16" in text


def test_configs_are_frozen() -> None:
    cfg = ExperimentConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 1.0  # type: ignore[misc]


# ----------------------------------------------------------------------------------------------------------
# enumerated values and values that must fit together


@pytest.mark.parametrize(
    ("key", "raw", "allowed", "suggestion"),
    [
        ("method.loss", "foo", "l1, smooth_l1, l2", None),
        ("method.loss", "smoothl1", "l1, smooth_l1, l2", "smooth_l1"),
        ("method.name", "foo", "ijepa, mae, vjepa, videomae, worldmodel", None),
        ("model.size", "huge", "micro, tiny, small, base", None),
        ("method.regularizer", "vic", "none, vicreg, sigreg", "vicreg"),
        ("probe.pool", "foo", "mean, mean_last4, grid2, grid2_last4", None),
        ("data.name", "fmnist", "fashion_mnist, digits, folder, npz, video, episodes", "fashion_mnist"),
        ("plan.planner", "cme", "cem, mppi, gradient", "cem"),
    ],
)
def test_enumerated_value_is_a_one_line_error(key: str, raw: str, allowed: str, suggestion: str | None) -> None:
    with pytest.raises(ConfigError) as e:
        apply_overrides(get_preset("ijepa-digits-micro"), {key: raw})
    msg = str(e.value)
    assert msg.startswith(f"bad value '{raw}' for {key}: choose one of {allowed}") and "\n" not in msg
    assert (f"did you mean {suggestion}?" in msg) if suggestion else "did you mean" not in msg


def test_choices_match_the_registries() -> None:
    """The choices are declared beside the fields; these registries are what the values are looked up in."""
    from jepaworld.data import DATASETS
    from jepaworld.methods import METHODS
    from jepaworld.planning import PLANNERS
    from jepaworld.probe import POOLS
    from jepaworld.vit import VIT_SIZES

    keys = all_keys(ExperimentConfig())
    registries = {"data.name": DATASETS, "method.name": METHODS, "model.size": VIT_SIZES, "probe.pool": POOLS,
                  "plan.planner": PLANNERS}  # fmt: skip
    for key, registry in registries.items():
        assert set(keys[key].metadata["choices"]) == set(registry), key
    for key, f in keys.items():
        for choice in f.metadata["choices"]:
            assert choice in f.metadata["help"], f"{key}: the help text should list '{choice}'"


def test_patch_size_must_divide_img_size() -> None:
    with pytest.raises(
        ConfigError, match=r"--model\.patch_size 5 does not divide --data\.img_size 16 .*\(2, 4, 8, 16\)"
    ):
        apply_overrides(get_preset("ijepa-digits-micro"), {"model.patch_size": "5"})
    # Overrides are checked together, so a consistent pair is accepted in either order.
    cfg = apply_overrides(get_preset("ijepa-digits-micro"), {"model.patch_size": "5", "data.img_size": "20"})
    assert (cfg.model.patch_size, cfg.data.img_size) == (5, 20)


def test_video_frames_must_fill_whole_tubelets() -> None:
    with pytest.raises(ConfigError, match=r"--data\.frames 7 does not fill whole tubelets of --model\.tubelet 2; "
                       "use 6 or 8 frames"):  # fmt: skip
        apply_overrides(get_preset("vjepa-physics-micro"), {"data.frames": "7"})
    assert apply_overrides(get_preset("vjepa-physics-micro"), {"data.frames": "6"}).data.frames == 6
    # Image data has no time axis: frames does not matter there.
    assert apply_overrides(get_preset("ijepa-digits-micro"), {"data.frames": "7"}).data.frames == 7


def test_saved_config_with_a_bad_value_is_refused() -> None:
    d = to_dict(get_preset("ijepa-digits-micro"))
    d["method"]["loss"] = "l3"
    with pytest.raises(ConfigError, match=r"bad value 'l3' for method\.loss"):
        from_dict(d)


@pytest.mark.parametrize(
    ("key", "raw", "rule"),
    [
        ("train.lr", "-1", "> 0"),
        ("train.lr", "nan", "> 0"),  # NaN passes no comparison
        ("train.steps", "0", ">= 1"),
        ("train.batch_size", "0", ">= 1"),
        ("train.log_every", "0", ">= 1"),
        ("train.time_budget_s", "-1", ">= 0"),
        ("mask.ratio", "1", "> 0 and < 1"),
        ("method.ema_start", "2", ">= 0 and <= 1"),
        ("probe.knn_k", "0", ">= 1"),
        ("mask.target_scale", "0,0.2", "> 0 and <= 1"),  # each end of a range
    ],
)
def test_out_of_bounds_number_is_a_one_line_error(key: str, raw: str, rule: str) -> None:
    """Numbers that used to pass validation and crash mid-run (or train 0 steps and lock the run folder)."""
    with pytest.raises(ConfigError) as e:
        apply_overrides(get_preset("ijepa-digits-micro"), {key: raw})
    assert str(e.value).endswith(f"for --{key}: it must be {rule}"), str(e.value)


def test_ranges_and_heads_must_be_consistent() -> None:
    with pytest.raises(ConfigError, match=r"bad range 0.5,0.1 for --mask.target_scale: give the low end first"):
        apply_overrides(get_preset("ijepa-digits-micro"), {"mask.target_scale": "0.5,0.1"})
    with pytest.raises(ConfigError, match=r"--model.pred_dim 32 does not split into --model.pred_heads 5"):
        apply_overrides(get_preset("ijepa-digits-micro"), {"model.pred_heads": "5"})


def test_every_number_declares_its_bounds() -> None:
    """A new numeric key must say what it accepts, or a bad value reaches the trainer as a traceback. The image
    size is checked with the patch size it must divide; any seed is valid."""
    cfg = ExperimentConfig()
    unbounded = {
        key for key, f in all_keys(cfg).items()
        if isinstance(v := getattr(getattr(cfg, key.split(".")[0]), key.split(".")[1]), (int, float, tuple))
        and not isinstance(v, bool) and not f.metadata["bounds"]
    }  # fmt: skip
    assert unbounded == {"data.img_size", "train.seed"}


def test_method_and_data_must_fit() -> None:
    """An image method on videos crashed in its first augmentation; now it is refused before any data is read."""
    with pytest.raises(ConfigError, match=r"--data.name video: method ijepa trains on fashion_mnist \| digits"):
        apply_overrides(get_preset("ijepa-digits-micro"), {"data.name": "video"})
    with pytest.raises(ConfigError, match=r"--data.name digits: method worldmodel trains on episodes data"):
        apply_overrides(get_preset("wm-tworooms-micro"), {"data.name": "digits"})
    with pytest.raises(ConfigError, match=r"--data.channels 3: digits is grayscale, 1 channel"):  # was ignored
        apply_overrides(get_preset("ijepa-digits-micro"), {"data.channels": "3"})
