"""The benchmark: configs, a tiny end-to-end ``glowflow bench`` run, the cached fast paths."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from glowflow import Flow, Glow
from glowflow.bench import CONFIGS, BenchSettings, get_config, run_benchmark
from glowflow.bench.machine_limit import count_flops, fraction_of_limit
from glowflow.bench.peers import known_peers, parse_peer, peer_command, peer_ratios
from glowflow.bijectors.invconv import _InvertibleChannelMap
from glowflow.cli import build_parser, main
from glowflow.cli.bench import format_table
from glowflow.errors import ConfigError, MissingFileError
from glowflow.training.config import resolve_config


def test_named_configs_match_the_issue() -> None:
    small, paper = CONFIGS["cifar10-small"], CONFIGS["cifar10"]
    assert (
        small.output_shape,
        small.num_glow_blocks,
        small.num_steps_per_block,
        small.hidden_channels,
    ) == ((3, 32, 32), 3, 8, 128)
    assert (small.coupling, small.permutation) == ("affine", "invconv_lu")
    assert (
        paper.num_glow_blocks,
        paper.num_steps_per_block,
        paper.hidden_channels,
        paper.learn_top_prior,
    ) == (3, 32, 512, True)
    deeper = get_config("cifar10-small@K32")
    assert (deeper.num_steps_per_block, deeper.hidden_channels) == (32, 128)
    with pytest.raises(ConfigError, match="unknown benchmark config"):
        get_config("imagenet")
    with pytest.raises(ConfigError, match="positive integer"):
        get_config("tiny@K0")


@pytest.mark.parametrize("name", ["digits", "cifar10"])
def test_configs_match_the_training_presets(name: str) -> None:
    preset, config = resolve_config(name).model, CONFIGS[name]
    assert config == preset.replace(output_shape=config.output_shape, seed=0)


def test_tiny_bench_run_writes_valid_json(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    status = main(
        [
            "bench",
            "--config",
            "tiny",
            "--batch-size",
            "2",
            "--modes",
            "invertible",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--iterations",
            "1",
            "--precision",
            "bf16",
            "--output",
            str(output),
        ]
    )
    assert status == 0
    document = json.loads(output.read_text())
    assert document["machine"]["threads"] == 1 and document["machine"]["torch"] == torch.__version__
    assert document["configs"]["tiny"]["num_steps_per_block"] == 2
    assert document["command"].startswith("glowflow bench --config tiny")
    (entry,) = document["results"]
    assert (
        entry["implementation"],
        entry["config"],
        entry["device"],
        entry["mode"],
        entry["precision"],
    ) == ("glowflow", "tiny", "cpu", "invertible", "bf16")
    assert entry["train_flops_per_image"] > entry["sample_flops_per_image"] > 0
    assert set(entry["matmul_flops_per_s"]) == {"fp32", "bf16"}
    assert set(entry["fraction_of_limit"]) == {"train", "sample", "encode"}
    assert document["peer_ratios"] == [] and "--precision bf16" in document["command"]
    for figure in ("train", "sample", "encode"):
        assert entry[f"{figure}_images_per_s"]["median"] > 0
    assert entry["peak_rss_mb"] >= entry["baseline_rss_mb"] > 0
    assert entry["loss_finite"] and entry["reconstruction_max_abs_error"] < 1e-4
    (summary,) = document["summary"]
    assert summary["train_images_per_s"]["round_medians"] == [entry["train_images_per_s"]["median"]]
    assert summary["peak_rss_mb"] == entry["peak_rss_mb"]


def test_bench_rejects_bad_arguments(tmp_path: Path) -> None:
    assert main(["bench", "--config", "tiny", "--batch-size", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["bench", "--modes", "reversible"])
    with pytest.raises(SystemExit):
        main(["bench", "--precision", "fp8"])
    with pytest.raises(ConfigError, match="NAME=PATH"):
        parse_peer("y0ast")
    with pytest.raises(ConfigError, match="no runner for peer 'nobody'"):
        peer_command("nobody", str(tmp_path))
    with pytest.raises(ConfigError, match="no runner for peer 'common'"):
        peer_command("common", str(tmp_path))  # the runners' shared module is no peer
    with pytest.raises(MissingFileError, match="missing is not a folder"):
        peer_command("y0ast", str(tmp_path / "missing"))


def test_every_setting_is_an_option_and_the_command_reproduces_it() -> None:
    settings = BenchSettings(
        batch=3,
        threads=1,
        warmup=0,
        repeats=2,
        iterations=4,
        rounds=5,
        allocator="default",
        compile=True,
        tf32=True,
        channels_last=True,
    )
    assert all(getattr(settings, f) != getattr(BenchSettings(), f) for f in vars(settings))
    args = build_parser().parse_args(["bench", *" ".join(settings.words()).split()])
    assert BenchSettings.from_options(args) == settings
    defaults = build_parser().parse_args(["bench"])
    assert BenchSettings.from_options(defaults, threads=2) == BenchSettings()
    assert defaults.threads is None  # none given: torch's default number of threads


FAKE_Y0AST = """
import types

import torch
from torch import nn


class Glow(nn.Module):  # y0ast's model.Glow interface, one 1x1 convolution inside
    def __init__(self, image_shape, hidden_channels, K, L, y_condition, **options):
        super().__init__()
        height, width, channels = image_shape
        self.conv = nn.Conv2d(channels, channels, 1)
        self.flow = types.SimpleNamespace(output_shapes=[(-1, channels, height, width)])

    def forward(self, x=None, z=None, temperature=None, reverse=False):
        if reverse:
            return self.conv(z)
        z = self.conv(x)
        return z, (z**2).mean(dim=(1, 2, 3)), None
"""


def test_peer_runners_ship_in_the_package(tmp_path: Path, monkeypatch) -> None:
    assert known_peers() == ["rosinality", "tarflow", "y0ast"]
    checkout = tmp_path / "y0ast"
    checkout.mkdir()
    (checkout / "model.py").write_text(FAKE_Y0AST)
    assert peer_command("y0ast", str(checkout)) == [
        sys.executable,
        "-m",
        "glowflow.bench.runners.y0ast",
        str(checkout.resolve()),
    ]
    monkeypatch.chdir(tmp_path)  # away from the source tree: the runner comes from the package
    settings = BenchSettings(batch=2, threads=1, warmup=0, repeats=1, iterations=1)
    document = run_benchmark(
        {"tiny": get_config("tiny")}, ["none"], ["cpu"], settings, peers={"y0ast": str(checkout)}
    )
    glowflow_result, peer = document["results"]
    assert (glowflow_result["implementation"], peer["implementation"]) == ("glowflow", "y0ast")
    assert peer["parameters"] == 1 * 1 + 1 and peer["loss_finite"]
    assert peer["train_flops_per_image"] > 0
    (ratio,) = document["peer_ratios"]
    train = glowflow_result["train_images_per_s"]["median"] / peer["train_images_per_s"]["median"]
    assert ratio["peer"] == "y0ast" and ratio["train"]["per_round"] == [train]
    assert set(ratio) >= {"train", "sample", "encode"}


def test_flops_are_counted_not_formulated() -> None:
    weight = torch.randn(8, 4, 3, 3)
    assert (
        count_flops(lambda: torch.nn.functional.conv2d(torch.randn(2, 4, 5, 5), weight, padding=1))
        == 2 * 2 * 8 * 4 * 9 * 25
    )
    assert fraction_of_limit(10.0, 1e9, 4e10) == 0.25


def test_peer_ratios_pair_processes_of_the_same_round() -> None:
    def entry(
        implementation: str,
        round_index: int,
        train: float,
        sample: float,
        precision: str = "fp32",
        convolution_share: float = 0.0,
    ) -> dict[str, object]:
        profiled = {"train_breakdown": {"convolution": convolution_share, "other": 0.1}}
        return {
            "implementation": implementation,
            "round": round_index,
            "config": "c",
            "device": "cpu",
            "mode": "none",
            "precision": precision,
            "train_images_per_s": {"median": train},
            "sample_images_per_s": {"median": sample},
            **(profiled if convolution_share else {}),
        }

    results = [
        entry("glowflow", 0, 100, 60, convolution_share=0.5),
        entry("glowflow", 0, 300, 90, "bf16"),
        entry("y0ast", 0, 50, 30, convolution_share=0.9),
        entry("glowflow", 1, 120, 60, convolution_share=0.75),
        entry("glowflow", 1, 240, 90, "bf16"),
        entry("y0ast", 1, 40, 20),
    ]
    fp32, bf16 = peer_ratios(results)
    assert (fp32["peer"], fp32["precision"], bf16["precision"]) == ("y0ast", "fp32", "bf16")
    # the bound divides glowflow's ratio by glowflow's own convolution share, never the peer's
    assert fp32["train"] == {
        "per_round": [2.0, 3.0],
        "median": 2.5,
        "convolution_bound": {"per_round": [4.0, 4.0], "median": 4.0},
    }
    assert fp32["sample"] == {"per_round": [2.0, 3.0], "median": 2.5}  # not profiled: no bound
    assert bf16["train"] == {"per_round": [6.0, 6.0], "median": 6.0}
    assert "encode" not in fp32


def test_sampling_computes_no_inverse_or_determinant_after_the_first_call(monkeypatch) -> None:
    flow = Flow(Glow(get_config("tiny")))
    flow.initialize(torch.rand(4, 1, 8, 8))
    flow.eval()
    calls: list[int] = []
    maps = [m for m in flow.modules() if isinstance(m, _InvertibleChannelMap)]
    for kind in {type(m) for m in maps}:

        def counting(self, need_inverse, original=kind._matrices):  # type: ignore[no-untyped-def]
            calls.append(id(self))
            return original(self, need_inverse)

        monkeypatch.setattr(kind, "_matrices", counting)
    layers = len(maps)
    for _ in range(3):
        flow.sample(4)
        with torch.inference_mode():
            flow.decode(flow.encode(torch.rand(4, 1, 8, 8)))
    assert len(calls) == layers  # once per layer, then the cache
    with torch.no_grad():
        next(maps[0].parameters()).add_(0.01)
    flow.sample(4)
    assert len(calls) == layers + 1  # a weight update invalidates exactly that layer's cache


def test_every_family_has_a_benchmark_config_that_round_trips_through_its_spec():
    from glowflow.bench.configs import CONFIGS, build_model, event_shape, spec_config, spec_family
    from glowflow.families import FAMILIES

    families = {spec_family(config) for config in CONFIGS.values()}
    assert families == set(FAMILIES)
    for name, config in CONFIGS.items():
        spec = {"config": config.to_dict(), "family": spec_family(config), "mode": "none"}
        assert spec_config(spec).architecture() == config.architecture(), name
        assert build_model(config).event_shape == event_shape(config), name


FAKE_TARFLOW = """
import torch
from torch import nn


class MetaBlock:
    def __init__(self, in_channels, channels, num_patches, permutation, num_layers=1,
                 head_dim=64, expansion=4, nvp=True, num_classes=0):
        pass


class Model(nn.Module):
    def __init__(self, in_channels, img_size, patch_size, channels, num_blocks,
                 layers_per_block, nvp=True, num_classes=0):
        super().__init__()
        head_dim, expansion = MetaBlock.__init__.__defaults__[1:3]
        self.head = nn.Linear(head_dim, expansion, bias=False)  # sizes tell the defaults
        self.num_patches = (img_size // patch_size) ** 2
        self.p = patch_size
        features = in_channels * patch_size**2
        self.mix = nn.Linear(features, features, bias=False)

    def forward(self, x, y=None):
        tokens = nn.functional.unfold(x, self.p, stride=self.p).transpose(1, 2)
        z = self.mix(tokens)
        return z, [z], torch.zeros((), device=x.device)

    def get_loss(self, z, logdets):
        return 0.5 * z.pow(2).mean() - logdets.mean()

    def reverse(self, z):
        return z
"""


def test_the_tarflow_runner_builds_ml_tarflows_model_for_the_config(tmp_path: Path) -> None:
    """A stand-in for ml-tarflow's transformer_flow.py: the runner builds its Model with the
    benchmark config's patch size and, through the blocks' defaults, its head width and
    expansion, and times it beside glowflow's TarFlow."""
    checkout = tmp_path / "ml-tarflow"
    checkout.mkdir()
    (checkout / "transformer_flow.py").write_text(FAKE_TARFLOW)
    config = get_config("tarflow-digits")
    settings = BenchSettings(batch=2, threads=1, warmup=0, repeats=1, iterations=1)
    document = run_benchmark(
        {"tarflow-digits": config}, ["none"], ["cpu"], settings, peers={"tarflow": str(checkout)}
    )
    _, peer = document["results"]
    features = config.event_shape[0] * config.patch_size**2 if config.event_shape else 4
    assert peer["implementation"] == "tarflow" and peer["loss_finite"]
    assert peer["parameters"] == config.head_dim * config.expansion + features**2
    (ratio,) = document["peer_ratios"]
    assert ratio["peer"] == "tarflow" and set(ratio) >= {"train", "sample", "encode"}


def test_the_table_gives_each_ratio_its_rounds_and_its_convolution_bound() -> None:
    ratio = {
        "peer": "y0ast",
        "config": "c",
        "device": "cpu",
        "mode": "none",
        "precision": "fp32",
        "train": {
            "per_round": [2.0, 3.0],
            "median": 2.5,
            "convolution_bound": {"per_round": [4.0, 4.5], "median": 4.25},
        },
        "sample": {"per_round": [1.5], "median": 1.5},
    }
    table = format_table({"summary": [], "peer_ratios": [ratio]})
    assert table.splitlines()[-1] == (
        "glowflow fp32 none / y0ast (c, cpu): train 2.50x (rounds: 2.00, 3.00; convolutions "
        "alone: 4.25x); sample 1.50x (rounds: 1.50)"
    )
