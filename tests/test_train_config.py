"""TrainConfig: presets, config files, type checks, and the LR schedule."""

import dataclasses
import json
import math

import pytest
import torch

from glowflow.training.config import PRESETS, TrainConfig, coerce, field_types, resolve_config
from glowflow.training.schedule import LRSchedule


def test_digits_preset_is_the_default():
    """The paper recipe of digits is TrainConfig's defaults (plus the importance-weighted final
    bound); the best recipe adds exactly the searched settings."""
    from glowflow.families import BEST_RECIPES

    paper = resolve_config(recipe="paper")
    assert paper == dataclasses.replace(TrainConfig(), final_iw_samples=16)
    assert (
        resolve_config()
        == resolve_config("digits")
        == resolve_config(recipe="paper", overrides=BEST_RECIPES["digits"])
    )


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_resolves(name):
    config = resolve_config(name)
    assert config.name == name
    if name == "cifar10":
        assert (
            config.model.num_glow_blocks,
            config.model.num_steps_per_block,
            config.model.hidden_channels,
        ) == (3, 32, 512)
        assert (config.model.coupling, config.model.permutation, config.model.learn_top_prior) == (
            "affine",
            "invconv",
            True,
        )
        assert config.lr == 1e-3 and config.warmup_steps > 0
    if name == "celeba256":
        assert (config.n_bits, config.model.coupling, config.model.num_glow_blocks) == (
            5,
            "additive",
            6,
        )


def test_resolution_order_preset_file_flags(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"preset": "mnist", "lr": 5e-4, "max_steps": 10}))
    config = resolve_config(None, path, {"max_steps": 20})
    assert config.dataset == "mnist"  # from the file's preset
    assert config.lr == 5e-4  # from the file
    assert config.max_steps == 20  # the flag wins


def test_toml_file_and_tuple_field(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('coupling = "additive"\nsample_temperatures = [0.0, 1.0]\nimage_size = 16\n')
    config = resolve_config("digits", path)
    assert config.model.coupling == "additive"
    assert config.sample_temperatures == (0.0, 1.0)
    assert config.image_size == 16


@pytest.mark.parametrize(
    "values, message",
    [
        ({"learning_rate": 1.0}, "unknown config field"),
        ({"max_steps": 2.5}, "max_steps must be int"),
        ({"coupling": "spline"}, "coupling must be one of"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"class_loss_weight": 1.0}, "needs conditional"),
    ],
)
def test_bad_values_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        resolve_config(overrides=values)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        resolve_config(config_file=tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        resolve_config(config_file=broken)
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_config("imagenet")


def test_coerce_from_command_line_text():
    types = field_types()
    assert coerce("n_bits", types["n_bits"], "none") is None
    assert coerce("n_bits", types["n_bits"], "5") == 5
    assert coerce("hflip", types["hflip"], "true") is True
    assert coerce("sample_temperatures", types["sample_temperatures"], "0,0.5") == (0.0, 0.5)


def test_config_round_trips_through_json():
    config = resolve_config("celeba64")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_lr_schedule_warmup_cosine_and_scale():
    schedule = LRSchedule(1e-3, warmup_steps=10, total_steps=100, kind="cosine")
    assert schedule(0) == pytest.approx(1e-4)
    assert schedule(9) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 0.09)))
    assert schedule(100) == pytest.approx(0.0)
    constant = LRSchedule(1e-3, warmup_steps=10, total_steps=100)
    assert constant(50) == 1e-3
    constant.load_state_dict({"scale": 0.5})
    assert constant(50) == 5e-4 and constant.state_dict() == {"scale": 0.5}


def test_tuple_flag_takes_several_values():
    from glowflow.cli import build_parser

    args = build_parser().parse_args(["train", "--sample-temperatures", "0.7", "1.0"])
    assert args.sample_temperatures == [0.7, 1.0]
    assert coerce(
        "sample_temperatures", field_types()["sample_temperatures"], args.sample_temperatures
    ) == (0.7, 1.0)


@pytest.mark.parametrize("name", ["nice", "realnvp", "maf", "iaf"])
def test_each_family_preset_builds_its_family_on_the_digits(name):
    from glowflow.data import load_dataset
    from glowflow.families import FAMILIES
    from glowflow.training.model import build_flow, run_data

    config = resolve_config(name)
    assert config.family == name and type(config.model) is FAMILIES[name].config_class
    flow = build_flow(config, run_data(config, load_dataset("digits")))
    assert flow.config.event_shape == (1, 8, 8) and flow.config.seed == config.seed
    assert flow.event_shape == (1, 8, 8)
    x = torch.rand(3, 1, 8, 8) - 0.5
    flow.eval()
    torch.testing.assert_close(flow.decode(flow.encode(x)), x, atol=1e-4, rtol=0)


def test_a_preset_of_another_family_lends_its_run_settings_only():
    config = resolve_config("mnist", overrides={"family": "realnvp"})
    assert config.family == "realnvp" and config.dataset == "mnist"
    assert config.max_steps == resolve_config("mnist").max_steps
    assert config.model == resolve_config("realnvp").model
    with pytest.raises(
        ValueError, match=r"unknown config field\(s\) \['num_glow_blocks'\] for a nice"
    ):
        resolve_config(overrides={"family": "nice", "num_glow_blocks": 3})
