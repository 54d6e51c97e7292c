"""The command line's shared pieces: every help agrees with its parser's defaults and says its
default once, every Usage line is a real invocation, the shared options are one definition,
and each converter declares the options it takes."""

from __future__ import annotations

import argparse
import inspect
import re
import shlex

import pytest
import torch

from glowflow.cli import COMMANDS, build_parser, main
from glowflow.cli.common import DEVICE, MODEL, MODEL_HELP, PRECISION, HelpFormatter, pick_device
from glowflow.cli.convert import converter_options
from glowflow.convert import REGISTRY
from glowflow.errors import ConfigError
from glowflow.families import FAMILIES
from glowflow.precision import AUTO, SAMPLING_PRECISIONS
from glowflow.training.config import resolve_config

PARSER = build_parser()
SUBPARSERS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices  # noqa: SLF001


def options(command: str) -> list[tuple[argparse.Action, str]]:
    """Every argument of ``command`` with its help as ``--help`` prints it (one line)."""
    parser = SUBPARSERS[command]
    formatter = parser._get_formatter()  # noqa: SLF001
    return [
        (action, " ".join(formatter._expand_help(action).split()))  # noqa: SLF001
        for action in parser._actions  # noqa: SLF001
        if action.help and action.help != argparse.SUPPRESS and action.dest != "help"
    ]


def train_default(name: str) -> object:
    """What ``glowflow train`` uses for field ``name`` when its flag is absent: the digits
    preset's value, or for a model field of another family, that family's."""
    config = resolve_config(None, None, {})
    if name in config.__dataclass_fields__:
        return config.value(name)
    for family in FAMILIES:
        model = resolve_config(None, None, {"family": family}).model
        if hasattr(model, name):
            return getattr(model, name)
    raise AssertionError(f"train flag --{name} sets no field")


@pytest.mark.parametrize("command", [c for c in COMMANDS if c in SUBPARSERS])
def test_every_help_states_the_default_the_parser_has_and_only_once(command):
    for action, text in options(command):
        flag = "/".join(action.option_strings) or action.dest
        assert text.count("(default:") <= 1, f"{command} {flag}: {text}"
        said = re.search(r"\(default: (.*)\)$", text)
        if action.default is argparse.SUPPRESS:  # train: the flag leaves the config alone
            if said and action.dest in ("preset", "recipe", "config", "resume"):
                continue  # described in words
            if said:
                value = train_default(action.dest)
                shown = repr(value) if value == "" else str(value)
                assert said.group(1).split(";")[0] == shown, f"train {flag}: {text}"
            continue
        if said:
            assert said.group(1) == str(action.default), f"{command} {flag}: {text}"
        if "none:" in text or "(default: none" in text:
            assert action.default is None, f"{command} {flag} says none, default {action.default}"


@pytest.mark.parametrize("command", [c for c in COMMANDS if c in SUBPARSERS])
def test_every_usage_line_is_a_real_invocation(command, capsys):
    description = SUBPARSERS[command].description
    assert "\n\nUsage:\n" in description, f"glowflow {command} has no Usage block"
    lines = description.split("\n\nUsage:\n", 1)[1].splitlines()
    assert lines
    for line in lines:
        assert line.startswith(f"  glowflow {command} "), line
        args = PARSER.parse_args(shlex.split(line)[1:])  # exits on a bad invocation
        assert args.command == command
    SUBPARSERS[command].print_help()
    assert "\n".join(lines) in capsys.readouterr().out  # printed as written, not re-wrapped


def test_model_device_and_precision_are_one_definition():
    takes_model = [c for c in COMMANDS if c in SUBPARSERS and "model" in dests(c)]
    assert set(takes_model) == {
        "eval",
        "sample",
        "interpolate",
        "manipulate",
        "reconstruct",
        "ood",
    }
    for command in takes_model:
        model = dests(command)["model"]
        assert (model.metavar, model.help) == ("MODEL", MODEL_HELP)
    for command in takes_model + ["ablate"]:
        device = dests(command)["device"]
        assert (device.choices, device.default, device.help) == tuple(
            DEVICE.settings[k] for k in ("choices", "default", "help")
        )
    assert dests("eval")["precision"].choices == PRECISION.settings["choices"]
    sample = dests("sample")["precision"]  # sampling may pick its precision itself
    assert (sample.choices, sample.default) == (SAMPLING_PRECISIONS, AUTO)
    assert MODEL.flags == ("model",)


def dests(command: str) -> dict[str, argparse.Action]:
    return {action.dest: action for action, _ in options(command)}


def test_the_formatter_shows_no_default_for_none_false_or_empty():
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    parser.add_argument("--a", default=None, help="A; none: nothing")
    parser.add_argument("--b", action="store_true", help="B")
    parser.add_argument("--c", type=int, default=0, help="C")
    parser.add_argument("--d", default=[], action="append", help="D")
    text = " ".join(parser.format_help().split())
    assert "A; none: nothing --b" in text and "B --c" in text
    assert "C (default: 0)" in text and text.endswith("D")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_cuda_device_is_a_config_error(capsys):
    with pytest.raises(ConfigError, match="--device cuda"):
        pick_device("cuda")
    assert main(["eval", "pretrained:digits", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_converter_declares_exactly_its_keywords_and_defaults(name):
    source = REGISTRY[name]
    parameters = dict(inspect.signature(source.load()).parameters)
    parameters.pop("path")
    assert {option.name for option in source.options} == set(parameters)
    for option in source.options:
        default = parameters[option.name].default
        assert option.default == default, f"{name} --{option.name}: declared {option.default}"


def test_a_flag_several_converters_share_means_one_type():
    kinds: dict[str, set] = {}
    for source in REGISTRY.values():
        for option in source.options:
            kinds.setdefault(option.flag, set()).add((option.type, option.metavar))
    assert all(len(kind) == 1 for kind in kinds.values()), kinds


def test_convert_passes_a_source_its_own_options_only(tmp_path, capsys):
    argv = ["convert", "--from", "rosinality", "model.pt", "--out", str(tmp_path / "out")]
    args = PARSER.parse_args([*argv, "--image-size", "32", "--n-bits", "5"])
    assert converter_options(args, REGISTRY["rosinality"]) == {"image_size": 32, "n_bits": 5}
    args = PARSER.parse_args(["convert", "--from", "y0ast", "m.pt", "--out", "o"])
    assert converter_options(args, REGISTRY["y0ast"]) == {}
    assert main(["convert", "--from", "y0ast", "m.pt", "--out", "o", "--image-size", "32"]) == 2
    assert "--image-size is not an option of --from y0ast" in capsys.readouterr().err
