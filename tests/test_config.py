"""GlowConfig: one description of a Glow, used by Glow, TrainConfig, flags, checkpoints, bench."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import glowflow as gf
from glowflow.bijectors.coupling import SCALE_FUNCTIONS
from glowflow.cli import build_parser
from glowflow.config import GlowConfig
from glowflow.families import FAMILIES
from glowflow.glow import make_permutation
from glowflow.memory import MEMORY_MODES
from glowflow.training.config import SET_BY_RUN, TrainConfig, resolve_config


def test_importable_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import glowflow\n"
        "from glowflow import GlowConfig\n"
        "print(GlowConfig(output_shape=(1, 8, 8), num_glow_blocks=2).latent_shapes())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[(2, 4, 4), (8, 2, 2)]"


def test_every_field_has_help_and_the_choices_match_the_implementations() -> None:
    for field in dataclasses.fields(GlowConfig):
        assert field.metadata["help"], field.name
    assert set(GlowConfig.choices("scale_fn")) == set(SCALE_FUNCTIONS)
    assert GlowConfig.choices("memory_mode") == MEMORY_MODES
    for name in GlowConfig.choices("permutation"):
        assert isinstance(make_permutation(name, 4), gf.Bijector)


def test_glow_from_config_equals_glow_from_keywords_and_tfp_positionals() -> None:
    config = GlowConfig(
        output_shape=(1, 8, 8),
        num_glow_blocks=2,
        num_steps_per_block=2,
        hidden_channels=8,
        seed=3,
        learn_top_prior=True,
    )
    by_config = gf.Glow(config)
    by_keywords = gf.Glow(**config.to_dict())
    by_tfp = gf.Glow(
        (1, 8, 8), 2, 2, None, None, None, True, 3, False, hidden_channels=8, learn_top_prior=True
    )
    assert by_config.config == by_keywords.config == by_tfp.config == config
    for other in (by_keywords, by_tfp):
        for (name, a), b in zip(by_config.state_dict().items(), other.state_dict().values()):
            assert torch.equal(a, b), name
    overridden = gf.Glow(config, num_steps_per_block=3)
    assert overridden.config.num_steps_per_block == 3 and len(overridden.levels[0].steps) == 3
    with pytest.raises(TypeError, match="multiple values for argument 'num_glow_blocks'"):
        gf.Glow((1, 8, 8), 2, num_glow_blocks=2)


def test_round_trips_through_json() -> None:
    config = GlowConfig(
        output_shape=(3, 16, 16),
        grab_after_block=(0.25, 1.0),
        num_glow_blocks=2,
        num_classes=10,
        coupling="additive",
    )
    assert GlowConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"unknown Glow option\(s\) \['levels'\]"):
        GlowConfig.from_dict({"levels": 3})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"output_shape": (3, 12, 16)}, "H=12 and W=16 must be divisible by"),
        ({"num_steps_per_block": 0}, "num_steps_per_block must be >= 1"),
        ({"coupling_dropout": 1.0}, "coupling_dropout must be in [0, 1)"),
        ({"coupling_dropout": 0.1, "memory_mode": "invertible"}, "would draw another dropout mask"),
        ({"hidden_channels": 2.5}, "hidden_channels must be an integer"),
        ({"use_actnorm": "yes"}, "use_actnorm must be true or false"),
        ({"mask": "stripes"}, "mask must be one of"),
    ],
)
def test_bad_values_are_named(values: dict, message: str) -> None:
    with pytest.raises(ValueError) as error:
        GlowConfig(**values)
    assert message in str(error.value)


def test_train_flags_are_generated_from_glow_config() -> None:
    parser = build_parser()
    train = next(
        a
        for a in parser._subparsers._group_actions[0].choices.items()  # noqa: SLF001
        if a[0] == "train"
    )[1]
    flags = {action.dest: action for action in train._actions}  # noqa: SLF001
    for family in FAMILIES.values():  # every family's model options are flags
        config_class = family.config_class
        for name in config_class.field_names():
            if config_class.role(name) in SET_BY_RUN:
                assert name not in flags or name == "seed"  # the run's own seed sets the model's
                continue
            assert name in flags, name
            assert family.name in flags[name].help or "[" not in flags[name].help
            if config_class.choices(name):
                assert set(config_class.choices(name)) <= set(flags[name].choices)
    for name in GlowConfig.field_names():
        if GlowConfig.role(name) not in SET_BY_RUN:
            assert GlowConfig.help(name) in flags[name].help
            if GlowConfig.choices(name):
                assert tuple(flags[name].choices) == GlowConfig.choices(name)
    args = parser.parse_args(["train", "--coupling-dropout", "0.2", "--num-steps-per-block", "3"])
    from glowflow.cli.train import config_from_args

    config = config_from_args(args)
    assert (config.model.coupling_dropout, config.model.num_steps_per_block) == (0.2, 3)


def test_train_config_takes_flat_or_nested_model_fields(tmp_path) -> None:
    flat = TrainConfig.from_dict({"hidden_channels": 32, "max_steps": 5})
    nested = TrainConfig.from_dict({"model": {"hidden_channels": 32}, "max_steps": 5})
    assert flat == nested and flat.model.hidden_channels == 32
    assert TrainConfig.from_dict(flat.to_dict()) == flat
    path = tmp_path / "run.toml"
    path.write_text('max_steps = 5\n[model]\nnum_steps_per_block = 3\nscale_fn = "exp"\n')
    config = resolve_config(None, path)
    assert (config.model.num_steps_per_block, config.model.scale_fn) == (3, "exp")
    with pytest.raises(ValueError, match=r"model.levels"):
        TrainConfig.from_dict({"model": {"levels": 3}})


def test_coupling_kind_follows_the_network_as_in_tfp() -> None:
    def glow(fn, **options):
        return gf.Glow((1, 8, 8), 1, 1, coupling_bijector_fn=fn, seed=0, **options)

    additive = glow(lambda shape: nn.Conv2d(shape[0], shape[0], 3, padding=1))
    affine = glow(lambda shape: nn.Conv2d(shape[0], 2 * shape[0], 3, padding=1))
    assert additive.levels[0].steps[0][-1].kind == "additive"
    assert affine.levels[0].steps[0][-1].kind == "affine"
    with pytest.raises(ValueError, match=r"to 4 \(affine\) channels"):
        glow(lambda shape: nn.Conv2d(shape[0], shape[0], 3, padding=1), coupling="affine")


def test_factory_parameters_with_defaults_keep_them() -> None:
    seen = []

    def tfp_style(input_shape, num_hidden=400):  # TFP's documented GlowDefaultNetwork form
        seen.append(num_hidden)
        return nn.Conv2d(input_shape[0], 2 * input_shape[0], 3, padding=1)

    def exit_style(input_shape, output_channels, width=7):
        seen.append(width)
        return gf.ZeroConv2d(input_shape[0], 2 * output_channels)

    gf.Glow((1, 8, 8), 2, 1, coupling_bijector_fn=tfp_style, exit_bijector_fn=exit_style)
    assert set(seen) == {400, 7}


def test_wrong_image_size_is_a_value_error_without_validate_args() -> None:
    glow = gf.Glow((1, 16, 16), 2, 1, hidden_channels=4)
    assert not glow.validate_args
    with pytest.raises(ValueError, match=r"must have shape \(B, 1, 16, 16\), got \(2, 1, 8, 8\)"):
        glow(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"latent 0 must have shape"):
        glow.inverse_levels([torch.zeros(2, 3, 8, 8), torch.zeros(2, 8, 4, 4)])


def test_coupling_dropout_trains_stochastically_and_decodes_exactly() -> None:
    glow = gf.Glow((1, 8, 8), 2, 2, hidden_channels=16, coupling_dropout=0.5, seed=0)
    flow = gf.Flow(glow)
    x = torch.rand(8, 1, 8, 8) - 0.5
    flow.initialize(x)
    for module in glow.modules():  # make the networks matter
        if isinstance(module, gf.ZeroConv2d):
            nn.init.normal_(module.conv.weight, std=0.1)
    assert any(isinstance(m, nn.Dropout2d) for m in glow.modules())
    flow.train()
    assert not torch.equal(flow.log_prob(x), flow.log_prob(x))  # a new mask each call
    flow.eval()
    torch.testing.assert_close(flow.log_prob(x), flow.log_prob(x), rtol=0, atol=0)
    torch.testing.assert_close(flow.decode(flow.encode(x)), x, atol=1e-5, rtol=0)
    plain = gf.Glow((1, 8, 8), 2, 2, hidden_channels=16, seed=0)
    assert not any(isinstance(m, nn.Dropout2d) for m in plain.modules())  # same keys as before
