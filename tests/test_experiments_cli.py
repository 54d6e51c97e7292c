"""The experiment commands end to end, from the command line, on tiny digits models trained
for two steps with ``glowflow train``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from glowflow.cli import main
from glowflow.experiments.class_grid import class_grid
from glowflow.training.checkpoint import load_run
from glowflow.training.images import MIN_PICTURE_SIZE
from runs import TINY


def train_tiny(folder: Path, *extra: str) -> Path:
    assert main(["train", "--preset", "digits", "--run-dir", str(folder), *TINY, *extra]) == 0
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs") / "tiny")


@pytest.fixture(scope="module")
def conditional_run_dir(tmp_path_factory) -> Path:
    return train_tiny(
        tmp_path_factory.mktemp("runs") / "tiny-cond", "--conditional", "--class-loss-weight", "0.1"
    )


def command_json(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def png_size(path: str) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def enlarged(width: int, height: int) -> tuple[int, int]:
    """A picture's size on disk: enlarged by ``ceil(256 / longest side)`` (save_png)."""
    factor = math.ceil(MIN_PICTURE_SIZE / max(width, height))
    return width * factor, height * factor


@pytest.mark.parametrize("conditional", [False, True])
def test_interpolate_writes_a_strip_with_exact_endpoints(
    capsys, tmp_path, run_dir, conditional_run_dir, conditional
):
    run = conditional_run_dir if conditional else run_dir
    out = tmp_path / "strip.png"
    report = command_json(
        capsys,
        "interpolate",
        str(run),
        "--a",
        "0",
        "--b",
        "7",
        "--steps",
        "5",
        "--out",
        str(out),
        "--device",
        "cpu",
    )
    assert report["endpoint_max_abs_error"] < 1e-4
    assert png_size(report["out"]) == enlarged(5 * 9 + 1, 9 + 1)  # 8x8 digits, 1-pixel padding


def test_interpolate_reads_image_files(capsys, tmp_path, run_dir):
    picture = tmp_path / "ramp.png"
    Image.fromarray((torch.arange(256).reshape(16, 16) % 256).to(torch.uint8).numpy()).save(picture)
    report = command_json(
        capsys, "interpolate", str(run_dir), "--a", str(picture), "--b", "3", "--device", "cpu"
    )
    assert Path(report["out"]).is_file() and report["steps"] == 8
    assert report["endpoint_max_abs_error"] < 1e-4


def test_reconstruct_reports_a_float_precision_error(capsys, tmp_path, run_dir):
    out = tmp_path / "pairs.png"
    report = command_json(
        capsys, "reconstruct", str(run_dir), "-n", "10", "--out", str(out), "--device", "cpu"
    )
    assert report["images"] == 10 and report["max_abs_error"] < 1e-4
    assert report["levels_changed"] == 0 and out.is_file()


def test_manipulate_saves_and_reuses_the_direction(capsys, tmp_path, run_dir):
    direction = tmp_path / "three_vs_eight.safetensors"
    first = command_json(
        capsys,
        "manipulate",
        str(run_dir),
        "--attribute",
        "3",
        "--negative",
        "8",
        "--save-direction",
        str(direction),
        "--strengths",
        "-1",
        "0",
        "1",
        "--out",
        str(tmp_path / "a.png"),
        "--device",
        "cpu",
    )
    assert direction.is_file() and first["direction_norm"] > 0
    assert png_size(first["out"]) == enlarged(3 * 9 + 1, 4 * 9 + 1)  # 3 strengths x 4 images
    again = command_json(
        capsys,
        "manipulate",
        str(run_dir),
        "--direction",
        str(direction),
        "--image",
        "0",
        "5",
        "--out",
        str(tmp_path / "b.png"),
        "--device",
        "cpu",
    )
    assert again["direction_norm"] == pytest.approx(first["direction_norm"])
    assert png_size(again["out"]) == enlarged(
        6 * 9 + 1, 2 * 9 + 1
    )  # default 6 strengths x 2 images


def test_manipulate_rejects_bad_requests(capsys, run_dir):
    for argv in (["--attribute", "12"], ["--attribute", "Smiling"], []):
        assert main(["manipulate", str(run_dir), *argv, "--device", "cpu"]) == 2
        assert "error" in capsys.readouterr().err


def test_conditional_model_log_prob_depends_on_the_label(conditional_run_dir):
    flow = load_run(conditional_run_dir).flow
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) - 0.5
    with torch.no_grad():
        log_probs = [flow.log_prob(x, torch.full((4,), k)) for k in (1, 6)]
    assert (log_probs[0] - log_probs[1]).abs().min() > 1e-4
    assert class_grid(flow, samples_per_class=2).shape == (10, 2, 1, 8, 8)
